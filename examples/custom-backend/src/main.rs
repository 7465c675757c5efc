//! Prints the conformance report of `LoopKernel` in both precisions; exits non-zero if it fails.

use std::process::ExitCode;

use backprop_verify::Conformance;
use custom_backend::LoopKernel;

fn main() -> ExitCode {
    let reports = [
        Conformance::<f64>::new("loops", LoopKernel::<f64>::new)
            .quick()
            .run(),
        Conformance::<f32>::new("loops", LoopKernel::<f32>::new)
            .quick()
            .run(),
    ];
    let mut passed = true;
    for report in reports {
        match report {
            Ok(report) => {
                println!("{report}\n");
                passed &= report.passed();
            }
            Err(error) => {
                eprintln!("error: {error}");
                passed = false;
            }
        }
    }
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
