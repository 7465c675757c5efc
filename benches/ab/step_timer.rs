//! Times one SGD step of each registered backend on S, M and L in f32 or f64: the program `ab.sh` builds against two revisions.
//!
//! Written against the API both revisions share (`BackendKind`, `Backend::sgd_step`),
//! so the same source measures either. Arguments: shapes, backends and dtypes,
//! each a comma-separated list. Prints one line per backend, shape and dtype:
//! `step SHAPE DTYPE BACKEND MEDIAN_US`, the median of several timed batches of steps.

use std::time::Instant;

use backprop::{Architecture, Backend, BackendKind, Batch, Network, Precision, Scalar};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let shapes = args.first().map_or("S,M,L", String::as_str);
    let names = args.get(1).map_or("naive,faer,rayon-naive,rayon-faer", String::as_str);
    let dtypes = args.get(2).map_or("f32", String::as_str);
    for (shape, [n, h, m], rows) in [
        ("S", [64, 32, 10], 64),
        ("M", [784, 256, 10], 128),
        ("L", [1024, 1024, 1024], 1024),
    ] {
        if !shapes.split(',').any(|s| s == shape) {
            continue;
        }
        for dtype in dtypes.split(',') {
            match dtype {
                "f32" => time_steps::<f32>(shape, [n, h, m], rows, names),
                "f64" => time_steps::<f64>(shape, [n, h, m], rows, names),
                _ => {}
            }
        }
    }
}

/// Prints the median step time of each backend in `names` on one shape in `T`.
fn time_steps<T: Precision>(shape: &str, [n, h, m]: [usize; 3], rows: usize, names: &str) {
    let Ok(architecture) = Architecture::seed(n, h, m) else { return };
    let inputs: Vec<T> = (0..rows * n).map(|i| T::from_f64((i * 7 % 17) as f64 / 17.0)).collect();
    let targets: Vec<T> = (0..rows * m).map(|i| T::from_f64((i % 2) as f64)).collect();
    let Ok(batch) = Batch::from_slices(&architecture, rows, &inputs, &targets) else { return };
    for name in names.split(',') {
        let Ok(kind) = name.parse::<BackendKind>() else { continue };
        let mut backend = kind.create::<T>();
        let mut network = Network::<f64>::init(architecture.clone(), 1).to_precision::<T>();
        let mut gradient = network.zero_gradient();
        let flops = architecture.step_flops(rows);
        let rate = T::from_f64(1e-3);
        // About 0.2 s of steps per timed batch, at least one step.
        let mut step = || {
            let _ = backend.sgd_step(&mut network, &batch, &mut gradient, rate);
        };
        let start = Instant::now();
        step();
        let once = start.elapsed().as_secs_f64();
        let per_batch = ((0.2 / once) as usize).clamp(1, 10_000);
        let batches = if once > 1.0 { 1 } else { 7 };
        let mut times: Vec<f64> = (0..batches)
            .map(|_| {
                let start = Instant::now();
                for _ in 0..per_batch {
                    step();
                }
                start.elapsed().as_secs_f64() / per_batch as f64
            })
            .collect();
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        let dtype = T::NAME;
        println!("step {shape} {dtype} {name} {:.2} ({:.1} GFLOP/s)", median * 1e6, flops / median / 1e9);
    }
}
