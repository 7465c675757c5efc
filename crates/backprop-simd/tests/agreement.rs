//! The SIMD backend against the naive reference on every path this CPU has: shapes on both
//! sides of the vector and tile edges, every activation and loss, deep networks, the fused
//! SGD step, the forward pass, the first-layer split, the first layer cut by hidden units, and
//! several architectures in a row.

use backprop_core::{
    AboveFirstTask, Activation, Architecture, Backend, Batch, FirstLayerSplit, FirstLayerUnits,
    FirstUnitsTask, FirstWeightRowsTask, GradientTask, Inputs, Layers, Loss, MatrixRef, Network,
    Params, Scalar, SplitGradientTask,
};
use backprop_naive::NaiveBackend;
use backprop_simd::{Path, SimdBackend, SimdScalar};
use backprop_verify::Case;

/// Widths on both sides of the vector (4, 8, 16 lanes) and tile edges.
const EDGES: [usize; 10] = [1, 7, 8, 9, 15, 16, 17, 31, 33, 65];

/// The largest of `|a - b| / (1 + |b|)` over two slices of equal length.
fn worst(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(a, b)| (a - b).abs() / (1.0 + b.abs()))
        .fold(0.0, f64::max)
}

/// A seeded case of `architecture` with `rows` samples, in `T`.
fn case<T: Scalar>(architecture: &Architecture, rows: usize, seed: u64) -> Case<T> {
    Case::<f64>::random(architecture.clone(), rows, seed).to_precision::<T>()
}

/// Loss and gradient of `backend` on `case`, widened to `f64`.
fn loss_and_gradient<T: Scalar>(backend: &mut dyn Backend<T>, case: &Case<T>) -> (f64, Vec<f64>) {
    let mut gradient = case.network.zero_gradient();
    let loss = backend
        .loss_and_gradient(&case.network, &case.batch().unwrap(), &mut gradient)
        .unwrap();
    let values = gradient.as_slice().iter().map(|v| v.to_f64()).collect();
    (loss.to_f64(), values)
}

/// Relative tolerance of the comparison with the naive backend in `T`.
fn tolerance<T: Scalar>() -> f64 {
    if T::NAME == "f64" { 1e-12 } else { 2e-5 }
}

/// Checks loss, gradient, forward output and a fused SGD step of `simd`
/// against the naive backend on one case.
fn check_case<T: SimdScalar>(simd: &mut SimdBackend<T>, case: &Case<T>, label: &str) {
    let tolerance = tolerance::<T>();
    let mut naive = NaiveBackend::<T>::new();
    let (loss, gradient) = loss_and_gradient(simd, case);
    let (naive_loss, naive_gradient) = loss_and_gradient(&mut naive, case);
    assert!(
        (loss - naive_loss).abs() <= tolerance * naive_loss.abs().max(1e-30),
        "{label}: loss {loss} vs {naive_loss}"
    );
    let error = worst(&gradient, &naive_gradient);
    assert!(error <= tolerance, "{label}: gradient off by {error:e}");

    // The forward pass.
    let architecture = case.network.architecture();
    let (rows, n, m) = (
        case.rows,
        architecture.input_width(),
        architecture.output_width(),
    );
    let inputs = Inputs::new(MatrixRef::new(&case.inputs, rows, n).unwrap()).unwrap();
    let mut outputs = vec![T::ZERO; rows * m];
    let mut naive_outputs = vec![T::ZERO; rows * m];
    simd.forward(&case.network, &inputs, &mut outputs).unwrap();
    naive
        .forward(&case.network, &inputs, &mut naive_outputs)
        .unwrap();
    let widen = |v: &[T]| v.iter().map(|v| v.to_f64()).collect::<Vec<_>>();
    let error = worst(&widen(&outputs), &widen(&naive_outputs));
    assert!(error <= tolerance, "{label}: forward off by {error:e}");

    // The fused SGD step: the same loss, the gradient left in the buffer, the update applied.
    let rate = T::from_f64(0.5);
    let mut network = case.network.clone();
    let mut grad = network.zero_gradient();
    let step_loss = simd
        .sgd_step(&mut network, &case.batch().unwrap(), &mut grad, rate)
        .unwrap();
    assert_eq!(step_loss.to_f64(), loss, "{label}: SGD step loss");
    assert_eq!(
        widen(grad.as_slice()),
        gradient,
        "{label}: gradient after the SGD step"
    );
    let mut expected = case.network.clone();
    let mut naive_grad = expected.zero_gradient();
    naive
        .sgd_step(&mut expected, &case.batch().unwrap(), &mut naive_grad, rate)
        .unwrap();
    let error = worst(
        &widen(network.params().as_slice()),
        &widen(expected.params().as_slice()),
    );
    assert!(
        error <= tolerance,
        "{label}: parameters after a step off by {error:e}"
    );
}

/// Every check on every available path for one architecture and batch.
fn check_all_paths<T: SimdScalar>(architecture: &Architecture, rows: usize, seed: u64) {
    let case = case::<T>(architecture, rows, seed);
    for path in Path::available() {
        let mut simd = SimdBackend::<T>::with_path(path).unwrap();
        let label = format!("{architecture} rows {rows} {} {path}", T::NAME);
        check_case(&mut simd, &case, &label);
    }
}

#[test]
fn widths_on_both_sides_of_vector_and_tile_edges() {
    for (i, &width) in EDGES.iter().enumerate() {
        let other = EDGES[(i * 3 + 4) % EDGES.len()];
        for (widths, rows) in [
            ([width, other, 3], 9),
            ([5, width, other], 17),
            ([other, 6, width], width),
        ] {
            let architecture = Architecture::seed(widths[0], widths[1], widths[2]).unwrap();
            check_all_paths::<f64>(&architecture, rows, i as u64);
            check_all_paths::<f32>(&architecture, rows, i as u64);
        }
    }
}

#[test]
fn batch_sizes_on_both_sides_of_vector_edges() {
    let architecture = Architecture::seed(20, 13, 4).unwrap();
    for rows in [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 64, 65, 130] {
        check_all_paths::<f64>(&architecture, rows, rows as u64);
        check_all_paths::<f32>(&architecture, rows, rows as u64);
    }
}

#[test]
fn transposed_blocks_deeper_than_one_block_with_ragged_batches() {
    // 300 inputs take two or three depth blocks of `X^T`, transposed one at
    // a time; 130 samples fill three to five column panels, the last ragged.
    // The 70 hidden units' `A^1`, transposed back a block at a time for
    // `dJ/dW^2`, span two or three column panels, and 300 samples two depth
    // blocks.
    let architecture = Architecture::seed(300, 70, 4).unwrap();
    for rows in [1, 63, 130, 300] {
        check_all_paths::<f64>(&architecture, rows, rows as u64);
        check_all_paths::<f32>(&architecture, rows, rows as u64);
    }
}

#[test]
fn batches_whose_rows_fall_in_one_cache_set() {
    // 1021 and 1024 samples: rows of 1024 values, 4 or 8 KiB apart, so the
    // 36- and 40-unit layers' products copy their activations and deltas a
    // block at a time, and the loss takes its widest blocks of vectors, the
    // last with padding lanes at 1021; 1000 samples leave the loss single
    // vectors after its blocks.
    for loss in [Loss::Mse, Loss::SoftmaxCrossEntropy] {
        let output = match loss {
            Loss::Mse => Activation::Sigmoid,
            Loss::SoftmaxCrossEntropy => Activation::Identity,
        };
        let activations = [Activation::Tanh, Activation::Sigmoid, output];
        let architecture = Architecture::new(&[20, 40, 36, 33], &activations, loss).unwrap();
        for rows in [1000, 1021, 1024] {
            check_all_paths::<f64>(&architecture, rows, rows as u64);
            check_all_paths::<f32>(&architecture, rows, rows as u64);
        }
    }
    // A 600-unit layer: the products above it copy more than one depth
    // block of its activations (and of the 40 units' deltas below it).
    let activations = [Activation::Sigmoid, Activation::Relu, Activation::Sigmoid];
    let architecture = Architecture::new(&[8, 600, 40, 3], &activations, Loss::Mse).unwrap();
    check_all_paths::<f64>(&architecture, 1024, 7);
    check_all_paths::<f32>(&architecture, 1024, 7);
}

#[test]
fn every_activation_and_loss() {
    for hidden in Activation::ALL {
        for loss in Loss::ALL {
            let outputs: &[Activation] = match loss {
                Loss::Mse => &Activation::ALL,
                Loss::SoftmaxCrossEntropy => &[Activation::Identity],
            };
            for &output in outputs {
                let architecture =
                    Architecture::with_hidden_and_output(&[9, 17, 5], hidden, output, loss)
                        .unwrap();
                check_all_paths::<f64>(&architecture, 19, 3);
                check_all_paths::<f32>(&architecture, 19, 3);
            }
        }
    }
}

#[test]
fn deep_networks() {
    use Activation::*;
    for (widths, activations, loss) in [
        (
            &[12, 33, 1, 17, 9, 16][..],
            &[Tanh, Relu, Sigmoid, Identity, Sigmoid][..],
            Loss::Mse,
        ),
        (
            &[8, 16, 16, 16, 16, 16, 16, 10],
            &[Relu, Tanh, Sigmoid, Relu, Tanh, Sigmoid, Identity],
            Loss::SoftmaxCrossEntropy,
        ),
        (&[65, 31, 7, 1], &[Sigmoid, Sigmoid, Sigmoid], Loss::Mse),
    ] {
        let architecture = Architecture::new(widths, activations, loss).unwrap();
        for rows in [1, 23, 64] {
            check_all_paths::<f64>(&architecture, rows, 5);
            check_all_paths::<f32>(&architecture, rows, 5);
        }
    }
}

#[test]
fn the_benchmark_shapes() {
    for (widths, rows) in [([64, 32, 10], 64), ([784, 256, 10], 128)] {
        let architecture = Architecture::seed(widths[0], widths[1], widths[2]).unwrap();
        check_all_paths::<f64>(&architecture, rows, 1);
        check_all_paths::<f32>(&architecture, rows, 1);
    }
}

#[test]
fn one_instance_runs_several_architectures_in_a_row() {
    let architectures = [
        Architecture::seed(64, 32, 10).unwrap(),
        Architecture::seed(7, 9, 1).unwrap(),
        Architecture::with_hidden_and_output(
            &[9, 17, 5],
            Activation::Relu,
            Activation::Identity,
            Loss::SoftmaxCrossEntropy,
        )
        .unwrap(),
        Architecture::seed(64, 32, 10).unwrap(),
    ];
    for path in Path::available() {
        let mut simd64 = SimdBackend::<f64>::with_path(path).unwrap();
        let mut simd32 = SimdBackend::<f32>::with_path(path).unwrap();
        for (i, architecture) in architectures.iter().cycle().take(8).enumerate() {
            let rows = [64, 3, 17, 40][i % 4];
            let label = format!("{architecture} rows {rows} {path} (call {i})");
            check_case(
                &mut simd64,
                &case::<f64>(architecture, rows, i as u64),
                &label,
            );
            check_case(
                &mut simd32,
                &case::<f32>(architecture, rows, i as u64),
                &label,
            );
        }
    }
}

#[test]
fn results_are_bit_identical_from_run_to_run() {
    let architecture = Architecture::seed(33, 17, 9).unwrap();
    let case = case::<f32>(&architecture, 37, 2);
    for path in Path::available() {
        let first = loss_and_gradient(&mut SimdBackend::<f32>::with_path(path).unwrap(), &case);
        let mut simd = SimdBackend::<f32>::with_path(path).unwrap();
        for _ in 0..3 {
            assert_eq!(loss_and_gradient(&mut simd, &case), first, "{path}");
        }
    }
}

/// The split gradient and the first layer's rows put together equal the whole gradient.
fn check_split<T: SimdScalar>(architecture: &Architecture, rows: usize) {
    let case = case::<T>(architecture, rows, 4);
    let hidden = architecture.widths()[1];
    let n = architecture.input_width();
    for path in Path::available() {
        let mut simd = SimdBackend::<T>::with_path(path).unwrap();
        let (loss, whole) = loss_and_gradient(&mut simd, &case);
        let mut gradient: Params<T> = case.network.zero_gradient();
        let mut delta = vec![T::ZERO; rows * hidden];
        let batch = case.batch().unwrap();
        let task = GradientTask::new(&case.network, batch, &mut gradient).unwrap();
        let split_loss = simd
            .run_gradient_but_first_weights(SplitGradientTask::new(task, &mut delta).unwrap())
            .unwrap();
        assert_eq!(split_loss.to_f64(), loss);
        let first = architecture.layers()[0].weight_range();
        let mut rows_out = vec![T::ZERO; first.len()];
        let delta_matrix = MatrixRef::new(&delta, rows, hidden).unwrap();
        for units in [0..hidden / 3, hidden / 3..hidden] {
            let out = &mut rows_out[units.start * n..units.end * n];
            let mut task =
                FirstWeightRowsTask::new(delta_matrix, batch.inputs().matrix(), units, out)
                    .unwrap();
            simd.run_first_weight_rows(&mut task);
        }
        gradient.as_mut_slice()[first].copy_from_slice(&rows_out);
        let split: Vec<f64> = gradient.as_slice().iter().map(|v| v.to_f64()).collect();
        let error = worst(&split, &whole);
        assert!(
            error <= tolerance::<T>(),
            "{architecture} {path}: split off by {error:e}"
        );
    }
}

#[test]
fn the_first_layer_split_matches_the_whole_gradient() {
    for (widths, rows) in [([17, 33, 5], 21), ([64, 32, 10], 64), ([9, 1, 3], 1)] {
        let architecture = Architecture::seed(widths[0], widths[1], widths[2]).unwrap();
        check_split::<f64>(&architecture, rows);
        check_split::<f32>(&architecture, rows);
    }
}

/// The first layer cut by hidden units, each block on a backend of its own
/// and the layers above on another, gives the whole step's bits: the
/// loss, every gradient value but the first layer's weights (left as the
/// NaN they held), and those from `delta^1` in blocks.
fn check_units<T: SimdScalar>(architecture: &Architecture, rows: usize) {
    let case = case::<T>(architecture, rows, 5);
    let (n, hidden) = (architecture.input_width(), architecture.widths()[1]);
    let blocks = [0..hidden / 3, hidden / 3..hidden / 3, hidden / 3..hidden];
    let nan = T::from_f64(f64::NAN);
    let bits = |values: &[T]| {
        values
            .iter()
            .map(|v| v.to_f64().to_bits())
            .collect::<Vec<_>>()
    };
    for path in Path::available() {
        let label = format!("{architecture} rows {rows} {path}");
        let fresh = || SimdBackend::<T>::with_path(path).unwrap();
        let mut whole = case.network.zero_gradient();
        let batch = case.batch().unwrap();
        let loss = fresh()
            .loss_and_gradient(&case.network, &batch, &mut whole)
            .unwrap();
        let mut activations = vec![nan; hidden * rows];
        let mut slopes = vec![nan; hidden * rows];
        for units in blocks.clone() {
            let block = units.start * rows..units.end * rows;
            let task = FirstUnitsTask::new(
                Layers::of(&case.network),
                batch.inputs(),
                units,
                &mut activations[block.clone()],
                &mut slopes[block],
            )
            .unwrap();
            fresh().run_first_layer_units(task).unwrap();
        }
        let mut gradient: Params<T> = case.network.zero_gradient();
        gradient.as_mut_slice().fill(nan);
        let mut delta = vec![nan; rows * hidden];
        let task = GradientTask::new(&case.network, batch, &mut gradient).unwrap();
        let above = SplitGradientTask::new(task, &mut delta)
            .and_then(|task| AboveFirstTask::new(task, &activations, &slopes))
            .unwrap();
        let above_loss = fresh().run_gradient_above_first(above).unwrap();
        assert_eq!(
            above_loss.to_f64().to_bits(),
            loss.to_f64().to_bits(),
            "{label}"
        );
        let first = architecture.layers()[0].weight_range();
        let values = gradient.as_slice();
        assert!(
            values[first.clone()].iter().all(|v| v.to_f64().is_nan()),
            "{label}: first weights written"
        );
        assert_eq!(
            bits(&values[first.end..]),
            bits(&whole.as_slice()[first.end..]),
            "{label}"
        );
        let mut rows_out = vec![nan; first.len()];
        let delta_matrix = MatrixRef::new(&delta, hidden, rows).unwrap();
        for units in blocks.clone() {
            let out = &mut rows_out[units.start * n..units.end * n];
            let mut task =
                FirstWeightRowsTask::by_unit(delta_matrix, batch.inputs().matrix(), units, out)
                    .unwrap();
            fresh().run_first_weight_rows(&mut task);
        }
        assert_eq!(bits(&rows_out), bits(&whole.as_slice()[first]), "{label}");
    }
}

#[test]
fn the_first_layer_by_units_gives_the_whole_steps_bits() {
    use Activation::*;
    for (widths, activations, loss, rows) in [
        (&[17, 33, 5][..], &[Sigmoid, Sigmoid][..], Loss::Mse, 21),
        (&[64, 32, 10], &[Sigmoid, Sigmoid], Loss::Mse, 64),
        (&[9, 1, 3], &[Tanh, Sigmoid], Loss::Mse, 1),
        (
            &[40, 19, 7, 3],
            &[Relu, Tanh, Identity],
            Loss::SoftmaxCrossEntropy,
            33,
        ),
        // A batch of whole vectors (no padding): the given block is read
        // where it lies, by every layer above and, with one layer, the loss.
        (
            &[40, 19, 7, 3],
            &[Relu, Tanh, Identity],
            Loss::SoftmaxCrossEntropy,
            32,
        ),
        (&[12, 5], &[Sigmoid], Loss::Mse, 16),
        // Rows 1 or 4 KiB apart (2 or 8 KiB in `f64`): the layers above the
        // given block copy their activations and deltas a block at a time.
        (&[20, 40, 36, 33], &[Tanh, Sigmoid, Sigmoid], Loss::Mse, 256),
        (
            &[20, 40, 36, 33],
            &[Tanh, Sigmoid, Sigmoid],
            Loss::Mse,
            1024,
        ),
    ] {
        let architecture = Architecture::new(widths, activations, loss).unwrap();
        check_units::<f64>(&architecture, rows);
        check_units::<f32>(&architecture, rows);
    }
}

#[test]
fn forcing_a_path_is_checked() {
    assert!(Path::Portable.is_available());
    assert_eq!(Path::available().next(), Some(Path::widest()));
    for path in Path::ALL {
        match SimdBackend::<f32>::with_path(path) {
            Ok(backend) => assert_eq!(backend.path(), path),
            Err(error) => {
                assert!(!path.is_available());
                assert!(error.to_string().contains(path.name()), "{error}");
            }
        }
    }
    let default = SimdBackend::<f64>::new();
    assert_eq!(default.path(), Path::widest());
    assert_eq!(Backend::<f64>::name(&default), "simd");
}

#[test]
fn extreme_pre_activations_stay_finite() {
    // Weights of +-40 drive the sigmoid and tanh far into saturation.
    for activation in [Activation::Sigmoid, Activation::Tanh, Activation::Relu] {
        let architecture =
            Architecture::with_hidden_and_output(&[3, 4, 2], activation, activation, Loss::Mse)
                .unwrap();
        let values: Vec<f64> = (0..architecture.param_count())
            .map(|i| if i % 2 == 0 { 40.0 } else { -40.0 })
            .collect();
        let params = Params::from_values(&architecture, values).unwrap();
        let network = Network::new(architecture.clone(), params).unwrap();
        let case = Case::new(
            network,
            vec![1.0, -2.0, 3.0, 0.5, 0.0, -1.0],
            vec![0.0, 1.0, 1.0, 0.0],
            2,
        )
        .unwrap();
        for path in Path::available() {
            let mut simd = SimdBackend::<f64>::with_path(path).unwrap();
            check_case(&mut simd, &case, &format!("{activation} {path}"));
        }
        let _ = Batch::from_slices(&architecture, 2, &case.inputs, &case.targets).unwrap();
    }
}

#[test]
fn an_instance_refits_when_only_the_widths_the_activations_or_the_loss_change() {
    use Activation::*;
    // Pairs that share everything the scratch is keyed on but one thing,
    // with the same batch size, one after the other on one instance.
    let pairs = [
        (
            Architecture::with_hidden_and_output(&[6, 5, 3], Tanh, Sigmoid, Loss::Mse),
            Architecture::with_hidden_and_output(&[6, 9, 3], Tanh, Sigmoid, Loss::Mse),
        ),
        (
            Architecture::with_hidden_and_output(&[6, 5, 3], Tanh, Sigmoid, Loss::Mse),
            Architecture::with_hidden_and_output(&[6, 5, 3], Relu, Sigmoid, Loss::Mse),
        ),
        (
            Architecture::with_hidden_and_output(&[6, 5, 3], Tanh, Identity, Loss::Mse),
            Architecture::with_hidden_and_output(
                &[6, 5, 3],
                Tanh,
                Identity,
                Loss::SoftmaxCrossEntropy,
            ),
        ),
    ];
    for path in Path::available() {
        for (first, second) in &pairs {
            let (first, second) = (first.as_ref().unwrap(), second.as_ref().unwrap());
            let mut simd = SimdBackend::<f64>::with_path(path).unwrap();
            check_case(
                &mut simd,
                &case::<f64>(first, 12, 1),
                &format!("{first} {path}"),
            );
            check_case(
                &mut simd,
                &case::<f64>(second, 12, 2),
                &format!("{second} after {first} {path}"),
            );
        }
    }
}

#[test]
fn the_default_step_updates_with_the_plain_loops_bits_after_the_gradient() {
    // Unfused by default: the parameters become theta + (-eta) g exactly as
    // the plain loop rounds it, g being the gradient the step leaves.
    let architecture = Architecture::seed(33, 17, 9).unwrap();
    let case = case::<f32>(&architecture, 37, 5);
    let rate = 0.37f32;
    for path in Path::available() {
        let mut simd = SimdBackend::<f32>::with_path(path).unwrap();
        assert!(!simd.fuses_update());
        let mut network = case.network.clone();
        let mut gradient = network.zero_gradient();
        simd.sgd_step(&mut network, &case.batch().unwrap(), &mut gradient, rate)
            .unwrap();
        let expected: Vec<f32> = case
            .network
            .params()
            .as_slice()
            .iter()
            .zip(gradient.as_slice())
            .map(|(&theta, &g)| theta + -rate * g)
            .collect();
        let same = network
            .params()
            .as_slice()
            .iter()
            .zip(&expected)
            .all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(same, "{path}: the default step is not gradient-then-update");
        let fused = SimdBackend::<f32>::with_path(path)
            .unwrap()
            .with_fused_update(true);
        assert!(fused.fuses_update());
        assert!(!fused.with_fused_update(false).fuses_update());
    }
}

#[test]
fn paths_are_named_and_say_what_they_need() {
    let names: Vec<String> = Path::ALL.iter().map(Path::to_string).collect();
    assert_eq!(names, ["avx512", "avx2", "portable"]);
    assert_eq!(Path::Avx512.features(), "x86-64 with avx512f, avx2 and fma");
    assert_eq!(Path::Avx2.features(), "x86-64 with avx2 and fma");
    assert_eq!(Path::Portable.features(), "nothing");
    let error = backprop_simd::UnsupportedPath { path: Path::Avx2 }.to_string();
    assert!(
        error.starts_with("the avx2 path needs x86-64 with avx2 and fma"),
        "{error}"
    );
}

#[test]
fn the_fma_peak_counts_two_flops_per_lane_of_twelve_chains_a_round() {
    // Lanes per path as documented: 16 f32 or 8 f64 on AVX-512, 8 or 4 on
    // AVX2, arrays of four values on the portable path.
    for (path, lanes32, lanes64) in [
        (Path::Avx512, 16, 8),
        (Path::Avx2, 8, 4),
        (Path::Portable, 4, 4),
    ] {
        if !path.is_available() {
            continue;
        }
        assert_eq!(
            backprop_simd::fma_peak_flops::<f32>(path, 10),
            (10 * 12 * lanes32 * 2) as f64
        );
        assert_eq!(
            backprop_simd::fma_peak_flops::<f64>(path, 3),
            (3 * 12 * lanes64 * 2) as f64
        );
    }
}

#[test]
fn a_delta_product_deeper_than_one_depth_block_agrees_with_naive() {
    // The delta of layer 1 sums over the 300 units above it: more steps
    // than one depth block of a tile holds, so later blocks start inside
    // the rows of W.
    for (widths, rows) in [([4, 8, 300, 3], 64), ([3, 5, 257, 2], 17)] {
        let architecture = Architecture::with_hidden_and_output(
            &widths,
            Activation::Tanh,
            Activation::Sigmoid,
            Loss::Mse,
        )
        .unwrap();
        check_all_paths::<f64>(&architecture, rows, 3);
        check_all_paths::<f32>(&architecture, rows, 3);
    }
}
