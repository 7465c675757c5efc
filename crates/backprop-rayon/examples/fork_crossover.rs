//! Measures where forking pays for the rayon backend: sequential faer against rayon over
//! sequential faer forced to fork, on S's and M's widths at growing batch sizes, and on L.
//!
//! Run with `cargo run --release -p backprop-rayon --example fork_crossover`,
//! or with `-- N H M BATCH [ROUNDS]` for one case. Prints, for each, the
//! median of 5 (or ROUNDS) interleaved runs of each variant, each run the
//! median of many steps (f32): 301, or 11 on L. "forked" has one partition
//! per thread and splits the first layer's weight gradient by hidden units;
//! "combined" has as many fixed partitions and combines whole gradients.

use std::num::NonZeroUsize;
use std::time::Instant;

use backprop_core::{Architecture, Backend, Batch, Network};
use backprop_faer::FaerBackend;
use backprop_rayon::{Partitions, RayonBackend};

/// The median time of one SGD step over `reps` steps after one warm-up step.
fn step_time(backend: &mut dyn Backend<f32>, widths: [usize; 3], rows: usize, reps: usize) -> f64 {
    let [n, h, m] = widths;
    let architecture = Architecture::seed(n, h, m).expect("a valid architecture");
    let inputs: Vec<f32> = (0..rows * n).map(|i| (i % 17) as f32 / 17.0).collect();
    let targets: Vec<f32> = (0..rows * m).map(|i| (i % 2) as f32).collect();
    let batch = Batch::from_slices(&architecture, rows, &inputs, &targets).expect("a valid batch");
    let mut network = Network::<f32>::init(architecture, 1);
    let mut gradient = network.zero_gradient();
    let mut step = || {
        let start = Instant::now();
        backend
            .sgd_step(&mut network, &batch, &mut gradient, 1e-3)
            .expect("a valid step");
        start.elapsed().as_secs_f64()
    };
    step();
    median((0..reps).map(|_| step()).collect())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The default cases: widths and the batch sizes to time on them.
const CASES: [([usize; 3], &[usize]); 3] = [
    ([64, 32, 10], &[8, 16, 32, 64, 128, 256]),
    ([784, 256, 10], &[8, 16, 32, 64, 128]),
    ([1024, 1024, 1024], &[1024]),
];

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|arg| arg.parse().expect("arguments: N H M BATCH [ROUNDS]"))
        .collect();
    match args[..] {
        [] => {
            for (widths, batches) in CASES {
                for &rows in batches {
                    compare(widths, rows, 5);
                }
            }
        }
        [n, h, m, rows] => compare([n, h, m], rows, 5),
        [n, h, m, rows, rounds] => compare([n, h, m], rows, rounds),
        _ => panic!("arguments: N H M BATCH [ROUNDS]"),
    }
}

/// Prints the medians of `rounds` interleaved runs of each variant on `widths` and `rows` rows.
fn compare(widths: [usize; 3], rows: usize, rounds: usize) {
    let [n, h, m] = widths;
    let flops = Architecture::seed(n, h, m).expect("valid").step_flops(rows);
    let reps = if flops > 1e9 { 11 } else { 301 };
    let (mut sequential, mut forked, mut combined) = (Vec::new(), Vec::new(), Vec::new());
    let threads = NonZeroUsize::new(rayon::current_num_threads()).expect("a thread");
    for _ in 0..rounds {
        sequential.push(step_time(
            &mut FaerBackend::sequential(),
            widths,
            rows,
            reps,
        ));
        let forking = || {
            RayonBackend::splitting_first_layer("forked", FaerBackend::<f32>::sequential)
                .with_parallel_threshold(0.0)
                .with_min_rows_per_partition(1)
        };
        forked.push(step_time(&mut forking(), widths, rows, reps));
        let mut whole = forking().with_partitions(Partitions::Fixed(threads));
        combined.push(step_time(&mut whole, widths, rows, reps));
    }
    let ratios: Vec<String> = sequential
        .iter()
        .zip(&forked)
        .map(|(s, f)| format!("{:.2}", s / f))
        .collect();
    let (sequential, forked, combined) = (median(sequential), median(forked), median(combined));
    println!(
        "{n}-{h}-{m} batch {rows:4} ({flops:9.3e} flop): sequential {:8.1} us, forked {:8.1} us, combined {:8.1} us, forked/sequential {:.2}",
        sequential * 1e6,
        forked * 1e6,
        combined * 1e6,
        forked / sequential
    );
    if rounds > 5 {
        println!("  speed-up of each round: {}", ratios.join(" "));
    }
}
