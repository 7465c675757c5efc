//! Elementwise activation functions and their derivatives.

use std::fmt;
use std::str::FromStr;

use crate::{Error, Scalar, parse_name};

/// An elementwise activation `a = act(z)` applied after a layer's affine map.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Activation {
    /// `1 / (1 + e^-z)`, the seed network's activation; `act' = a (1 - a)`.
    Sigmoid,
    /// `tanh z`; `act' = 1 - a^2`.
    Tanh,
    /// `max(0, z)`; `act' = 1` for `z > 0` and `0` otherwise, so `act'(0) = 0`.
    Relu,
    /// `z`; `act' = 1`. The output layer of a softmax cross-entropy network.
    Identity,
}

impl Activation {
    /// Every activation, in a fixed order.
    pub const ALL: [Activation; 4] = [
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::Relu,
        Activation::Identity,
    ];

    /// The activation's stable name, as `Display` prints it and `FromStr` reads it.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
            Activation::Relu => "relu",
            Activation::Identity => "identity",
        }
    }

    /// `act(z)`, finite for every finite `z`.
    ///
    /// The sigmoid is evaluated without overflow for any `|z|`: with
    /// `e = e^-|z|`, at most 1, it is `1 / (1 + e)` for `z >= 0` and
    /// `e / (1 + e)` otherwise, so `z = +-1000` gives the limits 1 and 0 exactly.
    #[inline]
    pub fn value<T: Scalar>(self, z: T) -> T {
        match self {
            Activation::Sigmoid => {
                // e = e^-|z| <= 1 never overflows: 1 / (1 + e) for z >= 0 and
                // e / (1 + e) below, chosen by a select so that loops vectorize.
                let e = (-z.abs()).exp();
                let numerator = if z >= T::ZERO { T::ONE } else { e };
                numerator / (T::ONE + e)
            }
            Activation::Tanh => z.tanh(),
            Activation::Relu => {
                if z > T::ZERO {
                    z
                } else {
                    T::ZERO
                }
            }
            Activation::Identity => z,
        }
    }

    /// `act'(z)`, given `z` and the already computed `a = act(z)`.
    ///
    /// Sigmoid and tanh use `a` (as the classic derivation does); ReLU uses `z`
    /// with the convention `act'(0) = 0`.
    #[inline]
    pub fn derivative<T: Scalar>(self, z: T, a: T) -> T {
        match self {
            Activation::Sigmoid => a * (T::ONE - a),
            Activation::Tanh => T::ONE - a * a,
            Activation::Relu => {
                if z > T::ZERO {
                    T::ONE
                } else {
                    T::ZERO
                }
            }
            Activation::Identity => T::ONE,
        }
    }
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Activation {
    type Err = Error;

    fn from_str(name: &str) -> Result<Self, Error> {
        parse_name("activation", name, &Activation::ALL, Activation::name)
    }
}
