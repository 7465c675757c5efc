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
//!
//! # Saturation
//!
//! `S` depends on how a kernel forms the activation slopes and the softmax
//! cross-entropy's `p - y`. Formed from `z` (as `Activation::slope` and
//! `Loss::output_gradient` do), each is a product of positive numbers and
//! rounds relative to its own size, so `S` counts it at that size: this is
//! [`Cancellation::Forbidden`], the default, which every built-in backend is
//! held to. Formed from the rounded activation, `a (1 - a)`, `1 - a^2` and
//! `p - 1` subtract from 1 and round relative to 1; where a unit saturates
//! that error is larger than the slope itself, and such a kernel passes
//! only with [`Cancellation::Allowed`], which counts each slope at the size
//! of the 1 it cancels against. The two modes differ only where units
//! saturate; the [`saturation`] check shows the difference norm-wise.

use std::borrow::Cow;
use std::sync::OnceLock;

use backprop_core::{
    AboveFirstTask, Activation, Architecture, Backend, DeltaLayout, FirstLayerSplit,
    FirstLayerUnits, FirstUnitsTask, FirstWeightRowsTask, GradientTask, Layers, Loss, MatrixRef,
    Network, ParamLocation, Params, Scalar, SplitGradientTask,
};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::case::Case;
use crate::guard::caught;
use crate::oracles;
use crate::real::Dual;
use crate::report::{CheckKind, CheckReport, Quantity};
use crate::rotation::{Direction, rotate_params, rotate_rows};

/// Operations each activation and loss evaluation adds to a chain.
pub const ACTIVATION_OPERATIONS: usize = 8;

/// Slack for the first-order rounding bound `k u S`.
pub const ROUNDING_SAFETY: f64 = 2.0;

/// How the tolerances count the rounding of activation slopes and of the
/// softmax cross-entropy's `p - y` (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Cancellation {
    /// Slopes and `p - y` formed without cancellation, counted at their
    /// own size: the strict mode, the default, and the built-in backends'.
    #[default]
    Forbidden,
    /// Slopes formed as `a (1 - a)` and `1 - a^2` and `p - y` by subtraction,
    /// counted at the size of the 1 they cancel against: for kernels that
    /// compute them as the classic derivation and most frameworks do.
    Allowed,
}

impl Cancellation {
    /// How the report names the mode.
    pub fn describe(self) -> &'static str {
        match self {
            Cancellation::Forbidden => {
                "strict: slopes and softmax - y held to their own size where units saturate"
            }
            Cancellation::Allowed => {
                "with the allowance for slopes and softmax - y that cancel against 1 where units saturate"
            }
        }
    }
}

/// The chain length `k` of the rounding bound for an architecture and batch size.
pub fn operation_depth(architecture: &Architecture, rows: usize) -> f64 {
    (rows
        + architecture.widths().iter().sum::<usize>()
        + ACTIVATION_OPERATIONS * architecture.layer_count()) as f64
}

/// The rounding bound `ROUNDING_SAFETY * k (u S + lambda)` of precision `T`.
///
/// `lambda`, the smallest subnormal number of `T`, is the absolute error
/// the standard model with gradual underflow allows each operation on top
/// of the relative `u`: it matters only for values near the bottom of the
/// range, such as the gradients of deeply saturated units in `f32`.
fn rounding_bound<T: Scalar>(depth: f64, magnitude: f64) -> f64 {
    let lambda = 2.0 * T::UNIT_ROUNDOFF * T::SMALLEST_NORMAL;
    ROUNDING_SAFETY * depth * (T::UNIT_ROUNDOFF * magnitude + lambda)
}

/// What a buffer holds before a backend is asked to overwrite it: a kernel
/// that reads it, or leaves part of it unwritten, shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prefill {
    /// Every value NaN.
    Nan,
    /// Large values of alternating sign.
    Garbage,
}

impl Prefill {
    /// A buffer of `length` values prefilled this way.
    pub fn values<T: Scalar>(self, length: usize) -> Vec<T> {
        (0..length)
            .map(|i| match self {
                Prefill::Nan => T::from_f64(f64::NAN),
                Prefill::Garbage => T::from_f64(if i % 2 == 0 { 1e30 } else { -3e29 }),
            })
            .collect()
    }

    /// A gradient buffer for `network`, prefilled this way.
    pub fn gradient<T: Scalar>(self, network: &Network<T>) -> Params<T> {
        let architecture = network.architecture();
        let values = self.values(architecture.param_count());
        Params::from_values(architecture, values).unwrap_or_else(|_| network.zero_gradient())
    }
}

/// A backend's loss and gradient on a case, or the error it returned; the
/// gradient buffer is prefilled with NaN.
pub fn loss_and_gradient<T: Scalar>(
    backend: &mut dyn Backend<T>,
    case: &Case<T>,
) -> Result<(T, Params<T>), String> {
    loss_and_gradient_over(backend, case, Prefill::Nan)
}

/// The reason `backend` gives for declining `case`, if it answers a
/// gradient call with [`backprop_core::Error::Unsupported`]; `None` for any
/// other answer, a panic among them, which the checks then report. The call
/// is on a problem of the case's architecture and batch size with every
/// value zero, so that whether a cell is declined depends on its shape
/// alone: a kernel cannot decline the values that would show its mistakes
/// (saturated units, say) and keep the same shape elsewhere.
pub fn declined<T: Scalar>(backend: &mut dyn Backend<T>, case: &Case<T>) -> Option<String> {
    declined_at(backend, case.network.architecture(), case.rows)
}

/// [`declined`], asked of `architecture` with `rows` samples.
pub fn declined_at<T: Scalar>(
    backend: &mut dyn Backend<T>,
    architecture: &Architecture,
    rows: usize,
) -> Option<String> {
    let (n, m) = (architecture.input_width(), architecture.output_width());
    let probe = Case {
        network: Network::try_zeros(architecture.clone()).ok()?,
        inputs: vec![T::ZERO; rows.checked_mul(n)?],
        targets: vec![T::ZERO; rows.checked_mul(m)?],
        rows,
    };
    match caught(|| loss_and_gradient_typed(backend, &probe, Prefill::Nan)) {
        Ok(Err(error @ backprop_core::Error::Unsupported { .. })) => Some(error.to_string()),
        _ => None,
    }
}

/// [`loss_and_gradient`] with the gradient buffer prefilled as `prefill` says.
fn loss_and_gradient_over<T: Scalar>(
    backend: &mut dyn Backend<T>,
    case: &Case<T>,
    prefill: Prefill,
) -> Result<(T, Params<T>), String> {
    loss_and_gradient_typed(backend, case, prefill).map_err(|e| e.to_string())
}

/// [`loss_and_gradient_over`] with the error as the backend returned it.
fn loss_and_gradient_typed<T: Scalar>(
    backend: &mut dyn Backend<T>,
    case: &Case<T>,
    prefill: Prefill,
) -> Result<(T, Params<T>), backprop_core::Error> {
    let mut gradient = prefill.gradient(&case.network);
    let batch = case.batch()?;
    let loss = backend.loss_and_gradient(&case.network, &batch, &mut gradient)?;
    Ok((loss, gradient))
}

/// A backend's forward outputs `A^L` on a case's inputs, into a buffer
/// prefilled as `prefill` says.
fn forward_over<T: Scalar>(
    backend: &mut dyn Backend<T>,
    case: &Case<T>,
    prefill: Prefill,
) -> Result<Vec<T>, String> {
    let m = case.network.architecture().output_width();
    let mut outputs = prefill.values(case.rows * m);
    let batch = case.batch().map_err(|e| e.to_string())?;
    backend
        .forward(&case.network, &batch.inputs(), &mut outputs)
        .map_err(|e| e.to_string())?;
    Ok(outputs)
}

/// The case's loss, outputs and dual-number gradient, computed in `f64` on
/// exactly the values a backend in precision `T` sees.
#[derive(Clone, Debug)]
pub struct Oracle {
    /// `J` in `f64`.
    pub loss: f64,
    /// `J`'s terms summed in absolute value: the size its rounding scales with.
    pub loss_magnitude: f64,
    /// `A^L`, `rows x m`, each with the magnitude of its terms.
    pub outputs: Vec<Dual>,
    /// `dJ/dtheta_i` with its magnitude `S_i`, one per parameter.
    pub gradient: Vec<Dual>,
    /// The chain length `k` for this case.
    pub depth: f64,
    /// Which of the gradient's magnitudes the tolerances use.
    pub cancellation: Cancellation,
    /// The Richardson finite differences of every component (`f64` cases
    /// only), computed when first asked for.
    finite_differences: OnceLock<Vec<oracles::FiniteDifference>>,
}

/// The parameters as dual numbers with no direction: the point the oracles'
/// values and outputs are evaluated at.
fn constants(params: &[f64]) -> Vec<Dual> {
    params.iter().map(|&p| Dual::new(p, 0.0)).collect()
}

impl Oracle {
    /// Evaluates the oracle on a case (widened to `f64` first).
    pub fn of<T: Scalar>(case: &Case<T>) -> Oracle {
        let wide = case.widened();
        let problem = wide.problem();
        let params = wide.network.params().as_slice();
        let constants = constants(params);
        let loss = problem.loss(&constants);
        Oracle {
            loss: loss.re,
            loss_magnitude: loss.value_magnitude,
            outputs: problem.outputs(&constants),
            gradient: oracles::dual_gradient(&problem, params),
            depth: operation_depth(case.network.architecture(), case.rows),
            cancellation: Cancellation::Forbidden,
            finite_differences: OnceLock::new(),
        }
    }

    /// This oracle with its tolerances in the mode `cancellation`: itself
    /// in the default strict mode, else a copy whose gradient magnitudes
    /// are the cancelling ones.
    pub fn judging(&self, cancellation: Cancellation) -> Cow<'_, Oracle> {
        if cancellation == self.cancellation {
            return Cow::Borrowed(self);
        }
        let mut oracle = self.clone();
        oracle.cancellation = cancellation;
        Cow::Owned(oracle)
    }

    /// The magnitude `S` of a derivative the tolerances scale with, in
    /// this oracle's mode.
    pub fn magnitude(&self, dual: &Dual) -> f64 {
        dual.magnitude_in(self.cancellation)
    }

    /// The finite differences of `case` (the case this oracle is of),
    /// computed on the first call and kept.
    pub fn finite_differences(&self, case: &Case<f64>) -> &[oracles::FiniteDifference] {
        self.finite_differences.get_or_init(|| {
            oracles::finite_differences(&case.problem(), case.network.params().as_slice())
        })
    }

    /// The rounding bound of the loss in precision `T`, for `copies`
    /// computations that each round.
    fn loss_tolerance<T: Scalar>(&self, copies: f64) -> f64 {
        copies * rounding_bound::<T>(self.depth, self.loss_magnitude)
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
        let Some(location) = architecture.locate(i) else {
            continue;
        };
        let tolerance = copies * rounding_bound::<T>(oracle.depth, oracle.magnitude(dual));
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
    let estimates = oracle.finite_differences(case);
    let architecture = case.network.architecture();
    for (i, ((&actual, estimate), dual)) in gradient
        .as_slice()
        .iter()
        .zip(estimates)
        .zip(&oracle.gradient)
        .enumerate()
    {
        if estimate.near_kink {
            report.exclude();
            continue;
        }
        let Some(location) = architecture.locate(i) else {
            continue;
        };
        let tolerance =
            2.0 * estimate.error + rounding_bound::<f64>(oracle.depth, oracle.magnitude(dual));
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
        let tolerance =
            rounding_bound::<f64>(oracle.depth, oracle.magnitude(&exact)) + dot_rounding;
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
    let loss_tolerance = oracle.loss_tolerance::<T>(2.0);
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
        oracle.loss_tolerance::<f32>(1.0),
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
/// when `2 m B` is a power of two every correct order of summation and
/// scaling is exact, so the loss must be too; otherwise the tolerance is the
/// rounding bound `2 k u S` of the loss's own terms, which grows with their
/// number like every other bound. For softmax cross-entropy with one-hot
/// targets the loss is `ln m`, within the same bound. A loss off by a
/// constant factor, consistent with its own gradient, fails here.
pub fn golden_loss<T: Scalar>(
    backend: &mut dyn Backend<T>,
    architecture: &Architecture,
    rows: usize,
) -> CheckReport {
    let mut report = CheckReport::new(CheckKind::GoldenLoss);
    let case = match golden_case::<T>(architecture, rows) {
        Ok(case) => case,
        Err(e) => return CheckReport::failed(CheckKind::GoldenLoss, e),
    };
    let loss = match loss_and_gradient(backend, &case) {
        Ok((loss, _)) => loss.to_f64(),
        Err(e) => return CheckReport::failed(CheckKind::GoldenLoss, e),
    };
    let m = architecture.output_width();
    let expected = match architecture.loss() {
        Loss::Mse => {
            let output = golden_output(architecture);
            let sum: f64 = case
                .targets
                .iter()
                .map(|y| (y.to_f64() - output).powi(2))
                .sum();
            sum / (2 * m * rows) as f64
        }
        Loss::SoftmaxCrossEntropy => (m as f64).ln(),
    };
    let exact = architecture.loss() == Loss::Mse && (2 * m * rows).is_power_of_two();
    let tolerance = if exact {
        0.0
    } else {
        Oracle::of(&case).loss_tolerance::<T>(2.0)
    };
    report.compare(Quantity::Loss, loss, expected, tolerance);
    report
}

/// The all-zero network of `architecture` on `rows` inputs and `{0, 1}` targets
/// (one-hot for softmax cross-entropy).
fn golden_case<T: Scalar>(
    architecture: &Architecture,
    rows: usize,
) -> Result<Case<T>, backprop_core::Error> {
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
    Case::new(network, inputs, targets, rows)
}

/// What an all-zero network outputs: `act_L(0)`, a half for a sigmoid
/// output and zero for every other activation.
fn golden_output(architecture: &Architecture) -> f64 {
    match architecture.activations()[architecture.layer_count() - 1] {
        Activation::Sigmoid => 0.5,
        Activation::Tanh | Activation::Relu | Activation::Identity => 0.0,
    }
}

/// The forward outputs `A^L` against the oracle's forward pass, within
/// `2 k u` times the magnitude of each output's terms; the loss the gradient
/// call returns against the loss of those very outputs (computed in `f64`),
/// within `2 k u` times the loss's magnitude; and the outputs of a buffer
/// prefilled with NaN against one prefilled with garbage, bit for bit.
pub fn forward_outputs<T: Scalar>(
    backend: &mut dyn Backend<T>,
    case: &Case<T>,
    oracle: &Oracle,
) -> CheckReport {
    let mut report = CheckReport::new(CheckKind::Forward);
    let outputs = match (
        forward_over(backend, case, Prefill::Nan),
        forward_over(backend, case, Prefill::Garbage),
        loss_and_gradient(backend, case),
    ) {
        (Ok(nan), Ok(garbage), Ok((loss, _))) => {
            let m = case.network.architecture().output_width();
            for (i, (a, b)) in nan.iter().zip(&garbage).enumerate() {
                let quantity = Quantity::Output {
                    row: i / m,
                    col: i % m,
                };
                report.compare(quantity, a.to_f64(), b.to_f64(), 0.0);
            }
            let wide = widen(&nan);
            let problem_case = case.widened();
            let from_outputs = problem_case.problem().loss_of_outputs(&wide);
            report.compare(
                Quantity::LossOfOutputs,
                loss.to_f64(),
                from_outputs,
                oracle.loss_tolerance::<T>(2.0),
            );
            wide
        }
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            return CheckReport::failed(CheckKind::Forward, e);
        }
    };
    let exact: Vec<f64> = oracle.outputs.iter().map(|d| d.re).collect();
    compare_outputs::<T>(
        &mut report,
        case.network.architecture().output_width(),
        (&outputs, &exact),
        &oracle.outputs,
        oracle.depth,
        2.0,
    );
    report
}

/// Compares each output `actual[i]` with `expected[i]` (both `rows x m`,
/// row-major) into `report`, within `copies` times the rounding bound in
/// precision `T` of the terms `terms[i]` carries.
fn compare_outputs<T: Scalar>(
    report: &mut CheckReport,
    m: usize,
    (actual, expected): (&[f64], &[f64]),
    terms: &[Dual],
    depth: f64,
    copies: f64,
) {
    for (i, ((&actual, &expected), terms)) in actual.iter().zip(expected).zip(terms).enumerate() {
        let tolerance = copies * rounding_bound::<T>(depth, terms.value_magnitude);
        let quantity = Quantity::Output {
            row: i / m,
            col: i % m,
        };
        report.compare(quantity, actual, expected, tolerance);
    }
}

/// The learning rates of the SGD check's three steps, in order: neither a
/// power of two nor exact in `f32` (`0.3` rounds there to `0.300000012`),
/// so that an `f64` kernel that rounds them to `f32` moves every parameter
/// whose gradient is not zero visibly off; then one above 1, so that a
/// kernel that keeps the first rate from call to call is seen; then 0, for
/// which the parameters must stay as they were and the gradient still be
/// written.
pub const SGD_LEARNING_RATES: [f64; 3] = [0.3, 1.7, 0.0];

/// Three SGD steps in a row (however the backend runs them, fused or not),
/// in the same parameter, batch and gradient buffers, at the
/// [`SGD_LEARNING_RATES`], against the backend's own gradient followed by
/// the update, all in precision `T`. The first step is on the case; before
/// each of the others, as a training loop does, the parameters are
/// overwritten in place and the batch in its buffers, with the equivalent
/// problem of [`reused_buffers`] (units, features and samples rotated by one
/// place), and the step must give the first one's answers, moved. A kernel
/// that applies a gradient kept from its last call, skips a forward pass it
/// knows by the batch's address, or keeps a learning rate, is caught there.
/// Each step's loss and the gradient it leaves in the buffer are held within
/// `2 k u S`, and each updated parameter within `eta 2 k u S_i` (the
/// gradient's error, scaled) plus the rounding of the update itself,
/// `2 u (|theta_i| + eta |g_i|)`, with `eta` as `T` holds it. After each
/// step, the forward outputs of the updated network on the same batch are
/// held to the oracle's outputs at the updated parameters, within the bound
/// of [`forward_outputs`]: a kernel that gives the outputs it computed
/// before the update is seen.
pub fn sgd_step<T: Scalar>(
    backend: &mut dyn Backend<T>,
    case: &Case<T>,
    oracle: &Oracle,
) -> CheckReport {
    let kind = CheckKind::SgdStep;
    let mut report = CheckReport::new(kind);
    let (loss, gradient) = match loss_and_gradient(backend, case) {
        Ok(result) => result,
        Err(e) => return CheckReport::failed(kind, e),
    };
    let architecture = case.network.architecture();
    let expected = Step {
        loss: loss.to_f64(),
        gradient: widen(gradient.as_slice()),
        before: widen(case.network.params().as_slice()),
    };
    // One copy of the case, whose network every step updates in place and
    // whose batch buffers every step reads, and one gradient buffer.
    let mut stepped = case.clone();
    let equivalent = case_rotated(case);
    let mut step_gradient = Prefill::Nan.gradient(&stepped.network);
    for (index, eta) in SGD_LEARNING_RATES.into_iter().enumerate() {
        let eta = T::from_f64(eta);
        let rotated = index > 0;
        if rotated {
            if let Err(e) = load(&mut stepped, &equivalent) {
                return CheckReport::failed(kind, e);
            }
            step_gradient.as_mut_slice().fill(T::from_f64(f64::NAN));
        }
        let Case {
            network,
            inputs,
            targets,
            rows,
        } = &mut stepped;
        let step =
            backprop_core::Batch::from_slices(network.architecture(), *rows, inputs, targets)
                .and_then(|batch| backend.sgd_step(network, &batch, &mut step_gradient, eta));
        let step_loss = match step {
            Ok(step_loss) => step_loss,
            Err(e) => return CheckReport::failed(kind, e),
        };
        // A rotated step's answers, moved back to the case's layout.
        let case_layout = |values: &[T]| {
            if rotated {
                widen(&rotate_params(architecture, values, Direction::Back))
            } else {
                widen(values)
            }
        };
        expected.compare::<T>(
            &mut report,
            (architecture, oracle),
            eta.to_f64(),
            step_loss.to_f64(),
            &case_layout(step_gradient.as_slice()),
            &case_layout(stepped.network.params().as_slice()),
        );
        if let Err(e) = compare_updated_outputs(&mut report, backend, &stepped, oracle) {
            return CheckReport::failed(kind, e);
        }
    }
    report
}

/// The forward outputs of `stepped` (its network just updated in place, its
/// batch in the buffers the step read) against the oracle's outputs at its
/// parameters, within twice [`forward_outputs`]' bound, into `report`.
fn compare_updated_outputs<T: Scalar>(
    report: &mut CheckReport,
    backend: &mut dyn Backend<T>,
    stepped: &Case<T>,
    oracle: &Oracle,
) -> Result<(), String> {
    let outputs = forward_over(backend, stepped, Prefill::Nan)?;
    let wide = stepped.widened();
    let exact = wide
        .problem()
        .outputs(&constants(wide.network.params().as_slice()));
    let expected: Vec<f64> = exact.iter().map(|d| d.re).collect();
    compare_outputs::<T>(
        report,
        stepped.network.architecture().output_width(),
        (&widen(&outputs), &expected),
        &exact,
        oracle.depth,
        2.0 * 2.0,
    );
    Ok(())
}

/// What an SGD step from `before` must give: the backend's own loss and
/// gradient there, and the update by the step's learning rate.
struct Step {
    loss: f64,
    gradient: Vec<f64>,
    before: Vec<f64>,
}

impl Step {
    /// Compares a step's loss, the gradient it left and the parameters it
    /// updated by `eta` (all in the case's layout) with these, into `report`.
    fn compare<T: Scalar>(
        &self,
        report: &mut CheckReport,
        (architecture, oracle): (&Architecture, &Oracle),
        eta: f64,
        loss: f64,
        gradient: &[f64],
        after: &[f64],
    ) {
        report.compare(
            Quantity::Loss,
            loss,
            self.loss,
            oracle.loss_tolerance::<T>(2.0),
        );
        compare_gradient::<T>(report, architecture, gradient, &self.gradient, oracle, 2.0);
        for (i, (((&theta, &updated), &g), dual)) in self
            .before
            .iter()
            .zip(after)
            .zip(&self.gradient)
            .zip(&oracle.gradient)
            .enumerate()
        {
            let Some(location) = architecture.locate(i) else {
                continue;
            };
            let tolerance = eta * 2.0 * rounding_bound::<T>(oracle.depth, oracle.magnitude(dual))
                + 2.0 * T::UNIT_ROUNDOFF * (theta.abs() + eta * g.abs());
            report.compare(
                Quantity::Updated(location),
                updated,
                theta - eta * g,
                tolerance,
            );
        }
    }
}

/// The first-layer split of a kernel that offers it, against the kernel's
/// own whole gradient: the step that stops at `delta^1` returns the same
/// loss and the same gradient except the first layer's weights, which it
/// leaves unwritten (they must still hold the NaN they were prefilled
/// with), and two blocks of hidden units' rows of `delta^1^T X` give those
/// weights' gradient, from `delta^1` as the step wrote it (by sample) and
/// from its transpose (by unit). Tolerances `2 k u S`, as for two
/// computations in `T`.
pub fn first_layer_split<T: Scalar>(
    split: &mut dyn FirstLayerSplit<T>,
    case: &Case<T>,
    oracle: &Oracle,
) -> CheckReport {
    let kind = CheckKind::FirstLayerSplit;
    let hidden = case.network.architecture().layers()[0].outputs;
    let mut delta: Vec<T> = Prefill::Nan.values(case.rows * hidden);
    let mut gradient = Prefill::Nan.gradient(&case.network);
    let split_loss = case
        .batch()
        .and_then(|batch| GradientTask::new(&case.network, batch, &mut gradient))
        .and_then(|task| SplitGradientTask::new(task, &mut delta))
        .and_then(|task| split.run_gradient_but_first_weights(task));
    match split_loss {
        Ok(loss) => {
            let report = CheckReport::new(kind);
            let written = (loss, &gradient, (&delta[..], DeltaLayout::BySample));
            first_layer_report(report, split, case, oracle, written)
        }
        Err(e) => CheckReport::failed(kind, e),
    }
}

/// The first layer cut by hidden units, of a kernel that offers it, against
/// the kernel's own whole gradient: the first layer's activations and slopes
/// formed in two blocks of hidden units (every value written), the layers
/// above from them (`delta^1` by unit), and then as [`first_layer_split`].
/// Tolerances `2 k u S`.
pub fn first_layer_units<T: Scalar>(
    units: &mut dyn FirstLayerUnits<T>,
    case: &Case<T>,
    oracle: &Oracle,
) -> CheckReport {
    let kind = CheckKind::FirstLayerUnits;
    let mut report = CheckReport::new(kind);
    let (rows, hidden) = (case.rows, case.network.architecture().layers()[0].outputs);
    let mut activations: Vec<T> = Prefill::Nan.values(hidden * rows);
    let mut slopes: Vec<T> = Prefill::Nan.values(hidden * rows);
    let batch = match case.batch() {
        Ok(batch) => batch,
        Err(e) => return CheckReport::failed(kind, e),
    };
    for units_block in halves(hidden) {
        let values = units_block.start * rows..units_block.end * rows;
        let formed = FirstUnitsTask::new(
            Layers::of(&case.network),
            batch.inputs(),
            units_block,
            &mut activations[values.clone()],
            &mut slopes[values],
        )
        .and_then(|task| units.run_first_layer_units(task));
        if let Err(e) = formed {
            return CheckReport::failed(kind, e);
        }
    }
    // An unwritten activation or slope counts as 1 against an expected 0.
    for (i, value) in activations.iter().chain(&slopes).enumerate() {
        let unwritten = if value.to_f64().is_nan() { 1.0 } else { 0.0 };
        let (unit, sample) = (i % (hidden * rows) / rows, i % rows);
        report.compare(
            Quantity::FirstLayerFormed { unit, sample },
            unwritten,
            0.0,
            0.0,
        );
    }
    let mut delta: Vec<T> = Prefill::Nan.values(rows * hidden);
    let mut gradient = Prefill::Nan.gradient(&case.network);
    let above_loss = GradientTask::new(&case.network, batch, &mut gradient)
        .and_then(|task| SplitGradientTask::new(task, &mut delta))
        .and_then(|task| AboveFirstTask::new(task, &activations, &slopes))
        .and_then(|task| units.run_gradient_above_first(task));
    match above_loss {
        Ok(loss) => {
            let written = (loss, &gradient, (&delta[..], DeltaLayout::ByUnit));
            first_layer_report(report, units, case, oracle, written)
        }
        Err(e) => CheckReport::failed(kind, e),
    }
}

/// The two blocks of hidden units the first-layer checks cut a layer into.
fn halves(hidden: usize) -> [std::ops::Range<usize>; 2] {
    [0..hidden / 2, hidden / 2..hidden]
}

/// Adds to `report` the comparisons of a step that left the first layer's
/// weights out, `(loss, gradient, delta^1 and its layout)`, against
/// `split`'s own whole gradient: the loss, the weights left unwritten, and
/// the gradient with those weights formed in two blocks of hidden units,
/// from `delta^1` in its layout and in the other one.
fn first_layer_report<T: Scalar>(
    mut report: CheckReport,
    split: &mut dyn FirstLayerSplit<T>,
    case: &Case<T>,
    oracle: &Oracle,
    (split_loss, gradient, (delta, layout)): (T, &Params<T>, (&[T], DeltaLayout)),
) -> CheckReport {
    let kind = report.kind;
    let (loss, whole) = match loss_and_gradient(split, case) {
        Ok(result) => result,
        Err(e) => return CheckReport::failed(kind, e),
    };
    let architecture = case.network.architecture();
    let first = architecture.layers()[0];
    let (rows, n, hidden) = (case.rows, first.inputs, first.outputs);
    report.compare(
        Quantity::Loss,
        split_loss.to_f64(),
        loss.to_f64(),
        oracle.loss_tolerance::<T>(2.0),
    );
    let weights = first.weight_range();
    for (i, value) in gradient.as_slice()[weights.clone()].iter().enumerate() {
        let location = ParamLocation::Weight {
            layer: 0,
            row: i / n,
            col: i % n,
        };
        // A written value counts as 1 against an expected 0, with no tolerance.
        let written = if value.to_f64().is_nan() { 0.0 } else { 1.0 };
        report.compare(Quantity::Unwritten(location), written, 0.0, 0.0);
    }
    let expected = widen(whole.as_slice());
    let inputs = match MatrixRef::new(&case.inputs, rows, n) {
        Ok(inputs) => inputs,
        Err(e) => return CheckReport::failed(kind, e),
    };
    // `delta^1` in the other layout.
    let other_layout = match layout {
        DeltaLayout::BySample => DeltaLayout::ByUnit,
        DeltaLayout::ByUnit => DeltaLayout::BySample,
    };
    let at = |layout, (r, u): (usize, usize)| match layout {
        DeltaLayout::BySample => r * hidden + u,
        DeltaLayout::ByUnit => u * rows + r,
    };
    let mut other: Vec<T> = Prefill::Nan.values(rows * hidden);
    for sample_unit in (0..rows).flat_map(|r| (0..hidden).map(move |u| (r, u))) {
        other[at(other_layout, sample_unit)] = delta[at(layout, sample_unit)];
    }

    // The first layer's weight gradient in two blocks of hidden units, from
    // each layout of `delta^1`.
    for (delta, layout) in [(delta, layout), (&other[..], other_layout)] {
        let blocks = halves(hidden);
        let mut first_rows: Vec<T> = Prefill::Nan.values(hidden * n);
        let (top, bottom) = first_rows.split_at_mut(blocks[0].end * n);
        let delta = layout.matrix(delta, rows, hidden);
        for (units, out) in blocks.into_iter().zip([top, bottom]) {
            let task = delta.clone().and_then(|delta| {
                FirstWeightRowsTask::with_layout(layout, delta, inputs, units, out)
            });
            match task {
                Ok(mut task) => split.run_first_weight_rows(&mut task),
                Err(e) => return CheckReport::failed(kind, e),
            }
        }
        let mut actual = widen(gradient.as_slice());
        actual[weights.clone()].copy_from_slice(&widen(&first_rows));
        compare_gradient::<T>(&mut report, architecture, &actual, &expected, oracle, 2.0);
    }
    report
}

/// The batch gradient against the mean of the per-sample gradients, both
/// from the same backend in precision `T`; tolerance `2 k u S`.
///
/// A backend that declines batches of one row (one that takes only whole
/// vectors of samples, say) is held to the same law on the batch cut into
/// parts of the smallest size it takes that divides the batch, or, if it
/// takes none, on the batch twice over ([`Case::doubled`]), whose gradient
/// must be the batch's own (a weaker law: it cannot see samples misplaced
/// in a cycle). One that takes neither fails, naming the sizes asked.
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
    let parts = match law_parts(backend, case) {
        Ok(parts) => parts,
        Err(e) => return CheckReport::failed(CheckKind::BatchLaw, e),
    };
    // Each part's gradient is the mean over its rows: weighted by them.
    let total: usize = parts.iter().map(|part| part.rows).sum();
    let mut mean = vec![0.0; whole.len()];
    for part in &parts {
        match loss_and_gradient(backend, part) {
            Ok((_, gradient)) => {
                for (sum, g) in mean.iter_mut().zip(gradient.as_slice()) {
                    *sum += g.to_f64() / total as f64 * part.rows as f64;
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

/// The parts [`batch_law`] compares the batch of `case` with: its samples
/// one by one, or parts of the smallest size `backend` takes that divides
/// the batch, or the batch twice over; an error naming the sizes asked if
/// `backend` declines them all.
fn law_parts<T: Scalar>(
    backend: &mut dyn Backend<T>,
    case: &Case<T>,
) -> Result<Vec<Case<T>>, String> {
    let rows = case.rows;
    if rows == 1 {
        return Ok(vec![case.sample(0)]);
    }
    let architecture = case.network.architecture();
    let mut asked = Vec::new();
    for size in (1..rows).filter(|size| rows.is_multiple_of(*size)) {
        if declined_at(backend, architecture, size).is_none() {
            let parts = (0..rows / size).map(|part| case.samples(part * size..(part + 1) * size));
            return Ok(parts.collect());
        }
        asked.push(size);
    }
    let doubled = rows.saturating_mul(2);
    if declined_at(backend, architecture, doubled).is_none() {
        return Ok(vec![case.doubled()]);
    }
    asked.push(doubled);
    Err(format!(
        "the batch law needs batches of another size than {rows} rows, and the backend declined {asked:?} rows"
    ))
}

/// `runs` repeated calls on one backend give bit-identical loss and
/// gradient, whatever the gradient buffer held before (NaN or garbage, in
/// turn): a kernel that reads the buffer it should overwrite fails.
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
    for run in 1..runs {
        let prefill = if run % 2 == 1 {
            Prefill::Garbage
        } else {
            Prefill::Nan
        };
        match loss_and_gradient_over(backend, case, prefill) {
            Ok(again) => compare_bits(&mut report, case.network.architecture(), &first, &again),
            Err(e) => return CheckReport::failed(CheckKind::Determinism, e),
        }
    }
    report
}

/// The loss, the gradient and the forward outputs on the case and then on
/// an equivalent problem, each loaded in place into the very buffers of the
/// calls before it, as a training loop loads each batch and updates the
/// parameters in place. A kernel that keeps something of the parameters or
/// of the batch from one call to the next and knows it again by where it
/// lies computes with stale values here.
///
/// 1. A decoy ([`Case::decoy`]: parameters halved, half the input features
///    zero, targets one-hot) goes into the buffers first and the kernel is
///    called on it; then the case is loaded into the same buffers, and its
///    answers are held to the oracle: the loss within `2 k u S`, the
///    gradient within `k u S`, as in the `dual` and `f32/f64` checks, and
///    the outputs within [`forward_outputs`]' bound. A kernel that notes a
///    property of the contents (one-hot targets, zero features) by address
///    answers the case as if it were the decoy.
/// 2. Then the equivalent problem: every layer's units, the input features
///    and the samples rotated by one place (see `rotation.rs`), which moves
///    each gradient component and output to another place and leaves its
///    value and its terms as they were. A kernel that keeps a packed copy of
///    the weights or a transpose of the inputs computes with the case's
///    values. Moved back, the answers are held to the kernel's own answers
///    on the case: `2 k u S` for the loss and the gradient, and twice the
///    bound of [`forward_outputs`] for each output, as for two computations
///    in `T`.
pub fn reused_buffers<T: Scalar>(
    backend: &mut dyn Backend<T>,
    case: &Case<T>,
    oracle: &Oracle,
) -> CheckReport {
    let kind = CheckKind::ReusedBuffers;
    let mut report = CheckReport::new(kind);
    let architecture = case.network.architecture();
    let (rows, m) = (case.rows, architecture.output_width());
    if let Err(e) = case.batch() {
        return CheckReport::failed(kind, e);
    }
    // One copy of the case: every call reads its buffers.
    let mut reused = case.decoy();
    let first = answers(backend, &reused)
        .and_then(|_| load(&mut reused, case).map_err(|e| e.to_string()))
        .and_then(|()| answers(backend, &reused));
    let first = match first {
        Ok(first) => first,
        Err(e) => return CheckReport::failed(kind, e),
    };
    let exact = Answers {
        loss: oracle.loss,
        gradient: oracle.gradient.iter().map(|d| d.eps).collect(),
        outputs: oracle.outputs.iter().map(|d| d.re).collect(),
    };
    let first = Answers {
        loss: first.0.to_f64(),
        gradient: widen(first.1.as_slice()),
        outputs: widen(&first.2),
    };
    first.compare::<T>(&mut report, architecture, &exact, oracle, [2.0, 1.0, 2.0]);
    let rotated = case_rotated(case);
    if let Err(e) = load(&mut reused, &rotated) {
        return CheckReport::failed(kind, e);
    }
    let (loss, gradient, outputs) = match answers(backend, &reused) {
        Ok(again) => again,
        Err(e) => return CheckReport::failed(kind, e),
    };
    let again = Answers {
        loss: loss.to_f64(),
        gradient: widen(&rotate_params(
            architecture,
            gradient.as_slice(),
            Direction::Back,
        )),
        outputs: widen(&rotate_rows(&outputs, rows, m, Direction::Back)),
    };
    again.compare::<T>(&mut report, architecture, &first, oracle, [2.0, 2.0, 4.0]);
    report
}

/// A loss, a gradient and forward outputs, in `f64` and in the case's layout.
struct Answers {
    loss: f64,
    gradient: Vec<f64>,
    outputs: Vec<f64>,
}

impl Answers {
    /// Compares these with `expected` into `report`, each within `copies`
    /// (for the loss, the gradient and the outputs, in that order) times the
    /// rounding bound of its terms in precision `T`.
    fn compare<T: Scalar>(
        &self,
        report: &mut CheckReport,
        architecture: &Architecture,
        expected: &Answers,
        oracle: &Oracle,
        [loss_copies, gradient_copies, output_copies]: [f64; 3],
    ) {
        report.compare(
            Quantity::Loss,
            self.loss,
            expected.loss,
            oracle.loss_tolerance::<T>(loss_copies),
        );
        compare_gradient::<T>(
            report,
            architecture,
            &self.gradient,
            &expected.gradient,
            oracle,
            gradient_copies,
        );
        compare_outputs::<T>(
            report,
            architecture.output_width(),
            (&self.outputs, &expected.outputs),
            &oracle.outputs,
            oracle.depth,
            output_copies,
        );
    }
}

/// `case`'s equivalent problem: every layer's units, the input features and
/// the samples rotated by one place (see `rotation.rs`).
fn case_rotated<T: Scalar>(case: &Case<T>) -> Case<T> {
    let architecture = case.network.architecture();
    let (rows, n, m) = (
        case.rows,
        architecture.input_width(),
        architecture.output_width(),
    );
    let mut rotated = case.clone();
    let moved = rotate_params(
        architecture,
        case.network.params().as_slice(),
        Direction::Forward,
    );
    rotated.network.param_values_mut().copy_from_slice(&moved);
    rotated.inputs = rotate_rows(&case.inputs, rows, n, Direction::Forward);
    rotated.targets = rotate_rows(&case.targets, rows, m, Direction::Forward);
    rotated
}

/// Overwrites `into`'s parameters in place (through `update_params`, as a
/// training step does) and its batch buffers with `from`'s values, which
/// must have the same shapes.
fn load<T: Scalar>(into: &mut Case<T>, from: &Case<T>) -> Result<(), backprop_core::Error> {
    into.network
        .update_params(|values| values.copy_from_slice(from.network.params().as_slice()))?;
    into.inputs.copy_from_slice(&from.inputs);
    into.targets.copy_from_slice(&from.targets);
    Ok(())
}

/// A backend's loss, gradient and forward outputs on a case, in that order
/// of calls, into buffers prefilled with NaN.
fn answers<T: Scalar>(
    backend: &mut dyn Backend<T>,
    case: &Case<T>,
) -> Result<(T, Params<T>, Vec<T>), String> {
    let (loss, gradient) = loss_and_gradient(backend, case)?;
    let outputs = forward_over(backend, case, Prefill::Nan)?;
    Ok((loss, gradient, outputs))
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
        if let Some(location) = architecture.locate(i) {
            report.compare(Quantity::Param(location), a.to_f64(), b.to_f64(), 0.0);
        }
    }
}

/// The gradient against the exact one, norm-wise, where units saturate:
/// `||g - g*|| / ||g*||` in the 2-norm, with `g*` the `f64` dual-number
/// gradient of the very values the backend sees (so in `f32` only the
/// backend's arithmetic differs), over the components whose exact value is a
/// normal number of `T` (below that a value has no relative precision to
/// keep).
///
/// Tolerance: the component-wise bounds `k u S_i` taken norm-wise,
/// `2 k u ||S|| / ||g*||` (`2` for [`ROUNDING_SAFETY`]), in the oracle's
/// mode. Held strictly, a kernel that forms its slopes from `z` stays
/// within a few units of roundoff of the exact gradient; one that forms
/// `a (1 - a)` loses whole components where `a` rounds to 1 and fails,
/// while the allowance's `||S||` is large enough to accept it.
pub fn saturation<T: Scalar>(
    backend: &mut dyn Backend<T>,
    case: &Case<T>,
    oracle: &Oracle,
) -> CheckReport {
    let mut report = CheckReport::new(CheckKind::Saturation);
    let gradient = match loss_and_gradient(backend, case) {
        Ok((_, gradient)) => widen(gradient.as_slice()),
        Err(e) => return CheckReport::failed(CheckKind::Saturation, e),
    };
    let (mut error, mut exact, mut magnitude) = (0.0f64, 0.0f64, 0.0f64);
    for (&actual, dual) in gradient.iter().zip(&oracle.gradient) {
        if dual.eps.abs() < T::SMALLEST_NORMAL {
            continue;
        }
        error += (actual - dual.eps).powi(2);
        exact += dual.eps.powi(2);
        magnitude += oracle.magnitude(dual).powi(2);
    }
    if exact > 0.0 {
        let exact = exact.sqrt();
        report.compare(
            Quantity::RelativeError,
            error.sqrt() / exact,
            0.0,
            rounding_bound::<T>(oracle.depth, magnitude.sqrt()) / exact,
        );
    }
    report
}
