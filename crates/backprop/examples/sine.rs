//! Regression with the training loop: a 1-16-1 network (tanh hidden, identity output, MSE) learns `sin x` on `[-pi, pi]`.
//!
//! ```sh
//! cargo run --release --example sine
//! cargo run --release --example sine -- rayon-faer    # any backend by name
//! ```

use std::f64::consts::PI;

use anyhow::Result;
use backprop::train::{Dataset, TrainConfig, evaluate, train};
use backprop::{Activation, Architecture, BackendKind, Loss, Network};

/// Training samples, evenly spaced over `[-pi, pi]`.
const SAMPLES: usize = 64;
/// Points of the grid scored after every epoch.
const MONITOR: usize = 101;
/// Points of the grid the trained network is checked on: most of them lie
/// between the training samples.
const GRID: usize = 1001;
/// Seed of the initial weights and of the shuffling.
const SEED: u64 = 7;

/// `count` evenly spaced points from `-pi` to `pi` (at least 2), with their sines.
fn sine(count: usize) -> Result<Dataset<f64>> {
    let xs: Vec<f64> = (0..count)
        .map(|i| -PI + 2.0 * PI * i as f64 / (count - 1) as f64)
        .collect();
    let ys = xs.iter().map(|x| x.sin()).collect();
    Ok(Dataset::regression(xs, 1, ys, 1)?)
}

fn main() -> Result<()> {
    let kind: BackendKind = match std::env::args().nth(1) {
        Some(name) => name.parse()?,
        None => BackendKind::Faer,
    };
    let architecture = Architecture::with_hidden_and_output(
        &[1, 16, 1],
        Activation::Tanh,
        Activation::Identity,
        Loss::Mse,
    )?;
    let mut network = Network::<f64>::init(architecture, SEED);
    let mut backend = kind.create::<f64>();
    let config = TrainConfig {
        epochs: 5000,
        batch_size: 2,
        learning_rate: 0.05,
        seed: SEED,
    };
    train(
        backend.as_mut(),
        &mut network,
        &sine(SAMPLES)?,
        &sine(MONITOR)?,
        &config,
        |stats| {
            if stats.epoch % 500 == 0 {
                println!(
                    "epoch {:>4}  train loss {:.2e}  max |error| on {MONITOR} points {:.4}",
                    stats.epoch, stats.train_loss, stats.test.max_abs_error
                );
            }
        },
    )?;
    let result = evaluate(backend.as_mut(), &network, &sine(GRID)?)?;
    println!(
        "{} ({kind}, f64): max |network(x) - sin x| = {:.4} over {GRID} points of [-pi, pi]",
        network.architecture(),
        result.max_abs_error,
    );
    Ok(())
}
