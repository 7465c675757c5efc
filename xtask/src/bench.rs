//! `cargo xtask bench`: runs the criterion benches, then tabulates, saves and plots their medians.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use anyhow::{Context, bail};
use serde_json::Value;

use backprop_benches::plot;
use backprop_benches::results::{self, Peaks, Record, human};

const USAGE: &str = "usage: cargo xtask bench [--quick] [--json PATH] [--svg PATH] [FILTER]

  --quick      criterion's quick mode: each benchmark until its estimate settles (a few minutes in all)
  --json PATH  write every step's record {shape, widths, batch, dtype, backend, ns_per_step, gflops}
  --svg PATH   where to draw the plot [default: target/bench.svg]
  --no-run     report the results criterion already holds, without running the benches
  FILTER       a criterion filter, such as S/ or faer";

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

/// The harness's table, then the targets against other libraries.
fn print_table(steps: &[Record], peaks: &Peaks) {
    println!("{}", results::table(steps, peaks));
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
    let (steps, peaks) = results::read(&target.join("criterion"), started)
        .map_err(|e| anyhow::anyhow!("reading criterion's results: {e}"))?;
    if steps.is_empty() {
        bail!(
            "criterion wrote no results under {}",
            target.join("criterion").display()
        );
    }
    print_table(&steps, &peaks);

    if let Some(path) = &options.json {
        let list: Vec<Value> = steps.iter().map(Record::to_json).collect();
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
