//! The checks of the verification protocol, each turning a backend and a case into a report.
//!
//! # Tolerances
//!
//! Every tolerance follows from a rounding-error bound, not from tuning. A
//! gradient component is a sum of products along the network's paths; any
//! program that computes it in precision `T` with unit roundoff `u` commits
//! an error of at most about `k u S`, where `S` is the sum of the absolute
//! values of all the terms and `k` is the length of the longest chain of
//! operations that feeds one term: one per sample summed (`B`), one per
//! neuron summed in every layer (`sum_l d_l`), and a few per layer for the
//! activation and loss functions (`ACTIVATION_OPERATIONS` each).
//!
//! The dual-number oracle carries `S` itself (its `magnitude` part), for every
//! component, so the tolerance is `k u S` exactly as the bound states, with no
//! fudge factor beyond the bound's own first-order slack (`ROUNDING_SAFETY`).
//! Checks that compare two computations in the same precision allow the sum
//! of both errors, `2 k u S`. The finite-difference check adds the oracle's
//! own error estimate (see [`crate::oracles::finite_differences`]).
//!
//! In `f64` with the property tests' sizes (`k` up to about 100), a relative
//! gradient error above about `1e-12` of `S` is detected; in `f32`, above
//! about `1e-5`.

use backprop_core::{Activation, Architecture, Backend, Loss, Network, Params, Scalar};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::case::Case;
use crate::oracles;
use crate::real::Dual;
use crate::report::{CheckKind, CheckReport, Quantity};

/// Operations each activation and loss evaluation adds to a chain.
pub const ACTIVATION_OPERATIONS: usize = 8;

/// Slack for the first-order rounding bound `k u S`.
pub const ROUNDING_SAFETY: f64 = 2.0;

/// The chain length `k` of the rounding bound for an architecture and batch size.
pub fn operation_depth(architecture: &Architecture, rows: usize) -> f64 {
    (rows
        + architecture.widths().iter().sum::<usize>()
        + ACTIVATION_OPERATIONS * architecture.layer_count()) as f64
}

/// The rounding bound `ROUNDING_SAFETY * k u S` of precision `T`.
fn rounding_bound<T: Scalar>(depth: f64, magnitude: f64) -> f64 {
    ROUNDING_SAFETY * depth * T::UNIT_ROUNDOFF * magnitude
}

/// A backend's loss and gradient on a case, or the error it returned.
fn loss_and_gradient<T: Scalar>(
    backend: &mut dyn Backend<T>,
    case: &Case<T>,
) -> Result<(T, Params<T>), String> {
    let mut gradient = case.network.zero_gradient();
    let loss = backend
        .loss_and_gradient(&case.network, &case.batch(), &mut gradient)
        .map_err(|e| e.to_string())?;
    Ok((loss, gradient))
}

/// The case's loss and dual-number gradient, computed in `f64` on exactly the
/// values a backend in precision `T` sees.
#[derive(Clone, Debug)]
pub struct Oracle {
    /// `J` in `f64`.
    pub loss: f64,
    /// `dJ/dtheta_i` with its magnitude `S_i`, one per parameter.
    pub gradient: Vec<Dual>,
    /// The chain length `k` for this case.
    pub depth: f64,
}

impl Oracle {
    /// Evaluates the oracle on a case (widened to `f64` first).
    pub fn of<T: Scalar>(case: &Case<T>) -> Oracle {
        let wide = case.widened();
        let problem = wide.problem();
        Oracle {
            loss: problem.loss(wide.network.params().as_slice()),
            gradient: oracles::dual_gradient(&problem, wide.network.params().as_slice()),
            depth: operation_depth(case.network.architecture(), case.rows),
        }
    }
}

/// Compares a gradient component by component against the oracle with
/// tolerance `copies * k u S_i` (`copies` computations in precision `T`
/// contribute rounding error).
fn compare_gradient<T: Scalar>(
    report: &mut CheckReport,
    architecture: &Architecture,
    gradient: &[f64],
    expected: &[f64],
    oracle: &Oracle,
    copies: f64,
) {
    for (i, ((&actual, &expected), dual)) in gradient
        .iter()
        .zip(expected)
        .zip(&oracle.gradient)
        .enumerate()
    {
        let location = architecture.locate(i).expect("index within the parameters");
        let tolerance = copies * rounding_bound::<T>(oracle.depth, dual.magnitude);
        report.compare(Quantity::Param(location), actual, expected, tolerance);
    }
}

fn widen<T: Scalar>(values: &[T]) -> Vec<f64> {
    values.iter().map(|v| v.to_f64()).collect()
}

/// Gradient components against Richardson central differences in `f64`.
///
/// Tolerance per component: twice the oracle's error estimate plus the
/// rounding bound. Components whose finite differences cross a ReLU kink are
/// excluded and counted.
pub fn finite_differences(
    backend: &mut dyn Backend<f64>,
    case: &Case<f64>,
    oracle: &Oracle,
) -> CheckReport {
    let mut report = CheckReport::new(CheckKind::FiniteDifferences);
    let (_, gradient) = match loss_and_gradient(backend, case) {
        Ok(result) => result,
        Err(e) => return CheckReport::failed(CheckKind::FiniteDifferences, e),
    };
    let estimates = oracles::finite_differences(&case.problem(), case.network.params().as_slice());
    let architecture = case.network.architecture();
    for (i, ((&actual, estimate), dual)) in gradient
        .as_slice()
        .iter()
        .zip(&estimates)
        .zip(&oracle.gradient)
        .enumerate()
    {
        if estimate.near_kink {
            report.exclude();
            continue;
        }
        let location = architecture.locate(i).expect("index within the parameters");
        let tolerance = 2.0 * estimate.error + rounding_bound::<f64>(oracle.depth, dual.magnitude);
        report.compare(Quantity::Param(location), actual, estimate.value, tolerance);
    }
    report
}

/// Gradient components against dual numbers in `f64`, tolerance `k u S_i`.
pub fn dual_numbers(
    backend: &mut dyn Backend<f64>,
    case: &Case<f64>,
    oracle: &Oracle,
) -> CheckReport {
    let mut report = CheckReport::new(CheckKind::DualNumbers);
    match loss_and_gradient(backend, case) {
        Ok((_, gradient)) => {
            let expected: Vec<f64> = oracle.gradient.iter().map(|d| d.eps).collect();
            compare_gradient::<f64>(
                &mut report,
                case.network.architecture(),
                gradient.as_slice(),
                &expected,
                oracle,
                1.0,
            );
            report
        }
        Err(e) => CheckReport::failed(CheckKind::DualNumbers, e),
    }
}

/// Random directional derivatives `g . v` (`v` uniform in `[-1, 1)^P`, from
/// `seed`) against one dual-number pass each. Tolerance: the oracle's bound
/// `k u S` plus the rounding of the dot product, `P u sum |g_i v_i|`.
pub fn directional(
    backend: &mut dyn Backend<f64>,
    case: &Case<f64>,
    oracle: &Oracle,
    directions: usize,
    seed: u64,
) -> CheckReport {
    let mut report = CheckReport::new(CheckKind::Directional);
    let (_, gradient) = match loss_and_gradient(backend, case) {
        Ok(result) => result,
        Err(e) => return CheckReport::failed(CheckKind::Directional, e),
    };
    let mut rng = StdRng::seed_from_u64(seed);
    let params = case.network.params().as_slice();
    let problem = case.problem();
    for k in 0..directions {
        let direction: Vec<f64> = params.iter().map(|_| rng.random_range(-1.0..1.0)).collect();
        let exact = oracles::directional_derivative(&problem, params, &direction);
        let products = gradient
            .as_slice()
            .iter()
            .zip(&direction)
            .map(|(g, v)| g * v);
        let actual: f64 = products.clone().sum();
        let dot_rounding =
            params.len() as f64 * f64::EPSILON / 2.0 * products.map(f64::abs).sum::<f64>();
        let tolerance = rounding_bound::<f64>(oracle.depth, exact.magnitude) + dot_rounding;
        report.compare(Quantity::Direction(k), actual, exact.eps, tolerance);
    }
    report
}

/// Loss and gradient against the naive backend in the same precision `T`.
/// Both carry rounding error, so the tolerance is `2 k u S`.
pub fn agrees_with<T: Scalar>(
    backend: &mut dyn Backend<T>,
    reference: &mut dyn Backend<T>,
    case: &Case<T>,
    oracle: &Oracle,
) -> CheckReport {
    let mut report = CheckReport::new(CheckKind::AgreesWithNaive);
    let (actual, expected) = match (
        loss_and_gradient(backend, case),
        loss_and_gradient(reference, case),
    ) {
        (Ok(actual), Ok(expected)) => (actual, expected),
        (Err(e), _) | (_, Err(e)) => return CheckReport::failed(CheckKind::AgreesWithNaive, e),
    };
    let loss_tolerance = 2.0 * rounding_bound::<T>(oracle.depth, oracle.loss.abs());
    report.compare(
        Quantity::Loss,
        actual.0.to_f64(),
        expected.0.to_f64(),
        loss_tolerance,
    );
    compare_gradient::<T>(
        &mut report,
        case.network.architecture(),
        &widen(actual.1.as_slice()),
        &widen(expected.1.as_slice()),
        oracle,
        2.0,
    );
    report
}

/// An `f32` loss and gradient against the `f64` oracle evaluated on the same
/// rounded values, so that only the `f32` arithmetic differs: tolerance
/// `k u_f32 S` (the oracle's own `f64` error is negligible beside it).
pub fn f32_against_f64(
    backend: &mut dyn Backend<f32>,
    case: &Case<f32>,
    oracle: &Oracle,
) -> CheckReport {
    let mut report = CheckReport::new(CheckKind::F32AgainstF64);
    let (loss, gradient) = match loss_and_gradient(backend, case) {
        Ok(result) => result,
        Err(e) => return CheckReport::failed(CheckKind::F32AgainstF64, e),
    };
    report.compare(
        Quantity::Loss,
        loss.to_f64(),
        oracle.loss,
        rounding_bound::<f32>(oracle.depth, oracle.loss.abs()),
    );
    let expected: Vec<f64> = oracle.gradient.iter().map(|d| d.eps).collect();
    compare_gradient::<f32>(
        &mut report,
        case.network.architecture(),
        &widen(gradient.as_slice()),
        &expected,
        oracle,
        1.0,
    );
    report
}

/// The loss of an all-zero network on targets in `{0, 1}`, known in closed form.
///
/// With every weight and bias zero, `Z^L = 0` whatever the hidden layers do,
/// so each output is `act_L(0)`: exactly `1/2` for a sigmoid and `0`
/// otherwise. For MSE every term `(y - a)^2` is then `0`, `1/4` or `1`, and
/// the loss is exact whenever `2 m B` is a power of two; otherwise a few
/// roundings of relative size `u` are allowed. For softmax cross-entropy with
/// one-hot targets the loss is `ln m`, allowed `B` roundings. A loss off by
/// a constant factor, consistent with its own gradient, fails here.
pub fn golden_loss<T: Scalar>(
    backend: &mut dyn Backend<T>,
    architecture: &Architecture,
    rows: usize,
) -> CheckReport {
    let mut report = CheckReport::new(CheckKind::GoldenLoss);
    let (n, m) = (architecture.input_width(), architecture.output_width());
    let network = Network::<T>::zeros(architecture.clone());
    let inputs: Vec<T> = (0..rows * n)
        .map(|i| T::from_f64(((i % 7) as f64 - 3.0) / 4.0))
        .collect();
    let targets: Vec<T> = (0..rows * m)
        .map(|i| {
            let hot = match architecture.loss() {
                Loss::Mse => (i * 5 + i / m) % 3 == 0,
                Loss::SoftmaxCrossEntropy => i % m == (i / m) % m,
            };
            if hot { T::ONE } else { T::ZERO }
        })
        .collect();
    let case = match Case::new(network, inputs, targets, rows) {
        Ok(case) => case,
        Err(e) => return CheckReport::failed(CheckKind::GoldenLoss, e),
    };
    let loss = match loss_and_gradient(backend, &case) {
        Ok((loss, _)) => loss.to_f64(),
        Err(e) => return CheckReport::failed(CheckKind::GoldenLoss, e),
    };
    let (expected, tolerance) = match architecture.loss() {
        Loss::Mse => {
            let output = if architecture.activations()[architecture.layer_count() - 1]
                == Activation::Sigmoid
            {
                0.5
            } else {
                0.0
            };
            let sum: f64 = case
                .targets
                .iter()
                .map(|y| (y.to_f64() - output).powi(2))
                .sum();
            let expected = sum / (2 * m * rows) as f64;
            let exact = (2 * m * rows).is_power_of_two();
            (
                expected,
                if exact {
                    0.0
                } else {
                    4.0 * T::UNIT_ROUNDOFF * expected
                },
            )
        }
        Loss::SoftmaxCrossEntropy => {
            let expected = (m as f64).ln();
            (expected, 2.0 * rows as f64 * T::UNIT_ROUNDOFF * expected)
        }
    };
    report.compare(Quantity::Loss, loss, expected, tolerance);
    report
}

/// The batch gradient against the mean of the per-sample gradients, both
/// from the same backend in precision `T`; tolerance `2 k u S`.
pub fn batch_law<T: Scalar>(
    backend: &mut dyn Backend<T>,
    case: &Case<T>,
    oracle: &Oracle,
) -> CheckReport {
    let mut report = CheckReport::new(CheckKind::BatchLaw);
    let whole = match loss_and_gradient(backend, case) {
        Ok((_, gradient)) => widen(gradient.as_slice()),
        Err(e) => return CheckReport::failed(CheckKind::BatchLaw, e),
    };
    let mut mean = vec![0.0; whole.len()];
    for b in 0..case.rows {
        match loss_and_gradient(backend, &case.sample(b)) {
            Ok((_, gradient)) => {
                for (sum, g) in mean.iter_mut().zip(gradient.as_slice()) {
                    *sum += g.to_f64() / case.rows as f64;
                }
            }
            Err(e) => return CheckReport::failed(CheckKind::BatchLaw, e),
        }
    }
    compare_gradient::<T>(
        &mut report,
        case.network.architecture(),
        &whole,
        &mean,
        oracle,
        2.0,
    );
    report
}

/// `runs` repeated calls on one backend give bit-identical loss and gradient.
pub fn determinism<T: Scalar>(
    backend: &mut dyn Backend<T>,
    case: &Case<T>,
    runs: usize,
) -> CheckReport {
    let mut report = CheckReport::new(CheckKind::Determinism);
    let first = match loss_and_gradient(backend, case) {
        Ok(result) => result,
        Err(e) => return CheckReport::failed(CheckKind::Determinism, e),
    };
    for _ in 1..runs {
        match loss_and_gradient(backend, case) {
            Ok(again) => compare_bits(&mut report, case.network.architecture(), &first, &again),
            Err(e) => return CheckReport::failed(CheckKind::Determinism, e),
        }
    }
    report
}

/// A backend built for each thread count in `threads` (by `make`) gives the
/// bit-identical loss and gradient of the first.
pub fn thread_counts<T: Scalar>(
    make: &dyn Fn(usize) -> Box<dyn Backend<T>>,
    case: &Case<T>,
    threads: &[usize],
) -> CheckReport {
    let mut report = CheckReport::new(CheckKind::ThreadCounts);
    let mut first = None;
    for &count in threads {
        match loss_and_gradient(&mut *make(count), case) {
            Ok(result) => match &first {
                None => first = Some(result),
                Some(first) => {
                    compare_bits(&mut report, case.network.architecture(), first, &result)
                }
            },
            Err(e) => return CheckReport::failed(CheckKind::ThreadCounts, e),
        }
    }
    report
}

/// Compares two results bit for bit (tolerance zero, so any difference fails).
pub fn compare_bits<T: Scalar>(
    report: &mut CheckReport,
    architecture: &Architecture,
    first: &(T, Params<T>),
    again: &(T, Params<T>),
) {
    report.compare(Quantity::Loss, again.0.to_f64(), first.0.to_f64(), 0.0);
    for (i, (a, b)) in again
        .1
        .as_slice()
        .iter()
        .zip(first.1.as_slice())
        .enumerate()
    {
        let location = architecture.locate(i).expect("index within the parameters");
        report.compare(Quantity::Param(location), a.to_f64(), b.to_f64(), 0.0);
    }
}
