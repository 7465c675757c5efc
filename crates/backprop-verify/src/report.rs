//! What a check reports: the worst error-to-tolerance ratio and where it occurred.

use std::fmt;

use backprop_core::ParamLocation;

/// The checks of the verification protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CheckKind {
    /// Gradient components against Richardson central differences (`f64`).
    FiniteDifferences,
    /// Gradient components against dual numbers (`f64`).
    DualNumbers,
    /// Random directional derivatives `g . v` against dual numbers (`f64`).
    Directional,
    /// Loss and gradient against the naive backend in the same precision.
    AgreesWithNaive,
    /// An `f32` gradient against the `f64` oracle on the same rounded values.
    F32AgainstF64,
    /// The loss of an all-zero network, whose value is known exactly.
    GoldenLoss,
    /// A batch gradient against the mean of its per-sample gradients.
    BatchLaw,
    /// Repeated runs give bit-identical loss and gradient.
    Determinism,
    /// The loss, gradient and outputs after the parameters and the batch
    /// were overwritten in place with an equivalent problem, against the
    /// kernel's own first answer.
    ReusedBuffers,
    /// A parallel backend in its reproducible configuration gives
    /// bit-identical loss and gradient on every thread count.
    ThreadCounts,
    /// The forward outputs against the oracle's, and the loss the gradient
    /// call returns against the loss of those outputs.
    Forward,
    /// An SGD step (fused or not) against the gradient followed by the update.
    SgdStep,
    /// The first-layer split, when a kernel offers it, against its whole gradient.
    FirstLayerSplit,
    /// The first layer cut by hidden units, when a kernel offers it, against
    /// its whole gradient.
    FirstLayerUnits,
    /// Where units saturate, the gradient's norm-wise relative error against
    /// the exact one.
    Saturation,
}

impl CheckKind {
    /// Every check, in report order.
    pub const ALL: [CheckKind; 15] = [
        CheckKind::FiniteDifferences,
        CheckKind::DualNumbers,
        CheckKind::Directional,
        CheckKind::AgreesWithNaive,
        CheckKind::F32AgainstF64,
        CheckKind::Forward,
        CheckKind::GoldenLoss,
        CheckKind::BatchLaw,
        CheckKind::SgdStep,
        CheckKind::Determinism,
        CheckKind::ReusedBuffers,
        CheckKind::ThreadCounts,
        CheckKind::FirstLayerSplit,
        CheckKind::FirstLayerUnits,
        CheckKind::Saturation,
    ];

    /// A short column label.
    pub fn label(self) -> &'static str {
        match self {
            CheckKind::FiniteDifferences => "fd",
            CheckKind::DualNumbers => "dual",
            CheckKind::Directional => "g.v",
            CheckKind::AgreesWithNaive => "naive",
            CheckKind::F32AgainstF64 => "f32/f64",
            CheckKind::GoldenLoss => "golden",
            CheckKind::BatchLaw => "batch",
            CheckKind::Determinism => "determ",
            CheckKind::ReusedBuffers => "reuse",
            CheckKind::ThreadCounts => "threads",
            CheckKind::Forward => "forward",
            CheckKind::SgdStep => "sgd",
            CheckKind::FirstLayerSplit => "split",
            CheckKind::FirstLayerUnits => "units",
            CheckKind::Saturation => "sat",
        }
    }
}

impl fmt::Display for CheckKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// What a compared value is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Quantity {
    /// A gradient component.
    Param(ParamLocation),
    /// The loss value.
    Loss,
    /// The directional derivative along random direction number `k`.
    Direction(usize),
    /// A forward output `A^L` at a sample (row) and output (column).
    Output {
        /// The sample.
        row: usize,
        /// The output neuron.
        col: usize,
    },
    /// The loss computed from the forward outputs, against the loss returned.
    LossOfOutputs,
    /// A parameter after an SGD step.
    Updated(ParamLocation),
    /// A gradient component that must be left unwritten (1 if it was written).
    Unwritten(ParamLocation),
    /// A first-layer activation and its slope, cut by hidden units, that
    /// must be written (1 if either was not).
    FirstLayerFormed {
        /// The hidden unit.
        unit: usize,
        /// The sample.
        sample: usize,
    },
    /// The whole gradient's norm-wise relative error against the exact one.
    RelativeError,
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Quantity::Param(location) => location.fmt(f),
            Quantity::Loss => f.write_str("loss"),
            Quantity::Direction(k) => write!(f, "direction {k}"),
            Quantity::Output { row, col } => write!(f, "output[{row},{col}]"),
            Quantity::LossOfOutputs => f.write_str("loss of the forward outputs"),
            Quantity::Updated(location) => write!(f, "{location} after the step"),
            Quantity::Unwritten(location) => write!(f, "{location} (must be left unwritten)"),
            Quantity::FirstLayerFormed { unit, sample } => write!(
                f,
                "first-layer activation and slope [{unit},{sample}] (must be written)"
            ),
            Quantity::RelativeError => f.write_str("the gradient's relative error"),
        }
    }
}

/// The worst comparison of a check.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Discrepancy {
    /// What was compared.
    pub quantity: Quantity,
    /// The backend's value.
    pub actual: f64,
    /// The oracle's value.
    pub expected: f64,
    /// The tolerance the difference was measured against.
    pub tolerance: f64,
}

/// The outcome of one check on one backend and case.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckReport {
    /// Which check.
    pub kind: CheckKind,
    /// The largest `|actual - expected| / tolerance`; at most 1 to pass.
    pub worst_ratio: f64,
    /// Where the largest ratio occurred.
    pub worst: Option<Discrepancy>,
    /// How many values were compared.
    pub compared: usize,
    /// How many values were left out, and counted, because they lie at a
    /// ReLU kink where the oracle does not apply.
    pub excluded: usize,
    /// An error the backend returned instead of a result.
    pub failure: Option<String>,
    /// The smallest uniform relative error this check would have caught:
    /// a result scaled by `1 + e` fails it for any `e` above this, the least
    /// `tolerance / |expected|` over the values compared (infinite if none
    /// could fail that way).
    pub detectable_relative_error: f64,
}

impl CheckReport {
    /// Starts an empty report.
    pub fn new(kind: CheckKind) -> Self {
        CheckReport {
            kind,
            worst_ratio: 0.0,
            worst: None,
            compared: 0,
            excluded: 0,
            failure: None,
            detectable_relative_error: f64::INFINITY,
        }
    }

    /// A report for a backend that returned an error.
    pub fn failed(kind: CheckKind, failure: impl fmt::Display) -> Self {
        CheckReport {
            failure: Some(failure.to_string()),
            worst_ratio: f64::INFINITY,
            ..CheckReport::new(kind)
        }
    }

    /// Whether the check passed: no error, and every ratio at most 1 (a NaN fails).
    pub fn passed(&self) -> bool {
        self.failure.is_none() && self.worst_ratio <= 1.0
    }

    /// Compares one value against its oracle within `tolerance`.
    ///
    /// A tolerance of zero demands bit-equality; a NaN anywhere is an infinite ratio.
    pub fn compare(&mut self, quantity: Quantity, actual: f64, expected: f64, tolerance: f64) {
        let difference = (actual - expected).abs();
        let ratio = if difference == 0.0 {
            0.0
        } else if difference.is_nan() || tolerance == 0.0 {
            f64::INFINITY
        } else {
            difference / tolerance
        };
        self.compared += 1;
        if expected != 0.0 {
            self.detectable_relative_error = self
                .detectable_relative_error
                .min(tolerance / expected.abs());
        }
        if self.worst.is_none() || ratio > self.worst_ratio {
            self.worst_ratio = ratio;
            self.worst = Some(Discrepancy {
                quantity,
                actual,
                expected,
                tolerance,
            });
        }
    }

    /// Counts a value left out at a kink.
    pub fn exclude(&mut self) {
        self.excluded += 1;
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.passed() { "pass" } else { "FAIL" };
        write!(
            f,
            "{:<8} {verdict} worst ratio {:.3e}",
            self.kind.label(),
            self.worst_ratio
        )?;
        if let Some(failure) = &self.failure {
            write!(f, " (error: {failure})")?;
        }
        if let Some(worst) = &self.worst {
            write!(
                f,
                " at {}: {:.17e} vs {:.17e} (tolerance {:.3e})",
                worst.quantity, worst.actual, worst.expected, worst.tolerance
            )?;
        }
        if self.excluded > 0 {
            write!(f, ", {} excluded at kinks", self.excluded)?;
        }
        Ok(())
    }
}
