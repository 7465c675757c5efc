//! The `Backend` trait every kernel implements, and the checked tasks it is handed.
//!
//! A kernel never sees unchecked shapes: it receives a [`ForwardTask`] or a
//! [`GradientTask`], which can only be built by checking that the network,
//! the batch and the caller's output buffer fit together.

use std::ops::Range;

use crate::{
    Batch, Error, Inputs, MatrixRef, Network, Params, Scalar, network::check_learning_rate,
};

/// A forward pass whose network, inputs and output buffer fit together.
#[derive(Debug)]
pub struct ForwardTask<'a, T> {
    network: &'a Network<T>,
    inputs: Inputs<'a, T>,
    outputs: &'a mut [T],
}

impl<'a, T: Scalar> ForwardTask<'a, T> {
    /// Checks that the inputs have the network's input width `n` and that
    /// `outputs` holds `B x m` values.
    pub fn new(
        network: &'a Network<T>,
        inputs: Inputs<'a, T>,
        outputs: &'a mut [T],
    ) -> Result<Self, Error> {
        let architecture = network.architecture();
        inputs.check_width(architecture)?;
        let (rows, cols) = (inputs.rows(), architecture.output_width());
        if rows.checked_mul(cols) != Some(outputs.len()) {
            return Err(Error::MatrixLength {
                rows,
                cols,
                found: outputs.len(),
            });
        }
        Ok(ForwardTask {
            network,
            inputs,
            outputs,
        })
    }

    /// The network, its inputs and the output buffer `B x m` to overwrite
    /// with the output layer's activations `A^L`.
    pub fn into_parts(self) -> (&'a Network<T>, Inputs<'a, T>, &'a mut [T]) {
        (self.network, self.inputs, self.outputs)
    }
}

/// A loss-and-gradient computation whose network, batch and gradient buffer fit together.
#[derive(Debug)]
pub struct GradientTask<'a, T> {
    network: &'a Network<T>,
    batch: Batch<'a, T>,
    gradient: &'a mut Params<T>,
}

impl<'a, T: Scalar> GradientTask<'a, T> {
    /// Checks that the batch's widths are the network's `n` and `m` and that
    /// the gradient buffer is laid out for the network.
    pub fn new(
        network: &'a Network<T>,
        batch: Batch<'a, T>,
        gradient: &'a mut Params<T>,
    ) -> Result<Self, Error> {
        batch.check_widths(network.architecture())?;
        gradient.check_layout(network.architecture())?;
        Ok(GradientTask {
            network,
            batch,
            gradient,
        })
    }

    /// The network, the batch and the gradient buffer to overwrite with `dJ/dtheta`.
    pub fn into_parts(self) -> (&'a Network<T>, Batch<'a, T>, &'a mut Params<T>) {
        (self.network, self.batch, self.gradient)
    }
}

/// A backpropagation kernel for networks in precision `T`.
///
/// Object safe, so a backend can be chosen at run time as `Box<dyn Backend<T>>`.
/// `&mut self` lets a backend keep scratch buffers: after the first call on a
/// shape, a well-behaved backend allocates nothing per step.
///
/// Implementors write [`Backend::name`], [`Backend::run_forward`] and
/// [`Backend::run_loss_and_gradient`]; callers use the provided
/// [`Backend::forward`], [`Backend::loss_and_gradient`] and
/// [`Backend::sgd_step`], which check their arguments first.
pub trait Backend<T: Scalar>: Send {
    /// A stable, lower-case name, such as `naive`.
    fn name(&self) -> &'static str;

    /// Writes the output layer's activations `A^L` (`B x m`, row-major) into the
    /// task's output buffer. For softmax cross-entropy these are the logits.
    fn run_forward(&mut self, task: ForwardTask<'_, T>) -> Result<(), Error>;

    /// Overwrites the task's gradient buffer with `dJ/dtheta` over the whole
    /// batch (never reading its old values) and returns the loss `J`.
    fn run_loss_and_gradient(&mut self, task: GradientTask<'_, T>) -> Result<T, Error>;

    /// Writes `A^L` for `inputs` into `outputs` (`B x m`), checking shapes first.
    fn forward(
        &mut self,
        network: &Network<T>,
        inputs: &Inputs<'_, T>,
        outputs: &mut [T],
    ) -> Result<(), Error> {
        self.run_forward(ForwardTask::new(network, *inputs, outputs)?)
    }

    /// Returns the loss on `batch` and overwrites `gradient` with its gradient,
    /// checking shapes first.
    fn loss_and_gradient(
        &mut self,
        network: &Network<T>,
        batch: &Batch<'_, T>,
        gradient: &mut Params<T>,
    ) -> Result<T, Error> {
        self.run_loss_and_gradient(GradientTask::new(network, *batch, gradient)?)
    }

    /// The pieces for splitting the first layer's weight gradient by hidden
    /// units, if this backend offers them; `None` (the default) otherwise.
    fn first_layer_split(&mut self) -> Option<&mut dyn FirstLayerSplit<T>> {
        None
    }

    /// One SGD step: computes the gradient on `batch` into `gradient`, then
    /// updates `theta <- theta - learning_rate * gradient`. Returns the loss
    /// before the update. A negative or non-finite learning rate is rejected
    /// before anything is computed.
    fn sgd_step(
        &mut self,
        network: &mut Network<T>,
        batch: &Batch<'_, T>,
        gradient: &mut Params<T>,
        learning_rate: T,
    ) -> Result<T, Error> {
        check_learning_rate(learning_rate)?;
        let loss = self.loss_and_gradient(network, batch, gradient)?;
        network.apply_sgd(gradient, learning_rate)?;
        Ok(loss)
    }
}

impl<T: Scalar, B: Backend<T> + ?Sized> Backend<T> for Box<B> {
    fn name(&self) -> &'static str {
        (**self).name()
    }

    fn run_forward(&mut self, task: ForwardTask<'_, T>) -> Result<(), Error> {
        (**self).run_forward(task)
    }

    fn run_loss_and_gradient(&mut self, task: GradientTask<'_, T>) -> Result<T, Error> {
        (**self).run_loss_and_gradient(task)
    }
}

/// What a backend offers a batch-parallel wrapper that forms the first
/// layer's weight gradient `dJ/dW^1 = delta^1^T X` itself, over the whole
/// batch and split by hidden units, instead of summing one whole gradient
/// per row partition. Reached through [`Backend::first_layer_split`].
///
/// Implementors write the `run_` methods, which receive checked arguments;
/// callers use the provided methods, which check them first.
pub trait FirstLayerSplit<T: Scalar> {
    /// Like [`Backend::run_loss_and_gradient`], except that the first layer's
    /// weights are left out of the gradient (that part of the buffer is not
    /// written) and `delta^1 = dJ/dZ^1` of the task's rows is written into
    /// `first_delta` (`B x d_1`, row-major) instead.
    fn run_loss_and_gradient_but_first_weights(
        &mut self,
        task: GradientTask<'_, T>,
        first_delta: &mut [T],
    ) -> Result<T, Error>;

    /// Writes the rows `units` of `delta^T X` into `out` (`units.len() x n`,
    /// row-major), where `delta` is `B x d_1` and `inputs` is `X` (`B x n`):
    /// the first layer's weight gradient of those hidden units, when `delta`
    /// is `delta^1` over the whole batch.
    fn run_first_weight_rows(
        &mut self,
        delta: MatrixRef<'_, T>,
        inputs: MatrixRef<'_, T>,
        units: Range<usize>,
        out: &mut [T],
    );

    /// [`FirstLayerSplit::run_loss_and_gradient_but_first_weights`], checking
    /// the task and that `first_delta` holds `B x d_1` values first.
    fn loss_and_gradient_but_first_weights(
        &mut self,
        network: &Network<T>,
        batch: &Batch<'_, T>,
        gradient: &mut Params<T>,
        first_delta: &mut [T],
    ) -> Result<T, Error> {
        let task = GradientTask::new(network, *batch, gradient)?;
        let expected = batch.rows() * network.architecture().widths()[1];
        split_size("first delta length", expected, first_delta.len())?;
        self.run_loss_and_gradient_but_first_weights(task, first_delta)
    }

    /// [`FirstLayerSplit::run_first_weight_rows`], checking first that
    /// `delta` and `inputs` have the same rows, that `units` lies within
    /// `delta`'s columns and that `out` holds `units.len() x n` values.
    fn first_weight_rows(
        &mut self,
        delta: MatrixRef<'_, T>,
        inputs: MatrixRef<'_, T>,
        units: Range<usize>,
        out: &mut [T],
    ) -> Result<(), Error> {
        split_size("delta rows", inputs.rows(), delta.rows())?;
        if units.start > units.end {
            return Err(mismatch("start of the units", units.end, units.start));
        }
        if units.end > delta.cols() {
            return Err(mismatch("end of the units", delta.cols(), units.end));
        }
        split_size("output length", units.len() * inputs.cols(), out.len())?;
        self.run_first_weight_rows(delta, inputs, units, out);
        Ok(())
    }
}

/// `Ok` if `found == expected`, else their mismatch.
fn split_size(what: &'static str, expected: usize, found: usize) -> Result<(), Error> {
    if found == expected {
        Ok(())
    } else {
        Err(mismatch(what, expected, found))
    }
}

/// The error of a split piece `what` of size `found` where `expected` was needed.
fn mismatch(what: &'static str, expected: usize, found: usize) -> Error {
    Error::SplitMismatch {
        what,
        expected,
        found,
    }
}
