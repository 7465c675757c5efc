//! The reference backend: plain loops over one sample at a time, a line-by-line
//! transcription of the math in `backprop-core`.
//!
//! It is meant to be read. Every other backend is checked against it, and it
//! is itself checked against finite differences and dual numbers.
//!
//! Memory: one sample's activations, slopes and deltas, three vectors of
//! each layer's width (`3 sum_l d_l` values), whatever the batch size.

// The loops index `w_jk`, `a_k` and `delta_j` exactly as the math writes them.
#![allow(clippy::needless_range_loop)]

use backprop_core::{Architecture, Backend, Error, ForwardTask, GradientTask, Layers, Scalar};

/// Per-sample scratch: `a^l` and `act_l'(z^l)` for every layer, and `delta^l`:
/// three vectors of each layer's width, for one sample at a time.
#[derive(Debug, Default)]
struct SampleScratch<T> {
    widths: Vec<usize>,
    /// `a[l]` is the activation of weight layer `l` (0-based); the input is not copied.
    a: Vec<Vec<T>>,
    /// `slope[l] = act_l'(z^l)`, formed from `z^l` in the forward pass.
    slope: Vec<Vec<T>>,
    /// `delta[l] = dJ/dz[l]` for the current sample.
    delta: Vec<Vec<T>>,
}

impl<T: Scalar> SampleScratch<T> {
    /// Sizes the buffers for `architecture`; allocates only when the widths change.
    fn fit(&mut self, architecture: &Architecture) {
        if self.widths == architecture.widths() {
            return;
        }
        let layer_widths = || architecture.widths()[1..].iter().map(|&w| vec![T::ZERO; w]);
        self.a = layer_widths().collect();
        self.slope = layer_widths().collect();
        self.delta = layer_widths().collect();
        self.widths = architecture.widths().to_vec();
    }

    /// Forward pass of one sample `x`: `z^l = W^l a^{l-1} + b^l`, `a^l = act_l(z^l)`,
    /// and the slope `act_l'(z^l)` that backpropagation multiplies by.
    ///
    /// The slope is taken from `z`, not written `a (1 - a)` or `1 - a^2` as
    /// the classic derivation does: those subtract a rounded `a` from 1 and
    /// lose the whole slope where the unit saturates (`a` rounds to 1 while
    /// the true slope is still a normal number). `Activation::slope` shows
    /// the forms used instead.
    fn forward(&mut self, layers: Layers<'_, T>, x: &[T]) {
        for (l, layer) in layers.iter().enumerate() {
            let (before, after) = self.a.split_at_mut(l);
            let input: &[T] = if l == 0 { x } else { &before[l - 1] };
            let (a, slope) = (&mut after[0], &mut self.slope[l]);
            for j in 0..layer.shape.outputs {
                let row = &layer.weights[j * layer.shape.inputs..(j + 1) * layer.shape.inputs];
                let mut sum = layer.bias[j];
                for k in 0..layer.shape.inputs {
                    sum += row[k] * input[k];
                }
                (a[j], slope[j]) = layer.activation.value_and_slope(sum);
            }
        }
    }
}

/// The reference backend: readable loops, `f32` or `f64`.
#[derive(Debug, Default)]
pub struct NaiveBackend<T> {
    scratch: SampleScratch<T>,
}

impl<T: Scalar> NaiveBackend<T> {
    /// A backend with empty scratch; it sizes itself on first use.
    pub fn new() -> Self {
        NaiveBackend::default()
    }
}

impl<T: Scalar> Backend<T> for NaiveBackend<T> {
    fn name(&self) -> &'static str {
        "naive"
    }

    fn run_forward(&mut self, task: ForwardTask<'_, T>) -> Result<(), Error> {
        let (layers, inputs, outputs) = task.into_parts();
        let architecture = layers.architecture();
        self.scratch.fit(architecture);
        let (n, m) = (architecture.input_width(), architecture.output_width());
        let last = architecture.layer_count() - 1;
        let rows = inputs.matrix().as_slice().chunks_exact(n);
        for (x, output) in rows.zip(outputs.chunks_exact_mut(m)) {
            self.scratch.forward(layers, x);
            output.copy_from_slice(&self.scratch.a[last]);
        }
        Ok(())
    }

    fn run_loss_and_gradient(&mut self, task: GradientTask<'_, T>) -> Result<T, Error> {
        let (layers, batch, mut gradient) = task.into_parts();
        let architecture = layers.architecture();
        let loss = architecture.loss();
        let last = architecture.layer_count() - 1;
        let inverse_batch = T::ONE / T::from_usize(batch.rows());
        let s = &mut self.scratch;
        s.fit(architecture);
        gradient.fill_zero();

        let mut loss_sum = T::ZERO;
        let (n, m) = (architecture.input_width(), architecture.output_width());
        let xs = batch.inputs().matrix().as_slice().chunks_exact(n);
        for (x, y) in xs.zip(batch.targets().as_slice().chunks_exact(m)) {
            s.forward(layers, x);

            // The sample's share of J, and delta^L = dJ/da^L (.) act_L'(z^L) (1/B included).
            loss_sum += loss.sample_value(&s.a[last], y)?;
            loss.output_gradient(&s.a[last], y, inverse_batch, &mut s.delta[last])?;
            for (d, &slope) in s.delta[last].iter_mut().zip(&s.slope[last]) {
                *d *= slope;
            }

            for l in (0..=last).rev() {
                let input: &[T] = if l == 0 { x } else { &s.a[l - 1] };
                let weights = layers.layer(l).weights;
                let (delta_before, delta_here) = s.delta.split_at_mut(l);
                let delta = &delta_here[0];
                let inputs = input.len();

                // dJ/dW^l += delta^l a^{l-1}^T and dJ/db^l += delta^l.
                let grad = gradient.layer_mut(l);
                for (j, &d) in delta.iter().enumerate() {
                    for k in 0..inputs {
                        grad.weights[j * inputs + k] += d * input[k];
                    }
                    grad.bias[j] += d;
                }

                // delta^{l-1} = (W^l^T delta^l) (.) act_{l-1}'(z^{l-1}); not needed below layer 0.
                if l > 0 {
                    let previous = &mut delta_before[l - 1];
                    for k in 0..inputs {
                        let mut sum = T::ZERO;
                        for (j, &d) in delta.iter().enumerate() {
                            sum += d * weights[j * inputs + k];
                        }
                        previous[k] = sum * s.slope[l - 1][k];
                    }
                }
            }
        }
        Ok(loss_sum / T::from_usize(batch.rows()))
    }
}
