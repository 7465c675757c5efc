//! Gradient oracles in `f64`: Richardson-extrapolated central differences and dual numbers.

use rayon::prelude::*;

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
    let mut base_signs = Vec::new();
    problem.loss_recording_relu_signs(params, Some(&mut base_signs));
    let sums_per_loss = (problem.rows + problem.architecture.widths().iter().sum::<usize>()) as f64;
    // Each component moves one parameter of a copy of the point (one copy
    // per rayon job), so the components are independent and computed in
    // parallel, each exactly as it would be alone.
    (0..params.len())
        .into_par_iter()
        .map_init(
            || (params.to_vec(), Vec::new()),
            |(point, signs), i| {
                let theta = params[i];
                let raw_step = STEP_SCALE * theta.abs().max(1.0);
                // A step that is exactly representable as a difference of parameters.
                let step = (theta + raw_step) - theta;
                let mut near_kink = false;
                let mut largest = 0.0f64;
                let mut evaluate = |offset: f64| {
                    point[i] = theta + offset;
                    signs.clear();
                    let value = problem.loss_recording_relu_signs(point, Some(&mut *signs));
                    near_kink |= *signs != base_signs;
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
            },
        )
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

/// Every gradient component by one dual-number pass each, seeded with unit
/// vectors: independent passes, computed in parallel.
pub fn dual_gradient(problem: &Problem<'_>, params: &[f64]) -> Vec<Dual> {
    let unseeded = || -> Vec<Dual> { params.iter().map(|&theta| Dual::new(theta, 0.0)).collect() };
    (0..params.len())
        .into_par_iter()
        .map_init(unseeded, |point, i| {
            point[i] = Dual::new(params[i], 1.0);
            let derivative = problem.loss(point);
            point[i] = Dual::new(params[i], 0.0);
            derivative
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use backprop_core::{Activation, Architecture, Loss};

    /// `a = w . x + b` on two samples of two features, MSE: small enough to
    /// differentiate by hand.
    fn linear_problem(architecture: &Architecture) -> Problem<'_> {
        Problem {
            architecture,
            inputs: &[1.0, 2.0, 3.0, -1.0],
            targets: &[0.5, -1.0],
            rows: 2,
        }
    }

    fn linear_architecture() -> Architecture {
        Architecture::new(&[2, 1], &[Activation::Identity], Loss::Mse)
            .expect("a valid architecture")
    }

    #[test]
    fn both_oracles_match_a_gradient_worked_by_hand() {
        let architecture = linear_architecture();
        let problem = linear_problem(&architecture);
        // w = (1/4, -1/2), b = 1/8. The residuals a - y are -9/8 and 19/8,
        // J = (81/64 + 361/64) / 4, and dJ/dtheta = (1/2) sum (a - y) (x, 1):
        // (-9/8 + 57/8) / 2, (-18/8 - 19/8) / 2, (-9/8 + 19/8) / 2.
        let params = [0.25, -0.5, 0.125];
        let exact = [3.0, -2.3125, 0.625];
        assert_eq!(problem.loss(&params), 442.0 / 256.0);
        let duals = dual_gradient(&problem, &params);
        // Every value here is a short binary fraction: the dual pass is exact.
        assert_eq!(duals.iter().map(|d| d.eps).collect::<Vec<_>>(), exact);
        let estimates = finite_differences(&problem, &params);
        assert_eq!(estimates.len(), exact.len());
        for (estimate, exact) in estimates.iter().zip(exact) {
            assert!(!estimate.near_kink);
            assert!(estimate.error < 1e-8, "error estimate {}", estimate.error);
            assert!(
                (estimate.value - exact).abs() <= estimate.error,
                "{} against {exact}, error estimate {}",
                estimate.value,
                estimate.error
            );
        }
    }

    #[test]
    fn the_finite_difference_error_estimate_is_the_documented_rounding_term_on_a_quadratic() {
        let architecture = linear_architecture();
        let inputs: Vec<f64> = (0..16).map(|i| (i as f64 * 0.37).sin()).collect();
        let targets: Vec<f64> = (0..8).map(|i| (i as f64 * 0.53).cos()).collect();
        let problem = Problem {
            architecture: &architecture,
            inputs: &inputs,
            targets: &targets,
            rows: 8,
        };
        // On a quadratic loss the differences have no truncation error, so
        // the estimate is the rounding term of the docs, `3 k u F / h`, plus
        // the differences' own rounding noise, a fraction of it: k = 8 rows
        // + 3 widths = 11 sums, F the largest loss seen (J to within a part
        // in 10^4 here), h = cbrt(eps) max(1, |theta|), with one parameter
        // above 1.
        let params = [2.5, -0.5, 0.125];
        let loss = problem.loss(&params);
        let estimates = finite_differences(&problem, &params);
        assert_eq!(estimates.len(), params.len());
        for (estimate, theta) in estimates.iter().zip(params) {
            let step = f64::EPSILON.cbrt() * theta.abs().max(1.0);
            let rounding = 3.0 * 11.0 * (f64::EPSILON / 2.0) * loss / step;
            let ratio = estimate.error / rounding;
            assert!((0.999..1.5).contains(&ratio), "theta {theta}: {ratio}");
        }
    }

    #[test]
    fn the_dual_pass_matches_the_sigmoids_derivative_written_out() {
        let architecture = Architecture::new(&[1, 1], &[Activation::Sigmoid], Loss::Mse)
            .expect("a valid architecture");
        let (x, y, w, b) = (0.75, 0.25, 1.5, -0.5);
        let problem = Problem {
            architecture: &architecture,
            inputs: &[x],
            targets: &[y],
            rows: 1,
        };
        // J = (a - y)^2 / 2 with a = 1 / (1 + e^-(w x + b)), so
        // dJ/dw = (a - y) a (1 - a) x and dJ/db = (a - y) a (1 - a).
        let a = 1.0 / (1.0 + (-(w * x + b)).exp());
        let slope = (a - y) * a * (1.0 - a);
        let duals = dual_gradient(&problem, &[w, b]);
        assert_eq!(duals.len(), 2);
        for (dual, exact) in duals.iter().zip([slope * x, slope]) {
            assert!((dual.eps - exact).abs() <= 4.0 * f64::EPSILON * exact.abs());
        }
    }

    #[test]
    fn the_oracles_give_the_same_bits_on_one_thread_and_on_several() {
        let architecture = Architecture::new(
            &[3, 4, 2],
            &[Activation::Tanh, Activation::Sigmoid],
            Loss::Mse,
        )
        .expect("a valid architecture");
        let inputs: Vec<f64> = (0..15).map(|i| (i as f64 * 0.37).sin()).collect();
        let targets: Vec<f64> = (0..10).map(|i| (i as f64 * 0.53).cos()).collect();
        let problem = Problem {
            architecture: &architecture,
            inputs: &inputs,
            targets: &targets,
            rows: 5,
        };
        let params: Vec<f64> = (0..architecture.param_count())
            .map(|i| (i as f64 * 0.71).sin() / 2.0)
            .collect();
        let on = |threads| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("a thread pool");
            pool.install(|| {
                (
                    dual_gradient(&problem, &params),
                    finite_differences(&problem, &params),
                )
            })
        };
        // Every value's bits, so that -0 and 0 differ and NaN equals itself.
        let bits = |(duals, estimates): (Vec<Dual>, Vec<FiniteDifference>)| {
            let duals = duals.iter().flat_map(|d| {
                [
                    d.re,
                    d.eps,
                    d.value_magnitude,
                    d.magnitude,
                    d.cancelling_magnitude,
                ]
                .map(f64::to_bits)
            });
            let estimates = estimates
                .iter()
                .flat_map(|e| [e.value.to_bits(), e.error.to_bits(), u64::from(e.near_kink)]);
            duals.chain(estimates).collect::<Vec<u64>>()
        };
        let (one, three) = (bits(on(1)), bits(on(3)));
        assert_eq!(one.len(), 8 * architecture.param_count());
        assert_eq!(one, three);
    }
}
