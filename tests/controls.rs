//! Negative controls: deliberately wrong kernels must be rejected by the same checks the real backends pass.

use backprop::{
    AboveFirstTask, Activation, Architecture, Backend, Batch, DeltaLayout, Error, FirstLayerSplit,
    FirstLayerUnits, FirstUnitsTask, FirstWeightRowsTask, ForwardTask, GradientTask, Loss,
    MatrixRef, NaiveBackend, Network, ParamLocation, Params, SgdTask, SimdBackend,
    SplitGradientTask,
};
use backprop_verify::checks;
use backprop_verify::matrix::saturating_cells;
use backprop_verify::report::Quantity;
use backprop_verify::suite::{all_passed, check_f32, check_f64, describe};
use backprop_verify::{
    Case, CheckKind, CheckReport, Control, ControlBackend, Flaw, Flawed, Oracle, OutputFlaw,
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

/// Answers `task` with the naive backend's loss and gradient of `network`
/// on `batch`, which a wrong kernel puts in place of the task's own; the
/// gradient is returned too.
fn answer_with(
    task: GradientTask<'_, f64>,
    network: &Network<f64>,
    batch: &Batch<'_, f64>,
) -> Result<(f64, Params<f64>), Error> {
    let mut whole = network.zero_gradient();
    let loss = NaiveBackend::new().loss_and_gradient(network, batch, &mut whole)?;
    let (_, _, mut gradient) = task.into_parts();
    gradient.as_mut_slice().copy_from_slice(whole.as_slice());
    Ok((loss, whole))
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
fn forward_rows_permuted_with_a_right_gradient_is_caught_by_the_checks_of_forward_outputs_alone() {
    for case in cases() {
        let mut flawed = Flawed::new(NaiveBackend::new(), OutputFlaw::ForwardRowsPermuted);
        let reports = check_f64(&mut flawed, &case, 5);
        // The SGD check reads the outputs after a step, and the
        // reused-buffers check compares them too: rows reversed in the
        // rotated problem are not the first answer's rows reversed.
        assert_eq!(
            failed_checks(&reports),
            [
                CheckKind::Forward,
                CheckKind::SgdStep,
                CheckKind::ReusedBuffers
            ],
            "{}",
            describe(&reports)
        );
    }
}

#[test]
fn an_answer_kept_by_address_is_caught_by_the_reused_buffers_check() {
    for case in cases() {
        let mut flawed = Flawed::new(NaiveBackend::new(), OutputFlaw::KeptByAddress);
        let reports = check_f64(&mut flawed, &case, 5);
        // Right on every fresh buffer, it fails only where values change in
        // place: the reused buffers and the second of two SGD steps.
        assert_eq!(
            failed_checks(&reports),
            [CheckKind::SgdStep, CheckKind::ReusedBuffers],
            "{}",
            describe(&reports)
        );
        let mut flawed = Flawed::new(NaiveBackend::new(), OutputFlaw::KeptByAddress);
        let reports = check_f32(&mut flawed, &case);
        assert!(
            failed_checks(&reports).contains(&CheckKind::ReusedBuffers),
            "{}",
            describe(&reports)
        );
    }
}

/// A kernel that packs a copy of the first layer's weights and refreshes it
/// only when the weights' buffer moves: the "pack once" cache with the
/// wrong key, right on every fresh network and wrong in a training loop.
struct PacksWeightsOnce {
    packed: Option<(usize, Vec<f64>)>,
}

impl Backend<f64> for PacksWeightsOnce {
    fn name(&self) -> &'static str {
        "packs-weights-once"
    }

    fn run_forward(&mut self, task: ForwardTask<'_, f64>) -> Result<(), Error> {
        NaiveBackend::new().run_forward(task)
    }

    fn run_loss_and_gradient(&mut self, task: GradientTask<'_, f64>) -> Result<f64, Error> {
        let network = task.layers().network();
        let weights =
            &network.params().as_slice()[..network.architecture().layers()[0].weight_range().end];
        let address = weights.as_ptr() as usize;
        let packed = match &mut self.packed {
            Some((at, packed)) if *at == address => packed.clone(),
            slot => slot.insert((address, weights.to_vec())).1.clone(),
        };
        // The step runs on a copy of the network holding the packed weights.
        let mut stale = network.clone();
        stale.update_params(|values| values[..packed.len()].copy_from_slice(&packed))?;
        let batch = task.batch();
        Ok(answer_with(task, &stale, &batch)?.0)
    }
}

#[test]
fn weights_packed_once_and_known_by_address_are_caught_by_the_reused_buffers_check() {
    for case in cases() {
        let mut kernel = PacksWeightsOnce { packed: None };
        let reports = check_f64(&mut kernel, &case, 5);
        assert!(
            failed_checks(&reports).contains(&CheckKind::ReusedBuffers),
            "{}",
            describe(&reports)
        );
    }
}

/// What a kernel with a fast path notes about its buffers' contents the
/// first time it sees them, and knows again by their address.
#[derive(Clone, Copy, Debug)]
enum Noted {
    /// That the targets are one-hot (class labels): soft targets loaded
    /// later into a buffer that once held labels are taken for the labels
    /// of their largest class.
    OneHotTargets,
    /// Which input features are zero on every sample (to skip them): inputs
    /// loaded later into the buffer lose those features.
    ZeroFeatures,
}

/// A kernel that keeps what [`Noted`] says, by address.
struct ContentsKnownByAddress {
    noted: Noted,
    /// The buffer's address, and for each row position (one-hot targets:
    /// the first) or feature (zero features) whether the fast path applies.
    seen: Option<(usize, Vec<bool>)>,
}

impl ContentsKnownByAddress {
    fn new(noted: Noted) -> Self {
        ContentsKnownByAddress { noted, seen: None }
    }

    /// What the fast path notes about `values`, `width` to a row.
    fn note(&self, values: &[f64], width: usize) -> Vec<bool> {
        match self.noted {
            Noted::OneHotTargets => vec![values.chunks(width).all(|row| {
                row.iter().all(|&y| y == 0.0 || y == 1.0) && row.iter().sum::<f64>() == 1.0
            })],
            Noted::ZeroFeatures => (0..width)
                .map(|k| values.chunks(width).all(|row| row[k] == 0.0))
                .collect(),
        }
    }
}

impl Backend<f64> for ContentsKnownByAddress {
    fn name(&self) -> &'static str {
        "contents-known-by-address"
    }

    fn run_forward(&mut self, task: ForwardTask<'_, f64>) -> Result<(), Error> {
        NaiveBackend::new().run_forward(task)
    }

    fn run_loss_and_gradient(&mut self, task: GradientTask<'_, f64>) -> Result<f64, Error> {
        let network = task.layers().network().clone();
        let batch = task.batch();
        let (n, m) = (
            network.architecture().input_width(),
            network.architecture().output_width(),
        );
        let mut inputs = batch.inputs().matrix().as_slice().to_vec();
        let mut targets = batch.targets().as_slice().to_vec();
        let (watched, width) = match self.noted {
            Noted::OneHotTargets => (batch.targets().as_slice(), m),
            Noted::ZeroFeatures => (batch.inputs().matrix().as_slice(), n),
        };
        let address = watched.as_ptr() as usize;
        let noted = match &self.seen {
            Some((at, noted)) if *at == address => noted.clone(),
            _ => self
                .seen
                .insert((address, self.note(watched, width)))
                .1
                .clone(),
        };
        match self.noted {
            Noted::OneHotTargets if noted[0] => {
                for row in targets.chunks_mut(m) {
                    let top = (0..m).fold(0, |top, k| if row[k] > row[top] { k } else { top });
                    row.fill(0.0);
                    row[top] = 1.0;
                }
            }
            Noted::OneHotTargets => {}
            Noted::ZeroFeatures => {
                for row in inputs.chunks_mut(n) {
                    for (x, &zero) in row.iter_mut().zip(&noted) {
                        if zero {
                            *x = 0.0;
                        }
                    }
                }
            }
        }
        let seen_as = Batch::from_slices(network.architecture(), batch.rows(), &inputs, &targets)?;
        Ok(answer_with(task, &network, &seen_as)?.0)
    }
}

#[test]
fn targets_known_as_labels_or_features_known_as_zero_by_address_are_caught_by_the_reused_buffers_check()
 {
    for noted in [Noted::OneHotTargets, Noted::ZeroFeatures] {
        for case in cases() {
            // The decoy's one-hot targets and zero features go into the
            // buffers before the case's.
            let mut kernel = ContentsKnownByAddress::new(noted);
            let report = checks::reused_buffers(&mut kernel, &case, &Oracle::of(&case));
            assert!(!report.passed(), "{noted:?}: {report:?}");
            // Right on buffers it sees first.
            let mut kernel = ContentsKnownByAddress::new(noted);
            let report = checks::dual_numbers(&mut kernel, &case, &Oracle::of(&case));
            assert!(report.passed(), "{noted:?}: {report:?}");
        }
    }
}

/// Fused SGD steps gone wrong in a training loop, each right on a first
/// step: one applies the gradient of its last step; one gives its last
/// step's answer again when the batch lies where it lay (a forward pass
/// skipped by the input's address); and two `f64` kernels whose update takes
/// a wrong learning rate, rounded to `f32` or kept from the first step (a
/// plan cached per shape).
enum WrongStep {
    LastGradient(Option<Vec<f64>>),
    SkipsForwardByAddress(Option<(usize, f64, Vec<f64>)>),
    RateRoundedToF32,
    RateKeptFromFirstStep(Option<f64>),
}

impl WrongStep {
    /// The two steps that keep a gradient or an answer: the update is the
    /// core's, from what the step leaves in the gradient buffer.
    fn stale_step(&mut self, mut task: SgdTask<'_, f64>) -> Result<f64, Error> {
        let address = task.batch().inputs().matrix().as_slice().as_ptr() as usize;
        let mut loss = NaiveBackend::new().run_loss_and_gradient(task.gradient_task())?;
        let (_, _, mut gradient) = task.gradient_task().into_parts();
        let current = gradient.as_mut_slice().to_vec();
        match self {
            WrongStep::LastGradient(last) => {
                if let Some(last) = last.replace(current) {
                    gradient.as_mut_slice().copy_from_slice(&last);
                }
            }
            WrongStep::SkipsForwardByAddress(kept) => match kept {
                Some((at, kept_loss, kept_gradient)) if *at == address => {
                    loss = *kept_loss;
                    gradient.as_mut_slice().copy_from_slice(kept_gradient);
                }
                slot => *slot = Some((address, loss, current)),
            },
            WrongStep::RateRoundedToF32 | WrongStep::RateKeptFromFirstStep(_) => {}
        }
        task.apply_update(loss)
    }

    /// The two steps with a wrong rate: fused, writing the update themselves.
    fn wrong_rate_step(&mut self, task: SgdTask<'_, f64>) -> Result<f64, Error> {
        task.run_fused(|task, updated, minus_eta| {
            let rate = match self {
                WrongStep::RateKeptFromFirstStep(kept) => *kept.get_or_insert(minus_eta),
                _ => f64::from(minus_eta as f32),
            };
            let network = task.layers().network().clone();
            let batch = task.batch();
            let (loss, whole) = answer_with(task, &network, &batch)?;
            for ((updated, &theta), &g) in updated
                .iter_mut()
                .zip(network.params().as_slice())
                .zip(whole.as_slice())
            {
                *updated = theta + rate * g;
            }
            Ok(loss)
        })
    }
}

impl Backend<f64> for WrongStep {
    fn name(&self) -> &'static str {
        "wrong-step"
    }

    fn run_forward(&mut self, task: ForwardTask<'_, f64>) -> Result<(), Error> {
        NaiveBackend::new().run_forward(task)
    }

    fn run_loss_and_gradient(&mut self, task: GradientTask<'_, f64>) -> Result<f64, Error> {
        NaiveBackend::new().run_loss_and_gradient(task)
    }

    fn run_sgd_step(&mut self, task: SgdTask<'_, f64>) -> Result<f64, Error> {
        match self {
            WrongStep::LastGradient(_) | WrongStep::SkipsForwardByAddress(_) => {
                self.stale_step(task)
            }
            WrongStep::RateRoundedToF32 | WrongStep::RateKeptFromFirstStep(_) => {
                self.wrong_rate_step(task)
            }
        }
    }
}

#[test]
fn a_step_with_a_kept_gradient_answer_or_rate_or_a_rate_rounded_to_f32_is_caught_by_the_sgd_check()
{
    for case in cases() {
        for mut kernel in [
            WrongStep::LastGradient(None),
            WrongStep::SkipsForwardByAddress(None),
            WrongStep::RateRoundedToF32,
            WrongStep::RateKeptFromFirstStep(None),
        ] {
            let reports = check_f64(&mut kernel, &case, 5);
            // Only a step after a step, or its rate, goes wrong, and only the
            // SGD check takes several steps.
            assert_eq!(
                failed_checks(&reports),
                [CheckKind::SgdStep],
                "{}",
                describe(&reports)
            );
        }
    }
}

/// A kernel that panics on a hidden layer of width 1 and is right elsewhere.
struct PanicsOnWidthOne;

impl PanicsOnWidthOne {
    fn refuse(architecture: &Architecture) {
        let widths = architecture.widths();
        if widths[1..widths.len() - 1].contains(&1) {
            panic!("no kernel for a hidden width of 1");
        }
    }
}

impl Backend<f64> for PanicsOnWidthOne {
    fn name(&self) -> &'static str {
        "panics-on-width-one"
    }

    fn run_forward(&mut self, task: ForwardTask<'_, f64>) -> Result<(), Error> {
        Self::refuse(task.layers().network().architecture());
        NaiveBackend::new().run_forward(task)
    }

    fn run_loss_and_gradient(&mut self, task: GradientTask<'_, f64>) -> Result<f64, Error> {
        Self::refuse(task.layers().network().architecture());
        NaiveBackend::new().run_loss_and_gradient(task)
    }
}

#[test]
fn a_kernel_that_panics_fails_every_check_it_panics_in_and_the_run_goes_on() {
    let narrow = Architecture::new(
        &[3, 1, 4, 2],
        &[Activation::Tanh, Activation::Sigmoid, Activation::Identity],
        Loss::Mse,
    )
    .unwrap();
    let reports = check_f64(&mut PanicsOnWidthOne, &Case::random(narrow, 5, 3), 3);
    // All ten f64 checks call the kernel, so each meets the panic and names it.
    assert_eq!(reports.len(), 10);
    for report in &reports {
        // Its place follows, unless a test beside it has set a panic hook
        // of its own meanwhile (tests/hardening.rs does).
        let failure = report.failure.as_deref().unwrap_or_default();
        let expected = "panicked: no kernel for a hidden width of 1";
        assert!(failure.starts_with(expected), "{report}");
    }
    // The same instance, on a shape it takes, passes.
    let reports = check_f64(&mut PanicsOnWidthOne, &cases()[0], 3);
    assert!(all_passed(&reports), "{}", describe(&reports));
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

/// Where a first-layer split of the SIMD kernel goes wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SplitFlaw {
    /// The blocks of the first layer's weight gradient off by one part in a million.
    WeightRowsScaled,
    /// The step that should leave the first layer's weights writes the last one.
    FirstWeightsWritten,
    /// The first layer's slopes off by one part in a million.
    SlopesScaled,
    /// The last slope of a block of hidden units left unwritten.
    SlopeUnwritten,
    /// A `delta^1` given by unit read as if it were by sample.
    LayoutIgnored,
}

/// The SIMD kernel's first-layer split and cut by units, with `flaw`.
struct FlawedSplit {
    inner: SimdBackend<f64>,
    flaw: SplitFlaw,
}

impl Backend<f64> for FlawedSplit {
    fn name(&self) -> &'static str {
        "flawed-split"
    }

    fn run_forward(&mut self, task: ForwardTask<'_, f64>) -> Result<(), Error> {
        self.inner.run_forward(task)
    }

    fn run_loss_and_gradient(&mut self, task: GradientTask<'_, f64>) -> Result<f64, Error> {
        self.inner.run_loss_and_gradient(task)
    }
}

impl FirstLayerSplit<f64> for FlawedSplit {
    fn run_gradient_but_first_weights(
        &mut self,
        mut task: SplitGradientTask<'_, f64>,
    ) -> Result<f64, Error> {
        let loss = self.inner.run_gradient_but_first_weights(task.reborrow())?;
        if self.flaw == SplitFlaw::FirstWeightsWritten {
            write_first_weight(task.into_parts().0);
        }
        Ok(loss)
    }

    fn run_first_weight_rows(&mut self, task: &mut FirstWeightRowsTask<'_, f64>) {
        if self.flaw == SplitFlaw::LayoutIgnored && task.layout() == DeltaLayout::ByUnit {
            let (delta, inputs, units) = (task.delta(), task.inputs(), task.units());
            let misread =
                MatrixRef::new(delta.as_slice(), delta.cols(), delta.rows()).and_then(|delta| {
                    FirstWeightRowsTask::new(delta, inputs, units, task.output_mut())
                });
            let mut misread = misread.expect("the same sizes, by sample");
            return self.inner.run_first_weight_rows(&mut misread);
        }
        self.inner.run_first_weight_rows(task);
        if self.flaw == SplitFlaw::WeightRowsScaled {
            task.output_mut().iter_mut().for_each(|v| *v *= 1.0 + 1e-6);
        }
    }
}

impl FirstLayerUnits<f64> for FlawedSplit {
    fn run_first_layer_units(&mut self, mut task: FirstUnitsTask<'_, f64>) -> Result<(), Error> {
        self.inner.run_first_layer_units(task.reborrow())?;
        let (_, slopes) = task.outputs_mut();
        match self.flaw {
            SplitFlaw::SlopesScaled => slopes.iter_mut().for_each(|v| *v *= 1.0 + 1e-6),
            SplitFlaw::SlopeUnwritten => {
                if let Some(last) = slopes.last_mut() {
                    *last = f64::NAN;
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn run_gradient_above_first(
        &mut self,
        mut task: AboveFirstTask<'_, f64>,
    ) -> Result<f64, Error> {
        let loss = self.inner.run_gradient_above_first(task.reborrow())?;
        if self.flaw == SplitFlaw::FirstWeightsWritten {
            write_first_weight(task.into_parts().0);
        }
        Ok(loss)
    }
}

/// Writes a value over the first layer's last weight in the task's gradient,
/// which a split kernel must leave to the weight-rows tasks.
fn write_first_weight(task: GradientTask<'_, f64>) {
    let weights = task.layers().layer(0).shape.weight_range();
    let (_, _, mut gradient) = task.into_parts();
    gradient.as_mut_slice()[weights.end - 1] = 0.0;
}

#[test]
fn wrong_first_layer_splits_are_rejected_by_the_split_and_units_checks() {
    use SplitFlaw::*;
    // Which of the two checks each flaw must fail (a flaw of the forward
    // blocks only shows in the cut by units).
    for (flaw, split_fails) in [
        (WeightRowsScaled, true),
        (FirstWeightsWritten, true),
        (SlopesScaled, false),
        (SlopeUnwritten, false),
        (LayoutIgnored, true),
    ] {
        for case in cases() {
            let oracle = Oracle::of(&case);
            let mut flawed = FlawedSplit {
                inner: SimdBackend::new(),
                flaw,
            };
            let split = checks::first_layer_split(&mut flawed, &case, &oracle);
            let units = checks::first_layer_units(&mut flawed, &case, &oracle);
            let label = format!("{flaw:?} on {}", case.network.architecture());
            assert_eq!(split.passed(), !split_fails, "{label}: split {split}");
            assert!(!units.passed(), "{label}: units {units}");
            if flaw == FirstWeightsWritten {
                let first = case.network.architecture().layers()[0];
                let written = Quantity::Unwritten(ParamLocation::Weight {
                    layer: 0,
                    row: first.outputs - 1,
                    col: first.inputs - 1,
                });
                for report in [&split, &units] {
                    let worst = report.worst.map(|worst| worst.quantity);
                    assert_eq!(worst, Some(written), "{label}");
                }
            }
            if flaw == SlopeUnwritten {
                // The first block's last slope, the first value found unwritten.
                let hidden = case.network.architecture().widths()[1];
                let unwritten = Quantity::FirstLayerFormed {
                    unit: hidden / 2 - 1,
                    sample: case.rows - 1,
                };
                let worst = units.worst.map(|worst| worst.quantity);
                assert_eq!(worst, Some(unwritten), "{label}");
            }
            // The same kernel without the flaw passes both.
            let mut sound = SimdBackend::<f64>::new();
            assert!(checks::first_layer_split(&mut sound, &case, &oracle).passed());
            assert!(checks::first_layer_units(&mut sound, &case, &oracle).passed());
        }
    }
}

#[test]
fn a_kernel_that_takes_the_targets_sum_as_one_fails_on_other_sums_and_passes_on_distributions() {
    let case = cases().pop().expect("the softmax case");
    assert_eq!(
        case.network.architecture().loss(),
        Loss::SoftmaxCrossEntropy
    );
    let reports = check_f64(
        &mut ControlBackend::<f64>::new(Flaw::RowSumTakenAsOne),
        &case,
        5,
    );
    assert!(
        failed_checks(&reports).contains(&CheckKind::DualNumbers),
        "{}",
        describe(&reports)
    );
    let m = case.network.architecture().output_width();
    let mut targets = case.targets.clone();
    for row in targets.chunks_mut(m) {
        let sum: f64 = row.iter().sum();
        row.iter_mut().for_each(|y| *y /= sum);
    }
    let distributions = Case::new(
        case.network.clone(),
        case.inputs.clone(),
        targets,
        case.rows,
    )
    .expect("the same sizes");
    let reports = check_f64(
        &mut ControlBackend::<f64>::new(Flaw::RowSumTakenAsOne),
        &distributions,
        5,
    );
    assert!(all_passed(&reports), "{}", describe(&reports));
}

#[test]
fn one_activation_everywhere_shows_only_where_the_layers_differ_in_activation() {
    use backprop_verify::conformance::cell_checks;
    use backprop_verify::{Cancellation, Matrix};
    let matrix = Matrix::new(&[1], &[]).unwrap();
    let control = Control::Kernel(Flaw::OneActivation);
    let mut backend = control.backend::<f64>();
    let (mut mixed, mut caught) = (0, 0);
    for cell in matrix.control_cells() {
        let reports = cell_checks(&mut *backend, cell, Cancellation::Forbidden);
        if cell.mixed {
            mixed += 1;
            caught += usize::from(!all_passed(&reports));
        } else {
            assert!(
                all_passed(&reports),
                "{}\n{}",
                cell.shape,
                describe(&reports)
            );
        }
    }
    // The cells whose layers share one activation alone would pass it.
    assert!(mixed > 0);
    assert_eq!(caught, mixed, "caught in {caught} of {mixed} mixed cells");
}
