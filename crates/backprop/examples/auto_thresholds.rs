//! Measures which kernel is fastest per architecture and batch size, and prints the constants
//! the `auto` backend chooses by.
//!
//! Run with `cargo run --release -p backprop --example auto_thresholds` (about four
//! minutes; `-- --quick` for fewer rounds). For each case of a grid of sigmoid/MSE
//! networks (the sweep on M's widths, S's and L's widths, and wider and deeper
//! ones) it times one `f32` SGD step of every candidate kernel, interleaved in
//! rounds, and prints the median per step of each, the winner and what `auto`
//! picks; then it derives the constants of `backprop::auto` from the winners.

use std::time::Instant;

use backprop::{Architecture, Backend, BackendKind, Batch, Network, auto};

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

/// One case's result: the median seconds per step of each candidate.
struct Measured {
    widths: Vec<usize>,
    rows: usize,
    times: Vec<f64>,
}

impl Measured {
    fn fastest(&self) -> usize {
        (0..self.times.len())
            .min_by(|&a, &b| self.times[a].total_cmp(&self.times[b]))
            .unwrap_or(0)
    }
}

/// Times every candidate on one case, `rounds` interleaved rounds.
fn measure(widths: &[usize], rows: usize, rounds: usize) -> Measured {
    let activations = vec![backprop::Activation::Sigmoid; widths.len() - 1];
    let architecture =
        Architecture::new(widths, &activations, backprop::Loss::Mse).expect("a valid architecture");
    let (n, m) = (architecture.input_width(), architecture.output_width());
    let inputs: Vec<f32> = (0..rows * n).map(|i| (i * 7 % 17) as f32 / 17.0).collect();
    let targets: Vec<f32> = (0..rows * m).map(|i| (i % 2) as f32).collect();
    let batch = Batch::from_slices(&architecture, rows, &inputs, &targets).expect("a valid batch");
    let mut network = Network::<f32>::init(architecture.clone(), 1);
    let mut gradient = network.zero_gradient();
    // About 20 ms of steps per candidate and round at 100 GFLOP/s.
    let reps = ((2e9 / architecture.step_flops(rows)) as usize).clamp(3, 400);
    let mut backends: Vec<Box<dyn Backend<f32>>> = CANDIDATES.iter().map(|k| k.create()).collect();
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
    Measured {
        widths: widths.to_vec(),
        rows,
        times: times.into_iter().map(median).collect(),
    }
}

fn main() {
    let quick = std::env::args().any(|arg| arg == "--quick");
    let rounds = if quick { 3 } else { 7 };
    println!(
        "f32 SGD step, sigmoid/MSE, medians of {rounds} interleaved rounds; us per step\n\n{:<22} {:>6} {}  {:<11} {:<11} {:>6}",
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
            let measured = measure(widths, rows, rounds);
            let fastest = measured.fastest();
            let architecture = Architecture::new(
                widths,
                &vec![backprop::Activation::Sigmoid; widths.len() - 1],
                backprop::Loss::Mse,
            )
            .expect("a valid architecture");
            let choice = auto::choose(&architecture, rows);
            let picked = CANDIDATES
                .iter()
                .position(|&k| k == choice)
                .unwrap_or(fastest);
            let label = widths
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join("-");
            println!(
                "{label:<22} {rows:>6} {}  {:<11} {:<11} {:>6.2}",
                measured
                    .times
                    .iter()
                    .map(|t| format!("{:>11.1}", t * 1e6))
                    .collect::<String>(),
                CANDIDATES[fastest].name(),
                choice.name(),
                measured.times[picked] / measured.times[fastest],
            );
            results.push((measured, choice));
        }
    }
    derive(&results);
}

/// Derives `auto`'s constants from the winners and prints them.
fn derive(results: &[(Measured, BackendKind)]) {
    let simd_family =
        |i: usize| matches!(CANDIDATES[i], BackendKind::Simd | BackendKind::RayonSimd);
    let parallel = |i: usize| {
        matches!(
            CANDIDATES[i],
            BackendKind::RayonSimd | BackendKind::RayonFaer
        )
    };
    let flops = |m: &Measured| {
        6.0 * m.rows as f64
            * m.widths
                .windows(2)
                .map(|w| (w[0] * w[1]) as f64)
                .sum::<f64>()
    };
    // The smallest batch from which the SIMD kernels win, over the cases they win.
    let min_batch = results
        .iter()
        .filter(|(m, _)| simd_family(m.fastest()))
        .map(|(m, _)| m.rows)
        .min();
    // The widest layer of a case the SIMD kernels win, and the narrowest the faer ones win
    // at a batch the SIMD kernels otherwise take.
    let widest = |m: &Measured| m.widths[1..].iter().copied().max().unwrap_or(0);
    let max_width = results
        .iter()
        .filter(|(m, _)| simd_family(m.fastest()))
        .map(|(m, _)| widest(m))
        .max();
    // The least work at which a parallel kernel wins, and the most at which a sequential one does.
    let parallel_from = results
        .iter()
        .filter(|(m, _)| parallel(m.fastest()))
        .map(|(m, _)| flops(m))
        .fold(f64::INFINITY, f64::min);
    let sequential_up_to = results
        .iter()
        .filter(|(m, _)| !parallel(m.fastest()))
        .map(|(m, _)| flops(m))
        .filter(|&f| f < parallel_from * 64.0)
        .fold(0.0, f64::max);
    let worst = results
        .iter()
        .map(|(m, c)| {
            let picked = CANDIDATES.iter().position(|&k| k == *c).unwrap_or(0);
            m.times[picked] / m.times[m.fastest()]
        })
        .fold(0.0, f64::max);
    println!("\nderived from the winners above:");
    println!("  AUTO_SIMD_MIN_BATCH = {min_batch:?}  (smallest batch a SIMD kernel won)");
    println!("  AUTO_SIMD_MAX_WIDTH = {max_width:?}  (widest layer of a case a SIMD kernel won)");
    println!(
        "  AUTO_PARALLEL_MIN_FLOPS between {sequential_up_to:.3e} (most work a sequential kernel won) and {parallel_from:.3e} (least a parallel one won)"
    );
    println!("  auto's worst ratio to the fastest candidate on this grid: {worst:.3}");
}
