//! What the step's finiteness checks cost: a checked SGD step against the same step unchecked, interleaved.
//!
//! ```sh
//! cargo run --release --example check_cost            # S, M and L in f32 on faer, rayon-faer, simd and simd-fused
//! cargo run --release --example check_cost -- S M     # some shapes only
//! cargo run --release --example check_cost -- f64     # f64 too
//! ```
//!
//! The checked step is `Backend::sgd_step`: the parameters' state and the
//! reach of the pre-activations are checked before, and the gradient, the
//! loss and the updated values before any parameter is written (one read of
//! the gradient gives each layer's largest `|g|`, which with the network's
//! bound of its parameters proves the update finite; the update is then
//! written in place). The unchecked step does the same work without them, on
//! a clone of the network that follows the same trajectory: the backend's
//! own `run_loss_and_gradient` on a task checked as `sgd_step` checks it,
//! then the plain vectorized update in place into the clone's parameters,
//! through `param_values_mut` (whose guard, when dropped after the timing,
//! re-reads the values for the network's bounds). Both variants thus write
//! the parameters the next step's products read, which costs a parallel
//! backend more than writing a buffer nothing else reads. Each
//! round times a run of steps of one variant, then of the other (the order
//! alternating between rounds), and takes the median step of each run; the
//! result is the median over rounds, and the median (and quartiles) of the
//! rounds' ratios checked / unchecked. It also times the plain update
//! (`vector::axpy` in place) and the checked one the step makes (the read of
//! the gradient's largest magnitude per layer, then the same `axpy`), on the
//! same values in the same rounds, and gives their difference as a share of
//! the unchecked step. On a shared machine the paired ratio swings with the
//! load; the difference of the updates is the steadier figure.
//!
//! `simd-fused` is the SIMD backend with the update fused into its
//! weight-gradient tiles (`SimdBackend::with_fused_update(true)`): its
//! checked step is the fused one, its unchecked step the same as `simd`'s,
//! so its paired ratio is what fusing the update costs or saves.

use std::time::{Duration, Instant};

use backprop::{
    Architecture, Backend, BackendKind, Batch, GradientTask, Network, Precision, SimdBackend,
};
use backprop_core::vector;

/// One protocol shape: its name, widths, batch size, steps per run and rounds.
struct Shape {
    name: &'static str,
    widths: [usize; 3],
    batch: usize,
    steps: usize,
    rounds: usize,
}

const SHAPES: [Shape; 3] = [
    Shape {
        name: "S",
        widths: [64, 32, 10],
        batch: 64,
        steps: 401,
        rounds: 21,
    },
    Shape {
        name: "M",
        widths: [784, 256, 10],
        batch: 128,
        steps: 51,
        rounds: 21,
    },
    Shape {
        name: "L",
        widths: [1024, 1024, 1024],
        batch: 1024,
        steps: 5,
        rounds: 11,
    },
];

fn median(values: &mut [Duration]) -> Duration {
    values.sort_unstable();
    values[values.len() / 2]
}

/// A contender: a registered kind, or the SIMD backend with its update fused.
#[derive(Clone, Copy)]
enum Contender {
    Kind(BackendKind),
    SimdFused,
}

impl Contender {
    fn name(self) -> &'static str {
        match self {
            Contender::Kind(kind) => kind.name(),
            Contender::SimdFused => "simd-fused",
        }
    }

    fn create<T: Precision>(self) -> Box<dyn Backend<T>> {
        match self {
            Contender::Kind(kind) => kind.create::<T>(),
            Contender::SimdFused => Box::new(SimdBackend::<T>::new().with_fused_update(true)),
        }
    }
}

fn measure<T: Precision>(kind: Contender, shape: &Shape) -> Result<(), backprop::Error> {
    let architecture = Architecture::seed(shape.widths[0], shape.widths[1], shape.widths[2])?;
    let mut network = Network::<T>::try_init(architecture.clone(), 1)?;
    let (n, m) = (architecture.input_width(), architecture.output_width());
    let inputs: Vec<T> = (0..shape.batch * n)
        .map(|i| T::from_f64(((i * 7919) % 1000) as f64 / 1000.0))
        .collect();
    let targets: Vec<T> = (0..shape.batch * m)
        .map(|i| T::from_f64(((i * 104_729) % 1000) as f64 / 1000.0))
        .collect();
    let batch = Batch::from_slices(&architecture, shape.batch, &inputs, &targets)?;
    let mut backend = kind.create::<T>();
    let mut gradient = network.try_zero_gradient()?;
    let mut copy = network.params().as_slice().to_vec();
    let mut clone = network.clone();
    let rate = T::from_f64(1e-3);

    let mut checked_step = |network: &mut Network<T>, gradient: &mut _| {
        backend
            .sgd_step(network, &batch, gradient, rate)
            .map(|_| ())
    };
    let mut checked_runs = Vec::new();
    let mut unchecked_runs = Vec::new();
    let mut check_runs = Vec::new();
    let mut update_runs = Vec::new();
    let mut ratios = Vec::new();
    let mut unchecked_backend = kind.create::<T>();
    let mut unchecked_gradient = network.try_zero_gradient()?;
    let layers = architecture.layers().to_vec();
    for round in 0..shape.rounds + 1 {
        let mut checked = Vec::with_capacity(shape.steps);
        let mut unchecked = Vec::with_capacity(shape.steps);
        let mut check = Vec::with_capacity(shape.steps);
        let mut updates = Vec::with_capacity(shape.steps);
        for variant in [round % 2, 1 - round % 2] {
            for _ in 0..shape.steps {
                let start = Instant::now();
                if variant == 0 {
                    checked_step(&mut network, &mut gradient)?;
                    checked.push(start.elapsed());
                } else {
                    let task = GradientTask::new(&clone, batch, &mut unchecked_gradient)?;
                    unchecked_backend.run_loss_and_gradient(task)?;
                    let mut values = clone.param_values_mut();
                    vector::axpy(&mut values, -rate, unchecked_gradient.as_slice());
                    unchecked.push(start.elapsed());
                    drop(values);
                    let update = Instant::now();
                    vector::axpy(&mut copy, -rate, unchecked_gradient.as_slice());
                    updates.push(update.elapsed());
                    // The checked update, as the step makes it: each
                    // layer's largest |g|, then the same update in place.
                    let start = Instant::now();
                    let mut largest = T::ZERO;
                    for layer in &layers {
                        let range = layer.offset..layer.offset + layer.param_count();
                        let g = std::hint::black_box(&unchecked_gradient.as_slice()[range]);
                        largest = largest.max(T::largest_magnitude(g));
                    }
                    std::hint::black_box(largest);
                    vector::axpy(&mut copy, -rate, unchecked_gradient.as_slice());
                    check.push(start.elapsed());
                }
            }
        }
        // The first round warms the caches and the helpers up.
        if round > 0 {
            let (c, u) = (median(&mut checked), median(&mut unchecked));
            ratios.push(c.as_secs_f64() / u.as_secs_f64());
            checked_runs.push(c);
            unchecked_runs.push(u);
            check_runs.push(median(&mut check));
            update_runs.push(median(&mut updates));
        }
    }
    let (checked, unchecked) = (median(&mut checked_runs), median(&mut unchecked_runs));
    let check = median(&mut check_runs);
    let update = median(&mut update_runs);
    ratios.sort_by(f64::total_cmp);
    let quartile = |q: usize| (ratios[(ratios.len() - 1) * q / 4] - 1.0) * 100.0;
    println!(
        "{:<3} {:<5} {:<12} checked {:>9.1} us  unchecked {:>9.1} us  paired {:+6.2}% [{:+.2}%, {:+.2}%]  update {:>8.2} us, checked {:>8.2} us: check {:+.2}% of a step",
        shape.name,
        T::NAME,
        kind.name(),
        checked.as_secs_f64() * 1e6,
        unchecked.as_secs_f64() * 1e6,
        quartile(2),
        quartile(1),
        quartile(3),
        update.as_secs_f64() * 1e6,
        check.as_secs_f64() * 1e6,
        (check.as_secs_f64() - update.as_secs_f64()) / unchecked.as_secs_f64() * 100.0,
    );
    Ok(())
}

fn main() -> Result<(), backprop::Error> {
    let wanted: Vec<String> = std::env::args().skip(1).collect();
    let f64_too = wanted.iter().any(|w| w == "f64");
    for shape in SHAPES.iter().filter(|shape| {
        !wanted.iter().any(|w| w.len() == 1) || wanted.iter().any(|w| w == shape.name)
    }) {
        let contenders = [
            Contender::Kind(BackendKind::Faer),
            Contender::Kind(BackendKind::RayonFaer),
            Contender::Kind(BackendKind::Simd),
            Contender::SimdFused,
        ];
        for kind in contenders {
            measure::<f32>(kind, shape)?;
            if f64_too {
                measure::<f64>(kind, shape)?;
            }
        }
    }
    Ok(())
}
