//! The contenders and the criterion groups: one SGD step per backend on S, M and L, the batch sweep, the GEMM peak.
//!
//! Groups are named `{shape}/{dtype}` with one id per backend, so
//! `cargo bench -- S/` runs shape S only, `cargo bench -- sweep` the sweep and
//! `cargo bench -- faer` one backend everywhere. Parallel backends run on the
//! global rayon pool, built explicitly with one thread per core.

use std::cell::RefCell;
use std::fmt;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use backprop::{
    Architecture, Backend, BackendKind, Batch, Error, FaerBackend, Network, Precision, SimdPath,
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
    /// The steps that failed, each as a [`Failure`], in the order met.
    failures: RefCell<Vec<Failure>>,
}

/// A contender's step that failed in one benchmark, so that it was not
/// timed (or, failing while timed, its time is left out of the table).
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    /// The contender's name.
    pub contender: String,
    /// The shape as the table names it: `S`, or `M@64` for a point of the sweep.
    pub shape: String,
    /// `f32` or `f64`.
    pub dtype: &'static str,
    /// What the step returned.
    pub error: Error,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} on {} {}: not timed, a step failed: {}",
            self.contender, self.shape, self.dtype, self.error
        )
    }
}

/// A contender's name that [`Harness::with`] or [`Harness::only`] cannot take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContenderError {
    /// [`Harness::with`]: a contender of that name is there already.
    Taken {
        /// The name given.
        name: String,
        /// The contenders' names.
        contenders: Vec<String>,
    },
    /// [`Harness::only`]: no contender has these names.
    Unknown {
        /// The names no contender has.
        names: Vec<String>,
        /// The contenders' names.
        contenders: Vec<String>,
    },
}

impl fmt::Display for ContenderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContenderError::Taken { name, contenders } => write!(
                f,
                "a contender named {name:?} is there already; the contenders: {contenders:?}"
            ),
            ContenderError::Unknown { names, contenders } => write!(
                f,
                "no contender is named {names:?}; the contenders: {contenders:?}"
            ),
        }
    }
}

impl std::error::Error for ContenderError {}

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
            failures: RefCell::new(Vec::new()),
        }
    }

    /// Adds a contender named `name` beside the others; an error, naming
    /// the names taken, if a contender of that name is there already
    /// (criterion needs every name of a group to differ).
    pub fn with(
        mut self,
        name: impl Into<String>,
        f32: impl Fn() -> Box<dyn Backend<f32>> + 'static,
        f64: impl Fn() -> Box<dyn Backend<f64>> + 'static,
    ) -> Result<Self, ContenderError> {
        let name = name.into();
        if self.names().contains(&name.as_str()) {
            return Err(ContenderError::Taken {
                name,
                contenders: self.owned_names(),
            });
        }
        self.contenders.push(Contender::new(name, f32, f64));
        Ok(self)
    }

    /// Keeps only the contenders named in `names`, and leaves out the GEMM
    /// peak; an error, naming the contenders, if a name in `names` is no
    /// contender's (a misspelt name would otherwise leave its contender out
    /// without a word).
    pub fn only(mut self, names: &[&str]) -> Result<Self, ContenderError> {
        let known = self.names();
        let unknown: Vec<String> = names
            .iter()
            .filter(|name| !known.contains(name))
            .map(|name| (*name).to_owned())
            .collect();
        if !unknown.is_empty() {
            return Err(ContenderError::Unknown {
                names: unknown,
                contenders: self.owned_names(),
            });
        }
        self.contenders.retain(|c| names.contains(&c.name.as_str()));
        self.peak = false;
        Ok(self)
    }

    /// The steps that failed in the benchmarks run so far (see [`Failure`]).
    pub fn failures(&self) -> Vec<Failure> {
        self.failures.borrow().clone()
    }

    /// The contenders' names.
    pub fn names(&self) -> Vec<&str> {
        self.contenders.iter().map(|c| c.name.as_str()).collect()
    }

    /// The contenders' names, owned, for an error.
    fn owned_names(&self) -> Vec<String> {
        self.names().into_iter().map(str::to_owned).collect()
    }

    /// Runs every group on criterion, then prints the table of this run's
    /// results (read back from criterion's own files), without the steps
    /// that failed, which it lists after the table.
    pub fn run(&self, c: &mut Criterion) {
        let started = SystemTime::now();
        self.bench(c);
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| PathBuf::from("target"), PathBuf::from);
        let failures = self.failures();
        match results::read(&target.join("criterion"), started) {
            Ok((steps, peaks)) if !steps.is_empty() => {
                let failed = |r: &results::Record| {
                    failures.iter().any(|f| {
                        (&f.contender, &f.shape, f.dtype)
                            == (&r.backend, &r.shape, r.dtype.as_str())
                    })
                };
                let steps: Vec<_> = steps
                    .into_iter()
                    .filter(|r| self.contenders.iter().any(|c| c.name == r.backend))
                    .filter(|r| !failed(r))
                    .collect();
                println!("{}", results::table(&steps, &peaks));
            }
            Ok(_) => {}
            Err(error) => eprintln!("could not read criterion's results: {error}"),
        }
        for failure in &failures {
            println!("{failure}");
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
                let timed = bench_step::<T>(&mut group, id, T::make(contender), widths, rows);
                self.note::<T>(contender, shape.to_owned(), timed);
            }
            group.finish();
        }
    }

    fn sweep(&self, c: &mut Criterion) {
        let (shape, widths, _) = SHAPES[1];
        let mut group = c.benchmark_group(format!("sweep-{shape}/f32"));
        for rows in SWEEP {
            configure(&mut group, widths, rows);
            for contender in &self.contenders {
                let id = BenchmarkId::new(&contender.name, rows);
                let timed = bench_step::<f32>(&mut group, id, f32::make(contender), widths, rows);
                self.note::<f32>(contender, format!("{shape}@{rows}"), timed);
            }
        }
        group.finish();
    }

    /// Keeps a failed step of `contender` on `shape`, and says so at once.
    fn note<T: Precision>(&self, contender: &Contender, shape: String, timed: Result<(), Error>) {
        if let Err(error) = timed {
            let failure = Failure {
                contender: contender.name.clone(),
                shape,
                dtype: T::NAME,
                error,
            };
            eprintln!("{failure}");
            self.failures.borrow_mut().push(failure);
        }
    }
}

/// Benchmarks one SGD step of `backend` on a sigmoid/MSE network of
/// `widths` and `rows` samples, after one step outside the timing.
///
/// A step that fails there (a kernel that declines the shape, say) is not
/// timed, and its error is returned; a step that fails while timed is
/// returned too (the first such error), and the time criterion keeps for
/// it is not to be trusted.
pub fn bench_step<T: Precision>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    id: BenchmarkId,
    mut backend: Box<dyn Backend<T>>,
    widths: [usize; 3],
    rows: usize,
) -> Result<(), Error> {
    let [n, h, m] = widths;
    let architecture = Architecture::seed(n, h, m)?;
    let (inputs, targets) = synthetic_batch::<T>(rows, n, m)?;
    let batch = Batch::from_slices(&architecture, rows, &inputs, &targets)?;
    let mut network = Network::<T>::try_init(architecture, 1)?;
    let mut gradient = network.try_zero_gradient()?;
    let learning_rate = T::from_f64(1e-3);
    backend.sgd_step(&mut network, &batch, &mut gradient, learning_rate)?;
    let mut failure = None;
    group.throughput(Throughput::Elements(rows as u64));
    group.bench_function(id, |b| {
        b.iter(|| {
            let step = backend.sgd_step(
                &mut network,
                black_box(&batch),
                &mut gradient,
                learning_rate,
            );
            if let Err(error) = step {
                failure.get_or_insert(error);
            }
        })
    });
    failure.map_or(Ok(()), Err)
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use backprop::{Backend, Error, ForwardTask, GradientTask, NaiveBackend};
    use criterion::{BenchmarkId, Criterion};

    use super::{Contender, ContenderError, Harness, bench_step};

    /// A kernel that declines every problem.
    struct Declining;

    impl Backend<f32> for Declining {
        fn name(&self) -> &'static str {
            "declining"
        }

        fn run_forward(&mut self, _: ForwardTask<'_, f32>) -> Result<(), Error> {
            Err(self.decline())
        }

        fn run_loss_and_gradient(&mut self, _: GradientTask<'_, f32>) -> Result<f32, Error> {
            Err(self.decline())
        }
    }

    impl Declining {
        fn decline(&self) -> Error {
            Error::Unsupported {
                backend: "declining",
                reason: "no shape at all".to_owned(),
            }
        }
    }

    fn quick_criterion() -> Criterion {
        Criterion::default()
            .without_plots()
            .sample_size(10)
            .warm_up_time(Duration::from_millis(1))
            .measurement_time(Duration::from_millis(10))
    }

    #[test]
    fn a_step_that_fails_is_returned_not_timed() {
        let mut criterion = quick_criterion();
        let mut group = criterion.benchmark_group("harness-test");
        let id = BenchmarkId::from_parameter("declining");
        let error = bench_step::<f32>(&mut group, id, Box::new(Declining), [4, 3, 2], 8)
            .expect_err("a declined step");
        assert!(matches!(error, Error::Unsupported { .. }), "{error}");
        let id = BenchmarkId::from_parameter("naive");
        let naive = Box::new(NaiveBackend::<f32>::new());
        bench_step::<f32>(&mut group, id, naive, [4, 3, 2], 8).expect("a timed step");
    }

    #[test]
    fn a_failed_step_is_kept_and_named() {
        let harness = Harness::builtin();
        let contender = Contender::registered(backprop::BackendKind::Naive);
        let error = Declining.decline();
        harness.note::<f32>(&contender, "M@64".to_owned(), Err(error));
        harness.note::<f32>(&contender, "S".to_owned(), Ok(()));
        let failures = harness.failures();
        assert_eq!(failures.len(), 1);
        let line = failures[0].to_string();
        assert!(line.starts_with("naive on M@64 f32: not timed"), "{line}");
        assert!(line.contains("no shape at all"), "{line}");
    }

    #[test]
    fn only_names_a_misspelt_contender() {
        let error = Harness::builtin()
            .only(&["naive", "faerr"])
            .err()
            .expect("a misspelt name");
        assert!(matches!(&error, ContenderError::Unknown { names, .. } if names == &["faerr"]));
        let shown = error.to_string();
        assert!(
            shown.starts_with("no contender is named [\"faerr\"]; the contenders: [\"naive\", "),
            "{shown}"
        );
        let kept = Harness::builtin()
            .only(&["naive", "faer"])
            .expect("known names");
        assert_eq!(kept.names(), ["naive", "faer"]);
    }

    #[test]
    fn with_refuses_a_name_taken() {
        let naive = || Box::new(NaiveBackend::<f32>::new()) as Box<dyn Backend<f32>>;
        let naive64 = || Box::new(NaiveBackend::<f64>::new()) as Box<dyn Backend<f64>>;
        let error = Harness::builtin()
            .with("faer", naive, naive64)
            .err()
            .expect("a name taken");
        assert!(matches!(&error, ContenderError::Taken { name, .. } if name == "faer"));
        let shown = error.to_string();
        assert!(
            shown.starts_with("a contender named \"faer\" is there already"),
            "{shown}"
        );
        let added = Harness::builtin()
            .with("mine", naive, naive64)
            .expect("a new name");
        assert_eq!(added.names().last(), Some(&"mine"));
    }
}
