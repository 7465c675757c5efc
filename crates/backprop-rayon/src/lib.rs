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
//! With [`Partitions::PerThread`] and an inner backend that offers a
//! [`FirstLayerSplit`](backprop_core::FirstLayerSplit) (faer does), a step
//! that forks leaves the first layer's weights out of the partitions'
//! gradients: each partition writes its `delta^1`, weighted by `B_c / B`,
//! into its rows of one `B x d_1` matrix, and then each worker forms a
//! block of hidden units' rows of
//! `dJ/dW^1 = delta^1^T X` over the whole batch, updating those weights at
//! once in an SGD step. Only the other parameters go through the weighted
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
//! # Why it is reproducible
//!
//! Nothing depends on work stealing: the partition boundaries depend only on
//! `B` and `P`, each partition's arithmetic is done by one sequential inner
//! backend whichever thread runs it, the combination is a fixed sequence of
//! additions, and the blocks of hidden units of the split first layer depend
//! only on `d_1` and `P`. So the same inputs and configuration give bit-identical loss
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
//! the pool all work. While spinning, a helper lets other jobs queued on the
//! pool run, so several backends stepping at once on one pool share its
//! threads: they slow each other down but never block each other. A helper
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
//! Beyond the inner backends' scratch, the accumulators cost one parameter
//! buffer per partition: for the L shape (1024-1024-1024, 2,099,200
//! parameters) in `f32`, 8.4 MB per partition, 16.8 MB on two threads. The
//! split first layer adds one `B x d_1` matrix: 4.2 MB for L in `f32`.

use std::num::NonZeroUsize;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use backprop_core::{
    Backend, Batch, Error, ForwardTask, GradientTask, LayerShape, MatrixRef, Network, Params,
    Scalar, check_learning_rate, vector,
};
use rayon::ThreadPool;

mod crew;

use crew::Crew;
pub use crew::DEFAULT_LINGER;

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

/// What a partition's worker leaves for the combination. Kept apart from
/// the inner backends so that the combination can read every partition's
/// results from any thread (a backend need not be `Sync`).
struct PartitionResults<T> {
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
    crew: Crew,
    partitions: Partitions,
    parallel_threshold_flops: f64,
    min_rows_per_partition: usize,
    /// Partition `c`'s inner backend is `backends[c]`, its results `results[c]`.
    backends: Vec<B>,
    results: Vec<PartitionResults<T>>,
    /// `delta^1` of the whole batch, partition after partition, when the
    /// first layer's weight gradient is split by hidden units.
    first_delta: Vec<T>,
}

impl<T: Scalar, B: Backend<T>> RayonBackend<T, B> {
    /// A backend named `name` whose workers each run an inner backend made by
    /// `make_inner`, which must compute sequentially (no parallelism inside
    /// parallel rayon). Uses the global rayon pool and one partition per thread.
    pub fn new(name: &'static str, make_inner: impl Fn() -> B + Send + Sync + 'static) -> Self {
        RayonBackend {
            name,
            make_inner: Box::new(make_inner),
            crew: Crew::new(),
            partitions: Partitions::PerThread,
            parallel_threshold_flops: DEFAULT_PARALLEL_THRESHOLD_FLOPS,
            min_rows_per_partition: DEFAULT_MIN_ROWS_PER_PARTITION,
            backends: Vec::new(),
            results: Vec::new(),
            first_delta: Vec::new(),
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
    /// them go at once.
    pub fn with_linger(mut self, linger: Duration) -> Self {
        self.crew.linger = linger;
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

    /// With [`Partitions::PerThread`], gives each partition at least `rows`
    /// rows (at least 1), using fewer partitions than threads for small batches.
    pub fn with_min_rows_per_partition(mut self, rows: usize) -> Self {
        self.min_rows_per_partition = rows.max(1);
        self
    }

    /// The threads of the pool this backend runs on.
    pub fn threads(&self) -> usize {
        self.crew.threads()
    }

    /// The number of partitions for `rows` rows and whether to fork for them.
    ///
    /// `PerThread` uses as many partitions as there are threads and at least
    /// `min_rows_per_partition` rows in each; `Fixed` uses its own count
    /// whatever the size, so that its results never depend on it. Either way,
    /// no partition is empty, and a step below the flop threshold does not fork.
    fn plan(&self, network: &Network<T>, rows: usize) -> (usize, bool) {
        let fork = network.architecture().step_flops(rows) >= self.parallel_threshold_flops;
        let partitions = match self.partitions {
            Partitions::Fixed(count) => count.get(),
            Partitions::PerThread if fork => self.threads().min(rows / self.min_rows_per_partition),
            Partitions::PerThread => 1,
        };
        let partitions = partitions.min(rows).max(1);
        (partitions, fork && partitions > 1)
    }

    /// Makes sure there are at least `count` workers, creating only the missing ones.
    fn ensure_workers(&mut self, count: usize) {
        while self.backends.len() < count {
            self.backends.push((self.make_inner)());
            self.results.push(PartitionResults {
                accumulator: None,
                outputs: Vec::new(),
                outcome: Ok(T::ZERO),
            });
        }
    }

    /// Runs `work` on the first `count` partitions' backends and results, on the pool if `fork`.
    fn run_workers<F>(&mut self, count: usize, fork: bool, work: F)
    where
        F: Fn(usize, &mut B, &mut PartitionResults<T>) + Send + Sync,
    {
        let workers = self.backends[..count]
            .iter_mut()
            .zip(&mut self.results[..count]);
        self.crew
            .spread_if(fork, workers.enumerate(), &|(c, (backend, results))| {
                work(c, backend, results)
            });
    }
}

/// How a step's partitions were run, for their combination.
struct Partitioned {
    count: usize,
    rows: usize,
    fork: bool,
    /// The first layer's shape when its weight gradient is split by hidden units.
    first_layer: Option<LayerShape>,
}

/// `values` cut into `count` consecutive pieces, piece `c` holding the rows
/// `partition(c, count, rows)` of `width` values each.
fn pieces<T>(mut values: &mut [T], count: usize, rows: usize, width: usize) -> Vec<&mut [T]> {
    (0..count)
        .map(|c| {
            let (piece, rest) =
                std::mem::take(&mut values).split_at_mut(partition(c, count, rows).len() * width);
            values = rest;
            piece
        })
        .collect()
}

/// The weight `B_c / B` of partition `c` of `count` over `rows` rows.
fn share<T: Scalar>(c: usize, count: usize, rows: usize) -> T {
    T::from_usize(partition(c, count, rows).len()) / T::from_usize(rows)
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
        self.run_workers(count, fork, |c, backend, results| {
            let range = partition(c, count, rows);
            results.outputs.resize(range.len() * m, T::ZERO);
            let part = inputs.sub_inputs(range).expect("a non-empty partition");
            results.outcome = backend
                .forward(network, &part, &mut results.outputs)
                .map(|()| T::ZERO);
        });
        let mut rest = outputs;
        for results in &self.results[..count] {
            results.outcome.clone()?;
            let (here, after) = rest.split_at_mut(results.outputs.len());
            here.copy_from_slice(&results.outputs);
            rest = after;
        }
        Ok(())
    }

    fn run_loss_and_gradient(&mut self, task: GradientTask<'_, T>) -> Result<T, Error> {
        let (network, batch, gradient) = task.into_parts();
        if let Some(inner) = self.single_partition(network, batch.rows()) {
            return inner.loss_and_gradient(network, &batch, gradient);
        }
        let (parts, loss) = self.run_partitions(network, &batch)?;
        self.combine(parts, &batch, gradient.as_mut_slice(), None);
        Ok(loss)
    }

    /// One SGD step with the update fused into the combination of the
    /// partitions' gradients: each parameter is updated right after its
    /// gradient is summed, on the pool when the step forks. Gives the same
    /// bits as [`Backend::loss_and_gradient`] followed by
    /// [`Network::apply_sgd`].
    fn sgd_step(
        &mut self,
        network: &mut Network<T>,
        batch: &Batch<'_, T>,
        gradient: &mut Params<T>,
        learning_rate: T,
    ) -> Result<T, Error> {
        check_learning_rate(learning_rate)?;
        GradientTask::new(network, *batch, gradient)?;
        if let Some(inner) = self.single_partition(network, batch.rows()) {
            return inner.sgd_step(network, batch, gradient, learning_rate);
        }
        let (parts, loss) = self.run_partitions(network, batch)?;
        let update = Some((network.param_values_mut(), -learning_rate));
        self.combine(parts, batch, gradient.as_mut_slice(), update);
        Ok(loss)
    }
}

/// Parameters per block of the combination: small enough for a block of
/// every accumulator to stay in cache; the combination forks only when every
/// thread gets at least one.
const COMBINE_BLOCK: usize = 1 << 14;

impl<T: Scalar, B: Backend<T>> RayonBackend<T, B> {
    /// The inner backend alone, when the plan for `rows` rows is one
    /// partition: its result is then exactly the combination's (a weight of
    /// `B / B = 1`), without the accumulator and the extra pass.
    fn single_partition(&mut self, network: &Network<T>, rows: usize) -> Option<&mut B> {
        if self.plan(network, rows).0 != 1 {
            return None;
        }
        self.ensure_workers(1);
        self.backends.first_mut()
    }

    /// Runs the inner backends on the batch's partitions, leaving each
    /// partition's gradient in its worker, and returns how the step is laid
    /// out and its loss (the partitions' losses weighted by their shares of
    /// the rows), or the first partition's error.
    ///
    /// With `PerThread` partitions, a step that forks and an inner backend
    /// that offers a [`FirstLayerSplit`](backprop_core::FirstLayerSplit), the
    /// partitions leave the first layer's weights out and write their
    /// `delta^1`, weighted by their shares, into `first_delta` instead.
    fn run_partitions(
        &mut self,
        network: &Network<T>,
        batch: &Batch<'_, T>,
    ) -> Result<(Partitioned, T), Error> {
        let rows = batch.rows();
        let (count, fork) = self.plan(network, rows);
        self.ensure_workers(count);
        let splits = self.partitions == Partitions::PerThread
            && fork
            && self.backends[0].first_layer_split().is_some();
        let first_layer = splits.then(|| network.architecture().layers()[0]);
        let hidden = first_layer.map_or(0, |layer| layer.outputs);
        self.first_delta.resize(rows * hidden, T::ZERO);
        let deltas = pieces(&mut self.first_delta, count, rows, hidden);
        let backends = self.backends[..count].iter_mut();
        let workers = backends.zip(&mut self.results[..count]).zip(deltas);
        self.crew.spread_if(fork, workers.enumerate(), &|(
            c,
            ((backend, results), delta),
        )| {
            let part = batch
                .sub_batch(partition(c, count, rows))
                .expect("a non-empty partition");
            let accumulator = fitted(&mut results.accumulator, network);
            // Cannot fail on shape: the sub-batch, accumulator and delta fit the network.
            results.outcome = match backend.first_layer_split() {
                Some(split) if splits => {
                    let outcome = split.loss_and_gradient_but_first_weights(
                        network,
                        &part,
                        accumulator,
                        delta,
                    );
                    vector::scale(delta, share(c, count, rows));
                    outcome
                }
                _ => backend.loss_and_gradient(network, &part, accumulator),
            };
        });
        let parts = Partitioned {
            count,
            rows,
            fork,
            first_layer,
        };
        let mut loss = T::ZERO;
        for (c, results) in self.results[..count].iter().enumerate() {
            loss += share::<T>(c, count, rows) * results.outcome.clone()?;
        }
        Ok((parts, loss))
    }

    /// Combines the partitions' results of `parts` into `gradient`, applying
    /// `theta += step * gradient` to the parameters given with a step: the
    /// first layer's weights by [`Self::split_combine`] if they were split,
    /// every other parameter by [`Self::combine_from`].
    fn combine(
        &mut self,
        parts: Partitioned,
        batch: &Batch<'_, T>,
        gradient: &mut [T],
        update: Option<(&mut [T], T)>,
    ) {
        let Some(first_layer) = parts.first_layer else {
            return self.combine_from(0, &parts, gradient, update);
        };
        let end = first_layer.weight_range().end;
        let (first, others) = gradient.split_at_mut(end);
        let (first_update, others_update) = match update {
            Some((params, rate)) => {
                let (first, others) = params.split_at_mut(end);
                (Some((first, rate)), Some((others, rate)))
            }
            None => (None, None),
        };
        self.split_combine(&parts, first_layer, batch, first, first_update);
        self.combine_from(end, &parts, others, others_update);
    }

    /// Forms the first layer's weight gradient `delta^1^T X` over the whole
    /// batch into `gradient` (those weights only), one block of hidden units
    /// per worker, each applying `theta += step * gradient` to its weights if
    /// `update` gives them.
    fn split_combine(
        &mut self,
        parts: &Partitioned,
        first_layer: LayerShape,
        batch: &Batch<'_, T>,
        gradient: &mut [T],
        update: Option<(&mut [T], T)>,
    ) {
        let (hidden, n, rows) = (first_layer.outputs, first_layer.inputs, parts.rows);
        let blocks = parts.count.min(hidden);
        let unit_rows = |t: usize| partition(t, blocks, hidden);
        let (params, rate) = match update {
            Some((params, rate)) => (Some(pieces(params, blocks, hidden, n)), rate),
            None => (None, T::ZERO),
        };
        let mut params = params.map(Vec::into_iter);
        let outs = pieces(gradient, blocks, hidden, n).into_iter();
        let blocks_of_units = self.backends[..blocks].iter_mut().zip(outs);
        let blocks_of_units = blocks_of_units
            .map(|(backend, out)| (backend, out, params.as_mut().and_then(Iterator::next)));
        let delta = MatrixRef::new(&self.first_delta[..rows * hidden], rows, hidden)
            .expect("sized in run_partitions");
        let inputs = batch.inputs().matrix();
        self.crew.spread(blocks_of_units.enumerate(), &|(
            t,
            (backend, out, params),
        )| {
            let split = backend
                .first_layer_split()
                .expect("offered in run_partitions");
            split
                .first_weight_rows(delta, inputs, unit_rows(t), out)
                .expect("sizes that fit by construction");
            if let Some(params) = params {
                vector::axpy(params, rate, out);
            }
        });
    }

    /// Combines the partitions' gradients of the parameters from `offset` on
    /// in partition order, each weighted by its share `B_c / B` of the rows,
    /// into `gradient`, and applies `theta += step * gradient` to the
    /// parameters given with a step; `gradient` and those parameters start at
    /// `offset`.
    ///
    /// Every parameter's sum runs over the partitions in the same order
    /// whichever thread computes it, so splitting the parameters into blocks
    /// on the pool changes no bit.
    fn combine_from(
        &self,
        offset: usize,
        parts: &Partitioned,
        gradient: &mut [T],
        update: Option<(&mut [T], T)>,
    ) {
        let (count, rows) = (parts.count, parts.rows);
        let results = &self.results[..count];
        let weight = |c: usize| share(c, count, rows);
        let accumulator = |c: usize| -> &[T] {
            let accumulator = results[c].accumulator.as_ref();
            &accumulator.expect("filled by the worker").as_slice()[offset..]
        };
        let combine_block = |start: usize, block: &mut [T], params: Option<&mut [T]>, step: T| {
            let end = start + block.len();
            vector::scale_into(block, weight(0), &accumulator(0)[start..end]);
            for c in 1..count {
                vector::axpy(block, weight(c), &accumulator(c)[start..end]);
            }
            if let Some(params) = params {
                vector::axpy(params, step, block);
            }
        };
        let (params, rate) = match update {
            Some((params, rate)) => (Some(params), rate),
            None => (None, T::ZERO),
        };
        // In blocks that stay in cache.
        let combine_range = |start: usize, gradient: &mut [T], params: Option<&mut [T]>| {
            let mut params = params.map(|params| params.chunks_mut(COMBINE_BLOCK));
            for (k, block) in gradient.chunks_mut(COMBINE_BLOCK).enumerate() {
                let params = params.as_mut().and_then(Iterator::next);
                combine_block(start + k * COMBINE_BLOCK, block, params, rate);
            }
        };
        // One contiguous range of parameters per thread, of at least a block:
        // a network with fewer parameters combines on the calling thread.
        let range = gradient.len().div_ceil(self.threads()).max(COMBINE_BLOCK);
        if !parts.fork || range >= gradient.len() {
            combine_range(0, gradient, params);
            return;
        }
        let mut params = params.map(|params| params.chunks_mut(range));
        let ranges = gradient.chunks_mut(range).enumerate();
        let ranges = ranges.map(|(k, g)| (k, g, params.as_mut().and_then(Iterator::next)));
        self.crew
            .spread(ranges, &|(k, g, p)| combine_range(k * range, g, p));
    }
}
