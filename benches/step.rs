//! Criterion benchmarks: one training step (forward, backward, SGD update) of every backend,
//! on the protocol's shapes S, M and L, a batch sweep on M, and the machine's peaks: a GEMM
//! on every core and on one thread, and one core's FMA peak.
//!
//! Groups are named `{shape}/{dtype}` with one id per backend, so
//! `cargo bench -- S/` runs shape S only, `cargo bench -- sweep` the sweep and
//! `cargo bench -- faer` one backend everywhere. Parallel backends run on the
//! global rayon pool, built explicitly with one thread per core.

use std::hint::black_box;
use std::time::Duration;

use backprop::{
    Architecture, Backend, BackendKind, Batch, FaerBackend, Network, Precision, Scalar, SimdPath,
};
use backprop_simd::{fma_peak_flops, fma_peak_loop};
use criterion::measurement::WallTime;
use criterion::{
    BenchmarkGroup, BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group,
    criterion_main,
};
use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, Par};

/// The reference shapes: name, widths, batch.
const SHAPES: [(&str, [usize; 3], usize); 3] = [
    ("S", [64, 32, 10], 64),
    ("M", [784, 256, 10], 128),
    ("L", [1024, 1024, 1024], 1024),
];

/// Batch sizes of the sweep on M's widths, in `f32`.
const SWEEP: [usize; 6] = [1, 8, 64, 256, 1024, 4096];

/// The side of the square product that measures the GEMM peak.
const PEAK_SIDE: usize = 2048;

/// Steps of the FMA loop that measures one core's peak (16 independent
/// chains of vector multiply-adds per step; about 0.1 ms a loop).
const FMA_ROUNDS: usize = 20_000;

/// Deterministic inputs in `[0, 1)` and `{0, 1}` targets.
fn data<T: Scalar>(rows: usize, n: usize, m: usize) -> (Vec<T>, Vec<T>) {
    let inputs = (0..rows * n)
        .map(|i| T::from_f64((i * 7 % 17) as f64 / 17.0))
        .collect();
    let targets = (0..rows * m).map(|i| T::from_f64((i % 2) as f64)).collect();
    (inputs, targets)
}

/// Every registered backend, and the faer backend forced to run sequentially
/// (the baseline the parallel backends are compared with).
fn contenders<T: Precision>() -> Vec<(&'static str, Box<dyn Backend<T>>)> {
    let mut contenders: Vec<(&'static str, Box<dyn Backend<T>>)> = BackendKind::ALL
        .iter()
        .map(|kind| (kind.name(), kind.create::<T>()))
        .collect();
    contenders.push(("faer-sequential", Box::new(FaerBackend::<T>::sequential())));
    contenders
}

/// Benchmarks one SGD step of `backend` on a sigmoid/MSE network of `widths` and `rows` samples.
fn bench_step<T: Precision>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    id: BenchmarkId,
    mut backend: Box<dyn Backend<T>>,
    widths: [usize; 3],
    rows: usize,
) {
    let [n, h, m] = widths;
    let architecture = Architecture::seed(n, h, m).expect("a valid architecture");
    let (inputs, targets) = data::<T>(rows, n, m);
    let batch = Batch::from_slices(&architecture, rows, &inputs, &targets).expect("a valid batch");
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
                .expect("a valid step")
        })
    });
}

/// Long steps (the naive backends on L take seconds) get the fewest samples criterion allows.
fn configure(group: &mut BenchmarkGroup<'_, WallTime>, flops: f64) {
    if flops > 1e9 {
        group.sampling_mode(SamplingMode::Flat).sample_size(10);
        group.measurement_time(Duration::from_secs(10));
    }
}

fn shapes<T: Precision>(c: &mut Criterion) {
    for (shape, widths, rows) in SHAPES {
        let mut group = c.benchmark_group(format!("{shape}/{}", T::NAME));
        let flops = Architecture::seed(widths[0], widths[1], widths[2])
            .expect("a valid architecture")
            .step_flops(rows);
        configure(&mut group, flops);
        for (name, backend) in contenders::<T>() {
            let id = BenchmarkId::from_parameter(name);
            bench_step::<T>(&mut group, id, backend, widths, rows);
        }
        group.finish();
    }
}

fn sweep(c: &mut Criterion) {
    let (_, widths, _) = SHAPES[1];
    let mut group = c.benchmark_group("sweep-M/f32");
    for rows in SWEEP {
        let flops = Architecture::seed(widths[0], widths[1], widths[2])
            .expect("a valid architecture")
            .step_flops(rows);
        configure(&mut group, flops);
        for (name, backend) in contenders::<f32>() {
            let id = BenchmarkId::new(name, rows);
            bench_step::<f32>(&mut group, id, backend, widths, rows);
        }
    }
    group.finish();
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

fn benches(c: &mut Criterion) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Ignore the error of a pool already built (by criterion's own use of rayon, say).
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(cores)
        .build_global();
    shapes::<f32>(c);
    shapes::<f64>(c);
    sweep(c);
    // Last: faer's kernels called directly leave the pool's vector state dirty.
    peak::<f32>(c);
    peak::<f64>(c);
}

criterion_group!(step, benches);
criterion_main!(step);
