//! Training multilayer perceptrons with any backprop backend: datasets, mini-batch SGD, evaluation, checkpoints.
//!
//! A [`Dataset`] holds features with either class labels (one-hot targets,
//! [`Dataset::classification`]) or real-valued targets of any width
//! ([`Dataset::regression`]); [`train`] runs epochs of seeded, shuffled
//! mini-batch SGD on either kind with any [`backprop_core::Backend`], and
//! [`evaluate`] scores a network: its loss, its largest absolute error and,
//! for class labels, its accuracy. [`checkpoint`] saves and loads networks as
//! safetensors, and [`digits`] reads the handwritten digits the workspace
//! ships. Every mistake is an [`Error`]; errors of `backprop-core` are
//! wrapped and returned by its `source()`.
//!
//! Fitting `y = 2x - 1` with a single linear neuron:
//!
//! ```
//! use backprop_core::{Activation, Architecture, Loss, Network};
//! use backprop_naive::NaiveBackend;
//! use backprop_train::{Dataset, TrainConfig, evaluate, train};
//!
//! # fn main() -> Result<(), backprop_train::Error> {
//! let xs: Vec<f64> = (0..20).map(|i| f64::from(i) / 10.0 - 1.0).collect();
//! let ys: Vec<f64> = xs.iter().map(|x| 2.0 * x - 1.0).collect();
//! let data = Dataset::regression(xs, 1, ys, 1)?;
//! let split = data.split(0.25, 0)?;
//!
//! let architecture = Architecture::new(&[1, 1], &[Activation::Identity], Loss::Mse)?;
//! let mut network = Network::<f64>::init(architecture, 7);
//! let mut backend = NaiveBackend::<f64>::new();
//! let config = TrainConfig { epochs: 200, batch_size: 5, learning_rate: 0.5, seed: 7 };
//! train(&mut backend, &mut network, &split.train, &split.test, &config, |_| {})?;
//!
//! let score = evaluate(&mut backend, &network, &split.test)?;
//! assert!(score.max_abs_error < 1e-3);
//! assert_eq!(score.accuracy(), None); // real-valued targets have no accuracy
//! # Ok(())
//! # }
//! ```

pub mod checkpoint;
mod dataset;
pub mod digits;
mod error;
mod train;

pub use dataset::{Dataset, Split, SplitIndices, one_hot};
pub use error::{DatasetPart, Error};
pub use train::{EpochStats, Evaluation, TrainConfig, evaluate, train};
