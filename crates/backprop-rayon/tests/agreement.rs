//! The batch-parallel backend against its inner backend run on the whole batch: every partitioning, the split first layer, the first layer cut by hidden units, the SGD step.
//!
//! The workspace's conformance tests hold this backend to exact oracles;
//! these need only the crate and its inner backends, so that a change to the
//! partitioning and combination is judged by rebuilding this crate alone.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use backprop_core::{
    AboveFirstTask, Activation, Architecture, Backend, Batch, Error, FirstLayerSplit,
    FirstLayerUnits, FirstUnitsTask, FirstWeightRowsTask, ForwardTask, GradientTask, Inputs, Loss,
    MatrixRef, Network, Params, RowSplit, SplitGradientTask, vector,
};
use backprop_faer::FaerBackend;
use backprop_naive::NaiveBackend;
use backprop_rayon::{
    Partitions, RayonBackend, UNITS_MAX_ROWS, UNITS_MIN_FIRST_SHARE, first_layer_dominates,
};
use backprop_simd::SimdBackend;
use rayon::{ThreadPool, ThreadPoolBuilder};

fn pool(threads: usize) -> Arc<ThreadPool> {
    Arc::new(
        ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap(),
    )
}

/// A network, a batch of `rows` and the inner backend's loss and gradient on all of it.
struct Case {
    network: Network<f64>,
    inputs: Vec<f64>,
    targets: Vec<f64>,
    rows: usize,
}

impl Case {
    fn new(architecture: Architecture, rows: usize) -> Self {
        let network = Network::<f64>::init(architecture.clone(), 3);
        let (n, m) = (architecture.input_width(), architecture.output_width());
        let inputs = (0..rows * n)
            .map(|i| ((i * 13 + 5) % 17) as f64 / 8.5 - 1.0)
            .collect();
        let targets = (0..rows * m)
            .map(|i| match architecture.loss() {
                Loss::Mse => ((i * 5 + 3) % 7) as f64 / 7.0,
                Loss::SoftmaxCrossEntropy => f64::from(i % m == (i / m) % m),
            })
            .collect();
        Case {
            network,
            inputs,
            targets,
            rows,
        }
    }

    fn batch(&self) -> Batch<'_, f64> {
        Batch::from_slices(
            self.network.architecture(),
            self.rows,
            &self.inputs,
            &self.targets,
        )
        .unwrap()
    }

    fn gradient(&self, backend: &mut dyn Backend<f64>) -> (f64, Params<f64>) {
        let mut gradient = self.network.zero_gradient();
        let loss = backend
            .loss_and_gradient(&self.network, &self.batch(), &mut gradient)
            .unwrap();
        (loss, gradient)
    }
}

fn cases() -> Vec<Case> {
    use Activation::*;
    let sigmoid = Architecture::seed(5, 7, 3).unwrap();
    let softmax = Architecture::new(
        &[4, 6, 5, 3],
        &[Tanh, Relu, Identity],
        Loss::SoftmaxCrossEntropy,
    )
    .unwrap();
    let narrow = Architecture::new(&[3, 1, 4, 2], &[Sigmoid, Tanh, Sigmoid], Loss::Mse).unwrap();
    // Wide enough (39330 parameters) that the combination and the update
    // run in ranges of parameters on several threads.
    let wide = Architecture::seed(100, 300, 30).unwrap();
    [1, 3, 17]
        .into_iter()
        .flat_map(|rows| {
            [
                Case::new(sigmoid.clone(), rows),
                Case::new(softmax.clone(), rows),
                Case::new(narrow.clone(), rows),
            ]
        })
        .chain([Case::new(wide, 5)])
        .collect()
}

/// Within `1e-13` of the reference, relative to the larger of 1 and the value.
fn assert_close(
    what: &str,
    (loss, gradient): (f64, &Params<f64>),
    (want_loss, want): (f64, &Params<f64>),
) {
    assert!(
        (loss - want_loss).abs() <= 1e-13 * want_loss.abs().max(1.0),
        "{what}: loss {loss} vs {want_loss}"
    );
    for (i, (g, w)) in gradient.as_slice().iter().zip(want.as_slice()).enumerate() {
        assert!(
            (g - w).abs() <= 1e-13 * w.abs().max(1.0),
            "{what}: component {i}: {g} vs {w}"
        );
    }
}

/// Forks for every batch, on `threads` threads, with `partitions`.
fn forking<B: Backend<f64>>(
    backend: RayonBackend<f64, B>,
    threads: usize,
    partitions: Partitions,
) -> RayonBackend<f64, B> {
    backend
        .with_pool(pool(threads))
        .with_partitions(partitions)
        .with_parallel_threshold(0.0)
        .with_min_rows_per_partition(1)
}

#[test]
fn every_partitioning_gives_the_whole_batch_gradient() {
    for case in cases() {
        let reference = case.gradient(&mut NaiveBackend::new());
        let mut partitionings: Vec<Partitions> = (1..=5)
            .map(|k| Partitions::Fixed(NonZeroUsize::new(k).unwrap()))
            .collect();
        partitionings.push(Partitions::PerThread);
        for partitions in partitionings {
            let mut backend = forking(
                RayonBackend::new("naive", NaiveBackend::<f64>::new),
                3,
                partitions,
            );
            let (loss, gradient) = case.gradient(&mut backend);
            let what = format!(
                "{} rows {} {partitions:?}",
                case.network.architecture(),
                case.rows
            );
            assert_close(&what, (loss, &gradient), (reference.0, &reference.1));
        }
    }
}

#[test]
fn the_split_first_layer_gives_the_whole_batch_gradient() {
    for case in cases() {
        let reference = case.gradient(&mut FaerBackend::<f64>::sequential());
        for threads in [2, 3] {
            let split = RayonBackend::splitting_first_layer("faer", FaerBackend::<f64>::sequential);
            let mut backend = forking(split, threads, Partitions::PerThread);
            let (loss, gradient) = case.gradient(&mut backend);
            let what = format!(
                "{} rows {} split on {threads}",
                case.network.architecture(),
                case.rows
            );
            assert_close(&what, (loss, &gradient), (reference.0, &reference.1));
        }
    }
}

#[test]
fn a_step_is_the_gradient_then_the_update() {
    for case in cases() {
        let (_, gradient) = case.gradient(&mut NaiveBackend::new());
        let rate = 0.25;
        let split = RayonBackend::splitting_first_layer("faer", FaerBackend::<f64>::sequential);
        let backends: Vec<Box<dyn Backend<f64>>> = vec![
            Box::new(forking(
                RayonBackend::new("naive", NaiveBackend::<f64>::new),
                2,
                Partitions::PerThread,
            )),
            Box::new(forking(split, 2, Partitions::PerThread)),
        ];
        for mut backend in backends {
            let mut network = case.network.clone();
            let mut step_gradient = network.zero_gradient();
            backend
                .sgd_step(&mut network, &case.batch(), &mut step_gradient, rate)
                .unwrap();
            for (i, ((after, before), g)) in network
                .params()
                .as_slice()
                .iter()
                .zip(case.network.params().as_slice())
                .zip(gradient.as_slice())
                .enumerate()
            {
                let want = before - rate * g;
                assert!(
                    (after - want).abs() <= 1e-13 * want.abs().max(1.0),
                    "{} component {i}: {after} vs {want}",
                    backend.name()
                );
            }
        }
    }
}

#[test]
fn partitions_that_fix_their_count_give_the_same_bits_on_every_pool() {
    for case in cases() {
        let fixed = Partitions::Fixed(NonZeroUsize::new(3).unwrap());
        let results: Vec<(f64, Params<f64>)> = [1, 2, 4]
            .into_iter()
            .map(|threads| {
                case.gradient(&mut forking(
                    RayonBackend::new("naive", NaiveBackend::<f64>::new),
                    threads,
                    fixed,
                ))
            })
            .collect();
        for (loss, gradient) in &results[1..] {
            assert_eq!(loss.to_bits(), results[0].0.to_bits());
            assert_eq!(gradient.as_slice(), results[0].1.as_slice());
        }
    }
}

/// The documented scheme, step by step: the inner backend's mean loss and
/// gradient on each of `count` row parts, combined in part order, each
/// weighted by its share of the rows.
fn combined_by_hand(case: &Case, count: usize) -> (f64, Vec<f64>) {
    let split = RowSplit::new(case.rows, count);
    let architecture = case.network.architecture();
    let (n, m) = (architecture.input_width(), architecture.output_width());
    let (mut loss, mut combined) = (0.0, vec![0.0; architecture.param_count()]);
    for c in 0..split.count() {
        let rows = split.range(c);
        let part = Case {
            network: case.network.clone(),
            inputs: case.inputs[rows.start * n..rows.end * n].to_vec(),
            targets: case.targets[rows.start * m..rows.end * m].to_vec(),
            rows: rows.len(),
        };
        let (part_loss, gradient) = part.gradient(&mut NaiveBackend::new());
        let share = split.share::<f64>(c);
        loss += share * part_loss;
        if c == 0 {
            vector::scale_into(&mut combined, share, gradient.as_slice());
        } else {
            vector::axpy(&mut combined, share, gradient.as_slice());
        }
    }
    (loss, combined)
}

#[test]
fn the_partitions_are_combined_exactly_as_documented() {
    for case in cases().iter().filter(|case| case.rows >= 3) {
        for (partitions, count) in [
            (Partitions::Fixed(NonZeroUsize::new(3).unwrap()), 3),
            (Partitions::PerThread, 3),
        ] {
            let naive = RayonBackend::new("naive", NaiveBackend::<f64>::new);
            let (loss, gradient) = case.gradient(&mut forking(naive, 3, partitions));
            let (want_loss, want) = combined_by_hand(case, count);
            let what = format!(
                "{} rows {} {partitions:?}",
                case.network.architecture(),
                case.rows
            );
            assert_eq!(loss.to_bits(), want_loss.to_bits(), "{what}: loss");
            assert_eq!(gradient.as_slice(), &want[..], "{what}: gradient");
        }
    }
}

#[test]
fn the_forward_outputs_are_the_inner_backend_s() {
    for case in cases() {
        let architecture = case.network.architecture();
        let (n, m) = (architecture.input_width(), architecture.output_width());
        let inputs = Inputs::new(MatrixRef::new(&case.inputs, case.rows, n).unwrap()).unwrap();
        let mut want = vec![f64::NAN; case.rows * m];
        NaiveBackend::new()
            .forward(&case.network, &inputs, &mut want)
            .unwrap();
        let naive = RayonBackend::new("rayon-naive", NaiveBackend::<f64>::new);
        let mut backend = forking(naive, 3, Partitions::PerThread);
        assert_eq!(backend.name(), "rayon-naive");
        let mut outputs = vec![f64::NAN; case.rows * m];
        backend
            .forward(&case.network, &inputs, &mut outputs)
            .unwrap();
        assert_eq!(outputs, want, "{architecture} rows {}", case.rows);
    }
}

#[test]
fn partitions_keep_their_minimum_rows_and_small_steps_stay_whole() {
    for case in cases().iter().filter(|case| case.rows >= 5) {
        let what = format!("{} rows {}", case.network.architecture(), case.rows);
        // At least 2 rows a partition: 5 rows on 3 threads make 2 partitions.
        let naive = RayonBackend::new("naive", NaiveBackend::<f64>::new);
        let mut backend = forking(naive, 3, Partitions::PerThread).with_min_rows_per_partition(2);
        let (loss, gradient) = case.gradient(&mut backend);
        let (want_loss, want) = combined_by_hand(case, (case.rows / 2).min(3));
        assert_eq!(loss.to_bits(), want_loss.to_bits(), "{what}: loss");
        assert_eq!(gradient.as_slice(), &want[..], "{what}: gradient");
        // Below the flop threshold, one partition: the inner backend's own bits.
        let naive = RayonBackend::new("naive", NaiveBackend::<f64>::new);
        let mut backend =
            forking(naive, 3, Partitions::PerThread).with_parallel_threshold(f64::INFINITY);
        let (loss, gradient) = case.gradient(&mut backend);
        let (want_loss, want) = case.gradient(&mut NaiveBackend::new());
        assert_eq!(loss.to_bits(), want_loss.to_bits(), "{what}: loss");
        assert_eq!(gradient.as_slice(), want.as_slice(), "{what}: gradient");
    }
}

#[test]
fn the_linger_is_kept_as_set() {
    let naive = RayonBackend::new("naive", NaiveBackend::<f64>::new);
    assert_eq!(
        naive.with_linger(Duration::from_millis(3)).linger(),
        Duration::from_millis(3)
    );
}

/// A SIMD backend that counts the blocks of the first layer's forward pass it forms.
struct Counting {
    inner: SimdBackend<f64>,
    blocks: Arc<AtomicUsize>,
}

impl Backend<f64> for Counting {
    fn name(&self) -> &'static str {
        "counting"
    }

    fn run_forward(&mut self, task: ForwardTask<'_, f64>) -> Result<(), Error> {
        self.inner.run_forward(task)
    }

    fn run_loss_and_gradient(&mut self, task: GradientTask<'_, f64>) -> Result<f64, Error> {
        self.inner.run_loss_and_gradient(task)
    }
}

impl FirstLayerSplit<f64> for Counting {
    fn run_gradient_but_first_weights(
        &mut self,
        task: SplitGradientTask<'_, f64>,
    ) -> Result<f64, Error> {
        self.inner.run_gradient_but_first_weights(task)
    }

    fn run_first_weight_rows(&mut self, task: &mut FirstWeightRowsTask<'_, f64>) {
        self.inner.run_first_weight_rows(task)
    }
}

impl FirstLayerUnits<f64> for Counting {
    fn run_first_layer_units(&mut self, task: FirstUnitsTask<'_, f64>) -> Result<(), Error> {
        self.blocks.fetch_add(1, Ordering::SeqCst);
        self.inner.run_first_layer_units(task)
    }

    fn run_gradient_above_first(&mut self, task: AboveFirstTask<'_, f64>) -> Result<f64, Error> {
        self.inner.run_gradient_above_first(task)
    }
}

/// A backend cutting the first layer by hidden units over counting SIMD
/// workers, and the counter of the blocks they formed.
fn by_units() -> (RayonBackend<f64, Counting>, Arc<AtomicUsize>) {
    let blocks = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&blocks);
    let backend = RayonBackend::first_layer_by_units("units", move || Counting {
        inner: SimdBackend::new(),
        blocks: Arc::clone(&counter),
    });
    (backend, blocks)
}

/// Networks whose first layer holds at least 90% of the weights.
fn wide_first_cases(rows: usize) -> Vec<Case> {
    use Activation::*;
    let deep = Architecture::new(
        &[50, 17, 3, 2],
        &[Tanh, Relu, Identity],
        Loss::SoftmaxCrossEntropy,
    )
    .unwrap();
    vec![
        Case::new(Architecture::seed(40, 9, 3).unwrap(), rows),
        Case::new(deep, rows),
    ]
}

#[test]
fn the_first_layer_by_units_gives_the_inner_backends_bits() {
    for rows in [1, 3, 17, UNITS_MAX_ROWS] {
        for case in wide_first_cases(rows) {
            let architecture = case.network.architecture();
            let (want_loss, want) = case.gradient(&mut SimdBackend::<f64>::new());
            let mut want_network = case.network.clone();
            let mut want_step = case.network.zero_gradient();
            SimdBackend::<f64>::new()
                .sgd_step(&mut want_network, &case.batch(), &mut want_step, 0.25)
                .unwrap();
            for threads in [2, 3] {
                let label = format!("{architecture} rows {rows} on {threads}");
                let (backend, blocks) = by_units();
                let mut backend = forking(backend, threads, Partitions::PerThread);
                let (loss, gradient) = case.gradient(&mut backend);
                assert_eq!(loss.to_bits(), want_loss.to_bits(), "{label}");
                assert_eq!(gradient, want, "{label}");
                assert_eq!(blocks.load(Ordering::SeqCst), threads, "{label}");
                let mut network = case.network.clone();
                let mut step = case.network.zero_gradient();
                let step_loss = backend
                    .sgd_step(&mut network, &case.batch(), &mut step, 0.25)
                    .unwrap();
                assert_eq!(step_loss.to_bits(), want_loss.to_bits(), "{label}");
                assert_eq!(step, want_step, "{label}");
                assert_eq!(network, want_network, "{label}");
                assert_eq!(blocks.load(Ordering::SeqCst), 2 * threads, "{label}");
            }
        }
    }
}

#[test]
fn the_first_layer_is_cut_by_units_only_where_the_plan_says() {
    let blocks_formed = |backend: &mut dyn Backend<f64>, case: &Case, blocks: &AtomicUsize| {
        blocks.store(0, Ordering::SeqCst);
        case.gradient(backend);
        blocks.load(Ordering::SeqCst)
    };
    let wide = &wide_first_cases(UNITS_MAX_ROWS)[0];
    let (backend, blocks) = by_units();
    let mut backend = forking(backend, 2, Partitions::PerThread);
    assert_eq!(blocks_formed(&mut backend, wide, &blocks), 2);
    // More rows than the cut is for.
    let long = &wide_first_cases(UNITS_MAX_ROWS + 1)[0];
    assert_eq!(blocks_formed(&mut backend, long, &blocks), 0);
    // A first layer below the share (35 of 56 weights).
    let narrow = Case::new(Architecture::seed(5, 7, 3).unwrap(), 8);
    assert_eq!(blocks_formed(&mut backend, &narrow, &blocks), 0);
    // Fixed partitions, one thread, and a step below the flop threshold.
    let (fixed, fixed_blocks) = by_units();
    let two = Partitions::Fixed(NonZeroUsize::new(2).unwrap());
    let mut fixed = forking(fixed, 2, two);
    assert_eq!(blocks_formed(&mut fixed, wide, &fixed_blocks), 0);
    let (single, single_blocks) = by_units();
    let mut single = forking(single, 1, Partitions::PerThread);
    assert_eq!(blocks_formed(&mut single, wide, &single_blocks), 0);
    let (small, small_blocks) = by_units();
    let flops = wide.network.architecture().step_flops(wide.rows);
    let mut small = forking(small, 2, Partitions::PerThread).with_parallel_threshold(flops * 1.01);
    assert_eq!(blocks_formed(&mut small, wide, &small_blocks), 0);
    let mut small = small.with_parallel_threshold(flops);
    assert_eq!(blocks_formed(&mut small, wide, &small_blocks), 2);
    // The row limit, moved.
    let mut never = small.with_units_max_rows(0);
    assert_eq!(blocks_formed(&mut never, wide, &small_blocks), 0);
    let mut longer = never.with_units_max_rows(UNITS_MAX_ROWS + 1);
    assert_eq!(blocks_formed(&mut longer, long, &small_blocks), 2);
}

#[test]
fn a_first_layer_dominates_from_nine_tenths_of_the_weights_on() {
    // 9-10-1: 90 of 100 weights; 8-10-1: 80 of 90.
    assert!(first_layer_dominates(
        &Architecture::seed(9, 10, 1).unwrap()
    ));
    assert!(!first_layer_dominates(
        &Architecture::seed(8, 10, 1).unwrap()
    ));
    assert_eq!(UNITS_MIN_FIRST_SHARE, 0.9);
}
