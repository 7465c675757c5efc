//! Proves that a step on a shape seen before allocates nothing, with a counting global allocator.
//!
//! This is its own test binary so that the counting allocator affects no other test.
//! Allocations are counted per thread: every backend checked here runs the
//! whole step on the calling thread, while threads it does not own (such as
//! rayon's workers starting up) may allocate at any time.

use backprop_core::{Activation, Architecture, Backend, Batch, Inputs, Loss, MatrixRef, Network};
use backprop_faer::{FaerBackend, Parallelism};
use backprop_verify::{CountingAllocator, allocations_during};

#[global_allocator]
static COUNTING: CountingAllocator = CountingAllocator;

fn check_steps_allocate_nothing<T: backprop_faer::FaerScalar>() {
    use Activation::*;
    // Products both below and above faer's nano-GEMM size, every activation,
    // a width-1 layer (matrix-vector products), and a batch large enough for
    // the transposed delta, sequentially; and the
    // benchmark shape S with `Auto`, which runs it all on the calling thread.
    let sequential = Parallelism::Sequential;
    for (widths, activations, loss, rows, parallelism) in [
        (
            &[784, 256, 10][..],
            &[Sigmoid, Sigmoid][..],
            Loss::Mse,
            128,
            sequential,
        ),
        (
            &[20, 33, 1, 17, 9],
            &[Tanh, Relu, Sigmoid, Identity],
            Loss::SoftmaxCrossEntropy,
            50,
            sequential,
        ),
        (&[5, 3, 2], &[Relu, Tanh], Loss::Mse, 1, sequential),
        // A batch whose weight gradients go through delta^T copied feature-major.
        (
            &[33, 20, 7],
            &[Sigmoid, Tanh],
            Loss::Mse,
            backprop_faer::TRANSPOSE_MIN_INNER + 44,
            sequential,
        ),
        (
            &[64, 32, 10],
            &[Sigmoid, Sigmoid],
            Loss::Mse,
            64,
            Parallelism::Auto,
        ),
    ] {
        let architecture = Architecture::new(widths, activations, loss).unwrap();
        let network: Network<T> = Network::<f64>::init(architecture, 7).to_precision();
        let architecture = network.architecture();
        let (n, m) = (architecture.input_width(), architecture.output_width());
        let x: Vec<T> = (0..rows * n)
            .map(|i| T::from_f64((i % 13) as f64 / 13.0))
            .collect();
        let y: Vec<T> = (0..rows * m)
            .map(|i| T::from_f64((i % 3) as f64 / 3.0))
            .collect();
        let batch = Batch::from_slices(architecture, rows, &x, &y).unwrap();
        let inputs = Inputs::new(MatrixRef::new(&x, rows, n).unwrap()).unwrap();
        let mut outputs = vec![T::ZERO; rows * m];
        let mut gradient = network.zero_gradient();
        let mut faer = FaerBackend::<T>::with_parallelism(parallelism);

        // Warm-up: sizes the scratch and faer's per-thread packing buffers.
        faer.loss_and_gradient(&network, &batch, &mut gradient)
            .unwrap();
        faer.forward(&network, &inputs, &mut outputs).unwrap();

        let count = allocations_during(|| {
            for _ in 0..5 {
                faer.loss_and_gradient(&network, &batch, &mut gradient)
                    .unwrap();
                faer.forward(&network, &inputs, &mut outputs).unwrap();
            }
        })
        .expect("the counting allocator is installed");
        assert_eq!(
            count.this_thread,
            0,
            "{architecture} rows {rows} {} {parallelism:?}",
            T::NAME
        );
    }
}

#[test]
fn steps_after_the_first_allocate_nothing() {
    check_steps_allocate_nothing::<f32>();
    check_steps_allocate_nothing::<f64>();
}
