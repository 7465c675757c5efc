//! Project automation, run as `cargo xtask <task>`: `verify` proves every backend's gradients.

mod verify;

use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask verify [--quick] [--json PATH] [--backend NAME] [--seed N]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("verify") => verify::run(&args[1..]),
        Some("-h" | "--help") => {
            println!(
                "{USAGE}\n\n  verify    run every check on every backend and the negative controls"
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
