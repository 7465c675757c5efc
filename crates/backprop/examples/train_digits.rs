//! Trains a multilayer perceptron on the handwritten digits with any backend, showing progress, and saves or loads checkpoints.
//!
//! ```sh
//! cargo run --release --example train_digits -- --backend naive --epochs 150 --seed 7
//! cargo run --release --example train_digits -- --help
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::str::FromStr;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use backprop::train::digits::{self, TEST_FRACTION};
use backprop::train::{EpochStats, Evaluation, TrainConfig, checkpoint, evaluate, train};
use backprop::{Activation, Architecture, BackendKind, Loss, Network, Precision, Scalar};
use indicatif::{ProgressBar, ProgressStyle};

/// Backends to default to, fastest first; the first one this build offers is used.
const PREFERRED_BACKENDS: [&str; 2] = ["auto", "naive"];
/// Default epochs: enough for the seed network to pass 95% test accuracy.
const DEFAULT_EPOCHS: usize = 150;
/// The most epochs the command line runs (about 20 hours of the default
/// network with the fastest backend): a larger count is a typing mistake.
const MAX_EPOCHS: usize = 1_000_000;
/// Every option, each of which takes a value.
const OPTIONS: [&str; 12] = [
    "--backend",
    "--epochs",
    "--hidden",
    "--activation",
    "--loss",
    "--lr",
    "--batch",
    "--seed",
    "--precision",
    "--data",
    "--save",
    "--load",
];
/// Default hidden width of the seed network.
const DEFAULT_HIDDEN: usize = 32;
/// Default mini-batch size.
const DEFAULT_BATCH: usize = 32;
/// Default seed of the initial weights and of the shuffling.
const DEFAULT_SEED: u64 = 7;
/// Default learning rate for MSE with a sigmoid output, whose gradients are small.
const DEFAULT_MSE_LEARNING_RATE: f64 = 20.0;
/// Default learning rate for softmax cross-entropy.
const DEFAULT_SOFTMAX_LEARNING_RATE: f64 = 0.3;

/// The command line, with every default filled in.
struct Options {
    backend: BackendKind,
    epochs: usize,
    hidden: usize,
    activation: Activation,
    loss: Loss,
    learning_rate: Option<f64>,
    batch_size: usize,
    seed: u64,
    precision: Dtype,
    data: PathBuf,
    save: Option<PathBuf>,
    load: Option<PathBuf>,
}

/// The floating-point type to train in.
#[derive(Clone, Copy)]
enum Dtype {
    F32,
    F64,
}

fn default_backend() -> BackendKind {
    PREFERRED_BACKENDS
        .iter()
        .find_map(|name| name.parse().ok())
        .unwrap_or(BackendKind::Naive)
}

fn default_data_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/digits.csv.gz")
}

fn help() -> String {
    let backends: Vec<&str> = BackendKind::ALL.iter().map(|kind| kind.name()).collect();
    format!(
        "Trains an MLP on the 1,797 handwritten digits (80/20 stratified split) and reports test accuracy.

Usage: train_digits [OPTIONS]

Options:
  --backend NAME     kernel to train with: {backends} [default: {backend}]
  --epochs N         passes over the training set, at most {MAX_EPOCHS} [default: {DEFAULT_EPOCHS}]
  --hidden N         hidden-layer width [default: {DEFAULT_HIDDEN}]
  --activation NAME  hidden activation: sigmoid, tanh, relu, identity [default: sigmoid]
  --loss NAME        mse (sigmoid outputs) or softmax-cross-entropy (identity outputs) [default: mse]
  --lr ETA           SGD learning rate [default: {DEFAULT_MSE_LEARNING_RATE} for mse, {DEFAULT_SOFTMAX_LEARNING_RATE} for softmax-cross-entropy]
  --batch N          mini-batch size [default: {DEFAULT_BATCH}]
  --seed N           seed of the initial weights and of the shuffling [default: {DEFAULT_SEED}]
  --precision P      f32 or f64 [default: f32]
  --data PATH        the digits file (gzip CSV) [default: data/digits.csv.gz]
  --save PATH        save the trained network as a safetensors checkpoint (checked writable before training)
  --load PATH        start from a checkpoint; its architecture replaces --hidden, --activation and --loss
  -h, --help         print this help",
        backends = backends.join(", "),
        backend = default_backend(),
    )
}

/// Parses `value` as the argument of `flag`, naming both on failure.
fn parse_value<V: FromStr>(flag: &str, value: &str, expected: &str) -> Result<V>
where
    V::Err: std::fmt::Display,
{
    value.parse().map_err(|error| {
        anyhow::anyhow!("invalid value '{value}' for {flag}: expected {expected} ({error})")
    })
}

/// Reads the command line; `None` when help was asked for.
fn parse_options(arguments: impl IntoIterator<Item = String>) -> Result<Option<Options>> {
    let mut options = Options {
        backend: default_backend(),
        epochs: DEFAULT_EPOCHS,
        hidden: DEFAULT_HIDDEN,
        activation: Activation::Sigmoid,
        loss: Loss::Mse,
        learning_rate: None,
        batch_size: DEFAULT_BATCH,
        seed: DEFAULT_SEED,
        precision: Dtype::F32,
        data: default_data_path(),
        save: None,
        load: None,
    };
    let mut arguments = arguments.into_iter();
    while let Some(argument) = arguments.next() {
        if argument == "-h" || argument == "--help" {
            return Ok(None);
        }
        let (flag, inline_value) = match argument.split_once('=') {
            Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
            None => (argument.clone(), None),
        };
        if !flag.starts_with("--") {
            bail!("unexpected argument '{argument}'; see --help");
        }
        if !OPTIONS.contains(&flag.as_str()) {
            bail!("unknown option '{flag}'; see --help");
        }
        let value = match inline_value.or_else(|| arguments.next()) {
            Some(value) => value,
            None => bail!("{flag} needs a value; see --help"),
        };
        let value = value.as_str();
        match flag.as_str() {
            "--backend" => options.backend = parse_value(&flag, value, "a backend name")?,
            "--epochs" => {
                options.epochs = parse_value(&flag, value, "a whole number")?;
                if options.epochs > MAX_EPOCHS {
                    bail!("invalid value '{value}' for --epochs: expected at most {MAX_EPOCHS}");
                }
            }
            "--hidden" => {
                options.hidden = parse_value(&flag, value, "a whole number")?;
                if options.hidden == 0 {
                    bail!(
                        "invalid value '0' for --hidden: the hidden layer needs at least 1 neuron"
                    );
                }
            }
            "--activation" => options.activation = parse_value(&flag, value, "an activation")?,
            "--loss" => options.loss = parse_value(&flag, value, "a loss")?,
            "--lr" => {
                let rate: f64 = parse_value(&flag, value, "a number")?;
                if !(rate.is_finite() && rate > 0.0) {
                    bail!("invalid value '{value}' for --lr: expected a positive, finite number");
                }
                options.learning_rate = Some(rate);
            }
            "--batch" => {
                options.batch_size = parse_value(&flag, value, "a whole number")?;
                if options.batch_size == 0 {
                    bail!("invalid value '0' for --batch: a mini-batch needs at least 1 sample");
                }
            }
            "--seed" => options.seed = parse_value(&flag, value, "a whole number")?,
            "--precision" => {
                options.precision = match value {
                    "f32" => Dtype::F32,
                    "f64" => Dtype::F64,
                    _ => bail!("invalid value '{value}' for --precision: expected f32 or f64"),
                }
            }
            "--data" => options.data = PathBuf::from(value),
            "--save" => options.save = Some(PathBuf::from(value)),
            "--load" => options.load = Some(PathBuf::from(value)),
            _ => bail!("unknown option '{flag}'; see --help"),
        }
    }
    Ok(Some(options))
}

/// The network to train: loaded from a checkpoint, or freshly initialised.
fn initial_network<T: Scalar>(options: &Options) -> Result<Network<T>> {
    if let Some(path) = &options.load {
        let network = checkpoint::load::<T>(path)
            .with_context(|| format!("cannot load the checkpoint {}", path.display()))?;
        println!("loaded {} from {}", network.architecture(), path.display());
        return Ok(network);
    }
    let output = match options.loss {
        Loss::Mse => Activation::Sigmoid,
        Loss::SoftmaxCrossEntropy => Activation::Identity,
    };
    let architecture = Architecture::with_hidden_and_output(
        &[digits::PIXELS, options.hidden, digits::CLASSES],
        options.activation,
        output,
        options.loss,
    )?;
    Ok(Network::try_init(architecture, options.seed)?)
}

/// Makes sure the checkpoint can be written before training for it: opens
/// (creating) the file for writing. A file created here is removed again if
/// the run fails before the checkpoint is saved.
fn check_writable(path: &Path) -> Result<SaveGuard<'_>> {
    let existed = path.exists();
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .with_context(|| format!("cannot write the checkpoint {}", path.display()))?;
    Ok(SaveGuard {
        path,
        created: !existed,
        saved: false,
    })
}

/// Removes a checkpoint file [`check_writable`] created, unless it was saved.
struct SaveGuard<'a> {
    path: &'a Path,
    created: bool,
    saved: bool,
}

impl Drop for SaveGuard<'_> {
    fn drop(&mut self) {
        if self.created && !self.saved {
            let _ = std::fs::remove_file(self.path);
        }
    }
}

fn run<T: Precision>(options: &Options) -> Result<()> {
    let mut save_guard = options.save.as_deref().map(check_writable).transpose()?;
    let data = digits::load::<T>(&options.data)
        .with_context(|| format!("cannot read the digits from {}", options.data.display()))?;
    let split = data.stratified_split(TEST_FRACTION, digits::SPLIT_SEED)?;
    let mut network = initial_network::<T>(options)?;
    let learning_rate = options
        .learning_rate
        .unwrap_or(match network.architecture().loss() {
            Loss::Mse => DEFAULT_MSE_LEARNING_RATE,
            Loss::SoftmaxCrossEntropy => DEFAULT_SOFTMAX_LEARNING_RATE,
        });
    let config = TrainConfig {
        epochs: options.epochs,
        batch_size: options.batch_size,
        learning_rate,
        seed: options.seed,
    };
    let mut backend = options.backend.create::<T>();
    println!(
        "training {} ({}) with {} on {} samples, testing on {}: {} epochs, batch {}, learning rate {}",
        network.architecture(),
        T::NAME,
        options.backend,
        split.train.rows(),
        split.test.rows(),
        config.epochs,
        config.batch_size,
        config.learning_rate,
    );

    let bar = ProgressBar::new(config.epochs as u64).with_style(
        ProgressStyle::with_template("{bar:30} epoch {pos}/{len} {msg} [{elapsed_precise}]")
            .context("invalid progress bar template")?,
    );
    let report_every = (config.epochs / 10).max(1);
    let report = |stats: &EpochStats| {
        let line = format!(
            "epoch {:>4}  train loss {:.5}  test loss {:.5}  test accuracy {:.3}",
            stats.epoch,
            stats.train_loss,
            stats.test.loss,
            accuracy(&stats.test)
        );
        bar.set_message(format!(
            "loss {:.5} accuracy {:.3}",
            stats.train_loss,
            accuracy(&stats.test)
        ));
        bar.inc(1);
        if stats.epoch.is_multiple_of(report_every) || stats.epoch == config.epochs {
            if bar.is_hidden() {
                println!("{line}");
            } else {
                bar.println(line);
            }
        }
    };
    let start = Instant::now();
    train(
        backend.as_mut(),
        &mut network,
        &split.train,
        &split.test,
        &config,
        report,
    )?;
    let elapsed = start.elapsed();
    bar.finish_and_clear();

    if let Some(path) = &options.save {
        checkpoint::save(&network, path)
            .with_context(|| format!("cannot save the checkpoint {}", path.display()))?;
        if let Some(guard) = &mut save_guard {
            guard.saved = true;
        }
        println!("saved the network to {}", path.display());
    }
    let result = evaluate(backend.as_mut(), &network, &split.test)?;
    let correct = result
        .correct
        .context("the digits have labels, so an evaluation counts the correct samples")?;
    println!(
        "test accuracy: {:.3} ({}/{} correct) after {} epochs in {:.2} s ({}, {})",
        accuracy(&result),
        correct,
        result.samples,
        config.epochs,
        elapsed.as_secs_f64(),
        options.backend,
        T::NAME,
    );
    Ok(())
}

/// The accuracy of an evaluation on the digits (which have labels, so it is never NaN).
fn accuracy(evaluation: &Evaluation) -> f64 {
    evaluation.accuracy().unwrap_or(f64::NAN)
}

fn main() -> ExitCode {
    let outcome = parse_options(std::env::args().skip(1)).and_then(|options| match options {
        None => {
            println!("{}", help());
            Ok(())
        }
        Some(options) => match options.precision {
            Dtype::F32 => run::<f32>(&options),
            Dtype::F64 => run::<f64>(&options),
        },
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(arguments: &[&str]) -> Result<Option<Options>> {
        parse_options(arguments.iter().map(|a| (*a).to_owned()))
    }

    fn error_of(arguments: &[&str]) -> String {
        match parse(arguments) {
            Ok(_) => panic!("{arguments:?} was accepted"),
            Err(error) => format!("{error:#}"),
        }
    }

    #[test]
    fn an_unknown_option_is_named_as_unknown() {
        assert_eq!(
            error_of(&["--bogus"]),
            "unknown option '--bogus'; see --help"
        );
        assert_eq!(
            error_of(&["--bogus=3"]),
            "unknown option '--bogus'; see --help"
        );
        assert_eq!(
            error_of(&["--epochs"]),
            "--epochs needs a value; see --help"
        );
    }

    #[test]
    fn epoch_counts_past_the_cap_are_refused_before_anything_runs() {
        for count in ["18446744073709551615", "1000000000000", "1000001"] {
            let message = error_of(&["--epochs", count]);
            assert!(message.contains("at most 1000000"), "{message}");
        }
        let message = error_of(&["--epochs", "18446744073709551616"]);
        assert!(message.contains("a whole number"), "{message}");
        let options = parse(&["--epochs", "1000000"]).unwrap().unwrap();
        assert_eq!(options.epochs, MAX_EPOCHS);
    }

    #[test]
    fn a_hidden_layer_too_large_for_memory_is_an_error() {
        let options = parse(&["--hidden", "1000000000000"]).unwrap().unwrap();
        let error = initial_network::<f32>(&options).unwrap_err();
        let hidden = 1_000_000_000_000usize;
        let count = hidden * 64 + hidden + 10 * hidden + 10;
        assert_eq!(
            error.downcast_ref::<backprop::Error>(),
            Some(&backprop::Error::TooLarge {
                what: "parameters",
                rows: count,
                cols: 1
            })
        );
    }

    #[test]
    fn an_unwritable_save_path_fails_before_training_and_a_failed_run_leaves_no_file() {
        let error = check_writable(Path::new("/no/such/directory/model.safetensors"))
            .err()
            .expect("an unwritable path");
        assert!(format!("{error:#}").contains("cannot write the checkpoint"));
        let dir = std::env::temp_dir().join(format!("train-digits-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("model.safetensors");
        drop(check_writable(&path).unwrap());
        assert!(
            !path.exists(),
            "the probe file is removed when nothing was saved"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_checkpoint_holding_nan_is_blamed_on_its_parameter_not_the_learning_rate() {
        let architecture = Architecture::seed(64, 4, 10).unwrap();
        let mut network = Network::<f32>::init(architecture, 1);
        let dir = std::env::temp_dir().join(format!("train-digits-nan-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("nan.safetensors");
        checkpoint::save(&network, &path).unwrap();
        // Write a NaN over the first weight's bytes, keeping the file's checksum:
        // the checksum then fails; without it, the unsigned load names the NaN.
        network.param_values_mut()[0] = f32::NAN;
        assert!(
            checkpoint::save(&network, &path).is_err(),
            "no NaN is saved"
        );
        let mut options = parse(&[]).unwrap().unwrap();
        options.load = Some(path.clone());
        let bytes = std::fs::read(&path).unwrap();
        let start = bytes.len() - 4 * (4 * 64 + 4 + 10 * 4 + 10);
        let mut corrupt = bytes.clone();
        corrupt[start..start + 4].copy_from_slice(&f32::NAN.to_le_bytes());
        std::fs::write(&path, &corrupt).unwrap();
        let message = format!("{:#}", initial_network::<f32>(&options).unwrap_err());
        assert!(message.contains("checksum"), "{message}");
        assert!(!message.contains("learning rate"), "{message}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
