//! An outside kernel: whole-batch loops with a weight gradient blocked by eight, written against `backprop`'s public API only.
//!
//! `LoopKernel` is what an author brings: its own loops, its own loss
//! arithmetic (summed per element, last row first, unlike the reference),
//! and a weight-gradient loop unrolled in blocks of [`BLOCK`] inputs with a
//! remainder loop. The environment variable `CUSTOM_KERNEL_BUG` switches on
//! one deliberate bug, to watch the conformance kit catch it:
//!
//! - `reversed-rows`: the forward pass writes the batch's output rows in reverse order;
//! - `dropped-remainder`: the blocked weight-gradient loop skips the remainder;
//! - `scaled-1e-9`: the gradient comes out scaled by `1 + 1e-9`.

use backprop::{Backend, Error, ForwardTask, GradientTask, Layers, Loss, Scalar};

/// The unrolled block of the weight-gradient loop.
pub const BLOCK: usize = 8;

/// A deliberate bug, chosen by `CUSTOM_KERNEL_BUG`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bug {
    /// No bug: the kernel is right.
    None,
    /// Forward output rows in reverse order.
    ReversedRows,
    /// The weight-gradient loop drops the inputs past the last full block.
    DroppedRemainder,
    /// The gradient times `1 + 1e-9`.
    Scaled,
}

impl Bug {
    /// The bug `CUSTOM_KERNEL_BUG` names, or none.
    pub fn from_env() -> Bug {
        match std::env::var("CUSTOM_KERNEL_BUG").as_deref() {
            Ok("reversed-rows") => Bug::ReversedRows,
            Ok("dropped-remainder") => Bug::DroppedRemainder,
            Ok("scaled-1e-9") => Bug::Scaled,
            _ => Bug::None,
        }
    }
}

/// Whole-batch loops: `Z^l`, `A^l` and `delta^l` as `B x d_l` matrices.
#[derive(Debug)]
pub struct LoopKernel<T> {
    bug: Bug,
    z: Vec<Vec<T>>,
    a: Vec<Vec<T>>,
    delta: Vec<Vec<T>>,
}

impl<T: Scalar> Default for LoopKernel<T> {
    fn default() -> Self {
        LoopKernel::new()
    }
}

impl<T: Scalar> LoopKernel<T> {
    /// The kernel, with the bug `CUSTOM_KERNEL_BUG` names, if any.
    pub fn new() -> Self {
        LoopKernel::with_bug(Bug::from_env())
    }

    /// The kernel with `bug`.
    pub fn with_bug(bug: Bug) -> Self {
        LoopKernel {
            bug,
            z: Vec::new(),
            a: Vec::new(),
            delta: Vec::new(),
        }
    }

    /// The forward pass of `x` (`rows x n`), leaving `Z` and `A` of every layer.
    fn forward_batch(&mut self, layers: Layers<'_, T>, x: &[T], rows: usize) {
        let count = layers.count();
        self.z.resize_with(count, Vec::new);
        self.a.resize_with(count, Vec::new);
        self.delta.resize_with(count, Vec::new);
        for (l, layer) in layers.iter().enumerate() {
            let (inputs, outputs) = (layer.shape.inputs, layer.shape.outputs);
            let (below, here) = self.a.split_at_mut(l);
            let input: &[T] = if l == 0 { x } else { &below[l - 1] };
            let (z, a) = (&mut self.z[l], &mut here[0]);
            z.resize(rows * outputs, T::ZERO);
            a.resize(rows * outputs, T::ZERO);
            for b in 0..rows {
                let row = &input[b * inputs..(b + 1) * inputs];
                for j in 0..outputs {
                    let weights = &layer.weights[j * inputs..(j + 1) * inputs];
                    let dot = weights
                        .iter()
                        .zip(row)
                        .fold(T::ZERO, |s, (&w, &v)| s + w * v);
                    z[b * outputs + j] = dot + layer.bias[j];
                    a[b * outputs + j] = layer.activation.value(z[b * outputs + j]);
                }
            }
        }
    }
}

impl<T: Scalar> Backend<T> for LoopKernel<T> {
    fn name(&self) -> &'static str {
        "loops"
    }

    fn run_forward(&mut self, task: ForwardTask<'_, T>) -> Result<(), Error> {
        let (layers, inputs, outputs) = task.into_parts();
        let rows = inputs.rows();
        self.forward_batch(layers, inputs.matrix().as_slice(), rows);
        let m = layers.architecture().output_width();
        let last = &self.a[layers.count() - 1];
        for b in 0..rows {
            let from = if self.bug == Bug::ReversedRows {
                rows - 1 - b
            } else {
                b
            };
            outputs[b * m..(b + 1) * m].copy_from_slice(&last[from * m..(from + 1) * m]);
        }
        Ok(())
    }

    fn run_loss_and_gradient(&mut self, task: GradientTask<'_, T>) -> Result<T, Error> {
        let (layers, batch, mut gradient) = task.into_parts();
        let rows = batch.rows();
        let x = batch.inputs().matrix().as_slice();
        let y = batch.targets().as_slice();
        self.forward_batch(layers, x, rows);
        let architecture = layers.architecture();
        let last = layers.count() - 1;
        let m = architecture.output_width();
        let inverse_rows = T::ONE / T::from_usize(rows);

        // The loss, summed per element from the last row, and delta^L.
        let (z, a) = (&self.z[last], &self.a[last]);
        let delta = &mut self.delta[last];
        delta.resize(rows * m, T::ZERO);
        let mut loss = T::ZERO;
        for b in (0..rows).rev() {
            let (zb, ab, yb) = (
                &z[b * m..(b + 1) * m],
                &a[b * m..(b + 1) * m],
                &y[b * m..(b + 1) * m],
            );
            let db = &mut delta[b * m..(b + 1) * m];
            match architecture.loss() {
                Loss::Mse => {
                    let half_over_m = T::ONE / T::from_usize(2 * m);
                    for j in 0..m {
                        let error = ab[j] - yb[j];
                        loss += error * error * half_over_m;
                        let slope = layers.layer(last).activation.slope(zb[j]);
                        db[j] = error * T::from_f64(2.0) * half_over_m * inverse_rows * slope;
                    }
                }
                Loss::SoftmaxCrossEntropy => {
                    let shift = zb
                        .iter()
                        .copied()
                        .fold(zb[0], |s, v| if v > s { v } else { s });
                    let sum: T = zb.iter().map(|&v| (v - shift).exp()).sum();
                    let log_sum = sum.ln() + shift;
                    for j in 0..m {
                        loss -= yb[j] * (zb[j] - log_sum);
                    }
                    // `softmax - y` formed without cancelling against 1 where
                    // a logit dominates, as the strict checks demand.
                    Loss::SoftmaxCrossEntropy.output_gradient(zb, yb, inverse_rows, db)?;
                }
            }
        }

        for l in (0..=last).rev() {
            let layer = layers.layer(l);
            let (inputs, outputs) = (layer.shape.inputs, layer.shape.outputs);
            let input: &[T] = if l == 0 { x } else { &self.a[l - 1] };
            let (below, here) = self.delta.split_at_mut(l);
            let delta = &here[0];
            let grad = gradient.layer_mut(l);
            // dJ/dW^l = delta^T A^{l-1}, the input loop unrolled by BLOCK.
            let full = inputs - inputs % BLOCK;
            for j in 0..outputs {
                let row = &mut grad.weights[j * inputs..(j + 1) * inputs];
                row.fill(T::ZERO);
                let mut bias = T::ZERO;
                for b in 0..rows {
                    let d = delta[b * outputs + j];
                    let a = &input[b * inputs..(b + 1) * inputs];
                    for k0 in (0..full).step_by(BLOCK) {
                        for k in k0..k0 + BLOCK {
                            row[k] += d * a[k];
                        }
                    }
                    if self.bug != Bug::DroppedRemainder {
                        for k in full..inputs {
                            row[k] += d * a[k];
                        }
                    }
                    bias += d;
                }
                grad.bias[j] = bias;
            }
            // delta^{l-1} = (delta^l W^l) (.) act'(Z^{l-1}).
            if l > 0 {
                let below = &mut below[l - 1];
                below.resize(rows * inputs, T::ZERO);
                let activation = layers.layer(l - 1).activation;
                for b in 0..rows {
                    for k in 0..inputs {
                        let back = (0..outputs).fold(T::ZERO, |s, j| {
                            s + delta[b * outputs + j] * layer.weights[j * inputs + k]
                        });
                        let index = b * inputs + k;
                        // The slope from z: `a (1 - a)` and `1 - a^2` cancel
                        // where a unit saturates.
                        below[index] = back * activation.slope(self.z[l - 1][index]);
                    }
                }
            }
        }
        if self.bug == Bug::Scaled {
            for value in gradient.as_mut_slice() {
                *value *= T::from_f64(1.0 + 1e-9);
            }
        }
        Ok(loss * inverse_rows)
    }
}
