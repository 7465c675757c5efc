//! Times one SGD step of each registered backend on S, M and L in f32 or f64: the program `ab.sh` builds against two revisions.
//!
//! Written against the API both revisions share (`BackendKind`, `Backend::sgd_step`),
//! so the same source measures either. Arguments: shapes, backends and dtypes,
//! each a comma-separated list. Prints one line per backend, shape and dtype:
//! `step SHAPE DTYPE BACKEND MEDIAN_US (RATE) cpu CPU_US`, the medians of
//! several timed batches of steps in wall time and in the calling thread's
//! CPU time (which, for a backend that stays on that thread, leaves out the
//! time other programs took the core away).

use std::time::Instant;

use backprop::{Architecture, Backend, BackendKind, Batch, Network, Precision};

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
        let mut times: Vec<(f64, f64)> = (0..batches)
            .map(|_| {
                let (start, cpu_start) = (Instant::now(), thread_cpu_seconds());
                for _ in 0..per_batch {
                    step();
                }
                let steps = per_batch as f64;
                let cpu = thread_cpu_seconds() - cpu_start;
                (start.elapsed().as_secs_f64() / steps, cpu / steps)
            })
            .collect();
        times.sort_by(|a, b| a.0.total_cmp(&b.0));
        let median = times[times.len() / 2].0;
        times.sort_by(|a, b| a.1.total_cmp(&b.1));
        let cpu = times[times.len() / 2].1;
        let dtype = T::NAME;
        println!(
            "step {shape} {dtype} {name} {:.2} ({:.1} GFLOP/s) cpu {:.2}",
            median * 1e6,
            flops / median / 1e9,
            cpu * 1e6
        );
    }
}

/// The calling thread's time on a CPU so far, in seconds, from
/// `/proc/thread-self/schedstat` (0 where there is no such file): for a
/// single-threaded backend, its step time without the time other programs
/// on a shared machine took the core away.
fn thread_cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |nanoseconds| nanoseconds * 1e-9)
}
