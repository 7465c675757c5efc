//! Training a network on a dataset: epochs of shuffled mini-batches of SGD, and evaluation.
//!
//! [`train`] runs any [`Backend`] on any [`Dataset`], class labels or
//! real-valued targets alike: each epoch shuffles the training rows (seeded),
//! takes one SGD step per mini-batch, and reports the mean training loss with
//! the network's [`Evaluation`] on the test set. [`evaluate`] runs one forward
//! pass over a dataset and scores it: the loss is the architecture's own loss,
//! the largest absolute error is taken over every output, and for class labels
//! a sample is correct when the largest output is its label's.

use backprop_core::{Backend, Batch, Loss, Network, Scalar, check_learning_rate};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::{Dataset, Error};

/// How to train: epochs, mini-batch size, SGD learning rate and the shuffling seed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainConfig {
    /// Passes over the training set (0 trains nothing).
    pub epochs: usize,
    /// Samples per SGD step; at least 1. The last batch of an epoch holds the remainder.
    pub batch_size: usize,
    /// The SGD step size `eta` in `theta <- theta - eta * dJ/dtheta`; finite and at least 0.
    pub learning_rate: f64,
    /// Seeds the order of the samples in every epoch.
    pub seed: u64,
}

impl TrainConfig {
    /// Checks that the batch size is at least 1 and the learning rate finite and non-negative.
    pub fn check(&self) -> Result<(), Error> {
        if self.batch_size == 0 {
            return Err(Error::InvalidSetting {
                name: "batch_size",
                value: "0".to_owned(),
                expected: "at least 1".to_owned(),
            });
        }
        Ok(check_learning_rate(self.learning_rate)?)
    }
}

/// A network's score on a dataset.
///
/// Every evaluation has the loss and the largest absolute error of a
/// prediction; a classification dataset adds how many samples are classified
/// correctly. The prediction is the output layer's activation, or for softmax
/// cross-entropy (whose outputs are logits) the softmax of the logits.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evaluation {
    /// The architecture's loss, the mean over the samples.
    pub loss: f64,
    /// The largest `|prediction - target|` over every sample and output.
    pub max_abs_error: f64,
    /// For classification, the samples whose largest output is at their
    /// label; `None` for real-valued targets.
    pub correct: Option<usize>,
    /// Samples scored.
    pub samples: usize,
}

impl Evaluation {
    /// For classification, the fraction of samples classified correctly, in
    /// `[0, 1]`; `None` for real-valued targets.
    pub fn accuracy(&self) -> Option<f64> {
        self.correct
            .map(|correct| correct as f64 / self.samples as f64)
    }
}

/// What one epoch of training achieved.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpochStats {
    /// The epoch, counted from 1.
    pub epoch: usize,
    /// The training loss: the mean over the epoch's samples of the loss of
    /// each mini-batch, as the backend returned it just before its update.
    pub train_loss: f64,
    /// The network after the epoch, scored on the test set.
    pub test: Evaluation,
}

/// Trains `network` on `train` with mini-batch SGD, scoring it on `test`
/// after every epoch, and returns every epoch's statistics.
///
/// Each epoch shuffles the training rows with a generator seeded once from
/// `config.seed`, so the same seed, backend and network give the same run.
/// `on_epoch` sees each epoch's statistics as soon as they are known (to show
/// progress). The datasets' widths must match the network's, both must hold
/// samples, and the configuration must pass [`TrainConfig::check`]; all this
/// is checked before the first update. The first step that fails (a
/// gradient, loss or update that is not finite, as a learning rate far too
/// large gives) ends training with [`Error::Step`], naming the epoch and the
/// step; the network then holds the parameters from before that step.
/// Nothing is allocated in proportion to `config.epochs` before it runs: the
/// statistics grow by one entry per epoch trained.
pub fn train<T: Scalar>(
    backend: &mut dyn Backend<T>,
    network: &mut Network<T>,
    train: &Dataset<T>,
    test: &Dataset<T>,
    config: &TrainConfig,
    mut on_epoch: impl FnMut(&EpochStats),
) -> Result<Vec<EpochStats>, Error> {
    config.check()?;
    let architecture = network.architecture().clone();
    train.batch(&architecture)?;
    test.batch(&architecture)?;

    let (n, m) = (architecture.input_width(), architecture.output_width());
    let batch_size = config.batch_size.min(train.rows());
    let learning_rate = T::from_f64(config.learning_rate);
    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut order: Vec<usize> = (0..train.rows()).collect();
    let mut batch_inputs = vec![T::ZERO; batch_size * n];
    let mut batch_targets = vec![T::ZERO; batch_size * m];
    let mut gradient = network.try_zero_gradient()?;
    let mut outputs = Vec::new();
    let mut history = Vec::new();

    for epoch in 1..=config.epochs {
        order.shuffle(&mut rng);
        let mut loss_sum = 0.0;
        for (step, rows) in order.chunks(batch_size).enumerate() {
            let inputs = batch_inputs.chunks_exact_mut(n);
            let targets = batch_targets.chunks_exact_mut(m);
            for ((&row, input), target) in rows.iter().zip(inputs).zip(targets) {
                // Every row of `order` is below `train.rows()`, and the
                // widths were checked against the architecture above.
                if let (Some(sample), Some(values)) = (train.sample(row), train.target(row)) {
                    input.copy_from_slice(sample);
                    target.copy_from_slice(values);
                }
            }
            let batch = Batch::from_slices(
                &architecture,
                rows.len(),
                &batch_inputs[..rows.len() * n],
                &batch_targets[..rows.len() * m],
            )?;
            let loss = backend
                .sgd_step(network, &batch, &mut gradient, learning_rate)
                .map_err(|source| Error::Step {
                    epoch,
                    step: step + 1,
                    source,
                })?;
            loss_sum += loss.to_f64() * rows.len() as f64;
        }
        let train_loss = loss_sum / train.rows() as f64;
        if !train_loss.is_finite() {
            return Err(Error::InvalidSetting {
                name: "learning_rate",
                value: config.learning_rate.to_string(),
                expected: format!(
                    "small enough for the training loss to stay finite (it was {train_loss} in epoch {epoch})"
                ),
            });
        }
        let stats = EpochStats {
            epoch,
            train_loss,
            test: evaluate_into(backend, network, test, &mut outputs)?,
        };
        on_epoch(&stats);
        history.push(stats);
    }
    Ok(history)
}

/// Scores `network` on `dataset`: the mean loss, the largest absolute error
/// of a prediction and, for class labels, how many samples are classified
/// correctly (the largest output, the first of equals, at the label).
pub fn evaluate<T: Scalar>(
    backend: &mut dyn Backend<T>,
    network: &Network<T>,
    dataset: &Dataset<T>,
) -> Result<Evaluation, Error> {
    evaluate_into(backend, network, dataset, &mut Vec::new())
}

/// [`evaluate`] with a caller-owned output buffer, resized as needed and reused across calls.
fn evaluate_into<T: Scalar>(
    backend: &mut dyn Backend<T>,
    network: &Network<T>,
    dataset: &Dataset<T>,
    outputs: &mut Vec<T>,
) -> Result<Evaluation, Error> {
    let architecture = network.architecture();
    let batch = dataset.batch(architecture)?;
    let m = architecture.output_width();
    outputs.resize(dataset.rows() * m, T::ZERO);
    backend.forward(network, &batch.inputs(), outputs)?;

    let loss = architecture.loss();
    let mut loss_sum = 0.0;
    let mut max_abs_error = 0.0_f64;
    let mut prediction = vec![T::ZERO; m];
    for (row, targets) in outputs
        .chunks_exact(m)
        .zip(dataset.targets().chunks_exact(m))
    {
        // For softmax cross-entropy the output layer is the identity, so the
        // outputs are the logits.
        loss_sum += loss.sample_value(row, targets)?.to_f64();
        if loss == Loss::SoftmaxCrossEntropy {
            softmax(row, &mut prediction);
        } else {
            prediction.copy_from_slice(row);
        }
        for (&predicted, &target) in prediction.iter().zip(targets) {
            let error = (predicted - target).abs().to_f64();
            // A NaN (from a diverged network) is kept, not skipped as `f64::max` would.
            if error > max_abs_error || error.is_nan() || max_abs_error.is_nan() {
                max_abs_error = if max_abs_error.is_nan() {
                    max_abs_error
                } else {
                    error
                };
            }
        }
    }
    let correct = dataset.labels().map(|labels| {
        outputs
            .chunks_exact(m)
            .zip(labels)
            .filter(|&(row, &label)| argmax(row) == label)
            .count()
    });
    Ok(Evaluation {
        loss: loss_sum / dataset.rows() as f64,
        max_abs_error,
        correct,
        samples: dataset.rows(),
    })
}

/// Writes `softmax(z)` into `out` (the same length), with the maximum
/// subtracted so that no exponential overflows.
fn softmax<T: Scalar>(z: &[T], out: &mut [T]) {
    let max = z
        .iter()
        .copied()
        .fold(z.first().copied().unwrap_or(T::ZERO), T::max);
    for (out, &z) in out.iter_mut().zip(z) {
        *out = (z - max).exp();
    }
    let sum: T = out.iter().copied().sum();
    for out in out.iter_mut() {
        *out /= sum;
    }
}

/// The index of the largest value, the first of equals (0 if none compares larger, as with NaN).
fn argmax<T: Scalar>(values: &[T]) -> usize {
    let mut best = 0;
    for (index, &value) in values.iter().enumerate().skip(1) {
        if value > values[best] {
            best = index;
        }
    }
    best
}
