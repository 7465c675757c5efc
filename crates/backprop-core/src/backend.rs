//! The `Backend` trait every kernel implements, and the optional first-layer split.
//!
//! A kernel implements `run_*` methods, which receive checked tasks (see the
//! `task` module); callers use the provided methods, which build those tasks
//! by checking their arguments. `Box<B>` and `&mut B` forward every `run_*`
//! method, so a boxed backend runs exactly the code of the backend inside.

use std::ops::Range;

use crate::{
    Batch, Error, ForwardTask, GradientTask, Inputs, MatrixRef, Network, Params, Scalar, SgdTask,
};

/// A backpropagation kernel for networks in precision `T`.
///
/// Object safe, so a backend can be chosen at run time as `Box<dyn Backend<T>>`.
/// `&mut self` lets a backend keep scratch buffers: after the first call on a
/// shape, a well-behaved backend allocates nothing per step.
///
/// Implementors write [`Backend::name`], [`Backend::run_forward`] and
/// [`Backend::run_loss_and_gradient`], and may override
/// [`Backend::run_sgd_step`] to fuse the update into the gradient. Callers
/// use the provided [`Backend::forward`], [`Backend::loss_and_gradient`] and
/// [`Backend::sgd_step`], which check their arguments and call a `run_*`
/// method; they are not meant to be overridden (wrappers such as `Box<B>`
/// forward only the `run_*` methods).
pub trait Backend<T: Scalar>: Send {
    /// A stable, lower-case name, such as `naive`.
    fn name(&self) -> &'static str;

    /// Writes the output layer's activations `A^L` (`B x m`, row-major) into the
    /// task's output buffer. For softmax cross-entropy these are the logits.
    fn run_forward(&mut self, task: ForwardTask<'_, T>) -> Result<(), Error>;

    /// Overwrites the task's gradient buffer with `dJ/dtheta` over the whole
    /// batch (never reading its old values) and returns the loss `J`.
    fn run_loss_and_gradient(&mut self, task: GradientTask<'_, T>) -> Result<T, Error>;

    /// One SGD step: leaves `dJ/dtheta` in the task's gradient buffer, applies
    /// `theta <- theta - eta dJ/dtheta` to the network, and returns the loss
    /// before the update. On an error, or a panic, the network is left as it was.
    ///
    /// The default computes the gradient with [`Backend::run_loss_and_gradient`]
    /// and then finishes with [`SgdTask::apply_update`], which checks the
    /// gradient, the loss and the updated parameters before it writes one.
    /// A backend may fuse the two with [`SgdTask::run_fused`], which lends
    /// it a buffer for the updated parameters and checks them the same way.
    fn run_sgd_step(&mut self, mut task: SgdTask<'_, T>) -> Result<T, Error> {
        let loss = self.run_loss_and_gradient(task.gradient_task())?;
        task.apply_update(loss)
    }

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
    /// checking shapes (and that no pre-activation can overflow) first and
    /// that the loss and the gradient are finite after
    /// ([`Error::NonFiniteLoss`], [`Error::NonFiniteGradient`]).
    fn loss_and_gradient(
        &mut self,
        network: &Network<T>,
        batch: &Batch<'_, T>,
        gradient: &mut Params<T>,
    ) -> Result<T, Error> {
        let loss = self.run_loss_and_gradient(GradientTask::new(network, *batch, gradient)?)?;
        if let Some((index, value)) = gradient.first_non_finite()
            && let Some(location) = network.architecture().locate(index)
        {
            return Err(Error::NonFiniteGradient {
                location,
                value: value.to_f64(),
            });
        }
        if !loss.is_finite() {
            return Err(Error::NonFiniteLoss {
                value: loss.to_f64(),
            });
        }
        Ok(loss)
    }

    /// One SGD step: computes the gradient on `batch` into `gradient`, then
    /// updates `theta <- theta - learning_rate * gradient`. Returns the loss
    /// before the update. Shapes, the learning rate (negative or not finite),
    /// the parameters (finite) and the reach of the pre-activations are
    /// checked before anything is computed; a gradient, loss or updated
    /// parameter that is not finite is an error, and the network is then
    /// left as it was (see [`SgdTask::apply_update`]).
    fn sgd_step(
        &mut self,
        network: &mut Network<T>,
        batch: &Batch<'_, T>,
        gradient: &mut Params<T>,
        learning_rate: T,
    ) -> Result<T, Error> {
        let loss = self.run_sgd_step(SgdTask::new(network, *batch, gradient, learning_rate)?)?;
        if !loss.is_finite() {
            return Err(Error::NonFiniteLoss {
                value: loss.to_f64(),
            });
        }
        Ok(loss)
    }
}

/// Forwards every `run_*` method of a backend it points to.
macro_rules! forward_backend {
    ($($pointer:ty),*) => {$(
        impl<T: Scalar, B: Backend<T> + ?Sized> Backend<T> for $pointer {
            fn name(&self) -> &'static str {
                (**self).name()
            }

            fn run_forward(&mut self, task: ForwardTask<'_, T>) -> Result<(), Error> {
                (**self).run_forward(task)
            }

            fn run_loss_and_gradient(&mut self, task: GradientTask<'_, T>) -> Result<T, Error> {
                (**self).run_loss_and_gradient(task)
            }

            fn run_sgd_step(&mut self, task: SgdTask<'_, T>) -> Result<T, Error> {
                (**self).run_sgd_step(task)
            }
        }

        impl<T: Scalar, B: FirstLayerSplit<T> + ?Sized> FirstLayerSplit<T> for $pointer {
            fn run_gradient_but_first_weights(
                &mut self,
                task: SplitGradientTask<'_, T>,
            ) -> Result<T, Error> {
                (**self).run_gradient_but_first_weights(task)
            }

            fn run_first_weight_rows(&mut self, task: &mut FirstWeightRowsTask<'_, T>) {
                (**self).run_first_weight_rows(task)
            }
        }
    )*};
}

forward_backend!(Box<B>, &mut B);

/// What a backend offers a batch-parallel wrapper that forms the first
/// layer's weight gradient `dJ/dW^1 = delta^1^T X` itself, over the whole
/// batch and split by hidden units, instead of summing one whole gradient
/// per row partition.
///
/// An optional capability: a wrapper that uses it asks for it in its type
/// (see `RayonBackend::splitting_first_layer` in `backprop-rayon`), so it
/// knows at construction, not per step, whether its inner kernels offer it.
pub trait FirstLayerSplit<T: Scalar>: Backend<T> {
    /// Like [`Backend::run_loss_and_gradient`], except that the first layer's
    /// weights are left out of the gradient (that part of the buffer is not
    /// written) and `delta^1 = dJ/dZ^1` of the task's rows is written into
    /// the task's first-layer delta (`B x d_1`, row-major) instead.
    fn run_gradient_but_first_weights(
        &mut self,
        task: SplitGradientTask<'_, T>,
    ) -> Result<T, Error>;

    /// Writes the rows `units` of `delta^T X` into the task's output
    /// (`units.len() x n`, row-major), where `delta` is `B x d_1` and `X`
    /// is `B x n`: the first layer's weight gradient of those hidden units,
    /// when `delta` is `delta^1` over the whole batch. The task is lent, so
    /// that the caller can go on with the output (say, to update the weights).
    fn run_first_weight_rows(&mut self, task: &mut FirstWeightRowsTask<'_, T>);
}

/// A [`GradientTask`] that stops at `delta^1`, with a `B x d_1` buffer for it.
#[derive(Debug)]
pub struct SplitGradientTask<'a, T> {
    task: GradientTask<'a, T>,
    first_delta: &'a mut [T],
}

impl<'a, T: Scalar> SplitGradientTask<'a, T> {
    /// Checks that `first_delta` holds `B x d_1` values for the task's batch.
    pub fn new(task: GradientTask<'a, T>, first_delta: &'a mut [T]) -> Result<Self, Error> {
        let hidden = task.layers().layer(0).shape.outputs;
        let expected = task.batch().rows().checked_mul(hidden);
        split_size(
            "first delta length",
            expected.unwrap_or(usize::MAX),
            first_delta.len(),
        )?;
        Ok(SplitGradientTask { task, first_delta })
    }

    /// The gradient task, and the buffer for `delta^1` (`B x d_1`, row-major).
    pub fn into_parts(self) -> (GradientTask<'a, T>, &'a mut [T]) {
        (self.task, self.first_delta)
    }
}

/// The pieces of a block of rows of `delta^T X`, whose sizes fit together.
#[derive(Debug)]
pub struct FirstWeightRowsTask<'a, T> {
    delta: MatrixRef<'a, T>,
    inputs: MatrixRef<'a, T>,
    units: Range<usize>,
    out: &'a mut [T],
}

impl<'a, T: Scalar> FirstWeightRowsTask<'a, T> {
    /// Checks that `delta` and `inputs` have the same rows, that `units` lies
    /// within `delta`'s columns and that `out` holds `units.len() x n` values.
    pub fn new(
        delta: MatrixRef<'a, T>,
        inputs: MatrixRef<'a, T>,
        units: Range<usize>,
        out: &'a mut [T],
    ) -> Result<Self, Error> {
        split_size("delta rows", inputs.rows(), delta.rows())?;
        if units.start > units.end {
            return Err(mismatch("start of the units", units.end, units.start));
        }
        if units.end > delta.cols() {
            return Err(mismatch("end of the units", delta.cols(), units.end));
        }
        let expected = units.len().checked_mul(inputs.cols());
        split_size("output length", expected.unwrap_or(usize::MAX), out.len())?;
        Ok(FirstWeightRowsTask {
            delta,
            inputs,
            units,
            out,
        })
    }

    /// `delta`, `B x d_1`.
    pub fn delta(&self) -> MatrixRef<'a, T> {
        self.delta
    }

    /// The inputs `X`, `B x n`.
    pub fn inputs(&self) -> MatrixRef<'a, T> {
        self.inputs
    }

    /// The hidden units whose rows are wanted.
    pub fn units(&self) -> Range<usize> {
        self.units.clone()
    }

    /// The output, `units.len() x n`, row-major.
    pub fn output(&self) -> &[T] {
        self.out
    }

    /// The output, to overwrite.
    pub fn output_mut(&mut self) -> &mut [T] {
        self.out
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

#[cfg(test)]
mod tests {
    use super::FirstWeightRowsTask;
    use crate::{Error, MatrixRef};

    #[test]
    fn the_pieces_of_a_block_of_first_weight_rows_must_fit() {
        let (delta, inputs) = ([0.0f32; 6], [0.0f32; 8]);
        // delta: B x d_1 = 2 x 3; inputs: B x n = 2 x 4.
        let delta = MatrixRef::new(&delta, 2, 3).expect("2 x 3");
        let inputs = MatrixRef::new(&inputs, 2, 4).expect("2 x 4");
        let mut out = [0.0f32; 8];
        assert!(FirstWeightRowsTask::new(delta, inputs, 1..3, &mut out).is_ok());
        let mut short = [0.0f32; 7];
        let error = FirstWeightRowsTask::new(delta, inputs, 1..3, &mut short).unwrap_err();
        let split = |what, expected, found| Error::SplitMismatch {
            what,
            expected,
            found,
        };
        assert_eq!(error, split("output length", 8, 7));
        let other = [0.0f32; 12];
        let three_rows = MatrixRef::new(&other, 3, 4).expect("3 x 4");
        let error = FirstWeightRowsTask::new(delta, three_rows, 1..3, &mut out).unwrap_err();
        assert_eq!(error, split("delta rows", 3, 2));
    }
}
