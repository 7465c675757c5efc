//! Kernels built for some problems only: the cells they decline are reported as declined, never passed.

use backprop::{
    Activation, Architecture, Backend, Error, ForwardTask, GradientTask, Loss, NaiveBackend,
};
use backprop_verify::{CheckKind, Conformance, Control, Flaw, Matrix, conformance_tests};

/// A kernel, `inner`, that declines every architecture `accepts` refuses:
/// from its forward passes always, from its gradients too if
/// `declines_gradients`.
struct Picky {
    inner: Box<dyn Backend<f64>>,
    accepts: fn(&Architecture) -> Result<(), String>,
    declines_gradients: bool,
}

impl Picky {
    /// The reference kernel, declining what `accepts` refuses from both calls.
    fn naive(accepts: fn(&Architecture) -> Result<(), String>) -> Self {
        Picky {
            inner: Box::new(NaiveBackend::new()),
            accepts,
            declines_gradients: true,
        }
    }

    fn check(&self, architecture: &Architecture) -> Result<(), Error> {
        (self.accepts)(architecture).map_err(|reason| Error::Unsupported {
            backend: "picky",
            reason,
        })
    }
}

impl Backend<f64> for Picky {
    fn name(&self) -> &'static str {
        "picky"
    }

    fn run_forward(&mut self, task: ForwardTask<'_, f64>) -> Result<(), Error> {
        self.check(task.layers().network().architecture())?;
        self.inner.run_forward(task)
    }

    fn run_loss_and_gradient(&mut self, task: GradientTask<'_, f64>) -> Result<f64, Error> {
        if self.declines_gradients {
            self.check(task.layers().network().architecture())?;
        }
        self.inner.run_loss_and_gradient(task)
    }
}

/// The quick conformance run of `make`'s kernel, without the wrapped controls.
fn quick_run<B: Backend<f64> + 'static>(
    name: &str,
    make: impl Fn() -> B + 'static,
) -> Conformance<f64> {
    Conformance::<f64>::new(name, make)
        .quick()
        .without_controls()
}

/// Widths up to 8, as a kernel whose tiles hold 8 values.
fn up_to_8(architecture: &Architecture) -> Result<(), String> {
    match architecture.widths().iter().find(|&&w| w > 8) {
        Some(w) => Err(format!("width {w} is past the 8 this kernel holds")),
        None => Ok(()),
    }
}

/// Only the 5-6-3 networks of the author's own shape below.
fn only_5_6_3(architecture: &Architecture) -> Result<(), String> {
    match architecture.widths() {
        [5, 6, 3] => Ok(()),
        widths => Err(format!("widths {widths:?} are not 5-6-3")),
    }
}

/// Everything but the widths of the matrix's own cells at the exponential's
/// limits (4-6-5-3 and 4-6-5-4).
fn not_4_6_5(architecture: &Architecture) -> Result<(), String> {
    match architecture.widths() {
        [4, 6, 5, _] => Err("widths 4-6-5-m are not supported".to_owned()),
        _ => Ok(()),
    }
}

/// Everything but the widths of the matrix's own softmax cells at the
/// exponential's limits (4-6-5-4).
fn not_4_6_5_4(architecture: &Architecture) -> Result<(), String> {
    match architecture.widths() {
        [4, 6, 5, 4] => Err("widths 4-6-5-4 are not supported".to_owned()),
        _ => Ok(()),
    }
}

/// Only 5-6-3 networks of sigmoid layers with MSE, as a kernel made for one network.
fn only_sigmoid_5_6_3(architecture: &Architecture) -> Result<(), String> {
    only_5_6_3(architecture)?;
    let sigmoid = architecture
        .activations()
        .iter()
        .all(|&activation| activation == Activation::Sigmoid);
    match (sigmoid, architecture.loss()) {
        (true, Loss::Mse) => Ok(()),
        _ => Err(format!("{architecture} is not sigmoid layers with MSE")),
    }
}

// The property tests draw other cases for those it declines; the matrix
// tests pass on the cells it accepts.
conformance_tests!(up_to_8_wide, f64: Picky::naive(up_to_8));

/// Only 5-6-3 networks of a ReLU layer then an identity one with MSE.
fn only_relu_identity_5_6_3(architecture: &Architecture) -> Result<(), String> {
    only_5_6_3(architecture)?;
    match (architecture.activations(), architecture.loss()) {
        ([Activation::Relu, Activation::Identity], Loss::Mse) => Ok(()),
        _ => Err(format!("{architecture} is not relu then identity with MSE")),
    }
}

// Kernels for one network: the property tests draw among the networks on
// its shape it accepts, and the matrix and the controls meet it there.
conformance_tests!(
    one_network,
    f64: Picky::naive(only_sigmoid_5_6_3),
    shapes: [("mine", &[5, 6, 3], 4)],
);
conformance_tests!(
    one_mixed_network,
    f64: Picky::naive(only_relu_identity_5_6_3),
    shapes: [("mine", &[5, 6, 3], 4)],
);

#[test]
fn an_unsupported_problem_names_the_kernel_and_its_reason() {
    let error = Error::Unsupported {
        backend: "tiles16",
        reason: "input width 300 is past the 256 its tiles hold".to_owned(),
    };
    assert_eq!(
        error.to_string(),
        "the tiles16 kernel does not support this problem: input width 300 is past the 256 its tiles hold"
    );
}

#[test]
fn declined_cells_are_listed_and_the_others_checked() {
    let picky = Conformance::<f64>::new("picky", || Picky::naive(up_to_8)).quick();
    let matrix = picky.matrix().unwrap();
    let wide = matrix
        .cells
        .iter()
        .filter(|cell| {
            cell.case
                .network
                .architecture()
                .widths()
                .iter()
                .any(|&w| w > 8)
        })
        .count();
    assert!(wide > 0 && wide < matrix.cells.len());
    let report = picky.run_on(&matrix, |_| {});
    assert_eq!(report.declined_cells(), wide);
    for cell in &report.cells {
        let declined = cell.declined.is_some();
        assert_eq!(declined, cell.checks.is_empty(), "{}", cell.shape);
        // A declined cell is not a passed one.
        assert_eq!(declined, !cell.passed(), "{}", cell.shape);
        if let Some(reason) = &cell.declined {
            assert!(
                reason.contains("is past the 8 this kernel holds"),
                "{reason}"
            );
        }
    }
    assert!(report.passed(), "{report}");
    let shown = report.to_string();
    assert!(
        shown.contains(&format!(
            "{wide} of {} cells declined by picky",
            matrix.cells.len()
        )),
        "{shown}"
    );
    assert!(
        shown.contains(&format!(
            "PASS ({} cells checked, {wide} declined",
            matrix.cells.len() - wide
        )),
        "{shown}"
    );
    let json = report.to_json();
    assert_eq!(json["declined_cells"], wide);
    let declined_json = json["cells"].as_array().unwrap().iter();
    assert!(
        declined_json
            .filter(|cell| cell["passed"].is_null())
            .count()
            == wide
    );
}

#[test]
fn a_kernel_that_declines_every_cell_fails() {
    let report = Conformance::<f64>::new("declines-all", || {
        Picky::naive(|_| Err("nothing".to_owned()))
    })
    .quick()
    .run()
    .unwrap();
    assert_eq!(report.declined_cells(), report.cells.len());
    assert!(!report.passed());
    assert!(report.row().ends_with("FAIL"), "{}", report.row());
    assert!(report.sensitivity().contains("no cell checked"));
    // The controls found no cell to run on, and so rejected nothing.
    assert!(!report.controls.is_empty());
    for control in &report.controls {
        assert_eq!(control.cells, 0);
        assert!(control.line().contains("NOT RUN"), "{}", control.line());
    }
}

#[test]
fn a_refusal_after_the_first_call_accepted_the_cell_is_a_failure() {
    let report = quick_run("declines-forward", || Picky {
        declines_gradients: false,
        ..Picky::naive(up_to_8)
    })
    .run()
    .unwrap();
    assert_eq!(report.declined_cells(), 0);
    assert!(!report.passed());
    // Run without controls, the verdict says so rather than "0 of 0".
    let shown = report.to_string();
    assert!(shown.contains("; no controls run;"), "{shown}");
    let failed = report.cells.iter().flat_map(|cell| &cell.checks);
    let forward = failed
        .filter(|check| check.kind == CheckKind::Forward && !check.passed())
        .count();
    assert!(forward > 0);
    let failures = report.failures(usize::MAX).join("\n");
    assert!(
        failures.contains("does not support this problem"),
        "{failures}"
    );
}

#[test]
fn a_kernel_for_the_authors_shape_alone_meets_the_limits_and_the_controls_there() {
    let report = Conformance::<f64>::new("only-5-6-3", || Picky::naive(only_5_6_3))
        .quick()
        .shape("mine", &[5, 6, 3], 4)
        .run()
        .unwrap();
    let checked: Vec<&str> = report
        .cells
        .iter()
        .filter(|cell| cell.declined.is_none())
        .map(|cell| cell.shape.as_str())
        .collect();
    assert!(checked.contains(&"mine"));
    assert!(checked.contains(&"saturated tanh mse at mine"));
    assert!(checked.contains(&"overflow sigmoid softmax-cross-entropy at mine"));
    assert!(checked.iter().all(|shape| shape.ends_with("mine")));
    assert!(report.passed(), "{report}");
    for control in &report.controls {
        assert_eq!(control.cells, checked.len(), "{}", control.line());
        assert!(control.rejected(), "{}", control.line());
    }
    // The premise: without the author's shape, no control cell is accepted.
    let matrix = Matrix::new(&[1], &[]).unwrap();
    assert!(
        matrix
            .control_cells()
            .all(|cell| only_5_6_3(cell.case.network.architecture()).is_err())
    );
}

#[test]
fn a_kernel_that_declines_the_cells_at_the_limits_fails_until_it_meets_them_at_a_shape_of_its_own()
{
    let run = |shapes: &[(&str, &[usize], usize)]| {
        let mut conformance = quick_run("not-4-6-5", || Picky::naive(not_4_6_5));
        for &(name, widths, rows) in shapes {
            conformance = conformance.shape(name, widths, rows);
        }
        conformance.run().unwrap()
    };
    let report = run(&[]);
    let mut unproven = report.unproven_limits();
    unproven.sort();
    let mut expected = vec![
        "overflowing identity softmax-cross-entropy".to_owned(),
        "overflowing relu softmax-cross-entropy".to_owned(),
    ];
    for kind in ["overflowing", "saturating"] {
        for network in ["sigmoid mse", "sigmoid softmax-cross-entropy", "tanh mse"] {
            expected.push(format!("{kind} {network}"));
        }
        expected.push(format!("{kind} tanh softmax-cross-entropy"));
    }
    expected.sort();
    assert_eq!(unproven, expected);
    assert!(!report.passed());
    let shown = report.to_string();
    assert!(
        shown.contains("FAIL: every saturating tanh mse cell declined"),
        "{shown}"
    );
    let report = run(&[("mine", &[5, 6, 3], 4)]);
    assert!(report.unproven_limits().is_empty());
    assert!(report.passed(), "{report}");
}

#[test]
fn a_wrong_kernel_that_declines_some_cells_still_fails_on_those_it_accepts() {
    // Slopes formed from the rounded activation show only where units
    // saturate: on the author's shape, once the matrix's own such cells
    // are declined.
    let report = quick_run("wrong-not-4-6-5", || Picky {
        inner: Control::Kernel(Flaw::SlopesFromActivation).backend::<f64>(),
        ..Picky::naive(not_4_6_5)
    })
    .shape("mine", &[5, 6, 3], 4)
    .run()
    .unwrap();
    assert!(report.declined_cells() > 0);
    assert!(report.unproven_limits().is_empty());
    assert!(!report.passed());
    let saturated_at_mine = report
        .cells
        .iter()
        .filter(|cell| cell.shape.starts_with("saturated") && cell.shape.ends_with("mine"));
    assert!(saturated_at_mine.clone().count() == 4);
    assert!(saturated_at_mine.clone().any(|cell| !cell.passed()));
}

#[test]
fn declining_the_softmax_cells_at_the_limits_alone_leaves_them_unproven() {
    // The MSE cells at the limits, checked, do not stand in for them.
    let report = quick_run("not-4-6-5-4", || Picky::naive(not_4_6_5_4))
        .run()
        .unwrap();
    let mut unproven = report.unproven_limits();
    unproven.sort();
    assert_eq!(
        unproven,
        [
            "overflowing identity softmax-cross-entropy",
            "overflowing relu softmax-cross-entropy",
            "overflowing sigmoid softmax-cross-entropy",
            "overflowing tanh softmax-cross-entropy",
            "saturating sigmoid softmax-cross-entropy",
            "saturating tanh softmax-cross-entropy"
        ]
    );
    assert!(!report.passed());
}

/// A wrong kernel (slopes from the rounded activation, softmax without its
/// largest logit taken out) that declines every zero-valued problem whose
/// architecture and batch size it has met before: the cells at the limits
/// on an author's shape come after the shape's own cells, so it would
/// decline just them.
struct DeclinesWhatItMetBefore {
    inner: Box<dyn Backend<f64>>,
    met: Vec<String>,
}

impl Backend<f64> for DeclinesWhatItMetBefore {
    fn name(&self) -> &'static str {
        "declines-what-it-met"
    }

    fn run_forward(&mut self, task: ForwardTask<'_, f64>) -> Result<(), Error> {
        self.inner.run_forward(task)
    }

    fn run_loss_and_gradient(&mut self, task: GradientTask<'_, f64>) -> Result<f64, Error> {
        let network = task.layers().network();
        let batch = task.batch();
        let zero = |values: &[f64]| values.iter().all(|&v| v == 0.0);
        if zero(network.params().as_slice()) && zero(batch.inputs().matrix().as_slice()) {
            let problem = format!("{} rows {}", network.architecture(), batch.rows());
            if self.met.contains(&problem) {
                return Err(Error::Unsupported {
                    backend: "declines-what-it-met",
                    reason: format!("{problem} met before"),
                });
            }
            self.met.push(problem);
        }
        self.inner.run_loss_and_gradient(task)
    }
}

#[test]
fn a_decline_that_changes_with_what_the_kernel_met_before_fails() {
    let report = quick_run("declines-what-it-met", || DeclinesWhatItMetBefore {
        inner: Control::Kernel(Flaw::SlopesFromActivation).backend::<f64>(),
        met: Vec::new(),
    })
    .shape("mine", &[5, 6, 3], 4)
    .run()
    .unwrap();
    assert!(!report.inconsistent_declines().is_empty());
    assert!(
        report
            .inconsistent_declines()
            .contains(&"5-6-3 [tanh,tanh] mse rows 4".to_owned()),
        "{:?}",
        report.inconsistent_declines()
    );
    assert!(!report.passed());
    let shown = report.to_string();
    assert!(
        shown.contains("declined in some cells and accepted in others"),
        "{shown}"
    );
}

/// Every network but those with a tanh layer.
fn no_tanh(architecture: &Architecture) -> Result<(), String> {
    match architecture.activations().contains(&Activation::Tanh) {
        true => Err("tanh is not supported".to_owned()),
        false => Ok(()),
    }
}

#[test]
fn a_kernel_that_declines_a_whole_kind_of_network_is_not_asked_for_its_limits() {
    let report = quick_run("no-tanh", || Picky::naive(no_tanh))
        .run()
        .unwrap();
    assert!(report.declined_cells() > 0);
    assert!(report.unproven_limits().is_empty(), "{report}");
    assert!(report.passed(), "{report}");
}

/// Networks with neither tanh nor sigmoid layers: ReLU and identity only.
fn relu_and_identity_only(architecture: &Architecture) -> Result<(), String> {
    let saturating = [Activation::Tanh, Activation::Sigmoid];
    match architecture
        .activations()
        .iter()
        .find(|a| saturating.contains(a))
    {
        Some(activation) => Err(format!("{activation} is not supported")),
        None => Ok(()),
    }
}

/// A kernel for ReLU and identity networks that forms the softmax as
/// `e^z / sum e^z`, without taking the largest logit out: the reference
/// kernel's answers wherever that is finite, and NaN, as such a kernel
/// returns, wherever a logit passes `ln` of the largest `f64` (709.78).
struct SoftmaxWithoutItsLargestLogit(Picky);

impl Backend<f64> for SoftmaxWithoutItsLargestLogit {
    fn name(&self) -> &'static str {
        "softmax-without-its-largest-logit"
    }

    fn run_forward(&mut self, task: ForwardTask<'_, f64>) -> Result<(), Error> {
        self.0.run_forward(task)
    }

    fn run_loss_and_gradient(&mut self, task: GradientTask<'_, f64>) -> Result<f64, Error> {
        let network = task.layers().network();
        let batch = task.batch();
        let mut logits = vec![0.0; batch.rows() * network.architecture().output_width()];
        self.0.forward(network, &batch.inputs(), &mut logits)?;
        let softmax = network.architecture().loss() == Loss::SoftmaxCrossEntropy;
        if softmax && logits.iter().any(|&z| z.exp().is_infinite()) {
            let (_, _, mut gradient) = task.into_parts();
            gradient.as_mut_slice().fill(f64::NAN);
            return Ok(f64::NAN);
        }
        self.0.run_loss_and_gradient(task)
    }
}

#[test]
fn a_relu_kernel_whose_softmax_overflows_is_caught_at_the_limits() {
    // Its ReLU and identity cells elsewhere keep their logits small; only
    // the overflowing cells of those networks show the mistake.
    let report = quick_run("softmax-without-its-largest-logit", || {
        SoftmaxWithoutItsLargestLogit(Picky::naive(relu_and_identity_only))
    })
    .run()
    .unwrap();
    assert!(report.declined_cells() > 0);
    assert!(report.unproven_limits().is_empty(), "{report}");
    let failed: Vec<&str> = report
        .cells
        .iter()
        .filter(|cell| cell.declined.is_none() && !cell.passed())
        .map(|cell| cell.shape.as_str())
        .collect();
    assert_eq!(
        failed,
        [
            "overflow relu softmax-cross-entropy",
            "overflow identity softmax-cross-entropy"
        ]
    );
    assert!(!report.passed());
    // The same kernel with the reference softmax passes.
    let report = quick_run("relu-and-identity", || Picky::naive(relu_and_identity_only))
        .run()
        .unwrap();
    assert!(report.passed(), "{report}");
}

/// A kernel, `inner`, that takes batches of whole vectors of 8 samples
/// alone, up to `largest` rows, as a SIMD kernel without a ragged edge
/// might, and declines the others from both calls.
struct WholeVectors {
    inner: Box<dyn Backend<f64>>,
    largest: usize,
}

impl WholeVectors {
    /// Whole vectors of the reference kernel, of any number.
    fn naive() -> Self {
        WholeVectors {
            inner: Box::new(NaiveBackend::new()),
            largest: usize::MAX,
        }
    }

    fn check(&self, rows: usize) -> Result<(), Error> {
        if rows.is_multiple_of(8) && rows <= self.largest {
            return Ok(());
        }
        Err(Error::Unsupported {
            backend: "whole-vectors",
            reason: format!(
                "a batch of {rows} rows is not a multiple of 8 up to {}",
                self.largest
            ),
        })
    }
}

impl Backend<f64> for WholeVectors {
    fn name(&self) -> &'static str {
        "whole-vectors"
    }

    fn run_forward(&mut self, task: ForwardTask<'_, f64>) -> Result<(), Error> {
        self.check(task.inputs().rows())?;
        self.inner.run_forward(task)
    }

    fn run_loss_and_gradient(&mut self, task: GradientTask<'_, f64>) -> Result<f64, Error> {
        self.check(task.batch().rows())?;
        self.inner.run_loss_and_gradient(task)
    }
}

/// The reference kernel's gradient summed over the batch, not averaged:
/// right on one row, wrong by the batch size elsewhere.
struct Summed(NaiveBackend<f64>);

impl Backend<f64> for Summed {
    fn name(&self) -> &'static str {
        "summed"
    }

    fn run_forward(&mut self, task: ForwardTask<'_, f64>) -> Result<(), Error> {
        self.0.run_forward(task)
    }

    fn run_loss_and_gradient(&mut self, mut task: GradientTask<'_, f64>) -> Result<f64, Error> {
        let rows = task.batch().rows() as f64;
        let loss = self.0.run_loss_and_gradient(task.reborrow())?;
        let (_, _, mut gradient) = task.into_parts();
        gradient.as_mut_slice().iter_mut().for_each(|g| *g *= rows);
        Ok(loss)
    }
}

#[test]
fn a_kernel_for_whole_vectors_of_samples_meets_the_golden_loss_and_the_batch_law_at_its_sizes() {
    let report = quick_run("whole-vectors", WholeVectors::naive)
        .shape("mine", &[4, 5, 3], 16)
        .run()
        .unwrap();
    assert!(report.passed(), "{report}");
    let checked: Vec<_> = report
        .cells
        .iter()
        .filter(|cell| cell.declined.is_none())
        .collect();
    assert!(checked.len() > 10, "{report}");
    assert!(checked.iter().all(|cell| cell.rows % 8 == 0));
    let kinds = |cell: &&backprop_verify::CellReport| -> Vec<CheckKind> {
        cell.checks.iter().map(|check| check.kind).collect()
    };
    assert!(checked.iter().all(|cell| {
        let kinds = kinds(cell);
        kinds.contains(&CheckKind::GoldenLoss) && kinds.contains(&CheckKind::BatchLaw)
    }));

    // The law on parts of 8 rows (16 rows) and on the batch twice over (8
    // rows) still fails a gradient summed over the batch, which the single
    // rows would have shown.
    let summed = || WholeVectors {
        inner: Box::new(Summed(NaiveBackend::new())),
        ..WholeVectors::naive()
    };
    for rows in [8, 16] {
        let case = backprop_verify::Case::random(Architecture::seed(4, 5, 3).unwrap(), rows, 1);
        let oracle = backprop_verify::Oracle::of(&case);
        let law = backprop_verify::checks::batch_law(&mut summed(), &case, &oracle);
        assert!(!law.passed(), "{rows} rows: {law}");
        let law = backprop_verify::checks::batch_law(&mut WholeVectors::naive(), &case, &oracle);
        assert!(law.passed(), "{rows} rows: {law}");
    }

    // A kernel of one batch size cannot meet the law: it fails, naming the
    // sizes it declined.
    let case = backprop_verify::Case::random(Architecture::seed(4, 5, 3).unwrap(), 8, 1);
    let oracle = backprop_verify::Oracle::of(&case);
    let mut only_8 = WholeVectors {
        largest: 8,
        ..WholeVectors::naive()
    };
    let law = backprop_verify::checks::batch_law(&mut only_8, &case, &oracle);
    let failure = law.failure.unwrap_or_default();
    assert!(failure.contains("declined [1, 2, 4, 16] rows"), "{failure}");
}
