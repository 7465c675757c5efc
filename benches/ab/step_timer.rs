//! Times one SGD step of each registered backend on S, M and L: the program `ab.sh` builds against two revisions.
//!
//! Written against the API both revisions share (`BackendKind`, `Backend::sgd_step`),
//! so the same source measures either. Prints one line per backend and shape:
//! `step SHAPE DTYPE BACKEND MEDIAN_US`, the median of several timed batches of steps.

use std::time::Instant;

use backprop::{Architecture, Backend, BackendKind, Batch, Network};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let shapes = args.first().map_or("S,M,L", String::as_str);
    let names = args.get(1).map_or("naive,faer,rayon-naive,rayon-faer", String::as_str);
    for (shape, [n, h, m], rows) in [
        ("S", [64, 32, 10], 64),
        ("M", [784, 256, 10], 128),
        ("L", [1024, 1024, 1024], 1024),
    ] {
        if !shapes.split(',').any(|s| s == shape) {
            continue;
        }
        let Ok(architecture) = Architecture::seed(n, h, m) else { continue };
        let inputs: Vec<f32> = (0..rows * n).map(|i| (i * 7 % 17) as f32 / 17.0).collect();
        let targets: Vec<f32> = (0..rows * m).map(|i| (i % 2) as f32).collect();
        let Ok(batch) = Batch::from_slices(&architecture, rows, &inputs, &targets) else { continue };
        for name in names.split(',') {
            let Ok(kind) = name.parse::<BackendKind>() else { continue };
            let mut backend = kind.create::<f32>();
            let mut network = Network::<f32>::init(architecture.clone(), 1);
            let mut gradient = network.zero_gradient();
            let flops = architecture.step_flops(rows);
            // About 0.2 s of steps per timed batch, at least one step.
            let mut step = || {
                let _ = backend.sgd_step(&mut network, &batch, &mut gradient, 1e-3);
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
            println!("step {shape} f32 {name} {:.2} ({:.1} GFLOP/s)", median * 1e6, flops / median / 1e9);
        }
    }
}
