//! Elementwise activation functions and their derivatives.

use std::fmt;
use std::str::FromStr;

use crate::{Error, Scalar, parse_name};

/// An elementwise activation `a = act(z)` applied after a layer's affine map.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Activation {
    /// `1 / (1 + e^-z)`, the seed network's activation; `act' = s(z) s(-z)`,
    /// which is `a (1 - a)` (see [`Activation::slope`] for why it is not
    /// computed that way).
    Sigmoid,
    /// `tanh z`; `act' = 1 - a^2 = 1 / cosh^2 z`.
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
    /// `e / (1 + e)` otherwise, so `z = +-1000` gives the limits 1 and 0
    /// exactly. It is the value [`Activation::value_and_slope`] returns, bit
    /// for bit, so a forward pass and a gradient call see the same outputs.
    #[inline]
    pub fn value<T: Scalar>(self, z: T) -> T {
        match self {
            Activation::Sigmoid => sigmoid_parts(z).0,
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

    /// `act'(z)`, formed from `z` so that it keeps its full relative accuracy
    /// where the unit saturates.
    ///
    /// The classic forms `a (1 - a)` and `1 - a^2` cancel there: in `f32` a
    /// tanh with `|z| >= 9.5` rounds to `a = 1` and gives a slope of exactly
    /// 0, although the true slope (`2.2e-8` at `z = 9.5`) is a normal number.
    /// With `e = e^-|z|` and `t = e^-2|z|`, both at most 1, the slopes are
    ///
    /// - sigmoid: `s(z) s(-z) = e / (1 + e)^2`,
    /// - tanh: `4 t / (1 + t)^2`,
    ///
    /// products and quotients of positive numbers, each within a few units
    /// in the last place of the true slope down to the subnormal range. ReLU
    /// uses the convention `act'(0) = 0`.
    #[inline]
    pub fn slope<T: Scalar>(self, z: T) -> T {
        self.value_and_slope(z).1
    }

    /// `act(z)` (exactly as [`Activation::value`]) and `act'(z)` (exactly as
    /// [`Activation::slope`]), the sigmoid's from one exponential: what the
    /// forward pass of a gradient call keeps for the backward pass, which
    /// then does no transcendental work.
    #[inline]
    pub fn value_and_slope<T: Scalar>(self, z: T) -> (T, T) {
        match self {
            Activation::Sigmoid => sigmoid_parts(z),
            Activation::Tanh => {
                let t = (-(z.abs() + z.abs())).exp();
                let q = T::ONE / (T::ONE + t);
                let two_t_q = (t + t) * q;
                (z.tanh(), (two_t_q + two_t_q) * q)
            }
            Activation::Relu => {
                if z > T::ZERO {
                    (z, T::ONE)
                } else {
                    (T::ZERO, T::ZERO)
                }
            }
            Activation::Identity => (z, T::ONE),
        }
    }
}

/// The sigmoid and its slope from `e = e^-|z| <= 1`, which never overflows:
/// with `q = 1 / (1 + e)`, the value is `q` for `z >= 0` and `e q` below
/// (chosen by a select, so that loops vectorize), and the slope is `e q^2`.
#[inline(always)]
fn sigmoid_parts<T: Scalar>(z: T) -> (T, T) {
    let e = (-z.abs()).exp();
    let q = T::ONE / (T::ONE + e);
    let e_q = e * q;
    let value = if z >= T::ZERO { q } else { e_q };
    (value, e_q * q)
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

#[cfg(test)]
mod tests;
