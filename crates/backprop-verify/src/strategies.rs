//! Proptest strategies for random cases: architectures, batches and values that shrink cleanly.
//!
//! Widths run from 1 to [`MAX_WIDTH`] and batches from 1 to [`MAX_ROWS`],
//! small sizes drawn most often; a case's batch is cut so that the oracles'
//! cost (a dual-number pass per parameter) stays within [`ORACLE_BUDGET`],
//! down to one row: a deep architecture of wide layers (rare: three widths
//! in four are at most 9) still costs more than the budget on that row.

use backprop_core::{Activation, Architecture, Backend, Loss, Network, Params, Scalar};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

use crate::case::Case;
use crate::checks;
use crate::matrix::{Shape, activation_turns, with_output_for};

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
            activations.truncate(widths.len() - 1);
            let activations = with_output_for(loss, activations);
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

/// Networks per shape and loss past which [`accepted_networks`] asks of
/// some activations only: every combination up to this many, for up to 4
/// weight layers (`4^4 = 256`).
pub const ENUMERATED_NETWORKS: usize = 256;

/// The networks on `shapes` that `backend` accepts, each with its shape's
/// rows, asked as the matrix asks ([`checks::declined_at`]: on zero
/// values, so the answer depends on the network alone): every
/// combination of activations over the layers with either loss (identity
/// outputs for softmax cross-entropy) where there are at most
/// [`ENUMERATED_NETWORKS`] of them, else one activation in every layer and
/// the mixed networks of [`mixed_cells`](crate::matrix::mixed_cells).
pub fn accepted_networks<T: Scalar>(
    shapes: &[Shape],
    backend: &mut dyn Backend<T>,
) -> Vec<(Architecture, usize)> {
    let mut accepted = Vec::new();
    for shape in shapes {
        let layers = shape.widths.len().saturating_sub(1);
        for loss in Loss::ALL {
            for activations in activation_choices(layers, loss) {
                let Ok(architecture) = Architecture::new(&shape.widths, &activations, loss) else {
                    continue;
                };
                if checks::declined_at(backend, &architecture, shape.rows).is_none() {
                    accepted.push((architecture, shape.rows));
                }
            }
        }
    }
    accepted
}

/// The activations [`accepted_networks`] asks of, on `layers` weight layers
/// with `loss`.
fn activation_choices(layers: usize, loss: Loss) -> Vec<Vec<Activation>> {
    let all = Activation::ALL;
    let count = all.len().checked_pow(layers as u32).unwrap_or(usize::MAX);
    let mut choices: Vec<Vec<Activation>> = if count <= ENUMERATED_NETWORKS {
        (0..count)
            .map(|index| {
                (0..layers)
                    .map(|l| all[index / all.len().pow(l as u32) % all.len()])
                    .collect()
            })
            .collect()
    } else {
        let same = all.iter().map(|&a| vec![a; layers]);
        same.chain(activation_turns(layers)).collect()
    };
    choices = choices
        .into_iter()
        .map(|activations| with_output_for(loss, activations))
        .collect();
    choices.sort_by_key(|activations| activations.iter().map(|a| a.name()).collect::<Vec<_>>());
    choices.dedup();
    choices
}

/// A random case of one of `networks` (at least one), each with its rows
/// as they are, its values from [`values`]. The rows are not cut to
/// [`ORACLE_BUDGET`], so the oracles' cost grows with the networks.
pub fn case_among(networks: Vec<(Architecture, usize)>) -> impl Strategy<Value = Case<f64>> {
    prop::sample::select(networks).prop_flat_map(|(architecture, rows)| values(architecture, rows))
}

/// [`case`] when there are no `shapes`; else [`case_among`] the networks
/// on them `backend` accepts ([`accepted_networks`]), or, if it declines
/// them all, an error naming the backend and the shapes: no case could be
/// drawn.
pub fn cases_for<T: Scalar>(
    shapes: Vec<Shape>,
    backend: &mut dyn Backend<T>,
) -> Result<BoxedStrategy<Case<f64>>, String> {
    if shapes.is_empty() {
        return Ok(case().boxed());
    }
    let networks = accepted_networks(&shapes, backend);
    if networks.is_empty() {
        return Err(format!(
            "{} declines every network on the shapes {shapes:?}",
            backend.name()
        ));
    }
    Ok(case_among(networks).boxed())
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

#[cfg(test)]
mod tests {
    use backprop_core::{Activation, Loss};
    use backprop_naive::NaiveBackend;

    use super::{ENUMERATED_NETWORKS, accepted_networks, cases_for};
    use crate::matrix::Shape;

    /// A kernel that declines every problem.
    struct DeclinesAll;

    impl backprop_core::Backend<f64> for DeclinesAll {
        fn name(&self) -> &'static str {
            "declines-all"
        }

        fn run_forward(
            &mut self,
            _: backprop_core::ForwardTask<'_, f64>,
        ) -> Result<(), backprop_core::Error> {
            Err(self.decline())
        }

        fn run_loss_and_gradient(
            &mut self,
            _: backprop_core::GradientTask<'_, f64>,
        ) -> Result<f64, backprop_core::Error> {
            Err(self.decline())
        }
    }

    impl DeclinesAll {
        fn decline(&self) -> backprop_core::Error {
            backprop_core::Error::Unsupported {
                backend: "declines-all",
                reason: "nothing".to_owned(),
            }
        }
    }

    #[test]
    fn no_case_is_drawn_for_a_kernel_that_declines_every_network_on_the_shapes() {
        let mine = Shape::new("mine", &[4, 5, 3], 2);
        let Err(why) = cases_for(vec![mine.clone()], &mut DeclinesAll) else {
            panic!("a strategy for a kernel that declines everything");
        };
        assert!(
            why.starts_with("declines-all declines every network on the shapes"),
            "{why}"
        );
        assert!(why.contains("mine"), "{why}");
        assert!(cases_for(vec![mine], &mut NaiveBackend::<f64>::new()).is_ok());
        // Without shapes, any architecture, asked of no one.
        assert!(cases_for(Vec::new(), &mut DeclinesAll).is_ok());
    }

    #[test]
    fn every_network_on_a_shallow_shape_is_asked_and_a_few_on_a_deep_one() {
        let mut naive = NaiveBackend::<f64>::new();
        let shallow = Shape::new("shallow", &[4, 5, 3], 2);
        let networks = accepted_networks(&[shallow], &mut naive);
        // 4 x 4 for MSE, 4 for softmax cross-entropy (identity outputs).
        assert_eq!(networks.len(), 20);
        let mut names: Vec<String> = networks.iter().map(|(a, _)| a.to_string()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 20);
        assert!(networks.iter().all(|(_, rows)| *rows == 2));
        let softmax = networks
            .iter()
            .filter(|(a, _)| a.loss() == Loss::SoftmaxCrossEntropy);
        assert!(
            softmax
                .clone()
                .all(|(a, _)| a.activations()[1] == Activation::Identity)
        );
        assert_eq!(softmax.count(), 4);

        // Past the enumerated count: one activation everywhere and the turns.
        let deep = Shape::new("deep", &[3, 4, 4, 4, 4, 2], 2);
        assert!(4usize.pow(5) > ENUMERATED_NETWORKS);
        let networks = accepted_networks(&[deep], &mut naive);
        assert_eq!(networks.len(), 8 + 8);
    }
}
