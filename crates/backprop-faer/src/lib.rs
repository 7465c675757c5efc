//! The faer backend: the whole batch as row-major matrices, one faer GEMM per
//! product and one fused elementwise pass per layer.
//!
//! For a batch of `B` samples and layers `l = 1..L` (the math of
//! `backprop-core`), one step is:
//!
//! ```text
//! forward   Z^l = A^{l-1} W^l^T           one GEMM (B x d_{l-1}) (d_{l-1} x d_l)
//!           A^l = act(Z^l + 1 b^l^T)       one pass; in a gradient call it also
//!                                          writes the slopes act'(Z^l) over Z^l
//! loss      J = mean of per-row values, delta^L = dJ/dA^L (.) act'(Z^L)
//!                                          one pass per row
//! backward  dW^l = delta^l^T A^{l-1}       one GEMM straight into the gradient,
//!                                          from delta^l^T copied feature-major
//!           db^l = column sums of delta^l  summed as that copy is made
//!           delta^{l-1} = (delta^l W^l) (.) act'(Z^{l-1})
//!                                          one GEMM and one pass, skipped for l = 1;
//!                                          for delta^1, the product with the
//!                                          slopes is taken in its copy instead
//! ```
//!
//! Below [`TRANSPOSE_MIN_INNER`] rows, where `delta` is not copied, the
//! column sums and the product with the slopes are passes of their own.
//! Either way each value is computed by the same operations in the same
//! order, so the bits do not depend on which path ran.
//!
//! The slopes are formed from `Z` (`Activation::value_and_slope`: `e q^2`
//! for the sigmoid, `4 t q^2` for tanh), not as `a (1 - a)` or `1 - a^2`,
//! which cancel to 0 where a unit saturates; they share the forward pass's
//! exponential, so the backward pass does no transcendental work.
//!
//! Every matrix is a zero-copy faer view of a row-major slice: the caller's
//! inputs, the network's weights, the gradient's flat buffer or the backend's
//! scratch, with one exception. faer runs a product into a row-major
//! destination at full rate only when its left operand is row-major too,
//! and the weight gradient's left operand `delta^T` is not: from a batch of
//! [`TRANSPOSE_MIN_INNER`] rows on, `delta^l` is first transposed into the
//! scratch (see `gemm.rs` for each product's layout and the measured rates).
//! The scratch (`Z`, then the slopes, and `A` per layer, two `delta` buffers
//! of `B x` the widest layer, their transpose, `B` row losses: about
//! `B (2 sum_l d_l + 3 max_l d_l + 1)` values) is sized on the first call
//! for a shape and reused, so a step on a shape seen before allocates
//! nothing; keeping the slopes takes no memory beyond `Z`'s. Products and the larger elementwise passes run on the calling
//! thread or on rayon as the backend's [`Parallelism`] says;
//! [`Parallelism::Sequential`] never forks.
//!
//! # Performance
//!
//! `cargo xtask bench` (or `cargo bench -- faer`) times one step of this
//! backend on the benchmark shapes, beside the others and beside
//! `faer-sequential`, this backend built with [`Parallelism::Sequential`];
//! README.md holds the figures.

mod gemm;
mod parallelism;
mod passes;
mod scratch;

pub use gemm::{ProductPlan, TRANSPOSE_MIN_INNER};
pub use parallelism::{AUTO_CROSSOVER_MNK, Parallelism};

use backprop_core::{
    Activation, Backend, Batch, DeltaLayout, Error, FirstLayerSplit, FirstWeightRowsTask,
    ForwardTask, GradientLayers, GradientTask, Inputs, Layers, Scalar, SgdTask, SplitGradientTask,
};
use gemm::{OnTheWay, product, transpose, transposed_stride, transposed_view, view, view_mut};
use parallelism::PassCost;
use passes::{
    KeepSlopes, bias_and_activation, column_sums, copy_and_column_sums, loss_and_output_delta,
    times_slopes,
};
use rayon::prelude::*;
use scratch::Scratch;

/// A [`Scalar`] that faer can multiply: `f32` or `f64`.
///
/// Keeps faer's `ComplexField` bound out of `backprop-core`. `Scalar` is
/// sealed, so no other type can implement this trait either.
pub trait FaerScalar: Scalar + faer::traits::ComplexField {}

impl FaerScalar for f32 {}
impl FaerScalar for f64 {}

/// The GEMM backend: a batch as matrices, products by faer.
///
/// Holds its [`Parallelism`] and its scratch buffers; build one per thread
/// (the scratch makes `&mut self` necessary).
#[derive(Debug, Default)]
pub struct FaerBackend<T> {
    parallelism: Parallelism,
    scratch: Scratch<T>,
}

impl<T: FaerScalar> FaerBackend<T> {
    /// A backend with [`Parallelism::Auto`]: small products on the calling
    /// thread, large ones on rayon's current pool.
    pub fn new() -> Self {
        FaerBackend::with_parallelism(Parallelism::Auto)
    }

    /// A backend that never forks, for use inside an outer thread pool.
    pub fn sequential() -> Self {
        FaerBackend::with_parallelism(Parallelism::Sequential)
    }

    /// A backend whose products run as `parallelism` says.
    pub fn with_parallelism(parallelism: Parallelism) -> Self {
        FaerBackend {
            parallelism,
            scratch: Scratch::default(),
        }
    }

    /// The parallelism the backend was built with.
    pub fn parallelism(&self) -> Parallelism {
        self.parallelism
    }
}

impl<T: FaerScalar> Backend<T> for FaerBackend<T> {
    fn name(&self) -> &'static str {
        "faer"
    }

    fn run_forward(&mut self, task: ForwardTask<'_, T>) -> Result<(), Error> {
        let (layers, inputs, outputs) = task.into_parts();
        let widths = layers.architecture().widths();
        self.in_pool(widths, inputs.rows(), |backend| {
            backend.forward_here(layers, inputs, outputs)
        })
    }

    fn run_loss_and_gradient(&mut self, task: GradientTask<'_, T>) -> Result<T, Error> {
        let (layers, batch, gradient) = task.into_parts();
        let widths = layers.architecture().widths();
        self.in_pool(widths, batch.rows(), |backend| {
            backend.gradient_here(layers, batch, gradient, None)
        })
    }

    /// The gradient as [`Backend::run_loss_and_gradient`] forms it, then the
    /// core's checked update; in a step that forks, the update's two passes
    /// (the read of the gradient that proves it finite, and the write) run
    /// on rayon's pool too, one piece of parameters per thread
    /// ([`SgdTask::apply_update_on`]), in the same job as the gradient.
    fn run_sgd_step(&mut self, mut task: SgdTask<'_, T>) -> Result<T, Error> {
        let widths = task.layers().architecture().widths();
        let rows = task.batch().rows();
        if !self.parallelism.may_fork(widths, rows) {
            let loss = self.run_loss_and_gradient(task.gradient_task())?;
            return task.apply_update(loss);
        }
        self.on_pool(|backend| {
            let (layers, batch, gradient) = task.gradient_task().into_parts();
            let loss = backend.gradient_here(layers, batch, gradient, None)?;
            let threads = rayon::current_num_threads();
            task.apply_update_on(loss, threads, &mut |count, work| {
                (0..count).into_par_iter().for_each(work);
            })
        })
    }
}

/// The first layer's weight gradient left to the caller: the step stops its
/// backward pass at `delta^1`, and a block of hidden units' rows of
/// `delta^1^T X` is one product over a column block of `delta^1`.
impl<T: FaerScalar> FirstLayerSplit<T> for FaerBackend<T> {
    fn run_gradient_but_first_weights(
        &mut self,
        task: SplitGradientTask<'_, T>,
    ) -> Result<T, Error> {
        let (task, first_delta) = task.into_parts();
        let (layers, batch, gradient) = task.into_parts();
        let widths = layers.architecture().widths();
        self.in_pool(widths, batch.rows(), |backend| {
            backend.gradient_here(layers, batch, gradient, Some(first_delta))
        })
    }

    fn run_first_weight_rows(&mut self, task: &mut FirstWeightRowsTask<'_, T>) {
        // Sequential whatever the backend's parallelism: the callers are the
        // workers of a batch-parallel wrapper.
        let (delta, inputs, units) = (task.delta(), task.inputs(), task.units());
        let (rows, n, hidden) = (inputs.rows(), inputs.cols(), delta.cols());
        let layout = task.layout();
        let inputs = view(inputs.as_slice(), rows, n);
        let output = view_mut(task.output_mut(), units.len(), n);
        let sequential = Parallelism::Sequential;
        if layout == DeltaLayout::ByUnit {
            // Already feature-major: the block's rows are its delta^T.
            let block = &delta.as_slice()[units.start * rows..units.end * rows];
            product(output, view(block, units.len(), rows), inputs, sequential);
            return;
        }
        // The block's delta^T feature-major, as for the whole step's weight
        // gradients (see `gemm.rs`), if the product is large enough and the
        // buffer can be had; else the slower layout.
        let values = units.len().saturating_mul(transposed_stride(rows));
        let block_t = &mut self.scratch.block_t;
        if rows >= gemm::TRANSPOSE_MIN_INNER
            && (block_t.len() >= values
                || block_t
                    .resize(
                        "faer scratch block delta^T",
                        units.len(),
                        transposed_stride(rows),
                    )
                    .is_ok())
        {
            let block_t = &mut block_t[..values];
            let columns = (units.start, units.len());
            let on_the_way = OnTheWay::default();
            transpose(
                block_t,
                delta.as_slice(),
                (rows, hidden),
                columns,
                1,
                on_the_way,
            );
            let block_t = transposed_view(block_t, rows, units.len());
            product(output, block_t, inputs, sequential);
        } else {
            let delta = view(delta.as_slice(), rows, hidden).subcols(units.start, units.len());
            product(output, delta.transpose(), inputs, sequential);
        }
    }
}

impl<T: FaerScalar> FaerBackend<T> {
    /// Runs the work of a step on `rows` samples through `widths`: on the
    /// calling thread if nothing in it forks or the thread is one of rayon's,
    /// and otherwise as one job on rayon's global pool.
    ///
    /// Forking from a thread outside the pool means waking a worker and then
    /// sleeping until the job is done, for every product and pass; from a
    /// worker it is a push onto its own queue. Moving the whole step onto a
    /// worker pays the hand-over once; on the measured machine that took
    /// about 5% off the M step.
    fn in_pool<R: Send>(
        &mut self,
        widths: &[usize],
        rows: usize,
        work: impl FnOnce(&mut Self) -> R + Send,
    ) -> R {
        if !self.parallelism.may_fork(widths, rows) {
            return work(self);
        }
        self.on_pool(work)
    }

    /// Runs `work` as one job on rayon's global pool (on the calling thread
    /// if it is one of the pool's), for a step that forks.
    fn on_pool<R: Send>(&mut self, work: impl FnOnce(&mut Self) -> R + Send) -> R {
        let result = if rayon::current_thread_index().is_some() {
            work(self)
        } else {
            rayon::scope(|_| work(self))
        };
        // faer's kernels ran on the pool's threads too: leave none of them
        // slowed down for whatever runs there next (see `clear_upper_state`).
        rayon::broadcast(|_| gemm::clear_upper_state());
        result
    }

    /// The forward pass of a checked task on the calling thread.
    fn forward_here(
        &mut self,
        layers: Layers<'_, T>,
        inputs: Inputs<'_, T>,
        outputs: &mut [T],
    ) -> Result<(), Error> {
        let rows = inputs.rows();
        self.scratch.fit(layers.architecture().widths(), rows)?;
        forward(
            &mut self.scratch,
            layers,
            inputs.matrix().as_slice(),
            rows,
            self.parallelism,
            Some(outputs),
        );
        Ok(())
    }

    /// The loss and gradient of a checked task on the calling thread.
    ///
    /// With `first_delta`, the first layer's weight gradient is not formed:
    /// `delta^1` is copied there instead.
    fn gradient_here(
        &mut self,
        layers: Layers<'_, T>,
        batch: Batch<'_, T>,
        mut gradient: GradientLayers<'_, T>,
        mut first_delta: Option<&mut [T]>,
    ) -> Result<T, Error> {
        let architecture = layers.architecture();
        let activations = architecture.activations();
        let rows = batch.rows();
        let x = batch.inputs().matrix().as_slice();
        let s = &mut self.scratch;
        s.fit(architecture.widths(), rows)?;
        forward(s, layers, x, rows, self.parallelism, None);

        // The loss and delta^L = dJ/dZ^L, row by row.
        let last = architecture.layer_count() - 1;
        let outputs = architecture.output_width();
        let loss_sum = loss_and_output_delta(
            architecture,
            &s.a[last],
            &s.slopes[last],
            batch.targets().as_slice(),
            &mut s.row_loss,
            &mut s.delta[..rows * outputs],
            self.parallelism
                .pass_blocks(rows, outputs, PassCost::of_loss(architecture.loss())),
        );

        let (mut delta, mut delta_below) = (&mut s.delta, &mut s.delta_below);
        // Where the first layer's `delta^1` is read only once (transposed
        // for its weight gradient, or copied out for a split step), its
        // product with the slopes is taken on the way instead of in a pass
        // of its own.
        let mut slopes_due: Option<&[T]> = None;
        for l in (0..=last).rev() {
            let weights = layers.layer(l).weights;
            let grad = gradient.layer_mut(l);
            let (inputs, outputs) = (grad.shape.inputs, grad.shape.outputs);
            let delta_here = &delta[..rows * outputs];
            let input: &[T] = if l == 0 { x } else { &s.a[l - 1] };
            let transposes = rows >= gemm::TRANSPOSE_MIN_INNER;

            // dW^l = delta^l^T A^{l-1}, written over the gradient's own buffer,
            // from delta^l^T copied feature-major if the batch is large
            // enough for the layout to matter (see `gemm.rs`); db^l = 1^T delta^l
            // summed on the way where delta^l is read anyway.
            match first_delta.as_deref_mut() {
                Some(first_delta) if l == 0 => {
                    copy_and_column_sums(first_delta, delta_here, slopes_due, grad.bias);
                }
                _ if transposes => {
                    let delta_t = &mut s.delta_t;
                    let blocks = self.parallelism.pass_blocks(rows, outputs, PassCost::Cheap);
                    let on_the_way = OnTheWay {
                        slopes: slopes_due,
                        sums: Some(grad.bias),
                    };
                    let shape = (rows, outputs);
                    transpose(delta_t, delta_here, shape, (0, outputs), blocks, on_the_way);
                    product(
                        view_mut(grad.weights, outputs, inputs),
                        transposed_view(delta_t, rows, outputs),
                        view(input, rows, inputs),
                        self.parallelism,
                    );
                }
                _ => {
                    product(
                        view_mut(grad.weights, outputs, inputs),
                        view(delta_here, rows, outputs).transpose(),
                        view(input, rows, inputs),
                        self.parallelism,
                    );
                    column_sums(delta_here, grad.bias);
                }
            }

            // delta^{l-1} = (delta^l W^l) (.) act'_{l-1}; delta^0 is never needed.
            if l > 0 {
                let below = &mut delta_below[..rows * inputs];
                product(
                    view_mut(below, rows, inputs),
                    view(delta_here, rows, outputs),
                    view(weights, outputs, inputs),
                    self.parallelism,
                );
                let activation = activations[l - 1];
                let read_once = l == 1 && (first_delta.is_some() || transposes);
                if read_once && activation != Activation::Identity {
                    slopes_due = Some(&s.slopes[0]);
                } else {
                    let blocks = self.parallelism.pass_blocks(rows, inputs, PassCost::Cheap);
                    times_slopes(below, &s.slopes[l - 1], activation, inputs, blocks);
                }
                std::mem::swap(&mut delta, &mut delta_below);
            }
        }
        Ok(loss_sum / T::from_usize(rows))
    }
}

/// The forward pass of `rows` samples `x` (`rows x n`, row-major).
///
/// With an `output`, a forward pass alone: the output layer's `A^L` goes
/// straight there. Without, the forward pass of a gradient call: `A^l` and
/// the slopes `act'(Z^l)` of every layer stay in the scratch for the
/// backward pass.
fn forward<T: FaerScalar>(
    scratch: &mut Scratch<T>,
    layers: Layers<'_, T>,
    x: &[T],
    rows: usize,
    parallelism: Parallelism,
    mut output: Option<&mut [T]>,
) {
    let last = layers.count() - 1;
    let keep = match output {
        Some(_) => KeepSlopes::No,
        None => KeepSlopes::Yes,
    };
    for (l, layer) in layers.iter().enumerate() {
        let activation = layer.activation;
        let (inputs, outputs) = (layer.shape.inputs, layer.shape.outputs);
        let (below, here) = scratch.a.split_at_mut(l);
        let input: &[T] = if l == 0 { x } else { &below[l - 1] };
        let a: &mut [T] = match output.as_deref_mut() {
            Some(output) if l == last => output,
            _ => &mut here[0],
        };
        let z = &mut scratch.slopes[l];
        product(
            view_mut(z, rows, outputs),
            view(input, rows, inputs),
            view(layer.weights, outputs, inputs).transpose(),
            parallelism,
        );
        let blocks = parallelism.pass_blocks(rows, outputs, PassCost::of_activation(activation));
        bias_and_activation(z, a, layer.bias, (activation, keep), blocks);
    }
}

#[cfg(test)]
mod tests;
