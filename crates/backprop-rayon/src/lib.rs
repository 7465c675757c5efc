//! Batch-parallel backend: any inner backend runs on row partitions of the batch on rayon
//! workers, each adding into its own gradient accumulator, combined in a fixed order.
//!
//! # The accumulation scheme
//!
//! The batch's `B` rows are cut into `P` contiguous partitions whose sizes
//! differ by at most one. Partition `c` is owned by worker `c`: an inner
//! backend (with its scratch) and a gradient accumulator, both created once
//! and reused on every step. Each worker computes the mean loss and mean
//! gradient of its own rows with its inner backend, running sequentially on
//! one thread. The results are then combined in partition order, each
//! weighted by its share of the rows (large networks in ranges of parameters
//! on several threads, every parameter's sum in the same order):
//!
//! ```text
//!   rows 0 .. B                    workers (any thread)              combination
//!   +-----------+
//!   | part 0    | -- inner_0 --> (J_0, g_0)  --+
//!   +-----------+                              |  g = 0
//!   | part 1    | -- inner_1 --> (J_1, g_1)  --+  g += (B_0/B) g_0
//!   +-----------+                              +-> g += (B_1/B) g_1     (fixed order)
//!   |   ...     |                              |  ...
//!   | part P-1  | -- inner_P-1 -> (J_P-1, g_P-1)+  g += (B_P-1/B) g_P-1
//!   +-----------+
//! ```
//!
//! Because the seed loss is a mean over the batch, the weights `B_c / B` make
//! the combination equal to the whole-batch gradient for any batch size,
//! including batches smaller than the partition count (then each row is a
//! partition).
//!
//! # The first layer, split by hidden units
//!
//! A backend built with [`RayonBackend::splitting_first_layer`], over an
//! inner backend that offers a [`FirstLayerSplit`] (faer does), with
//! [`Partitions::PerThread`], leaves in a step that forks the first layer's weights out of the partitions'
//! gradients: each partition writes its `delta^1`, weighted by `B_c / B`,
//! into its rows of one `B x d_1` matrix, and then each worker forms a
//! block of hidden units' rows of
//! `dJ/dW^1 = delta^1^T X` over the whole batch. Only the other parameters go through the weighted
//! combination. The first layer holds most of a wide network's parameters
//! (98.6% on M, 784-256-10), and its combination read every partition's
//! copy of them; the product over the whole batch costs what the
//! partitions' products cost together.
//!
//! ```text
//!   part c -- inner_c --> J_c, gradient_c without W^1, (B_c/B) delta^1_c -> rows of D
//!   worker t: rows U_t of dJ/dW^1 = D[:, U_t]^T X        (U_t: hidden units of block t)
//!   the rest: sum over c of (B_c/B) gradient_c, in partition order
//! ```
//!
//! On M in `f32`, `cargo run --release -p backprop-rayon --example
//! fork_crossover -- 784 256 10 128 11` measured 550 us a step this way
//! against 567 us combining whole gradients (fixed partitions, as many as
//! threads) and 1006 us sequentially (medians of 11 interleaved rounds).
//! [`Partitions::Fixed`] keeps the combination of whole gradients, whose
//! bits do not depend on how the hidden units are blocked.
//!
//! # The first layer cut by hidden units
//!
//! A backend built with [`RayonBackend::first_layer_by_units`], over an
//! inner backend that offers [`FirstLayerUnits`] (simd does), goes further
//! where the first layer is nearly the whole network (at least
//! [`UNITS_MIN_FIRST_SHARE`] of the weights) and the batch is small (at
//! most [`UNITS_MAX_ROWS`] rows unless set): with [`Partitions::PerThread`], a step
//! that forks does not partition the batch at all. Each worker forms its
//! block of hidden units' first-layer activations and slopes over the whole
//! batch, the calling thread runs the layers above over the whole batch
//! down to `delta^1`, and each worker then forms its block's rows of
//! `dJ/dW^1`:
//!
//! ```text
//!   worker t: rows U_t of A^1 and act_1'(Z^1)   from X and rows U_t of W^1, b^1
//!   caller:   layers 2..L on A^1, the loss, their gradient, db^1, delta^1^T
//!   worker t: rows U_t of dJ/dW^1 = delta^1^T[U_t, :] X
//!   update:   one piece of parameters per thread, close to rows U_t of W^1
//! ```
//!
//! A partition of the batch makes every thread read all of `W^1`, half of
//! which the other thread has just updated, and write a gradient that is
//! then combined; cut by units, a thread reads and updates only its own
//! rows of `W^1`, and nothing is combined. `delta^1` stays one hidden unit
//! per row, as `A^1` comes ([`DeltaLayout::ByUnit`]), so each worker reads
//! its block's rows in one piece. Its costs grow with the batch
//! instead: every worker transposes the whole batch's inputs, and the
//! layers above run on one thread; so the batch partition takes over above
//! [`UNITS_MAX_ROWS`] rows. Over SIMD workers the cut gives the SIMD
//! kernel's own whole-batch bits on any number of threads.
//!
//! # One plan per step
//!
//! Each step is planned once, from the batch size, the network and the
//! configuration: one partition (the inner backend's own step, straight into
//! the caller's buffers), whole gradients combined, the first layer
//! split, or the first layer cut by units. The plan is carried through the
//! partitions and the combination. Whether the inner backends offer the
//! split or the cut is known from their type when the wrapper is built,
//! never asked per step or per worker. Partitions are row parts of the checked task
//! ([`GradientTask::row_parts`]), so no partition checks its shapes again.
//!
//! # A failed step changes nothing
//!
//! An SGD step writes no parameter until the whole gradient is formed: the
//! partitions, the blocks of the split first layer and the combination run
//! first, and the core's checked update ([`SgdTask::apply_update_on`]) then
//! refuses a gradient, loss or update that is not finite. So an error or a
//! panic in any worker, in any phase, leaves the network bit for bit as it
//! was (a panic is resumed on the calling thread once every worker is done).
//! The update's two passes, the core's read of the gradient that proves it
//! finite and the write, run on the pool too, one contiguous piece of
//! parameters per thread, cut as the first layer's blocks of hidden units
//! nearly are: a thread mostly reads back the weight gradient it formed,
//! instead of one thread reading every other thread's part. Measured on M (784-256-10, batch 128,
//! `f32`) with the read on the calling thread and in pieces alternating
//! step by step in one process (a throwaway probe), the update took 67.9
//! against 47.5 us a step, medians of 150 steps each.
//!
//! # Why it is reproducible
//!
//! Nothing depends on work stealing: the partition boundaries depend only on
//! `B` and `P`, each partition's arithmetic is done by one sequential inner
//! backend whichever thread runs it, the combination is a fixed sequence of
//! additions, and the blocks of hidden units of the split first layer depend
//! only on `d_1` and `P`; cut by units, the blocks depend only on `d_1` and
//! the thread count (and over SIMD workers every value is the SIMD kernel's
//! own whole-batch value). So the same inputs and configuration give bit-identical loss
//! and gradient on every run. With [`Partitions::PerThread`] (the default),
//! `P` is the pool's thread count, so results can change with the thread
//! count. With [`Partitions::Fixed`], `P` is fixed and results are also
//! bit-identical across thread counts: a 1-thread pool runs the same
//! partitions one after another.
//!
//! # Forking
//!
//! A step that forks runs its partitions on the calling thread and on
//! helpers: rayon jobs on the pool that, once a step's work is done, keep
//! spinning for a while ([`DEFAULT_LINGER`] unless set with
//! [`RayonBackend::with_linger`]) waiting for the next step, and go back to
//! the pool when none comes. Waking a sleeping rayon thread takes 70–85 us on
//! the benchmark machine, longer than a whole step of a small network, and a
//! training loop forks for every step; a spinning helper picks up the next
//! step at once. Work is handed out item by item, so the calling thread does
//! whatever no helper has taken and a step never waits for a helper that has
//! not started: a busy pool, a one-thread pool and a step called from inside
//! the pool all work. The calling thread always runs the first item itself,
//! so with the helper awake each worker's block (its rows of `W^1`, its
//! partition) stays on one thread from phase to phase and step to step.
//! While spinning, a helper lets other jobs queued on the pool run, so
//! several backends stepping at once on one pool share its threads: they
//! slow each other down but never block each other. With no such jobs it
//! yields its core to the operating system for a moment, so that when the
//! scheduler has put it on the calling thread's core, the caller still
//! runs: without that, each of the caller's steps there took as long as
//! the helper's whole linger. A helper
//! keeps a core busy while it waits; `with_linger(Duration::ZERO)` makes
//! every step wake its helpers afresh instead.
//!
//! # Small batches
//!
//! Every partition pays for a pass over all the weights and a whole
//! gradient. A step whose conventional flop count `6 B sum d_{l-1} d_l` is
//! below the backend's parallel threshold ([`DEFAULT_PARALLEL_THRESHOLD_FLOPS`]
//! unless set) runs on the calling thread: with `PerThread` as one partition,
//! with `Fixed` as the same partitions in order, so that its results stay the
//! same. `PerThread` also gives every partition at least
//! [`DEFAULT_MIN_ROWS_PER_PARTITION`] rows, unless set. A step with a single
//! partition is the inner backend's own step, straight into the caller's
//! buffers.
//!
//! # Memory
//!
//! A step on a shape seen before allocates nothing, on any thread, as long
//! as the helpers that took part in the last step are still lingering (a
//! helper spawned afresh is a boxed rayon job) and a fork has at most 16
//! items (one per thread of the pool): `tests/no_alloc.rs` counts.
//!
//! Beyond the inner backends' scratch, the accumulators cost one parameter
//! buffer per partition, made the first time a step partitions the batch
//! (never for a step of one partition, a forward pass or a step cut by
//! units): for the L shape (1024-1024-1024, 2,099,200
//! parameters) in `f32`, 8.4 MB per partition, 16.8 MB on two threads. The
//! split first layer adds one `B x d_1` matrix: 4.2 MB for L in `f32`; the
//! first layer cut by units two more (its activations and slopes), at most
//! [`UNITS_MAX_ROWS`] rows each.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use backprop_core::{
    AboveFirstTask, Architecture, Backend, Batch, DeltaLayout, Error, FirstLayerSplit,
    FirstLayerUnits, FirstUnitsTask, FirstWeightRowsTask, ForwardTask, GradientTask, LayerShape,
    Params, RowPart, RowSplit, Scalar, SgdTask, SplitGradientTask, resize_matrix, vector,
};
use rayon::ThreadPool;

mod crew;

use crew::Crew;
pub use crew::{DEFAULT_LINGER, MAX_LINGER};

/// Steps below this many flops (by the conventional count) do not fork.
///
/// A fork has a fixed cost (handing items to a helper that is already
/// spinning, and waiting for the last one) and a cost per partition that
/// grows with the network (each partition writes a whole gradient, and the
/// combination reads them all). Measured on the 2-core benchmark machine
/// with `cargo run --release -p backprop-rayon --example fork_crossover`
/// (rayon over sequential faer, forced to fork, against sequential faer, in
/// a loop of steps; f32, medians of interleaved runs), on 64-32-10: forking
/// lost at batch 16 (227 kflop: 4.8 us against 3.8 us), was about even at
/// batch 32 (455 kflop: 6.1 us against 6.5 us), and won at batch 64 (909
/// kflop: 9.3 us against 12.2 us) in that run; but at batch 64 an earlier
/// criterion run, which also forked the combination, measured 20.8 us
/// against 12.5 us, so the threshold sits above it, below batch 128, which
/// won in every run (1.8 Mflop: 15.3 us against 23.3 us in the same run).
/// The first fork after the helpers have left costs a wake-up instead
/// (70–85 us there), which a small step does not earn back: see
/// [`RayonBackend::with_linger`].
pub const DEFAULT_PARALLEL_THRESHOLD_FLOPS: f64 = 1.5e6;

/// The fewest rows a `PerThread` partition gets by default.
///
/// A partition's cost has a part that does not shrink with its rows: it
/// reads every weight and writes the gradient of at least the layers after
/// the first. Measured as above on 784-256-10: forking lost at batch 8
/// (120.7 us against 114.9 us, 4 rows a partition), was even at batch 16
/// (170.4 us against 171.6 us, 8 rows), and won from batch 32 (197.0 us
/// against 293.4 us, 16 rows).
pub const DEFAULT_MIN_ROWS_PER_PARTITION: usize = 16;

/// How the batch is cut into partitions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Partitions {
    /// One partition per thread of the pool: fastest; results are
    /// bit-identical from run to run for a given thread count.
    PerThread,
    /// A fixed number of partitions whatever the pool: results are
    /// bit-identical across thread counts too.
    Fixed(NonZeroUsize),
}

/// How a wrapper reaches the first-layer split of its inner backends. Only
/// [`RayonBackend::splitting_first_layer`] sets one, for inner backends
/// whose type offers the split.
type SplitAccess<T, B> = fn(&mut B) -> &mut dyn FirstLayerSplit<T>;

/// The inner backend as its first-layer split.
fn as_split<T: Scalar, B: FirstLayerSplit<T>>(backend: &mut B) -> &mut dyn FirstLayerSplit<T> {
    backend
}

/// How a wrapper reaches the first layer cut by hidden units of its inner
/// backends. Only [`RayonBackend::first_layer_by_units`] sets one.
type UnitsAccess<T, B> = fn(&mut B) -> &mut dyn FirstLayerUnits<T>;

/// The inner backend as its first layer cut by hidden units.
fn as_units<T: Scalar, B: FirstLayerUnits<T>>(backend: &mut B) -> &mut dyn FirstLayerUnits<T> {
    backend
}

/// The least share of a network's weights in its first layer for a step to
/// cut the first layer by hidden units (when the inner backends offer it):
/// the layers above run on one thread over the whole batch, so they must be
/// a small part of the work.
pub const UNITS_MIN_FIRST_SHARE: f64 = 0.9;

/// The most rows a step cuts the first layer by hidden units for, unless
/// set with [`RayonBackend::with_units_max_rows`].
///
/// Each worker then transposes the whole batch's inputs, and the layers
/// above run on one thread, both in proportion to the batch, while what
/// the cut saves (each thread reads only its own rows of `W^1`) does not
/// grow with it.
///
/// Measured on 784-256-10 with `cargo run --release -p backprop-rayon
/// --example units_crossover` (rayon over SIMD workers, cut by units against
/// the batch partitioned, medians of interleaved rounds, on the 2-core
/// AVX-512 machine), since the SIMD kernel transposes and copies its
/// operands a block at a time: in `f32`, one default run and two of `-- 784
/// 256 10 128,160,192,256,320,384,512 9`, the cut came out 1.06x, 1.14x
/// and 1.21x faster at 128 rows, 1.00x-1.05x at 192, 1.04x-1.11x at 256,
/// then 0.98x-1.00x at 320, 1.03x-1.04x at 384 and 0.98x-0.99x at 512;
/// in `f64` (`-- 784 256 10 128,160,192,256,320 9 f64`, twice) 1.13x-1.14x
/// at 128, 1.04x-1.08x at 192, 1.03x-1.04x at 256 and 1.07x-1.09x at 320.
/// Before that change the crossover was near 160 rows (the earlier runs are
/// in `docs/simd-speed.md`).
pub const UNITS_MAX_ROWS: usize = 256;

/// Whether the first layer of `architecture` holds at least
/// [`UNITS_MIN_FIRST_SHARE`] of its weights, as a step cut by hidden units
/// requires (see [`RayonBackend::first_layer_by_units`]).
pub fn first_layer_dominates(architecture: &Architecture) -> bool {
    let layers = architecture.layers();
    let weights: usize = layers.iter().map(|l| l.weight_count()).sum();
    layers[0].weight_count() as f64 >= UNITS_MIN_FIRST_SHARE * weights as f64
}

/// The batch-parallel backend over inner backends of type `B`.
pub struct RayonBackend<T, B> {
    name: &'static str,
    make_inner: Box<dyn Fn() -> B + Send + Sync>,
    crew: Crew,
    partitions: Partitions,
    parallel_threshold_flops: f64,
    min_rows_per_partition: usize,
    units_max_rows: usize,
    /// Set when the inner backends offer the first-layer split.
    split_access: Option<SplitAccess<T, B>>,
    /// Set when the inner backends offer the first layer cut by hidden units.
    units_access: Option<UnitsAccess<T, B>>,
    /// Worker `c`'s inner backend is `backends[c]`, the outcome of its last
    /// item `outcomes[c]`.
    backends: Vec<B>,
    outcomes: Vec<Result<T, Error>>,
    /// Partition `c`'s gradient, laid out only for steps that partition the
    /// batch. Kept apart from the inner backends so that the combination can
    /// read every partition's from any thread (a backend need not be `Sync`).
    accumulators: Vec<Params<T>>,
    /// `delta^1` of the whole batch: partition after partition (`B x d_1`)
    /// when the first layer's weight gradient is split by hidden units, one
    /// hidden unit per row (`d_1 x B`) when the first layer is cut by units.
    first_delta: Vec<T>,
    /// The first layer's activations and slopes of the whole batch, one
    /// hidden unit per row (`d_1 x B`), when the first layer is cut by
    /// hidden units.
    first_activations: Vec<T>,
    first_slopes: Vec<T>,
}

/// How a step that runs more than one partition is laid out.
struct Plan<T, B> {
    /// The batch's rows, one part per partition.
    split: RowSplit,
    scheme: Scheme<T, B>,
}

/// What the partitions compute and how they are combined.
enum Scheme<T, B> {
    /// Every partition a whole gradient, combined in partition order; the
    /// partitions run on the pool if `fork`, else one after another here.
    Whole { fork: bool },
    /// On the pool, every partition a gradient without the first layer's
    /// weights and its share of `delta^1`; then that weight gradient over
    /// the whole batch, one block of hidden units per worker.
    SplitFirst {
        first_layer: LayerShape,
        access: SplitAccess<T, B>,
    },
}

/// A step with the first layer cut by hidden units: on the pool, the first
/// layer's activations over the whole batch, one block of hidden units per
/// worker; here, the layers above over the whole batch, down to `delta^1`;
/// on the pool again, the first layer's weight gradient, one block of
/// hidden units per worker.
struct UnitsPlan<T, B> {
    first_layer: LayerShape,
    /// The first layer's hidden units, one block per worker.
    blocks: RowSplit,
    access: UnitsAccess<T, B>,
    split: SplitAccess<T, B>,
}

/// How a gradient step runs, planned once per step: the cut by units
/// where it applies, else the partitions' plan, else the inner backend's
/// own step.
enum Step<T, B> {
    Single,
    Partitions(Plan<T, B>),
    Units(UnitsPlan<T, B>),
}

impl<T, B> Step<T, B> {
    fn forks(&self) -> bool {
        match self {
            Step::Single => false,
            Step::Partitions(plan) => plan.forks(),
            Step::Units(_) => true,
        }
    }
}

impl<T, B> Plan<T, B> {
    fn forks(&self) -> bool {
        match self.scheme {
            Scheme::Whole { fork } => fork,
            Scheme::SplitFirst { .. } => true,
        }
    }
}

impl<T: Scalar, B: Backend<T>> RayonBackend<T, B> {
    /// A backend named `name` whose workers each run an inner backend made by
    /// `make_inner`, which must compute sequentially (no parallelism inside
    /// parallel rayon). Uses the global rayon pool and one partition per
    /// thread; every partition computes a whole gradient.
    pub fn new(name: &'static str, make_inner: impl Fn() -> B + Send + Sync + 'static) -> Self {
        RayonBackend {
            name,
            make_inner: Box::new(make_inner),
            crew: Crew::new(),
            partitions: Partitions::PerThread,
            parallel_threshold_flops: DEFAULT_PARALLEL_THRESHOLD_FLOPS,
            min_rows_per_partition: DEFAULT_MIN_ROWS_PER_PARTITION,
            units_max_rows: UNITS_MAX_ROWS,
            split_access: None,
            units_access: None,
            backends: Vec::new(),
            outcomes: Vec::new(),
            accumulators: Vec::new(),
            first_delta: Vec::new(),
            first_activations: Vec::new(),
            first_slopes: Vec::new(),
        }
    }

    /// Runs on `pool` instead of the global pool.
    pub fn with_pool(mut self, pool: Arc<ThreadPool>) -> Self {
        self.crew.pool = Some(pool);
        self
    }

    /// Lets the pool threads that helped with a step spin for `linger`
    /// waiting for the next one ([`DEFAULT_LINGER`] unless set), so that a
    /// step does not pay for waking a sleeping thread; `Duration::ZERO` lets
    /// them go at once. A linger above [`MAX_LINGER`] is taken as `MAX_LINGER`.
    pub fn with_linger(mut self, linger: Duration) -> Self {
        self.crew.linger = linger.min(MAX_LINGER);
        self
    }

    /// How long helpers spin for the next step (see [`RayonBackend::with_linger`]).
    pub fn linger(&self) -> Duration {
        self.crew.linger
    }

    /// Cuts batches into `partitions`.
    pub fn with_partitions(mut self, partitions: Partitions) -> Self {
        self.partitions = partitions;
        self
    }

    /// Steps below `flops` (by the conventional count) run on the calling
    /// thread; `0.0` forks whenever there is more than one partition.
    pub fn with_parallel_threshold(mut self, flops: f64) -> Self {
        self.parallel_threshold_flops = flops;
        self
    }

    /// With [`Partitions::PerThread`], gives each partition at least `rows`
    /// rows (at least 1), using fewer partitions than threads for small batches.
    pub fn with_min_rows_per_partition(mut self, rows: usize) -> Self {
        self.min_rows_per_partition = rows.max(1);
        self
    }

    /// Cuts the first layer by hidden units (when the inner backends offer
    /// it) on batches of at most `rows` rows ([`UNITS_MAX_ROWS`] unless
    /// set); `0` never does.
    pub fn with_units_max_rows(mut self, rows: usize) -> Self {
        self.units_max_rows = rows;
        self
    }

    /// The threads of the pool this backend runs on.
    pub fn threads(&self) -> usize {
        self.crew.threads()
    }

    /// The plan for a step on `rows` rows of `architecture`, or `None` for
    /// one partition.
    ///
    /// `PerThread` uses as many partitions as there are threads and at least
    /// `min_rows_per_partition` rows in each, and splits the first layer
    /// when the inner backends offer it; `Fixed` uses its own count whatever
    /// the size, so that its results never depend on it, and never splits.
    /// Either way no partition is empty, and a step below the flop threshold
    /// does not fork.
    fn plan(&self, architecture: &Architecture, rows: usize) -> Option<Plan<T, B>> {
        let fork = architecture.step_flops(rows) >= self.parallel_threshold_flops;
        let count = match self.partitions {
            Partitions::Fixed(count) => count.get(),
            Partitions::PerThread if fork => self.threads().min(rows / self.min_rows_per_partition),
            Partitions::PerThread => 1,
        };
        let split = RowSplit::new(rows, count);
        if split.count() == 1 {
            return None;
        }
        let scheme = match (self.partitions, self.split_access) {
            (Partitions::PerThread, Some(access)) if fork => Scheme::SplitFirst {
                first_layer: architecture.layers()[0],
                access,
            },
            _ => Scheme::Whole { fork },
        };
        Some(Plan { split, scheme })
    }

    /// The plan for a step on `rows` rows of `architecture` with the first
    /// layer cut by hidden units, or `None` when that is not the step's
    /// scheme: it needs inner backends that offer it,
    /// [`Partitions::PerThread`], a step at or above the flop threshold, at
    /// most [`RayonBackend::with_units_max_rows`] rows, a first layer that
    /// [dominates](first_layer_dominates), and at least two threads and two
    /// hidden units.
    fn units_plan(&self, architecture: &Architecture, rows: usize) -> Option<UnitsPlan<T, B>> {
        let (Partitions::PerThread, Some(access), Some(split)) =
            (self.partitions, self.units_access, self.split_access)
        else {
            return None;
        };
        let first_layer = architecture.layers()[0];
        let blocks = RowSplit::new(first_layer.outputs, self.threads());
        let wanted = architecture.step_flops(rows) >= self.parallel_threshold_flops
            && rows <= self.units_max_rows
            && first_layer_dominates(architecture)
            && blocks.count() > 1;
        wanted.then_some(UnitsPlan {
            first_layer,
            blocks,
            access,
            split,
        })
    }

    /// How a gradient step on `rows` rows of `architecture` runs.
    fn step(&self, architecture: &Architecture, rows: usize) -> Step<T, B> {
        if let Some(units) = self.units_plan(architecture, rows) {
            return Step::Units(units);
        }
        match self.plan(architecture, rows) {
            Some(plan) => Step::Partitions(plan),
            None => Step::Single,
        }
    }

    /// Makes sure there are at least `count` workers, creating only the
    /// missing ones.
    fn ensure_workers(&mut self, count: usize) {
        while self.backends.len() < count {
            self.backends.push((self.make_inner)());
            self.outcomes.push(Ok(T::ZERO));
        }
    }

    /// Makes sure there are at least `count` workers and that the first
    /// `count` accumulators are laid out for `architecture`, creating only
    /// the missing ones; [`Error::TooLarge`] if one cannot be allocated.
    fn ensure_partitions(
        &mut self,
        count: usize,
        architecture: &Architecture,
    ) -> Result<(), Error> {
        self.ensure_workers(count);
        for accumulator in self.accumulators.iter_mut().take(count) {
            if accumulator.check_layout(architecture).is_err() {
                *accumulator = Params::try_zeros(architecture)?;
            }
        }
        while self.accumulators.len() < count {
            self.accumulators.push(Params::try_zeros(architecture)?);
        }
        Ok(())
    }

    /// The first worker's inner backend, for a step of one partition: its
    /// result is then exactly the combination's (a weight of `B / B = 1`),
    /// without an accumulator and the extra pass.
    fn single(&mut self) -> &mut B {
        self.ensure_workers(1);
        &mut self.backends[0]
    }
}

impl<T: Scalar, B: FirstLayerSplit<T>> RayonBackend<T, B> {
    /// Like [`RayonBackend::new`], over inner backends that offer the
    /// first-layer split: with [`Partitions::PerThread`], a step that forks
    /// forms the first layer's weight gradient over the whole batch, one
    /// block of hidden units per worker (see the crate docs).
    pub fn splitting_first_layer(
        name: &'static str,
        make_inner: impl Fn() -> B + Send + Sync + 'static,
    ) -> Self {
        let mut backend = RayonBackend::new(name, make_inner);
        backend.split_access = Some(as_split::<T, B>);
        backend
    }
}

impl<T: Scalar, B: FirstLayerUnits<T>> RayonBackend<T, B> {
    /// Like [`RayonBackend::splitting_first_layer`], over inner backends
    /// that also cut the first layer's forward pass by hidden units: with
    /// [`Partitions::PerThread`], a step that forks, on at most
    /// [`UNITS_MAX_ROWS`] rows (unless set with
    /// [`RayonBackend::with_units_max_rows`]) of a network whose first layer
    /// [dominates](first_layer_dominates), runs that layer, forward and
    /// weight gradient, one block of hidden units per worker over the whole
    /// batch, and the layers above on the calling thread (see the crate
    /// docs); other steps run as [`RayonBackend::splitting_first_layer`] does.
    pub fn first_layer_by_units(
        name: &'static str,
        make_inner: impl Fn() -> B + Send + Sync + 'static,
    ) -> Self {
        let mut backend = RayonBackend::splitting_first_layer(name, make_inner);
        backend.units_access = Some(as_units::<T, B>);
        backend
    }
}

impl<T: Scalar, B: Backend<T>> Backend<T> for RayonBackend<T, B> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn run_forward(&mut self, task: ForwardTask<'_, T>) -> Result<(), Error> {
        let architecture = task.layers().architecture();
        let Some(plan) = self.plan(architecture, task.inputs().rows()) else {
            return self.single().run_forward(task);
        };
        let count = plan.split.count();
        self.ensure_workers(count);
        let RayonBackend {
            crew,
            backends,
            outcomes,
            ..
        } = self;
        let workers = backends[..count].iter_mut().zip(&mut outcomes[..count]);
        let parts = workers.zip(task.into_row_parts(count));
        crew.spread_if(plan.forks(), parts, &|((backend, outcome), part)| {
            *outcome = backend.run_forward(part).map(|()| T::ZERO);
        });
        first_error(&self.outcomes[..count])?;
        Ok(())
    }

    fn run_loss_and_gradient(&mut self, task: GradientTask<'_, T>) -> Result<T, Error> {
        let step = self.step(task.layers().architecture(), task.batch().rows());
        self.gradient(&step, task)
    }

    /// One SGD step: the gradient as [`Backend::run_loss_and_gradient`]
    /// forms it, then the core's checked update
    /// ([`SgdTask::apply_update_on`]): the core's read of the gradient that
    /// proves the update finite, and then the update itself, each in one
    /// contiguous piece of parameters per thread on the pool, so that each
    /// thread reads the part of the gradient it last wrote, where it can.
    /// No parameter is written before every partition, every block of the
    /// split first layer and the whole combination have finished and the
    /// gradient, the loss and the updated values are known to be finite, so
    /// an error or a panic on any worker leaves the network as it was (the
    /// update's own items are the core's `vector::axpy` on pieces of equal
    /// length, which cannot panic).
    ///
    /// A step of one partition is the inner backend's own step.
    fn run_sgd_step(&mut self, mut task: SgdTask<'_, T>) -> Result<T, Error> {
        let step = self.step(task.layers().architecture(), task.batch().rows());
        if let Step::Single = step {
            return self.single().run_sgd_step(task);
        }
        let loss = self.gradient(&step, task.gradient_task())?;
        let pieces = if step.forks() { self.threads() } else { 1 };
        let crew = &mut self.crew;
        task.apply_update_on(loss, pieces, &mut |count, work| crew.run(count, work))
    }
}

/// The first error among workers' outcomes, if any.
fn first_error<T>(outcomes: &[Result<T, Error>]) -> Result<(), Error> {
    match outcomes.iter().find_map(|outcome| outcome.as_ref().err()) {
        Some(error) => Err(error.clone()),
        None => Ok(()),
    }
}

/// Parameters per block of the combination: small enough for a block of
/// every accumulator to stay in cache; the combination forks only when every
/// thread gets at least one.
const COMBINE_BLOCK: usize = 1 << 14;

impl<T: Scalar, B: Backend<T>> RayonBackend<T, B> {
    /// The loss and gradient of `task`, as `step` plans them.
    fn gradient(&mut self, step: &Step<T, B>, task: GradientTask<'_, T>) -> Result<T, Error> {
        let plan = match step {
            Step::Single => return self.single().run_loss_and_gradient(task),
            Step::Units(units) => return self.units_gradient(units, task),
            Step::Partitions(plan) => plan,
        };
        let architecture = task.layers().architecture();
        let parts = task.row_parts(plan.split.count());
        let loss = self.run_partitions(plan, architecture, parts)?;
        let (_, batch, mut gradient) = task.into_parts();
        self.combine(plan, batch, gradient.as_mut_slice())?;
        Ok(loss)
    }

    /// Runs the inner backends on the batch's row parts as `plan` says,
    /// leaving each partition's gradient in its worker, and returns the loss
    /// (the partitions' losses weighted by their shares of the rows), or the
    /// first partition's error.
    fn run_partitions<'p>(
        &mut self,
        plan: &Plan<T, B>,
        architecture: &Architecture,
        parts: impl Iterator<Item = RowPart<'p, T>>,
    ) -> Result<T, Error> {
        let count = plan.split.count();
        self.ensure_partitions(count, architecture)?;
        let RayonBackend {
            crew,
            backends,
            outcomes,
            accumulators,
            first_delta,
            ..
        } = self;
        let workers = backends[..count]
            .iter_mut()
            .zip(&mut accumulators[..count])
            .zip(&mut outcomes[..count]);
        if let Scheme::SplitFirst {
            first_layer,
            access,
        } = plan.scheme
        {
            let (rows, hidden) = (plan.split.rows(), first_layer.outputs);
            resize_matrix(first_delta, "first-layer delta", rows, hidden)?;
            let deltas = plan.split.pieces(first_delta, hidden);
            let items = workers.zip(parts).zip(deltas);
            crew.spread(items, &|(
                (((backend, accumulator), outcome), part),
                delta,
            )| {
                let share = part.share();
                let task = part.with_gradient(accumulator);
                *outcome = SplitGradientTask::new(task, &mut *delta)
                    .and_then(|task| access(backend).run_gradient_but_first_weights(task));
                vector::scale(delta, share);
            });
        } else {
            crew.spread_if(plan.forks(), workers.zip(parts), &|(
                ((backend, accumulator), outcome),
                part,
            )| {
                let task = part.with_gradient(accumulator);
                *outcome = backend.run_loss_and_gradient(task);
            });
        }
        let mut loss = T::ZERO;
        for (c, outcome) in self.outcomes[..count].iter().enumerate() {
            loss += plan.split.share::<T>(c) * outcome.clone()?;
        }
        Ok(loss)
    }

    /// Combines the partitions' results into `gradient`: the first layer's
    /// weights by [`Self::first_weight_rows`] if they were split, every other
    /// parameter by [`Self::combine_from`]. Every size is checked before the
    /// first value is written.
    fn combine(
        &mut self,
        plan: &Plan<T, B>,
        batch: Batch<'_, T>,
        gradient: &mut [T],
    ) -> Result<(), Error> {
        let Scheme::SplitFirst {
            first_layer,
            access,
        } = plan.scheme
        else {
            self.combine_from(0, plan, gradient);
            return Ok(());
        };
        let end = first_layer.weight_range().end;
        let (first, others) = gradient.split_at_mut(end);
        let blocks = RowSplit::new(first_layer.outputs, plan.split.count());
        let layout = DeltaLayout::BySample;
        self.first_weight_rows(blocks, access, (batch, layout), first)?;
        self.combine_from(end, plan, others);
        Ok(())
    }

    /// The loss and gradient with the first layer cut by hidden units (see
    /// [`UnitsPlan`]), straight into the task's gradient: no partition and
    /// no combination. Every block's sizes are checked before any block of
    /// a phase runs, and no phase starts after one that failed.
    fn units_gradient(
        &mut self,
        plan: &UnitsPlan<T, B>,
        mut task: GradientTask<'_, T>,
    ) -> Result<T, Error> {
        let (first_layer, blocks, access) = (plan.first_layer, plan.blocks, plan.access);
        let (hidden, rows) = (first_layer.outputs, task.batch().rows());
        self.ensure_workers(blocks.count());
        resize_matrix(
            &mut self.first_activations,
            "first-layer activations",
            hidden,
            rows,
        )?;
        resize_matrix(&mut self.first_slopes, "first-layer slopes", hidden, rows)?;
        resize_matrix(&mut self.first_delta, "first-layer delta", hidden, rows)?;
        let (layers, inputs) = (task.layers(), task.batch().inputs());
        let RayonBackend {
            crew,
            backends,
            outcomes,
            first_activations,
            first_slopes,
            first_delta,
            ..
        } = self;
        let outputs = blocks
            .pieces(first_activations, rows)
            .zip(blocks.pieces(first_slopes, rows));
        let tasks = outputs
            .enumerate()
            .map(|(t, (a, s))| FirstUnitsTask::new(layers, inputs, blocks.range(t), a, s));
        let items = backends
            .iter_mut()
            .zip(outcomes.iter_mut())
            .zip(tasks)
            .map(|(worker, task)| task.map(|task| (worker, task)));
        crew.try_spread(items, &|((backend, outcome), task)| {
            *outcome = access(backend)
                .run_first_layer_units(task)
                .map(|()| T::ZERO);
        })?;
        first_error(&outcomes[..blocks.count()])?;
        let above = SplitGradientTask::new(task.reborrow(), first_delta)
            .and_then(|split| AboveFirstTask::new(split, first_activations, first_slopes))?;
        let loss = access(&mut backends[0]).run_gradient_above_first(above)?;
        let (_, batch, mut gradient) = task.into_parts();
        let end = first_layer.weight_range().end;
        let first = &mut gradient.as_mut_slice()[..end];
        let layout = DeltaLayout::ByUnit;
        self.first_weight_rows(blocks, plan.split, (batch, layout), first)?;
        Ok(loss)
    }

    /// Forms the first layer's weight gradient `delta^1^T X` over the whole
    /// batch into `gradient` (those weights only), one block of hidden units
    /// per worker, from `delta^1` in the layout given. Every block's sizes
    /// are checked before any block runs.
    fn first_weight_rows(
        &mut self,
        blocks: RowSplit,
        access: SplitAccess<T, B>,
        (batch, layout): (Batch<'_, T>, DeltaLayout),
        gradient: &mut [T],
    ) -> Result<(), Error> {
        let inputs = batch.inputs().matrix();
        let (hidden, n, rows) = (blocks.rows(), inputs.cols(), inputs.rows());
        let delta = layout.matrix(&self.first_delta[..], rows, hidden)?;
        let tasks = blocks.pieces(gradient, n).enumerate().map(|(t, out)| {
            FirstWeightRowsTask::with_layout(layout, delta, inputs, blocks.range(t), out)
        });
        let items = self.backends[..blocks.count()]
            .iter_mut()
            .zip(tasks)
            .map(|(backend, task)| task.map(|task| (backend, task)));
        self.crew.try_spread(items, &|(backend, mut task)| {
            access(backend).run_first_weight_rows(&mut task);
        })
    }

    /// Combines the partitions' gradients of the parameters from `offset` on
    /// in partition order, each weighted by its share `B_c / B` of the rows,
    /// into `gradient`, which starts at `offset`.
    ///
    /// Every parameter's sum runs over the partitions in the same order
    /// whichever thread computes it, so splitting the parameters into blocks
    /// on the pool changes no bit.
    fn combine_from(&mut self, offset: usize, plan: &Plan<T, B>, gradient: &mut [T]) {
        let split = plan.split;
        let count = split.count();
        let threads = self.threads();
        let RayonBackend {
            crew, accumulators, ..
        } = self;
        let accumulator = |c: usize| &accumulators[c].as_slice()[offset..];
        let combine_block = |start: usize, block: &mut [T]| {
            let end = start + block.len();
            vector::scale_into(block, split.share(0), &accumulator(0)[start..end]);
            for c in 1..count {
                vector::axpy(block, split.share(c), &accumulator(c)[start..end]);
            }
        };
        // In blocks that stay in cache.
        let combine_range = |start: usize, gradient: &mut [T]| {
            for (k, block) in gradient.chunks_mut(COMBINE_BLOCK).enumerate() {
                combine_block(start + k * COMBINE_BLOCK, block);
            }
        };
        // One contiguous range of parameters per thread, of at least a block:
        // a network with fewer parameters combines on the calling thread.
        let range = gradient.len().div_ceil(threads).max(COMBINE_BLOCK);
        if !plan.forks() || range >= gradient.len() {
            combine_range(0, gradient);
            return;
        }
        let ranges = gradient.chunks_mut(range).enumerate();
        crew.spread(ranges, &|(k, g)| combine_range(k * range, g));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use backprop_core::{Architecture, Backend, Batch, Inputs, MatrixRef, Network};
    use backprop_simd::SimdBackend;

    use super::RayonBackend;

    #[test]
    fn accumulators_are_made_only_for_steps_that_partition_the_batch() {
        // 40-9-3: the first layer holds 360 of the 387 weights.
        let architecture = Architecture::seed(40, 9, 3).expect("40-9-3");
        let mut network = Network::<f64>::init(architecture.clone(), 1);
        let mut gradient = network.zero_gradient();
        let pool = Arc::new(
            rayon::ThreadPoolBuilder::new()
                .num_threads(2)
                .build()
                .expect("a pool"),
        );
        let backend = RayonBackend::first_layer_by_units("units", SimdBackend::<f64>::new)
            .with_pool(pool)
            .with_parallel_threshold(0.0)
            .with_min_rows_per_partition(1);
        let x: Vec<f64> = (0..80 * 40).map(|i| (i % 7) as f64 / 7.0).collect();
        let y = vec![0.5; 80 * 3];
        let mut step = |backend: &mut RayonBackend<f64, SimdBackend<f64>>, rows: usize| {
            let batch = Batch::from_slices(&architecture, rows, &x[..rows * 40], &y[..rows * 3])
                .expect("a batch");
            backend
                .sgd_step(&mut network, &batch, &mut gradient, 0.1)
                .expect("a step");
            let inputs = Inputs::new(MatrixRef::new(&x[..rows * 40], rows, 40).expect("X"));
            let mut outputs = vec![0.0; rows * 3];
            backend
                .forward(&network, &inputs.expect("inputs"), &mut outputs)
                .expect("a forward pass");
        };
        // One row, one partition: one worker, no accumulator.
        let mut backend = backend.with_units_max_rows(0);
        step(&mut backend, 1);
        assert_eq!((backend.backends.len(), backend.accumulators.len()), (1, 0));
        // Cut by units: two workers, no accumulator.
        let mut backend = backend.with_units_max_rows(64);
        step(&mut backend, 64);
        assert_eq!((backend.backends.len(), backend.accumulators.len()), (2, 0));
        // Partitioned: one accumulator per partition.
        step(&mut backend, 80);
        assert_eq!((backend.backends.len(), backend.accumulators.len()), (2, 2));
    }
}
