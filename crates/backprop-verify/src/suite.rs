//! The generic driver: every check of the protocol on one backend, one precision, one case.

use backprop_core::Backend;
use backprop_naive::NaiveBackend;

use crate::case::Case;
use crate::checks::{self, Oracle};
use crate::report::CheckReport;

/// How many random directions the directional check draws.
pub const DIRECTIONS: usize = 4;
/// How many repeated runs the determinism check compares.
pub const REPEATS: usize = 3;
/// Rows of the golden-value batch: a power of two, so the MSE golden loss is exact.
pub const GOLDEN_ROWS: usize = 4;

/// Every `f64` check on `backend` for `case`: both oracles, directional
/// derivatives, agreement with the naive backend, the golden loss, the batch
/// law and determinism.
pub fn check_f64(backend: &mut dyn Backend<f64>, case: &Case<f64>, seed: u64) -> Vec<CheckReport> {
    let oracle = Oracle::of(case);
    let mut naive = NaiveBackend::new();
    vec![
        checks::finite_differences(backend, case, &oracle),
        checks::dual_numbers(backend, case, &oracle),
        checks::directional(backend, case, &oracle, DIRECTIONS, seed),
        checks::agrees_with(backend, &mut naive, case, &oracle),
        checks::golden_loss(backend, case.network.architecture(), GOLDEN_ROWS),
        checks::batch_law(backend, case, &oracle),
        checks::determinism(backend, case, REPEATS),
    ]
}

/// Every `f32` check on `backend` for `case` rounded to `f32`: against the
/// `f64` oracle on the same rounded values (never finite differences in
/// `f32`), agreement with the naive backend in `f32`, the golden loss, the
/// batch law and determinism.
pub fn check_f32(backend: &mut dyn Backend<f32>, case: &Case<f64>) -> Vec<CheckReport> {
    let case = case.to_precision::<f32>();
    let oracle = Oracle::of(&case);
    let mut naive = NaiveBackend::new();
    vec![
        checks::f32_against_f64(backend, &case, &oracle),
        checks::agrees_with(backend, &mut naive, &case, &oracle),
        checks::golden_loss(backend, case.network.architecture(), GOLDEN_ROWS),
        checks::batch_law(backend, &case, &oracle),
        checks::determinism(backend, &case, REPEATS),
    ]
}

/// Whether every report passed.
pub fn all_passed(reports: &[CheckReport]) -> bool {
    reports.iter().all(CheckReport::passed)
}
