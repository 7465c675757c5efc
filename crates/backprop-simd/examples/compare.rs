//! Times the SIMD backend on each path against sequential faer, interleaved in one run.
//!
//! Run with `cargo run --release -p backprop-simd --example compare -- N H M BATCH [ROUNDS]`
//! (default: the S shape, 64 32 10 64, 21 rounds). Each round times a loop
//! of SGD steps of every contender in turn (f32, then f64) and keeps its
//! median step; the report gives, per contender, the median over the rounds
//! and its ratio to `faer-sequential`.

use std::time::Instant;

use backprop_core::{Architecture, Backend, Batch, Network, Scalar, synthetic_batch};
use backprop_faer::{FaerBackend, FaerScalar};
use backprop_simd::{Path, SimdBackend, SimdScalar};

/// The median of some values.
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The median seconds of one SGD step over `reps` steps, after one warm-up step.
fn step_time<T: Scalar>(
    backend: &mut dyn Backend<T>,
    network: &mut Network<T>,
    batch: &Batch<'_, T>,
    reps: usize,
) -> f64 {
    let mut gradient = network.zero_gradient();
    let rate = T::from_f64(1e-3);
    let mut step = || {
        let start = Instant::now();
        backend
            .sgd_step(network, batch, &mut gradient, rate)
            .expect("a valid step");
        start.elapsed().as_secs_f64()
    };
    step();
    median((0..reps).map(|_| step()).collect())
}

fn compare<T: SimdScalar + FaerScalar>(widths: [usize; 3], rows: usize, rounds: usize) {
    let [n, h, m] = widths;
    let architecture = Architecture::seed(n, h, m).expect("a valid architecture");
    let (inputs, targets) = synthetic_batch::<T>(rows, n, m).expect("a batch that fits");
    let batch = Batch::from_slices(&architecture, rows, &inputs, &targets).expect("a valid batch");
    let mut network = Network::<T>::init(architecture.clone(), 1);
    let flops = architecture.step_flops(rows);
    let reps = ((2e8 / flops) as usize).clamp(5, 2001);

    let mut contenders: Vec<(String, Box<dyn Backend<T>>)> = vec![(
        "faer-sequential".to_owned(),
        Box::new(FaerBackend::<T>::sequential()),
    )];
    for path in Path::available() {
        let backend = SimdBackend::<T>::with_path(path).expect("an available path");
        contenders.push((format!("simd ({path})"), Box::new(backend)));
    }
    let mut times = vec![Vec::new(); contenders.len()];
    for _ in 0..rounds {
        for ((_, backend), times) in contenders.iter_mut().zip(&mut times) {
            times.push(step_time(&mut **backend, &mut network, &batch, reps));
        }
    }
    let baseline = median(times[0].clone());
    println!(
        "{n}-{h}-{m} batch {rows} {}: medians of {rounds} rounds of {reps} steps",
        T::NAME
    );
    for ((name, _), times) in contenders.iter().zip(times) {
        let time = median(times);
        println!(
            "  {name:<18} {:>10.2} us  {:>7.1} GFLOP/s  {:.2}x faer-sequential",
            time * 1e6,
            flops / time * 1e-9,
            baseline / time
        );
    }
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|arg| arg.parse().expect("arguments: N H M BATCH [ROUNDS]"))
        .collect();
    let (widths, rows, rounds) = match args[..] {
        [] => ([64, 32, 10], 64, 21),
        [n, h, m, rows] => ([n, h, m], rows, 21),
        [n, h, m, rows, rounds] => ([n, h, m], rows, rounds),
        _ => panic!("arguments: N H M BATCH [ROUNDS]"),
    };
    compare::<f32>(widths, rows, rounds);
    compare::<f64>(widths, rows, rounds);
}
