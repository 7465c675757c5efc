//! The generic driver: every check of the protocol on one backend, one precision, one case.

use backprop_core::{Backend, Scalar};
use backprop_naive::NaiveBackend;

use crate::case::Case;
use crate::checks::{self, Oracle};
use crate::guard::guarded;
use crate::report::{CheckKind, CheckReport};

/// How many random directions the directional check draws.
pub const DIRECTIONS: usize = 4;
/// How many repeated runs the determinism check compares.
pub const REPEATS: usize = 3;
/// Rows of the golden-value batch: a power of two, so the MSE golden loss is
/// exact when the output width is one too.
pub const GOLDEN_ROWS: usize = 4;

/// Every `f64` check on `backend` for `case`: both oracles, directional
/// derivatives, agreement with the naive backend, the forward outputs, the
/// golden loss, the batch law, the SGD step, determinism and reused buffers.
pub fn check_f64(backend: &mut dyn Backend<f64>, case: &Case<f64>, seed: u64) -> Vec<CheckReport> {
    check_f64_with(backend, case, &Oracle::of(case), seed)
}

/// [`check_f64`] with the case's oracle computed beforehand.
pub fn check_f64_with(
    backend: &mut dyn Backend<f64>,
    case: &Case<f64>,
    oracle: &Oracle,
    seed: u64,
) -> Vec<CheckReport> {
    let mut reports = vec![
        guarded(CheckKind::FiniteDifferences, || {
            checks::finite_differences(backend, case, oracle)
        }),
        guarded(CheckKind::DualNumbers, || {
            checks::dual_numbers(backend, case, oracle)
        }),
        guarded(CheckKind::Directional, || {
            checks::directional(backend, case, oracle, DIRECTIONS, seed)
        }),
    ];
    reports.extend(common_checks(backend, case, oracle));
    reports
}

/// Every `f32` check on `backend` for `case` rounded to `f32`: against the
/// `f64` oracle on the same rounded values (never finite differences in
/// `f32`), agreement with the naive backend in `f32`, the forward outputs,
/// the golden loss, the batch law, the SGD step, determinism and reused
/// buffers.
pub fn check_f32(backend: &mut dyn Backend<f32>, case: &Case<f64>) -> Vec<CheckReport> {
    let case = case.to_precision::<f32>();
    check_f32_with(backend, &case, &Oracle::of(&case))
}

/// [`check_f32`] on a case already rounded to `f32`, with its oracle.
pub fn check_f32_with(
    backend: &mut dyn Backend<f32>,
    case: &Case<f32>,
    oracle: &Oracle,
) -> Vec<CheckReport> {
    let mut reports = vec![guarded(CheckKind::F32AgainstF64, || {
        checks::f32_against_f64(backend, case, oracle)
    })];
    reports.extend(common_checks(backend, case, oracle));
    reports
}

/// The checks both precisions run the same way, each guarded against a
/// panic of the backend (see `guard.rs`).
fn common_checks<T: Scalar>(
    backend: &mut dyn Backend<T>,
    case: &Case<T>,
    oracle: &Oracle,
) -> [CheckReport; 7] {
    [
        guarded(CheckKind::AgreesWithNaive, || {
            checks::agrees_with(backend, &mut NaiveBackend::new(), case, oracle)
        }),
        guarded(CheckKind::Forward, || {
            checks::forward_outputs(backend, case, oracle)
        }),
        guarded(CheckKind::GoldenLoss, || {
            let rows = golden_rows(backend, case);
            checks::golden_loss(backend, case.network.architecture(), rows)
        }),
        guarded(CheckKind::BatchLaw, || {
            checks::batch_law(backend, case, oracle)
        }),
        guarded(CheckKind::SgdStep, || {
            checks::sgd_step(backend, case, oracle)
        }),
        guarded(CheckKind::Determinism, || {
            checks::determinism(backend, case, REPEATS)
        }),
        guarded(CheckKind::ReusedBuffers, || {
            checks::reused_buffers(backend, case, oracle)
        }),
    ]
}

/// The batch size of the golden check: [`GOLDEN_ROWS`], or the case's own
/// for a backend that declines batches of that size (one that takes only
/// whole vectors of samples, say), which it accepted.
fn golden_rows<T: Scalar>(backend: &mut dyn Backend<T>, case: &Case<T>) -> usize {
    let architecture = case.network.architecture();
    match checks::declined_at(backend, architecture, GOLDEN_ROWS) {
        Some(_) => case.rows,
        None => GOLDEN_ROWS,
    }
}

/// Whether every report passed.
pub fn all_passed(reports: &[CheckReport]) -> bool {
    reports.iter().all(CheckReport::passed)
}

/// One line per report, for assertion messages.
pub fn describe(reports: &[CheckReport]) -> String {
    reports
        .iter()
        .map(|r| r.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}
