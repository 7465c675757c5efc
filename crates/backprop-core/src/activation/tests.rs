//! Activation values and slopes at the edges: overflow-free limits, the ReLU kink, and slopes that keep their accuracy in saturation.

use crate::{Activation, Loss};

#[test]
fn sigmoid_reaches_exact_limits_without_overflow() {
    assert_eq!(Activation::Sigmoid.value(1000.0f64), 1.0);
    assert_eq!(Activation::Sigmoid.value(-1000.0f64), 0.0);
    assert_eq!(Activation::Sigmoid.value(1000.0f32), 1.0);
    assert_eq!(Activation::Sigmoid.value(-1000.0f32), 0.0);
    assert_eq!(Activation::Sigmoid.value(0.0f64), 0.5);
    for z in [-1000.0f64, -50.0, -1.0, 0.0, 1.0, 50.0, 1000.0] {
        let a = Activation::Sigmoid.value(z);
        assert!(
            a.is_finite() && (0.0..=1.0).contains(&a),
            "sigmoid({z}) = {a}"
        );
        assert!(Activation::Sigmoid.slope(z).is_finite());
    }
}

#[test]
fn sigmoid_is_accurate_on_both_sides() {
    for z in [-30.0f64, -2.5, -0.1, 0.1, 2.5, 30.0] {
        let expected = 1.0 / (1.0 + (-z).exp());
        let a = Activation::Sigmoid.value(z);
        assert!(
            (a - expected).abs() <= 4.0 * f64::EPSILON * expected,
            "sigmoid({z})"
        );
        // sigma(-z) = 1 - sigma(z).
        let mirrored = Activation::Sigmoid.value(-z);
        assert!((a + mirrored - 1.0).abs() <= 4.0 * f64::EPSILON);
    }
}

#[test]
fn tanh_reaches_exact_limits_without_overflow() {
    assert_eq!(Activation::Tanh.value(1000.0f64), 1.0);
    assert_eq!(Activation::Tanh.value(-1000.0f64), -1.0);
    assert_eq!(Activation::Tanh.value(1000.0f32), 1.0);
    assert_eq!(Activation::Tanh.slope(1000.0f64), 0.0);
    assert_eq!(Activation::Tanh.slope(-1000.0f32), 0.0);
    assert_eq!(Activation::Sigmoid.slope(1000.0f64), 0.0);
}

#[test]
fn relu_slope_at_zero_is_zero() {
    assert_eq!(Activation::Relu.slope(0.0f64), 0.0);
    assert_eq!(Activation::Relu.slope(0.0f32), 0.0);
    assert_eq!(Activation::Relu.slope(-0.0f64), 0.0);
    assert_eq!(Activation::Relu.slope(1e-300f64), 1.0);
    assert_eq!(Activation::Relu.slope(-1e-300f64), 0.0);
    assert_eq!(Activation::Relu.value(-3.0f64), 0.0);
    assert_eq!(Activation::Relu.value(3.0f64), 3.0);
}

#[test]
fn slopes_match_their_definitions() {
    for z in [-2.0f64, -0.5, 0.25, 1.5] {
        let s = 1.0 / (1.0 + (-z).exp());
        assert!((Activation::Sigmoid.slope(z) - s * (1.0 - s)).abs() < 1e-15);
        let t = z.tanh();
        assert!((Activation::Tanh.slope(z) - (1.0 - t * t)).abs() < 1e-15);
        assert_eq!(Activation::Identity.slope(z), 1.0);
        for activation in Activation::ALL {
            let (value, slope) = activation.value_and_slope(z);
            assert_eq!(
                value.to_bits(),
                activation.value(z).to_bits(),
                "{activation}"
            );
            assert_eq!(
                slope.to_bits(),
                activation.slope(z).to_bits(),
                "{activation}"
            );
        }
    }
}

/// The exact slopes in `f64`: `1 / cosh^2 z` and `s(z) s(-z)`, with no
/// cancellation (the standard library's `cosh` and `exp` are accurate to
/// an ulp or two).
fn exact_slope(activation: Activation, z: f64) -> f64 {
    match activation {
        Activation::Tanh => 1.0 / z.cosh().powi(2),
        _ => {
            let e = (-z.abs()).exp();
            e / ((1.0 + e) * (1.0 + e))
        }
    }
}

#[test]
fn slopes_keep_their_relative_accuracy_where_units_saturate() {
    let sweep = || (0..=4000).map(|i| (i as f64 - 2000.0) / 20.0);
    for activation in [Activation::Tanh, Activation::Sigmoid] {
        let mut worst = (0.0f64, 0.0f64);
        for z in sweep() {
            let exact = exact_slope(activation, z);
            if exact >= f64::MIN_POSITIVE {
                let error = (activation.slope(z) - exact).abs() / exact;
                worst.0 = worst.0.max(error / f64::EPSILON);
            }
            let narrow = z as f32;
            let exact = exact_slope(activation, narrow as f64);
            if exact >= f32::MIN_POSITIVE as f64 {
                let error = (activation.slope(narrow) as f64 - exact).abs() / exact;
                worst.1 = worst.1.max(error / f32::EPSILON as f64);
            }
        }
        // Measured: at most a few units of epsilon in either type.
        assert!(worst.0 <= 8.0, "{activation} f64: {} eps", worst.0);
        assert!(worst.1 <= 8.0, "{activation} f32: {} eps", worst.1);
    }
}

#[test]
fn the_classic_slopes_cancel_where_these_do_not() {
    // f32 tanh at z = 9.5 rounds to 1, so 1 - a^2 is 0; the slope is 2.2e-8.
    let a = Activation::Tanh.value(9.5f32);
    assert_eq!(1.0 - a * a, 0.0);
    let slope = Activation::Tanh.slope(9.5f32);
    let exact = exact_slope(Activation::Tanh, 9.5);
    assert!(
        (slope as f64 / exact - 1.0).abs() < 1e-6,
        "{slope} vs {exact}"
    );
    // f64 tanh at z = 15.4: 1 - a^2 keeps no correct digit of 1.7e-13.
    let slope = Activation::Tanh.slope(15.4f64);
    assert!((slope / exact_slope(Activation::Tanh, 15.4) - 1.0).abs() < 1e-15);
    // f64 sigmoid at z = 40: a rounds to 1, a (1 - a) to 0; the slope is 4.2e-18.
    let a = Activation::Sigmoid.value(40.0f64);
    assert_eq!(a * (1.0 - a), 0.0);
    assert!(Activation::Sigmoid.slope(40.0f64) > 4.2e-18);
}

#[test]
fn names_round_trip() {
    for activation in Activation::ALL {
        assert_eq!(activation.to_string().parse::<Activation>(), Ok(activation));
    }
    let error = "softplus".parse::<Activation>().unwrap_err().to_string();
    assert!(
        error.contains("softplus") && error.contains("sigmoid, tanh, relu, identity"),
        "{error}"
    );
}

#[test]
fn names_print_and_parse_back() {
    for activation in Activation::ALL {
        let name = activation.to_string();
        assert_eq!(name, activation.name());
        assert!(!name.is_empty());
        assert_eq!(name.parse::<Activation>().unwrap(), activation);
    }
    for loss in Loss::ALL {
        let name = loss.to_string();
        assert_eq!(name, loss.name());
        assert!(!name.is_empty());
        assert_eq!(name.parse::<Loss>().unwrap(), loss);
    }
    assert_eq!(Loss::Mse.to_string(), "mse");
    assert_eq!(Activation::Sigmoid.to_string(), "sigmoid");
}
