//! What a conformance run found: per cell, per check, per control, as a table and as JSON.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Value, json};

use backprop_core::{Activation, Loss};

use crate::checks::Cancellation;
use crate::matrix::Cell;
use crate::report::{CheckKind, CheckReport};

/// Every check of one cell of the matrix.
#[derive(Clone, Debug)]
pub struct CellReport {
    /// The shape's name.
    pub shape: String,
    /// The architecture, as `widths [activations] loss`.
    pub architecture: String,
    /// The batch size.
    pub rows: usize,
    /// The seed the case was drawn from.
    pub seed: u64,
    /// One report per check.
    pub checks: Vec<CheckReport>,
    /// The smallest relative error `e` whose factor `1 + e`, injected into
    /// the backend's gradient, the oracle check rejected here (with every
    /// larger one tried); infinite if none was, NaN if the oracle check
    /// rejected the backend's gradient as it is or the cell was declined.
    pub detectable: f64,
    /// Why the backend declined the cell (the message of the
    /// `Error::Unsupported` it returned on its first call there), if it
    /// did; then no check ran.
    pub declined: Option<String>,
    /// Whether the cell's units saturate (see `Case::saturated`).
    pub saturating: bool,
    /// Whether the cell's values overflow a naive exponential (see
    /// `Case::overflowing`).
    pub overflowing: bool,
    /// The first layer's activation.
    activation: Activation,
    /// The loss.
    loss: Loss,
    json: Value,
}

impl CellReport {
    /// The report of `checks` on `cell`.
    pub fn new(cell: &Cell, checks: Vec<CheckReport>, detectable: f64) -> Self {
        Self::of(cell, checks, detectable, None)
    }

    /// The report of a cell the backend declined, for `reason`: no check ran.
    pub fn declined(cell: &Cell, reason: String) -> Self {
        Self::of(cell, Vec::new(), f64::NAN, Some(reason))
    }

    fn of(
        cell: &Cell,
        checks: Vec<CheckReport>,
        detectable: f64,
        declined: Option<String>,
    ) -> Self {
        let architecture = cell.case.network.architecture();
        let json = json!({
            "shape": cell.shape,
            "widths": architecture.widths(),
            "activations": architecture.activations().iter().map(|a| a.name()).collect::<Vec<_>>(),
            "loss": architecture.loss().name(),
            "rows": cell.case.rows,
            "seed": cell.seed,
            "saturating": cell.saturating,
            "overflowing": cell.overflowing,
        });
        CellReport {
            shape: cell.shape.clone(),
            architecture: architecture.to_string(),
            rows: cell.case.rows,
            seed: cell.seed,
            checks,
            detectable,
            declined,
            saturating: cell.saturating,
            overflowing: cell.overflowing,
            activation: architecture
                .activations()
                .first()
                .copied()
                .unwrap_or(Activation::Identity),
            loss: architecture.loss(),
            json,
        }
    }

    /// Whether the cell was checked (not declined) and every check passed.
    pub fn passed(&self) -> bool {
        self.declined.is_none() && self.checks.iter().all(CheckReport::passed)
    }

    /// The cell and its checks as JSON.
    pub fn to_json(&self) -> Value {
        let mut json = self.json.clone();
        json["passed"] = match self.declined {
            Some(_) => Value::Null,
            None => json!(self.passed()),
        };
        json["declined"] = json!(self.declined);
        json["detectable_scale_error"] = finite_or_null(self.detectable);
        json["checks"] = self.checks.iter().map(check_json).collect();
        json
    }
}

/// What the checks made of one negative control.
#[derive(Clone, Debug, PartialEq)]
pub struct ControlReport {
    /// The control's description.
    pub control: String,
    /// The checks that failed on some cell: the control is rejected when
    /// there is at least one.
    pub caught_by: Vec<CheckKind>,
    /// The cells the control ran on.
    pub cells: usize,
}

impl ControlReport {
    /// Whether some check caught the control.
    pub fn rejected(&self) -> bool {
        !self.caught_by.is_empty()
    }

    /// One line: the control and what caught it.
    pub fn line(&self) -> String {
        if self.cells == 0 {
            format!(
                "{:<34} NOT RUN: the backend declined every control cell",
                self.control
            )
        } else if self.rejected() {
            let caught: Vec<&str> = self.caught_by.iter().map(|k| k.label()).collect();
            format!("{:<34} rejected by {}", self.control, caught.join(", "))
        } else {
            format!("{:<34} ACCEPTED: the checks are too weak", self.control)
        }
    }

    /// The control as JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "control": self.control,
            "rejected": self.rejected(),
            "caught_by": self.caught_by.iter().map(|k| k.label()).collect::<Vec<_>>(),
            "cells": self.cells,
        })
    }
}

/// The result of a conformance run: one backend, one precision.
#[derive(Clone, Debug)]
pub struct ConformanceReport {
    /// The backend's name.
    pub name: String,
    /// `f32` or `f64`.
    pub dtype: &'static str,
    /// The mode the tolerances were computed in.
    pub cancellation: Cancellation,
    /// Every cell of the matrix.
    pub cells: Vec<CellReport>,
    /// The negative controls wrapped around the backend.
    pub controls: Vec<ControlReport>,
}

/// Width of a report row's label.
const LABEL: usize = 20;
/// Width of a report column.
const COLUMN: usize = 9;

impl ConformanceReport {
    /// Whether every check passed on every cell checked, some cell was
    /// checked (not declined), no limit went unproven (see
    /// [`ConformanceReport::unproven_limits`]), no architecture and batch
    /// size was both declined and accepted
    /// ([`ConformanceReport::inconsistent_declines`]), and every control
    /// was rejected.
    pub fn passed(&self) -> bool {
        self.cells_passed() && self.controls.iter().all(ControlReport::rejected)
    }

    /// Whether every check passed on every cell checked, some cell was
    /// checked, no limit went unproven and no decline changed its mind.
    fn cells_passed(&self) -> bool {
        self.checked().all(CellReport::passed)
            && self.checked().next().is_some()
            && self.unproven_limits().is_empty()
            && self.inconsistent_declines().is_empty()
    }

    /// The kinds of cells at the exponential's limits the backend declined
    /// throughout although it accepts their kind of network elsewhere: for
    /// each kind (saturating or overflowing), first layer's activation and
    /// loss among the limit cells, if some other checked cell has that
    /// activation and loss, some limit cell of them must be checked too,
    /// else the run cannot show how the backend meets those limits. Each
    /// entry reads like `saturating tanh mse`.
    pub fn unproven_limits(&self) -> Vec<String> {
        let at_limits = |cell: &&CellReport| cell.saturating || cell.overflowing;
        let mut unproven: Vec<String> = Vec::new();
        for cell in self.cells.iter().filter(at_limits) {
            let kind = if cell.saturating {
                "saturating"
            } else {
                "overflowing"
            };
            let limit = format!("{kind} {} {}", cell.activation, cell.loss);
            let same_network =
                |other: &CellReport| (other.activation, other.loss) == (cell.activation, cell.loss);
            let same_limit = |other: &&CellReport| {
                other.saturating == cell.saturating
                    && other.overflowing == cell.overflowing
                    && same_network(other)
            };
            let accepted_elsewhere = self
                .checked()
                .any(|other| !at_limits(&other) && same_network(other));
            let proven = self.checked().any(|other| same_limit(&other));
            if accepted_elsewhere && !proven && !unproven.contains(&limit) {
                unproven.push(limit);
            }
        }
        unproven
    }

    /// The architectures and batch sizes the backend declined in some cells
    /// and accepted in others: a decline asked on the same zero-valued
    /// problem must not change with what the backend saw before. Each entry
    /// reads like `4-6-5-3 [tanh,tanh] mse rows 8`.
    pub fn inconsistent_declines(&self) -> Vec<String> {
        let mut inconsistent: Vec<String> = Vec::new();
        for cell in &self.cells {
            let problem = format!("{} rows {}", cell.architecture, cell.rows);
            let differs = self.cells.iter().any(|other| {
                (&other.architecture, other.rows) == (&cell.architecture, cell.rows)
                    && other.declined.is_some() != cell.declined.is_some()
            });
            if differs && !inconsistent.contains(&problem) {
                inconsistent.push(problem);
            }
        }
        inconsistent
    }

    /// The cells the backend did not decline.
    fn checked(&self) -> impl Iterator<Item = &CellReport> {
        self.cells.iter().filter(|cell| cell.declined.is_none())
    }

    /// How many cells the backend declined.
    pub fn declined_cells(&self) -> usize {
        self.cells.len() - self.checked().count()
    }

    /// The worst report of each check over all cells (an error, or a NaN
    /// ratio, counts as worst).
    pub fn worst(&self) -> BTreeMap<usize, &CheckReport> {
        let mut worst: BTreeMap<usize, &CheckReport> = BTreeMap::new();
        for report in self.cells.iter().flat_map(|cell| &cell.checks) {
            let Some(column) = CheckKind::ALL.iter().position(|&k| k == report.kind) else {
                continue;
            };
            let worse = worst.get(&column).is_none_or(|current| {
                report.failure.is_some()
                    || report.worst_ratio.is_nan()
                    || (current.failure.is_none() && report.worst_ratio > current.worst_ratio)
            });
            if worse {
                worst.insert(column, report);
            }
        }
        worst
    }

    /// The largest norm-wise relative error of the gradient against the
    /// exact one over the saturating cells (NaN if a backend failed there,
    /// 0 if there are none).
    pub fn worst_saturation_error(&self) -> f64 {
        let reports = self.cells.iter().flat_map(|cell| &cell.checks);
        reports
            .filter(|r| r.kind == CheckKind::Saturation)
            .map(|r| r.worst.map_or(f64::NAN, |worst| worst.actual))
            .fold(0.0, |worst, error| {
                if error > worst || error.is_nan() {
                    error
                } else {
                    worst
                }
            })
    }

    /// Finite-difference components excluded at ReLU kinks, over all cells.
    pub fn kinks(&self) -> usize {
        let reports = self.cells.iter().flat_map(|cell| &cell.checks);
        reports
            .filter(|r| r.kind == CheckKind::FiniteDifferences)
            .map(|r| r.excluded)
            .sum()
    }

    /// The smallest relative error `e` that every cell's oracle check
    /// rejects when the backend's gradient is scaled by `1 + e`, over the
    /// cells where any scale error shows (infinite if there are none).
    pub fn detectable(&self) -> f64 {
        let finite = self.checked().map(|cell| cell.detectable);
        finite
            .filter(|e| e.is_finite())
            .fold(None, |worst: Option<f64>, e| {
                Some(worst.map_or(e, |w| w.max(e)))
            })
            .unwrap_or(f64::INFINITY)
    }

    /// The median over the cells where a scale error shows of the smallest
    /// relative error each rejects.
    pub fn median_detectable(&self) -> f64 {
        let mut finite: Vec<f64> = self
            .checked()
            .map(|cell| cell.detectable)
            .filter(|e| e.is_finite())
            .collect();
        finite.sort_by(f64::total_cmp);
        finite
            .get(finite.len() / 2)
            .copied()
            .unwrap_or(f64::INFINITY)
    }

    /// Cells where no scale error shows: their gradient is zero to within
    /// rounding (a softmax over one output, dead ReLU units), so scaling it
    /// changes nothing the checks can see.
    pub fn scale_blind_cells(&self) -> usize {
        self.checked()
            .filter(|cell| cell.detectable == f64::INFINITY)
            .count()
    }

    /// Cells whose gradient the oracle check rejects as it is, where the
    /// sensitivity cannot be measured.
    pub fn already_rejected_cells(&self) -> usize {
        self.checked()
            .filter(|cell| cell.detectable.is_nan())
            .count()
    }

    /// The oracle check the sensitivity is measured with.
    fn oracle_check(&self) -> &'static str {
        if self.dtype == "f64" {
            "dual"
        } else {
            "f32/f64"
        }
    }

    /// The table's header line.
    pub fn header() -> String {
        let mut header = format!("{:<LABEL$}", "backend dtype");
        for kind in CheckKind::ALL {
            header.push_str(&format!(" {:>COLUMN$}", kind.label()));
        }
        header.push_str(&format!(" {:>6}  verdict", "kinks"));
        header
    }

    /// The table's row: the worst ratio of each check (for the saturation
    /// check, the worst relative error itself), the kinks and the verdict.
    pub fn row(&self) -> String {
        let worst = self.worst();
        let mut row = format!("{:<LABEL$}", format!("{} {}", self.name, self.dtype));
        for (column, kind) in CheckKind::ALL.into_iter().enumerate() {
            let shown = |report: &CheckReport| match kind {
                CheckKind::Saturation => self.worst_saturation_error(),
                _ => report.worst_ratio,
            };
            let cell = match worst.get(&column) {
                None => "-".to_owned(),
                Some(report) if report.passed() => format!("{:.2e}", shown(report)),
                Some(report) => format!("FAIL {:.1e}", shown(report)),
            };
            row.push_str(&format!(" {cell:>COLUMN$}"));
        }
        let verdict = if self.cells_passed() { "pass" } else { "FAIL" };
        row.push_str(&format!(" {:>6}  {verdict}", self.kinks()));
        row
    }

    /// The sensitivity line: the smallest injected error every cell rejects.
    pub fn sensitivity(&self) -> String {
        let label = format!("{} {}", self.name, self.dtype);
        let detectable = self.detectable();
        let mut blind = match self.scale_blind_cells() {
            0 => String::new(),
            count => format!(" ({count} cells with a gradient zero to rounding cannot show one)"),
        };
        let checked = self.checked().count();
        if checked == 0 {
            return format!(
                "{label:<LABEL$} no cell checked: the backend declined all {}",
                self.cells.len()
            );
        }
        let rejected = self.already_rejected_cells();
        if rejected > 0 && rejected == checked {
            return format!(
                "{label:<LABEL$} {} rejects this backend's gradient as it is in all {rejected} cells: no sensitivity to measure",
                self.oracle_check()
            );
        }
        if let count @ 1.. = rejected {
            blind.push_str(&format!(
                " ({count} cells where {} rejects the gradient as it is are left out)",
                self.oracle_check()
            ));
        }
        if detectable.is_finite() {
            format!(
                "{label:<LABEL$} {} rejects this backend's gradient scaled by 1 + e in every cell down to e = {detectable:.0e}, in the median cell down to {:.0e}{blind}",
                self.oracle_check(),
                self.median_detectable()
            )
        } else {
            format!(
                "{label:<LABEL$} {} sees no scale error of this backend's gradient in any cell it can measure{blind}",
                self.oracle_check()
            )
        }
    }

    /// A line per failed check of a cell, at most `limit`.
    pub fn failures(&self, limit: usize) -> Vec<String> {
        let label = format!("{} {}", self.name, self.dtype);
        let cells = self.checked().filter(|cell| !cell.passed());
        let lines = cells.flat_map(|cell| {
            let label = &label;
            cell.checks.iter().filter(|r| !r.passed()).map(move |r| {
                format!(
                    "{label} {} {} rows {} seed {}: {r}",
                    cell.shape, cell.architecture, cell.rows, cell.seed
                )
            })
        });
        lines.take(limit).collect()
    }

    /// A line per shape and reason of the cells the backend declined, with
    /// how many of the shape's cells it declined for that reason.
    pub fn declines(&self) -> Vec<String> {
        let mut groups: Vec<(&str, &str, usize)> = Vec::new();
        for cell in &self.cells {
            let Some(reason) = cell.declined.as_deref() else {
                continue;
            };
            match groups
                .iter_mut()
                .find(|(shape, why, _)| *shape == cell.shape && *why == reason)
            {
                Some((_, _, count)) => *count += 1,
                None => groups.push((&cell.shape, reason, 1)),
            }
        }
        let label = format!("{} {}", self.name, self.dtype);
        groups
            .into_iter()
            .map(|(shape, reason, count)| format!("{label} {shape} ({count} cells): {reason}"))
            .collect()
    }

    /// The whole report as JSON: every cell, every check, every control.
    pub fn to_json(&self) -> Value {
        json!({
            "backend": self.name,
            "dtype": self.dtype,
            "cancellation": match self.cancellation {
                Cancellation::Forbidden => "forbidden",
                Cancellation::Allowed => "allowed",
            },
            "passed": self.passed(),
            "declined_cells": self.declined_cells(),
            "unproven_limits": self.unproven_limits(),
            "inconsistent_declines": self.inconsistent_declines(),
            "kinks": self.kinks(),
            "detectable_scale_error": finite_or_null(self.detectable()),
            "worst": self.worst().values().map(|r| check_json(r)).collect::<Vec<_>>(),
            "cells": self.cells.iter().map(CellReport::to_json).collect::<Vec<_>>(),
            "controls": self.controls.iter().map(ControlReport::to_json).collect::<Vec<_>>(),
        })
    }
}

impl fmt::Display for ConformanceReport {
    /// The table of one backend: header, row, sensitivity, failures, controls, verdict.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", ConformanceReport::header())?;
        writeln!(f, "{}", self.row())?;
        writeln!(f, "\n{}", self.sensitivity())?;
        for failure in self.failures(20) {
            writeln!(f, "  {failure}")?;
        }
        let declined = self.declined_cells();
        if declined > 0 {
            writeln!(
                f,
                "\n{declined} of {} cells declined by {} (Error::Unsupported), not checked:",
                self.cells.len(),
                self.name
            )?;
            for decline in self.declines() {
                writeln!(f, "  {decline}")?;
            }
            for unproven in self.unproven_limits() {
                writeln!(
                    f,
                    "  FAIL: every {unproven} cell declined, though {} accepts such networks elsewhere; add a shape it accepts with .shape(...), and the cells at the limits are built on it too",
                    self.name
                )?;
            }
            for problem in self.inconsistent_declines() {
                writeln!(
                    f,
                    "  FAIL: {problem} declined in some cells and accepted in others"
                )?;
            }
        }
        if !self.controls.is_empty() {
            writeln!(
                f,
                "\nNegative controls wrapped around {} ({} cells each); each must be rejected:",
                self.name,
                self.controls.first().map_or(0, |c| c.cells)
            )?;
            for control in &self.controls {
                writeln!(f, "  {}", control.line())?;
            }
        }
        let rejected = self.controls.iter().filter(|c| c.rejected()).count();
        let controls = match self.controls.len() {
            0 => "no controls run".to_owned(),
            count => format!("{rejected} of {count} controls rejected"),
        };
        let cells = match declined {
            0 => format!("{} cells", self.cells.len()),
            _ => format!(
                "{} cells checked, {declined} declined",
                self.cells.len() - declined
            ),
        };
        write!(
            f,
            "\nverdict: {} ({cells}; {controls}; judged {})",
            if self.passed() { "PASS" } else { "FAIL" },
            self.cancellation.describe()
        )
    }
}

/// A number as JSON, or `null` for an infinity (which JSON cannot hold).
fn finite_or_null(value: f64) -> Value {
    if value.is_finite() {
        json!(value)
    } else {
        Value::Null
    }
}

/// One check's report as JSON.
pub fn check_json(report: &CheckReport) -> Value {
    json!({
        "check": report.kind.label(),
        "passed": report.passed(),
        "worst_ratio": finite_or_null(report.worst_ratio),
        "compared": report.compared,
        "excluded_at_kinks": report.excluded,
        "failure": report.failure,
        "worst": report.worst.map(|w| json!({
            "at": w.quantity.to_string(),
            "actual": w.actual,
            "expected": w.expected,
            "tolerance": w.tolerance,
        })),
    })
}
