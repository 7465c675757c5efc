//! The reference kernel against a forward pass and loss written out again, and its gradient against central differences of that loss.
//!
//! The conformance kit holds every backend, this one included, to exact
//! oracles; these tests need nothing but the core, so that a change to the
//! reference is judged by rebuilding it alone.

use backprop_core::{Activation, Architecture, Backend, Batch, Inputs, Loss, MatrixRef, Network};
use backprop_naive::NaiveBackend;

/// Architectures with every activation and both losses, a deep one, a
/// width-1 layer, and a softmax over four classes.
fn architectures() -> Vec<Architecture> {
    use Activation::*;
    let mut all = Vec::new();
    for hidden in Activation::ALL {
        for (output, loss) in [(hidden, Loss::Mse), (Identity, Loss::SoftmaxCrossEntropy)] {
            all.push(
                Architecture::with_hidden_and_output(&[3, 4, 2], hidden, output, loss).unwrap(),
            );
        }
    }
    all.push(
        Architecture::new(&[3, 5, 1, 4, 2], &[Tanh, Sigmoid, Relu, Sigmoid], Loss::Mse).unwrap(),
    );
    all.push(
        Architecture::new(&[2, 3, 4], &[Sigmoid, Identity], Loss::SoftmaxCrossEntropy).unwrap(),
    );
    all
}

/// A network with non-zero biases and a batch of `rows`, from `seed`.
fn case(architecture: &Architecture, rows: usize, seed: u64) -> (Network<f64>, Vec<f64>, Vec<f64>) {
    let mut network = Network::<f64>::init(architecture.clone(), seed);
    let mut values = network.param_values_mut();
    for (i, value) in values.iter_mut().enumerate() {
        *value += 0.05 * ((i * 7 + seed as usize) % 11) as f64 - 0.25;
    }
    drop(values);
    let (n, m) = (architecture.input_width(), architecture.output_width());
    let inputs = (0..rows * n)
        .map(|i| ((i * 13 + 5) % 17) as f64 / 8.5 - 1.0)
        .collect();
    let targets = (0..rows * m)
        .map(|i| match architecture.loss() {
            Loss::Mse => ((i * 5 + 3) % 7) as f64 / 7.0,
            Loss::SoftmaxCrossEntropy => f64::from(i % m == (i / m) % m),
        })
        .collect();
    (network, inputs, targets)
}

/// `A^L` of one sample, from the definitions.
fn outputs_of(network: &Network<f64>, x: &[f64]) -> Vec<f64> {
    let architecture = network.architecture();
    let params = network.params().as_slice();
    let mut a = x.to_vec();
    for (shape, &activation) in architecture.layers().iter().zip(architecture.activations()) {
        let (weights, bias) = (&params[shape.weight_range()], &params[shape.bias_range()]);
        a = (0..shape.outputs)
            .map(|j| {
                let row = &weights[j * shape.inputs..(j + 1) * shape.inputs];
                let z = row.iter().zip(&a).fold(bias[j], |z, (w, a)| z + w * a);
                match activation {
                    Activation::Sigmoid => 1.0 / (1.0 + (-z).exp()),
                    Activation::Tanh => z.tanh(),
                    Activation::Relu => z.max(0.0),
                    Activation::Identity => z,
                }
            })
            .collect();
    }
    a
}

/// `J`: the mean over the samples of `sum (y - a)^2 / (2m)` or `-sum y log softmax(a)`.
fn loss_of(network: &Network<f64>, inputs: &[f64], targets: &[f64]) -> f64 {
    let architecture = network.architecture();
    let (n, m) = (architecture.input_width(), architecture.output_width());
    let rows = inputs.len() / n;
    let total: f64 = (0..rows)
        .map(|b| {
            let a = outputs_of(network, &inputs[b * n..(b + 1) * n]);
            let y = &targets[b * m..(b + 1) * m];
            match architecture.loss() {
                Loss::Mse => {
                    a.iter().zip(y).map(|(a, y)| (y - a).powi(2)).sum::<f64>() / (2 * m) as f64
                }
                Loss::SoftmaxCrossEntropy => {
                    let normaliser = a.iter().map(|a| a.exp()).sum::<f64>().ln();
                    -a.iter()
                        .zip(y)
                        .map(|(a, y)| y * (a - normaliser))
                        .sum::<f64>()
                }
            }
        })
        .sum();
    total / rows as f64
}

#[test]
fn forward_outputs_and_the_loss_are_the_definitions() {
    for architecture in architectures() {
        let (network, inputs, targets) = case(&architecture, 3, 1);
        let (n, m) = (architecture.input_width(), architecture.output_width());
        let mut outputs = vec![f64::NAN; 3 * m];
        // The name reports and `BackendKind` know it by.
        assert_eq!(NaiveBackend::<f64>::new().name(), "naive");
        let matrix = MatrixRef::new(&inputs, 3, n).unwrap();
        NaiveBackend::new()
            .forward(&network, &Inputs::new(matrix).unwrap(), &mut outputs)
            .unwrap();
        for b in 0..3 {
            let expected = outputs_of(&network, &inputs[b * n..(b + 1) * n]);
            for (got, want) in outputs[b * m..(b + 1) * m].iter().zip(&expected) {
                assert!(
                    (got - want).abs() <= 1e-15 * want.abs().max(1.0),
                    "{architecture}: {got} vs {want}"
                );
            }
        }
        let batch = Batch::from_slices(&architecture, 3, &inputs, &targets).unwrap();
        let mut gradient = network.zero_gradient();
        let loss = NaiveBackend::new()
            .loss_and_gradient(&network, &batch, &mut gradient)
            .unwrap();
        let expected = loss_of(&network, &inputs, &targets);
        assert!(
            (loss - expected).abs() <= 1e-14 * expected.abs().max(1.0),
            "{architecture}: {loss} vs {expected}"
        );
    }
}

#[test]
fn the_gradient_is_the_central_difference_of_the_loss() {
    for architecture in architectures() {
        for rows in [1, 3] {
            let (network, inputs, targets) = case(&architecture, rows, 2);
            let batch = Batch::from_slices(&architecture, rows, &inputs, &targets).unwrap();
            let mut gradient = network.zero_gradient();
            NaiveBackend::new()
                .loss_and_gradient(&network, &batch, &mut gradient)
                .unwrap();
            let step = 1e-6;
            for (i, &g) in gradient.as_slice().iter().enumerate() {
                let at = |offset: f64| {
                    let mut moved = network.clone();
                    moved.param_values_mut()[i] += offset;
                    loss_of(&moved, &inputs, &targets)
                };
                let difference = (at(step) - at(-step)) / (2.0 * step);
                assert!(
                    (g - difference).abs() <= 1e-7 * g.abs().max(1.0),
                    "{architecture} rows {rows} component {i}: {g} vs {difference}"
                );
            }
        }
    }
}
