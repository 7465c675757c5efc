//! `cargo xtask verify`: every check on every backend and precision, then the negative controls.

use std::collections::BTreeMap;

use anyhow::bail;
use backprop::{Activation, Architecture, BackendKind, Loss};
use backprop_verify::suite::{check_f32, check_f64};
use backprop_verify::{Case, CheckKind, CheckReport, ControlBackend, Flaw};

/// Seeds every case is drawn with.
const SEEDS: [u64; 2] = [1, 2];

/// The architectures of the matrix, named: the seed network, a deep one, a
/// width-1 layer, a single layer; each with a batch size.
fn shapes(
    hidden: Activation,
    output: Activation,
    loss: Loss,
) -> Vec<(&'static str, Architecture, usize)> {
    let build =
        |widths: &[usize]| Architecture::with_hidden_and_output(widths, hidden, output, loss);
    [
        ("seed n-h-m", build(&[4, 5, 3]), 8),
        ("4 layers", build(&[5, 8, 6, 4, 3]), 6),
        ("width 1", build(&[3, 1, 4, 2]), 5),
        ("1 layer", build(&[6, 3]), 7),
        ("batch 1", build(&[4, 6, 3]), 1),
    ]
    .into_iter()
    .map(|(name, architecture, rows)| (name, architecture.expect("a valid architecture"), rows))
    .collect()
}

/// Every case of the matrix: each activation as the hidden activation, both
/// losses (sigmoid outputs for MSE, identity for softmax cross-entropy), each
/// shape, each seed.
fn cases() -> Vec<Case<f64>> {
    let mut cases = Vec::new();
    for hidden in Activation::ALL {
        for (loss, output) in [
            (Loss::Mse, Activation::Sigmoid),
            (Loss::SoftmaxCrossEntropy, Activation::Identity),
        ] {
            for (_, architecture, rows) in shapes(hidden, output, loss) {
                for seed in SEEDS {
                    let case = Case::random(architecture.clone(), rows, seed);
                    // ReLU cases with seed 2 sit on a kink, to show they are excluded and counted.
                    let on_kink = hidden == Activation::Relu && seed == SEEDS[1];
                    cases.push(if on_kink {
                        case.pin_first_neuron_at_kink()
                    } else {
                        case
                    });
                }
            }
        }
    }
    cases
}

/// The worst report of each check over many cases.
#[derive(Default)]
struct Summary {
    worst: BTreeMap<usize, CheckReport>,
    excluded_at_kinks: usize,
}

impl Summary {
    fn add(&mut self, reports: Vec<CheckReport>) {
        for report in reports {
            self.excluded_at_kinks += report.excluded;
            let column = CheckKind::ALL
                .iter()
                .position(|&k| k == report.kind)
                .expect("a known check");
            let keep = match self.worst.get(&column) {
                None => true,
                // A NaN ratio is worse than any number.
                Some(current) => {
                    report.worst_ratio.is_nan()
                        || report.worst_ratio > current.worst_ratio
                        || report.failure.is_some()
                }
            };
            if keep {
                self.worst.insert(column, report);
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
            row.push_str(&format!(" {cell:>10}"));
        }
        let verdict = if self.passed() { "pass" } else { "FAIL" };
        row.push_str(&format!("  {verdict}"));
        if self.excluded_at_kinks > 0 {
            row.push_str(&format!(
                " ({} components excluded at ReLU kinks)",
                self.excluded_at_kinks
            ));
        }
        row
    }

    fn failures(&self) -> impl Iterator<Item = &CheckReport> {
        self.worst.values().filter(|r| !r.passed())
    }
}

fn header() -> String {
    let mut header = format!("{:<18}", "backend / dtype");
    for kind in CheckKind::ALL {
        header.push_str(&format!(" {:>10}", kind.label()));
    }
    header.push_str("  verdict");
    header
}

/// Runs the report; `Ok(false)` when any check failed or any control passed.
pub(crate) fn run(args: &[String]) -> anyhow::Result<bool> {
    if let Some(unknown) = args.first() {
        bail!("unknown option '{unknown}' for verify");
    }
    let cases = cases();
    println!(
        "Every backend x dtype over {} cases (5 shapes x 4 hidden activations x 2 losses x {} seeds).",
        cases.len(),
        SEEDS.len()
    );
    println!(
        "Cells: the worst error-to-tolerance ratio of each check over all cases; a check passes at <= 1.\n"
    );
    println!("{}", header());
    let mut all_passed = true;
    for kind in BackendKind::ALL {
        let mut double = Summary::default();
        let mut single = Summary::default();
        for (index, case) in cases.iter().enumerate() {
            double.add(check_f64(&mut *kind.create::<f64>(), case, index as u64));
            single.add(check_f32(&mut *kind.create::<f32>(), case));
        }
        for (summary, dtype) in [(&double, "f64"), (&single, "f32")] {
            println!("{}", summary.row(&format!("{kind} {dtype}")));
            for failure in summary.failures() {
                println!("    {failure}");
            }
            all_passed &= summary.passed();
        }
    }

    println!("\nNegative controls (each must be rejected by at least one check):");
    let control_cases: Vec<Case<f64>> = cases
        .iter()
        .filter(|case| {
            let architecture = case.network.architecture();
            architecture.output_width() > 1 && architecture.layer_count() > 1 && case.rows > 1
        })
        .cloned()
        .collect();
    for flaw in Flaw::all(1e-8) {
        let mut summary = Summary::default();
        for (index, case) in control_cases.iter().enumerate() {
            summary.add(check_f64(
                &mut ControlBackend::<f64>::new(flaw),
                case,
                index as u64,
            ));
        }
        let caught: Vec<&str> = summary.failures().map(|r| r.kind.label()).collect();
        if caught.is_empty() {
            all_passed = false;
            println!(
                "  {:<34} ACCEPTED: the checks are too weak",
                flaw.to_string()
            );
        } else {
            println!(
                "  {:<34} rejected by {}",
                flaw.to_string(),
                caught.join(", ")
            );
        }
    }
    println!("\nverdict: {}", if all_passed { "PASS" } else { "FAIL" });
    Ok(all_passed)
}
