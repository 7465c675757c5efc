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
//! one rayon thread. The results are then combined on the calling thread, in
//! partition order, each weighted by its share of the rows:
//!
//! ```text
//!   rows 0 .. B                    workers (any rayon thread)        calling thread
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
//! # Why it is reproducible
//!
//! Nothing depends on work stealing: the partition boundaries depend only on
//! `B` and `P`, each partition's arithmetic is done by one sequential inner
//! backend whichever thread runs it, and the combination is a fixed sequence
//! of additions. So the same inputs and configuration give bit-identical loss
//! and gradient on every run. With [`Partitions::PerThread`] (the default),
//! `P` is the pool's thread count, so results can change with the thread
//! count. With [`Partitions::Fixed`], `P` is fixed and results are also
//! bit-identical across thread counts: a 1-thread pool runs the same
//! partitions one after another.
//!
//! # Small batches
//!
//! Forking costs microseconds, more than a whole step of a small network. A
//! step whose conventional flop count `6 B sum d_{l-1} d_l` is below the
//! backend's parallel threshold ([`DEFAULT_PARALLEL_THRESHOLD_FLOPS`] unless
//! set) runs on the calling thread: with `PerThread` as one partition, with
//! `Fixed` as the same partitions in order, so that its results stay the same.
//!
//! # Memory
//!
//! Beyond the inner backends' scratch, the accumulators cost one parameter
//! buffer per partition: for the L shape (1024-1024-1024, 2,099,200
//! parameters) in `f32`, 8.4 MB per partition, 16.8 MB on two threads.

use std::num::NonZeroUsize;
use std::ops::Range;
use std::sync::Arc;

use backprop_core::{Backend, Error, ForwardTask, GradientTask, Network, Params, Scalar};
use rayon::ThreadPool;
use rayon::prelude::*;

/// Steps below this many flops (by the conventional count) do not fork.
///
/// Measured on a 2-core machine with `cargo bench --bench step -- S/`: at
/// shape S (64-32-10, batch 64, about 0.9 Mflop) forking made the step
/// slower than the sequential backend, at the batch sweep's 256 rows of M
/// (about 300 Mflop) twice as fast.
pub const DEFAULT_PARALLEL_THRESHOLD_FLOPS: f64 = 4.0e6;

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

/// One partition's inner backend, gradient accumulator and forward outputs, reused across steps.
struct Worker<T, B> {
    backend: B,
    accumulator: Option<Params<T>>,
    outputs: Vec<T>,
    outcome: Result<T, Error>,
}

/// The accumulator, laid out for `network` (re-made only when the architecture changes).
fn fitted<'a, T: Scalar>(
    accumulator: &'a mut Option<Params<T>>,
    network: &Network<T>,
) -> &'a mut Params<T> {
    let fits = accumulator
        .as_ref()
        .is_some_and(|a| a.check_layout(network.architecture()).is_ok());
    if !fits {
        *accumulator = Some(network.zero_gradient());
    }
    accumulator.as_mut().expect("set above")
}

/// The batch-parallel backend over inner backends of type `B`.
pub struct RayonBackend<T, B> {
    name: &'static str,
    make_inner: Box<dyn Fn() -> B + Send + Sync>,
    pool: Option<Arc<ThreadPool>>,
    partitions: Partitions,
    parallel_threshold_flops: f64,
    workers: Vec<Worker<T, B>>,
}

impl<T: Scalar, B: Backend<T>> RayonBackend<T, B> {
    /// A backend named `name` whose workers each run an inner backend made by
    /// `make_inner`, which must compute sequentially (no parallelism inside
    /// parallel rayon). Uses the global rayon pool and one partition per thread.
    pub fn new(name: &'static str, make_inner: impl Fn() -> B + Send + Sync + 'static) -> Self {
        RayonBackend {
            name,
            make_inner: Box::new(make_inner),
            pool: None,
            partitions: Partitions::PerThread,
            parallel_threshold_flops: DEFAULT_PARALLEL_THRESHOLD_FLOPS,
            workers: Vec::new(),
        }
    }

    /// Runs on `pool` instead of the global pool.
    pub fn with_pool(mut self, pool: Arc<ThreadPool>) -> Self {
        self.pool = Some(pool);
        self
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

    /// The threads of the pool this backend runs on.
    pub fn threads(&self) -> usize {
        self.pool
            .as_ref()
            .map_or_else(rayon::current_num_threads, |pool| {
                pool.current_num_threads()
            })
    }

    /// The number of partitions for `rows` rows and whether to fork for them.
    fn plan(&self, network: &Network<T>, rows: usize) -> (usize, bool) {
        let fork = network.architecture().step_flops(rows) >= self.parallel_threshold_flops;
        let partitions = match self.partitions {
            Partitions::Fixed(count) => count.get(),
            Partitions::PerThread if fork => self.threads(),
            Partitions::PerThread => 1,
        };
        let partitions = partitions.min(rows).max(1);
        (partitions, fork && partitions > 1)
    }

    /// Makes sure there are at least `count` workers, creating only the missing ones.
    fn ensure_workers(&mut self, count: usize) {
        while self.workers.len() < count {
            self.workers.push(Worker {
                backend: (self.make_inner)(),
                accumulator: None,
                outputs: Vec::new(),
                outcome: Ok(T::ZERO),
            });
        }
    }

    /// Runs `work` on the first `count` workers, on the pool if `fork`.
    fn run_workers<F>(&mut self, count: usize, fork: bool, work: F)
    where
        F: Fn(usize, &mut Worker<T, B>) + Send + Sync,
    {
        let workers = &mut self.workers[..count];
        if !fork {
            workers.iter_mut().enumerate().for_each(|(c, w)| work(c, w));
            return;
        }
        let mut parallel = move || {
            workers
                .into_par_iter()
                .enumerate()
                .for_each(|(c, w)| work(c, w))
        };
        match &self.pool {
            Some(pool) => pool.install(parallel),
            None => parallel(),
        }
    }
}

/// Rows of partition `c` of `count` over `rows` rows; sizes differ by at most one.
fn partition(c: usize, count: usize, rows: usize) -> Range<usize> {
    c * rows / count..(c + 1) * rows / count
}

impl<T: Scalar, B: Backend<T>> Backend<T> for RayonBackend<T, B> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn run_forward(&mut self, task: ForwardTask<'_, T>) -> Result<(), Error> {
        let (network, inputs, outputs) = task.into_parts();
        let rows = inputs.rows();
        let m = network.architecture().output_width();
        let (count, fork) = self.plan(network, rows);
        self.ensure_workers(count);
        self.run_workers(count, fork, |c, worker| {
            let range = partition(c, count, rows);
            worker.outputs.resize(range.len() * m, T::ZERO);
            let part = inputs.sub_inputs(range).expect("a non-empty partition");
            worker.outcome = worker
                .backend
                .forward(network, &part, &mut worker.outputs)
                .map(|()| T::ZERO);
        });
        let mut rest = outputs;
        for worker in &self.workers[..count] {
            worker.outcome.clone()?;
            let (here, after) = rest.split_at_mut(worker.outputs.len());
            here.copy_from_slice(&worker.outputs);
            rest = after;
        }
        Ok(())
    }

    fn run_loss_and_gradient(&mut self, task: GradientTask<'_, T>) -> Result<T, Error> {
        let (network, batch, gradient) = task.into_parts();
        let rows = batch.rows();
        let (count, fork) = self.plan(network, rows);
        self.ensure_workers(count);
        self.run_workers(count, fork, |c, worker| {
            let part = batch
                .sub_batch(partition(c, count, rows))
                .expect("a non-empty partition");
            let accumulator = fitted(&mut worker.accumulator, network);
            // Cannot fail on shape: the sub-batch and accumulator fit the network.
            worker.outcome = worker
                .backend
                .loss_and_gradient(network, &part, accumulator);
        });
        // Combine in partition order, weighting each partition by its rows.
        gradient.fill_zero();
        let mut loss = T::ZERO;
        let total = T::from_usize(rows);
        for (c, worker) in self.workers[..count].iter().enumerate() {
            let partition_loss = worker.outcome.clone()?;
            let weight = T::from_usize(partition(c, count, rows).len()) / total;
            loss += weight * partition_loss;
            let accumulator = worker.accumulator.as_ref().expect("filled by the worker");
            gradient.axpy(weight, accumulator)?;
        }
        Ok(loss)
    }
}
