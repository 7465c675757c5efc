//! The accuracy of every built-in backend's gradient where units saturate, next to slopes taken from the activation.
//!
//! ```text
//! cargo run --release -p backprop --example saturation [-- --export PATH]
//! ```
//!
//! On each of the conformance matrix's saturating cells (every tanh unit at
//! `10 <= |z| <= 20`, every sigmoid unit at `40 <= |z| <= 90`, softmax
//! logits 40 to 60 apart), prints the norm-wise relative error of the
//! gradient against the exact one (dual numbers in `f64` on the very values
//! the backend sees): the worst over the built-in backends, and that of a
//! kernel forming its slopes as `a (1 - a)` and `1 - a^2` and its softmax
//! gradient as `p - y`, as most frameworks do. With `--export PATH`, it also
//! writes the cells (architecture, parameters, batch, and the exact gradient,
//! each as the `f32` and the `f64` backends see them) as JSON, for
//! `benches/peers_saturation.py` to hold PyTorch and JAX to the same values.

use backprop::{Backend, BackendKind, Precision};
use backprop_verify::matrix::{Cell, saturating_cells};
use backprop_verify::{CheckPrecision, Control, Flaw, checks};
use serde_json::{Value, json};

/// The gradient's norm-wise relative error against the exact one on `cell`.
fn relative_error<T: CheckPrecision>(backend: &mut dyn Backend<T>, cell: &Cell) -> f64 {
    let (case, oracle) = T::prepared(cell);
    let report = checks::saturation(backend, case, oracle);
    report.worst.map_or(f64::NAN, |worst| worst.actual)
}

/// The worst built-in backend (and its error) and the classic slopes' error.
fn row<T: Precision + CheckPrecision>(cell: &Cell) -> (BackendKind, f64, f64) {
    let (mut worst_kind, mut worst) = (BackendKind::ALL[0], 0.0f64);
    for kind in BackendKind::ALL {
        let error = relative_error(&mut *kind.create::<T>(), cell);
        if error > worst || error.is_nan() {
            (worst_kind, worst) = (kind, error);
        }
    }
    let mut classic = Control::Kernel(Flaw::SlopesFromActivation).backend::<T>();
    (worst_kind, worst, relative_error(&mut *classic, cell))
}

/// One cell as `T` sees it: its values widened back to `f64`, and the exact gradient.
fn export<T: CheckPrecision>(cell: &Cell) -> Value {
    let (case, oracle) = T::prepared(cell);
    let widen = |values: &[T]| values.iter().map(|v| v.to_f64()).collect::<Vec<f64>>();
    json!({
        "params": widen(case.network.params().as_slice()),
        "inputs": widen(&case.inputs),
        "targets": widen(&case.targets),
        "exact_gradient": oracle.gradient.iter().map(|d| d.eps).collect::<Vec<f64>>(),
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let export_path = match args.as_slice() {
        [] => None,
        [flag, path] if flag == "--export" => Some(path.clone()),
        _ => return Err("usage: saturation [--export PATH]".into()),
    };
    let mut exported = Vec::new();
    println!(
        "{:<38} {:>22} {:>10} {:>22} {:>10}",
        "cell", "f32 built-in (worst)", "f32 a(1-a)", "f64 built-in (worst)", "f64 a(1-a)"
    );
    for cell in saturating_cells(1)? {
        let architecture = cell.case.network.architecture();
        exported.push(json!({
            "name": cell.shape,
            "widths": architecture.widths(),
            "activations": architecture.activations().iter().map(|a| a.name()).collect::<Vec<_>>(),
            "loss": architecture.loss().name(),
            "rows": cell.case.rows,
            "f32": export::<f32>(&cell),
            "f64": export::<f64>(&cell),
        }));
        let (narrow_kind, narrow, narrow_classic) = row::<f32>(&cell);
        let (wide_kind, wide, wide_classic) = row::<f64>(&cell);
        println!(
            "{:<38} {:>22} {:>10.1e} {:>22} {:>10.1e}",
            cell.shape,
            format!("{narrow:.1e} ({narrow_kind})"),
            narrow_classic,
            format!("{wide:.1e} ({wide_kind})"),
            wide_classic
        );
    }
    if let Some(path) = export_path {
        std::fs::write(&path, serde_json::to_string(&exported)?)?;
        println!("wrote {path}");
    }
    Ok(())
}
