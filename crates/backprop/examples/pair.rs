//! Times two backends of the facade against each other on one network and batch, alternating
//! blocks of steps in one process, and prints the median of their ratios.
//!
//! `cargo run --release -p backprop --example pair -- rayon-faer rayon-simd 128 15` alternates
//! `rayon-faer` and `rayon-simd` on M (784-256-10, `f32`, batch 128) for 15 seconds: each block is
//! 21 SGD steps of one backend, timed one by one, and gives its median; each pair of blocks gives
//! the first backend's median over the second's. It prints both backends' medians over all blocks
//! and the median (and quartiles) of the pairs' ratios, which a change of the machine's speed
//! between pairs leaves alone. `-- A B BATCH SECONDS [f32|f64] [WIDTHS]` takes any two backend
//! names, the dtype and widths such as `64-32-10`.

use std::time::Instant;

use backprop::{Architecture, BackendKind, Batch, Network, Precision, synthetic_batch};

/// Steps per block.
const BLOCK: usize = 21;

/// The value at `q` (0 to 1) of sorted `values`.
fn quantile(values: &[f64], q: f64) -> f64 {
    values[((values.len() - 1) as f64 * q).round() as usize]
}

/// Alternates `kinds` on `widths` at `rows` rows for `seconds`, and prints the result.
fn compare<T: Precision>(kinds: [BackendKind; 2], widths: &[usize], rows: usize, seconds: f64) {
    let architecture = Architecture::seed(widths[0], widths[1], widths[2]).expect("valid widths");
    let (n, m) = (widths[0], widths[2]);
    let (inputs, targets) = synthetic_batch::<T>(rows, n, m).expect("a batch that fits");
    let batch = Batch::from_slices(&architecture, rows, &inputs, &targets).expect("a batch");
    let mut network = Network::<T>::init(architecture, 1);
    let mut gradient = network.zero_gradient();
    let mut backends = kinds.map(|kind| kind.create::<T>());
    let mut medians = [Vec::new(), Vec::new()];
    let mut ratios = Vec::new();
    let start = Instant::now();
    while start.elapsed().as_secs_f64() < seconds {
        for (backend, medians) in backends.iter_mut().zip(&mut medians) {
            let mut times: Vec<f64> = (0..BLOCK)
                .map(|_| {
                    let step = Instant::now();
                    backend
                        .sgd_step(&mut network, &batch, &mut gradient, T::from_f64(1e-9))
                        .expect("a valid step");
                    step.elapsed().as_secs_f64()
                })
                .collect();
            times.sort_by(f64::total_cmp);
            medians.push(times[BLOCK / 2]);
        }
        let last = |medians: &Vec<f64>| medians[medians.len() - 1];
        ratios.push(last(&medians[0]) / last(&medians[1]));
    }
    for values in medians.iter_mut().chain([&mut ratios]) {
        values.sort_by(f64::total_cmp);
    }
    let [a, b] = kinds.map(BackendKind::name);
    println!(
        "{} pairs: {a} {:.1} us, {b} {:.1} us; {a}/{b} median {:.3} (q1 {:.3} q3 {:.3})",
        ratios.len(),
        quantile(&medians[0], 0.5) * 1e6,
        quantile(&medians[1], 0.5) * 1e6,
        quantile(&ratios, 0.5),
        quantile(&ratios, 0.25),
        quantile(&ratios, 0.75),
    );
}

fn main() {
    let usage = "arguments: A B BATCH SECONDS [f32|f64] [WIDTHS, such as 784-256-10]";
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [a, b, rows, seconds, rest @ ..] = &args[..] else {
        panic!("{usage}");
    };
    let kind = |name: &str| name.parse::<BackendKind>().expect(usage);
    let kinds = [kind(a), kind(b)];
    let rows: usize = rows.parse().expect(usage);
    let seconds: f64 = seconds.parse().expect(usage);
    let widths: Vec<usize> = rest
        .get(1)
        .map_or("784-256-10", String::as_str)
        .split('-')
        .map(|width| width.parse().expect(usage))
        .collect();
    assert!(widths.len() == 3, "{usage}");
    match rest.first().map(String::as_str) {
        None | Some("f32") => compare::<f32>(kinds, &widths, rows, seconds),
        Some("f64") => compare::<f64>(kinds, &widths, rows, seconds),
        Some(_) => panic!("{usage}"),
    }
}
