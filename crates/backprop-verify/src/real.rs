//! Number types the oracle's forward-loss function runs on: `f64` and forward-mode duals.

use std::ops::{Add, Div, Mul, Neg, Sub};

use crate::checks::Cancellation;

/// What the generic forward-loss function needs of a number.
pub trait Real:
    Copy
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
{
    /// A constant, with no derivative part.
    fn constant(value: f64) -> Self;
    /// The plain value (the real part of a dual).
    fn value(self) -> f64;
    /// `e^x`.
    fn exp(self) -> Self;
    /// `ln x`.
    fn ln(self) -> Self;
    /// `ln(1 + x)`, accurate for small `x`.
    fn ln_1p(self) -> Self;
    /// `tanh x`.
    fn tanh(self) -> Self;
    /// `1 / (1 + e^-x)`, in a form that cannot overflow.
    fn sigmoid(self) -> Self;
    /// `self`, a value computed in a form that subtracts nothing from 1,
    /// with the rounding allowance of `cancelling`, the same value computed
    /// in the form that does (see [`Dual::cancelling_magnitude`]).
    fn allowing_cancellation_of(self, cancelling: Self) -> Self;
}

/// The logistic function in `f64`: `e^-x` for `x >= 0` and `e^x` otherwise,
/// both at most 1.
fn logistic(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

impl Real for f64 {
    fn constant(value: f64) -> Self {
        value
    }
    fn value(self) -> f64 {
        self
    }
    fn exp(self) -> Self {
        f64::exp(self)
    }
    fn ln(self) -> Self {
        f64::ln(self)
    }
    fn ln_1p(self) -> Self {
        f64::ln_1p(self)
    }
    fn tanh(self) -> Self {
        f64::tanh(self)
    }
    fn sigmoid(self) -> Self {
        logistic(self)
    }
    fn allowing_cancellation_of(self, _cancelling: Self) -> Self {
        self
    }
}

/// A forward-mode dual number `re + eps * d`, with `d^2 = 0`, that also
/// carries the condition magnitudes of its value and derivative.
///
/// Evaluating a function on `theta + eps * v` gives the exact directional
/// derivative `f'(theta) . v` in the `eps` part, up to rounding only: there is
/// no step size.
///
/// The two magnitude parts make the rounding error of the same computation
/// in another program, in any order and precision with unit roundoff `u`,
/// bounded to first order by `k u magnitude` (with `k` the longest chain of
/// operations): `value_magnitude` is the value with every term of every sum
/// taken in absolute value, and `magnitude` is the derivative with every term
/// in absolute value and every value it uses perturbed by its own magnitude.
/// A cancellation such as `a - y` with `a` close to `y` therefore keeps the
/// size of `a` and `y`, which is what its rounding error scales with.
///
/// The derivative's magnitude comes in two kinds, for two ways of forming
/// the activation slopes and the softmax cross-entropy's `p - y`:
/// `magnitude` counts each slope at its own size, as a program that forms
/// it from `z` without cancellation rounds it, and `cancelling_magnitude`
/// at the size of the 1 that `a (1 - a)`, `1 - a^2` and `p - 1` subtract
/// from, as a program that forms them from the rounded activation does.
/// Where no unit saturates the two are about the same; where one does, the
/// second can be larger than the derivative by many orders of magnitude.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dual {
    /// The value.
    pub re: f64,
    /// The directional derivative.
    pub eps: f64,
    /// The value's terms summed in absolute value.
    pub value_magnitude: f64,
    /// The derivative's terms summed in absolute value, including the
    /// sensitivity to the values' own rounding, with every slope counted
    /// at its own size.
    pub magnitude: f64,
    /// [`Dual::magnitude`] with the slopes counted at the size of the 1
    /// they cancel against.
    pub cancelling_magnitude: f64,
}

impl Dual {
    /// `re + eps * d`, seeded as an input whose derivative is exactly `eps`.
    pub fn new(re: f64, eps: f64) -> Self {
        Dual {
            re,
            eps,
            value_magnitude: re.abs(),
            magnitude: eps.abs(),
            cancelling_magnitude: eps.abs(),
        }
    }

    /// The derivative's magnitude that `cancellation` judges by.
    pub fn magnitude_in(&self, cancellation: Cancellation) -> f64 {
        match cancellation {
            Cancellation::Forbidden => self.magnitude,
            Cancellation::Allowed => self.cancelling_magnitude,
        }
    }

    /// Applies a function with value `value`, first derivative `slope` and
    /// second derivative `curvature` at `self.re`. `cancelling_slope` is the
    /// magnitude of the slope as a program forming it from the rounded
    /// value evaluates it: `a (1 - a)` for the sigmoid and `1 - a^2` for
    /// tanh lose the size of `1` to cancellation when `a` saturates, so
    /// theirs are `|a| (1 + |a|)` and `1 + a^2`; formed from `z`, the slope's
    /// magnitude is its own size.
    fn chain(self, value: f64, slope: f64, cancelling_slope: f64, curvature: f64) -> Self {
        let eps = slope * self.eps;
        let magnitude = |slope_magnitude: f64, magnitude: f64| {
            slope_magnitude * self.eps.abs()
                + slope.abs() * magnitude
                + curvature.abs() * self.value_magnitude * self.eps.abs()
        };
        Dual {
            re: value,
            eps,
            value_magnitude: value.abs() + slope.abs() * self.value_magnitude,
            magnitude: magnitude(slope.abs(), self.magnitude),
            cancelling_magnitude: magnitude(cancelling_slope, self.cancelling_magnitude),
        }
    }
}

impl Add for Dual {
    type Output = Dual;
    fn add(self, other: Dual) -> Dual {
        Dual {
            re: self.re + other.re,
            eps: self.eps + other.eps,
            value_magnitude: self.value_magnitude + other.value_magnitude,
            magnitude: self.magnitude + other.magnitude,
            cancelling_magnitude: self.cancelling_magnitude + other.cancelling_magnitude,
        }
    }
}

impl Sub for Dual {
    type Output = Dual;
    fn sub(self, other: Dual) -> Dual {
        self + -other
    }
}

impl Mul for Dual {
    type Output = Dual;
    fn mul(self, other: Dual) -> Dual {
        let magnitude = |own: f64, others: f64| {
            self.value_magnitude * other.eps.abs()
                + self.re.abs() * others
                + own * other.re.abs()
                + self.eps.abs() * other.value_magnitude
        };
        Dual {
            re: self.re * other.re,
            eps: self.re * other.eps + self.eps * other.re,
            value_magnitude: self.value_magnitude * other.re.abs()
                + self.re.abs() * other.value_magnitude,
            magnitude: magnitude(self.magnitude, other.magnitude),
            cancelling_magnitude: magnitude(self.cancelling_magnitude, other.cancelling_magnitude),
        }
    }
}

impl Div for Dual {
    type Output = Dual;
    fn div(self, other: Dual) -> Dual {
        let quotient = self.re / other.re;
        let divisor = other.re.abs();
        let eps = (self.eps - quotient * other.eps) / other.re;
        let value_magnitude =
            (self.value_magnitude + quotient.abs() * other.value_magnitude) / divisor;
        let magnitude = |own: f64, others: f64| {
            (own + quotient.abs() * others + value_magnitude * other.eps.abs()) / divisor
                + eps.abs() * other.value_magnitude / divisor
        };
        Dual {
            re: quotient,
            eps,
            value_magnitude,
            magnitude: magnitude(self.magnitude, other.magnitude),
            cancelling_magnitude: magnitude(self.cancelling_magnitude, other.cancelling_magnitude),
        }
    }
}

impl Neg for Dual {
    type Output = Dual;
    fn neg(self) -> Dual {
        Dual {
            re: -self.re,
            eps: -self.eps,
            ..self
        }
    }
}

impl Real for Dual {
    fn constant(value: f64) -> Self {
        Dual::new(value, 0.0)
    }
    fn value(self) -> f64 {
        self.re
    }
    fn exp(self) -> Self {
        let e = self.re.exp();
        self.chain(e, e, e, e)
    }
    fn ln(self) -> Self {
        let inverse = 1.0 / self.re;
        self.chain(self.re.ln(), inverse, inverse.abs(), inverse * inverse)
    }
    fn ln_1p(self) -> Self {
        let inverse = 1.0 / (1.0 + self.re);
        self.chain(self.re.ln_1p(), inverse, inverse.abs(), inverse * inverse)
    }
    fn tanh(self) -> Self {
        let t = self.re.tanh();
        // 1 - t^2 without cancellation: 1 / cosh^2.
        let slope = 1.0 / self.re.cosh().powi(2);
        self.chain(t, slope, 1.0 + t * t, 2.0 * t * slope)
    }
    fn sigmoid(self) -> Self {
        let s = logistic(self.re);
        // s (1 - s) without cancellation: s * sigmoid(-x).
        let slope = s * logistic(-self.re);
        self.chain(s, slope, s * (1.0 + s), slope * (1.0 - 2.0 * s))
    }
    fn allowing_cancellation_of(self, cancelling: Self) -> Self {
        Dual {
            value_magnitude: self.value_magnitude.max(cancelling.value_magnitude),
            cancelling_magnitude: self
                .cancelling_magnitude
                .max(cancelling.cancelling_magnitude),
            ..self
        }
    }
}
