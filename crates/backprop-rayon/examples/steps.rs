//! Times one SGD step of the faer and SIMD backends on the benchmark shapes, interleaved.
//!
//! Run with `cargo run --release -p backprop-rayon --example steps -- [SHAPES] [DTYPES] [ROUNDS] [BACKENDS]`,
//! for example `-- S,M,L f32,f64 7 faer,rayon-faer,faer-sequential,simd,rayon-simd`
//! (the defaults). Besides those five, `faer-rayon` (`Parallelism::Rayon(0)`:
//! faer's parallel products) and `faer-blocks` (`Parallelism::RowBlocks`:
//! one sequential product per thread) can be named, and `gemms`: not a
//! backend but the step's five products alone (two forward, two weight
//! gradients, one delta; the input layer's delta is never formed), each one
//! sequential faer product in the layout the backend uses, the yardstick of
//! `faer-sequential`. Any other name, shape or dtype, or a round count
//! that is not a whole number of at least 1, is an error (exit status 2).
//! Each round times every backend on every shape and dtype in turn, each the
//! median of many steps (a fixed count per shape) after two warm-up steps;
//! the summary gives the median over the rounds, and each backend's ratio to
//! the fastest. The backends are built as the facade builds them: `faer` is
//! `FaerBackend::new()`, `rayon-faer` is
//! `RayonBackend::splitting_first_layer` over `FaerBackend::sequential`,
//! `rayon-simd` is `RayonBackend::first_layer_by_units` over
//! `SimdBackend::new`, on the global pool (one thread per core). Lines
//! starting with `step` are one round's result each, for scripts that
//! interleave this program with others.

use std::time::Instant;

use backprop_core::{Architecture, Backend, Batch, Network, Scalar, synthetic_batch};
use backprop_faer::{FaerBackend, FaerScalar, Parallelism};
use backprop_rayon::RayonBackend;
use backprop_simd::{SimdBackend, SimdScalar};

/// The benchmark shapes: name, widths, batch, steps timed per round.
const SHAPES: [(&str, [usize; 3], usize, usize); 3] = [
    ("S", [64, 32, 10], 64, 2001),
    ("M", [784, 256, 10], 128, 301),
    ("L", [1024, 1024, 1024], 1024, 15),
];

/// The names this program times: backends, and `gemms` (see the file's docs).
const NAMES: [&str; 8] = [
    "faer",
    "rayon-faer",
    "faer-sequential",
    "faer-rayon",
    "faer-blocks",
    "simd",
    "rayon-simd",
    "gemms",
];

/// The backend called `name`, built as the facade builds it; `None` for
/// `gemms`, which is timed by [`Gemms`] instead.
fn backend<T: FaerScalar + SimdScalar>(name: &str) -> Option<Box<dyn Backend<T>>> {
    Some(match name {
        "faer" => Box::new(FaerBackend::<T>::new()),
        "faer-sequential" => Box::new(FaerBackend::<T>::sequential()),
        "faer-rayon" => Box::new(FaerBackend::<T>::with_parallelism(Parallelism::Rayon(0))),
        "faer-blocks" => Box::new(FaerBackend::<T>::with_parallelism(Parallelism::RowBlocks)),
        "rayon-faer" => Box::new(RayonBackend::splitting_first_layer(
            "rayon-faer",
            FaerBackend::<T>::sequential,
        )),
        "simd" => Box::new(SimdBackend::<T>::new()),
        "rayon-simd" => Box::new(RayonBackend::first_layer_by_units(
            "rayon-simd",
            SimdBackend::<T>::new,
        )),
        _ => return None,
    })
}

/// The step's five products, sequentially, in the layouts the faer backend
/// gives them (see its `gemm.rs`): a stand-in for a backend, timed alike.
struct Gemms<T> {
    widths: [usize; 3],
    rows: usize,
    buffers: [Vec<T>; 6],
}

impl<T: FaerScalar> Gemms<T> {
    fn new(widths: [usize; 3], rows: usize) -> Self {
        let [n, h, m] = widths;
        let fill = |len: usize| {
            (0..len)
                .map(|i| T::from_f64((i % 13) as f64 / 13.0))
                .collect()
        };
        Gemms {
            widths,
            rows,
            // X, W1, W2, A1 / Z1 / delta1, A2 / delta2, dW1 / dW2.
            buffers: [
                fill(rows * n),
                fill(h * n),
                fill(m * h),
                fill(rows * h.max(m)),
                fill(rows * h.max(m)),
                fill(h * n + m * h),
            ],
        }
    }

    fn run(&mut self) {
        use faer::linalg::matmul::matmul;
        use faer::{Accum, MatMut, MatRef, Par};
        let [n, h, m] = self.widths;
        let b = self.rows;
        let [x, w1, w2, a, d, g] = &mut self.buffers;
        fn v<T: FaerScalar>(s: &[T], r: usize, c: usize) -> MatRef<'_, T> {
            MatRef::from_row_major_slice(&s[..r * c], r, c)
        }
        fn vm<T: FaerScalar>(s: &mut [T], r: usize, c: usize) -> MatMut<'_, T> {
            MatMut::from_row_major_slice_mut(&mut s[..r * c], r, c)
        }
        let mul = |dst: MatMut<'_, T>, l: MatRef<'_, T>, r: MatRef<'_, T>| {
            matmul(dst, Accum::Replace, l, r, T::from_f64(1.0), Par::Seq);
        };
        mul(vm(a, b, h), v(x, b, n), v(w1, h, n).transpose());
        mul(vm(d, b, m), v(a, b, h), v(w2, m, h).transpose());
        let (g1, g2) = g.split_at_mut(h * n);
        mul(vm(g2, m, h), v(d, m, b), v(a, b, h));
        mul(vm(a, b, h), v(d, b, m), v(w2, m, h));
        mul(vm(g1, h, n), v(a, h, b), v(x, b, n));
    }
}

/// A network, a batch and the backends, kept across rounds.
struct Case<T: Scalar> {
    network: Network<T>,
    inputs: Vec<T>,
    targets: Vec<T>,
    rows: usize,
    reps: usize,
    backends: Vec<Option<Box<dyn Backend<T>>>>,
    gemms: Gemms<T>,
}

impl<T: FaerScalar + SimdScalar> Case<T> {
    fn new(widths: [usize; 3], rows: usize, reps: usize, backends: &[&str]) -> Self {
        let [n, h, m] = widths;
        let architecture = Architecture::seed(n, h, m).expect("a valid architecture");
        let (inputs, targets) = synthetic_batch::<T>(rows, n, m).expect("a batch that fits");
        Case {
            network: Network::<T>::init(architecture, 1),
            inputs,
            targets,
            rows,
            reps,
            backends: backends.iter().map(|name| backend::<T>(name)).collect(),
            gemms: Gemms::new(widths, rows),
        }
    }

    /// The median seconds per step of backend `b` over this case's steps.
    fn time(&mut self, b: usize) -> f64 {
        let architecture = self.network.architecture().clone();
        let batch = Batch::from_slices(&architecture, self.rows, &self.inputs, &self.targets)
            .expect("a valid batch");
        let mut gradient = self.network.zero_gradient();
        let backend = &mut self.backends[b];
        let gemms = &mut self.gemms;
        let mut step = || {
            let start = Instant::now();
            match backend {
                Some(backend) => {
                    backend
                        .sgd_step(&mut self.network, &batch, &mut gradient, T::from_f64(1e-6))
                        .expect("a valid step");
                }
                None => gemms.run(),
            }
            start.elapsed().as_secs_f64()
        };
        step();
        step();
        median((0..self.reps).map(|_| step()).collect())
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Either precision's case, so that one loop interleaves both.
enum AnyCase {
    F32(Case<f32>),
    F64(Case<f64>),
}

/// Prints `message` and exits with status 2: a bad argument.
fn usage_error(message: String) -> ! {
    eprintln!("{message}");
    std::process::exit(2);
}

/// Every item of the comma-separated `list`, each one of `known` (else a
/// usage error naming `what`).
fn choices<'a>(list: &'a str, known: &[&str], what: &str) -> Vec<&'a str> {
    let items: Vec<&str> = list.split(',').collect();
    if let Some(unknown) = items.iter().find(|item| !known.contains(item)) {
        usage_error(format!(
            "unknown {what} '{unknown}': one of {}",
            known.join(", ")
        ));
    }
    items
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let shape_names: Vec<&str> = SHAPES.iter().map(|(name, ..)| *name).collect();
    let shapes = choices(
        args.first().map_or("S,M,L", String::as_str),
        &shape_names,
        "shape",
    );
    let dtypes = choices(
        args.get(1).map_or("f32,f64", String::as_str),
        &["f32", "f64"],
        "dtype",
    );
    let rounds: usize = match args.get(2).map(|r| r.parse()) {
        None => 7,
        Some(Ok(rounds)) if rounds > 0 => rounds,
        Some(_) => usage_error(format!(
            "rounds must be a whole number of at least 1, not '{}'",
            args[2]
        )),
    };
    let names = choices(
        args.get(3).map_or(
            "faer,rayon-faer,faer-sequential,simd,rayon-simd",
            String::as_str,
        ),
        &NAMES,
        "backend",
    );
    let mut cases = Vec::new();
    for (name, widths, rows, reps) in SHAPES {
        if !shapes.contains(&name) {
            continue;
        }
        for &dtype in &dtypes {
            let case = if dtype == "f32" {
                AnyCase::F32(Case::new(widths, rows, reps, &names))
            } else {
                AnyCase::F64(Case::new(widths, rows, reps / 2 + 1, &names))
            };
            cases.push((name, dtype, case));
        }
    }
    let mut times = vec![vec![Vec::new(); names.len()]; cases.len()];
    for round in 0..rounds {
        for ((shape, dtype, case), times) in cases.iter_mut().zip(&mut times) {
            for (b, name) in names.iter().enumerate() {
                let t = match case {
                    AnyCase::F32(case) => case.time(b),
                    AnyCase::F64(case) => case.time(b),
                };
                println!("step {round} {shape} {dtype} {name} {:.3}", t * 1e6);
                times[b].push(t);
            }
        }
    }
    println!("medians of {rounds} rounds, us per step (ratio to the fastest):");
    for ((shape, dtype, _), times) in cases.iter().zip(times) {
        let medians: Vec<f64> = times.into_iter().map(median).collect();
        let best = medians.iter().copied().fold(f64::INFINITY, f64::min);
        print!("{shape} {dtype}:");
        for (name, t) in names.iter().zip(&medians) {
            print!("  {name} {:.1} ({:.2}x)", t * 1e6, t / best);
        }
        println!();
    }
}
