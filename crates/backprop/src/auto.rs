//! The `auto` backend: the kernel that was fastest on this project's machine for each
//! architecture and batch size, chosen per step from measured thresholds.

use std::sync::Arc;

use backprop_core::{Architecture, Backend, Error, ForwardTask, GradientTask, Scalar, SgdTask};
use rayon::ThreadPool;

use crate::{
    BackendKind, DEFAULT_PARALLEL_THRESHOLD_FLOPS, Partitions, Precision, SimdPath,
    first_layer_dominates, units_max_rows_on,
};

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

/// [`AUTO_SIMD_MIN_BATCH`] where the widest SIMD path is AVX2: one vector
/// of 8 `f32` samples, which a batch of 8 fills (AVX-512's hold 16).
///
/// Measured on a 2-core AMD EPYC of the Zen 2 family (AVX2, no AVX-512)
/// with `cargo run --release -p backprop --example auto_thresholds`: in two
/// runs of the grid `simd` won 64-32-10 at batch 8 (3.2 us against the faer
/// kernels' 3.9 us), and `-- 64-32-10 8 256-256-256 8 64-128-128-128-10 8
/// 512-512-512 8 32-16-4 8 128-64-10 8 15` (medians of paired ratios) put
/// the faer kernels 1.23x behind `simd` on 64-32-10 and 1.61x on 32-16-4,
/// and `simd` 1.07x, 1.10x and 1.05x behind faer on 256-256-256,
/// 64-128-128-128-10 and 512-512-512, whose steps stream more weights
/// (`-- ... 12 ...`: 1.20x for `simd` on 64-32-10, 1.02x and 1.08x for
/// faer on the two others). From batch 16 the SIMD kernels won every one
/// of them.
pub const AUTO_SIMD_MIN_BATCH_AVX2: usize = 8;

/// The smallest batch `auto` gives the SIMD kernels (unless `rayon-simd`
/// would cut its first layer by units) when the widest SIMD path is
/// `path`: [`AUTO_SIMD_MIN_BATCH_AVX2`] on AVX2, [`AUTO_SIMD_MIN_BATCH`] on
/// the others.
pub fn simd_min_batch_on(path: SimdPath) -> usize {
    match path {
        SimdPath::Avx2 => AUTO_SIMD_MIN_BATCH_AVX2,
        SimdPath::Avx512 | SimdPath::Portable => AUTO_SIMD_MIN_BATCH,
    }
}

/// Batches of at least this many rows go to the SIMD kernels, whatever
/// [`AUTO_SIMD_MIN_BATCH`] says, where `rayon-simd` cuts the first layer by
/// hidden units (a first layer that [dominates](first_layer_dominates), at
/// most [`units_max_rows_on`] the SIMD path rows): each thread then reads half of the first
/// layer's weights, which a small batch's step is mostly spent reading.
/// Such a step goes to `rayon-simd` as soon as it would fork there (from
/// [`DEFAULT_PARALLEL_THRESHOLD_FLOPS`]), not from
/// [`AUTO_PARALLEL_MIN_FLOPS`].
///
/// Measured on 784-256-10 with `cargo run --release -p backprop --example
/// auto_thresholds` (runs 8 and 9 of the grid, in
/// `docs/auto-thresholds.txt`): `rayon-simd` won batches 2 and 4 in both
/// (batch 2: 91.9 and 84.8 us against the faer kernels' best 108.5 and
/// 117.6 us; 2.4 Mflop, below `AUTO_PARALLEL_MIN_FLOPS`), the faer kernels
/// batch 1 (67.6 and 79.9 us against `rayon-simd`'s 125.4 and 157.1 us;
/// 1.2 Mflop, a step `rayon-simd` runs on one thread). `cargo run --release
/// -p backprop-rayon --example units_crossover` agreed in two runs (batch
/// 2: the cut 96.3 and 95.6 us against `rayon-faer`'s 114.6 and 133.8 us).
/// Before the cut kept each worker's rows of `W^1` on one thread from step
/// to step, batches 2 and 4 went to the faer kernels (runs 5 to 7).
pub const AUTO_UNITS_MIN_BATCH: usize = 2;

/// Steps with a product `B d_(l-1) d_l` (multiply-adds) of at least this
/// size go to the faer kernels, whose packed GEMM keeps large products in
/// cache better than the SIMD tiles do: `2^28`, 1024 x 1024 x 256.
///
/// Measured with `cargo run --release -p backprop --example auto_thresholds`
/// (runs 12 to 14 in `docs/auto-thresholds.txt`), since the SIMD kernel
/// transposes and copies its operands a block at a time: `rayon-simd` won
/// 784-256-10 at batch 1024 (`2^27.6`) in all three runs (3.93, 4.78 and
/// 3.42 ms against the faer kernels' best 4.59, 5.36 and 4.24 ms), which
/// faer's kernels had won before (at `2^27`). At `2^28` the winners split:
/// `rayon-simd` took 2048-512-10 at batch 256 in all three (by 9-19%) and
/// 1024-1024-1024 at 256 in two (by 2-17%), faer's kernels 512-512-512 at
/// batch 1024 in all three (by 10-17%). Above, faer's kernels won
/// 1024-1024-1024 at batch 1024 (`2^30`) every time, and 784-256-10 at
/// batch 4096 (`2^29.6`) went either way by up to 10%.
pub const AUTO_SIMD_MAX_PRODUCT: usize = 1 << 28;

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

/// The kernel `auto` runs a step of `rows` samples of `architecture` with,
/// on this CPU's widest SIMD path.
pub fn choose(architecture: &Architecture, rows: usize) -> BackendKind {
    choose_on(SimdPath::widest(), architecture, rows)
}

/// [`choose`] on a CPU whose widest SIMD path is `path`: where `rayon-simd`
/// cuts the first layer by hidden units depends on it ([`units_max_rows_on`]),
/// and so does the smallest batch the SIMD kernels get ([`simd_min_batch_on`]).
pub fn choose_on(path: SimdPath, architecture: &Architecture, rows: usize) -> BackendKind {
    let largest = architecture
        .widths()
        .windows(2)
        .map(|pair| rows.saturating_mul(pair[0]).saturating_mul(pair[1]))
        .max()
        .unwrap_or(0);
    let cut_by_units = (AUTO_UNITS_MIN_BATCH..=units_max_rows_on(path)).contains(&rows)
        && first_layer_dominates(architecture);
    let simd = (rows >= simd_min_batch_on(path) || cut_by_units) && largest < AUTO_SIMD_MAX_PRODUCT;
    let min_flops = if cut_by_units {
        DEFAULT_PARALLEL_THRESHOLD_FLOPS
    } else {
        AUTO_PARALLEL_MIN_FLOPS
    };
    let parallel = architecture.step_flops(rows) >= min_flops;
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
    /// The widest SIMD path of this CPU, which its SIMD kernels run and
    /// the choice depends on ([`choose_on`]), found once.
    path: SimdPath,
}

impl<T: Precision> AutoBackend<T> {
    /// A backend whose parallel kernels run on the global rayon pool in their
    /// default configuration.
    pub fn new() -> Self {
        AutoBackend {
            forking: None,
            kernels: Vec::new(),
            path: SimdPath::widest(),
        }
    }

    /// A backend whose parallel kernels run on `pool` with `partitions`,
    /// forking for every batch of more than one row.
    pub(crate) fn forking_on(pool: Arc<ThreadPool>, partitions: Partitions) -> Self {
        AutoBackend {
            forking: Some((pool, partitions)),
            kernels: Vec::new(),
            path: SimdPath::widest(),
        }
    }

    /// The kernel for a step of `rows` samples of `architecture`, created on first use.
    fn kernel(&mut self, architecture: &Architecture, rows: usize) -> &mut dyn Backend<T> {
        let kind = choose_on(self.path, architecture, rows);
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

#[cfg(test)]
mod tests {
    use super::{AUTO_SIMD_MIN_BATCH, AUTO_SIMD_MIN_BATCH_AVX2, AUTO_UNITS_MIN_BATCH, choose_on};
    use crate::{Architecture, BackendKind, SimdPath, UNITS_MAX_ROWS, UNITS_MAX_ROWS_AVX2};

    fn seed(n: usize, h: usize, m: usize) -> Architecture {
        Architecture::seed(n, h, m).expect("a valid architecture")
    }

    /// The choice on a CPU whose widest path is AVX-512.
    fn choose(architecture: &Architecture, rows: usize) -> BackendKind {
        choose_on(SimdPath::Avx512, architecture, rows)
    }

    #[test]
    fn each_kernel_gets_the_steps_its_constants_say() {
        use BackendKind::*;
        const { assert!(AUTO_UNITS_MIN_BATCH < AUTO_SIMD_MIN_BATCH) };
        const { assert!(AUTO_SIMD_MIN_BATCH <= UNITS_MAX_ROWS_AVX2) };
        const { assert!(UNITS_MAX_ROWS_AVX2 < UNITS_MAX_ROWS) };
        const { assert!(AUTO_UNITS_MIN_BATCH < AUTO_SIMD_MIN_BATCH_AVX2) };
        const { assert!(AUTO_SIMD_MIN_BATCH_AVX2 < AUTO_SIMD_MIN_BATCH) };
        let (m, s) = (seed(784, 256, 10), seed(64, 32, 10));
        // 784-256-10: its first layer dominates, so from AUTO_UNITS_MIN_BATCH
        // rows on it goes to the SIMD kernels, parallel from 1.5 Mflop
        // (1.2 Mflop a row; 2.4 Mflop at batch 2).
        assert_eq!(choose(&m, AUTO_UNITS_MIN_BATCH - 1), Faer);
        assert_eq!(choose(&m, AUTO_UNITS_MIN_BATCH), RayonSimd);
        assert_eq!(choose(&m, 128), RayonSimd);
        assert_eq!(choose(&m, UNITS_MAX_ROWS + 1), RayonSimd);
        // 300-256-10 (0.48 Mflop a row): a step cut by units runs on one
        // SIMD thread below 1.5 Mflop, on two from there, as rayon-simd
        // forks it.
        let narrow = seed(300, 256, 10);
        assert_eq!(choose(&narrow, 3), Simd);
        assert_eq!(choose(&narrow, 4), RayonSimd);
        // 50-20-1 (6.1 kflop a row): above UNITS_MAX_ROWS rows its steps are
        // not cut, and go parallel only from 3 Mflop again.
        let small = seed(50, 20, 1);
        let flops = |rows: usize| small.step_flops(rows);
        assert!(flops(UNITS_MAX_ROWS) >= 1.5e6 && flops(UNITS_MAX_ROWS + 1) < 3e6);
        assert_eq!(choose(&small, UNITS_MAX_ROWS), RayonSimd);
        assert_eq!(choose(&small, UNITS_MAX_ROWS + 1), Simd);
        // Products of 2^28 multiply-adds or more go to faer: batch 1338.
        assert_eq!(choose(&m, 1337), RayonSimd);
        assert_eq!(choose(&m, 1338), RayonFaer);
        // 256 x 1024 x 1024 is 2^28 exactly.
        assert_eq!(choose(&seed(1024, 1024, 10), 256), RayonFaer);
        assert_eq!(choose(&seed(1023, 1024, 10), 256), RayonSimd);
        // 256-256-256: its first layer holds half the weights.
        let even = seed(256, 256, 256);
        assert_eq!(choose(&even, AUTO_SIMD_MIN_BATCH - 1), RayonFaer);
        assert_eq!(choose(&even, AUTO_SIMD_MIN_BATCH), RayonSimd);
        // 64-32-10: below 3 Mflop (batch 212), the sequential kernels.
        assert_eq!(choose(&s, AUTO_SIMD_MIN_BATCH - 1), Faer);
        assert_eq!(choose(&s, AUTO_SIMD_MIN_BATCH), Simd);
        assert_eq!(choose(&s, 211), Simd);
        assert_eq!(choose(&s, 212), RayonSimd);
        assert_eq!(choose(&seed(1024, 1024, 1024), 1024), RayonFaer);
    }

    #[test]
    fn on_avx2_the_cut_by_units_and_the_simd_kernels_start_at_their_own_batches() {
        use BackendKind::*;
        let avx2 = |architecture: &Architecture, rows: usize| {
            choose_on(SimdPath::Avx2, architecture, rows)
        };
        // 120-20-1 (14.5 kflop a row): up to UNITS_MAX_ROWS_AVX2 rows its
        // steps are cut by units and fork from 1.5 Mflop (1.63 Mflop at 112
        // rows); past it they are not, and stay on one thread below 3 Mflop,
        // where on AVX-512 machines they would still be cut.
        let small = seed(120, 20, 1);
        let flops = |rows: usize| small.step_flops(rows);
        let rows = UNITS_MAX_ROWS_AVX2;
        assert!(flops(rows) >= 1.5e6 && flops(rows + 1) < 3e6);
        assert_eq!(avx2(&small, rows), RayonSimd);
        assert_eq!(avx2(&small, rows + 1), Simd);
        assert_eq!(choose(&small, rows + 1), RayonSimd);
        // From one vector of 8 `f32` samples the SIMD kernels, where AVX-512
        // machines wait for two.
        let (s, even) = (seed(64, 32, 10), seed(256, 256, 256));
        assert_eq!(avx2(&s, AUTO_SIMD_MIN_BATCH_AVX2 - 1), Faer);
        assert_eq!(avx2(&s, AUTO_SIMD_MIN_BATCH_AVX2), Simd);
        assert_eq!(choose(&s, AUTO_SIMD_MIN_BATCH_AVX2), Faer);
        assert_eq!(avx2(&even, AUTO_SIMD_MIN_BATCH_AVX2 - 1), RayonFaer);
        assert_eq!(avx2(&even, AUTO_SIMD_MIN_BATCH_AVX2), RayonSimd);
        // Every other rule is the same on both paths.
        let m = seed(784, 256, 10);
        for rows in [1, 2, 8, 16, 128, 256, 1337, 1338] {
            assert_eq!(avx2(&m, rows), choose(&m, rows), "784-256-10 at {rows}");
        }
        for rows in [AUTO_SIMD_MIN_BATCH, 211, 212] {
            assert_eq!(avx2(&s, rows), choose(&s, rows), "64-32-10 at {rows}");
        }
    }
}
