//! Criterion benchmarks: one training step (forward, backward, SGD update) of every backend.

use std::hint::black_box;

use backprop::{Architecture, BackendKind, Batch, Network, Scalar};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

/// Shape S of the benchmark protocol: 64-32-10, sigmoid, MSE, batch 64.
const SMALL: (&str, [usize; 3], usize) = ("S", [64, 32, 10], 64);

fn step<T: Scalar>(c: &mut Criterion) {
    let (name, [n, h, m], rows) = SMALL;
    let architecture = Architecture::seed(n, h, m).expect("a valid architecture");
    let inputs: Vec<T> = (0..rows * n)
        .map(|i| T::from_f64((i % 17) as f64 / 17.0))
        .collect();
    let targets: Vec<T> = (0..rows * m).map(|i| T::from_f64((i % 2) as f64)).collect();
    let batch = Batch::from_slices(&architecture, rows, &inputs, &targets).expect("a valid batch");
    let mut group = c.benchmark_group(format!("{name}/{}", T::NAME));
    group.throughput(Throughput::Elements(rows as u64));
    for kind in BackendKind::ALL {
        let mut backend = kind.create::<T>();
        let mut network = Network::<T>::init(architecture.clone(), 1);
        let mut gradient = network.zero_gradient();
        let learning_rate = T::from_f64(1e-3);
        group.bench_function(BenchmarkId::from_parameter(kind), |b| {
            b.iter(|| {
                backend
                    .sgd_step(
                        &mut network,
                        black_box(&batch),
                        &mut gradient,
                        learning_rate,
                    )
                    .expect("a valid step")
            })
        });
    }
    group.finish();
}

fn steps(c: &mut Criterion) {
    step::<f32>(c);
    step::<f64>(c);
}

criterion_group!(benches, steps);
criterion_main!(benches);
