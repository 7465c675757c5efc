//! Interchangeable backpropagation kernels for multilayer perceptrons, behind one [`Backend`] trait.
//!
//! Depend on this crate, pick a backend by name at run time, and train:
//!
//! ```
//! use backprop::{Architecture, Backend, BackendKind, Batch, Network};
//!
//! # fn main() -> Result<(), backprop::Error> {
//! let architecture = Architecture::seed(2, 3, 1)?; // 2-3-1, sigmoid, MSE
//! let mut network = Network::<f64>::init(architecture, 7);
//! let kind: BackendKind = "naive".parse()?;
//! let mut backend = kind.create::<f64>();
//! let inputs = [0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0];
//! let targets = [0.0, 1.0, 1.0, 0.0];
//! let batch = Batch::from_slices(network.architecture(), 4, &inputs, &targets)?;
//! let mut gradient = network.zero_gradient();
//! let first = backend.sgd_step(&mut network, &batch, &mut gradient, 0.5)?;
//! let second = backend.loss_and_gradient(&network, &batch, &mut gradient)?;
//! assert!(second < first);
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::num::NonZeroUsize;
use std::str::FromStr;
use std::sync::Arc;

pub use backprop_core::{
    AboveFirstTask, Activation, Architecture, Backend, Batch, DeltaLayout, Error, FirstLayerSplit,
    FirstLayerUnits, FirstUnitsTask, FirstWeightRowsTask, ForwardTask, GradientLayers,
    GradientTask, Inputs, Layer, LayerParams, LayerParamsMut, LayerShape, Layers, Loss, MatrixRef,
    MatrixRole, Network, ParamLocation, Params, RowPart, RowSplit, Scalar, SgdTask,
    SplitGradientTask, synthetic_batch,
};
pub use backprop_faer::{AUTO_CROSSOVER_MNK, FaerBackend, FaerScalar, Parallelism};
pub use backprop_naive::NaiveBackend;
pub use backprop_rayon::{
    DEFAULT_LINGER, DEFAULT_MIN_ROWS_PER_PARTITION, DEFAULT_PARALLEL_THRESHOLD_FLOPS, MAX_LINGER,
    Partitions, RayonBackend, UNITS_MAX_ROWS, UNITS_MIN_FIRST_SHARE, first_layer_dominates,
};
pub use backprop_simd::{Path as SimdPath, SimdBackend, SimdScalar, UnsupportedPath};
/// The thread pool type the parallel backends run on (rayon's).
pub use rayon::{ThreadPool, ThreadPoolBuilder};

pub mod auto;

pub use auto::AutoBackend;

/// A precision every backend supports: `f32` or `f64`.
pub trait Precision: Scalar + FaerScalar + SimdScalar {}

impl<T: Scalar + FaerScalar + SimdScalar> Precision for T {}

/// The backends this workspace offers, each with a stable name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BackendKind {
    /// [`NaiveBackend`]: the readable reference, one sample at a time.
    Naive,
    /// [`FaerBackend`]: the batch as matrices, faer GEMM, parallel products
    /// for large shapes ([`Parallelism::Auto`]).
    Faer,
    /// [`RayonBackend`] over naive workers: the batch split across threads.
    RayonNaive,
    /// [`RayonBackend`] over sequential faer workers.
    RayonFaer,
    /// [`SimdBackend`]: explicit SIMD micro-kernels, the whole step fused,
    /// one thread, on the widest instruction set the CPU has.
    Simd,
    /// [`RayonBackend`] over SIMD workers, the first layer's weight gradient
    /// split by hidden units as for `rayon-faer`; on batches of at most
    /// [`units_max_rows_on`] the CPU's widest SIMD path rows of a network
    /// whose first layer dominates, its forward pass too, with no partition
    /// of the batch ([`RayonBackend::first_layer_by_units`]).
    RayonSimd,
    /// [`AutoBackend`]: for each step, the kernel among `simd`, `rayon-simd`,
    /// `faer` and `rayon-faer` that was fastest on the measured machine for
    /// its architecture and batch size (see [`auto::choose`]).
    Auto,
}

/// Partitions of a parallel backend in its reproducible configuration: fixed,
/// so that results do not depend on the thread count.
pub const REPRODUCIBLE_PARTITIONS: NonZeroUsize = NonZeroUsize::new(8).expect("8 is not zero");

impl BackendKind {
    /// Every backend, reference first.
    pub const ALL: [BackendKind; 7] = [
        BackendKind::Naive,
        BackendKind::Faer,
        BackendKind::RayonNaive,
        BackendKind::RayonFaer,
        BackendKind::Simd,
        BackendKind::RayonSimd,
        BackendKind::Auto,
    ];

    /// The stable name that `Display` prints and `FromStr` reads.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Naive => "naive",
            BackendKind::Faer => "faer",
            BackendKind::RayonNaive => "rayon-naive",
            BackendKind::RayonFaer => "rayon-faer",
            BackendKind::Simd => "simd",
            BackendKind::RayonSimd => "rayon-simd",
            BackendKind::Auto => "auto",
        }
    }

    /// Whether this backend splits a batch across threads by itself.
    pub fn is_parallel(self) -> bool {
        matches!(
            self,
            BackendKind::RayonNaive
                | BackendKind::RayonFaer
                | BackendKind::RayonSimd
                | BackendKind::Auto
        )
    }

    /// A new backend of this kind for precision `T`, ready for any
    /// architecture, in its default configuration (parallel backends on the
    /// global rayon pool).
    pub fn create<T: Precision>(self) -> Box<dyn Backend<T>> {
        self.build(None)
    }

    /// A backend of this kind whose results are bit-identical whatever the
    /// number of threads of `pool`: a parallel backend runs on `pool` with
    /// [`REPRODUCIBLE_PARTITIONS`] fixed partitions and forks for every
    /// batch (`auto` builds its parallel kernels so, and chooses as always);
    /// any other backend is the same as [`BackendKind::create`].
    pub fn create_reproducible<T: Precision>(self, pool: Arc<ThreadPool>) -> Box<dyn Backend<T>> {
        self.build(Some((pool, Partitions::Fixed(REPRODUCIBLE_PARTITIONS))))
    }

    /// A backend of this kind in its default scheme (one partition per
    /// thread; for `rayon-faer` and `rayon-simd`, the first layer split by
    /// hidden units) that forks for every batch of more than one row, on
    /// `pool`: what the default configuration runs on large batches, at any
    /// batch size, for checking (`auto` builds its parallel kernels so, and
    /// chooses as always). Any other backend is the same as
    /// [`BackendKind::create`].
    pub fn create_forking<T: Precision>(self, pool: Arc<ThreadPool>) -> Box<dyn Backend<T>> {
        self.build(Some((pool, Partitions::PerThread)))
    }

    /// The backend, forking on the pool with the partitions if they are given.
    pub(crate) fn build<T: Precision>(
        self,
        forking: Option<(Arc<ThreadPool>, Partitions)>,
    ) -> Box<dyn Backend<T>> {
        match self {
            BackendKind::Naive => Box::new(NaiveBackend::<T>::new()),
            BackendKind::Faer => Box::new(FaerBackend::<T>::new()),
            BackendKind::RayonNaive => forking_on(
                RayonBackend::new(self.name(), NaiveBackend::<T>::new),
                forking,
            ),
            BackendKind::RayonFaer => forking_on(
                RayonBackend::splitting_first_layer(self.name(), FaerBackend::<T>::sequential),
                forking,
            ),
            BackendKind::Simd => Box::new(SimdBackend::<T>::new()),
            BackendKind::RayonSimd => forking_on(
                RayonBackend::first_layer_by_units(self.name(), SimdBackend::<T>::new)
                    .with_units_max_rows(units_max_rows_on(SimdPath::widest())),
                forking,
            ),
            BackendKind::Auto => match forking {
                None => Box::new(AutoBackend::<T>::new()),
                Some((pool, partitions)) => Box::new(AutoBackend::forking_on(pool, partitions)),
            },
        }
    }
}

/// The most rows on which `rayon-simd` cuts the first layer by hidden units
/// where the widest SIMD path is AVX2 ([`UNITS_MAX_ROWS`], measured on
/// AVX-512 machines, elsewhere): past it the batch is partitioned.
///
/// Measured on 784-256-10 with `cargo run --release -p backprop-rayon
/// --example units_crossover -- 784 256 10 64,80,96,112,128,160 9` on a
/// 2-core AMD EPYC of the Zen 2 family (AVX2, no AVX-512), twice: the cut
/// came out 0.99x-1.03x as fast as the partitioned batch at 64 rows, 1.08x
/// at 80, 1.02x-1.03x at 96, 1.01x-1.02x at 112, 0.99x at 128 and
/// 0.94x-0.97x at 160; in `f64` (`-- 784 256 10 64,96,128,160 9 f64`)
/// 1.03x, 1.00x, 0.97x and 0.94x. At 256 rows the cut took 1463 us, the
/// partitioned batch 1338 and `rayon-faer` 1411 (`-- 784 256 10
/// 64,128,192,256 9`), so with the AVX-512 machines' 256, `auto` ran that
/// batch 1.06x slower than the fastest kernel.
pub const UNITS_MAX_ROWS_AVX2: usize = 112;

/// The most rows on which `rayon-simd` cuts the first layer by hidden
/// units when its SIMD workers run `path`: [`UNITS_MAX_ROWS_AVX2`] on AVX2,
/// [`UNITS_MAX_ROWS`] on the others. `rayon-simd` and `auto` take it for
/// the CPU's widest path ([`SimdPath::widest`]).
pub fn units_max_rows_on(path: SimdPath) -> usize {
    match path {
        SimdPath::Avx2 => UNITS_MAX_ROWS_AVX2,
        SimdPath::Avx512 | SimdPath::Portable => UNITS_MAX_ROWS,
    }
}

/// A rayon backend as it is by default, or forking for every batch of more
/// than one row on the given pool with the given partitions.
fn forking_on<T: Precision, B: Backend<T> + 'static>(
    backend: RayonBackend<T, B>,
    forking: Option<(Arc<ThreadPool>, Partitions)>,
) -> Box<dyn Backend<T>> {
    match forking {
        None => Box::new(backend),
        Some((pool, partitions)) => Box::new(
            backend
                .with_pool(pool)
                .with_partitions(partitions)
                .with_parallel_threshold(0.0)
                .with_min_rows_per_partition(1),
        ),
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for BackendKind {
    type Err = Error;

    /// Reads a backend name; an unknown name's error lists the valid ones.
    fn from_str(name: &str) -> Result<Self, Error> {
        backprop_core::parse_name("backend", name, &BackendKind::ALL, BackendKind::name)
    }
}

/// The README's code, compiled and run as doctests so that it cannot go stale.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// Training on datasets (class labels or real-valued targets), evaluation,
/// checkpoints and the digits loader: the `backprop-train` crate.
pub use backprop_train as train;
