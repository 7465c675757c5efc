//! The `Backend` trait every kernel implements.
//!
//! A kernel implements `run_*` methods, which receive checked tasks (see the
//! `task` module); callers use the provided methods, which build those tasks
//! by checking their arguments. `Box<B>` and `&mut B` forward every `run_*`
//! method, so a boxed backend runs exactly the code of the backend inside.

use crate::{Batch, Error, ForwardTask, GradientTask, Inputs, Network, Params, Scalar, SgdTask};

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
///
/// A kernel built for some problems only (widths its tiles hold, one loss)
/// declines the others from its `run_*` methods with
/// [`Error::Unsupported`], naming the sizes, before it writes anything.
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
    )*};
}

forward_backend!(Box<B>, &mut B);
