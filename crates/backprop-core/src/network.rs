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
use crate::{Activation, Architecture, Error, Params, Scalar};

/// An architecture together with finite parameters laid out for it.
///
/// After its first SGD step a network also holds a spare buffer as large as
/// its parameters, which each step writes the updated values into before it
/// makes them the parameters: that is how a refused step leaves the
/// parameters untouched without a pass of its own.
#[derive(Debug)]
pub struct Network<T> {
    architecture: Architecture,
    params: Params<T>,
    /// For each weight layer, an upper bound of its largest `|parameter|`,
    /// weights and biases: exact after a check or a step of the core's own
    /// update. Lets a forward pass rule out overflow without reading the
    /// parameters.
    bounds: Vec<f64>,
    /// Room for the bounds after a step, so that a step allocates nothing.
    next_bounds: Vec<f64>,
    /// The first non-finite parameter left by [`Network::param_values_mut`]
    /// (its flat index and value), reported at the network's next use.
    fault: Option<(usize, f64)>,
    /// Where a step writes the updated parameters before they become the
    /// parameters (empty until the first step).
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
        self.apply_update(gradient.as_slice(), learning_rate)
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

    /// The checked update `theta += (-eta) g` behind every SGD step: the
    /// gradient must be finite and so must every updated parameter, or the
    /// network is left as it was (see [`Network::stage_update`]).
    pub(crate) fn apply_update(&mut self, gradient: &[T], learning_rate: T) -> Result<(), Error> {
        self.stage_update(gradient, learning_rate, None)?;
        self.commit_update();
        Ok(())
    }

    /// Writes the updated parameters `theta - eta g` into the network's
    /// spare buffer, not over the parameters, and checks them: a non-finite
    /// value there means a non-finite gradient component
    /// ([`Error::NonFiniteGradient`]) or an update that overflows
    /// ([`Error::NonFiniteUpdate`]), named by the first such parameter.
    /// [`Network::commit_update`] then swaps the buffers, so the check costs
    /// no pass of its own and a refused update has touched nothing.
    ///
    /// `apply`, if given, writes the update instead (a kernel's own way, on
    /// several threads, say) as `apply(out, params, gradient, -eta)`,
    /// returning the largest magnitude it wrote, as [`Scalar::step_into`] does.
    /// The spare buffer is allocated on the first update ([`Error::TooLarge`]
    /// if it cannot be) and reused after.
    pub(crate) fn stage_update(
        &mut self,
        gradient: &[T],
        learning_rate: T,
        apply: Option<&mut UpdateWriter<'_, T>>,
    ) -> Result<(), Error> {
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
        let step = -learning_rate;
        let params = self.params.as_slice();
        let finite = match apply {
            Some(apply) => {
                let largest = apply(&mut self.spare, params, gradient, step).to_f64();
                self.next_bounds.fill(largest);
                largest.is_finite()
            }
            None => {
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
        let index = params
            .iter()
            .zip(gradient)
            .position(|(&theta, &g)| {
                let mut value = theta;
                value += step * g;
                !value.is_finite()
            })
            .unwrap_or_default();
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

    /// The parameters, for a kernel that updates them itself (see
    /// [`crate::SgdTask::into_update`]); the bounds are recomputed on the
    /// network's next check.
    pub(crate) fn values_for_fused_update(&mut self) -> &mut [T] {
        self.bounds.fill(f64::INFINITY);
        self.params.as_mut_slice()
    }

    /// After a step: if a fused kernel wrote the parameters itself (see
    /// [`crate::SgdTask::into_update`]), recomputes the bounds and reports a
    /// non-finite parameter it left.
    pub(crate) fn settle(&mut self) -> Result<(), Error> {
        if self.bounds.iter().any(|bound| bound.is_infinite()) {
            self.refresh();
        }
        self.check_finite()
    }
}

/// A kernel's way of writing an update: `(out, params, gradient, step)`,
/// returning the largest magnitude written (see `SgdTask::apply_update_with`).
pub(crate) type UpdateWriter<'a, T> = dyn FnMut(&mut [T], &[T], &[T], T) -> T + 'a;

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
    use crate::{Error, Network, SgdTask};

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
            .apply_update(gradient.as_slice(), 0.5)
            .expect("finite values");
        assert_eq!(network.params().as_slice(), &[5e17, 0.0]);
        assert_eq!(
            network.bounds[0],
            f64::from(5e17f32),
            "made exact by the checked path"
        );
        // Values too large for the bound stay refused.
        gradient.as_mut_slice()[0] = -3e38;
        let error = network.apply_update(gradient.as_slice(), 2.0).unwrap_err();
        assert!(
            matches!(error, Error::NonFiniteUpdate { parameter, .. } if parameter == f64::from(5e17f32)),
            "{error:?}"
        );
        assert_eq!(network.params().as_slice(), &[5e17, 0.0]);
    }
}
