//! The rayon backend forced to fork: agreement with the reference, weighting, reproducibility across runs and thread counts, errors from workers.

use std::num::NonZeroUsize;
use std::sync::Arc;

use backprop::{
    Activation, Architecture, Backend, Error, FaerBackend, ForwardTask, GradientTask, Loss,
    NaiveBackend, Params, Partitions, RayonBackend,
};
use backprop_verify::Case;
use backprop_verify::strategies::{case, config};
use backprop_verify::suite::{all_passed, check_f32, check_f64, describe};
use proptest::prelude::*;

use crate::driver::{assert_agrees, pool};

/// A rayon backend over naive workers that forks for every batch of more than one row.
fn forking(threads: usize, partitions: Partitions) -> RayonBackend<f64, NaiveBackend<f64>> {
    RayonBackend::new("rayon-naive", NaiveBackend::new)
        .with_pool(pool(threads))
        .with_partitions(partitions)
        .with_parallel_threshold(0.0)
        .with_min_rows_per_partition(1)
}

fn fixed(count: usize) -> Partitions {
    Partitions::Fixed(NonZeroUsize::new(count).expect("non-zero"))
}

fn loss_and_gradient(backend: &mut dyn Backend<f64>, case: &Case<f64>) -> (f64, Vec<f64>) {
    let mut gradient = case.network.zero_gradient();
    let loss = backend
        .loss_and_gradient(&case.network, &case.batch().unwrap(), &mut gradient)
        .expect("a valid step");
    (loss, gradient.into_values())
}

fn bits((loss, gradient): &(f64, Vec<f64>)) -> Vec<u64> {
    std::iter::once(loss)
        .chain(gradient)
        .map(|v| v.to_bits())
        .collect()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn forked_partitions_pass_every_check(case in case()) {
        let reports = check_f64(&mut forking(2, Partitions::PerThread), &case, 3);
        prop_assert!(all_passed(&reports), "{}", describe(&reports));
        let reports = check_f64(&mut splitting(2), &case, 3);
        prop_assert!(all_passed(&reports), "{}", describe(&reports));
        let mut single = RayonBackend::new("rayon-naive", NaiveBackend::<f32>::new)
            .with_pool(pool(2))
            .with_partitions(fixed(3))
            .with_parallel_threshold(0.0)
            .with_min_rows_per_partition(1);
        let reports = check_f32(&mut single, &case);
        prop_assert!(all_passed(&reports), "{}", describe(&reports));
    }

    #[test]
    fn fixed_partitions_are_bit_identical_across_thread_counts(case in case()) {
        let reference = bits(&loss_and_gradient(&mut forking(1, fixed(4)), &case));
        for threads in [2, 3, 4, 8] {
            let again = bits(&loss_and_gradient(&mut forking(threads, fixed(4)), &case));
            prop_assert_eq!(&again, &reference, "{} threads", threads);
        }
    }
}

#[test]
fn per_thread_partitions_are_bit_identical_across_runs() {
    let architecture = Architecture::seed(12, 9, 4).unwrap();
    let case = Case::random(architecture, 37, 4);
    let mut backend = forking(2, Partitions::PerThread);
    let first = bits(&loss_and_gradient(&mut backend, &case));
    for _ in 0..20 {
        assert_eq!(bits(&loss_and_gradient(&mut backend, &case)), first);
        assert_eq!(
            bits(&loss_and_gradient(
                &mut forking(2, Partitions::PerThread),
                &case
            )),
            first
        );
    }
}

#[test]
fn tiny_batches_and_pools_agree_with_the_reference() {
    let architecture = Architecture::seed(5, 4, 3).unwrap();
    for rows in [1, 2, 3, 7] {
        let case = Case::random(architecture.clone(), rows, rows as u64);
        let (loss, gradient) = loss_and_gradient(&mut NaiveBackend::new(), &case);
        // One thread; more partitions than rows; more threads than rows.
        for mut backend in [
            forking(1, Partitions::PerThread),
            forking(2, fixed(8)),
            forking(8, Partitions::PerThread),
        ] {
            let (l, g) = loss_and_gradient(&mut backend, &case);
            let label = format!("{rows} rows");
            assert_agrees(&label, (l, &g), (loss, &gradient), 1e-14);
        }
    }
}

#[test]
fn steps_called_from_inside_the_pool_finish_with_the_same_bits() {
    let case = Case::random(Architecture::seed(7, 6, 3).unwrap(), 40, 11);
    for threads in [1, 2] {
        let pool = pool(threads);
        let mut outside = forking(threads, fixed(4)).with_pool(Arc::clone(&pool));
        let mut inside = forking(threads, fixed(4)).with_pool(Arc::clone(&pool));
        let expected = bits(&loss_and_gradient(&mut outside, &case));
        for _ in 0..3 {
            let got = pool.install(|| loss_and_gradient(&mut inside, &case));
            assert_eq!(bits(&got), expected, "{threads} threads");
        }
    }
}

/// A rayon backend over sequential faer workers that forks for every batch of
/// more than one row, one partition per thread: its steps split the first
/// layer's weight gradient by hidden units.
fn splitting(threads: usize) -> RayonBackend<f64, FaerBackend<f64>> {
    RayonBackend::splitting_first_layer("rayon-faer", FaerBackend::sequential)
        .with_pool(pool(threads))
        .with_parallel_threshold(0.0)
        .with_min_rows_per_partition(1)
}

#[test]
fn the_first_layer_split_agrees_with_the_reference_and_repeats_its_bits() {
    let deep = Architecture::new(
        &[6, 9, 4, 3],
        &[Activation::Tanh, Activation::Relu, Activation::Identity],
        Loss::SoftmaxCrossEntropy,
    )
    .unwrap();
    let cases = [
        (Architecture::seed(7, 5, 3).unwrap(), 40),
        (deep, 23),
        // One hidden unit: fewer blocks of units than threads.
        (Architecture::seed(5, 1, 2).unwrap(), 9),
        // 100 x 300 first-layer weights: the other parameters combine on the pool.
        (Architecture::seed(100, 300, 60).unwrap(), 17),
    ];
    for (architecture, rows) in cases {
        let case = Case::random(architecture.clone(), rows, rows as u64);
        let (loss, gradient) = loss_and_gradient(&mut NaiveBackend::new(), &case);
        for threads in [2, 3] {
            let mut backend = splitting(threads);
            let first = loss_and_gradient(&mut backend, &case);
            let widths = architecture.widths();
            let label = format!("{widths:?} on {threads} threads");
            assert_agrees(&label, (first.0, &first.1), (loss, &gradient), 1e-12);
            let again = loss_and_gradient(&mut backend, &case);
            assert_eq!(
                bits(&again),
                bits(&first),
                "{widths:?} on {threads} threads"
            );

            let mut fused = case.network.clone();
            let mut gradient = case.network.zero_gradient();
            let fused_loss = backend
                .sgd_step(&mut fused, &case.batch().unwrap(), &mut gradient, 0.5)
                .unwrap();
            let mut separate = case.network.clone();
            separate
                .apply_sgd(
                    &Params::from_values(&architecture, first.1.clone()).unwrap(),
                    0.5,
                )
                .unwrap();
            assert_eq!(fused_loss.to_bits(), first.0.to_bits());
            assert_eq!(gradient.as_slice(), &first.1[..]);
            assert_eq!(fused, separate, "{widths:?} on {threads} threads");
        }
    }
}

#[test]
fn forward_outputs_match_the_reference_row_for_row() {
    let architecture = Architecture::seed(6, 5, 3).unwrap();
    let case = Case::random(architecture, 11, 8);
    let mut expected = vec![0.0; 11 * 3];
    NaiveBackend::new()
        .forward(
            &case.network,
            &case.batch().unwrap().inputs(),
            &mut expected,
        )
        .unwrap();
    let mut outputs = vec![0.0; 11 * 3];
    forking(2, fixed(4))
        .forward(&case.network, &case.batch().unwrap().inputs(), &mut outputs)
        .unwrap();
    assert_eq!(
        outputs, expected,
        "forward is per row, so partitioning changes no bit"
    );
}

/// An inner backend that always fails, as an inner kernel rejecting its input would.
struct Refusing;

impl Backend<f64> for Refusing {
    fn name(&self) -> &'static str {
        "refusing"
    }
    fn run_forward(&mut self, _: ForwardTask<'_, f64>) -> Result<(), Error> {
        Err(Error::InvalidLearningRate { value: -1.0 })
    }
    fn run_loss_and_gradient(&mut self, _: GradientTask<'_, f64>) -> Result<f64, Error> {
        Err(Error::InvalidLearningRate { value: -1.0 })
    }
}

#[test]
fn an_inner_backend_error_reaches_the_caller_unchanged() {
    let case = Case::random(Architecture::seed(3, 3, 2).unwrap(), 6, 1);
    let mut backend = RayonBackend::new("refusing", || Refusing)
        .with_pool(pool(2))
        .with_parallel_threshold(0.0);
    let mut gradient = case.network.zero_gradient();
    let error = backend
        .loss_and_gradient(&case.network, &case.batch().unwrap(), &mut gradient)
        .unwrap_err();
    assert_eq!(error, Error::InvalidLearningRate { value: -1.0 });
    let mut outputs = vec![0.0; 12];
    let error = backend
        .forward(&case.network, &case.batch().unwrap().inputs(), &mut outputs)
        .unwrap_err();
    assert_eq!(error, Error::InvalidLearningRate { value: -1.0 });
}

#[test]
fn one_backend_serves_two_architectures_in_a_row() {
    let mut backend = forking(2, Partitions::PerThread);
    for (widths, rows) in [([4, 6, 2], 9), ([7, 3, 5], 4), ([4, 6, 2], 9)] {
        let case = Case::random(
            Architecture::seed(widths[0], widths[1], widths[2]).unwrap(),
            rows,
            2,
        );
        let expected = loss_and_gradient(&mut NaiveBackend::new(), &case);
        let actual = loss_and_gradient(&mut backend, &case);
        assert!((actual.0 - expected.0).abs() <= 1e-14);
        assert_eq!(actual.1.len(), expected.1.len());
    }
}

#[test]
fn the_fused_sgd_step_gives_the_bits_of_gradient_then_update() {
    // 18,403 parameters: the combination runs in more than one block.
    let case = Case::random(Architecture::seed(180, 100, 3).unwrap(), 13, 6);
    for partitions in [2, 3, 4] {
        let mut fused = case.network.clone();
        let mut separate = case.network.clone();
        let mut gradient = case.network.zero_gradient();
        let mut backend = forking(2, fixed(partitions));
        for _ in 0..3 {
            let fused_loss = backend
                .sgd_step(&mut fused, &case.batch().unwrap(), &mut gradient, 0.25)
                .unwrap();
            let fused_gradient = gradient.clone();
            let loss = backend
                .loss_and_gradient(&separate, &case.batch().unwrap(), &mut gradient)
                .unwrap();
            separate.apply_sgd(&gradient, 0.25).unwrap();
            assert_eq!(fused_loss.to_bits(), loss.to_bits());
            assert_eq!(fused_gradient, gradient, "{partitions} partitions");
            assert_eq!(fused, separate, "{partitions} partitions");
        }
        let e = backend
            .sgd_step(&mut fused, &case.batch().unwrap(), &mut gradient, f64::NAN)
            .unwrap_err();
        assert!(matches!(e, Error::InvalidLearningRate { .. }), "{e:?}");
    }
}

#[test]
fn small_batches_run_as_one_partition_with_the_inner_backends_bits() {
    // 64-32-10 on 8 rows: below the default flop threshold, and fewer rows
    // than two partitions of the default minimum; the step is the inner
    // backend's own.
    let case = Case::random(Architecture::seed(64, 32, 10).unwrap(), 8, 3);
    let expected = bits(&loss_and_gradient(&mut NaiveBackend::new(), &case));
    let mut default = RayonBackend::new("rayon-naive", NaiveBackend::new).with_pool(pool(2));
    assert_eq!(bits(&loss_and_gradient(&mut default, &case)), expected);
    let mut below_minimum = RayonBackend::new("rayon-naive", NaiveBackend::new)
        .with_pool(pool(2))
        .with_parallel_threshold(0.0);
    assert_eq!(
        bits(&loss_and_gradient(&mut below_minimum, &case)),
        expected
    );
}
