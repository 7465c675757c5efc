//! Every check of the verification protocol on each path this CPU can run, forced with
//! `SimdBackend::with_path`: both oracles, the reference, the golden loss, the batch law
//! and determinism, in `f64` and `f32`, on seeded random cases.

use backprop_core::{Activation, Architecture, Loss};
use backprop_simd::{Path, SimdBackend};
use backprop_verify::suite::{all_passed, check_f32, check_f64};
use backprop_verify::{Case, Conformance};

/// Seeded cases: widths on both sides of the 4, 8 and 16 lanes, every
/// activation and loss, one to four layers, batches from 1 to 33.
fn cases() -> Vec<Case<f64>> {
    use Activation::*;
    let specs: [(&[usize], &[Activation], Loss, usize); 8] = [
        (&[3, 5, 2], &[Sigmoid, Sigmoid], Loss::Mse, 4),
        (&[9, 17, 4], &[Tanh, Identity], Loss::SoftmaxCrossEntropy, 7),
        (&[16, 8, 1], &[Relu, Sigmoid], Loss::Mse, 16),
        (&[1, 7, 15, 3], &[Sigmoid, Tanh, Relu], Loss::Mse, 9),
        (&[17, 1, 9], &[Identity, Tanh], Loss::Mse, 1),
        (
            &[8, 16, 16, 16, 5],
            &[Relu, Tanh, Sigmoid, Identity],
            Loss::SoftmaxCrossEntropy,
            33,
        ),
        (&[33, 31], &[Sigmoid], Loss::Mse, 17),
        (&[12, 9, 6], &[Relu, Identity], Loss::SoftmaxCrossEntropy, 8),
    ];
    specs
        .into_iter()
        .enumerate()
        .map(|(i, (widths, activations, loss, rows))| {
            let architecture = Architecture::new(widths, activations, loss).unwrap();
            Case::random(architecture, rows, 100 + i as u64)
        })
        .collect()
}

#[test]
fn every_available_path_passes_every_check() {
    for path in Path::available() {
        for (i, case) in cases().iter().enumerate() {
            let architecture = case.network.architecture();
            let mut backend = SimdBackend::<f64>::with_path(path).unwrap();
            let reports = check_f64(&mut backend, case, i as u64);
            assert!(
                all_passed(&reports),
                "{path} f64 {architecture}: {reports:#?}"
            );
            let mut backend = SimdBackend::<f32>::with_path(path).unwrap();
            let reports = check_f32(&mut backend, case);
            assert!(
                all_passed(&reports),
                "{path} f32 {architecture}: {reports:#?}"
            );
        }
    }
}

#[test]
fn the_fused_update_passes_the_conformance_kit_on_every_path() {
    for path in Path::available() {
        let fused = move || {
            SimdBackend::<f64>::with_path(path)
                .unwrap()
                .with_fused_update(true)
        };
        assert!(fused().fuses_update());
        let report = Conformance::<f64>::new("simd-fused", fused)
            .quick()
            .without_controls()
            .run()
            .unwrap();
        assert!(report.passed(), "{path} f64: {report}");
        let fused = move || {
            SimdBackend::<f32>::with_path(path)
                .unwrap()
                .with_fused_update(true)
        };
        let report = Conformance::<f32>::new("simd-fused", fused)
            .quick()
            .without_controls()
            .run()
            .unwrap();
        assert!(report.passed(), "{path} f32: {report}");
    }
}

#[test]
fn a_fused_step_that_overflows_leaves_the_network_as_it_was() {
    use backprop_core::{Backend, Batch, Error, Network};
    let architecture = Architecture::new(
        &[3, 4, 2],
        &[Activation::Tanh, Activation::Identity],
        Loss::Mse,
    )
    .unwrap();
    for path in Path::available() {
        let mut network = Network::<f32>::init(architecture.clone(), 5);
        let before = network.params().as_slice().to_vec();
        let (x, y) = (
            [1.0f32, -2.0, 3.0, 0.5, 0.25, -1.0],
            [1e30f32, -1e30, 0.0, 1e30],
        );
        let batch = Batch::from_slices(&architecture, 2, &x, &y).unwrap();
        let mut gradient = network.zero_gradient();
        let mut backend = SimdBackend::<f32>::with_path(path)
            .unwrap()
            .with_fused_update(true);
        let error = backend
            .sgd_step(&mut network, &batch, &mut gradient, 1e10)
            .unwrap_err();
        assert!(
            matches!(error, Error::NonFiniteUpdate { .. }),
            "{path}: {error:?}"
        );
        assert_eq!(network.params().as_slice(), &before[..], "{path}");
        // A good step after it commits.
        let batch = Batch::from_slices(&architecture, 2, &x, &[0.5, -0.5, 0.0, 1.0]).unwrap();
        backend
            .sgd_step(&mut network, &batch, &mut gradient, 0.1)
            .unwrap();
        assert_ne!(network.params().as_slice(), &before[..], "{path}");
    }
}
