//! The one forward-loss function every oracle differentiates, written once and generically.
//!
//! It knows nothing of backpropagation and shares no arithmetic with the
//! backends: activations and losses are written out again here, from the
//! definitions, so that a mistake in `backprop-core` cannot hide in both.

use backprop_core::{Activation, Architecture, Loss};

use crate::real::Real;

/// A loss function of the parameters: an architecture and a batch in `f64`.
#[derive(Clone, Copy, Debug)]
pub struct Problem<'a> {
    /// The network's shape and loss.
    pub architecture: &'a Architecture,
    /// `X`, row-major `rows x n`.
    pub inputs: &'a [f64],
    /// `Y`, row-major `rows x m`.
    pub targets: &'a [f64],
    /// The number of samples `B`.
    pub rows: usize,
}

impl Problem<'_> {
    /// `J(theta)` evaluated in `R`.
    pub fn loss<R: Real>(&self, params: &[R]) -> R {
        self.loss_recording_relu_signs(params, None)
    }

    /// `J(theta)`, also pushing `z > 0` for every ReLU pre-activation in
    /// evaluation order, so that two evaluations can be compared for a kink
    /// crossed between them.
    pub fn loss_recording_relu_signs<R: Real>(
        &self,
        params: &[R],
        mut relu_signs: Option<&mut Vec<bool>>,
    ) -> R {
        let m = self.architecture.output_width();
        let mut total = R::constant(0.0);
        for b in 0..self.rows {
            let outputs = self.sample_outputs(params, b, relu_signs.as_deref_mut());
            let targets = &self.targets[b * m..(b + 1) * m];
            total = total + sample_loss(self.architecture.loss(), &outputs, targets);
        }
        total / R::constant(self.rows as f64)
    }

    /// The output layer's activations `A^L` of every sample, row-major
    /// `rows x m` (for softmax cross-entropy, the logits).
    pub fn outputs<R: Real>(&self, params: &[R]) -> Vec<R> {
        (0..self.rows)
            .flat_map(|b| self.sample_outputs(params, b, None))
            .collect()
    }

    /// The loss of given outputs `A^L` (`rows x m`, as [`Problem::outputs`]
    /// lays them out) on this problem's targets.
    pub fn loss_of_outputs<R: Real>(&self, outputs: &[R]) -> R {
        let m = self.architecture.output_width();
        let total = (0..self.rows).fold(R::constant(0.0), |total, b| {
            let targets = &self.targets[b * m..(b + 1) * m];
            total
                + sample_loss(
                    self.architecture.loss(),
                    &outputs[b * m..(b + 1) * m],
                    targets,
                )
        });
        total / R::constant(self.rows as f64)
    }

    /// Sample `b`'s forward pass, pushing ReLU signs as it goes if asked.
    fn sample_outputs<R: Real>(
        &self,
        params: &[R],
        b: usize,
        mut relu_signs: Option<&mut Vec<bool>>,
    ) -> Vec<R> {
        let widths = self.architecture.widths();
        let n = widths[0];
        let mut a: Vec<R> = self.inputs[b * n..(b + 1) * n]
            .iter()
            .map(|&x| R::constant(x))
            .collect();
        let mut offset = 0;
        for (pair, &activation) in widths.windows(2).zip(self.architecture.activations()) {
            let (fan_in, fan_out) = (pair[0], pair[1]);
            let weights = &params[offset..offset + fan_out * fan_in];
            let bias = &params[offset + fan_out * fan_in..offset + fan_out * (fan_in + 1)];
            offset += fan_out * (fan_in + 1);
            a = (0..fan_out)
                .map(|j| {
                    let z = (0..fan_in).fold(bias[j], |z, k| z + weights[j * fan_in + k] * a[k]);
                    if let (Activation::Relu, Some(signs)) = (activation, relu_signs.as_deref_mut())
                    {
                        signs.push(z.value() > 0.0);
                    }
                    activate(activation, z)
                })
                .collect();
        }
        a
    }
}

/// An activation from its definition.
fn activate<R: Real>(activation: Activation, z: R) -> R {
    match activation {
        Activation::Sigmoid => z.sigmoid(),
        Activation::Tanh => z.tanh(),
        Activation::Relu if z.value() > 0.0 => z,
        Activation::Relu => R::constant(0.0),
        Activation::Identity => z,
    }
}

/// One sample's loss times `B`: `sum (y - a)^2 / (2m)` or `-sum y log softmax(a)`.
fn sample_loss<R: Real>(loss: Loss, outputs: &[R], targets: &[f64]) -> R {
    match loss {
        Loss::Mse => {
            let sum = outputs
                .iter()
                .zip(targets)
                .fold(R::constant(0.0), |sum, (&a, &y)| {
                    let error = R::constant(y) - a;
                    sum + error * error
                });
            sum / R::constant(2.0 * outputs.len() as f64)
        }
        Loss::SoftmaxCrossEntropy => softmax_cross_entropy(outputs, targets)
            .allowing_cancellation_of(cancelling_softmax_cross_entropy(outputs, targets)),
    }
}

/// `-sum_i y_i log softmax(z)_i` in a form whose derivative subtracts
/// nothing from 1: with `k` the first largest logit, `r = sum_{i != k}
/// e^{z_i - z_k}` and `s = sum_i y_i`, it is
/// `s ln(1 + r) - sum_{i != k} y_i (z_i - z_k)`.
///
/// Its derivative in `z_k` is `sum_{i != k} y_i - s r / (1 + r)`: for a
/// one-hot target on a dominant logit, `-r / (1 + r)`, exact where the
/// textbook `softmax_k - 1` rounds to 0.
fn softmax_cross_entropy<R: Real>(outputs: &[R], targets: &[f64]) -> R {
    let top = (0..outputs.len()).fold(0, |top, i| {
        if outputs[i].value() > outputs[top].value() {
            i
        } else {
            top
        }
    });
    let largest = outputs[top];
    let others = || {
        outputs
            .iter()
            .zip(targets)
            .enumerate()
            .filter(move |&(i, _)| i != top)
            .map(|(_, pair)| pair)
    };
    let rest = others().fold(R::constant(0.0), |sum, (&z, _)| sum + (z - largest).exp());
    let mass: f64 = targets.iter().sum();
    let spread = others().fold(R::constant(0.0), |sum, (&z, &y)| {
        sum + R::constant(y) * (z - largest)
    });
    R::constant(mass) * rest.ln_1p() - spread
}

/// The textbook `-sum_i y_i (z_i - ln sum_j e^{z_j})`, shifted by the largest
/// logit: the form whose derivative `softmax - y` subtracts from 1 where a
/// logit dominates, which gives the rounding allowance of the kernels that
/// compute it this way.
fn cancelling_softmax_cross_entropy<R: Real>(outputs: &[R], targets: &[f64]) -> R {
    let shift = outputs
        .iter()
        .map(|z| z.value())
        .fold(f64::NEG_INFINITY, f64::max);
    let shift = R::constant(shift);
    let sum_exp = outputs
        .iter()
        .fold(R::constant(0.0), |sum, &z| sum + (z - shift).exp());
    let log_normaliser = shift + sum_exp.ln();
    outputs
        .iter()
        .zip(targets)
        .fold(R::constant(0.0), |sum, (&z, &y)| {
            sum - R::constant(y) * (z - log_normaliser)
        })
}
