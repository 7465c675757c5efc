//! `cargo xtask verify`: the conformance protocol on every registered backend and precision, then the negative controls.
//!
//! A thin command line over `backprop_verify::Conformance`: the matrix, the
//! checks, the table and the JSON are the library's, so that what an author
//! runs on their own kernel and what this prints cannot drift apart.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::{Context, bail};
use backprop::{BackendKind, FaerBackend, Precision, SimdBackend, ThreadPool, ThreadPoolBuilder};
use backprop_verify::conformance::{THREAD_COUNTS, control_report};
use backprop_verify::{
    Cancellation, CheckPrecision, Conformance, ConformanceReport, Control, ControlReport, Flaw,
    Matrix,
};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

const USAGE: &str = "usage: cargo xtask verify [--quick] [--json PATH] [--backend NAME] [--seed N]

  --quick         one seed instead of five
  --json PATH     write the whole report (every cell, every check, the controls) as JSON
  --backend NAME  check only this backend (the negative controls always run)
  --seed N        draw every case from seed N only, to replay a cell";

/// The relative error of the built-in controls that scale the gradient or one component.
const CONTROL_ERROR: f64 = 1e-8;

struct Options {
    seeds: Vec<u64>,
    json: Option<PathBuf>,
    backends: Vec<BackendKind>,
}

fn parse(args: &[String]) -> anyhow::Result<Options> {
    let mut options = Options {
        seeds: backprop_verify::conformance::SEEDS.to_vec(),
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

/// The protocol for one registered backend in precision `T`. A parallel
/// backend is checked in its default scheme forced to fork for every batch,
/// on 2 threads (its default configuration runs batches this small as one
/// partition on the calling thread, which is the inner backend's own run),
/// and across thread counts in its reproducible configuration; the faer
/// kernel's first-layer split is checked too.
fn conformance<T: Precision + CheckPrecision>(
    kind: BackendKind,
    pools: &Arc<Pools>,
) -> Conformance<T> {
    let forking_pool = pools.get(2);
    let mut conformance = Conformance::new(kind.name(), move || {
        kind.create_forking::<T>(Arc::clone(&forking_pool))
    });
    if kind.is_parallel() {
        let pools = Arc::clone(pools);
        let make = move |threads| kind.create_reproducible::<T>(pools.get(threads));
        conformance = conformance.reproducible_on(make, &THREAD_COUNTS);
    }
    if kind == BackendKind::Faer {
        conformance = conformance.first_layer_split(FaerBackend::<T>::sequential);
    }
    if kind == BackendKind::Simd {
        conformance = conformance
            .first_layer_split(SimdBackend::<T>::new)
            .first_layer_units(SimdBackend::<T>::new);
    }
    conformance
}

/// Runs the report; `Ok(false)` when any check failed or any control passed.
pub(crate) fn run(args: &[String]) -> anyhow::Result<bool> {
    let options = parse(args)?;
    let pools = Arc::new(Pools::build()?);
    let matrix = Matrix::new(&options.seeds, &[]).context("building the case matrix")?;
    let controls = Control::all(CONTROL_ERROR);
    let control_cells = matrix.control_cells().count();
    let wrapped = 5 * control_cells;
    let work = options.backends.len() * 2 * (matrix.cells.len() + wrapped)
        + (controls.len() + 4) * control_cells;
    let progress = ProgressBar::new(work as u64);
    progress.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} {msg} [{elapsed}]")
            .expect("a valid template"),
    );

    // One run per backend and precision, shared out over the cores; the
    // matrix's oracles are computed once, by whichever run needs them first.
    let runs: Vec<(BackendKind, bool)> = options
        .backends
        .iter()
        .flat_map(|&kind| [(kind, true), (kind, false)])
        .collect();
    let next = AtomicUsize::new(0);
    let finished: Mutex<Vec<(usize, ConformanceReport)>> = Mutex::new(Vec::new());
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let order = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&(kind, wide)) = runs.get(order) else {
                        break;
                    };
                    progress.set_message(format!("{kind}"));
                    let tick = |_: &str| progress.inc(1);
                    let report = if wide {
                        conformance::<f64>(kind, &pools).run_on(&matrix, tick)
                    } else {
                        conformance::<f32>(kind, &pools).run_on(&matrix, tick)
                    };
                    finished
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push((order, report));
                }
            });
        }
    });
    let mut finished = finished
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    finished.sort_by_key(|(order, _)| *order);
    let reports: Vec<ConformanceReport> = finished.into_iter().map(|(_, report)| report).collect();
    progress.set_message("controls");
    let builtin: Vec<_> = controls
        .iter()
        .map(|control| {
            let name = control.to_string();
            let backend = &mut *control.backend();
            let report = control_report::<f64>(name, backend, &matrix, Cancellation::Forbidden);
            progress.inc(control_cells as u64);
            report
        })
        .collect();
    let modes = cancellation_modes(&matrix, || progress.inc(control_cells as u64));
    progress.finish_and_clear();

    let mixed = matrix.cells.iter().filter(|cell| cell.mixed).count();
    let saturating = matrix.cells.iter().filter(|cell| cell.saturating).count();
    let overflowing = matrix.cells.iter().filter(|cell| cell.overflowing).count();
    println!(
        "{} cells per backend and dtype: the protocol shapes with seeds {:?}, the tile-edge shapes with seed {}, each for every activation and loss, {mixed} cells whose layers differ in activation, {saturating} cells whose units saturate and {overflowing} whose values overflow a naive exponential.",
        matrix.cells.len(),
        options.seeds,
        options.seeds.first().copied().unwrap_or(1)
    );
    println!(
        "Each column: the worst error-to-tolerance ratio of that check over all cells (pass at <= 1);"
    );
    println!(
        "sat: the worst norm-wise relative error against the exact gradient on the saturating cells;"
    );
    println!("kinks: finite-difference components excluded at ReLU kinks, counted.");
    println!(
        "Every backend judged {}.\n",
        Cancellation::Forbidden.describe()
    );
    println!("{}", ConformanceReport::header());
    for report in &reports {
        println!("{}", report.row());
    }
    println!();
    for report in &reports {
        println!("{}", report.sensitivity());
    }
    for report in &reports {
        for failure in report.failures(20) {
            println!("  {failure}");
        }
    }
    println!(
        "\nNegative controls wrapped around each backend ({} cells each); each must be rejected:",
        control_cells
    );
    let mut wrapped_by: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for report in &reports {
        for control in &report.controls {
            let label = format!("{} {}", report.name, report.dtype);
            let caught: Vec<&str> = control.caught_by.iter().map(|k| k.label()).collect();
            let line = if control.cells == 0 {
                format!("{label} NOT RUN")
            } else if control.rejected() {
                format!("{label} ({})", caught.join(", "))
            } else {
                format!("{label} ACCEPTED")
            };
            wrapped_by
                .entry(control.control.clone())
                .or_default()
                .push(line);
        }
    }
    for (control, lines) in &wrapped_by {
        println!("  {control:<34} {}", lines.join("; "));
    }
    println!(
        "\nBuilt-in negative controls, through the same f64 checks on {control_cells} cells; each must be rejected:"
    );
    for control in &builtin {
        println!("  {}", control.line());
    }

    println!(
        "\nThe two modes on the same {control_cells} cells: strict must reject slopes from the rounded activation, the allowance must accept them:"
    );
    let mut modes_right = true;
    for (dtype, cancellation, report) in &modes {
        let right = report.rejected() == (*cancellation == Cancellation::Forbidden);
        modes_right &= right;
        let verdict = match (report.rejected(), right) {
            (true, _) => {
                let caught: Vec<&str> = report.caught_by.iter().map(|k| k.label()).collect();
                format!("rejected by {}", caught.join(", "))
            }
            (false, true) => "accepted".to_owned(),
            (false, false) => "ACCEPTED: the strict checks are too weak".to_owned(),
        };
        let verdict = if report.rejected() && !right {
            format!("{verdict}: the allowance is too narrow")
        } else {
            verdict
        };
        let mode = match cancellation {
            Cancellation::Forbidden => "strict",
            Cancellation::Allowed => "allowance",
        };
        println!("  {dtype} {mode:<9} {verdict}");
    }

    let checks_passed = reports.iter().all(ConformanceReport::passed);
    let rejected = builtin.iter().filter(|c| c.rejected()).count();
    let all_passed = checks_passed && rejected == builtin.len() && modes_right;
    println!(
        "\nverdict: {} ({} backends x 2 dtypes x {} cells, {} wrapped controls each; {rejected} of {} built-in controls rejected)",
        if all_passed { "PASS" } else { "FAIL" },
        options.backends.len(),
        matrix.cells.len(),
        reports.first().map_or(0, |r| r.controls.len()),
        builtin.len()
    );

    if let Some(path) = &options.json {
        let report = json!({
            "passed": all_passed,
            "seeds": options.seeds,
            "backends": reports.iter().map(ConformanceReport::to_json).collect::<Vec<_>>(),
            "controls": builtin.iter().map(|c| c.to_json()).collect::<Vec<_>>(),
            "modes": modes.iter().map(|(dtype, cancellation, report)| json!({
                "dtype": dtype,
                "allowance": *cancellation == Cancellation::Allowed,
                "control": report.to_json(),
            })).collect::<Vec<_>>(),
        });
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(all_passed)
}

/// The control that forms its slopes from the rounded activation, in both
/// dtypes and both modes: `(dtype, mode, what the checks made of it)`.
fn cancellation_modes(
    matrix: &Matrix,
    mut progress: impl FnMut(),
) -> Vec<(&'static str, Cancellation, ControlReport)> {
    let control = Control::Kernel(Flaw::SlopesFromActivation);
    let mut modes = Vec::new();
    for cancellation in [Cancellation::Forbidden, Cancellation::Allowed] {
        let name = control.to_string();
        let wide =
            control_report::<f64>(name.clone(), &mut *control.backend(), matrix, cancellation);
        progress();
        let narrow = control_report::<f32>(name, &mut *control.backend(), matrix, cancellation);
        progress();
        modes.push(("f64", cancellation, wide));
        modes.push(("f32", cancellation, narrow));
    }
    modes
}
