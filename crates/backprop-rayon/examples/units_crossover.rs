//! Measures where cutting the first layer by hidden units pays: rayon over SIMD workers with the
//! cut against the same with the batch partitioned, beside rayon-faer and one SIMD thread.
//!
//! Run with `cargo run --release -p backprop-rayon --example units_crossover`
//! for M's widths (784-256-10) at batches 1 to 256, or with `-- N H M
//! BATCH,BATCH,... [ROUNDS] [f32|f64]` for other cases. Each round times
//! every variant in turn on the same network and batch (`f32` unless
//! given): two warm-up steps, then the median of 201 SGD steps; the summary
//! gives the median over the rounds (15 unless given) and each variant's
//! ratio to the partitioned one. "units" cuts the first layer by units at any batch
//! (`with_units_max_rows(usize::MAX)`), "partitioned" never does
//! (`with_units_max_rows(0)`), both forking for every batch of more than
//! one row; the default `rayon-simd` switches from the one to the other at
//! `UNITS_MAX_ROWS` rows.

use std::time::Instant;

use backprop_core::{Architecture, Backend, Batch, Network, Scalar, synthetic_batch};
use backprop_faer::{FaerBackend, FaerScalar};
use backprop_rayon::{RayonBackend, UNITS_MAX_ROWS};
use backprop_simd::{SimdBackend, SimdScalar};

/// The median of some values.
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Forks for every batch of more than one row.
fn forking<T: Scalar, B: Backend<T>>(backend: RayonBackend<T, B>) -> RayonBackend<T, B> {
    backend
        .with_parallel_threshold(0.0)
        .with_min_rows_per_partition(1)
}

/// Times every variant on `widths` at `rows`, `rounds` interleaved rounds.
fn compare<T: SimdScalar + FaerScalar>(widths: [usize; 3], rows: usize, rounds: usize) {
    let [n, h, m] = widths;
    let architecture = Architecture::seed(n, h, m).expect("a valid architecture");
    let (inputs, targets) = synthetic_batch::<T>(rows, n, m).expect("a batch that fits");
    let batch = Batch::from_slices(&architecture, rows, &inputs, &targets).expect("a batch");
    let mut network = Network::<T>::init(architecture, 1);
    let mut gradient = network.zero_gradient();
    let units = RayonBackend::first_layer_by_units("units", SimdBackend::<T>::new);
    let partitioned = RayonBackend::first_layer_by_units("partitioned", SimdBackend::<T>::new);
    let mut variants: Vec<(&str, Box<dyn Backend<T>>)> = vec![
        (
            "units",
            Box::new(forking(units.with_units_max_rows(usize::MAX))),
        ),
        (
            "partitioned",
            Box::new(forking(partitioned.with_units_max_rows(0))),
        ),
        (
            "rayon-faer",
            Box::new(RayonBackend::splitting_first_layer(
                "rayon-faer",
                FaerBackend::<T>::sequential,
            )),
        ),
        ("simd", Box::new(SimdBackend::<T>::new())),
    ];
    let mut times = vec![Vec::new(); variants.len()];
    for _ in 0..rounds {
        for ((_, backend), times) in variants.iter_mut().zip(&mut times) {
            let mut step = || {
                let start = Instant::now();
                backend
                    .sgd_step(&mut network, &batch, &mut gradient, T::from_f64(1e-6))
                    .expect("a valid step");
                start.elapsed().as_secs_f64()
            };
            step();
            step();
            times.push(median((0..201).map(|_| step()).collect()));
        }
    }
    let medians: Vec<f64> = times.into_iter().map(median).collect();
    let dtype = std::any::type_name::<T>();
    print!("{n}-{h}-{m} batch {rows:>4} ({dtype}, medians of {rounds} rounds):");
    for ((name, _), time) in variants.iter().zip(&medians) {
        print!(
            "  {name} {:>8.1} us ({:.2}x)",
            time * 1e6,
            medians[1] / time
        );
    }
    println!();
}

fn main() {
    let usage = "arguments: N H M BATCH,BATCH,... [ROUNDS] [f32|f64]";
    let args: Vec<String> = std::env::args().skip(1).collect();
    println!("UNITS_MAX_ROWS = {UNITS_MAX_ROWS}");
    if args.is_empty() {
        for rows in [1, 2, 4, 8, 16, 32, 48, 64, 96, 128, 160, 192, 256] {
            compare::<f32>([784, 256, 10], rows, 15);
        }
        return;
    }
    let number = |arg: &str| arg.parse::<usize>().expect(usage);
    let [n, h, m, batches, rest @ ..] = &args[..] else {
        panic!("{usage}");
    };
    let rounds = rest.first().map_or(15, |rounds| number(rounds));
    let widths = [number(n), number(h), number(m)];
    for rows in batches.split(',') {
        match rest.get(1).map(String::as_str) {
            None | Some("f32") => compare::<f32>(widths, number(rows), rounds),
            Some("f64") => compare::<f64>(widths, number(rows), rounds),
            Some(_) => panic!("{usage}"),
        }
    }
}
