//! `Conformance`: the whole verification protocol on any kernel, from a name and a factory.
//!
//! A run checks one backend in one precision on every cell of a [`Matrix`]
//! (one instance for all of them, so that a kernel also shows it survives
//! architecture changes), measures how small an error its oracle check sees
//! by injecting one into the backend's own output, and runs the negative
//! controls wrapped around the backend. [`Conformance::run`] returns a
//! [`ConformanceReport`]; a panic of the backend fails the check it
//! happened in (see `guard.rs`), and the run goes on. A cell the backend
//! declines on its first call there, with `Error::Unsupported`, is reported
//! as declined and not checked; a run passes only if it checked some cell.

use backprop_core::{Backend, FirstLayerSplit, FirstLayerUnits, Scalar};

use crate::case::Case;
use crate::checks::{self, Cancellation, Oracle};
use crate::controls::{Flawed, OutputFlaw};
use crate::guard::{caught, guarded};
use crate::matrix::{Cell, Matrix, Shape};
use crate::report::{CheckKind, CheckReport};
use crate::suite;
use crate::summary::{CellReport, ConformanceReport, ControlReport};

/// Seeds of the default run; [`Conformance::quick`] keeps the first.
pub const SEEDS: [u64; 5] = [1, 2, 3, 4, 5];

/// Thread counts a reproducible parallel backend is compared across by default.
pub const THREAD_COUNTS: [usize; 5] = [1, 2, 3, 4, 8];

/// The relative errors injected into a backend's gradient to measure the
/// smallest its oracle check rejects, largest first.
pub const SENSITIVITY_LADDER: [f64; 13] = [
    1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10, 1e-11, 1e-12, 1e-13, 1e-14,
];

/// A precision the protocol checks: `f64` against both oracles, `f32`
/// against the `f64` oracle on the same rounded values.
pub trait CheckPrecision: Scalar {
    /// The relative error of the controls that scale the gradient or one
    /// component: one the precision's oracle check must see.
    const CONTROL_ERROR: f64;

    /// The check against the exact derivative, [`CheckPrecision::oracle_check`]'s kind.
    const ORACLE_CHECK: CheckKind;

    /// The cell's case in this precision, and its oracle.
    fn prepared(cell: &Cell) -> (&Case<Self>, &Oracle);

    /// The cell's case in this precision, without computing its oracle.
    fn case(cell: &Cell) -> &Case<Self>;

    /// Every check of the protocol in this precision.
    fn checks(
        backend: &mut dyn Backend<Self>,
        case: &Case<Self>,
        oracle: &Oracle,
        seed: u64,
    ) -> Vec<CheckReport>;

    /// The check against the exact derivative: dual numbers in `f64`, the
    /// `f64` oracle in `f32`.
    fn oracle_check(
        backend: &mut dyn Backend<Self>,
        case: &Case<Self>,
        oracle: &Oracle,
    ) -> CheckReport;
}

impl CheckPrecision for f64 {
    const CONTROL_ERROR: f64 = 1e-9;
    const ORACLE_CHECK: CheckKind = CheckKind::DualNumbers;

    fn prepared(cell: &Cell) -> (&Case<f64>, &Oracle) {
        cell.f64()
    }

    fn case(cell: &Cell) -> &Case<f64> {
        &cell.case
    }

    fn checks(
        backend: &mut dyn Backend<f64>,
        case: &Case<f64>,
        oracle: &Oracle,
        seed: u64,
    ) -> Vec<CheckReport> {
        suite::check_f64_with(backend, case, oracle, seed)
    }

    fn oracle_check(
        backend: &mut dyn Backend<f64>,
        case: &Case<f64>,
        oracle: &Oracle,
    ) -> CheckReport {
        checks::dual_numbers(backend, case, oracle)
    }
}

impl CheckPrecision for f32 {
    const CONTROL_ERROR: f64 = 1e-4;
    const ORACLE_CHECK: CheckKind = CheckKind::F32AgainstF64;

    fn prepared(cell: &Cell) -> (&Case<f32>, &Oracle) {
        cell.f32()
    }

    fn case(cell: &Cell) -> &Case<f32> {
        cell.f32_case()
    }

    fn checks(
        backend: &mut dyn Backend<f32>,
        case: &Case<f32>,
        oracle: &Oracle,
        _seed: u64,
    ) -> Vec<CheckReport> {
        suite::check_f32_with(backend, case, oracle)
    }

    fn oracle_check(
        backend: &mut dyn Backend<f32>,
        case: &Case<f32>,
        oracle: &Oracle,
    ) -> CheckReport {
        checks::f32_against_f64(backend, case, oracle)
    }
}

/// Makes a fresh backend under test.
type Factory<T> = Box<dyn Fn() -> Box<dyn Backend<T>>>;
/// Makes the backend under test on a given number of threads.
type ThreadsFactory<T> = Box<dyn Fn(usize) -> Box<dyn Backend<T>>>;
/// Makes the backend under test as its first-layer split.
type SplitFactory<T> = Box<dyn Fn() -> Box<dyn FirstLayerSplit<T>>>;
/// Makes the backend under test as its first layer cut by hidden units.
type UnitsFactory<T> = Box<dyn Fn() -> Box<dyn FirstLayerUnits<T>>>;

/// The verification protocol for one backend in precision `T` (see the
/// crate docs for an example).
pub struct Conformance<T: CheckPrecision> {
    name: String,
    make: Factory<T>,
    on_threads: Option<(ThreadsFactory<T>, Vec<usize>)>,
    split: Option<SplitFactory<T>>,
    units: Option<UnitsFactory<T>>,
    seeds: Vec<u64>,
    shapes: Vec<Shape>,
    controls: bool,
    cancellation: Cancellation,
}

impl<T: CheckPrecision> Conformance<T> {
    /// The protocol for the backend `make` builds, reported as `name`: five
    /// seeds, the protocol and edge shapes, the negative controls.
    pub fn new<B: Backend<T> + 'static>(
        name: impl Into<String>,
        make: impl Fn() -> B + 'static,
    ) -> Self {
        Conformance {
            name: name.into(),
            make: Box::new(move || Box::new(make())),
            on_threads: None,
            split: None,
            units: None,
            seeds: SEEDS.to_vec(),
            shapes: Vec::new(),
            controls: true,
            cancellation: Cancellation::Forbidden,
        }
    }

    /// One seed instead of five.
    pub fn quick(mut self) -> Self {
        self.seeds.truncate(1);
        self
    }

    /// Draws the protocol shapes' cases from `seeds` (the first also for the
    /// edge and extra shapes); none keeps the default.
    pub fn seeds(mut self, seeds: &[u64]) -> Self {
        if !seeds.is_empty() {
            self.seeds = seeds.to_vec();
        }
        self
    }

    /// Adds a shape of the author's own, run for every activation and loss.
    pub fn shape(mut self, name: impl Into<String>, widths: &[usize], rows: usize) -> Self {
        self.shapes.push(Shape::new(name, widths, rows));
        self
    }

    /// For a parallel backend: `make(threads)` builds it, in a configuration
    /// meant to give the same bits whatever the thread count, on `threads`
    /// threads; each cell then checks the bits on every count in `threads`.
    pub fn reproducible_on<B: Backend<T> + 'static>(
        mut self,
        make: impl Fn(usize) -> B + 'static,
        threads: &[usize],
    ) -> Self {
        self.on_threads = Some((Box::new(move |t| Box::new(make(t))), threads.to_vec()));
        self
    }

    /// For a kernel that offers the first-layer split: `make` builds it, and
    /// each cell checks the split against the kernel's whole gradient.
    pub fn first_layer_split<S: FirstLayerSplit<T> + 'static>(
        mut self,
        make: impl Fn() -> S + 'static,
    ) -> Self {
        self.split = Some(Box::new(move || Box::new(make())));
        self
    }

    /// For a kernel that cuts the first layer by hidden units: `make` builds
    /// it, and each cell checks the cut against the kernel's whole gradient.
    pub fn first_layer_units<U: FirstLayerUnits<T> + 'static>(
        mut self,
        make: impl Fn() -> U + 'static,
    ) -> Self {
        self.units = Some(Box::new(move || Box::new(make())));
        self
    }

    /// The mode the tolerances are computed in. The default,
    /// [`Cancellation::Forbidden`], is the strict one the built-in backends
    /// are held to; [`Cancellation::Allowed`] admits kernels that form their
    /// slopes from the rounded activation (`a (1 - a)`, `1 - a^2`) and the
    /// softmax cross-entropy's `p - y` by subtraction, which cancel against
    /// 1 where units saturate. The report says which mode judged the kernel.
    pub fn cancellation(mut self, cancellation: Cancellation) -> Self {
        self.cancellation = cancellation;
        self
    }

    /// Leaves out the negative controls wrapped around the backend.
    pub fn without_controls(mut self) -> Self {
        self.controls = false;
        self
    }

    /// The matrix this run checks: its seeds and shapes.
    pub fn matrix(&self) -> Result<Matrix, backprop_core::Error> {
        Matrix::new(&self.seeds, &self.shapes)
    }

    /// Runs the protocol on [`Conformance::matrix`].
    pub fn run(&self) -> Result<ConformanceReport, backprop_core::Error> {
        Ok(self.run_on(&self.matrix()?, |_| {}))
    }

    /// Runs the protocol on `matrix` (which may be shared by several runs,
    /// so that its oracles are computed once), calling `progress` after
    /// each cell and each control.
    pub fn run_on(&self, matrix: &Matrix, mut progress: impl FnMut(&str)) -> ConformanceReport {
        let mut backend = (self.make)();
        let mut split = self.split.as_ref().map(|make| make());
        let mut units = self.units.as_ref().map(|make| make());
        let mut cells = Vec::with_capacity(matrix.cells.len());
        for cell in &matrix.cells {
            if let Some(reason) = checks::declined(&mut *backend, T::case(cell)) {
                cells.push(CellReport::declined(cell, reason));
                progress(&cell.shape);
                continue;
            }
            let mut checks = cell_checks(&mut *backend, cell, self.cancellation);
            let (case, oracle) = T::prepared(cell);
            let oracle = &*oracle.judging(self.cancellation);
            if let Some(split) = split.as_mut() {
                checks.push(guarded(CheckKind::FirstLayerSplit, || {
                    checks::first_layer_split(&mut **split, case, oracle)
                }));
            }
            if let Some(units) = units.as_mut() {
                checks.push(guarded(CheckKind::FirstLayerUnits, || {
                    checks::first_layer_units(&mut **units, case, oracle)
                }));
            }
            if let Some((make, threads)) = &self.on_threads {
                checks.push(guarded(CheckKind::ThreadCounts, || {
                    checks::thread_counts(make.as_ref(), case, threads)
                }));
            }
            // The cell's own oracle check already judged the gradient as it is.
            let rejected = checks
                .iter()
                .any(|r| r.kind == T::ORACLE_CHECK && !r.passed());
            let detectable = if rejected {
                f64::NAN
            } else {
                match caught(|| smallest_rejected_scale(&mut *backend, case, oracle)) {
                    Ok(detectable) => detectable,
                    Err(message) => {
                        let failure = format!("while its sensitivity was measured, {message}");
                        checks.push(CheckReport::failed(T::ORACLE_CHECK, failure));
                        f64::NAN
                    }
                }
            };
            cells.push(CellReport::new(cell, checks, detectable));
            progress(&cell.shape);
        }
        let controls = if self.controls {
            OutputFlaw::all(T::CONTROL_ERROR)
                .into_iter()
                .map(|flaw| {
                    let mut flawed = Flawed::new((self.make)(), flaw);
                    let report =
                        control_report(flaw.to_string(), &mut flawed, matrix, self.cancellation);
                    progress(&report.control);
                    report
                })
                .collect()
        } else {
            Vec::new()
        };
        ConformanceReport {
            name: self.name.clone(),
            dtype: <T as Scalar>::NAME,
            cancellation: self.cancellation,
            cells,
            controls,
        }
    }
}

/// Every check of the protocol in `T` on one cell, with the tolerances of
/// `cancellation`: the saturation check where the cell's units saturate,
/// and no finite differences where its values overflow.
pub fn cell_checks<T: CheckPrecision>(
    backend: &mut dyn Backend<T>,
    cell: &Cell,
    cancellation: Cancellation,
) -> Vec<CheckReport> {
    let (case, oracle) = T::prepared(cell);
    let oracle = oracle.judging(cancellation);
    let mut checks = T::checks(backend, case, &oracle, cell.seed);
    if cell.overflowing {
        // The loss's own rounding there, `u |z|` with `|z|` about 750, is
        // beyond what the finite differences' error estimate bounds: the
        // dual numbers, which carry it, judge these cells' gradients.
        checks.retain(|report| report.kind != CheckKind::FiniteDifferences);
    }
    if cell.saturating {
        checks.push(guarded(CheckKind::Saturation, || {
            checks::saturation(backend, case, &oracle)
        }));
    }
    checks
}

/// The smallest relative error of the ladder that the oracle check rejects
/// when injected into `backend`'s own gradient as a factor `1 + e`; infinite
/// if even the largest passes. For a gradient the oracle check rejects as it
/// is, the caller records NaN instead: scaling it shows nothing. Rejection
/// grows with `e`, so the ladder is searched by bisection: a handful of
/// gradient calls per cell.
fn smallest_rejected_scale<T: CheckPrecision>(
    backend: &mut dyn Backend<T>,
    case: &Case<T>,
    oracle: &Oracle,
) -> f64 {
    let mut rejects = |e: f64| {
        let mut flawed = Flawed::new(&mut *backend, OutputFlaw::ScaledGradient(e));
        !T::oracle_check(&mut flawed, case, oracle).passed()
    };
    // Invariant: every rung before `low` is rejected, none from `high` on.
    let (mut low, mut high) = (0, SENSITIVITY_LADDER.len());
    while low < high {
        let middle = (low + high) / 2;
        if rejects(SENSITIVITY_LADDER[middle]) {
            low = middle + 1;
        } else {
            high = middle;
        }
    }
    match low {
        0 => f64::INFINITY,
        rung => SENSITIVITY_LADDER[rung - 1],
    }
}

/// Runs every check in `T` on the matrix's control cells for a deliberately
/// wrong backend, with the tolerances of `cancellation`, and says which
/// checks caught it. The cells the backend declines are left out and not
/// counted.
pub fn control_report<T: CheckPrecision>(
    control: String,
    backend: &mut dyn Backend<T>,
    matrix: &Matrix,
    cancellation: Cancellation,
) -> ControlReport {
    let mut caught_by: Vec<CheckKind> = Vec::new();
    let mut cells = 0;
    for cell in matrix.control_cells() {
        if checks::declined(backend, T::case(cell)).is_some() {
            continue;
        }
        for report in cell_checks(backend, cell, cancellation) {
            if !report.passed() && !caught_by.contains(&report.kind) {
                caught_by.push(report.kind);
            }
        }
        cells += 1;
    }
    caught_by.sort_by_key(|kind| CheckKind::ALL.iter().position(|k| k == kind));
    ControlReport {
        control,
        caught_by,
        cells,
    }
}
