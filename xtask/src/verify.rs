//! `cargo xtask verify`: every check on every backend, precision and case, then the negative controls.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use backprop::{Activation, Architecture, BackendKind, Loss, ThreadPool, ThreadPoolBuilder};
use backprop_verify::suite::{check_f32, check_f64};
use backprop_verify::{Case, CheckKind, CheckReport, ControlBackend, Flaw, checks};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

const USAGE: &str = "usage: cargo xtask verify [--quick] [--json PATH] [--backend NAME] [--seed N]

  --quick         one seed instead of five
  --json PATH     write the whole report (every cell, every check, the controls) as JSON
  --backend NAME  check only this backend (the negative controls always run)
  --seed N        draw every case from seed N only, to replay a cell";

/// Seeds of the default run; `--quick` keeps the first.
const SEEDS: [u64; 5] = [1, 2, 3, 4, 5];
/// Thread counts a parallel backend's reproducible configuration is run on.
const THREAD_COUNTS: [usize; 5] = [1, 2, 3, 4, 8];
/// The relative scale error of the `f64` scaled-gradient control.
const SCALE_ERROR: f64 = 1e-8;

struct Options {
    seeds: Vec<u64>,
    json: Option<PathBuf>,
    backends: Vec<BackendKind>,
}

fn parse(args: &[String]) -> anyhow::Result<Options> {
    let mut options = Options {
        seeds: SEEDS.to_vec(),
        json: None,
        backends: BackendKind::ALL.to_vec(),
    };
    crate::for_each_arg(args, USAGE, |arg, value| {
        match arg {
            "--quick" => options.seeds.truncate(1),
            "--json" => options.json = Some(PathBuf::from(value()?)),
            "--backend" => options.backends = vec![value()?.parse()?],
            "--seed" => {
                let seed = value()?;
                options.seeds = vec![
                    seed.parse()
                        .with_context(|| format!("--seed takes a number, got '{seed}'"))?,
                ];
            }
            other => bail!("unknown option '{other}'\n{USAGE}"),
        }
        Ok(())
    })?;
    Ok(options)
}

/// One case of the matrix and what it is.
struct Cell {
    shape: &'static str,
    seed: u64,
    case: Case<f64>,
}

/// The shapes of the matrix: the seed network, a deep one, a width-1
/// layer, a single layer, a batch of one.
const SHAPES: [(&str, &[usize], usize); 5] = [
    ("seed n-h-m", &[4, 5, 3], 8),
    ("4 layers", &[5, 8, 6, 4, 3], 6),
    ("width 1", &[3, 1, 4, 2], 5),
    ("1 layer", &[6, 3], 7),
    ("batch 1", &[4, 6, 3], 1),
];

/// Every activation (hidden, and output for MSE; identity outputs for
/// softmax cross-entropy) x both losses x every shape x every seed. The
/// 4-layer ReLU cases pin a neuron on its kink, to show that such components
/// are excluded and counted.
fn cells(seeds: &[u64]) -> Vec<Cell> {
    let mut cells = Vec::new();
    for activation in Activation::ALL {
        for loss in Loss::ALL {
            let output = match loss {
                Loss::Mse => activation,
                Loss::SoftmaxCrossEntropy => Activation::Identity,
            };
            for (shape, widths, rows) in SHAPES {
                let architecture =
                    Architecture::with_hidden_and_output(widths, activation, output, loss)
                        .expect("a valid architecture");
                for &seed in seeds {
                    let case = Case::random(architecture.clone(), rows, seed);
                    let on_kink = activation == Activation::Relu && shape == "4 layers";
                    let case = if on_kink {
                        case.pin_first_neuron_at_kink()
                    } else {
                        case
                    };
                    cells.push(Cell { shape, seed, case });
                }
            }
        }
    }
    cells
}

/// The thread pools the parallel backends are checked on, one per thread count.
struct Pools(BTreeMap<usize, Arc<ThreadPool>>);

impl Pools {
    /// Pools of 2 threads (the forking checks) and of each of [`THREAD_COUNTS`].
    fn build() -> anyhow::Result<Self> {
        let mut pools = BTreeMap::new();
        for threads in THREAD_COUNTS.into_iter().chain([2]) {
            let pool = ThreadPoolBuilder::new().num_threads(threads).build();
            let pool = pool.with_context(|| format!("building a pool of {threads} threads"))?;
            pools.insert(threads, Arc::new(pool));
        }
        Ok(Pools(pools))
    }

    /// The pool of `threads` threads (built for every count the checks use).
    fn get(&self, threads: usize) -> Arc<ThreadPool> {
        Arc::clone(&self.0[&threads])
    }
}

/// Every check for one backend, precision and cell. A parallel backend is
/// checked in its default scheme forced to fork for every batch, on 2
/// threads (its default configuration runs batches this small as one
/// partition on the calling thread, which is the inner backend's own row),
/// and across thread counts in its reproducible configuration.
fn check_cell(kind: BackendKind, dtype: &str, cell: &Cell, pools: &Pools) -> Vec<CheckReport> {
    let seed = cell.seed;
    match dtype {
        "f64" => {
            let mut forking = kind.create_forking::<f64>(pools.get(2));
            let mut reports = check_f64(&mut *forking, &cell.case, seed);
            if kind.is_parallel() {
                let make = |threads| kind.create_reproducible::<f64>(pools.get(threads));
                reports.push(checks::thread_counts(&make, &cell.case, &THREAD_COUNTS));
            }
            reports
        }
        _ => {
            let mut forking = kind.create_forking::<f32>(pools.get(2));
            let mut reports = check_f32(&mut *forking, &cell.case);
            if kind.is_parallel() {
                let make = |threads| kind.create_reproducible::<f32>(pools.get(threads));
                reports.push(checks::thread_counts(
                    &make,
                    &cell.case.to_precision(),
                    &THREAD_COUNTS,
                ));
            }
            reports
        }
    }
}

/// The worst report of each check over many cells.
#[derive(Default)]
struct Summary {
    worst: BTreeMap<usize, CheckReport>,
    excluded_at_kinks: usize,
    /// The largest, over cells, of the smallest uniform relative gradient
    /// error the cell's oracle check detects: every cell catches a gradient
    /// scaled by `1 + e` for `e` above this.
    detectable: f64,
}

impl Summary {
    fn add(&mut self, reports: &[CheckReport]) {
        for report in reports {
            // A cell whose gradient is all zero (every unit dead) scales to itself: skip it.
            let gradient_check = matches!(
                report.kind,
                CheckKind::DualNumbers | CheckKind::F32AgainstF64
            );
            if gradient_check && report.detectable_relative_error.is_finite() {
                self.detectable = self.detectable.max(report.detectable_relative_error);
            }
            self.excluded_at_kinks += report.excluded;
            let column = CheckKind::ALL
                .iter()
                .position(|&k| k == report.kind)
                .expect("a known check");
            let worse = match self.worst.get(&column) {
                None => true,
                // A NaN ratio or an error is worse than any number.
                Some(current) => {
                    report.worst_ratio.is_nan()
                        || report.worst_ratio > current.worst_ratio
                        || report.failure.is_some()
                }
            };
            if worse {
                self.worst.insert(column, report.clone());
            }
        }
    }

    fn passed(&self) -> bool {
        self.worst.values().all(CheckReport::passed)
    }

    fn row(&self, label: &str) -> String {
        let mut row = format!("{label:<18}");
        for column in 0..CheckKind::ALL.len() {
            let cell = match self.worst.get(&column) {
                None => "-".to_owned(),
                Some(report) if report.passed() => format!("{:.2e}", report.worst_ratio),
                Some(report) => format!("FAIL {:.1e}", report.worst_ratio),
            };
            row.push_str(&format!(" {cell:>9}"));
        }
        row.push_str(&format!(
            " {:>6}  {}",
            self.excluded_at_kinks,
            if self.passed() { "pass" } else { "FAIL" }
        ));
        row
    }

    fn caught_by(&self) -> Vec<&'static str> {
        self.worst
            .values()
            .filter(|r| !r.passed())
            .map(|r| r.kind.label())
            .collect()
    }
}

fn header() -> String {
    let mut header = format!("{:<18}", "backend dtype");
    for kind in CheckKind::ALL {
        header.push_str(&format!(" {:>9}", kind.label()));
    }
    header.push_str(&format!(" {:>6}  verdict", "kinks"));
    header
}

fn report_json(report: &CheckReport) -> Value {
    json!({
        "check": report.kind.label(),
        "passed": report.passed(),
        "worst_ratio": report.worst_ratio,
        "compared": report.compared,
        "excluded_at_kinks": report.excluded,
        "detectable_relative_error": report.detectable_relative_error,
        "failure": report.failure,
        "worst": report.worst.map(|w| json!({
            "at": w.quantity.to_string(),
            "actual": w.actual,
            "expected": w.expected,
            "tolerance": w.tolerance,
        })),
    })
}

fn cell_json(backend: &str, dtype: &str, cell: &Cell, reports: &[CheckReport]) -> Value {
    let architecture = cell.case.network.architecture();
    json!({
        "backend": backend,
        "dtype": dtype,
        "shape": cell.shape,
        "widths": architecture.widths(),
        "activations": architecture.activations().iter().map(|a| a.name()).collect::<Vec<_>>(),
        "loss": architecture.loss().name(),
        "rows": cell.case.rows,
        "seed": cell.seed,
        "passed": reports.iter().all(CheckReport::passed),
        "checks": reports.iter().map(report_json).collect::<Vec<_>>(),
    })
}

/// Runs the report; `Ok(false)` when any check failed or any control passed.
pub(crate) fn run(args: &[String]) -> anyhow::Result<bool> {
    let options = parse(args)?;
    let pools = Pools::build()?;
    let cells = cells(&options.seeds);
    // The controls run where every mistake is visible: several outputs, layers and rows.
    let control_cells: Vec<&Cell> = cells
        .iter()
        .filter(|cell| {
            let architecture = cell.case.network.architecture();
            architecture.output_width() > 1 && architecture.layer_count() > 1 && cell.case.rows > 1
        })
        .collect();
    let flaws = Flaw::all(SCALE_ERROR);
    let work = options.backends.len() * 2 * cells.len() + flaws.len() * control_cells.len();
    let progress = ProgressBar::new(work as u64);
    progress.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} {msg} [{elapsed}]")
            .expect("a valid template"),
    );

    let mut rows = Vec::new();
    let mut cell_reports = Vec::new();
    let mut failures = Vec::new();
    for &kind in &options.backends {
        for dtype in ["f64", "f32"] {
            progress.set_message(format!("{kind} {dtype}"));
            let mut summary = Summary::default();
            for cell in &cells {
                let reports = check_cell(kind, dtype, cell, &pools);
                summary.add(&reports);
                for failed in reports.iter().filter(|r| !r.passed()) {
                    failures.push(format!(
                        "{kind} {dtype} {} {} rows {} seed {}: {failed}",
                        cell.shape,
                        cell.case.network.architecture(),
                        cell.case.rows,
                        cell.seed
                    ));
                }
                cell_reports.push(cell_json(kind.name(), dtype, cell, &reports));
                progress.inc(1);
            }
            rows.push((format!("{kind} {dtype}"), summary));
        }
    }

    let mut controls = Vec::new();
    for flaw in flaws {
        progress.set_message(format!("control: {flaw}"));
        let mut summary = Summary::default();
        let mut cells_json = Vec::new();
        for cell in &control_cells {
            let reports = check_f64(&mut ControlBackend::<f64>::new(flaw), &cell.case, cell.seed);
            summary.add(&reports);
            cells_json.push(cell_json("control", "f64", cell, &reports));
            progress.inc(1);
        }
        controls.push((flaw, summary, cells_json));
    }
    progress.finish_and_clear();

    println!(
        "{} cells per backend and dtype: {} shapes x {} activations x {} losses x {} seed(s) {:?}.",
        cells.len(),
        SHAPES.len(),
        Activation::ALL.len(),
        Loss::ALL.len(),
        options.seeds.len(),
        options.seeds
    );
    println!(
        "Each column: the worst error-to-tolerance ratio of that check over all cells (pass at <= 1);"
    );
    println!("kinks: finite-difference components excluded at ReLU kinks, counted.\n");
    println!("{}", header());
    let mut all_passed = true;
    for (label, summary) in &rows {
        println!("{}", summary.row(label));
        all_passed &= summary.passed();
    }
    println!();
    for (label, summary) in &rows {
        println!(
            "{label:<18} every cell's {} check catches a gradient scaled by 1 + e for any e above {:.1e}",
            if label.ends_with("f64") {
                "dual"
            } else {
                "f32/f64"
            },
            summary.detectable
        );
    }
    for failure in failures.iter().take(20) {
        println!("  {failure}");
    }
    if failures.len() > 20 {
        println!("  ... and {} more failures", failures.len() - 20);
    }

    println!(
        "\nNegative controls, through the same f64 checks on {} cells; each must be rejected:",
        control_cells.len()
    );
    let mut controls_json = Vec::new();
    let mut rejected = 0;
    for (flaw, summary, cells_json) in controls {
        let caught = summary.caught_by();
        if caught.is_empty() {
            all_passed = false;
            println!(
                "  {:<34} ACCEPTED: the checks are too weak",
                flaw.to_string()
            );
        } else {
            rejected += 1;
            println!(
                "  {:<34} rejected by {}",
                flaw.to_string(),
                caught.join(", ")
            );
        }
        controls_json.push(json!({
            "control": flaw.to_string(),
            "rejected": !caught.is_empty(),
            "caught_by": caught,
            "cells": cells_json,
        }));
    }
    let backends = options
        .backends
        .iter()
        .map(|k| k.name())
        .collect::<Vec<_>>();
    println!(
        "\nverdict: {} ({} backends x 2 dtypes x {} cells; {rejected} of {} controls rejected)",
        if all_passed { "PASS" } else { "FAIL" },
        backends.len(),
        cells.len(),
        flaws.len()
    );

    if let Some(path) = &options.json {
        let report = json!({
            "passed": all_passed,
            "seeds": options.seeds,
            "backends": backends,
            "cells": cell_reports,
            "controls": controls_json,
        });
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(all_passed)
}
