//! Test problems: a network and a batch that every check runs on, in either precision.

use backprop_core::{Architecture, Batch, Error, Loss, Network, Scalar};
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

    /// The sample `b` alone, as a case of one row.
    pub fn sample(&self, b: usize) -> Case<T> {
        let (n, m) = (
            self.network.architecture().input_width(),
            self.network.architecture().output_width(),
        );
        Case {
            network: self.network.clone(),
            inputs: self.inputs[b * n..(b + 1) * n].to_vec(),
            targets: self.targets[b * m..(b + 1) * m].to_vec(),
            rows: 1,
        }
    }
}

impl Case<f64> {
    /// A random case from `seed`: weights from [`Network::init`], biases
    /// uniform in `[-0.5, 0.5)`, inputs uniform in `[-1, 1)`, targets uniform
    /// in `[0, 1)` for MSE and random probability distributions for softmax
    /// cross-entropy.
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
                row.iter_mut().for_each(|y| *y /= total);
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
