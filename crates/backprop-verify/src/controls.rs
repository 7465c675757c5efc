//! Negative controls: deliberately wrong kernels that every check must be able to reject.
//!
//! Each control is a [`Backend`] that makes one classic mistake. Running them
//! through the same checks as the real backends proves that the checks can
//! fail: a control that passes every check means the checks are too weak.

use std::fmt;

use backprop_core::{
    Backend, Batch, Error, ForwardTask, GradientLayers, GradientTask, Layers, Loss, Params, Scalar,
};
use backprop_naive::NaiveBackend;

/// One deliberate mistake.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Flaw {
    /// The source derivation's scalar step 1 taken literally: every output's
    /// error term is the sum of all outputs' errors, `1/m sum_i (a_i - y_i)`,
    /// instead of its own `(a_j - y_j)/m`.
    ScalarStepOne,
    /// Hidden deltas without the activation derivative: `delta^{l-1} = delta^l W^l`.
    MissingActivationDerivative,
    /// Each weight gradient written transposed, `A^{l-1}^T delta^l` read as `d_l x d_{l-1}`.
    TransposedWeightGradient,
    /// The bias gradient of the last sample only, not summed over the batch.
    BiasNotSummed,
    /// The right gradient times a factor such as `1 + 1e-6`.
    ScaledGradient(f64),
    /// A loss of `1/(m B)` instead of `1/(2 m B)`, with its consistent,
    /// doubled gradient: invisible to every gradient oracle.
    LossWithoutHalf,
}

impl Flaw {
    /// The controls of the verification protocol, with the `f64` scale factor
    /// `1 + scale_error`.
    pub fn all(scale_error: f64) -> [Flaw; 6] {
        [
            Flaw::ScalarStepOne,
            Flaw::MissingActivationDerivative,
            Flaw::TransposedWeightGradient,
            Flaw::BiasNotSummed,
            Flaw::ScaledGradient(1.0 + scale_error),
            Flaw::LossWithoutHalf,
        ]
    }
}

impl fmt::Display for Flaw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Flaw::ScalarStepOne => f.write_str("literal scalar step 1"),
            Flaw::MissingActivationDerivative => f.write_str("missing activation derivative"),
            Flaw::TransposedWeightGradient => f.write_str("transposed weight gradient"),
            Flaw::BiasNotSummed => f.write_str("bias gradient not summed"),
            Flaw::ScaledGradient(factor) => {
                write!(f, "gradient scaled by 1 + {:.0e}", factor - 1.0)
            }
            Flaw::LossWithoutHalf => f.write_str("loss 1/m instead of 1/(2m)"),
        }
    }
}

/// A backend that makes exactly one [`Flaw`].
#[derive(Debug)]
pub struct ControlBackend<T> {
    flaw: Flaw,
    naive: NaiveBackend<T>,
    last_sample: Option<Params<T>>,
}

impl<T: Scalar> ControlBackend<T> {
    /// A control making `flaw`.
    pub fn new(flaw: Flaw) -> Self {
        ControlBackend {
            flaw,
            naive: NaiveBackend::new(),
            last_sample: None,
        }
    }
}

impl<T: Scalar> Backend<T> for ControlBackend<T> {
    fn name(&self) -> &'static str {
        "control"
    }

    fn run_forward(&mut self, task: ForwardTask<'_, T>) -> Result<(), Error> {
        self.naive.run_forward(task)
    }

    fn run_loss_and_gradient(&mut self, task: GradientTask<'_, T>) -> Result<T, Error> {
        let (layers, batch) = (task.layers(), task.batch());
        let naive = &mut self.naive;
        // The flaws inside the recursion need their own backpropagation; the
        // others post-process the naive backend's right answer.
        Ok(match self.flaw {
            Flaw::ScalarStepOne | Flaw::MissingActivationDerivative => {
                let (_, _, mut gradient) = task.into_parts();
                flawed_backprop(self.flaw, layers, &batch, &mut gradient)
            }
            Flaw::TransposedWeightGradient => {
                let (loss, mut gradient) = right_answer(naive, task)?;
                for l in 0..layers.count() {
                    let layer = gradient.get_mut(l);
                    let right = layer.weights.to_vec();
                    let (outputs, inputs) = (layer.shape.outputs, layer.shape.inputs);
                    for (index, weight) in layer.weights.iter_mut().enumerate() {
                        // Row-major `inputs x outputs` read as `outputs x inputs`.
                        let (k, j) = (index / outputs, index % outputs);
                        *weight = right[j * inputs + k];
                    }
                }
                loss
            }
            Flaw::BiasNotSummed => {
                let last_row = task.row_parts(batch.rows()).last();
                let (loss, mut gradient) = right_answer(naive, task)?;
                // The last sample's own gradient, its bias part scaled as one of B.
                let sample = self
                    .last_sample
                    .get_or_insert_with(|| layers.network().zero_gradient());
                if let Some(part) = last_row {
                    naive.run_loss_and_gradient(part.with_gradient(sample))?;
                }
                let inverse_batch = T::ONE / T::from_usize(batch.rows());
                for (l, shape) in layers.architecture().layers().iter().enumerate() {
                    let bias = &sample.as_slice()[shape.bias_range()];
                    for (flawed, &b) in gradient.get_mut(l).bias.iter_mut().zip(bias) {
                        *flawed = b * inverse_batch;
                    }
                }
                loss
            }
            Flaw::ScaledGradient(factor) => {
                let (loss, mut gradient) = right_answer(naive, task)?;
                scale(&mut gradient, T::from_f64(factor));
                loss
            }
            Flaw::LossWithoutHalf => {
                let (loss, mut gradient) = right_answer(naive, task)?;
                scale(&mut gradient, T::from_f64(2.0));
                loss * T::from_f64(2.0)
            }
        })
    }
}

/// The naive backend's loss and gradient for `task`, and the gradient to post-process.
fn right_answer<'a, T: Scalar>(
    naive: &mut NaiveBackend<T>,
    mut task: GradientTask<'a, T>,
) -> Result<(T, GradientLayers<'a, T>), Error> {
    let loss = naive.run_loss_and_gradient(task.reborrow())?;
    let (_, _, gradient) = task.into_parts();
    Ok((loss, gradient))
}

/// Multiplies every gradient value by `factor`.
fn scale<T: Scalar>(gradient: &mut GradientLayers<'_, T>, factor: T) {
    for value in gradient.as_mut_slice() {
        *value *= factor;
    }
}

/// Backpropagation over whole-batch matrices with one of the two flaws that
/// live inside the recursion.
fn flawed_backprop<T: Scalar>(
    flaw: Flaw,
    layers: Layers<'_, T>,
    batch: &Batch<'_, T>,
    gradient: &mut GradientLayers<'_, T>,
) -> T {
    let architecture = layers.architecture();
    let activations = architecture.activations();
    let rows = batch.rows();
    let inverse_batch = T::ONE / T::from_usize(rows);
    // zs[l] and outs[l] are rows x d_{l+1}; outs[-1] is the input.
    let mut outs: Vec<Vec<T>> = vec![batch.inputs().matrix().as_slice().to_vec()];
    let mut zs: Vec<Vec<T>> = Vec::new();
    for (l, layer) in layers.iter().enumerate() {
        let activation = layer.activation;
        let (fan_in, fan_out) = (layer.shape.inputs, layer.shape.outputs);
        let input = &outs[l];
        let z: Vec<T> = (0..rows * fan_out)
            .map(|index| {
                let (b, j) = (index / fan_out, index % fan_out);
                (0..fan_in).fold(layer.bias[j], |sum, k| {
                    sum + layer.weights[j * fan_in + k] * input[b * fan_in + k]
                })
            })
            .collect();
        outs.push(z.iter().map(|&z| activation.value(z)).collect());
        zs.push(z);
    }
    let last = activations.len() - 1;
    let m = architecture.output_width();
    let loss = architecture.loss();
    let mut loss_sum = T::ZERO;
    let mut delta = vec![T::ZERO; rows * m];
    for b in 0..rows {
        let (z, a, y) = (
            &zs[last][b * m..(b + 1) * m],
            &outs[last + 1][b * m..(b + 1) * m],
            batch.targets().row(b),
        );
        loss_sum += loss.sample_value(z, a, y);
        let row = &mut delta[b * m..(b + 1) * m];
        loss.output_delta(activations[last], z, a, y, inverse_batch, row);
        if flaw == Flaw::ScalarStepOne {
            // Undo act' to get dJ/da, sum it over the outputs, apply act' again.
            let summed: T = match loss {
                Loss::Mse => a
                    .iter()
                    .zip(y)
                    .map(|(&a, &y)| (a - y) * inverse_batch / T::from_usize(m))
                    .sum(),
                Loss::SoftmaxCrossEntropy => row.iter().copied().sum(),
            };
            for ((d, &z), &a) in row.iter_mut().zip(z).zip(a) {
                *d = summed * activations[last].derivative(z, a);
            }
        }
    }
    for l in (0..=last).rev() {
        let layer = layers.get(l);
        let (fan_in, fan_out) = (layer.shape.inputs, layer.shape.outputs);
        let input = &outs[l];
        let grad = gradient.get_mut(l);
        for j in 0..fan_out {
            grad.bias[j] = (0..rows).map(|b| delta[b * fan_out + j]).sum();
            for k in 0..fan_in {
                grad.weights[j * fan_in + k] = (0..rows)
                    .map(|b| delta[b * fan_out + j] * input[b * fan_in + k])
                    .sum();
            }
        }
        if l > 0 {
            delta = (0..rows * fan_in)
                .map(|index| {
                    let (b, k) = (index / fan_in, index % fan_in);
                    let back: T = (0..fan_out)
                        .map(|j| delta[b * fan_out + j] * layer.weights[j * fan_in + k])
                        .sum();
                    match flaw {
                        Flaw::MissingActivationDerivative => back,
                        _ => back * activations[l - 1].derivative(zs[l - 1][index], outs[l][index]),
                    }
                })
                .collect();
        }
    }
    loss_sum / T::from_usize(rows)
}
