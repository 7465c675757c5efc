//! The contenders and the criterion groups: one SGD step per backend on S, M and L, the batch sweep, the GEMM peak.
//!
//! Groups are named `{shape}/{dtype}` with one id per backend, so
//! `cargo bench -- S/` runs shape S only, `cargo bench -- sweep` the sweep and
//! `cargo bench -- faer` one backend everywhere. Parallel backends run on the
//! global rayon pool, built explicitly with one thread per core.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use backprop::{
    Architecture, Backend, BackendKind, Batch, FaerBackend, Network, Precision, SimdPath,
    synthetic_batch,
};
use backprop_simd::{fma_peak_flops, fma_peak_loop};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, SamplingMode, Throughput};
use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, Par};

use crate::results;

/// The reference shapes: name, widths, batch.
pub const SHAPES: [(&str, [usize; 3], usize); 3] = [
    ("S", [64, 32, 10], 64),
    ("M", [784, 256, 10], 128),
    ("L", [1024, 1024, 1024], 1024),
];

/// Batch sizes of the sweep on M's widths, in `f32`.
pub const SWEEP: [usize; 6] = [1, 8, 64, 256, 1024, 4096];

/// The side of the square product that measures the GEMM peak.
pub const PEAK_SIDE: usize = 2048;

/// Steps of the FMA loop that measures one core's peak (12 independent
/// chains of vector multiply-adds per step; under 0.1 ms a loop).
pub const FMA_ROUNDS: usize = 20_000;

/// Makes a fresh backend in precision `T`.
type Make<T> = Box<dyn Fn() -> Box<dyn Backend<T>>>;

/// A backend to time, by name, in both precisions.
pub struct Contender {
    /// The id its results carry.
    pub name: String,
    f32: Make<f32>,
    f64: Make<f64>,
}

impl Contender {
    /// A contender named `name`, built by `f32` and `f64` for each group.
    pub fn new(
        name: impl Into<String>,
        f32: impl Fn() -> Box<dyn Backend<f32>> + 'static,
        f64: impl Fn() -> Box<dyn Backend<f64>> + 'static,
    ) -> Self {
        Contender {
            name: name.into(),
            f32: Box::new(f32),
            f64: Box::new(f64),
        }
    }

    /// A registered backend in its default configuration.
    pub fn registered(kind: BackendKind) -> Self {
        Contender::new(kind.name(), move || kind.create(), move || kind.create())
    }
}

/// A precision the harness times, with how to build a contender in it.
pub trait Timed: Precision {
    /// The contender's backend in this precision.
    fn make(contender: &Contender) -> Box<dyn Backend<Self>>;
}

impl Timed for f32 {
    fn make(contender: &Contender) -> Box<dyn Backend<f32>> {
        (contender.f32)()
    }
}

impl Timed for f64 {
    fn make(contender: &Contender) -> Box<dyn Backend<f64>> {
        (contender.f64)()
    }
}

/// The contenders and what to run them on.
pub struct Harness {
    contenders: Vec<Contender>,
    peak: bool,
}

impl Harness {
    /// Every registered backend, and the faer backend forced to run
    /// sequentially (the baseline the parallel backends are compared with);
    /// with the GEMM peak.
    pub fn builtin() -> Self {
        let mut contenders: Vec<Contender> = BackendKind::ALL
            .iter()
            .map(|&kind| Contender::registered(kind))
            .collect();
        contenders.push(Contender::new(
            "faer-sequential",
            || Box::new(FaerBackend::<f32>::sequential()),
            || Box::new(FaerBackend::<f64>::sequential()),
        ));
        Harness {
            contenders,
            peak: true,
        }
    }

    /// Adds a contender named `name` beside the others.
    pub fn with(
        mut self,
        name: impl Into<String>,
        f32: impl Fn() -> Box<dyn Backend<f32>> + 'static,
        f64: impl Fn() -> Box<dyn Backend<f64>> + 'static,
    ) -> Self {
        self.contenders.push(Contender::new(name, f32, f64));
        self
    }

    /// Keeps only the contenders named in `names`, and leaves out the GEMM peak.
    pub fn only(mut self, names: &[&str]) -> Self {
        self.contenders.retain(|c| names.contains(&c.name.as_str()));
        self.peak = false;
        self
    }

    /// The contenders' names.
    pub fn names(&self) -> Vec<&str> {
        self.contenders.iter().map(|c| c.name.as_str()).collect()
    }

    /// Runs every group on criterion, then prints the table of this run's
    /// results (read back from criterion's own files).
    pub fn run(&self, c: &mut Criterion) {
        let started = SystemTime::now();
        self.bench(c);
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| PathBuf::from("target"), PathBuf::from);
        match results::read(&target.join("criterion"), started) {
            Ok((steps, peaks)) if !steps.is_empty() => {
                let steps: Vec<_> = steps
                    .into_iter()
                    .filter(|r| self.contenders.iter().any(|c| c.name == r.backend))
                    .collect();
                println!("{}", results::table(&steps, &peaks));
            }
            Ok(_) => {}
            Err(error) => eprintln!("could not read criterion's results: {error}"),
        }
    }

    /// Registers and runs every group: S, M and L in both precisions, the
    /// sweep, and the peak last (faer's kernels called directly leave the
    /// pool's vector state dirty).
    pub fn bench(&self, c: &mut Criterion) {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        // Ignore the error of a pool already built (by criterion's own use of rayon, say).
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(cores)
            .build_global();
        self.shapes::<f32>(c);
        self.shapes::<f64>(c);
        self.sweep(c);
        if self.peak {
            peak::<f32>(c);
            peak::<f64>(c);
        }
    }

    fn shapes<T: Timed>(&self, c: &mut Criterion) {
        for (shape, widths, rows) in SHAPES {
            let mut group = c.benchmark_group(format!("{shape}/{}", T::NAME));
            configure(&mut group, widths, rows);
            for contender in &self.contenders {
                let id = BenchmarkId::from_parameter(&contender.name);
                bench_step::<T>(&mut group, id, T::make(contender), widths, rows);
            }
            group.finish();
        }
    }

    fn sweep(&self, c: &mut Criterion) {
        let (_, widths, _) = SHAPES[1];
        let mut group = c.benchmark_group("sweep-M/f32");
        for rows in SWEEP {
            configure(&mut group, widths, rows);
            for contender in &self.contenders {
                let id = BenchmarkId::new(&contender.name, rows);
                bench_step::<f32>(&mut group, id, f32::make(contender), widths, rows);
            }
        }
        group.finish();
    }
}

/// Benchmarks one SGD step of `backend` on a sigmoid/MSE network of `widths` and `rows` samples.
pub fn bench_step<T: Precision>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    id: BenchmarkId,
    mut backend: Box<dyn Backend<T>>,
    widths: [usize; 3],
    rows: usize,
) {
    let [n, h, m] = widths;
    let Ok(architecture) = Architecture::seed(n, h, m) else {
        return;
    };
    let Ok((inputs, targets)) = synthetic_batch::<T>(rows, n, m) else {
        return;
    };
    let Ok(batch) = Batch::from_slices(&architecture, rows, &inputs, &targets) else {
        return;
    };
    let mut network = Network::<T>::init(architecture, 1);
    let mut gradient = network.zero_gradient();
    let learning_rate = T::from_f64(1e-3);
    group.throughput(Throughput::Elements(rows as u64));
    group.bench_function(id, |b| {
        b.iter(|| {
            backend
                .sgd_step(
                    &mut network,
                    black_box(&batch),
                    &mut gradient,
                    learning_rate,
                )
                .map_err(|error| error.to_string())
        })
    });
}

/// Long steps (the naive backends on L take seconds) get the fewest samples criterion allows.
fn configure(group: &mut BenchmarkGroup<'_, WallTime>, widths: [usize; 3], rows: usize) {
    let [n, h, m] = widths;
    let flops = Architecture::seed(n, h, m).map_or(0.0, |a| a.step_flops(rows));
    if flops > 1e9 {
        group.sampling_mode(SamplingMode::Flat).sample_size(10);
        group.measurement_time(Duration::from_secs(10));
    }
}

/// The machine's peaks: a large faer product on every core (`gemm`) and on
/// one thread (`gemm-1t`), and one core's FMA peak (`fma-1t`: independent
/// vector multiply-add chains on the widest SIMD path, no memory traffic;
/// its parameter is the flop count of one loop).
fn peak<T: Precision>(c: &mut Criterion) {
    let a = Mat::<T>::from_fn(PEAK_SIDE, PEAK_SIDE, |i, j| {
        T::from_f64(((i + j) % 7) as f64 / 7.0)
    });
    let b = Mat::<T>::from_fn(PEAK_SIDE, PEAK_SIDE, |i, j| {
        T::from_f64(((i * j) % 5) as f64 / 5.0)
    });
    let mut product = Mat::<T>::zeros(PEAK_SIDE, PEAK_SIDE);
    let mut group = c.benchmark_group(format!("peak/{}", T::NAME));
    group.sample_size(10);
    group.throughput(Throughput::Elements(
        (PEAK_SIDE * PEAK_SIDE * PEAK_SIDE) as u64,
    ));
    for (name, par) in [("gemm", Par::rayon(0)), ("gemm-1t", Par::Seq)] {
        group.bench_function(BenchmarkId::new(name, PEAK_SIDE), |bencher| {
            bencher.iter(|| {
                matmul(
                    product.as_mut(),
                    Accum::Replace,
                    a.as_ref(),
                    b.as_ref(),
                    T::ONE,
                    par,
                )
            })
        });
    }
    let path = SimdPath::widest();
    let flops = fma_peak_flops::<T>(path, FMA_ROUNDS);
    group.throughput(Throughput::Elements(flops as u64));
    group.bench_function(BenchmarkId::new("fma-1t", flops), |bencher| {
        bencher.iter(|| fma_peak_loop(path, black_box(FMA_ROUNDS), black_box(T::ONE)))
    });
    group.finish();
}
