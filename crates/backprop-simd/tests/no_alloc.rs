//! Proves that a step on a shape seen before allocates nothing, on every path this CPU has,
//! with a counting global allocator.
//!
//! This is its own test binary so that the counting allocator affects no other test.

use backprop_core::{Activation, Architecture, Backend, Batch, Inputs, Loss, MatrixRef, Network};
use backprop_simd::{Path, SimdBackend, SimdScalar};
use backprop_verify::{CountingAllocator, allocations_during};

#[global_allocator]
static COUNTING: CountingAllocator = CountingAllocator;

fn check_steps_allocate_nothing<T: SimdScalar>(path: Path) {
    use Activation::*;
    // The benchmark shapes, a deep network with every activation, a width-1
    // layer and softmax cross-entropy, and a single sample.
    for (widths, activations, loss, rows) in [
        (&[784, 256, 10][..], &[Sigmoid, Sigmoid][..], Loss::Mse, 128),
        (&[64, 32, 10], &[Sigmoid, Sigmoid], Loss::Mse, 64),
        (
            &[20, 33, 1, 17, 9],
            &[Tanh, Relu, Sigmoid, Identity],
            Loss::SoftmaxCrossEntropy,
            50,
        ),
        (&[5, 3, 2], &[Relu, Tanh], Loss::Mse, 1),
    ] {
        let architecture = Architecture::new(widths, activations, loss).unwrap();
        let mut network: Network<T> = Network::<f64>::init(architecture, 7).to_precision();
        let architecture = network.architecture().clone();
        let (n, m) = (architecture.input_width(), architecture.output_width());
        let x: Vec<T> = (0..rows * n)
            .map(|i| T::from_f64((i % 13) as f64 / 13.0))
            .collect();
        let y: Vec<T> = (0..rows * m)
            .map(|i| T::from_f64((i % 3) as f64 / 3.0))
            .collect();
        let batch = Batch::from_slices(&architecture, rows, &x, &y).unwrap();
        let inputs = Inputs::new(MatrixRef::new(&x, rows, n).unwrap()).unwrap();
        let mut outputs = vec![T::ZERO; rows * m];
        let mut gradient = network.zero_gradient();
        let mut simd = SimdBackend::<T>::with_path(path).unwrap();
        let rate = T::from_f64(1e-3);

        // Warm-up: sizes the scratch, and the first step gives the network
        // the spare buffer every step writes its update into.
        simd.loss_and_gradient(&network, &batch, &mut gradient)
            .unwrap();
        simd.sgd_step(&mut network, &batch, &mut gradient, rate)
            .unwrap();

        let count = allocations_during(|| {
            for _ in 0..5 {
                simd.loss_and_gradient(&network, &batch, &mut gradient)
                    .unwrap();
                simd.forward(&network, &inputs, &mut outputs).unwrap();
                simd.sgd_step(&mut network, &batch, &mut gradient, rate)
                    .unwrap();
            }
        })
        .expect("the counting allocator is installed");
        assert_eq!(
            count.this_thread,
            0,
            "{architecture} rows {rows} {} {path}",
            T::NAME
        );
    }
}

#[test]
fn steps_after_the_first_allocate_nothing() {
    for path in Path::available() {
        check_steps_allocate_nothing::<f32>(path);
        check_steps_allocate_nothing::<f64>(path);
    }
}
