//! Measures which kernel is fastest per architecture and batch size, and prints the constants
//! the `auto` backend chooses by; or times given cases, `auto` among the contenders.
//!
//! `cargo run --release -p backprop --example auto_thresholds` times a grid of
//! sigmoid/MSE networks (the sweep on M's widths, S's and L's widths, wider
//! and deeper ones; about ten minutes, `-- --quick` for fewer rounds): one
//! `f32` SGD step of every candidate of `auto`, interleaved in rounds, the
//! median per step of each, the winner and what `auto` picks; then it derives
//! `auto`'s constants from the winners.
//!
//! `cargo run --release -p backprop --example auto_thresholds -- 784-256-10 128 [ROUNDS]`
//! (any number of `WIDTHS BATCH` pairs, then optionally the rounds) times the
//! given cases instead, with `auto` and `faer-sequential` beside the candidates,
//! and prints each one's median and its ratio to the fastest of the others.

use std::time::Instant;

use backprop::{
    Activation, Architecture, Backend, BackendKind, Batch, FaerBackend, Loss, Network,
    UNITS_MAX_ROWS, auto, first_layer_dominates,
};

/// The kernels `auto` chooses among.
const CANDIDATES: [BackendKind; 4] = [
    BackendKind::Simd,
    BackendKind::RayonSimd,
    BackendKind::Faer,
    BackendKind::RayonFaer,
];

/// The grid: widths and batch sizes.
const GRID: [(&[usize], &[usize]); 7] = [
    (
        &[784, 256, 10],
        &[1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096],
    ),
    (&[64, 32, 10], &[1, 8, 16, 32, 64, 128, 256, 1024]),
    (&[256, 256, 256], &[8, 64, 256, 1024]),
    (&[512, 512, 512], &[64, 256, 1024]),
    (&[1024, 1024, 1024], &[64, 256, 1024]),
    (&[2048, 512, 10], &[64, 256]),
    (&[64, 128, 128, 128, 10], &[16, 64, 256, 1024]),
];

/// The median of some values.
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// A sigmoid/MSE architecture of these widths.
fn architecture(widths: &[usize]) -> Architecture {
    let activations = vec![Activation::Sigmoid; widths.len() - 1];
    Architecture::new(widths, &activations, Loss::Mse).expect("a valid architecture")
}

/// Widths written as `784-256-10`.
fn label(widths: &[usize]) -> String {
    let widths: Vec<String> = widths.iter().map(usize::to_string).collect();
    widths.join("-")
}

/// The median seconds per step of each backend on one case, over `rounds`
/// interleaved rounds, each the median of a loop of steps (about 20 ms of
/// steps at 100 GFLOP/s).
fn measure(
    widths: &[usize],
    rows: usize,
    rounds: usize,
    backends: &mut [Box<dyn Backend<f32>>],
) -> Vec<f64> {
    let architecture = architecture(widths);
    let (n, m) = (architecture.input_width(), architecture.output_width());
    let inputs: Vec<f32> = (0..rows * n).map(|i| (i * 7 % 17) as f32 / 17.0).collect();
    let targets: Vec<f32> = (0..rows * m).map(|i| (i % 2) as f32).collect();
    let batch = Batch::from_slices(&architecture, rows, &inputs, &targets).expect("a valid batch");
    let mut network = Network::<f32>::init(architecture.clone(), 1);
    let mut gradient = network.zero_gradient();
    let reps = ((2e9 / architecture.step_flops(rows)) as usize).clamp(3, 400);
    let mut times = vec![Vec::new(); backends.len()];
    for _ in 0..rounds {
        for (backend, times) in backends.iter_mut().zip(&mut times) {
            let mut step = || {
                let start = Instant::now();
                backend
                    .sgd_step(&mut network, &batch, &mut gradient, 1e-6)
                    .expect("a valid step");
                start.elapsed().as_secs_f64()
            };
            step();
            times.push(median((0..reps).map(|_| step()).collect()));
        }
    }
    times.into_iter().map(median).collect()
}

/// The index of the smallest value.
fn fastest(times: &[f64]) -> usize {
    (0..times.len())
        .min_by(|&a, &b| times[a].total_cmp(&times[b]))
        .unwrap_or(0)
}

/// One case of the grid: widths, batch, the candidates' medians.
struct Measured {
    widths: Vec<usize>,
    rows: usize,
    times: Vec<f64>,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|arg| arg == "--quick");
    let values: Vec<&String> = args.iter().filter(|arg| !arg.starts_with("--")).collect();
    if values.is_empty() {
        grid(if quick { 3 } else { 7 });
    } else {
        let rounds = if values.len() % 2 == 1 {
            values[values.len() - 1]
                .parse()
                .expect("a number of rounds")
        } else {
            11
        };
        let cases: Vec<(Vec<usize>, usize)> = values
            .chunks_exact(2)
            .map(|pair| {
                let widths = pair[0]
                    .split('-')
                    .map(|w| w.parse().expect("widths such as 784-256-10"))
                    .collect();
                (widths, pair[1].parse().expect("a batch size"))
            })
            .collect();
        for (widths, rows) in cases {
            case(&widths, rows, rounds);
        }
    }
}

/// Times one case with `auto` and `faer-sequential` beside the candidates.
fn case(widths: &[usize], rows: usize, rounds: usize) {
    let mut names: Vec<&str> = CANDIDATES.iter().map(|k| k.name()).collect();
    let mut backends: Vec<Box<dyn Backend<f32>>> = CANDIDATES.iter().map(|k| k.create()).collect();
    names.extend(["faer-sequential", "auto"]);
    backends.push(Box::new(FaerBackend::<f32>::sequential()));
    backends.push(BackendKind::Auto.create());
    let times = measure(widths, rows, rounds, &mut backends);
    let best = fastest(&times[..times.len() - 1]);
    let flops = architecture(widths).step_flops(rows);
    println!(
        "{} batch {rows}, f32, medians of {rounds} interleaved rounds (auto runs {}):",
        label(widths),
        auto::choose(&architecture(widths), rows)
    );
    for (name, time) in names.iter().zip(&times) {
        println!(
            "  {name:<16} {:>10.1} us {:>7.1} GFLOP/s  {:.2}x the fastest fixed backend ({})",
            time * 1e6,
            flops / time * 1e-9,
            times[best] / time,
            names[best]
        );
    }
}

/// Times the grid and derives the constants.
fn grid(rounds: usize) {
    println!(
        "f32 SGD step, sigmoid/MSE, medians of {rounds} interleaved rounds; us per step\n\n{:<22} {:>6} {}  {:<11} {:<11} {:>9}",
        "widths",
        "batch",
        CANDIDATES
            .iter()
            .map(|k| format!("{:>11}", k.name()))
            .collect::<String>(),
        "fastest",
        "auto",
        "auto/best"
    );
    let mut results = Vec::new();
    for (widths, batches) in GRID {
        for &rows in batches {
            let mut backends: Vec<Box<dyn Backend<f32>>> =
                CANDIDATES.iter().map(|k| k.create()).collect();
            let times = measure(widths, rows, rounds, &mut backends);
            let best = fastest(&times);
            let choice = auto::choose(&architecture(widths), rows);
            let picked = CANDIDATES.iter().position(|&k| k == choice).unwrap_or(best);
            println!(
                "{:<22} {rows:>6} {}  {:<11} {:<11} {:>9.2}",
                label(widths),
                times
                    .iter()
                    .map(|t| format!("{:>11.1}", t * 1e6))
                    .collect::<String>(),
                CANDIDATES[best].name(),
                choice.name(),
                times[picked] / times[best],
            );
            results.push(Measured {
                widths: widths.to_vec(),
                rows,
                times,
            });
        }
    }
    derive(&results);
}

/// Derives `auto`'s constants from the winners and prints them.
fn derive(results: &[Measured]) {
    let simd = |m: &Measured| {
        matches!(
            CANDIDATES[fastest(&m.times)],
            BackendKind::Simd | BackendKind::RayonSimd
        )
    };
    let parallel = |m: &Measured| {
        matches!(
            CANDIDATES[fastest(&m.times)],
            BackendKind::RayonSimd | BackendKind::RayonFaer
        )
    };
    let largest = |m: &Measured| {
        m.widths
            .windows(2)
            .map(|w| m.rows * w[0] * w[1])
            .max()
            .unwrap_or(0)
    };
    let flops = |m: &Measured| architecture(&m.widths).step_flops(m.rows);
    let cut =
        |m: &Measured| m.rows <= UNITS_MAX_ROWS && first_layer_dominates(&architecture(&m.widths));
    let min_batch = results
        .iter()
        .filter(|m| simd(m) && !cut(m))
        .map(|m| m.rows)
        .min();
    let units_min_batch = results
        .iter()
        .filter(|m| simd(m) && cut(m))
        .map(|m| m.rows)
        .min();
    let simd_up_to = results
        .iter()
        .filter(|m| simd(m))
        .map(largest)
        .max()
        .unwrap_or(0);
    let faer_from = results
        .iter()
        .filter(|m| !simd(m) && m.rows >= min_batch.unwrap_or(usize::MAX))
        .map(largest)
        .filter(|&p| p > 0)
        .min()
        .unwrap_or(0);
    let parallel_from = results
        .iter()
        .filter(|m| parallel(m) && m.rows >= 8)
        .map(flops)
        .fold(f64::INFINITY, f64::min);
    let sequential_up_to = results
        .iter()
        .filter(|m| !parallel(m))
        .map(flops)
        .fold(0.0, f64::max);
    println!(
        "\nderived from the winners above (each a range; a constant between its ends splits the grid as measured):"
    );
    println!(
        "  AUTO_SIMD_MIN_BATCH: the smallest batch a SIMD kernel won where rayon-simd does not cut the first layer by units: {min_batch:?}"
    );
    println!(
        "  AUTO_UNITS_MIN_BATCH: the smallest batch a SIMD kernel won where it does: {units_min_batch:?}"
    );
    println!(
        "  AUTO_SIMD_MAX_PRODUCT: largest product B d_(l-1) d_l of a case a SIMD kernel won {simd_up_to} (2^{:.1}), smallest of a case faer won from that batch on {faer_from} (2^{:.1})",
        (simd_up_to as f64).log2(),
        (faer_from as f64).log2()
    );
    println!(
        "  AUTO_PARALLEL_MIN_FLOPS: least work a parallel kernel won (batch 8 or more) {parallel_from:.3e}, most a sequential one won {sequential_up_to:.3e}"
    );
    let worst = results
        .iter()
        .map(|m| {
            let choice = auto::choose(&architecture(&m.widths), m.rows);
            let picked = CANDIDATES.iter().position(|&k| k == choice).unwrap_or(0);
            m.times[picked] / m.times[fastest(&m.times)]
        })
        .fold(0.0, f64::max);
    println!(
        "  with the current constants, auto's worst ratio to the fastest candidate on this grid: {worst:.3}"
    );
}
