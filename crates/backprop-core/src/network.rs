//! A network: an architecture with its parameters, and seeded initialisation.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::{Activation, Architecture, Error, Params, Scalar};

/// An architecture together with parameters laid out for it.
#[derive(Clone, Debug, PartialEq)]
pub struct Network<T> {
    architecture: Architecture,
    params: Params<T>,
}

impl<T: Scalar> Network<T> {
    /// Pairs an architecture with parameters, which must be laid out for it.
    pub fn new(architecture: Architecture, params: Params<T>) -> Result<Self, Error> {
        params.check_layout(&architecture)?;
        Ok(Network {
            architecture,
            params,
        })
    }

    /// A network whose weights and biases are all zero.
    pub fn zeros(architecture: Architecture) -> Self {
        let params = Params::zeros(&architecture);
        Network {
            architecture,
            params,
        }
    }

    /// A network initialised from `seed`, bit-identical for the same seed.
    ///
    /// Weights of a layer with `fan_in` inputs and `fan_out` outputs are drawn
    /// uniformly from `[-r, r)`: Glorot/Xavier `r = sqrt(6 / (fan_in + fan_out))`
    /// for sigmoid, tanh and identity layers, He `r = sqrt(6 / fan_in)` for
    /// ReLU layers. Biases start at zero. Values are drawn in `f64` and rounded,
    /// so an `f32` and an `f64` network from the same seed agree to `f32` precision.
    pub fn init(architecture: Architecture, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut params = Params::zeros(&architecture);
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
        Network {
            architecture,
            params,
        }
    }

    /// The same network rounded (or widened) to another precision.
    pub fn to_precision<U: Scalar>(&self) -> Network<U> {
        Network {
            architecture: self.architecture.clone(),
            params: self.params.to_precision(),
        }
    }

    /// The architecture.
    pub fn architecture(&self) -> &Architecture {
        &self.architecture
    }

    /// The parameters.
    pub fn params(&self) -> &Params<T> {
        &self.params
    }

    /// The parameter values, mutably (the layout cannot change).
    pub fn param_values_mut(&mut self) -> &mut [T] {
        self.params.as_mut_slice()
    }

    /// Replaces the parameters with others laid out for the same architecture.
    pub fn set_params(&mut self, params: Params<T>) -> Result<(), Error> {
        params.check_layout(&self.architecture)?;
        self.params = params;
        Ok(())
    }

    /// A zeroed buffer laid out for this network's gradient.
    pub fn zero_gradient(&self) -> Params<T> {
        Params::zeros(&self.architecture)
    }

    /// Applies one SGD update `theta <- theta - eta * gradient`.
    ///
    /// The learning rate must be finite and non-negative; the gradient must be
    /// laid out for this network.
    pub fn apply_sgd(&mut self, gradient: &Params<T>, learning_rate: T) -> Result<(), Error> {
        check_learning_rate(learning_rate)?;
        self.params.axpy(-learning_rate, gradient)
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
