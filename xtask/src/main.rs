//! Project automation, run as `cargo xtask <task>`: `verify` proves every backend's gradients, `bench` times them.

mod bench;
mod verify;

use std::path::Path;
use std::process::ExitCode;

const USAGE: &str =
    "usage: cargo xtask <verify | bench> [options]; --help after a task lists its options";

/// The workspace root: the parent of this crate's folder.
fn workspace_root() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| Path::new(".").to_path_buf(), Path::to_path_buf)
}

/// Walks a task's arguments: `on_arg(arg, value)` handles each one, calling
/// `value()` to take the next argument as its value; `-h` or `--help` stops
/// with `usage`, and so does a flag missing its value.
fn for_each_arg(
    args: &[String],
    usage: &str,
    mut on_arg: impl FnMut(&str, &mut dyn FnMut() -> anyhow::Result<String>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if matches!(arg.as_str(), "-h" | "--help") {
            anyhow::bail!("{usage}");
        }
        let mut value = || {
            args.next()
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("{arg} needs a value\n{usage}"))
        };
        on_arg(arg, &mut value)?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("verify") => verify::run(&args[1..]),
        Some("bench") => bench::run(&args[1..], &workspace_root()),
        Some("-h" | "--help") => {
            println!(
                "{USAGE}\n\n  verify    run every check on every backend and the negative controls\n  bench     run the criterion benches, then report, save and plot their medians"
            );
            return ExitCode::SUCCESS;
        }
        Some(other) => Err(anyhow::anyhow!("unknown task '{other}'\n{USAGE}")),
        None => Err(anyhow::anyhow!(USAGE)),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}
