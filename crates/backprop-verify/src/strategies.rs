//! Proptest strategies for random cases: architectures, batches and values that shrink cleanly.
//!
//! Widths run from 1 to [`MAX_WIDTH`] and batches from 1 to [`MAX_ROWS`],
//! small sizes drawn most often; a case's batch is cut so that the oracles'
//! cost (a dual-number pass per parameter) stays within [`ORACLE_BUDGET`],
//! down to one row: a deep architecture of wide layers (rare: three widths
//! in four are at most 9) still costs more than the budget on that row.

use backprop_core::{Activation, Architecture, Loss, Network, Params};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

use crate::case::Case;
use crate::matrix::Shape;

/// Cases per property when `PROPTEST_CASES` is not set.
pub const DEFAULT_CASES: u32 = 24;
/// The fixed seed of every property test unless `PROPTEST_RNG_SEED` is set.
pub const DEFAULT_SEED: u64 = 0x00ba_c4b0_0b5e_ed00;
/// The widest layer a strategy draws: past the vector and tile edges 8, 16 and 32.
pub const MAX_WIDTH: usize = 40;
/// The largest batch a strategy draws: past the tile edges 16, 32 and 64.
pub const MAX_ROWS: usize = 70;
/// Multiply-adds the oracles may spend on one case, about: parameters times
/// the forward pass's multiply-adds over the batch.
pub const ORACLE_BUDGET: usize = 4_000_000;

/// Cases a property may reject (those a kernel declines) per case it runs,
/// unless `PROPTEST_MAX_GLOBAL_REJECTS` is set: enough for a kernel that
/// accepts one case in ten.
pub const REJECTS_PER_CASE: u32 = 10;

/// Cases a property on an author's shapes ([`config_on`]) may reject per
/// case it runs: enough for a kernel of one activation and one loss, which
/// accepts one case of [`case_on`]'s in 16 or more.
pub const REJECTS_PER_CASE_ON_SHAPES: u32 = 40;

/// [`config`], for properties on `shapes` ([`case_on`]) when there are
/// any: rejections allowed in proportion [`REJECTS_PER_CASE_ON_SHAPES`].
pub fn config_on(shapes: &[Shape]) -> Config {
    let mut config = config();
    if !shapes.is_empty() && std::env::var_os("PROPTEST_MAX_GLOBAL_REJECTS").is_none() {
        let in_proportion = config.cases.saturating_mul(REJECTS_PER_CASE_ON_SHAPES);
        config.max_global_rejects = config.max_global_rejects.max(in_proportion);
    }
    config
}

/// Proptest's configuration: seeded, `PROPTEST_CASES` raises the count for
/// long runs, rejections allowed in proportion ([`REJECTS_PER_CASE`]),
/// failures are kept beside the test's source file, as
/// `<file>.proptest-regressions` (proptest's default).
pub fn config() -> Config {
    let mut config = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = DEFAULT_CASES;
    }
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        config.rng_seed = RngSeed::Fixed(DEFAULT_SEED);
    }
    if std::env::var_os("PROPTEST_MAX_GLOBAL_REJECTS").is_none() {
        let in_proportion = config.cases.saturating_mul(REJECTS_PER_CASE);
        config.max_global_rejects = config.max_global_rejects.max(in_proportion);
    }
    config
}

/// Any activation.
pub fn activation() -> impl Strategy<Value = Activation> {
    prop::sample::select(Activation::ALL.to_vec())
}

/// Either loss.
pub fn loss() -> impl Strategy<Value = Loss> {
    prop::sample::select(Loss::ALL.to_vec())
}

/// A width from 1 to [`MAX_WIDTH`], at most 9 three times in four.
pub fn width() -> impl Strategy<Value = usize> {
    prop_oneof![3 => 1usize..=9, 1 => 1usize..=MAX_WIDTH]
}

/// Architectures of 1 to 9 weight layers (up to 4 three times in four), widths from [`width`], any
/// activations and either loss (softmax cross-entropy gets an identity output).
pub fn architecture() -> impl Strategy<Value = Architecture> {
    (
        prop_oneof![
            3 => prop::collection::vec(width(), 2..=5),
            1 => prop::collection::vec(width(), 6..=10),
        ],
        prop::collection::vec(activation(), 9),
        loss(),
    )
        .prop_filter_map("a valid architecture", |(widths, mut activations, loss)| {
            let layers = widths.len() - 1;
            activations.truncate(layers);
            if loss == Loss::SoftmaxCrossEntropy {
                activations[layers - 1] = Activation::Identity;
            }
            Architecture::new(&widths, &activations, loss).ok()
        })
}

/// A batch size from 1 to [`MAX_ROWS`], at most 16 three times in four.
pub fn rows() -> impl Strategy<Value = usize> {
    prop_oneof![3 => 1usize..=16, 1 => 1usize..=MAX_ROWS]
}

/// The rows of a case of `architecture` that the oracles can afford: `rows`,
/// cut to stay within [`ORACLE_BUDGET`], and at least 1.
pub fn affordable_rows(architecture: &Architecture, rows: usize) -> usize {
    let per_row = architecture.param_count()
        * architecture
            .layers()
            .iter()
            .map(|layer| layer.weight_count())
            .sum::<usize>();
    rows.min(ORACLE_BUDGET / per_row.max(1)).max(1)
}

/// A random architecture with a batch from [`rows`], its values from
/// [`values`].
pub fn case() -> impl Strategy<Value = Case<f64>> {
    (architecture(), rows()).prop_flat_map(|(architecture, rows)| {
        let rows = affordable_rows(&architecture, rows);
        values(architecture, rows)
    })
}

/// A random case on one of `shapes` (at least one), its widths and rows as
/// they are: half the time one activation in every layer, else any in
/// each, and either loss (softmax cross-entropy gets an identity output);
/// its values from [`values`]. The rows are not cut to [`ORACLE_BUDGET`],
/// so the oracles' cost grows with the shapes.
pub fn case_on(shapes: Vec<Shape>) -> impl Strategy<Value = Case<f64>> {
    prop::sample::select(shapes)
        .prop_flat_map(|shape| {
            let layers = shape.widths.len().saturating_sub(1);
            let activations = prop_oneof![
                activation().prop_map(move |activation| vec![activation; layers]),
                prop::collection::vec(activation(), layers),
            ];
            (Just(shape), activations, loss())
        })
        .prop_filter_map("a valid architecture", |(shape, mut activations, loss)| {
            if loss == Loss::SoftmaxCrossEntropy {
                *activations.last_mut()? = Activation::Identity;
            }
            let architecture = Architecture::new(&shape.widths, &activations, loss).ok()?;
            Some((architecture, shape.rows))
        })
        .prop_flat_map(|(architecture, rows)| values(architecture, rows))
}

/// [`case_on`] the shapes if there are any, [`case`] otherwise.
pub fn cases(shapes: Vec<Shape>) -> BoxedStrategy<Case<f64>> {
    if shapes.is_empty() {
        case().boxed()
    } else {
        case_on(shapes).boxed()
    }
}

/// A case of `architecture` with `rows` samples: parameters and inputs in
/// `[-1, 1)`, targets in `[0, 1)` (for softmax cross-entropy, rows scaled to
/// sum to between 1/2 and 3/2: the general form, `s` not taken as 1).
pub fn values(architecture: Architecture, rows: usize) -> impl Strategy<Value = Case<f64>> {
    let (params, n, m) = (
        architecture.param_count(),
        architecture.input_width(),
        architecture.output_width(),
    );
    (
        Just(architecture),
        prop::collection::vec(-1.0..1.0f64, params),
        prop::collection::vec(-1.0..1.0f64, rows * n),
        prop::collection::vec(0.0..1.0f64, rows * m),
        prop::collection::vec(0.5..1.5f64, rows),
    )
        .prop_filter_map(
            "a valid case",
            move |(architecture, params, inputs, mut targets, sums)| {
                let m = architecture.output_width();
                if architecture.loss() == Loss::SoftmaxCrossEntropy {
                    for (row, sum) in targets.chunks_mut(m).zip(sums) {
                        let total: f64 = row.iter().sum::<f64>() + 1e-3;
                        row.iter_mut().for_each(|y| *y *= sum / total);
                    }
                }
                let params = Params::from_values(&architecture, params).ok()?;
                let network = Network::new(architecture, params).ok()?;
                Case::new(network, inputs, targets, rows).ok()
            },
        )
}
