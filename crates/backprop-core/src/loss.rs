//! Loss functions, per sample: the value and the output layer's error signal `delta^L`.
//!
//! Every backend computes the loss of a batch as the mean of these per-sample
//! values and seeds backpropagation with [`Loss::output_delta`], so the loss
//! convention lives here and nowhere else.

use std::fmt;
use std::str::FromStr;

use crate::{Activation, Error, Scalar, parse_name};

/// The loss `J` of a batch, always a mean over its `B` samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Loss {
    /// Mean squared error as the seed derivation defines it:
    /// `J = 1/(2 m B) * sum_b sum_i (Y_bi - A_bi)^2`, so `dJ/dA = (A - Y) / (m B)`.
    Mse,
    /// Softmax fused with cross-entropy on the logits `Z^L` of an identity
    /// output layer: `J = -1/B * sum_b sum_i Y_bi log softmax(Z^L_b)_i`.
    ///
    /// Its gradient is `dJ/dZ^L_b = (softmax(Z^L_b) * s_b - Y_b) / B` with
    /// `s_b = sum_i Y_bi`; for targets that are probability distributions
    /// (one-hot labels among them) `s_b = 1` and this is the familiar
    /// `(softmax - Y) / B`. The general form keeps the gradient exact for any
    /// target values.
    SoftmaxCrossEntropy,
}

impl Loss {
    /// Every loss, in a fixed order.
    pub const ALL: [Loss; 2] = [Loss::Mse, Loss::SoftmaxCrossEntropy];

    /// The loss's stable name, as `Display` prints it and `FromStr` reads it.
    pub fn name(self) -> &'static str {
        match self {
            Loss::Mse => "mse",
            Loss::SoftmaxCrossEntropy => "softmax-cross-entropy",
        }
    }

    /// One sample's contribution `B * J_b` to the batch loss, so that the batch
    /// loss is the mean of these values.
    ///
    /// `z` and `a` are the output layer's pre-activations and activations, `y`
    /// the sample's targets; all three must have the output width `m`, at
    /// least 1 ([`Error::SampleLength`] otherwise). For softmax cross-entropy
    /// an output whose target is 0 adds nothing (`0 log 0 = 0`), so a logit
    /// whose probability underflows to 0 cannot make the loss NaN.
    #[inline]
    pub fn sample_value<T: Scalar>(self, z: &[T], a: &[T], y: &[T]) -> Result<T, Error> {
        check_lengths(z, a, y, None)?;
        Ok(self.sample_value_of_checked(z, a, y))
    }

    /// [`Loss::sample_value`] for lengths already checked equal and non-zero.
    #[inline(always)]
    fn sample_value_of_checked<T: Scalar>(self, z: &[T], a: &[T], y: &[T]) -> T {
        match self {
            Loss::Mse => {
                let squares: T = a.iter().zip(y).map(|(&a, &y)| (y - a) * (y - a)).sum();
                squares / (T::from_usize(2 * a.len()))
            }
            Loss::SoftmaxCrossEntropy => {
                let log_normaliser = log_sum_exp(z);
                z.iter()
                    .zip(y)
                    .map(|(&z, &y)| {
                        let term = -(y * (z - log_normaliser));
                        if y == T::ZERO { T::ZERO } else { term }
                    })
                    .sum()
            }
        }
    }

    /// Writes one sample's `delta^L = dJ/dZ^L` into `delta`, including the
    /// batch mean's factor `1/B` (passed as `inverse_batch`).
    ///
    /// For MSE this is `(a - y) / (m B) (.) act'(z)`: each output's own error,
    /// not the sum over outputs that the source derivation's scalar step 1
    /// writes. For softmax cross-entropy the output activation is the identity
    /// and `delta^L = (softmax(z) * sum(y) - y) / B`. All four slices must
    /// have the output width `m`, at least 1 ([`Error::SampleLength`] otherwise).
    #[inline]
    pub fn output_delta<T: Scalar>(
        self,
        activation: Activation,
        z: &[T],
        a: &[T],
        y: &[T],
        inverse_batch: T,
        delta: &mut [T],
    ) -> Result<(), Error> {
        check_lengths(z, a, y, Some(delta.len()))?;
        match self {
            Loss::Mse => {
                let scale = inverse_batch / T::from_usize(a.len());
                for (((d, &z), &a), &y) in delta.iter_mut().zip(z).zip(a).zip(y) {
                    *d = (a - y) * scale * activation.derivative(z, a);
                }
            }
            Loss::SoftmaxCrossEntropy => {
                let log_normaliser = log_sum_exp(z);
                let target_mass: T = y.iter().copied().sum();
                for ((d, &z), &y) in delta.iter_mut().zip(z).zip(y) {
                    *d = ((z - log_normaliser).exp() * target_mass - y) * inverse_batch;
                }
            }
        }
        Ok(())
    }
}

/// Checks that `a`, `y` and `delta` (if given) have `z`'s length, at least 1.
#[inline]
fn check_lengths<T>(z: &[T], a: &[T], y: &[T], delta: Option<usize>) -> Result<(), Error> {
    let expected = z.len();
    if expected == 0 {
        return Err(Error::SampleLength {
            what: "pre-activations",
            expected: 1,
            found: 0,
        });
    }
    for (what, found) in [("activations", a.len()), ("targets", y.len())]
        .into_iter()
        .chain(delta.map(|found| ("deltas", found)))
    {
        if found != expected {
            return Err(Error::SampleLength {
                what,
                expected,
                found,
            });
        }
    }
    Ok(())
}

/// `ln sum_i e^{z_i}`, computed with the maximum subtracted so it never overflows.
#[inline]
fn log_sum_exp<T: Scalar>(z: &[T]) -> T {
    let max = z
        .iter()
        .copied()
        .fold(z.first().copied().unwrap_or(T::ZERO), T::max);
    let sum: T = z.iter().map(|&z| (z - max).exp()).sum();
    max + sum.ln()
}

impl fmt::Display for Loss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Loss {
    type Err = Error;

    fn from_str(name: &str) -> Result<Self, Error> {
        parse_name("loss", name, &Loss::ALL, Loss::name)
    }
}
