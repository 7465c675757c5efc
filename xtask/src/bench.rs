//! `cargo xtask bench`: runs the criterion benches, then tabulates, saves and plots their medians.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use anyhow::{Context, bail};
use serde_json::Value;

use backprop_benches::plot;
use backprop_benches::results::{self, Peaks, Record};

const USAGE: &str = "usage: cargo xtask bench [--quick] [--json PATH] [--svg PATH] [FILTER]

  --quick      criterion's quick mode: each benchmark until its estimate settles (a few minutes in all)
  --json PATH  write every step's record {shape, widths, batch, dtype, backend, ns_per_step, gflops}
  --svg PATH   where to draw the plot [default: target/bench.svg]
  --no-run     report the results criterion already holds, without running the benches
  FILTER       a criterion filter, such as S/ or faer";

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

/// The harness's table, and where the other libraries are timed.
fn print_table(steps: &[Record], peaks: &Peaks) {
    println!("{}", results::table(steps, peaks));
    println!(
        "numpy, JAX and PyTorch are not timed here: benches/interleave.sh ROUNDS S,M,L f32,f64\n\
         times them interleaved with our backends on this machine (and says which it skipped)."
    );
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
