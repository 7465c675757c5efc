//! Negative controls: deliberately wrong kernels must be rejected by the same checks the real backends pass.

use backprop::{Activation, Architecture, Loss, NaiveBackend};
use backprop_verify::matrix::saturating_cells;
use backprop_verify::suite::{all_passed, check_f32, check_f64, describe};
use backprop_verify::{
    Case, CheckKind, CheckReport, Control, ControlBackend, Flaw, Flawed, OutputFlaw,
};

/// Cases where every control's mistake is visible: more than one output,
/// non-square layers, non-identity hidden activations, more than one row.
fn cases() -> Vec<Case<f64>> {
    let sigmoid = Architecture::seed(4, 5, 3).unwrap();
    let deep = Architecture::new(
        &[3, 6, 4, 2],
        &[Activation::Tanh, Activation::Sigmoid, Activation::Sigmoid],
        Loss::Mse,
    )
    .unwrap();
    let softmax = Architecture::with_hidden_and_output(
        &[5, 7, 4],
        Activation::Tanh,
        Activation::Identity,
        Loss::SoftmaxCrossEntropy,
    )
    .unwrap();
    vec![
        Case::random(sigmoid, 4, 1),
        Case::random(deep, 3, 2),
        Case::random(softmax, 5, 3),
    ]
}

/// [`cases`] and the matrix's cases whose units saturate, where only the
/// control that forms its slopes from the rounded activation shows.
fn cases_with_saturation() -> Vec<Case<f64>> {
    let saturating = saturating_cells(1)
        .unwrap()
        .into_iter()
        .map(|cell| cell.case);
    cases().into_iter().chain(saturating).collect()
}

fn failed_checks(reports: &[CheckReport]) -> Vec<CheckKind> {
    reports
        .iter()
        .filter(|r| !r.passed())
        .map(|r| r.kind)
        .collect()
}

#[test]
fn every_f64_control_is_rejected_by_some_check() {
    for control in Control::all(1e-6) {
        let mut caught = Vec::new();
        for case in cases_with_saturation() {
            let reports = check_f64(&mut *control.backend::<f64>(), &case, 5);
            caught.extend(failed_checks(&reports));
        }
        assert!(!caught.is_empty(), "control '{control}' passed every check");
    }
}

#[test]
fn every_f32_control_is_rejected_by_some_check() {
    // In f32 the smallest scale error a check can see is about 1e-5.
    for control in Control::all(1e-3) {
        let caught = cases_with_saturation()
            .iter()
            .any(|case| !all_passed(&check_f32(&mut *control.backend::<f32>(), case)));
        assert!(caught, "f32 control '{control}' passed every check");
    }
}

#[test]
fn forward_rows_permuted_with_a_right_gradient_is_caught_by_the_forward_check() {
    for case in cases() {
        let mut flawed = Flawed::new(NaiveBackend::new(), OutputFlaw::ForwardRowsPermuted);
        let reports = check_f64(&mut flawed, &case, 5);
        assert_eq!(
            failed_checks(&reports),
            [CheckKind::Forward],
            "{}",
            describe(&reports)
        );
    }
}

#[test]
fn the_literal_scalar_step_one_is_caught_by_both_oracles() {
    let case = &cases()[0];
    let reports = check_f64(
        &mut ControlBackend::<f64>::new(Flaw::ScalarStepOne),
        case,
        5,
    );
    let failed = failed_checks(&reports);
    for kind in [
        CheckKind::FiniteDifferences,
        CheckKind::DualNumbers,
        CheckKind::AgreesWithNaive,
    ] {
        assert!(
            failed.contains(&kind),
            "{kind} missed it:\n{}",
            describe(&reports)
        );
    }
}

#[test]
fn a_gradient_off_by_one_part_in_a_million_is_caught_by_both_oracles() {
    for case in cases() {
        let reports = check_f64(
            &mut Flawed::new(NaiveBackend::new(), OutputFlaw::ScaledGradient(1e-6)),
            &case,
            5,
        );
        let failed = failed_checks(&reports);
        for kind in [
            CheckKind::FiniteDifferences,
            CheckKind::DualNumbers,
            CheckKind::Directional,
        ] {
            assert!(
                failed.contains(&kind),
                "{kind} missed it:\n{}",
                describe(&reports)
            );
        }
    }
}

#[test]
fn a_gradient_off_by_one_part_in_a_hundred_million_is_caught_by_dual_numbers() {
    for case in cases() {
        let reports = check_f64(
            &mut Flawed::new(NaiveBackend::new(), OutputFlaw::ScaledGradient(1e-8)),
            &case,
            5,
        );
        assert!(
            failed_checks(&reports).contains(&CheckKind::DualNumbers),
            "{}",
            describe(&reports)
        );
    }
}

#[test]
fn a_consistently_doubled_loss_is_caught_by_the_golden_value() {
    for case in cases()
        .into_iter()
        .filter(|c| c.network.architecture().loss() == Loss::Mse)
    {
        let reports = check_f64(
            &mut Flawed::new(NaiveBackend::new(), OutputFlaw::ConsistentlyScaled(2.0)),
            &case,
            5,
        );
        let failed = failed_checks(&reports);
        assert!(
            failed.contains(&CheckKind::GoldenLoss),
            "{}",
            describe(&reports)
        );
        assert!(
            !failed.contains(&CheckKind::BatchLaw),
            "{}",
            describe(&reports)
        );
        assert!(
            !failed.contains(&CheckKind::Determinism),
            "{}",
            describe(&reports)
        );
    }
}
