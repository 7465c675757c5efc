//! Gradient oracles in `f64`: Richardson-extrapolated central differences and dual numbers.

use crate::forward::Problem;
use crate::real::Dual;

/// One component's finite-difference estimate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FiniteDifference {
    /// The Richardson-extrapolated derivative.
    pub value: f64,
    /// The oracle's own error estimate: the extrapolation's truncation
    /// estimate plus the rounding error of the differences.
    pub error: f64,
    /// Whether a ReLU pre-activation changed sign within the steps used, so
    /// that the function is not smooth there and the estimate means nothing.
    pub near_kink: bool,
}

/// The cube root of `f64`'s machine epsilon: the step that balances the
/// truncation and rounding errors of a central difference.
const STEP_SCALE: f64 = 6.055_454_452_393_343e-6;

/// Central differences with step `h = cbrt(eps) * max(1, |theta_i|)` and
/// `h/2`, combined by Richardson extrapolation `(4 D(h/2) - D(h)) / 3`.
///
/// The error estimate is `|R - D(h/2)|` (which bounds the truncation error of
/// the extrapolated value when the `h^4` term is smaller than the `h^2` one)
/// plus `3 k u F / h`, the rounding error of the four loss values, with
/// `F` the largest loss magnitude seen and `k` the number of sums in one loss
/// evaluation.
pub fn finite_differences(problem: &Problem<'_>, params: &[f64]) -> Vec<FiniteDifference> {
    let mut point = params.to_vec();
    let mut base_signs = Vec::new();
    problem.loss_recording_relu_signs(&point, Some(&mut base_signs));
    let sums_per_loss = (problem.rows + problem.architecture.widths().iter().sum::<usize>()) as f64;
    let mut signs = Vec::new();
    (0..params.len())
        .map(|i| {
            let theta = params[i];
            let raw_step = STEP_SCALE * theta.abs().max(1.0);
            // A step that is exactly representable as a difference of parameters.
            let step = (theta + raw_step) - theta;
            let mut near_kink = false;
            let mut largest = 0.0f64;
            let mut evaluate = |offset: f64| {
                point[i] = theta + offset;
                signs.clear();
                let value = problem.loss_recording_relu_signs(&point, Some(&mut signs));
                near_kink |= signs != base_signs;
                largest = largest.max(value.abs());
                value
            };
            let wide = (evaluate(step) - evaluate(-step)) / (2.0 * step);
            let narrow = (evaluate(step / 2.0) - evaluate(-step / 2.0)) / step;
            point[i] = theta;
            let value = (4.0 * narrow - wide) / 3.0;
            let rounding = 3.0 * sums_per_loss * f64::EPSILON / 2.0 * largest / step;
            FiniteDifference {
                value,
                error: (value - narrow).abs() + rounding,
                near_kink,
            }
        })
        .collect()
}

/// The directional derivative `J'(theta) . direction` by one dual-number pass.
pub fn directional_derivative(problem: &Problem<'_>, params: &[f64], direction: &[f64]) -> Dual {
    let point: Vec<Dual> = params
        .iter()
        .zip(direction)
        .map(|(&theta, &v)| Dual::new(theta, v))
        .collect();
    problem.loss(&point)
}

/// Every gradient component by one dual-number pass each, seeded with unit vectors.
pub fn dual_gradient(problem: &Problem<'_>, params: &[f64]) -> Vec<Dual> {
    let mut point: Vec<Dual> = params.iter().map(|&theta| Dual::new(theta, 0.0)).collect();
    (0..params.len())
        .map(|i| {
            point[i] = Dual::new(params[i], 1.0);
            let derivative = problem.loss(&point);
            point[i] = Dual::new(params[i], 0.0);
            derivative
        })
        .collect()
}
