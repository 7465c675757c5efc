//! Measures which kernel is fastest per architecture and batch size, and prints the constants
//! the `auto` backend chooses by; or times given cases, `auto` among the contenders.
//!
//! `cargo run --release -p backprop --example auto_thresholds` times a grid of
//! sigmoid/MSE networks (the sweep on M's widths, S's and L's widths, wider
//! and deeper ones; about a minute, `-- --quick` for fewer rounds): one
//! `f32` SGD step of every candidate of `auto`, interleaved in rounds, the
//! median per step of each, the winner (judged, like the last column, by the
//! medians of the per-round ratios, which a change of the machine's speed
//! between rounds leaves alone), what `auto` picks and how much slower that
//! ran than the fastest other candidate (`auto/best`, the largest of its
//! ratios' medians); then it derives `auto`'s constants from the winners. `-- --sweep` times only the batch sweep on M's
//! widths, with more rounds.
//!
//! `cargo run --release -p backprop --example auto_thresholds -- 784-256-10 128 [ROUNDS]`
//! (any number of `WIDTHS BATCH` pairs, then optionally the least number of
//! rounds; each case runs for three seconds at least) times the given cases
//! instead, with `auto` and `faer-sequential` beside the candidates, and
//! prints each one's median and its time over the fastest fixed backend's.

use std::time::Instant;

use backprop::{
    Activation, Architecture, Backend, BackendKind, Batch, FaerBackend, Loss, Network, SimdPath,
    auto, first_layer_dominates, synthetic_batch, units_max_rows_on,
};

/// The kernels `auto` chooses among.
const CANDIDATES: [BackendKind; 4] = [
    BackendKind::Simd,
    BackendKind::RayonSimd,
    BackendKind::Faer,
    BackendKind::RayonFaer,
];

/// The effort per case of the grid, of `--quick` and of `--sweep`.
const FULL: Effort = Effort {
    rounds: 7,
    seconds: 1.5,
};
const QUICK: Effort = Effort {
    rounds: 3,
    seconds: 0.4,
};
const SWEEP: Effort = Effort {
    rounds: 15,
    seconds: 4.0,
};

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

/// How long to time each case: at least `rounds` rounds and `seconds` seconds.
#[derive(Clone, Copy)]
struct Effort {
    rounds: usize,
    seconds: f64,
}

/// Each backend's seconds per step in every round on one case: the median of a block of steps
/// (about 5 ms of steps at 100 GFLOP/s, at least three, after one untimed step), the backends
/// taking turns in an order that rotates from round to round, so that none always runs first
/// (each still follows the same one in most rounds). Short blocks and many rounds let the paired ratios see the machine's speed, which on
/// shared cores can change by half from one second to the next, alike for every backend of a
/// round.
fn measure(
    widths: &[usize],
    rows: usize,
    effort: Effort,
    backends: &mut [Box<dyn Backend<f32>>],
) -> Vec<Vec<f64>> {
    let architecture = architecture(widths);
    let (n, m) = (architecture.input_width(), architecture.output_width());
    let (inputs, targets) = synthetic_batch::<f32>(rows, n, m).expect("a batch that fits");
    let batch = Batch::from_slices(&architecture, rows, &inputs, &targets).expect("a valid batch");
    let mut network = Network::<f32>::init(architecture.clone(), 1);
    let mut gradient = network.zero_gradient();
    let reps = ((5e8 / architecture.step_flops(rows)) as usize).clamp(3, 400);
    let count = backends.len();
    let mut times = vec![Vec::new(); count];
    let start = Instant::now();
    let mut round = 0;
    while round < effort.rounds || start.elapsed().as_secs_f64() < effort.seconds {
        for turn in 0..count {
            let index = (round + turn) % count;
            let backend = &mut backends[index];
            let mut step = || {
                let start = Instant::now();
                backend
                    .sgd_step(&mut network, &batch, &mut gradient, 1e-6)
                    .expect("a valid step");
                start.elapsed().as_secs_f64()
            };
            step();
            times[index].push(median((0..reps).map(|_| step()).collect()));
        }
        round += 1;
    }
    times
}

/// Each backend's median over the rounds.
fn medians(times: &[Vec<f64>]) -> Vec<f64> {
    times.iter().map(|rounds| median(rounds.clone())).collect()
}

/// The median over the rounds of backend `a`'s time over backend `b`'s in the same round, which
/// a change of the machine's speed between rounds leaves alone.
fn paired_ratio(times: &[Vec<f64>], a: usize, b: usize) -> f64 {
    median(times[a].iter().zip(&times[b]).map(|(a, b)| a / b).collect())
}

/// The largest of backend `a`'s paired ratios to each of the others: how much slower it ran
/// than the fastest of them, below 1 when it beat them all.
fn slowdown(times: &[Vec<f64>], a: usize) -> f64 {
    (0..times.len())
        .filter(|&other| other != a)
        .map(|other| paired_ratio(times, a, other))
        .fold(0.0, f64::max)
}

/// The fastest backend: the one of least `slowdown`, which round by round beat or came
/// closest to every other.
fn fastest(times: &[Vec<f64>]) -> usize {
    (0..times.len())
        .min_by(|&a, &b| slowdown(times, a).total_cmp(&slowdown(times, b)))
        .unwrap_or(0)
}

/// One case of the grid: widths, batch, the fastest candidate, and how much slower the one
/// `auto` picks ran than the fastest of the others (its `slowdown`, at least 1, and 1 when it
/// is the fastest).
struct Measured {
    widths: Vec<usize>,
    rows: usize,
    fastest: usize,
    auto_ratio: f64,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| args.iter().any(|arg| arg == name);
    let values: Vec<&String> = args.iter().filter(|arg| !arg.starts_with("--")).collect();
    if flag("--sweep") {
        grid(&GRID[..1], SWEEP);
    } else if values.is_empty() {
        grid(&GRID, if flag("--quick") { QUICK } else { FULL });
    } else {
        let rounds = if values.len() % 2 == 1 {
            values[values.len() - 1]
                .parse()
                .expect("a number of rounds")
        } else {
            11
        };
        let effort = Effort {
            rounds,
            seconds: 3.0,
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
            case(&widths, rows, effort);
        }
    }
}

/// Times one case with `auto` and `faer-sequential` beside the candidates.
fn case(widths: &[usize], rows: usize, effort: Effort) {
    let mut names: Vec<&str> = CANDIDATES.iter().map(|k| k.name()).collect();
    let mut backends: Vec<Box<dyn Backend<f32>>> = CANDIDATES.iter().map(|k| k.create()).collect();
    names.extend(["faer-sequential", "auto"]);
    backends.push(Box::new(FaerBackend::<f32>::sequential()));
    backends.push(BackendKind::Auto.create());
    let rounds_times = measure(widths, rows, effort, &mut backends);
    let times = medians(&rounds_times);
    let auto = times.len() - 1;
    let best = fastest(&rounds_times[..auto]);
    let flops = architecture(widths).step_flops(rows);
    println!(
        "{} batch {rows}, f32, medians of {} interleaved rounds (auto runs {}):",
        label(widths),
        rounds_times[0].len(),
        auto::choose(&architecture(widths), rows)
    );
    for (index, (name, time)) in names.iter().zip(&times).enumerate() {
        println!(
            "  {name:<16} {:>10.1} us {:>7.1} GFLOP/s  {:.3}x the time of the fastest fixed backend ({}), paired by round",
            time * 1e6,
            flops / time * 1e-9,
            paired_ratio(&rounds_times, index, best),
            names[best]
        );
    }
    let worst = (0..auto)
        .map(|other| paired_ratio(&rounds_times, auto, other))
        .fold(1.0, f64::max);
    println!("  auto against the fastest fixed backend, the largest paired ratio: {worst:.3}");
}

/// Times the grid and derives the constants.
fn grid(cases: &[(&[usize], &[usize])], effort: Effort) {
    println!(
        "f32 SGD step, sigmoid/MSE, medians of at least {} interleaved rounds and {} s a case; us per step\n\n{:<22} {:>6} {}  {:<11} {:<11} {:>9}",
        effort.rounds,
        effort.seconds,
        "widths",
        "batch",
        CANDIDATES
            .iter()
            .map(|k| format!("{:>11}", k.name()))
            .collect::<String>(),
        "fastest",
        "auto",
        "auto/best",
    );
    let mut results = Vec::new();
    for &(widths, batches) in cases {
        for &rows in batches {
            let mut backends: Vec<Box<dyn Backend<f32>>> =
                CANDIDATES.iter().map(|k| k.create()).collect();
            let rounds_times = measure(widths, rows, effort, &mut backends);
            let times = medians(&rounds_times);
            let best = fastest(&rounds_times);
            let choice = auto::choose(&architecture(widths), rows);
            let picked = CANDIDATES.iter().position(|&k| k == choice).unwrap_or(best);
            let auto_ratio = if picked == best {
                1.0
            } else {
                slowdown(&rounds_times, picked).max(1.0)
            };
            println!(
                "{:<22} {rows:>6} {}  {:<11} {:<11} {:>9.2}",
                label(widths),
                times
                    .iter()
                    .map(|t| format!("{:>11.1}", t * 1e6))
                    .collect::<String>(),
                CANDIDATES[best].name(),
                choice.name(),
                auto_ratio,
            );
            results.push(Measured {
                widths: widths.to_vec(),
                rows,
                fastest: best,
                auto_ratio,
            });
        }
    }
    if cases.len() == GRID.len() {
        derive(&results);
    }
    let worst = results.iter().map(|m| m.auto_ratio).fold(0.0, f64::max);
    println!(
        "\nwith the current constants, auto's worst ratio to the fastest candidate on these cases: {worst:.3}"
    );
}

/// Derives `auto`'s constants from the winners and prints them.
fn derive(results: &[Measured]) {
    let simd = |m: &Measured| {
        matches!(
            CANDIDATES[m.fastest],
            BackendKind::Simd | BackendKind::RayonSimd
        )
    };
    let parallel = |m: &Measured| {
        matches!(
            CANDIDATES[m.fastest],
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
    let units_max_rows = units_max_rows_on(SimdPath::widest());
    let cut =
        |m: &Measured| m.rows <= units_max_rows && first_layer_dominates(&architecture(&m.widths));
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
        "  AUTO_SIMD_MIN_BATCH (AUTO_SIMD_MIN_BATCH_AVX2 on AVX2): the smallest batch a SIMD kernel won where rayon-simd does not cut the first layer by units: {min_batch:?}"
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
}
