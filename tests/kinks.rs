//! ReLU kinks: components whose finite differences cross a kink are excluded and counted, not passed.

use backprop::{Activation, Architecture, BackendKind, Loss};
use backprop_verify::{Case, Oracle, checks};

#[test]
fn components_at_a_relu_kink_are_excluded_and_counted() {
    let architecture = Architecture::with_hidden_and_output(
        &[3, 4, 2],
        Activation::Relu,
        Activation::Sigmoid,
        Loss::Mse,
    )
    .unwrap();
    let smooth = Case::random(architecture.clone(), 5, 9);
    let on_kink = smooth.clone().pin_first_neuron_at_kink();
    for kind in BackendKind::ALL {
        let mut backend = kind.create::<f64>();
        let away = checks::finite_differences(&mut *backend, &smooth, &Oracle::of(&smooth));
        assert_eq!(away.excluded, 0, "{away}");
        let report = checks::finite_differences(&mut *backend, &on_kink, &Oracle::of(&on_kink));
        // The pinned neuron's 3 weights and its bias move its pre-activation
        // off 0 when perturbed; the output weights reading it multiply a = 0
        // and cross no kink.
        assert_eq!(report.excluded, 4, "{report}");
        assert!(report.passed(), "{report}");
        assert_eq!(
            report.compared + report.excluded,
            architecture.param_count()
        );
        // Dual numbers need no exclusion: both sides use ReLU'(0) = 0.
        assert!(checks::dual_numbers(&mut *backend, &on_kink, &Oracle::of(&on_kink)).passed());
    }
}
