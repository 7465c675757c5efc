//! Activation values and derivatives at the edges: overflow-free limits and the ReLU kink.

use backprop::Activation;

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
        assert!(Activation::Sigmoid.derivative(z, a).is_finite());
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
    assert_eq!(Activation::Tanh.derivative(1000.0f64, 1.0), 0.0);
}

#[test]
fn relu_derivative_at_zero_is_zero() {
    assert_eq!(Activation::Relu.derivative(0.0f64, 0.0), 0.0);
    assert_eq!(Activation::Relu.derivative(0.0f32, 0.0), 0.0);
    assert_eq!(Activation::Relu.derivative(-0.0f64, 0.0), 0.0);
    assert_eq!(Activation::Relu.derivative(1e-300f64, 1e-300), 1.0);
    assert_eq!(Activation::Relu.derivative(-1e-300f64, 0.0), 0.0);
    assert_eq!(Activation::Relu.value(-3.0f64), 0.0);
    assert_eq!(Activation::Relu.value(3.0f64), 3.0);
}

#[test]
fn derivatives_match_their_definitions() {
    for z in [-2.0f64, -0.5, 0.25, 1.5] {
        let s = 1.0 / (1.0 + (-z).exp());
        let a = Activation::Sigmoid.value(z);
        assert!((Activation::Sigmoid.derivative(z, a) - s * (1.0 - s)).abs() < 1e-15);
        let t = z.tanh();
        assert!(
            (Activation::Tanh.derivative(z, Activation::Tanh.value(z)) - (1.0 - t * t)).abs()
                < 1e-15
        );
        assert_eq!(Activation::Identity.derivative(z, z), 1.0);
    }
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
    for loss in backprop::Loss::ALL {
        let name = loss.to_string();
        assert_eq!(name, loss.name());
        assert!(!name.is_empty());
        assert_eq!(name.parse::<backprop::Loss>().unwrap(), loss);
    }
    assert_eq!(backprop::Loss::Mse.to_string(), "mse");
    assert_eq!(Activation::Sigmoid.to_string(), "sigmoid");
}
