//! Gradients where units saturate: every built-in backend within a few units of roundoff of the exact value, and the two verifier modes.

use backprop::{BackendKind, Precision};
use backprop_verify::conformance::control_report;
use backprop_verify::matrix::saturating_cells;
use backprop_verify::{Cancellation, CheckKind, CheckPrecision, Control, Flaw, Matrix, checks};

/// The worst norm-wise relative error of `kind`'s gradient against the exact
/// one over the saturating cells, in precision `T`; every cell's saturation
/// check must pass.
fn worst_relative_error<T: Precision + CheckPrecision>(kind: BackendKind) -> f64 {
    let mut worst = 0.0f64;
    for cell in saturating_cells(1).unwrap() {
        let (case, oracle) = T::prepared(&cell);
        let report = checks::saturation(&mut *kind.create::<T>(), case, oracle);
        assert!(
            report.passed(),
            "{kind} {} {}: {report}",
            T::NAME,
            cell.shape
        );
        let error = report.worst.map(|w| w.actual).expect("a compared gradient");
        worst = worst.max(error);
    }
    worst
}

#[test]
fn every_builtin_backend_is_within_a_few_units_of_roundoff_where_units_saturate() {
    for kind in BackendKind::ALL {
        let (narrow, wide) = (
            worst_relative_error::<f32>(kind),
            worst_relative_error::<f64>(kind),
        );
        // Measured: at most 3.9e-6 in f32 and 7.3e-15 in f64.
        assert!(narrow <= 1e-5, "{kind} f32: {narrow:e}");
        assert!(wide <= 1e-13, "{kind} f64: {wide:e}");
    }
}

#[test]
fn slopes_from_the_rounded_activation_are_rejected_strictly_and_accepted_with_the_allowance() {
    let matrix = Matrix::new(&[1], &[]).unwrap();
    let control = Control::Kernel(Flaw::SlopesFromActivation);
    let report = |cancellation, wide: bool| {
        let name = control.to_string();
        if wide {
            control_report::<f64>(name, &mut *control.backend(), &matrix, cancellation)
        } else {
            control_report::<f32>(name, &mut *control.backend(), &matrix, cancellation)
        }
    };
    for wide in [true, false] {
        let strict = report(Cancellation::Forbidden, wide);
        assert!(
            strict.caught_by.contains(&CheckKind::Saturation),
            "{}",
            strict.line()
        );
        let allowed = report(Cancellation::Allowed, wide);
        assert!(!allowed.rejected(), "{}", allowed.line());
    }
}

#[test]
fn the_classic_slopes_lose_most_of_the_gradient_in_the_saturating_cells() {
    // What the saturation check sees of the control, cell by cell: the
    // relative error of slopes taken from the activation is of order 1.
    for cell in saturating_cells(1).unwrap() {
        let (case, oracle) = <f32 as CheckPrecision>::prepared(&cell);
        let mut control = Control::Kernel(Flaw::SlopesFromActivation).backend::<f32>();
        let report = checks::saturation(&mut *control, case, oracle);
        let error = report.worst.map(|w| w.actual).expect("a compared gradient");
        assert!(error > 0.1, "{}: {error:e}", cell.shape);
    }
}
