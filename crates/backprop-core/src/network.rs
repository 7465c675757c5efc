//! A network: an architecture with its parameters, all finite, and seeded initialisation.
//!
//! Parameters are checked where they enter a network: [`Network::new`],
//! [`Network::set_params`] and [`Network::update_params`] reject a NaN or an
//! infinity, and a network changed through [`Network::param_values_mut`]
//! reports one at its next use. So every backend computes with finite
//! parameters, and a step that would make one non-finite is refused before
//! it changes anything (see [`crate::SgdTask::apply_update`]).

use std::ops::{Deref, DerefMut};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::params::first_non_finite;
use crate::pieces::{self, Fork, piece_count};
use crate::{Activation, Architecture, Error, Params, Scalar, vector};

/// An architecture together with finite parameters laid out for it.
///
/// A step updates the parameters in place once one read of the gradient has
/// proved every updated value finite (see `SgdTask::apply_update`). A step that
/// cannot be proved so, or a kernel that fuses the update into its gradient
/// (`SgdTask::run_fused`), writes the updated values into a spare buffer as
/// large as the parameters, allocated then, and they become the parameters
/// only once checked: either way a refused step leaves them untouched.
#[derive(Debug)]
pub struct Network<T> {
    architecture: Architecture,
    params: Params<T>,
    /// For each weight layer, an upper bound of its largest `|parameter|`,
    /// weights and biases: exact after a check or a staged update, grown by
    /// each in-place update's `eta max |g|`. Lets a forward pass rule out
    /// overflow without reading the parameters.
    bounds: Vec<f64>,
    /// Room for the bounds after a step, so that a step allocates nothing.
    next_bounds: Vec<f64>,
    /// The first non-finite parameter left by [`Network::param_values_mut`]
    /// (its flat index and value), reported at the network's next use.
    fault: Option<(usize, f64)>,
    /// Where a staged update writes the updated parameters before they
    /// become the parameters (empty until the first staged update).
    spare: Vec<T>,
}

/// A clone has no spare buffer until its own first step.
impl<T: Clone> Clone for Network<T> {
    fn clone(&self) -> Self {
        Network {
            architecture: self.architecture.clone(),
            params: self.params.clone(),
            bounds: self.bounds.clone(),
            next_bounds: self.next_bounds.clone(),
            fault: self.fault,
            spare: Vec::new(),
        }
    }
}

/// Networks are equal when their architectures and parameters are.
impl<T: PartialEq> PartialEq for Network<T> {
    fn eq(&self, other: &Self) -> bool {
        self.architecture == other.architecture && self.params == other.params
    }
}

impl<T: Scalar> Network<T> {
    /// Pairs an architecture with parameters, which must be laid out for it
    /// and finite ([`Error::NonFiniteParameter`] names the first that is not).
    pub fn new(architecture: Architecture, params: Params<T>) -> Result<Self, Error> {
        params.check_layout(&architecture)?;
        let network = Network::assemble(architecture, params);
        network.check_finite()?;
        Ok(network)
    }

    /// A network of checked layout; its bounds and fault are computed here.
    fn assemble(architecture: Architecture, params: Params<T>) -> Self {
        let layers = architecture.layer_count();
        let mut network = Network {
            architecture,
            params,
            bounds: vec![0.0; layers],
            next_bounds: vec![0.0; layers],
            fault: None,
            spare: Vec::new(),
        };
        network.refresh();
        network
    }

    /// A network whose weights and biases are all zero, or
    /// [`Error::TooLarge`] if its parameters cannot be allocated.
    pub fn try_zeros(architecture: Architecture) -> Result<Self, Error> {
        let params = Params::try_zeros(&architecture)?;
        Ok(Network::assemble(architecture, params))
    }

    /// A network whose weights and biases are all zero, for an architecture
    /// known to fit in memory: allocates as [`Params::zeros`] does (a panic
    /// or an abort if it does not fit). [`Network::try_zeros`] returns an error instead.
    pub fn zeros(architecture: Architecture) -> Self {
        let params = Params::zeros(&architecture);
        Network::assemble(architecture, params)
    }

    /// A network initialised from `seed`, bit-identical for the same seed.
    ///
    /// Weights of a layer with `fan_in` inputs and `fan_out` outputs are drawn
    /// uniformly from `[-r, r)`: Glorot/Xavier `r = sqrt(6 / (fan_in + fan_out))`
    /// for sigmoid, tanh and identity layers, He `r = sqrt(6 / fan_in)` for
    /// ReLU layers. Biases start at zero. Values are drawn in `f64` and rounded,
    /// so an `f32` and an `f64` network from the same seed agree to `f32` precision.
    ///
    /// Fails with [`Error::TooLarge`] if the parameters cannot be allocated.
    pub fn try_init(architecture: Architecture, seed: u64) -> Result<Self, Error> {
        let params = Params::try_zeros(&architecture)?;
        Ok(Network::initialised(architecture, params, seed))
    }

    /// [`Network::try_init`] for an architecture known to fit in memory:
    /// allocates as [`Params::zeros`] does (a panic or an abort if it does not fit).
    pub fn init(architecture: Architecture, seed: u64) -> Self {
        let params = Params::zeros(&architecture);
        Network::initialised(architecture, params, seed)
    }

    /// Draws the weights of zeroed `params` from `seed` (see [`Network::try_init`]).
    fn initialised(architecture: Architecture, mut params: Params<T>, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        for (l, &activation) in architecture.activations().iter().enumerate() {
            let Some(layer) = params.layer_mut(l) else {
                break;
            };
            let (fan_in, fan_out) = (layer.shape.inputs as f64, layer.shape.outputs as f64);
            let range = match activation {
                Activation::Relu => (6.0 / fan_in).sqrt(),
                Activation::Sigmoid | Activation::Tanh | Activation::Identity => {
                    (6.0 / (fan_in + fan_out)).sqrt()
                }
            };
            for weight in layer.weights.iter_mut() {
                *weight = T::from_f64(rng.random_range(-range..range));
            }
        }
        Network::assemble(architecture, params)
    }

    /// The same network rounded (or widened) to another precision.
    ///
    /// A value too large for `U` rounds to infinity; the network then
    /// reports it as [`Error::NonFiniteParameter`] at its first use, as
    /// [`Network::check_finite`] does now.
    pub fn to_precision<U: Scalar>(&self) -> Network<U> {
        Network::assemble(self.architecture.clone(), self.params.to_precision())
    }

    /// The architecture.
    pub fn architecture(&self) -> &Architecture {
        &self.architecture
    }

    /// The parameters.
    pub fn params(&self) -> &Params<T> {
        &self.params
    }

    /// `Ok` unless a parameter is NaN or infinite, which only
    /// [`Network::param_values_mut`] or [`Network::to_precision`] can leave;
    /// every backend, step and save checks this first.
    pub fn check_finite(&self) -> Result<(), Error> {
        match self.fault {
            None => Ok(()),
            Some((index, value)) => Err(self.non_finite_parameter(index, value)),
        }
    }

    fn non_finite_parameter(&self, index: usize, value: f64) -> Error {
        match self.architecture.locate(index) {
            Some(location) => Error::NonFiniteParameter { location, value },
            // Every index of the buffer has a location.
            None => Error::ParameterLength {
                widths: self.architecture.widths().to_vec(),
                expected: self.architecture.param_count(),
                found: index,
            },
        }
    }

    /// The parameter values, mutably, through a guard that checks them when
    /// it is dropped: a NaN or an infinity left there is reported as
    /// [`Error::NonFiniteParameter`] by [`Network::check_finite`] and by the
    /// network's next use (a step, a forward pass, a save). The layout cannot
    /// change. [`Network::update_params`] checks at once and undoes a bad edit.
    pub fn param_values_mut(&mut self) -> ParamValuesMut<'_, T> {
        ParamValuesMut { network: self }
    }

    /// Edits the parameter values with `edit`, then checks them: if one is
    /// NaN or infinite, the network gets its old values back and the error
    /// names the first bad one. Returns what `edit` returns.
    pub fn update_params<R>(&mut self, edit: impl FnOnce(&mut [T]) -> R) -> Result<R, Error> {
        let backup = self.params.clone();
        let result = edit(self.params.as_mut_slice());
        if let Some((index, value)) = first_non_finite(self.params.as_slice()) {
            self.params = backup;
            return Err(self.non_finite_parameter(index, value.to_f64()));
        }
        self.refresh();
        Ok(result)
    }

    /// Replaces the parameters with finite others laid out for the same
    /// architecture; on an error the network is left as it was.
    pub fn set_params(&mut self, params: Params<T>) -> Result<(), Error> {
        params.check_layout(&self.architecture)?;
        if let Some((index, value)) = params.first_non_finite() {
            return Err(self.non_finite_parameter(index, value.to_f64()));
        }
        self.params = params;
        self.refresh();
        Ok(())
    }

    /// A zeroed buffer laid out for this network's gradient, allocated as
    /// [`Params::zeros`] does; [`Network::try_zero_gradient`] returns an
    /// error instead when it does not fit in memory.
    pub fn zero_gradient(&self) -> Params<T> {
        Params::zeros(&self.architecture)
    }

    /// A zeroed buffer laid out for this network's gradient, or [`Error::TooLarge`].
    pub fn try_zero_gradient(&self) -> Result<Params<T>, Error> {
        Params::try_zeros(&self.architecture)
    }

    /// Applies one SGD update `theta <- theta - eta * gradient`.
    ///
    /// The learning rate must be finite and non-negative, the gradient laid
    /// out for this network and finite, and the updated parameters finite;
    /// otherwise the network is left as it was (see
    /// [`crate::SgdTask::apply_update`] for the errors).
    pub fn apply_sgd(&mut self, gradient: &Params<T>, learning_rate: T) -> Result<(), Error> {
        check_learning_rate(learning_rate)?;
        gradient.check_layout(&self.architecture)?;
        self.check_finite()?;
        self.update(gradient.as_slice(), learning_rate, None, None)
    }

    /// Recomputes the bounds and the fault from the values.
    fn refresh(&mut self) {
        for (bound, shape) in self.bounds.iter_mut().zip(self.architecture.layers()) {
            let values = &self.params.as_slice()[shape.offset..][..shape.param_count()];
            *bound = T::largest_magnitude(values).to_f64();
        }
        self.fault =
            first_non_finite(self.params.as_slice()).map(|(index, value)| (index, value.to_f64()));
    }

    /// An upper bound of layer `l`'s largest `|parameter|` (`l` below the layer count).
    pub(crate) fn layer_bound(&self, l: usize) -> f64 {
        self.bounds[l]
    }

    /// Layer `l`'s largest `|parameter|`, read from the values.
    pub(crate) fn exact_layer_bound(&self, l: usize) -> f64 {
        let shape = self.architecture.layers()[l];
        let values = &self.params.as_slice()[shape.offset..][..shape.param_count()];
        T::largest_magnitude(values).to_f64()
    }

    /// Makes exact the bounds of the layers whose pre-activations, on inputs
    /// of magnitude at most `input_bound`, they could not keep within the
    /// overflow limit (see `task::check_range`), so that the next forward
    /// passes need not read those parameters.
    pub(crate) fn tighten_loose_bounds(&mut self, input_bound: f64) {
        let limit = crate::task::overflow_limit::<T>();
        let mut a = input_bound;
        for l in 0..self.bounds.len() {
            let shape = self.architecture.layers()[l];
            let mut bound = crate::task::layer_reach::<T>(shape.inputs, a, self.bounds[l]);
            if bound.is_nan() || bound > limit {
                self.bounds[l] = self.exact_layer_bound(l);
                bound = crate::task::layer_reach::<T>(shape.inputs, a, self.bounds[l]);
            }
            a = crate::task::next_reach(self.architecture.activations()[l], bound);
        }
    }

    /// The checked update `theta <- theta - eta g` behind every SGD step,
    /// with the step's loss, if any, checked here too (after the gradient,
    /// before anything is written): on any error the network is left as it
    /// was. With `fork`, the read of the gradient and the write of the
    /// update are cut into up to that many pieces for the fork's threads
    /// (see `SgdTask::apply_update_on`).
    ///
    /// One read of the gradient takes each layer's largest `|g|`, `G`; with
    /// the bound `B` of the layer's `|theta|`, `(B + eta G (1 + 4u)) (1 + 4u)`
    /// below the type's largest value proves every updated value finite
    /// (`u` the unit roundoff), and the update is then written in place,
    /// that sum the layer's new bound. Otherwise (a non-finite gradient, or
    /// a layer that might overflow) it is staged and checked value by value
    /// ([`Network::stage_update`]), which names the error if there is one.
    pub(crate) fn update(
        &mut self,
        gradient: &[T],
        learning_rate: T,
        loss: Option<T>,
        fork: Option<(usize, &mut Fork<'_>)>,
    ) -> Result<(), Error> {
        let mut fork = fork
            .map(|(pieces, fork)| (piece_count(gradient.len(), pieces), fork))
            .filter(|&(pieces, _)| pieces > 1);
        if self.bound_update(gradient, learning_rate, fork.as_mut()) {
            loss.map(check_loss).transpose()?;
            let params = self.params.as_mut_slice();
            match fork {
                Some((pieces, fork)) => {
                    pieces::axpy(params, -learning_rate, gradient, pieces, fork)
                }
                None => vector::axpy(params, -learning_rate, gradient),
            }
            std::mem::swap(&mut self.bounds, &mut self.next_bounds);
            return Ok(());
        }
        self.stage_update(gradient, learning_rate, UpdateSource::Core)?;
        loss.map(check_loss).transpose()?;
        self.commit_update();
        Ok(())
    }

    /// Whether the update `theta - eta g` provably keeps every parameter
    /// finite (see [`Network::update`]), leaving the layers' bounds after it
    /// in `next_bounds` if so; the gradient read in pieces on `fork`'s
    /// threads if there is one.
    fn bound_update(
        &mut self,
        gradient: &[T],
        learning_rate: T,
        fork: Option<&mut (usize, &mut Fork<'_>)>,
    ) -> bool {
        let layers = self.architecture.layers();
        // Each layer's largest |g| first, into `next_bounds`.
        let read = fork.is_some_and(|(pieces, fork)| {
            pieces::layer_maxima(
                gradient,
                layers,
                *pieces,
                &mut **fork,
                &mut self.next_bounds,
            )
        });
        if !read {
            for (largest, shape) in self.next_bounds.iter_mut().zip(layers) {
                let range = shape.offset..shape.offset + shape.param_count();
                let Some(g) = gradient.get(range) else {
                    return false;
                };
                *largest = T::largest_magnitude(g).to_f64();
            }
        }
        let margin = 1.0 + 4.0 * T::UNIT_ROUNDOFF;
        let eta = learning_rate.to_f64();
        for (next, &bound) in self.next_bounds.iter_mut().zip(&self.bounds) {
            let reach = (bound + eta * *next * margin) * margin;
            // NaN for a NaN `|g|`, infinite for an infinite one.
            if reach.is_nan() || reach >= T::LARGEST {
                return false;
            }
            *next = reach;
        }
        true
    }

    /// Writes the updated parameters `theta - eta g` into the network's
    /// spare buffer, not over the parameters, and checks them: a non-finite
    /// value there means a non-finite gradient component
    /// ([`Error::NonFiniteGradient`]) or an update that overflows
    /// ([`Error::NonFiniteUpdate`]), named by the first such parameter.
    /// [`Network::commit_update`] then swaps the buffers, so the check costs
    /// no pass of its own and a refused update has touched nothing.
    ///
    /// `source` says who writes the update: the core, or a kernel that
    /// already wrote it into the buffer [`Network::take_spare`] lent while it
    /// formed the gradient.
    pub(crate) fn stage_update(
        &mut self,
        gradient: &[T],
        learning_rate: T,
        source: UpdateSource,
    ) -> Result<(), Error> {
        self.fit_spare()?;
        let step = -learning_rate;
        let params = self.params.as_slice();
        let finite = match source {
            UpdateSource::Written => {
                let mut finite = true;
                for (bound, shape) in self.next_bounds.iter_mut().zip(self.architecture.layers()) {
                    let range = shape.offset..shape.offset + shape.param_count();
                    // The kernel's gradient is read too: it is the
                    // caller's, and a non-finite one must not pass.
                    *bound = T::largest_magnitude(&self.spare[range.clone()]).to_f64();
                    finite &=
                        bound.is_finite() && T::largest_magnitude(&gradient[range]).is_finite();
                }
                finite
            }
            UpdateSource::Core => {
                let mut finite = true;
                for (bound, shape) in self.next_bounds.iter_mut().zip(self.architecture.layers()) {
                    let range = shape.offset..shape.offset + shape.param_count();
                    let (out, theta, g) = (
                        &mut self.spare[range.clone()],
                        &params[range.clone()],
                        &gradient[range],
                    );
                    *bound = T::step_into(out, theta, step, g).to_f64();
                    finite &= bound.is_finite();
                }
                finite
            }
        };
        if finite {
            return Ok(());
        }
        // Rare: name the first bad gradient component, else the first bad update.
        let located = |index: usize| self.architecture.locate(index);
        if let Some((index, value)) = first_non_finite(gradient)
            && let Some(location) = located(index)
        {
            return Err(Error::NonFiniteGradient {
                location,
                value: value.to_f64(),
            });
        }
        let spare = &self.spare;
        let index = first_non_finite(spare).map_or(0, |(index, _)| index);
        Err(match located(index) {
            Some(location) => Error::NonFiniteUpdate {
                location,
                parameter: params.get(index).map_or(f64::NAN, |v| v.to_f64()),
                gradient: gradient.get(index).map_or(f64::NAN, |v| v.to_f64()),
                learning_rate: learning_rate.to_f64(),
            },
            None => Error::NonFiniteLoss { value: f64::NAN },
        })
    }

    /// Makes the update [`Network::stage_update`] checked the parameters.
    pub(crate) fn commit_update(&mut self) {
        self.params.swap_values(&mut self.spare);
        std::mem::swap(&mut self.bounds, &mut self.next_bounds);
    }

    /// Sizes the spare buffer as the parameters, allocating it on the first
    /// update ([`Error::TooLarge`] if it cannot be) and reusing it after.
    fn fit_spare(&mut self) -> Result<(), Error> {
        let count = self.params.len();
        if self.spare.len() != count {
            self.spare.clear();
            self.spare
                .try_reserve_exact(count)
                .map_err(|_| Error::TooLarge {
                    what: "the spare parameters of an update",
                    rows: count,
                    cols: 1,
                })?;
            self.spare.resize(count, T::ZERO);
        }
        Ok(())
    }

    /// Lends the spare buffer, sized as the parameters, to a kernel that
    /// writes the update while it forms the gradient; it comes back with
    /// [`Network::restore_spare`]. A kernel that panics meanwhile drops it,
    /// which costs only its reallocation on the next step.
    pub(crate) fn take_spare(&mut self) -> Result<Vec<T>, Error> {
        self.fit_spare()?;
        Ok(std::mem::take(&mut self.spare))
    }

    /// Takes back the buffer [`Network::take_spare`] lent.
    pub(crate) fn restore_spare(&mut self, spare: Vec<T>) {
        self.spare = spare;
    }
}

/// Who writes a step's updated parameters into the spare buffer (see
/// [`Network::stage_update`]).
pub(crate) enum UpdateSource {
    /// The core, with [`Scalar::step_into`] per layer.
    Core,
    /// A kernel that already wrote them (see `SgdTask::run_fused`).
    Written,
}

/// Returns `loss` unless it is not finite ([`Error::NonFiniteLoss`]).
pub(crate) fn check_loss<T: Scalar>(loss: T) -> Result<T, Error> {
    if loss.is_finite() {
        Ok(loss)
    } else {
        Err(Error::NonFiniteLoss {
            value: loss.to_f64(),
        })
    }
}

/// The parameter values of a network, lent mutably by
/// [`Network::param_values_mut`]; when dropped it checks them, and a
/// non-finite value is reported by the network's next use.
#[derive(Debug)]
pub struct ParamValuesMut<'a, T: Scalar> {
    network: &'a mut Network<T>,
}

impl<T: Scalar> Deref for ParamValuesMut<'_, T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        self.network.params.as_slice()
    }
}

impl<T: Scalar> DerefMut for ParamValuesMut<'_, T> {
    fn deref_mut(&mut self) -> &mut [T] {
        self.network.params.as_mut_slice()
    }
}

impl<T: Scalar> Drop for ParamValuesMut<'_, T> {
    fn drop(&mut self) {
        self.network.refresh();
    }
}

/// Rejects a learning rate that is negative, NaN or infinite.
pub fn check_learning_rate<T: Scalar>(learning_rate: T) -> Result<(), Error> {
    if learning_rate.is_finite() && learning_rate >= T::ZERO {
        Ok(())
    } else {
        Err(Error::InvalidLearningRate {
            value: learning_rate.to_f64(),
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::{Activation, Architecture, Batch, ForwardTask, Inputs, Loss, MatrixRef, Params};
    use crate::{Error, Network, ParamLocation, SgdTask};

    /// A 1-1 identity network with weight `w`, bias 0.
    fn identity(w: f32) -> Network<f32> {
        let architecture = Architecture::new(&[1, 1], &[Activation::Identity], Loss::Mse)
            .expect("a valid architecture");
        let params = Params::from_values(&architecture, vec![w, 0.0]).expect("two values");
        Network::new(architecture, params).expect("finite values")
    }

    #[test]
    fn loose_bounds_are_made_exact_instead_of_refusing_a_step() {
        let mut network = identity(1e18);
        // As if many steps had grown the bound far past the values.
        network.bounds[0] = 1e38;
        let (x, y) = ([1.0f32], [0.0f32]);
        let batch = Batch::from_slices(network.architecture(), 1, &x, &y).expect("a batch");
        let inputs = Inputs::new(MatrixRef::new(&x, 1, 1).expect("1 x 1")).expect("finite");
        // A forward pass reads the values instead of the loose bound.
        let mut out = [0.0];
        assert!(ForwardTask::new(&network, inputs, &mut out).is_ok());
        // A step makes the bound exact, and its update checks each value.
        let mut gradient = network.zero_gradient();
        SgdTask::new(&mut network, batch, &mut gradient, 0.5).expect("in range");
        assert_eq!(network.bounds[0], f64::from(1e18f32));
        network.bounds[0] = f64::from(f32::MAX);
        let mut gradient =
            Params::from_values(network.architecture(), vec![1e18, 0.0]).expect("two values");
        network
            .update(gradient.as_slice(), 0.5, None, None)
            .expect("finite values");
        assert_eq!(network.params().as_slice(), &[5e17, 0.0]);
        assert_eq!(
            network.bounds[0],
            f64::from(5e17f32),
            "made exact by the checked path"
        );
        // Values too large for the bound stay refused.
        gradient.as_mut_slice()[0] = -3e38;
        let error = network
            .update(gradient.as_slice(), 2.0, None, None)
            .unwrap_err();
        assert!(
            matches!(error, Error::NonFiniteUpdate { parameter, .. } if parameter == f64::from(5e17f32)),
            "{error:?}"
        );
        assert_eq!(network.params().as_slice(), &[5e17, 0.0]);
    }

    /// A 1-1 identity network with weight `w` and a gradient buffer for it.
    fn one_step(w: f32) -> (Network<f32>, Params<f32>) {
        let network = identity(w);
        let gradient = network.zero_gradient();
        (network, gradient)
    }

    #[test]
    fn a_provably_finite_update_is_written_in_place_with_a_grown_bound() {
        let mut network = identity(3.0);
        let before = network.params().as_slice().as_ptr();
        let gradient =
            Params::from_values(network.architecture(), vec![2.0f32, -4.0]).expect("two");
        network
            .update(gradient.as_slice(), 0.25, Some(1.0), None)
            .expect("finite");
        assert_eq!(network.params().as_slice(), &[2.5, 1.0]);
        assert_eq!(network.params().as_slice().as_ptr(), before, "in place");
        assert!(network.spare.is_empty(), "no spare buffer was needed");
        // The bound is |theta|'s old bound plus eta max |g|, with the margin.
        let margin = 1.0 + 4.0 * f64::from(f32::EPSILON) / 2.0;
        assert_eq!(network.bounds[0], (3.0 + 0.25 * 4.0 * margin) * margin);
        assert!(network.bounds[0] >= 2.5);
    }

    #[test]
    fn an_in_place_update_checks_the_loss_before_it_writes() {
        let mut network = identity(3.0);
        let gradient = Params::from_values(network.architecture(), vec![2.0f32, 0.0]).expect("two");
        let error = network
            .update(gradient.as_slice(), 0.25, Some(f32::NAN), None)
            .unwrap_err();
        assert!(
            matches!(error, Error::NonFiniteLoss { value } if value.is_nan()),
            "{error:?}"
        );
        assert_eq!(network.params().as_slice(), &[3.0, 0.0]);
        assert_eq!(network.bounds[0], 3.0);
    }

    #[test]
    fn an_update_in_pieces_is_the_update_and_writes_only_when_proved() {
        // 200-200-1: 40,401 parameters, so two pieces of at least
        // MIN_PIECE_VALUES when eight are asked for; every value and bound
        // against the update without a fork, and a refused step that never
        // reaches the write's items.
        let activations = [Activation::Tanh, Activation::Identity];
        let architecture =
            Architecture::new(&[200, 200, 1], &activations, crate::Loss::Mse).expect("valid");
        let count = architecture.param_count();
        assert!(count > 2 * crate::MIN_PIECE_VALUES && count < 3 * crate::MIN_PIECE_VALUES);
        let start = Network::<f64>::init(architecture.clone(), 3);
        let values: Vec<f64> = (0..count).map(|i| ((i * 31) % 97) as f64 - 48.5).collect();
        let gradient = Params::from_values(&architecture, values).expect("sized");
        let mut alone = start.clone();
        alone
            .update(gradient.as_slice(), 0.01, Some(1.0), None)
            .expect("finite");
        let mut forks = 0;
        let mut items = Vec::new();
        let mut fork = |count: usize, work: &(dyn Fn(usize) + Sync)| {
            forks += 1;
            items.push(count);
            (0..count).rev().for_each(work);
        };
        let mut split = start.clone();
        split
            .update(gradient.as_slice(), 0.01, Some(1.0), Some((8, &mut fork)))
            .expect("finite");
        assert_eq!(forks, 2, "one fork to read, one to write");
        assert_eq!(
            items,
            [3, 2],
            "segments of two layers over two pieces, then two pieces"
        );
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(split.params().as_slice()),
            bits(alone.params().as_slice())
        );
        assert_eq!(bits(&split.bounds), bits(&alone.bounds));

        let mut bad = gradient.clone();
        bad.as_mut_slice()[count - 1] = f64::NAN;
        forks = 0;
        let mut refused = start.clone();
        let mut fork = |count: usize, work: &(dyn Fn(usize) + Sync)| {
            forks += 1;
            (0..count).for_each(work);
        };
        let error = refused
            .update(bad.as_slice(), 0.01, Some(1.0), Some((8, &mut fork)))
            .unwrap_err();
        assert!(
            matches!(error, Error::NonFiniteGradient { .. }),
            "{error:?}"
        );
        assert_eq!(forks, 1, "the refused step never reached the write");
        assert_eq!(
            bits(refused.params().as_slice()),
            bits(start.params().as_slice())
        );
        assert_eq!(bits(&refused.bounds), bits(&start.bounds));

        // A network too small for two pieces never forks.
        let mut small = identity(3.0);
        let gradient = Params::from_values(small.architecture(), vec![2.0f32, 0.0]).expect("two");
        let mut never = |_: usize, _: &(dyn Fn(usize) + Sync)| panic!("a fork for two values");
        small
            .update(gradient.as_slice(), 0.5, Some(0.0), Some((8, &mut never)))
            .expect("finite");
        assert_eq!(small.params().as_slice(), &[2.0, 0.0]);
    }

    /// What a fused kernel writes: the updated values, the gradient, the loss.
    type Written = ([f32; 2], [f32; 2], f32);

    /// Whether an error is the one expected.
    type Expected = fn(&Error) -> bool;

    /// A fused step of the 1-1 network on the sample `(1, 0)` whose kernel
    /// writes `values`.
    fn fused_step(
        network: &mut Network<f32>,
        gradient: &mut Params<f32>,
        values: Written,
    ) -> Result<f32, Error> {
        let (x, y) = ([1.0f32], [0.0f32]);
        let batch = Batch::from_slices(network.architecture(), 1, &x, &y).expect("a batch");
        let task = SgdTask::new(network, batch, gradient, 0.5).expect("a valid step");
        task.run_fused(|task, updated, step| {
            assert_eq!(step, -0.5);
            assert_eq!(updated.len(), 2);
            let (update, grad, loss) = values;
            let (_, _, mut gradient) = task.into_parts();
            gradient.as_mut_slice().copy_from_slice(&grad);
            updated.copy_from_slice(&update);
            Ok(loss)
        })
    }

    #[test]
    fn a_fused_step_commits_what_its_kernel_wrote_once_checked() {
        let (mut network, mut gradient) = one_step(3.0);
        let loss = fused_step(&mut network, &mut gradient, ([2.0, -1.0], [2.0, 2.0], 4.5));
        assert_eq!(loss.expect("finite"), 4.5);
        assert_eq!(network.params().as_slice(), &[2.0, -1.0]);
        assert_eq!(gradient.as_slice(), &[2.0, 2.0]);
        assert_eq!(network.bounds[0], 2.0, "exact, read from the values");
    }

    #[test]
    fn a_fused_step_that_fails_leaves_the_network_as_it_was() {
        let cases: [(Written, Expected); 4] = [
            (([f32::NAN, 0.0], [2.0, 0.0], 4.5), |e| {
                matches!(e, Error::NonFiniteUpdate { .. })
            }),
            (([2.0, 0.0], [f32::NAN, 0.0], 4.5), |e| {
                matches!(e, Error::NonFiniteGradient { .. })
            }),
            (([2.0, 0.0], [2.0, f32::INFINITY], 4.5), |e| {
                matches!(e, Error::NonFiniteGradient { .. })
            }),
            (([2.0, 0.0], [2.0, 0.0], f32::INFINITY), |e| {
                matches!(e, Error::NonFiniteLoss { .. })
            }),
        ];
        for (values, expected) in cases {
            let (mut network, mut gradient) = one_step(3.0);
            let error = fused_step(&mut network, &mut gradient, values).unwrap_err();
            assert!(expected(&error), "{values:?}: {error:?}");
            assert_eq!(network.params().as_slice(), &[3.0, 0.0], "{values:?}");
            assert_eq!(network.bounds[0], 3.0, "{values:?}");
        }
        // A kernel's own error, and a kernel's panic.
        let (mut network, mut gradient) = one_step(3.0);
        let (x, y) = ([1.0f32], [0.0f32]);
        let batch = Batch::from_slices(network.architecture(), 1, &x, &y).expect("a batch");
        let task = SgdTask::new(&mut network, batch, &mut gradient, 0.5).expect("a valid step");
        let error = task
            .run_fused(|_, updated, _| {
                updated.fill(7.0);
                Err(Error::InvalidLearningRate { value: 7.0 })
            })
            .unwrap_err();
        assert!(
            matches!(error, Error::InvalidLearningRate { value: 7.0 }),
            "{error:?}"
        );
        assert_eq!(network.params().as_slice(), &[3.0, 0.0]);
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let task = SgdTask::new(&mut network, batch, &mut gradient, 0.5).expect("valid");
            task.run_fused(|_, updated, _| {
                updated.fill(7.0);
                panic!("a kernel's bug")
            })
        }));
        assert!(panicked.is_err());
        assert_eq!(network.params().as_slice(), &[3.0, 0.0]);
        // The next step lends a spare buffer again.
        let loss = fused_step(&mut network, &mut gradient, ([2.0, 0.0], [2.0, 0.0], 4.5));
        assert_eq!(loss.expect("finite"), 4.5);
        assert_eq!(network.params().as_slice(), &[2.0, 0.0]);
    }

    #[test]
    fn networks_are_equal_when_architecture_and_parameters_are() {
        let (a, b) = (identity(2.0), identity(2.0));
        assert_eq!(a, b);
        assert_ne!(a, identity(3.0));
        // Same parameters, another activation.
        let architecture =
            Architecture::new(&[1, 1], &[Activation::Tanh], Loss::Mse).expect("valid");
        let params = Params::from_values(&architecture, vec![2.0, 0.0]).expect("two values");
        assert_ne!(a, Network::new(architecture, params).expect("finite"));
    }

    #[test]
    fn initial_weights_fill_the_glorot_or_he_range_and_biases_start_at_zero() {
        let architecture = Architecture::new(
            &[200, 100, 50],
            &[Activation::Sigmoid, Activation::Relu],
            Loss::Mse,
        )
        .expect("valid");
        let network = Network::<f64>::init(architecture, 7);
        let layers = crate::Layers::of(&network);
        // Glorot for the sigmoid layer, He for the ReLU one.
        let ranges = [(6.0f64 / 300.0).sqrt(), (6.0f64 / 100.0).sqrt()];
        for (layer, range) in layers.iter().zip(ranges) {
            let largest = layer.weights.iter().fold(0.0f64, |m, w| m.max(w.abs()));
            assert!(largest < range, "{largest} within {range}");
            assert!(largest > 0.98 * range, "{largest} fills {range}");
            assert!(layer.bias.iter().all(|&b| b == 0.0));
        }
        assert_eq!(
            network,
            Network::<f64>::init(network.architecture().clone(), 7)
        );
    }

    #[test]
    fn a_non_finite_value_left_through_the_guard_is_reported_where_it_is() {
        let mut network = identity(2.0);
        assert!(network.check_finite().is_ok());
        network.param_values_mut()[1] = f32::INFINITY;
        let error = network.check_finite().unwrap_err();
        assert!(
            matches!(error, Error::NonFiniteParameter { location: ParamLocation::Bias { layer: 0, index: 0 }, value } if value == f64::INFINITY),
            "{error:?}"
        );
        network.param_values_mut()[1] = 0.5;
        assert!(network.check_finite().is_ok());
        assert_eq!(
            network.bounds[0], 2.0,
            "recomputed when the guard was dropped"
        );
    }

    #[test]
    fn set_params_takes_finite_values_of_the_same_layout_only() {
        let mut network = identity(2.0);
        let architecture = network.architecture().clone();
        let good = Params::from_values(&architecture, vec![-5.0, 1.0]).expect("two values");
        network.set_params(good).expect("finite");
        assert_eq!(network.params().as_slice(), &[-5.0, 1.0]);
        assert_eq!(network.bounds[0], 5.0);
        let bad = Params::from_values(&architecture, vec![f32::NAN, 1.0]).expect("two values");
        let error = network.set_params(bad).unwrap_err();
        assert!(
            matches!(error, Error::NonFiniteParameter { .. }),
            "{error:?}"
        );
        let other = Architecture::new(&[2, 1], &[Activation::Identity], Loss::Mse).expect("valid");
        let error = network.set_params(Params::zeros(&other)).unwrap_err();
        assert!(
            matches!(
                error,
                Error::ParameterLayout { .. } | Error::ParameterLength { .. }
            ),
            "{error:?}"
        );
        assert_eq!(network.params().as_slice(), &[-5.0, 1.0]);
    }

    #[test]
    fn apply_sgd_updates_by_minus_eta_times_the_gradient_and_checks_the_rate() {
        let mut network = identity(2.0);
        let gradient =
            Params::from_values(network.architecture(), vec![4.0f32, -2.0]).expect("two");
        network.apply_sgd(&gradient, 0.25).expect("finite");
        assert_eq!(network.params().as_slice(), &[1.0, 0.5]);
        for rate in [-0.5, f32::NAN, f32::INFINITY] {
            let error = network.apply_sgd(&gradient, rate).unwrap_err();
            assert!(
                matches!(error, Error::InvalidLearningRate { .. }),
                "{rate}: {error:?}"
            );
        }
        assert!(super::check_learning_rate(0.0f32).is_ok());
        assert_eq!(network.params().as_slice(), &[1.0, 0.5]);
    }
}
