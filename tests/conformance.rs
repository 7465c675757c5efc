//! The conformance kit on kernels that are right in another order, and on kernels that are wrong.

use backprop::{
    Architecture, Backend, Error, ForwardTask, GradientTask, Loss, NaiveBackend, Scalar,
};
use backprop_verify::matrix::Cell;
use backprop_verify::suite::describe;
use backprop_verify::{
    Cancellation, Case, CheckKind, CheckPrecision, Conformance, Flawed, Matrix, Oracle, OutputFlaw,
    checks, conformance,
};

/// The reference kernel, except that its loss is summed another way, as a
/// correct kernel may: `e^2 / (2m)` per element, rows summed last to first,
/// then scaled by `1/B`.
struct ReorderedLoss<T> {
    naive: NaiveBackend<T>,
    outputs: Vec<T>,
}

impl<T: Scalar> ReorderedLoss<T> {
    fn new() -> Self {
        ReorderedLoss {
            naive: NaiveBackend::new(),
            outputs: Vec::new(),
        }
    }
}

impl<T: Scalar> Backend<T> for ReorderedLoss<T> {
    fn name(&self) -> &'static str {
        "reordered-loss"
    }

    fn run_forward(&mut self, task: ForwardTask<'_, T>) -> Result<(), Error> {
        self.naive.run_forward(task)
    }

    fn run_loss_and_gradient(&mut self, mut task: GradientTask<'_, T>) -> Result<T, Error> {
        let loss = self.naive.run_loss_and_gradient(task.reborrow())?;
        let (layers, batch) = (task.layers(), task.batch());
        let architecture = layers.architecture();
        if architecture.loss() != Loss::Mse {
            return Ok(loss);
        }
        let m = architecture.output_width();
        self.outputs.resize(batch.rows() * m, T::ZERO);
        self.naive
            .forward(layers.network(), &batch.inputs(), &mut self.outputs)?;
        let scale = T::ONE / T::from_usize(2 * m);
        let mut sum = T::ZERO;
        for b in (0..batch.rows()).rev() {
            let targets = batch.targets().row(b).unwrap_or_default();
            for (a, y) in self.outputs[b * m..(b + 1) * m].iter().zip(targets) {
                let e = *y - *a;
                sum += e * e * scale;
            }
        }
        Ok(sum * (T::ONE / T::from_usize(batch.rows())))
    }
}

fn golden_and_forward_pass<T: CheckPrecision>(m: usize) {
    for rows in [3, 4] {
        let architecture = Architecture::seed(4, 3, m).unwrap();
        let mut kernel = ReorderedLoss::<T>::new();
        let golden = checks::golden_loss(&mut kernel, &architecture, rows);
        assert!(golden.passed(), "m = {m}, {rows} rows: {golden}");
        let case = Case::random(architecture, rows, 3).to_precision::<T>();
        let forward = checks::forward_outputs(&mut kernel, &case, &Oracle::of(&case));
        assert!(forward.passed(), "m = {m}, {rows} rows: {forward}");
    }
}

#[test]
fn a_loss_summed_in_another_order_passes_the_golden_and_forward_checks() {
    for m in [10, 100, 1000] {
        golden_and_forward_pass::<f32>(m);
        golden_and_forward_pass::<f64>(m);
    }
}

#[test]
fn a_doubled_loss_fails_the_golden_check_at_every_width() {
    for m in [1, 10, 100, 1000] {
        let architecture = Architecture::seed(4, 3, m).unwrap();
        for rows in [3, 4] {
            let mut doubled = Flawed::new(
                NaiveBackend::<f32>::new(),
                OutputFlaw::ConsistentlyScaled(2.0),
            );
            let report = checks::golden_loss(&mut doubled, &architecture, rows);
            assert!(!report.passed(), "m = {m}, {rows} rows: {report}");
        }
    }
}

#[test]
fn a_conformance_run_fails_a_kernel_off_by_one_part_in_a_billion() {
    let report = Conformance::<f64>::new("scaled", || {
        Flawed::new(NaiveBackend::new(), OutputFlaw::ScaledGradient(1e-9))
    })
    .quick()
    .without_controls()
    .run()
    .unwrap();
    assert!(!report.passed(), "{report}");
    let failed: Vec<CheckKind> = report
        .cells
        .iter()
        .flat_map(|cell| cell.checks.iter().filter(|r| !r.passed()).map(|r| r.kind))
        .collect();
    assert!(failed.contains(&CheckKind::DualNumbers), "{report}");
    // Its own gradient already fails, so scaling it further measures
    // nothing: the sensitivity line says so instead of quoting a bound.
    let sensitivity = report.sensitivity();
    assert!(
        sensitivity.contains("where dual rejects the gradient as it is are left out"),
        "{sensitivity}"
    );
    assert!(!sensitivity.contains("down to"), "{sensitivity}");
}

#[test]
fn a_conformance_run_passes_the_reference_and_reports_what_caught_each_control() {
    let report = Conformance::<f64>::new("naive", NaiveBackend::<f64>::new)
        .quick()
        .shape("mine", &[3, 2], 2)
        .run()
        .unwrap();
    assert!(report.passed(), "{report}");
    assert!(report.cells.iter().any(|cell| cell.shape == "mine"));
    // Scaled gradient, component off, bias dropped, rows permuted, loss doubled, kept by address.
    assert_eq!(report.controls.len(), 6);
    for control in &report.controls {
        assert!(control.rejected(), "{}", control.line());
    }
    // The sensitivity was measured on the backend's own output: the dual
    // check rejects a relative error of 1e-9 in every cell that can show one.
    assert!(report.detectable() <= 1e-9, "{}", report.sensitivity());
    let json = report.to_json();
    assert_eq!(json["passed"], true);
    assert_eq!(
        json["cells"].as_array().map(Vec::len),
        Some(report.cells.len())
    );
    let described = describe(&report.cells[0].checks);
    assert!(described.contains("dual"), "{described}");
}

#[test]
fn a_control_report_names_exactly_the_checks_that_failed_in_their_order_and_none_for_a_right_kernel()
 {
    let matrix = Matrix::new(&[1], &[]).unwrap();
    let report = |flaw: Option<OutputFlaw>| {
        let mut backend: Box<dyn Backend<f64>> = match flaw {
            Some(flaw) => Box::new(Flawed::new(NaiveBackend::new(), flaw)),
            None => Box::new(NaiveBackend::new()),
        };
        conformance::control_report::<f64>(
            "control".to_owned(),
            &mut *backend,
            &matrix,
            Cancellation::Forbidden,
        )
    };
    let permuted = report(Some(OutputFlaw::ForwardRowsPermuted));
    assert_eq!(
        permuted.caught_by,
        [
            CheckKind::Forward,
            CheckKind::SgdStep,
            CheckKind::ReusedBuffers
        ]
    );
    assert_eq!(permuted.cells, matrix.control_cells().count());
    let right = report(None);
    assert!(right.caught_by.is_empty() && !right.rejected());
    assert!(right.line().contains("ACCEPTED"), "{}", right.line());
}

#[test]
fn the_sensitivity_is_measured_where_only_a_check_other_than_the_oracle_fails() {
    // Rows permuted in the forward outputs: the forward check fails, the
    // gradient is right, and how small an error dual still sees is measured.
    let architecture = Architecture::seed(4, 5, 3).unwrap();
    let matrix = Matrix {
        cells: vec![Cell::new("seed", 1, Case::random(architecture, 6, 1))],
    };
    let report = Conformance::<f64>::new("permuted", || {
        Flawed::new(NaiveBackend::new(), OutputFlaw::ForwardRowsPermuted)
    })
    .without_controls()
    .run_on(&matrix, |_| {});
    assert!(!report.passed());
    assert_eq!(report.already_rejected_cells(), 0);
    assert!(report.detectable() <= 1e-9, "{}", report.sensitivity());
}
