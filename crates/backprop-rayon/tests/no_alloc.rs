//! Proves that a step that forks, on a shape seen before, allocates nothing on any thread, with a
//! counting global allocator.
//!
//! This is its own test binary so that the counting allocator affects no other test.
//! Allocations are counted on every thread: the step runs on the calling
//! thread and on the pool's helpers. The helpers linger for a second between
//! steps, so that none has to be spawned anew (which allocates the job).

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use backprop_core::{Activation, Architecture, Backend, Batch, Inputs, Loss, MatrixRef, Network};
use backprop_faer::FaerBackend;
use backprop_rayon::{Partitions, RayonBackend};
use backprop_simd::SimdBackend;
use backprop_verify::{CountingAllocator, allocations_during};

#[global_allocator]
static COUNTING: CountingAllocator = CountingAllocator;

#[test]
fn forking_steps_after_the_first_allocate_nothing() {
    // The first layer split (the default), whole gradients combined in
    // fixed partitions, a network large enough for the update and the
    // combination to run in pieces on the pool, and the first layer cut by
    // hidden units (over SIMD workers).
    let two = NonZeroUsize::new(2).expect("two");
    for (widths, partitions, rows, by_units) in [
        (&[30, 20, 5][..], Partitions::PerThread, 64, false),
        (&[30, 20, 5], Partitions::Fixed(two), 64, false),
        (&[200, 300, 10], Partitions::PerThread, 40, false),
        (&[100, 20, 5], Partitions::PerThread, 32, true),
    ] {
        let activations = [Activation::Tanh, Activation::Sigmoid];
        let architecture = Architecture::new(widths, &activations, Loss::Mse).expect("valid");
        let mut network = Network::<f64>::init(architecture.clone(), 5);
        let (n, m) = (architecture.input_width(), architecture.output_width());
        let x: Vec<f64> = (0..rows * n).map(|i| (i % 13) as f64 / 13.0).collect();
        let y: Vec<f64> = (0..rows * m).map(|i| (i % 3) as f64 / 3.0).collect();
        let batch = Batch::from_slices(&architecture, rows, &x, &y).expect("a batch");
        let inputs = Inputs::new(MatrixRef::new(&x, rows, n).expect("X")).expect("inputs");
        let mut outputs = vec![0.0; rows * m];
        let mut gradient = network.zero_gradient();
        // A pool of its own, so that no helper of an earlier case spins on it.
        let pool = Arc::new(
            rayon::ThreadPoolBuilder::new()
                .num_threads(2)
                .build()
                .expect("a pool"),
        );
        let mut backend: Box<dyn Backend<f64>> = if by_units {
            Box::new(
                RayonBackend::first_layer_by_units("rayon-simd", SimdBackend::<f64>::new)
                    .with_pool(pool)
                    .with_parallel_threshold(0.0)
                    .with_linger(Duration::from_secs(1)),
            )
        } else {
            Box::new(
                RayonBackend::splitting_first_layer("rayon-faer", FaerBackend::<f64>::sequential)
                    .with_pool(pool)
                    .with_partitions(partitions)
                    .with_parallel_threshold(0.0)
                    .with_linger(Duration::from_secs(1)),
            )
        };

        // A gradient, a forward pass and an SGD step, `count` times.
        let mut steps = |count: usize| {
            for _ in 0..count {
                backend
                    .loss_and_gradient(&network, &batch, &mut gradient)
                    .expect("a gradient");
                backend
                    .forward(&network, &inputs, &mut outputs)
                    .expect("a forward pass");
                backend
                    .sgd_step(&mut network, &batch, &mut gradient, 1e-3)
                    .expect("a step");
            }
        };

        // Warm-up: the workers, their scratch and accumulators, the split
        // first layer's delta (and activations and slopes, cut by units),
        // the helpers, and the network's spare buffer.
        steps(2);

        // faer keeps packing buffers per thread, made the first time a
        // thread runs a product of a size; which thread takes which item
        // changes from step to step, so a thread may first run one after
        // the warm-up. Those come once; a step's own allocation would come
        // on every step. So: three rounds of five steps in a row must
        // allocate nothing, within twenty rounds.
        let mut rounds = Vec::new();
        while rounds.len() < 20 && !rounds.ends_with(&[0, 0, 0]) {
            let counted = allocations_during(|| steps(5));
            rounds.push(
                counted
                    .expect("the counting allocator is installed")
                    .all_threads,
            );
        }
        assert!(
            rounds.ends_with(&[0, 0, 0]),
            "{architecture} rows {rows} {partitions:?}: allocations per round {rounds:?}"
        );
    }
}
