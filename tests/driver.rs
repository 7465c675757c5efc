//! The generic test driver: random cases, and every check of the protocol run on one backend.
//!
//! Adding a backend to the test suite is one line in `backends.rs`:
//! `backend_suite!(module_name, BackendKind::Variant);`.

use backprop::{Activation, Architecture, Loss, Network, Params};
use backprop_verify::{Case, CheckReport};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

/// Cases per property when `PROPTEST_CASES` is not set.
const DEFAULT_CASES: u32 = 24;
/// The fixed seed of every property test unless `PROPTEST_RNG_SEED` is set.
const DEFAULT_SEED: u64 = 0x00ba_c4b0_0b5e_ed00;

/// Proptest's configuration: seeded, `PROPTEST_CASES` raises the count for
/// long runs, failures are kept under `proptest-regressions/`.
pub(crate) fn config() -> Config {
    let mut config = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = DEFAULT_CASES;
    }
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        config.rng_seed = RngSeed::Fixed(DEFAULT_SEED);
    }
    config
}

fn activation() -> impl Strategy<Value = Activation> {
    prop::sample::select(Activation::ALL.to_vec())
}

fn loss() -> impl Strategy<Value = Loss> {
    prop::sample::select(Loss::ALL.to_vec())
}

/// Architectures of 1 to 4 weight layers, widths 1 to 16, any activations
/// and either loss (softmax cross-entropy gets an identity output).
pub(crate) fn architecture() -> impl Strategy<Value = Architecture> {
    (
        prop::collection::vec(1usize..=16, 2..=5),
        prop::collection::vec(activation(), 4),
        loss(),
    )
        .prop_map(|(widths, mut activations, loss)| {
            let layers = widths.len() - 1;
            activations.truncate(layers);
            if loss == Loss::SoftmaxCrossEntropy {
                activations[layers - 1] = Activation::Identity;
            }
            Architecture::new(&widths, &activations, loss).expect("a valid architecture")
        })
}

/// A random architecture with a batch of 1 to 16 rows: parameters and
/// inputs in `[-1, 1)`, targets in `[0, 1)` (normalised to distributions for
/// softmax cross-entropy).
pub(crate) fn case() -> impl Strategy<Value = Case<f64>> {
    (architecture(), 1usize..=16)
        .prop_flat_map(|(architecture, rows)| {
            let (params, n, m) = (
                architecture.param_count(),
                architecture.input_width(),
                architecture.output_width(),
            );
            (
                Just(architecture),
                Just(rows),
                prop::collection::vec(-1.0..1.0f64, params),
                prop::collection::vec(-1.0..1.0f64, rows * n),
                prop::collection::vec(0.0..1.0f64, rows * m),
            )
        })
        .prop_map(|(architecture, rows, params, inputs, mut targets)| {
            let m = architecture.output_width();
            if architecture.loss() == Loss::SoftmaxCrossEntropy {
                for row in targets.chunks_mut(m) {
                    let total: f64 = row.iter().sum::<f64>() + 1e-3;
                    row.iter_mut().for_each(|y| *y /= total);
                }
            }
            let params = Params::from_values(&architecture, params).expect("matching length");
            let network = Network::new(architecture, params).expect("matching layout");
            Case::new(network, inputs, targets, rows).expect("a valid batch")
        })
}

/// Asserts that a loss and gradient agree with the reference's to `tolerance`,
/// relative for the loss and relative to `1 + |reference|` per component.
pub(crate) fn assert_agrees(
    label: &str,
    (loss, gradient): (f64, &[f64]),
    (reference_loss, reference): (f64, &[f64]),
    tolerance: f64,
) {
    assert!(
        (loss - reference_loss).abs() <= tolerance * reference_loss.abs(),
        "{label}: loss {loss} vs {reference_loss}"
    );
    for (a, b) in gradient.iter().zip(reference) {
        assert!(
            (a - b).abs() <= tolerance * (1.0 + b.abs()),
            "{label}: {a} vs {b}"
        );
    }
}

/// One line per report, for assertion messages.
pub(crate) fn describe(reports: &[CheckReport]) -> String {
    reports
        .iter()
        .map(|r| r.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// A pool of `threads` threads.
pub(crate) fn pool(threads: usize) -> std::sync::Arc<rayon::ThreadPool> {
    std::sync::Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("a thread pool"),
    )
}

/// Every check of the protocol, in both precisions, on one backend.
macro_rules! backend_suite {
    ($module:ident, $kind:expr) => {
        mod $module {
            use backprop_verify::suite::{all_passed, check_f32, check_f64};
            use proptest::prelude::*;

            use crate::driver::{case, config, describe};
            #[allow(unused_imports)]
            use super::*;

            proptest! {
                #![proptest_config(config())]

                #[test]
                fn f64_gradient_passes_every_check(case in case(), seed in any::<u64>()) {
                    let mut backend = $kind.create::<f64>();
                    let reports = check_f64(&mut *backend, &case, seed);
                    prop_assert!(all_passed(&reports), "{}\n{}", case.network.architecture(), describe(&reports));
                }

                #[test]
                fn f32_gradient_passes_every_check(case in case()) {
                    let mut backend = $kind.create::<f32>();
                    let reports = check_f32(&mut *backend, &case);
                    prop_assert!(all_passed(&reports), "{}\n{}", case.network.architecture(), describe(&reports));
                }
            }
        }
    };
}

pub(crate) use backend_suite;
