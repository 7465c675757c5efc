//! Test problems: a network and a batch that every check runs on, in either precision.

use backprop_core::{Activation, Architecture, Batch, Error, LayerShape, Loss, Network, Scalar};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::forward::Problem;

/// A network and a batch it is evaluated on, owning their values.
#[derive(Clone, Debug, PartialEq)]
pub struct Case<T> {
    /// The network whose gradient is checked.
    pub network: Network<T>,
    /// `X`, row-major `rows x n`.
    pub inputs: Vec<T>,
    /// `Y`, row-major `rows x m`.
    pub targets: Vec<T>,
    /// The number of samples `B`.
    pub rows: usize,
}

impl<T: Scalar> Case<T> {
    /// Builds a case, checking the batch against the network.
    pub fn new(
        network: Network<T>,
        inputs: Vec<T>,
        targets: Vec<T>,
        rows: usize,
    ) -> Result<Self, Error> {
        Batch::from_slices(network.architecture(), rows, &inputs, &targets)?;
        Ok(Case {
            network,
            inputs,
            targets,
            rows,
        })
    }

    /// The batch: validated by [`Case::new`], and again here, since the
    /// fields are public and may have been changed since.
    pub fn batch(&self) -> Result<Batch<'_, T>, Error> {
        Batch::from_slices(
            self.network.architecture(),
            self.rows,
            &self.inputs,
            &self.targets,
        )
    }

    /// The same case rounded (or widened) to another precision.
    pub fn to_precision<U: Scalar>(&self) -> Case<U> {
        let convert = |values: &[T]| values.iter().map(|v| U::from_f64(v.to_f64())).collect();
        Case {
            network: self.network.to_precision(),
            inputs: convert(&self.inputs),
            targets: convert(&self.targets),
            rows: self.rows,
        }
    }

    /// The batch twice over, each sample twice: `2 B` rows whose mean loss
    /// and gradient are the batch's own.
    pub fn doubled(&self) -> Case<T> {
        Case {
            network: self.network.clone(),
            inputs: self.inputs.repeat(2),
            targets: self.targets.repeat(2),
            rows: 2 * self.rows,
        }
    }

    /// The sample `b` alone, as a case of one row.
    pub fn sample(&self, b: usize) -> Case<T> {
        self.samples(b..b + 1)
    }

    /// The samples `rows` alone, as a case of `rows.len()` rows.
    pub fn samples(&self, rows: std::ops::Range<usize>) -> Case<T> {
        let (n, m) = (
            self.network.architecture().input_width(),
            self.network.architecture().output_width(),
        );
        Case {
            network: self.network.clone(),
            inputs: self.inputs[rows.start * n..rows.end * n].to_vec(),
            targets: self.targets[rows.start * m..rows.end * m].to_vec(),
            rows: rows.len(),
        }
    }
}

impl Case<f64> {
    /// A random case from `seed`: weights from [`Network::init`], biases
    /// uniform in `[-0.5, 0.5)`, inputs uniform in `[-1, 1)`, targets uniform
    /// in `[0, 1)` for MSE; for softmax cross-entropy, random non-negative
    /// targets whose rows sum to between 1/2 and 3/2, so that the loss's
    /// general form (`s`, the row sum of `Y`, not taken as 1) is exercised.
    pub fn random(architecture: Architecture, rows: usize, seed: u64) -> Case<f64> {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed_ca5e);
        let mut network = Network::init(architecture.clone(), seed);
        let mut values = network.param_values_mut();
        for layer in architecture.layers() {
            values[layer.bias_range()]
                .iter_mut()
                .for_each(|b| *b = rng.random_range(-0.5..0.5));
        }
        drop(values);
        let architecture = network.architecture();
        let (n, m) = (architecture.input_width(), architecture.output_width());
        let inputs = (0..rows * n).map(|_| rng.random_range(-1.0..1.0)).collect();
        let mut targets: Vec<f64> = (0..rows * m).map(|_| rng.random_range(0.0..1.0)).collect();
        if architecture.loss() == Loss::SoftmaxCrossEntropy {
            for row in targets.chunks_mut(m) {
                let total: f64 = row.iter().sum::<f64>() + f64::MIN_POSITIVE;
                let sum: f64 = rng.random_range(0.5..1.5);
                row.iter_mut().for_each(|y| *y *= sum / total);
            }
        }
        Case {
            network,
            inputs,
            targets,
            rows,
        }
    }
}

impl Case<f64> {
    /// A random case (as [`Case::random`]) in which every tanh and sigmoid
    /// unit saturates on every sample.
    ///
    /// Each unit's bias and weights are rescaled so that its pre-activation
    /// stays within `c_j +- h` on every sample: `c_j` spreads the layer's
    /// units evenly over the range of [`saturation_range`] (`10..20` for
    /// tanh, `40..90` for the sigmoid), the smallest first, and `h` is half
    /// a unit's share of it. Tanh units alternate in sign; sigmoid units
    /// too, with the first (least saturated, and so largest in the
    /// gradient) positive, where `a` rounds to 1 and `a (1 - a)` to 0. In
    /// `f32` every such slope cancels to 0, in `f64` from `|z| = 19` (tanh)
    /// and 37 (sigmoid): a kernel that forms its slopes from the rounded
    /// activation loses most of the gradient.
    ///
    /// A softmax cross-entropy output has one class, `seed mod m`, ahead of
    /// every other by 40 to 60 on every sample, and every target one-hot on
    /// it: the component `p - 1` is then exactly what `1 - p` rounding to 0
    /// loses, in both precisions. Other activations are left as drawn.
    pub fn saturated(architecture: Architecture, rows: usize, seed: u64) -> Self {
        let mut case = Case::random(architecture, rows, seed);
        let architecture = case.network.architecture().clone();
        let m = architecture.output_width();
        let top = (seed % m as u64) as usize;
        let last = architecture.layer_count() - 1;
        let mut input = case.inputs.clone();
        let mut values = case.network.param_values_mut();
        for (l, (layer, &activation)) in architecture
            .layers()
            .iter()
            .zip(architecture.activations())
            .enumerate()
        {
            let (fan_in, fan_out) = (layer.inputs, layer.outputs);
            let (weights, bias) = (layer.weight_range(), layer.bias_range());
            let logits = l == last && architecture.loss() == Loss::SoftmaxCrossEntropy;
            let (low, high) = if logits {
                (40.0, 60.0)
            } else {
                match saturation_range(activation) {
                    Some(range) => range,
                    None => {
                        input = affine_then(&values, layer, &input, rows, activation);
                        continue;
                    }
                }
            };
            let share = (high - low) / fan_out as f64;
            for j in 0..fan_out {
                let (centre, half_width) = if logits {
                    // The top class near 0, every other 40 to 60 below it.
                    let rank = (j + fan_out - top) % fan_out;
                    let gap = if rank == 0 {
                        0.0
                    } else {
                        low + share * rank as f64
                    };
                    (-gap, 2.0)
                } else {
                    let sign = if j % 2 == 0 { 1.0 } else { -1.0 };
                    (sign * (low + share * (j as f64 + 0.5)), share / 2.0)
                };
                let row = weights.start + j * fan_in..weights.start + (j + 1) * fan_in;
                let reach = (0..rows).fold(0.0f64, |reach, b| {
                    let x = &input[b * fan_in..(b + 1) * fan_in];
                    let dot: f64 = values[row.clone()].iter().zip(x).map(|(w, x)| w * x).sum();
                    reach.max(dot.abs())
                });
                let factor = if reach > 0.0 { half_width / reach } else { 0.0 };
                values[row].iter_mut().for_each(|w| *w *= factor);
                values[bias.start + j] = centre;
            }
            input = affine_then(&values, layer, &input, rows, activation);
        }
        drop(values);
        if architecture.loss() == Loss::SoftmaxCrossEntropy {
            for targets in case.targets.chunks_mut(m) {
                targets.fill(0.0);
                targets[top] = 1.0;
            }
        }
        case
    }
}

/// The pre-activation magnitude of [`Case::overflowing`]: past the largest
/// argument of `e^z` that is finite in `f64` (709.78), and so in `f32` (88.72).
pub const OVERFLOWING_Z: f64 = 750.0;

impl Case<f64> {
    /// A random case whose values overflow a naive exponential in either
    /// precision: each hidden sigmoid and tanh unit's bias is `+-750`
    /// ([`OVERFLOWING_Z`]), alternately, so that `|z|` lies within a few
    /// units of it on every sample, and a softmax cross-entropy output's
    /// logits are all raised by `750` (their differences, and so the
    /// probabilities, stay as drawn). A kernel that forms `e^z` or `e^{2z}`
    /// of such a unit, or the softmax without subtracting the largest logit,
    /// meets an infinity and returns NaN or an error; the answer is finite:
    /// every such unit sits at its limit, with a slope of exactly 0 in both
    /// precisions (`e^-750` is below `f64`'s smallest subnormal), so behind
    /// such a layer only the output layer's parameters have a gradient,
    /// which the output units, left as drawn, keep from vanishing. ReLU and
    /// identity layers are left as drawn: behind them only the softmax
    /// overflows, and every layer has a gradient.
    pub fn overflowing(architecture: Architecture, rows: usize, seed: u64) -> Self {
        let mut case = Case::random(architecture, rows, seed);
        let architecture = case.network.architecture().clone();
        let last = architecture.layer_count() - 1;
        let mut values = case.network.param_values_mut();
        for (l, (layer, &activation)) in architecture
            .layers()
            .iter()
            .zip(architecture.activations())
            .enumerate()
        {
            let bias = &mut values[layer.bias_range()];
            if l == last && architecture.loss() == Loss::SoftmaxCrossEntropy {
                bias.iter_mut().for_each(|b| *b += OVERFLOWING_Z);
            } else if l < last && matches!(activation, Activation::Sigmoid | Activation::Tanh) {
                for (j, b) in bias.iter_mut().enumerate() {
                    *b = if j % 2 == 0 {
                        OVERFLOWING_Z
                    } else {
                        -OVERFLOWING_Z
                    };
                }
            }
        }
        drop(values);
        case
    }
}

/// The pre-activations `|z|` over which [`Case::saturated`] spreads the
/// units of an activation that saturates: `10..20` for tanh (`tanh 10`
/// rounds to 1 in `f32`, `tanh 19.1` in `f64`) and `40..90` for the sigmoid
/// (whose slope `e^-90` is below `f32`'s normal range).
pub fn saturation_range(activation: Activation) -> Option<(f64, f64)> {
    match activation {
        Activation::Tanh => Some((10.0, 20.0)),
        Activation::Sigmoid => Some((40.0, 90.0)),
        Activation::Relu | Activation::Identity => None,
    }
}

/// `act(W x + b)` of one layer for `rows` inputs, in `f64`.
fn affine_then(
    values: &[f64],
    layer: &LayerShape,
    input: &[f64],
    rows: usize,
    activation: Activation,
) -> Vec<f64> {
    let (fan_in, fan_out) = (layer.inputs, layer.outputs);
    let (weights, bias) = (&values[layer.weight_range()], &values[layer.bias_range()]);
    (0..rows * fan_out)
        .map(|index| {
            let (b, j) = (index / fan_out, index % fan_out);
            let row = &weights[j * fan_in..(j + 1) * fan_in];
            let x = &input[b * fan_in..(b + 1) * fan_in];
            activation.value(row.iter().zip(x).fold(bias[j], |z, (w, x)| z + w * x))
        })
        .collect()
}

impl<T: Scalar> Case<T> {
    /// Zeroes the first neuron's weights and bias in the first layer, so that
    /// its pre-activation is exactly 0 for every sample: with a ReLU there,
    /// every sample sits on the kink. The finite-difference check must then
    /// exclude the affected components and count them.
    pub fn pin_first_neuron_at_kink(mut self) -> Self {
        let first = self.network.architecture().layers()[0];
        let mut values = self.network.param_values_mut();
        values[first.weight_range()][..first.inputs].fill(T::ZERO);
        values[first.bias_range()][0] = T::ZERO;
        drop(values);
        self
    }

    /// Zeroes the weights and bias of the first neuron of every hidden
    /// layer, so that each has a pre-activation of exactly 0 on every
    /// sample: with ReLUs, a kink in every layer, whose slope must be 0.
    pub fn pin_a_neuron_of_every_hidden_layer_at_kink(mut self) -> Self {
        let architecture = self.network.architecture().clone();
        let layers = architecture.layers();
        let mut values = self.network.param_values_mut();
        for layer in &layers[..layers.len() - 1] {
            values[layer.weight_range()][..layer.inputs].fill(T::ZERO);
            values[layer.bias_range()][0] = T::ZERO;
        }
        drop(values);
        self
    }

    /// Sets every input of sample `b` to zero, as padding or a blank image
    /// would: a kernel that skips such a row, or forgets its biases there,
    /// is seen. A sample past the batch leaves the case as it is.
    pub fn with_blank_sample(mut self, b: usize) -> Self {
        let n = self.network.architecture().input_width();
        if let Some(row) = self.inputs.get_mut(b * n..(b + 1) * n) {
            row.fill(T::ZERO);
        }
        self
    }

    /// A decoy of the same shapes with other contents: every parameter
    /// halved, every input feature of even index zero, and the targets one-hot
    /// on each sample's largest target (the first of equals). Loaded into a
    /// case's buffers before the case itself, it leaves there whatever a
    /// kernel notes about its buffers' contents and knows again by their
    /// addresses (targets that are one-hot, input features that are zero,
    /// weights packed), for the case to show.
    pub fn decoy(&self) -> Case<T> {
        let architecture = self.network.architecture();
        let (n, m) = (architecture.input_width(), architecture.output_width());
        let mut decoy = self.clone();
        decoy
            .network
            .param_values_mut()
            .iter_mut()
            .for_each(|value| *value = T::from_f64(value.to_f64() * 0.5));
        for row in decoy.inputs.chunks_mut(n) {
            row.iter_mut().step_by(2).for_each(|x| *x = T::ZERO);
        }
        for row in decoy.targets.chunks_mut(m) {
            let top = (0..row.len()).fold(0, |top, k| {
                if row[k].to_f64() > row[top].to_f64() {
                    k
                } else {
                    top
                }
            });
            row.fill(T::ZERO);
            row[top] = T::ONE;
        }
        decoy
    }

    /// The case's values widened to `f64`, for the oracles: the loss of
    /// exactly the numbers the backend sees.
    pub fn widened(&self) -> Case<f64> {
        self.to_precision()
    }
}

impl Case<f64> {
    /// The loss function the oracles differentiate.
    pub fn problem(&self) -> Problem<'_> {
        Problem {
            architecture: self.network.architecture(),
            inputs: &self.inputs,
            targets: &self.targets,
            rows: self.rows,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pre-activations `z = W x + b` of `layer` for `rows` inputs, in `f64`.
    fn pre_activations(values: &[f64], layer: &LayerShape, input: &[f64], rows: usize) -> Vec<f64> {
        affine_then(values, layer, input, rows, Activation::Identity)
    }

    #[test]
    fn overflowing_units_lie_past_the_exponentials_range_and_logits_keep_their_gaps() {
        for (hidden, loss, output) in [
            (Activation::Sigmoid, Loss::Mse, Activation::Sigmoid),
            (
                Activation::Tanh,
                Loss::SoftmaxCrossEntropy,
                Activation::Identity,
            ),
        ] {
            let architecture =
                Architecture::with_hidden_and_output(&[4, 6, 5, 3], hidden, output, loss)
                    .expect("a valid architecture");
            let drawn = Case::random(architecture.clone(), 8, 3);
            let case = Case::overflowing(architecture.clone(), 8, 3);
            assert_eq!(case.inputs, drawn.inputs);
            let layers = architecture.layers();
            let values = case.network.params().as_slice();
            let mut input = case.inputs.clone();
            for layer in &layers[..layers.len() - 1] {
                let z = pre_activations(values, layer, &input, 8);
                // Past 709.78, where e^z overflows in f64 (and so in f32).
                assert!(z.iter().all(|z| z.abs() > 709.8), "{z:?}");
                assert!(z.iter().any(|&z| z > 0.0) && z.iter().any(|&z| z < 0.0));
                input = affine_then(values, layer, &input, 8, hidden);
            }
            let last = layers[layers.len() - 1];
            let z = pre_activations(values, &last, &input, 8);
            if loss == Loss::SoftmaxCrossEntropy {
                // Every logit raised by 750, the drawn weights kept.
                let drawn_z = pre_activations(drawn.network.params().as_slice(), &last, &input, 8);
                for (z, drawn_z) in z.iter().zip(&drawn_z) {
                    assert!(
                        z - drawn_z > 749.99 && z - drawn_z < 750.01,
                        "{z} {drawn_z}"
                    );
                }
            } else {
                // The output units are left as drawn, so the gradient lives.
                assert!(z.iter().all(|z| z.abs() < 10.0), "{z:?}");
            }
        }
    }

    #[test]
    fn a_blank_sample_has_every_input_zero_and_the_others_as_they_were() {
        let architecture = Architecture::seed(4, 5, 3).expect("a valid architecture");
        let case = Case::random(architecture, 6, 2);
        let blank = case.clone().with_blank_sample(5);
        assert_eq!(blank.inputs[..20], case.inputs[..20]);
        assert_eq!(blank.inputs[20..], [0.0; 4]);
        assert!(case.inputs[20..].iter().all(|&x| x != 0.0));
        assert_eq!(blank.targets, case.targets);
        assert_eq!(case.clone().with_blank_sample(6), case);
    }

    #[test]
    fn every_hidden_layer_and_no_output_unit_gets_a_pinned_neuron() {
        let architecture = Architecture::new(
            &[3, 4, 5, 2],
            &[Activation::Relu, Activation::Relu, Activation::Relu],
            Loss::Mse,
        )
        .expect("a valid architecture");
        let case =
            Case::random(architecture.clone(), 4, 1).pin_a_neuron_of_every_hidden_layer_at_kink();
        let values = case.network.params().as_slice();
        let layers = architecture.layers();
        for (l, layer) in layers.iter().enumerate() {
            let first_row = &values[layer.weight_range()][..layer.inputs];
            let pinned =
                first_row.iter().all(|&w| w == 0.0) && values[layer.bias_range()][0] == 0.0;
            assert_eq!(pinned, l < layers.len() - 1, "layer {l}");
        }
    }

    #[test]
    fn a_decoy_has_the_case_shapes_half_its_parameters_half_its_features_and_one_hot_targets() {
        let architecture = Architecture::seed(3, 4, 3).expect("a valid architecture");
        let mut case = Case::random(architecture, 2, 5);
        case.targets = vec![0.2, 0.7, 0.1, 0.4, 0.1, 0.4];
        let decoy = case.to_precision::<f32>().decoy();
        let halved: Vec<f32> = case
            .to_precision::<f32>()
            .network
            .params()
            .as_slice()
            .iter()
            .map(|p| p / 2.0)
            .collect();
        assert_eq!(decoy.network.params().as_slice(), halved);
        assert_eq!(decoy.rows, 2);
        let x = &case.inputs;
        let kept = [0.0, x[1] as f32, 0.0, 0.0, x[4] as f32, 0.0];
        assert_eq!(decoy.inputs, kept);
        // The largest target, the first of two equal ones in the second row.
        assert_eq!(decoy.targets, [0.0, 1.0, 0.0, 1.0, 0.0, 0.0]);
    }
}
