//! The shape of a network: layer widths, one activation per layer, and the loss.

use std::fmt;

use crate::error::widths_label;
use crate::{Activation, Error, Loss};

/// Where one weight layer's parameters sit in the flat parameter buffer.
///
/// Layer `l` maps `inputs = d_{l-1}` values to `outputs = d_l`. Its weights
/// `W^l` are `outputs x inputs`, row-major (`w_jk` at `j * inputs + k`), and
/// its `outputs` biases follow them directly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerShape {
    /// Width of the layer's input, `d_{l-1}`.
    pub inputs: usize,
    /// Width of the layer's output, `d_l`.
    pub outputs: usize,
    /// Offset of `W^l` in the flat buffer.
    pub offset: usize,
}

impl LayerShape {
    /// Number of weights, `outputs * inputs`.
    pub fn weight_count(&self) -> usize {
        self.outputs * self.inputs
    }

    /// Number of parameters, weights and biases.
    pub fn param_count(&self) -> usize {
        self.weight_count() + self.outputs
    }

    /// The range of `W^l` in the flat buffer.
    pub fn weight_range(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.weight_count()
    }

    /// The range of `b^l` in the flat buffer.
    pub fn bias_range(&self) -> std::ops::Range<usize> {
        let start = self.offset + self.weight_count();
        start..start + self.outputs
    }
}

/// Widths, activations and loss of a multilayer perceptron, validated when built.
///
/// An `Architecture` always has at least two widths, none of them zero, one
/// activation per weight layer, an identity output when the loss is softmax
/// cross-entropy, and a parameter count that fits in `usize`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Architecture {
    widths: Vec<usize>,
    activations: Vec<Activation>,
    loss: Loss,
    layers: Vec<LayerShape>,
    param_count: usize,
}

impl Architecture {
    /// Builds an architecture from `widths = [n, d_1, ..., m]`, one activation
    /// per weight layer (`widths.len() - 1` of them) and a loss.
    pub fn new(widths: &[usize], activations: &[Activation], loss: Loss) -> Result<Self, Error> {
        if widths.len() < 2 {
            return Err(Error::TooFewWidths {
                found: widths.len(),
            });
        }
        if let Some(position) = widths.iter().position(|&w| w == 0) {
            return Err(Error::ZeroWidth {
                position,
                widths: widths.to_vec(),
            });
        }
        if activations.len() != widths.len() - 1 {
            return Err(Error::ActivationCount {
                layers: widths.len() - 1,
                found: activations.len(),
            });
        }
        let output_activation = activations[activations.len() - 1];
        if loss == Loss::SoftmaxCrossEntropy && output_activation != Activation::Identity {
            return Err(Error::SoftmaxNeedsIdentityOutput {
                found: output_activation,
            });
        }
        let overflow = || Error::ParameterCountOverflow {
            widths: widths.to_vec(),
        };
        let mut layers = Vec::with_capacity(widths.len() - 1);
        let mut offset = 0usize;
        for pair in widths.windows(2) {
            let shape = LayerShape {
                inputs: pair[0],
                outputs: pair[1],
                offset,
            };
            let count = pair[1]
                .checked_mul(pair[0])
                .and_then(|weights| weights.checked_add(pair[1]))
                .ok_or_else(overflow)?;
            offset = offset.checked_add(count).ok_or_else(overflow)?;
            layers.push(shape);
        }
        Ok(Architecture {
            widths: widths.to_vec(),
            activations: activations.to_vec(),
            loss,
            layers,
            param_count: offset,
        })
    }

    /// Every layer with the same activation: `hidden` for hidden layers and
    /// `output` for the last one.
    pub fn with_hidden_and_output(
        widths: &[usize],
        hidden: Activation,
        output: Activation,
        loss: Loss,
    ) -> Result<Self, Error> {
        let layers = widths.len().saturating_sub(1);
        let activations: Vec<Activation> = (0..layers)
            .map(|l| if l + 1 == layers { output } else { hidden })
            .collect();
        Architecture::new(widths, &activations, loss)
    }

    /// The seed network of the classic derivation: `n-h-m`, sigmoid layers, MSE.
    pub fn seed(inputs: usize, hidden: usize, outputs: usize) -> Result<Self, Error> {
        Architecture::new(
            &[inputs, hidden, outputs],
            &[Activation::Sigmoid, Activation::Sigmoid],
            Loss::Mse,
        )
    }

    /// The widths `d_0 = n, ..., d_L = m`.
    pub fn widths(&self) -> &[usize] {
        &self.widths
    }

    /// The activation of each weight layer, input side first.
    pub fn activations(&self) -> &[Activation] {
        &self.activations
    }

    /// The loss.
    pub fn loss(&self) -> Loss {
        self.loss
    }

    /// The input width `n`.
    pub fn input_width(&self) -> usize {
        self.widths[0]
    }

    /// The output width `m`.
    pub fn output_width(&self) -> usize {
        self.widths[self.widths.len() - 1]
    }

    /// The weight layers with their places in the flat parameter buffer.
    pub fn layers(&self) -> &[LayerShape] {
        &self.layers
    }

    /// The number of weight layers `L`.
    pub fn layer_count(&self) -> usize {
        self.layers.len()
    }

    /// The total number of weights and biases.
    pub fn param_count(&self) -> usize {
        self.param_count
    }

    /// Floating-point operations in one training step on `batch` samples by the
    /// conventional count `6 * B * sum_l d_{l-1} d_l` (forward 2, backward 4).
    pub fn step_flops(&self, batch: usize) -> f64 {
        6.0 * batch as f64
            * self
                .layers
                .iter()
                .map(|l| l.weight_count() as f64)
                .sum::<f64>()
    }

    /// Finds which parameter a flat index names, if it is in range.
    pub fn locate(&self, index: usize) -> Option<ParamLocation> {
        let (layer, shape) = self
            .layers
            .iter()
            .enumerate()
            .find(|(_, shape)| index < shape.offset + shape.param_count())?;
        let local = index - shape.offset;
        Some(if local < shape.weight_count() {
            ParamLocation::Weight {
                layer,
                row: local / shape.inputs,
                col: local % shape.inputs,
            }
        } else {
            ParamLocation::Bias {
                layer,
                index: local - shape.weight_count(),
            }
        })
    }
}

impl fmt::Display for Architecture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let activations: Vec<&str> = self.activations.iter().map(|a| a.name()).collect();
        write!(
            f,
            "{} [{}] {}",
            widths_label(&self.widths),
            activations.join(","),
            self.loss
        )
    }
}

/// A parameter named by its layer (0 is the first weight layer) and position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamLocation {
    /// Weight `w_{row,col}` of a layer: from input `col` to output `row`.
    Weight {
        /// The weight layer, 0-based.
        layer: usize,
        /// The output neuron `j`.
        row: usize,
        /// The input neuron `k`.
        col: usize,
    },
    /// Bias `b_index` of a layer.
    Bias {
        /// The weight layer, 0-based.
        layer: usize,
        /// The output neuron.
        index: usize,
    },
}

impl fmt::Display for ParamLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamLocation::Weight { layer, row, col } => {
                write!(f, "layer {layer} weight[{row},{col}]")
            }
            ParamLocation::Bias { layer, index } => write!(f, "layer {layer} bias[{index}]"),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{Activation, Architecture, Loss, ParamLocation};

    #[test]
    fn flops_and_locations_follow_the_flat_layout() {
        let architecture = Architecture::new(
            &[3, 4, 2],
            &[Activation::Tanh, Activation::Identity],
            Loss::Mse,
        )
        .expect("valid");
        // 6 B (3 x 4 + 4 x 2).
        assert_eq!(architecture.step_flops(5), 600.0);
        let weight = |layer, row, col| Some(ParamLocation::Weight { layer, row, col });
        let bias = |layer, index| Some(ParamLocation::Bias { layer, index });
        assert_eq!(architecture.locate(0), weight(0, 0, 0));
        assert_eq!(architecture.locate(7), weight(0, 2, 1));
        assert_eq!(architecture.locate(12), bias(0, 0));
        assert_eq!(architecture.locate(15), bias(0, 3));
        assert_eq!(architecture.locate(16), weight(1, 0, 0));
        assert_eq!(architecture.locate(23), weight(1, 1, 3));
        assert_eq!(architecture.locate(25), bias(1, 1));
        assert_eq!(architecture.locate(26), None);
    }
}
