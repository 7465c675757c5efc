//! The loss values and gradients: known values, and softmax-CE's gradient where a logit dominates.

use crate::{Error, Loss};

#[test]
fn mse_values_and_gradients_are_the_seed_derivation_s() {
    // J_b = sum (y - a)^2 / (2m), dJ/da = (a - y) / (m B).
    let (a, y) = ([0.5, 1.0, -1.0], [1.0, 0.0, -1.0]);
    assert_eq!(Loss::Mse.sample_value(&a, &y).unwrap(), 1.25 / 6.0);
    let mut gradient = [0.0; 3];
    Loss::Mse
        .output_gradient(&a, &y, 0.5, &mut gradient)
        .unwrap();
    assert_eq!(gradient, [-0.5 / 6.0, 1.0 / 6.0, 0.0]);
}

#[test]
fn softmax_values_and_gradients_match_their_definitions() {
    // Targets that sum to 1.5, not 1: the gradient is p s - y with s = 1.5.
    let (z, y) = ([1.0, -0.5, 2.0, 0.25], [0.1, 0.2, 0.3, 0.9]);
    let sum: f64 = z.iter().map(|z: &f64| z.exp()).sum();
    let p: Vec<f64> = z.iter().map(|z| z.exp() / sum).collect();
    let mass: f64 = y.iter().sum();
    let value: f64 = -y.iter().zip(&p).map(|(y, p)| y * p.ln()).sum::<f64>();
    let loss = Loss::SoftmaxCrossEntropy;
    assert!((loss.sample_value(&z, &y).unwrap() - value).abs() < 1e-14);
    let mut gradient = [0.0; 4];
    loss.output_gradient(&z, &y, 0.25, &mut gradient).unwrap();
    for i in 0..4 {
        let expected = (p[i] * mass - y[i]) * 0.25;
        assert!((gradient[i] - expected).abs() < 1e-16, "{i}: {gradient:?}");
    }
}

#[test]
fn a_dominant_logit_keeps_its_gradient_in_softmax_cross_entropy() {
    // Logits 40 apart: p_0 rounds to 1 in both precisions, and p_0 - 1 to 0.
    let (z, y) = ([0.0, -40.0, -45.0], [1.0, 0.0, 0.0]);
    let mut gradient = [0.0; 3];
    Loss::SoftmaxCrossEntropy
        .output_gradient(&z, &y, 1.0, &mut gradient)
        .unwrap();
    let rest = (-40.0f64).exp() + (-45.0f64).exp();
    let exact = [
        -rest / (1.0 + rest),
        (-40.0f64).exp() / (1.0 + rest),
        (-45.0f64).exp() / (1.0 + rest),
    ];
    for (g, e) in gradient.iter().zip(exact) {
        assert!(
            (g / e - 1.0).abs() < 4.0 * f64::EPSILON,
            "{gradient:?} vs {exact:?}"
        );
    }
    let (z32, mut gradient32) = ([0.0f32, -40.0, -45.0], [0.0f32; 3]);
    Loss::SoftmaxCrossEntropy
        .output_gradient(&z32, &[1.0, 0.0, 0.0], 1.0, &mut gradient32)
        .unwrap();
    for (g, e) in gradient32.iter().zip(exact) {
        assert!(
            (*g as f64 / e - 1.0).abs() < 4.0 * f32::EPSILON as f64,
            "{gradient32:?}"
        );
    }
    // The largest logit's target 0, another's 1: no cancellation either way.
    let y = [0.0, 1.0, 0.0];
    Loss::SoftmaxCrossEntropy
        .output_gradient(&z, &y, 0.5, &mut gradient)
        .unwrap();
    assert!((gradient[0] / (0.5 / (1.0 + rest)) - 1.0).abs() < 4.0 * f64::EPSILON);
    assert!((gradient[1] / (0.5 * (exact[1] - 1.0)) - 1.0).abs() < 4.0 * f64::EPSILON);
}

#[test]
fn tied_largest_logits_share_the_gradient_as_the_textbook_form_does() {
    let (z, y) = ([3.0, 3.0, -1.0], [0.5, 0.5, 0.0]);
    let mut gradient = [0.0; 3];
    Loss::SoftmaxCrossEntropy
        .output_gradient(&z, &y, 1.0, &mut gradient)
        .unwrap();
    let sum = 2.0 + (-4.0f64).exp();
    let textbook = [1.0 / sum - 0.5, 1.0 / sum - 0.5, (-4.0f64).exp() / sum];
    for (g, t) in gradient.iter().zip(textbook) {
        assert!(
            (g - t).abs() < 4.0 * f64::EPSILON,
            "{gradient:?} vs {textbook:?}"
        );
    }
}

#[test]
fn the_dominant_logit_is_found_wherever_it_is() {
    // The largest logit in the middle of the row, 40 ahead: its gradient is
    // -r / (1 + r), which only the form without cancellation keeps.
    let (z, y) = ([-45.0, 0.0, -40.0], [0.0, 1.0, 0.0]);
    let mut gradient = [0.0; 3];
    Loss::SoftmaxCrossEntropy
        .output_gradient(&z, &y, 1.0, &mut gradient)
        .unwrap();
    let rest = (-40.0f64).exp() + (-45.0f64).exp();
    let exact = -rest / (1.0 + rest);
    assert!(
        (gradient[1] / exact - 1.0).abs() < 4.0 * f64::EPSILON,
        "{gradient:?}"
    );
}

#[test]
fn lengths_that_differ_or_are_zero_are_errors_naming_them() {
    let softmax = Loss::SoftmaxCrossEntropy;
    let empty: &[f64] = &[];
    assert_eq!(
        softmax.sample_value(empty, empty).unwrap_err(),
        Error::SampleLength {
            what: "outputs",
            expected: 1,
            found: 0
        }
    );
    // Lengths that differ are not cut to the shortest.
    let (z, y) = ([0.5, 1.0, -1.0], [1.0, 0.0]);
    for loss in Loss::ALL {
        assert_eq!(
            loss.sample_value(&z, &y).unwrap_err(),
            Error::SampleLength {
                what: "targets",
                expected: 3,
                found: 2
            }
        );
        let mut gradient = [0.0; 3];
        assert_eq!(
            loss.output_gradient(&z, &y, 1.0, &mut gradient)
                .unwrap_err(),
            Error::SampleLength {
                what: "targets",
                expected: 3,
                found: 2
            }
        );
        let mut gradient = [0.0; 2];
        assert_eq!(
            loss.output_gradient(&z, &z, 1.0, &mut gradient)
                .unwrap_err(),
            Error::SampleLength {
                what: "output gradients",
                expected: 3,
                found: 2
            }
        );
    }
}
