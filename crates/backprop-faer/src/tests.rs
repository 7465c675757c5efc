//! Unit tests: the faer backend against the naive reference, in both precisions.

use backprop_core::{
    Activation, Architecture, Backend, Batch, DeltaLayout, Error, FirstLayerSplit,
    FirstWeightRowsTask, GradientTask, Inputs, Loss, MatrixRef, Network, SplitGradientTask,
};
use backprop_naive::NaiveBackend;

use crate::{FaerBackend, FaerScalar, Parallelism};

/// A seeded splitmix64 stream of values in `[-1, 1)`.
struct Values(u64);

impl Values {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut x = self.0;
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^= x >> 31;
        (x >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }

    fn vec(&mut self, len: usize, scale: f64) -> Vec<f64> {
        (0..len).map(|_| scale * self.next()).collect()
    }
}

/// A network from `seed` whose biases are random too (initialisation zeroes them).
fn network(architecture: Architecture, seed: u64) -> Network<f64> {
    let mut network = Network::init(architecture, seed);
    let mut values = Values(seed ^ 0x5eed);
    for v in network.param_values_mut().iter_mut() {
        *v += 0.1 * values.next();
    }
    network
}

/// Inputs in `[-2, 2)` and targets that suit the loss: values in `[0, 1)` for
/// MSE, a probability distribution per row for softmax cross-entropy.
fn data(architecture: &Architecture, rows: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut values = Values(seed);
    let x = values.vec(rows * architecture.input_width(), 2.0);
    let m = architecture.output_width();
    let mut y: Vec<f64> = values.vec(rows * m, 0.5).iter().map(|v| v + 0.5).collect();
    if architecture.loss() == Loss::SoftmaxCrossEntropy {
        for row in y.chunks_exact_mut(m) {
            let total: f64 = row.iter().sum();
            row.iter_mut().for_each(|v| *v /= total);
        }
    }
    (x, y)
}

/// `max |a - b| / max |b|`, the normwise relative difference.
fn relative_difference<T: FaerScalar>(a: &[T], b: &[T]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.to_f64().abs()));
    // A NaN anywhere (an unwritten output, say) makes the difference NaN,
    // which no tolerance accepts; `f64::max` would skip it.
    let diff = a.iter().zip(b).fold(0.0f64, |m, (a, b)| {
        let d = (a.to_f64() - b.to_f64()).abs();
        if d > m || d.is_nan() { d } else { m }
    });
    if scale == 0.0 { diff } else { diff / scale }
}

/// Runs `faer` and the naive backend in precision `T` on one network and batch
/// and checks loss, gradient and forward outputs agree to `tolerance`.
fn check_against_naive<T: FaerScalar>(
    faer: &mut FaerBackend<T>,
    network: &Network<f64>,
    rows: usize,
    seed: u64,
    tolerance: f64,
) {
    let network: Network<T> = network.to_precision();
    let architecture = network.architecture();
    let (x, y) = data(architecture, rows, seed);
    let x: Vec<T> = x.into_iter().map(T::from_f64).collect();
    let y: Vec<T> = y.into_iter().map(T::from_f64).collect();
    let batch = Batch::from_slices(architecture, rows, &x, &y).unwrap();
    let label = format!("{architecture} rows {rows} {}", T::NAME);

    let mut naive = NaiveBackend::new();
    let mut expected = network.zero_gradient();
    let expected_loss = naive
        .loss_and_gradient(&network, &batch, &mut expected)
        .unwrap();

    // Garbage in the gradient buffer must be overwritten, never read.
    let mut gradient = network.zero_gradient();
    gradient.as_mut_slice().fill(T::from_f64(f64::NAN));
    let loss = faer
        .loss_and_gradient(&network, &batch, &mut gradient)
        .unwrap();

    let loss_error = relative_difference(&[loss], &[expected_loss]);
    assert!(loss_error <= tolerance, "{label}: loss {loss_error:e}");
    let gradient_error = relative_difference(gradient.as_slice(), expected.as_slice());
    assert!(
        gradient_error <= tolerance,
        "{label}: gradient {gradient_error:e}"
    );

    let inputs =
        Inputs::new(MatrixRef::new(&x, rows, architecture.input_width()).unwrap()).unwrap();
    let outputs = rows * architecture.output_width();
    let mut expected_out = vec![T::ZERO; outputs];
    naive.forward(&network, &inputs, &mut expected_out).unwrap();
    let mut out = vec![T::from_f64(f64::NAN); outputs];
    faer.forward(&network, &inputs, &mut out).unwrap();
    let forward_error = relative_difference(&out, &expected_out);
    assert!(
        forward_error <= tolerance,
        "{label}: forward {forward_error:e}"
    );
}

/// Architectures covering every activation in hidden and output layers, both
/// losses, and one to four weight layers.
fn architectures() -> Vec<Architecture> {
    use Activation::*;
    let mse = Loss::Mse;
    let ce = Loss::SoftmaxCrossEntropy;
    vec![
        Architecture::seed(5, 7, 3).unwrap(),
        Architecture::new(&[4, 3], &[Tanh], mse).unwrap(),
        Architecture::new(&[6, 9, 4], &[Relu, Identity], ce).unwrap(),
        Architecture::new(&[8, 16, 12, 5], &[Tanh, Relu, Sigmoid], mse).unwrap(),
        Architecture::new(&[3, 11, 2, 13, 7], &[Sigmoid, Tanh, Relu, Identity], ce).unwrap(),
        Architecture::new(&[10, 1, 10], &[Identity, Relu], mse).unwrap(),
        Architecture::new(&[33, 65, 17], &[Relu, Tanh], mse).unwrap(),
    ]
}

#[test]
fn f64_agrees_with_naive() {
    let mut faer = FaerBackend::<f64>::sequential();
    for (i, architecture) in architectures().into_iter().enumerate() {
        let network = network(architecture, 10 + i as u64);
        for rows in [1, 2, 7, 32] {
            check_against_naive(&mut faer, &network, rows, 100 + rows as u64, 1e-12);
        }
    }
}

#[test]
fn f32_agrees_with_naive() {
    let mut faer = FaerBackend::<f32>::sequential();
    for (i, architecture) in architectures().into_iter().enumerate() {
        let network = network(architecture, 20 + i as u64);
        for rows in [1, 5, 32] {
            check_against_naive(&mut faer, &network, rows, 200 + rows as u64, 1e-4);
        }
    }
}

#[test]
fn one_backend_serves_several_shapes_in_a_row() {
    // Growing, shrinking and returning shapes and batch sizes on one instance.
    let mut faer = FaerBackend::<f64>::new();
    let networks: Vec<Network<f64>> = architectures()
        .into_iter()
        .enumerate()
        .map(|(i, architecture)| network(architecture, 30 + i as u64))
        .collect();
    for (network, rows) in networks.iter().zip([9, 1, 40, 3, 17, 2, 8]) {
        check_against_naive(&mut faer, network, rows, 300, 1e-12);
    }
    for (network, rows) in networks.iter().rev().zip([1, 64, 5, 2, 33, 1, 4]) {
        check_against_naive(&mut faer, network, rows, 301, 1e-12);
    }
}

#[test]
fn batch_of_one_sample() {
    let mut faer = FaerBackend::<f64>::sequential();
    for (i, architecture) in architectures().into_iter().enumerate() {
        check_against_naive(
            &mut faer,
            &network(architecture, 40 + i as u64),
            1,
            400,
            1e-12,
        );
    }
}

#[test]
fn parallel_products_agree_with_sequential_ones() {
    // Large enough that faer really forks the products.
    use Activation::*;
    let architecture = Architecture::new(
        &[96, 128, 80, 10],
        &[Tanh, Relu, Identity],
        Loss::SoftmaxCrossEntropy,
    )
    .unwrap();
    let network = network(architecture, 50);
    let rows = 150;
    let (x, y) = data(network.architecture(), rows, 500);
    let batch = Batch::from_slices(network.architecture(), rows, &x, &y).unwrap();
    let mut reference = network.zero_gradient();
    let reference_loss = FaerBackend::sequential()
        .loss_and_gradient(&network, &batch, &mut reference)
        .unwrap();
    for parallelism in [
        Parallelism::Rayon(2),
        Parallelism::Rayon(0),
        Parallelism::Auto,
    ] {
        let mut faer = FaerBackend::with_parallelism(parallelism);
        assert_eq!(faer.parallelism(), parallelism);
        let mut gradient = network.zero_gradient();
        let loss = faer
            .loss_and_gradient(&network, &batch, &mut gradient)
            .unwrap();
        assert!(relative_difference(&[loss], &[reference_loss]) <= 1e-12);
        let error = relative_difference(gradient.as_slice(), reference.as_slice());
        assert!(error <= 1e-12, "{parallelism:?}: {error:e}");
    }
    check_against_naive(
        &mut FaerBackend::<f64>::with_parallelism(Parallelism::Rayon(2)),
        &network,
        rows,
        500,
        1e-12,
    );
}

#[test]
fn sgd_step_matches_naive_and_name_is_stable() {
    let network = network(Architecture::seed(6, 5, 2).unwrap(), 60);
    let (x, y) = data(network.architecture(), 4, 600);
    let batch = Batch::from_slices(network.architecture(), 4, &x, &y).unwrap();
    let mut faer = FaerBackend::<f64>::default();
    assert_eq!(Backend::<f64>::name(&faer), "faer");
    let (mut a, mut b) = (network.clone(), network);
    let (mut ga, mut gb) = (a.zero_gradient(), b.zero_gradient());
    let la = faer.sgd_step(&mut a, &batch, &mut ga, 0.5).unwrap();
    let lb = NaiveBackend::new()
        .sgd_step(&mut b, &batch, &mut gb, 0.5)
        .unwrap();
    assert!(relative_difference(&[la], &[lb]) <= 1e-12);
    assert!(relative_difference(a.params().as_slice(), b.params().as_slice()) <= 1e-12);
}

#[test]
fn a_step_that_forks_updates_on_the_pool_exactly_as_the_core_does() {
    // 200-200-3 (40,803 parameters: two pieces of the update) on a pool of
    // 2 and of 3 threads, with parallelism that forks: the parameters after
    // the step are the ones before plus `-eta` times the gradient the step
    // left, bit for bit, and a step refused after the gradient leaves the
    // network as it was.
    let architecture = Architecture::new(
        &[200, 200, 3],
        &[Activation::Tanh, Activation::Identity],
        Loss::Mse,
    )
    .unwrap();
    let start = network(architecture.clone(), 7);
    let (x, y) = data(&architecture, 5, 70);
    let batch = Batch::from_slices(&architecture, 5, &x, &y).unwrap();
    for threads in [2, 3] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let mut faer = FaerBackend::<f64>::with_parallelism(Parallelism::Rayon(0));
        let mut network = start.clone();
        let mut gradient = network.zero_gradient();
        pool.install(|| faer.sgd_step(&mut network, &batch, &mut gradient, 0.25))
            .unwrap();
        let mut expected = start.params().as_slice().to_vec();
        backprop_core::vector::axpy(&mut expected, -0.25, gradient.as_slice());
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(network.params().as_slice()),
            bits(&expected),
            "{threads} threads"
        );

        // Targets so far off that the loss overflows while the gradient
        // stays finite: refused after the proof has read the gradient.
        let far = vec![1e200; y.len()];
        let batch = Batch::from_slices(&architecture, 5, &x, &far).unwrap();
        let mut network = start.clone();
        let error = pool
            .install(|| faer.sgd_step(&mut network, &batch, &mut gradient, 0.25))
            .unwrap_err();
        assert!(matches!(error, Error::NonFiniteLoss { .. }), "{error:?}");
        let same = bits(network.params().as_slice()) == bits(start.params().as_slice());
        assert!(
            same,
            "{threads} threads: a refused step changed the network"
        );
    }
}

#[test]
fn the_first_layer_split_gives_the_steps_own_gradient() {
    let architecture = Architecture::new(
        &[9, 7, 5, 3],
        &[Activation::Tanh, Activation::Sigmoid, Activation::Identity],
        Loss::SoftmaxCrossEntropy,
    )
    .unwrap();
    let network = network(architecture.clone(), 4);
    let rows = 13;
    let (x, y) = data(&architecture, rows, 4);
    let batch = Batch::from_slices(&architecture, rows, &x, &y).unwrap();
    let mut faer = FaerBackend::<f64>::sequential();
    let mut whole = network.zero_gradient();
    let loss = faer
        .loss_and_gradient(&network, &batch, &mut whole)
        .unwrap();

    let mut gradient = network.zero_gradient();
    gradient.as_mut_slice().fill(f64::NAN);
    let mut delta = vec![f64::NAN; rows * 7];
    let task = GradientTask::new(&network, batch, &mut gradient).unwrap();
    let split_loss = faer
        .run_gradient_but_first_weights(SplitGradientTask::new(task, &mut delta).unwrap())
        .unwrap();
    assert_eq!(split_loss.to_bits(), loss.to_bits());
    let first_weights = architecture.layers()[0].weight_range();
    let (left_out, others) = gradient.as_slice().split_at(first_weights.end);
    assert!(
        left_out.iter().all(|v| v.is_nan()),
        "the first weights are not written"
    );
    assert_eq!(others, &whole.as_slice()[first_weights.end..]);

    // delta^1^T X, in blocks of hidden units, is the first layer's weight gradient.
    let delta = MatrixRef::new(&delta, rows, 7).unwrap();
    let inputs = MatrixRef::new(&x, rows, 9).unwrap();
    let mut first = vec![f64::NAN; 7 * 9];
    let (top, bottom) = first.split_at_mut(3 * 9);
    for (units, out) in [(0..3, top), (3..7, bottom)] {
        let mut task = FirstWeightRowsTask::new(delta, inputs, units, out).unwrap();
        faer.run_first_weight_rows(&mut task);
    }
    let error = relative_difference(&first, &whole.as_slice()[first_weights]);
    assert!(error <= 1e-14, "{error:e}");
}

#[test]
fn batches_large_enough_to_transpose_delta_agree_with_naive() {
    // From `TRANSPOSE_MIN_INNER` rows on, the weight gradients go through
    // delta^T copied feature-major; one row fewer takes the direct product.
    use crate::TRANSPOSE_MIN_INNER;
    for parallelism in [
        Parallelism::Sequential,
        Parallelism::RowBlocks,
        Parallelism::Auto,
    ] {
        let mut faer = FaerBackend::<f64>::with_parallelism(parallelism);
        for (i, architecture) in architectures().into_iter().enumerate() {
            let network = network(architecture, 70 + i as u64);
            for rows in [TRANSPOSE_MIN_INNER - 1, TRANSPOSE_MIN_INNER, 301] {
                check_against_naive(&mut faer, &network, rows, 700 + rows as u64, 1e-12);
            }
        }
    }
    let mut faer = FaerBackend::<f32>::new();
    for (i, architecture) in architectures().into_iter().enumerate() {
        check_against_naive(
            &mut faer,
            &network(architecture, 80 + i as u64),
            200,
            800,
            1e-4,
        );
    }
}

#[test]
fn row_blocks_agree_with_sequential_products() {
    // Products above the crossover, split into one block of rows per thread
    // of pools of 1, 2 and 3 threads (an odd split included).
    use Activation::*;
    let architecture = Architecture::new(&[300, 257, 130], &[Sigmoid, Tanh], Loss::Mse).unwrap();
    let network = network(architecture, 90);
    let rows = 260;
    let (x, y) = data(network.architecture(), rows, 900);
    let batch = Batch::from_slices(network.architecture(), rows, &x, &y).unwrap();
    let mut reference = network.zero_gradient();
    let reference_loss = FaerBackend::sequential()
        .loss_and_gradient(&network, &batch, &mut reference)
        .unwrap();
    for threads in [1, 2, 3] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let mut faer = FaerBackend::with_parallelism(Parallelism::RowBlocks);
            let mut gradient = network.zero_gradient();
            let loss = faer
                .loss_and_gradient(&network, &batch, &mut gradient)
                .unwrap();
            assert!(relative_difference(&[loss], &[reference_loss]) <= 1e-12);
            let error = relative_difference(gradient.as_slice(), reference.as_slice());
            assert!(error <= 1e-12, "{threads} threads: {error:e}");
            check_against_naive(&mut faer, &network, rows, 900, 1e-12);
        });
    }
}

#[test]
fn first_layer_blocks_of_every_size_in_a_row_on_one_backend() {
    // Blocks of hidden units through both layouts of the block's product
    // (batches on both sides of `TRANSPOSE_MIN_INNER`), growing and shrinking
    // blocks on one backend, and architectures one after another.
    use crate::TRANSPOSE_MIN_INNER;
    let mut faer = FaerBackend::<f64>::sequential();
    for (i, (widths, rows)) in [
        (&[9, 7, 3][..], TRANSPOSE_MIN_INNER + 5),
        (&[20, 40, 5, 2], TRANSPOSE_MIN_INNER - 1),
        (&[3, 65, 4], 2 * TRANSPOSE_MIN_INNER),
        (&[9, 7, 3], 3),
    ]
    .into_iter()
    .enumerate()
    {
        let activations = vec![Activation::Sigmoid; widths.len() - 1];
        let architecture = Architecture::new(widths, &activations, Loss::Mse).unwrap();
        let network = network(architecture.clone(), 100 + i as u64);
        let (x, y) = data(&architecture, rows, 1000 + i as u64);
        let batch = Batch::from_slices(&architecture, rows, &x, &y).unwrap();
        let mut whole = network.zero_gradient();
        faer.loss_and_gradient(&network, &batch, &mut whole)
            .unwrap();
        let (n, hidden) = (widths[0], widths[1]);
        let mut gradient = network.zero_gradient();
        let mut delta = vec![f64::NAN; rows * hidden];
        let task = GradientTask::new(&network, batch, &mut gradient).unwrap();
        faer.run_gradient_but_first_weights(SplitGradientTask::new(task, &mut delta).unwrap())
            .unwrap();
        // Every other parameter's gradient, the first layer's bias (summed
        // as delta^1 is copied out) included, has the whole step's bits.
        let first_weights = architecture.layers()[0].weight_range();
        assert_eq!(
            gradient.as_slice()[first_weights.end..],
            whole.as_slice()[first_weights.end..],
            "{widths:?} rows {rows}"
        );
        let transposed: Vec<f64> = (0..hidden * rows)
            .map(|i| delta[i % rows * hidden + i / rows])
            .collect();
        let by_unit = MatrixRef::new(&transposed, hidden, rows).unwrap();
        let delta = MatrixRef::new(&delta, rows, hidden).unwrap();
        let inputs = MatrixRef::new(&x, rows, n).unwrap();
        for cuts in [
            vec![0, hidden],
            vec![0, 1, hidden],
            vec![0, hidden / 2, hidden - 1, hidden],
        ] {
            for layout in [DeltaLayout::BySample, DeltaLayout::ByUnit] {
                let mut first = vec![f64::NAN; hidden * n];
                for pair in cuts.windows(2) {
                    let units = pair[0]..pair[1];
                    let out = &mut first[units.start * n..units.end * n];
                    let mut task = match layout {
                        DeltaLayout::BySample => {
                            FirstWeightRowsTask::new(delta, inputs, units, out)
                        }
                        DeltaLayout::ByUnit => {
                            FirstWeightRowsTask::by_unit(by_unit, inputs, units, out)
                        }
                    }
                    .unwrap();
                    faer.run_first_weight_rows(&mut task);
                }
                let error = relative_difference(&first, &whole.as_slice()[first_weights.clone()]);
                assert!(
                    error <= 1e-14,
                    "{widths:?} rows {rows} cuts {cuts:?} {layout:?}: {error:e}"
                );
            }
        }
    }
}

#[test]
fn a_sequential_backend_is_configured_never_to_fork() {
    // The rayon backend's workers rely on it: each runs its inner backend
    // on its own thread (see `backprop-rayon`'s docs).
    assert_eq!(
        FaerBackend::<f64>::sequential().parallelism(),
        Parallelism::Sequential
    );
    assert_eq!(
        FaerBackend::<f32>::sequential().parallelism(),
        Parallelism::Sequential
    );
}

#[test]
fn a_forward_pass_alone_on_a_fresh_backend_agrees_with_naive() {
    // No gradient call first, so the scratch holds nothing a wrong forward
    // pass could borrow from an earlier step.
    for architecture in architectures() {
        let network = network(architecture.clone(), 11);
        let rows = 9;
        let (x, _) = data(&architecture, rows, 12);
        let inputs =
            Inputs::new(MatrixRef::new(&x, rows, architecture.input_width()).unwrap()).unwrap();
        let outputs = rows * architecture.output_width();
        let mut expected = vec![0.0; outputs];
        NaiveBackend::new()
            .forward(&network, &inputs, &mut expected)
            .unwrap();
        let mut out = vec![f64::NAN; outputs];
        FaerBackend::<f64>::new()
            .forward(&network, &inputs, &mut out)
            .unwrap();
        let error = relative_difference(&out, &expected);
        assert!(error <= 1e-12, "{architecture}: forward {error:e}");
    }
}
