//! Criterion's results read back, as step records with GFLOP/s, and their table.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;
use std::time::SystemTime;

use serde_json::{Value, json};

use crate::harness::SHAPES;

/// One measured step.
#[derive(Clone, Debug)]
pub struct Record {
    /// The shape's name, with `@batch` for a point of the sweep (`M@256`).
    pub shape: String,
    /// The widths `n-h-m`.
    pub widths: [usize; 3],
    /// The batch size.
    pub batch: usize,
    /// `f32` or `f64`.
    pub dtype: String,
    /// The contender's name.
    pub backend: String,
    /// Criterion's median time per step, in nanoseconds.
    pub ns_per_step: f64,
}

impl Record {
    /// `6 B sum d_{l-1} d_l` over the time per step.
    pub fn gflops(&self) -> f64 {
        let [n, h, m] = self.widths;
        6.0 * self.batch as f64 * (n * h + h * m) as f64 / self.ns_per_step
    }

    /// The record as JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "shape": self.shape,
            "widths": self.widths,
            "batch": self.batch,
            "dtype": self.dtype,
            "backend": self.backend,
            "ns_per_step": self.ns_per_step,
            "gflops": self.gflops(),
        })
    }
}

/// The machine's peaks in GFLOP/s: `f32` and `f64` for a faer GEMM on every
/// core (the key the plot draws), `f32 gemm-1t` for one thread, `f32 fma-1t`
/// for one core's FMA loop.
pub type Peaks = BTreeMap<String, f64>;

/// The key of a peak measured by the bench function `function` for `dtype`.
fn peak_key(dtype: &str, function: &str) -> String {
    if function == "gemm" {
        dtype.to_owned()
    } else {
        format!("{dtype} {function}")
    }
}

/// The step records and the GEMM peaks criterion wrote under `dir` since `since`.
pub fn read(
    dir: &Path,
    since: SystemTime,
) -> Result<(Vec<Record>, Peaks), Box<dyn std::error::Error>> {
    let mut found = Vec::new();
    read_results(dir, since, &mut found)?;
    Ok(records(&found))
}

/// Every `new/benchmark.json` under `dir` written since `since`, with its median in ns.
fn read_results(
    dir: &Path,
    since: SystemTime,
    found: &mut Vec<(Value, f64)>,
) -> Result<(), Box<dyn std::error::Error>> {
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
        let estimates: Value = serde_json::from_str(&std::fs::read_to_string(&estimates_path)?)?;
        let median = estimates["median"]["point_estimate"]
            .as_f64()
            .ok_or_else(|| format!("no median in {}", estimates_path.display()))?;
        found.push((id, median));
    }
    Ok(())
}

/// Splits the results into step records (groups `S/f32`, `sweep-M/f32`, ...) and GEMM peaks in GFLOP/s by dtype.
pub fn records(results: &[(Value, f64)]) -> (Vec<Record>, Peaks) {
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
pub fn human(ns: f64) -> String {
    match ns {
        ns if ns < 1e3 => format!("{ns:.0} ns"),
        ns if ns < 1e6 => format!("{:.1} us", ns / 1e3),
        ns if ns < 1e9 => format!("{:.2} ms", ns / 1e6),
        ns => format!("{:.2} s", ns / 1e9),
    }
}

/// The table of step records: time, GFLOP/s, shares of the all-core GEMM
/// peak and of one core's FMA peak, speed-up over naive; then the peaks.
pub fn table(steps: &[Record], peaks: &Peaks) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
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
        let _ = writeln!(
            out,
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
        let _ = writeln!(out, "peak ({key}): {peak:.1} GFLOP/s, {what}");
    }
    let _ = writeln!(
        out,
        "GFLOP/s count 6 B sum d_(l-1) d_l, which includes the input layer's delta that no backend\n\
         computes (a third of the work on M, a sixth on L), so a step can pass the GEMM peak."
    );
    out
}
