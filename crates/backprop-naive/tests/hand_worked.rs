//! The seed network (2-2-2, sigmoid, MSE) on one sample, with every derivative written out by hand.
//!
//! Two outputs, so that the source derivation's scalar step 1 (which sums
//! every output's error) would give a different answer here.

use backprop_core::{Architecture, Backend, Batch, Network, Params};
use backprop_naive::NaiveBackend;

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

#[test]
fn seed_network_gradient_matches_the_chain_rule_written_out() {
    let (x1, x2) = (0.5, -1.0);
    let (y1, y2) = (1.0, 0.0);
    let (w1_11, w1_12, w1_21, w1_22, b1_1, b1_2) = (0.1, 0.2, -0.3, 0.4, 0.05, -0.05);
    let (w2_11, w2_12, w2_21, w2_22, b2_1, b2_2) = (0.5, -0.6, 0.7, 0.8, 0.1, -0.2);

    // Forward.
    let a1_1 = sigmoid(w1_11 * x1 + w1_12 * x2 + b1_1);
    let a1_2 = sigmoid(w1_21 * x1 + w1_22 * x2 + b1_2);
    let a2_1 = sigmoid(w2_11 * a1_1 + w2_12 * a1_2 + b2_1);
    let a2_2 = sigmoid(w2_21 * a1_1 + w2_22 * a1_2 + b2_2);
    // J = 1/(2 m B) sum (y - a)^2 with m = 2, B = 1.
    let loss = ((y1 - a2_1).powi(2) + (y2 - a2_2).powi(2)) / 4.0;

    // Step 1, corrected: dJ/da_j = (a_j - y_j) / m, each output its own error.
    let d2_1 = (a2_1 - y1) / 2.0 * a2_1 * (1.0 - a2_1);
    let d2_2 = (a2_2 - y2) / 2.0 * a2_2 * (1.0 - a2_2);
    // Hidden deltas through W^2 and the hidden sigmoid's derivative.
    let d1_1 = (d2_1 * w2_11 + d2_2 * w2_21) * a1_1 * (1.0 - a1_1);
    let d1_2 = (d2_1 * w2_12 + d2_2 * w2_22) * a1_2 * (1.0 - a1_2);
    let expected = [
        d1_1 * x1,
        d1_1 * x2,
        d1_2 * x1,
        d1_2 * x2,
        d1_1,
        d1_2, // W^1, b^1
        d2_1 * a1_1,
        d2_1 * a1_2,
        d2_2 * a1_1,
        d2_2 * a1_2,
        d2_1,
        d2_2, // W^2, b^2
    ];

    let architecture = Architecture::seed(2, 2, 2).unwrap();
    let params = Params::from_values(
        &architecture,
        vec![
            w1_11, w1_12, w1_21, w1_22, b1_1, b1_2, w2_11, w2_12, w2_21, w2_22, b2_1, b2_2,
        ],
    )
    .unwrap();
    let network = Network::new(architecture.clone(), params).unwrap();
    let (inputs, targets) = ([x1, x2], [y1, y2]);
    let batch = Batch::from_slices(&architecture, 1, &inputs, &targets).unwrap();
    let mut gradient = network.zero_gradient();
    let computed = NaiveBackend::new()
        .loss_and_gradient(&network, &batch, &mut gradient)
        .unwrap();

    assert!(
        (computed - loss).abs() <= 4.0 * f64::EPSILON * loss,
        "{computed} vs {loss}"
    );
    for (i, (g, e)) in gradient.as_slice().iter().zip(expected).enumerate() {
        assert!(
            (g - e).abs() <= 8.0 * f64::EPSILON * e.abs().max(1e-3),
            "component {i}: {g} vs {e}"
        );
    }
    // The errata's summed error would be (a2_1 - y1 + a2_2 - y2) / 2 for both outputs.
    let errata_d2_1 = (a2_1 - y1 + a2_2 - y2) / 2.0 * a2_1 * (1.0 - a2_1);
    assert!((gradient.as_slice()[10] - errata_d2_1).abs() > 1e-3);

    // One SGD step returns the loss before it and moves every parameter by
    // -eta times that gradient.
    let mut stepped = network.clone();
    let mut step_gradient = network.zero_gradient();
    let eta = 0.5;
    let returned = NaiveBackend::new()
        .sgd_step(&mut stepped, &batch, &mut step_gradient, eta)
        .unwrap();
    assert_eq!(returned, computed);
    for (i, ((after, before), g)) in stepped
        .params()
        .as_slice()
        .iter()
        .zip(network.params().as_slice())
        .zip(gradient.as_slice())
        .enumerate()
    {
        assert_eq!(*after, before - eta * g, "parameter {i}");
    }
}
