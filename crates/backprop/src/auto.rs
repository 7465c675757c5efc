//! The `auto` backend: the kernel that was fastest on this project's machine for each
//! architecture and batch size, chosen per step from measured thresholds.

use std::sync::Arc;

use backprop_core::{Architecture, Backend, Error, ForwardTask, GradientTask, Scalar, SgdTask};
use rayon::ThreadPool;

use crate::{BackendKind, Partitions, Precision};

/// Batches below this many rows go to the faer kernels: the SIMD kernels
/// put samples in the vector lanes (16 `f32` or 8 `f64` on AVX-512), which a
/// small batch leaves mostly empty.
///
/// Measured with `cargo run --release -p backprop --example auto_thresholds`
/// (two runs, in `docs/auto-thresholds.txt`): on 784-256-10 faer won batches
/// 1 to 4 (batch 1: 56 us against simd's 114 us), batch 8 was within 2%
/// either way, and from batch 16 on a SIMD kernel won both runs (batch 16:
/// 147 us against faer's 163 us).
pub const AUTO_SIMD_MIN_BATCH: usize = 16;

/// Steps with a product `B d_(l-1) d_l` (multiply-adds) of at least this
/// size go to the faer kernels, whose packed GEMM keeps large products in
/// cache better than the SIMD tiles do: `2^27`, 1024 x 1024 x 128.
///
/// Measured with `cargo run --release -p backprop --example auto_thresholds`
/// (`docs/auto-thresholds.txt`): faer's kernels won 1024-1024-1024 at
/// batches 256 and 1024, 512-512-512 at batch 1024 and 784-256-10 at
/// batches 1024 (`2^27.6`; rayon-faer 4.87 ms against rayon-simd's 5.79 ms
/// over 15 interleaved rounds at load average 0.3) and 4096; the SIMD
/// kernels won 784-256-10 up to batch 256 (`2^25.6`) and, within a few
/// percent either way, the products of `2^26`. (An earlier run under a load
/// average of 8 to 10, which slows the parallel kernels most, had the
/// single-thread SIMD kernel ahead at 784-256-10 batch 1024.)
pub const AUTO_SIMD_MAX_PRODUCT: usize = 1 << 27;

/// Steps of at least this many flops (by the conventional count
/// `6 B sum d_(l-1) d_l`) go to the batch-parallel kernels, which then fork
/// by their own rules (a `PerThread` partition gets at least 16 rows, and
/// a step below 1.5 Mflop runs on the calling thread).
///
/// Measured as above, 15 interleaved rounds at load average 0.3: on
/// 64-32-10, simd won batch 128 (1.8 Mflop; 13.3 us against rayon-simd's
/// 17.9 us) and rayon-simd batch 256 (3.6 Mflop; 31.7 us against 37.2 us)
/// and 1024 (110 us against 167 us); on 64-128-128-128-10 rayon-simd won
/// batch 16 (4.1 Mflop; 38.8 us against 42.7 us). Between 3.6 and 20
/// Mflop (784-256-10 at batches 8 and 16, 64-128-128-128-10 at 64) the
/// parallel and the sequential kernels were within 3% of each other.
pub const AUTO_PARALLEL_MIN_FLOPS: f64 = 3e6;

/// The kernel `auto` runs a step of `rows` samples of `architecture` with.
pub fn choose(architecture: &Architecture, rows: usize) -> BackendKind {
    let largest = architecture
        .widths()
        .windows(2)
        .map(|pair| rows.saturating_mul(pair[0]).saturating_mul(pair[1]))
        .max()
        .unwrap_or(0);
    let simd = rows >= AUTO_SIMD_MIN_BATCH && largest < AUTO_SIMD_MAX_PRODUCT;
    let parallel = architecture.step_flops(rows) >= AUTO_PARALLEL_MIN_FLOPS;
    match (simd, parallel) {
        (true, false) => BackendKind::Simd,
        (true, true) => BackendKind::RayonSimd,
        (false, false) => BackendKind::Faer,
        (false, true) => BackendKind::RayonFaer,
    }
}

/// Runs each step on the kernel [`choose`] picks for its architecture and
/// batch size, keeping one instance of each kernel it has used (with its
/// scratch) for the steps after.
///
/// Forwards every `run_*` method, the fused SGD step included, to that
/// kernel, so its results are that kernel's, bit for bit.
pub struct AutoBackend<T> {
    /// How the parallel kernels are configured (see `BackendKind::build`).
    forking: Option<(Arc<ThreadPool>, Partitions)>,
    /// The kernels used so far, in the order of first use.
    kernels: Vec<(BackendKind, Box<dyn Backend<T>>)>,
}

impl<T: Precision> AutoBackend<T> {
    /// A backend whose parallel kernels run on the global rayon pool in their
    /// default configuration.
    pub fn new() -> Self {
        AutoBackend {
            forking: None,
            kernels: Vec::new(),
        }
    }

    /// A backend whose parallel kernels run on `pool` with `partitions`,
    /// forking for every batch of more than one row.
    pub(crate) fn forking_on(pool: Arc<ThreadPool>, partitions: Partitions) -> Self {
        AutoBackend {
            forking: Some((pool, partitions)),
            kernels: Vec::new(),
        }
    }

    /// The kernel for a step of `rows` samples of `architecture`, created on first use.
    fn kernel(&mut self, architecture: &Architecture, rows: usize) -> &mut dyn Backend<T> {
        let kind = choose(architecture, rows);
        let index = match self.kernels.iter().position(|(k, _)| *k == kind) {
            Some(index) => index,
            None => {
                let backend = kind.build::<T>(self.forking.clone());
                self.kernels.push((kind, backend));
                self.kernels.len() - 1
            }
        };
        &mut *self.kernels[index].1
    }
}

impl<T: Precision> Default for AutoBackend<T> {
    fn default() -> Self {
        AutoBackend::new()
    }
}

impl<T: Scalar> std::fmt::Debug for AutoBackend<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let used: Vec<&str> = self.kernels.iter().map(|(kind, _)| kind.name()).collect();
        f.debug_struct("AutoBackend").field("used", &used).finish()
    }
}

impl<T: Precision> Backend<T> for AutoBackend<T> {
    fn name(&self) -> &'static str {
        "auto"
    }

    fn run_forward(&mut self, task: ForwardTask<'_, T>) -> Result<(), Error> {
        let rows = task.inputs().rows();
        self.kernel(task.layers().architecture(), rows)
            .run_forward(task)
    }

    fn run_loss_and_gradient(&mut self, task: GradientTask<'_, T>) -> Result<T, Error> {
        let rows = task.batch().rows();
        self.kernel(task.layers().architecture(), rows)
            .run_loss_and_gradient(task)
    }

    fn run_sgd_step(&mut self, task: SgdTask<'_, T>) -> Result<T, Error> {
        let rows = task.batch().rows();
        self.kernel(task.layers().architecture(), rows)
            .run_sgd_step(task)
    }
}
