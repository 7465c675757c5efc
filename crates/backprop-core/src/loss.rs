//! Loss functions, per sample: the value and its gradient `dJ/dA^L`, which seeds backpropagation.
//!
//! Every backend computes the loss of a batch as the mean of these per-sample
//! values and seeds backpropagation with [`Loss::output_gradient`], so the
//! loss convention lives here and nowhere else.

use std::fmt;
use std::str::FromStr;

use crate::{Error, Scalar, parse_name};

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
    /// `outputs` are the output layer's activations `a` (for softmax
    /// cross-entropy, whose output layer is the identity, the logits `z`) and
    /// `targets` the sample's `y`; both must have the output width `m`, at
    /// least 1 ([`Error::SampleLength`] otherwise). For softmax cross-entropy
    /// an output whose target is 0 adds nothing (`0 log 0 = 0`), so a logit
    /// whose probability underflows to 0 cannot make the loss NaN.
    #[inline]
    pub fn sample_value<T: Scalar>(self, outputs: &[T], targets: &[T]) -> Result<T, Error> {
        check_lengths(outputs, targets, None)?;
        Ok(match self {
            Loss::Mse => {
                let squares: T = outputs
                    .iter()
                    .zip(targets)
                    .map(|(&a, &y)| (y - a) * (y - a))
                    .sum();
                squares / (T::from_usize(2 * outputs.len()))
            }
            Loss::SoftmaxCrossEntropy => {
                let Softmax { max, sum, .. } = Softmax::of(outputs);
                let log_normaliser = max + sum.ln();
                outputs
                    .iter()
                    .zip(targets)
                    .map(|(&z, &y)| {
                        let term = -(y * (z - log_normaliser));
                        if y == T::ZERO { T::ZERO } else { term }
                    })
                    .sum()
            }
        })
    }

    /// Writes one sample's `dJ/dA^L` into `gradient`, including the batch
    /// mean's factor `1/B` (passed as `inverse_batch`). A backend multiplies
    /// it by the output layer's slopes `act'(z^L)` to get `delta^L`, as for
    /// every hidden layer; for softmax cross-entropy the output layer is the
    /// identity and this is `delta^L` itself.
    ///
    /// For MSE this is `(a - y) / (m B)`: each output's own error, not the
    /// sum over outputs that the source derivation's scalar step 1 writes.
    ///
    /// For softmax cross-entropy it is `(p * s - y) / B` with
    /// `p = softmax(z)` and `s = sum_i y_i` (so `p - y` for a distribution).
    /// Where one logit `z_k` dominates its row, `p_k` rounds to 1 and
    /// `p_k s - y_k` would lose the whole of a one-hot target's gradient to
    /// cancellation; it is formed instead as `sum_{i != k} y_i - s r / S`,
    /// with `r = sum_{i != k} e^{z_i - z_k}` the other classes' weight and
    /// `S = 1 + r`, which subtracts nothing from 1.
    ///
    /// `outputs`, `targets` and `gradient` must have the output width `m`,
    /// at least 1 ([`Error::SampleLength`] otherwise).
    #[inline]
    pub fn output_gradient<T: Scalar>(
        self,
        outputs: &[T],
        targets: &[T],
        inverse_batch: T,
        gradient: &mut [T],
    ) -> Result<(), Error> {
        check_lengths(outputs, targets, Some(gradient.len()))?;
        match self {
            Loss::Mse => {
                let scale = inverse_batch / T::from_usize(outputs.len());
                for ((g, &a), &y) in gradient.iter_mut().zip(outputs).zip(targets) {
                    *g = (a - y) * scale;
                }
            }
            Loss::SoftmaxCrossEntropy => {
                let Softmax { max, sum, top } = Softmax::of(outputs);
                let inverse_sum = T::ONE / sum;
                let mass: T = targets.iter().copied().sum();
                let mut other_mass = T::ZERO;
                let mut others = T::ZERO;
                let rows = gradient.iter_mut().zip(outputs).zip(targets);
                for (i, ((g, &z), &y)) in rows.enumerate() {
                    if i == top {
                        continue;
                    }
                    let e = (z - max).exp();
                    others += e;
                    other_mass += y;
                    *g = (e * inverse_sum * mass - y) * inverse_batch;
                }
                gradient[top] = (other_mass - mass * others * inverse_sum) * inverse_batch;
            }
        }
        Ok(())
    }
}

/// Checks that `targets` and the gradient (if given) have the outputs'
/// length, at least 1.
#[inline]
fn check_lengths<T>(outputs: &[T], targets: &[T], gradient: Option<usize>) -> Result<(), Error> {
    let expected = outputs.len();
    if expected == 0 {
        return Err(Error::SampleLength {
            what: "outputs",
            expected: 1,
            found: 0,
        });
    }
    for (what, found) in [("targets", targets.len())]
        .into_iter()
        .chain(gradient.map(|found| ("output gradients", found)))
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

/// A row of logits' softmax normaliser, shifted by the largest logit so
/// that it never overflows.
struct Softmax<T> {
    /// The largest logit `z_k`.
    max: T,
    /// `S = sum_i e^{z_i - z_k}`, at least 1.
    sum: T,
    /// `k`, the first position of the largest logit.
    top: usize,
}

impl<T: Scalar> Softmax<T> {
    /// The normaliser of a non-empty row.
    #[inline]
    fn of(z: &[T]) -> Self {
        let mut top = 0;
        for (i, &value) in z.iter().enumerate() {
            if value > z[top] {
                top = i;
            }
        }
        let max = z[top];
        let sum = z.iter().map(|&z| (z - max).exp()).sum();
        Softmax { max, sum, top }
    }
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

#[cfg(test)]
mod tests;
