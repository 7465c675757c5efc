//! Every check of the verification protocol on each path this CPU can run, forced with
//! `SimdBackend::with_path`: both oracles, the reference, the golden loss, the batch law
//! and determinism, in `f64` and `f32`, on seeded random cases.

use backprop_core::{Activation, Architecture, Loss};
use backprop_simd::{Path, SimdBackend};
use backprop_verify::Case;
use backprop_verify::suite::{all_passed, check_f32, check_f64};

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
