//! `cargo xtask bench`: runs the criterion benches, then tabulates, saves and plots their medians.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::plot;

const USAGE: &str = "usage: cargo xtask bench [--quick] [--json PATH] [--svg PATH] [FILTER]

  --quick      criterion's quick mode: each benchmark until its estimate settles (a few minutes in all)
  --json PATH  write every step's record {shape, widths, batch, dtype, backend, ns_per_step, gflops}
  --svg PATH   where to draw the plot [default: target/bench.svg]
  --no-run     report the results criterion already holds, without running the benches
  FILTER       a criterion filter, such as S/ or faer";

/// The shapes of the benchmark protocol, as the benches name their groups.
pub(crate) const SHAPES: [(&str, [usize; 3], usize); 3] = [
    ("S", [64, 32, 10], 64),
    ("M", [784, 256, 10], 128),
    ("L", [1024, 1024, 1024], 1024),
];

/// A shape's `f32` target in ns per step, and other libraries' times in ns.
type Target = (&'static str, f64, [(&'static str, f64); 3]);

/// Time per `f32` step the best backend must reach on each shape, and what
/// numpy by hand, JAX jit and PyTorch eager take on this machine class (DESIGN.md).
const TARGETS: [Target; 3] = [
    (
        "S",
        20e3,
        [("numpy", 80e3), ("JAX", 132e3), ("PyTorch", 564e3)],
    ),
    (
        "M",
        0.8e6,
        [("numpy", 1.25e6), ("JAX", 1.36e6), ("PyTorch", 1.59e6)],
    ),
    (
        "L",
        50e6,
        [("numpy", 85e6), ("JAX", 65e6), ("PyTorch", 56.6e6)],
    ),
];

/// One measured step.
#[derive(Clone, Debug)]
pub(crate) struct Record {
    pub(crate) shape: String,
    pub(crate) widths: [usize; 3],
    pub(crate) batch: usize,
    pub(crate) dtype: String,
    pub(crate) backend: String,
    pub(crate) ns_per_step: f64,
}

impl Record {
    /// `6 B sum d_{l-1} d_l` over the time per step.
    pub(crate) fn gflops(&self) -> f64 {
        let [n, h, m] = self.widths;
        6.0 * self.batch as f64 * (n * h + h * m) as f64 / self.ns_per_step
    }
}

struct Options {
    quick: bool,
    no_run: bool,
    json: Option<PathBuf>,
    svg: PathBuf,
    filter: Option<String>,
}

fn parse(args: &[String], root: &Path) -> anyhow::Result<Options> {
    let mut options = Options {
        quick: false,
        no_run: false,
        json: None,
        svg: root.join("target").join("bench.svg"),
        filter: None,
    };
    crate::for_each_arg(args, USAGE, |arg, value| {
        match arg {
            "--quick" => options.quick = true,
            "--no-run" => options.no_run = true,
            "--json" => options.json = Some(PathBuf::from(value()?)),
            "--svg" => options.svg = PathBuf::from(value()?),
            flag if flag.starts_with('-') => bail!("unknown option '{flag}'\n{USAGE}"),
            filter => options.filter = Some(filter.to_owned()),
        }
        Ok(())
    })?;
    Ok(options)
}

/// Every `new/benchmark.json` under `dir` written since `since`, with its median in ns.
fn read_results(
    dir: &Path,
    since: SystemTime,
    found: &mut Vec<(Value, f64)>,
) -> anyhow::Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() {
            read_results(&path, since, found)?;
            continue;
        }
        let in_new = path
            .parent()
            .and_then(Path::file_name)
            .is_some_and(|name| name == "new");
        if !in_new || path.file_name().is_none_or(|name| name != "benchmark.json") {
            continue;
        }
        if std::fs::metadata(&path)?.modified()? < since {
            continue;
        }
        let id: Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
        let estimates_path = path.with_file_name("estimates.json");
        let estimates: Value = serde_json::from_str(
            &std::fs::read_to_string(&estimates_path)
                .with_context(|| format!("reading {}", estimates_path.display()))?,
        )?;
        let median = estimates["median"]["point_estimate"]
            .as_f64()
            .with_context(|| format!("no median in {}", estimates_path.display()))?;
        found.push((id, median));
    }
    Ok(())
}

/// The machine's peaks in GFLOP/s: `f32` and `f64` for a faer GEMM on every
/// core (the key the plot draws), `f32 gemm-1t` for one thread, `f32 fma-1t`
/// for one core's FMA loop.
pub(crate) type Peaks = BTreeMap<String, f64>;

/// The key of a peak measured by the bench function `function` for `dtype`.
fn peak_key(dtype: &str, function: &str) -> String {
    if function == "gemm" {
        dtype.to_owned()
    } else {
        format!("{dtype} {function}")
    }
}

/// Splits the results into step records (groups `S/f32`, `sweep-M/f32`, ...) and peaks.
fn records(results: &[(Value, f64)]) -> (Vec<Record>, Peaks) {
    let mut steps = Vec::new();
    let mut peaks = BTreeMap::new();
    for (id, median) in results {
        let group = id["group_id"].as_str().unwrap_or_default();
        let function = id["function_id"].as_str().unwrap_or_default();
        let value = id["value_str"].as_str();
        let Some((shape, dtype)) = group.split_once('/') else {
            continue;
        };
        if shape == "peak" {
            // A GEMM's parameter is its side, the FMA loop's its flop count.
            let parameter: f64 = value.and_then(|v| v.parse().ok()).unwrap_or(0.0);
            let flops = if function.starts_with("fma") {
                parameter
            } else {
                2.0 * parameter.powi(3)
            };
            peaks.insert(peak_key(dtype, function), flops / median);
            continue;
        }
        let (shape, backend, batch) = match (shape.strip_prefix("sweep-"), value) {
            (Some(shape), Some(batch)) => {
                (format!("{shape}@{batch}"), function, batch.parse().ok())
            }
            (None, _) => (shape.to_owned(), value.unwrap_or(function), None),
            _ => continue,
        };
        let base = shape.split('@').next().unwrap_or_default();
        let Some(&(_, widths, rows)) = SHAPES.iter().find(|(name, _, _)| *name == base) else {
            continue;
        };
        steps.push(Record {
            shape,
            widths,
            batch: batch.unwrap_or(rows),
            dtype: dtype.to_owned(),
            backend: backend.to_owned(),
            ns_per_step: *median,
        });
    }
    steps.sort_by(|a, b| {
        (a.shape.len(), &a.shape, a.batch, &a.dtype, &a.backend).cmp(&(
            b.shape.len(),
            &b.shape,
            b.batch,
            &b.dtype,
            &b.backend,
        ))
    });
    (steps, peaks)
}

/// A duration in the unit that reads best.
pub(crate) fn human(ns: f64) -> String {
    match ns {
        ns if ns < 1e3 => format!("{ns:.0} ns"),
        ns if ns < 1e6 => format!("{:.1} us", ns / 1e3),
        ns if ns < 1e9 => format!("{:.2} ms", ns / 1e6),
        ns => format!("{:.2} s", ns / 1e9),
    }
}

fn print_table(steps: &[Record], peaks: &Peaks) {
    println!(
        "\n{:<10} {:<5} {:<15} {:>11} {:>9} {:>7} {:>8} {:>9}",
        "shape", "dtype", "backend", "median/step", "GFLOP/s", "% peak", "% 1 FMA", "x naive"
    );
    for record in steps {
        let naive = steps
            .iter()
            .find(|r| r.shape == record.shape && r.dtype == record.dtype && r.backend == "naive");
        let speedup = naive.map_or_else(
            || "-".to_owned(),
            |n| format!("{:.1}", n.ns_per_step / record.ns_per_step),
        );
        let percent = |key: &str| {
            peaks.get(key).map_or_else(
                || "-".to_owned(),
                |p| format!("{:.1}", 100.0 * record.gflops() / p),
            )
        };
        println!(
            "{:<10} {:<5} {:<15} {:>11} {:>9.2} {:>7} {:>8} {:>9}",
            record.shape,
            record.dtype,
            record.backend,
            human(record.ns_per_step),
            record.gflops(),
            percent(&record.dtype),
            percent(&peak_key(&record.dtype, "fma-1t")),
            speedup
        );
    }
    for (key, peak) in peaks {
        let what = match key.split_once(' ') {
            None => "a faer 2048^3 GEMM on every core",
            Some((_, "gemm-1t")) => "a faer 2048^3 GEMM on one thread",
            Some((_, "fma-1t")) => "one core's FMA loop (\"% 1 FMA\")",
            Some(_) => "another measure",
        };
        println!("peak ({key}): {peak:.1} GFLOP/s, {what}");
    }
    println!(
        "GFLOP/s count 6 B sum d_(l-1) d_l, which includes the input layer's delta that no backend\n\
         computes (a third of the work on M, a sixth on L), so a step can pass the GEMM peak."
    );
    println!(
        "\nf32 targets (best backend) against numpy by hand, JAX jit and PyTorch eager on this machine class:"
    );
    for (shape, target, others) in TARGETS {
        let best = steps
            .iter()
            .filter(|r| r.shape == shape && r.dtype == "f32")
            .min_by(|a, b| a.ns_per_step.total_cmp(&b.ns_per_step));
        let Some(best) = best else { continue };
        let verdict = if best.ns_per_step <= target {
            "met"
        } else {
            "MISSED"
        };
        let comparisons: Vec<String> = others
            .iter()
            .map(|(name, ns)| format!("{:.1}x {name}", ns / best.ns_per_step))
            .collect();
        println!(
            "  {shape}: {} ({}) vs target {}: {verdict}; {}",
            human(best.ns_per_step),
            best.backend,
            human(target),
            comparisons.join(", ")
        );
    }
}

/// Runs `cargo bench` on the step benches; `Ok(false)` if it failed.
fn run_benches(root: &Path, options: &Options) -> anyhow::Result<bool> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut command = Command::new(cargo);
    command
        .current_dir(root)
        .args(["bench", "-p", "backprop-benches", "--bench", "step", "--"]);
    if options.quick {
        command.arg("--quick");
    }
    if let Some(filter) = &options.filter {
        command.arg(filter);
    }
    Ok(command.status().context("running cargo bench")?.success())
}

/// Runs the benches and reports; `Ok(false)` if criterion failed.
pub(crate) fn run(args: &[String], root: &Path) -> anyhow::Result<bool> {
    let options = parse(args, root)?;
    // Only results written by this run count, unless reporting what is there.
    let started = if options.no_run {
        SystemTime::UNIX_EPOCH
    } else {
        SystemTime::now()
    };
    if !options.no_run && !run_benches(root, &options)? {
        return Ok(false);
    }
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let mut results = Vec::new();
    read_results(&target.join("criterion"), started, &mut results)?;
    let (steps, peaks) = records(&results);
    if steps.is_empty() {
        bail!(
            "criterion wrote no results under {}",
            target.join("criterion").display()
        );
    }
    print_table(&steps, &peaks);

    if let Some(path) = &options.json {
        let list: Vec<Value> = steps
            .iter()
            .map(|r| {
                json!({
                    "shape": r.shape,
                    "widths": r.widths,
                    "batch": r.batch,
                    "dtype": r.dtype,
                    "backend": r.backend,
                    "ns_per_step": r.ns_per_step,
                    "gflops": r.gflops(),
                })
            })
            .collect();
        std::fs::write(path, serde_json::to_string_pretty(&list)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    if let Some(parent) = options.svg.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&options.svg, plot::svg(&steps, &peaks))
        .with_context(|| format!("writing {}", options.svg.display()))?;
    println!("wrote {}", options.svg.display());
    Ok(true)
}
