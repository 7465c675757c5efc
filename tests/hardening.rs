//! Hostile input: sizes that do not fit in memory, NaN and overflow, failing and panicking workers; each gets its typed error and leaves the network as it was.

use std::num::NonZeroUsize;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use backprop::train::{Dataset, DatasetPart, Error as TrainError, TrainConfig, train};
use backprop::{
    AboveFirstTask, Activation, Architecture, Backend, BackendKind, Batch, Error, FaerBackend,
    FirstLayerSplit, FirstLayerUnits, FirstUnitsTask, FirstWeightRowsTask, GradientTask, Inputs,
    Loss, MAX_LINGER, MatrixRef, NaiveBackend, Network, Parallelism, ParamLocation, Params,
    Partitions, RayonBackend, Scalar, SimdBackend, SplitGradientTask,
};

use crate::driver::pool;

// ------------------------------------------------------------- sizes

#[test]
fn parameters_that_do_not_fit_in_memory_are_too_large_not_an_abort() {
    for n in [1usize << 62, 1 << 40] {
        let architecture =
            Architecture::new(&[n, 1], &[Activation::Identity], Loss::Mse).expect("fits usize");
        let count = n + 1;
        let too_large = Error::TooLarge {
            what: "parameters",
            rows: count,
            cols: 1,
        };
        assert_eq!(
            too_large.to_string(),
            format!("parameters: {count} values do not fit in memory")
        );
        assert_eq!(
            Params::<f64>::try_zeros(&architecture).unwrap_err(),
            too_large
        );
        assert_eq!(
            Network::<f32>::try_zeros(architecture.clone()).unwrap_err(),
            too_large
        );
        assert_eq!(
            Network::<f64>::try_init(architecture, 7).unwrap_err(),
            too_large
        );
    }
    // What fits still works, and the infallible constructors agree with it.
    let architecture = Architecture::seed(3, 4, 2).unwrap();
    let network = Network::<f64>::try_init(architecture.clone(), 7).unwrap();
    assert_eq!(network, Network::init(architecture, 7));
    assert_eq!(
        network.try_zero_gradient().unwrap(),
        network.zero_gradient()
    );
}

#[test]
fn datasets_of_huge_widths_are_too_large() {
    // One label of 2^62 classes: the one-hot targets do not fit.
    let error = Dataset::<f32>::classification(vec![0.5], 1, vec![0], 1 << 62).unwrap_err();
    assert!(
        matches!(
            error,
            TrainError::TooLarge {
                part: DatasetPart::Targets,
                rows: 1,
                width,
            } if width == 1 << 62
        ),
        "{error:?}"
    );
    // No sample at all, but a count per class of usize::MAX classes does not fit either.
    let error = Dataset::<f32>::classification(vec![], 1, vec![], usize::MAX).unwrap_err();
    assert!(
        matches!(
            error,
            TrainError::TooLarge {
                part: DatasetPart::Targets,
                rows: 1,
                width: usize::MAX,
            }
        ),
        "{error:?}"
    );
    // A usize::MAX-wide empty set: picking one row of it would not fit.
    let wide = Dataset::<f64>::regression(vec![], usize::MAX, vec![], 1).unwrap();
    let error = wide.subset(&[0, 0]).unwrap_err();
    assert!(
        matches!(
            error,
            TrainError::TooLarge {
                part: DatasetPart::Features,
                rows: 2,
                width: usize::MAX,
            }
        ),
        "{error:?}"
    );
    // 2^40 classes with a few samples: the stratified split works in
    // proportion to the samples, not to the class count.
    let labels = vec![0, 1 << 20, 5, 1 << 20];
    let error = Dataset::<f32>::classification(vec![0.0; 4], 1, labels, 1 << 40).unwrap_err();
    assert!(matches!(error, TrainError::TooLarge { .. }), "{error:?}");
}

#[test]
fn a_training_run_of_usize_max_epochs_allocates_nothing_for_them() {
    // The first step diverges, so the run ends at once: had the statistics
    // of every epoch been reserved up front, this would have aborted.
    let architecture = Architecture::new(&[1, 1], &[Activation::Identity], Loss::Mse).unwrap();
    let mut network = Network::<f32>::zeros(architecture);
    let data = Dataset::regression(vec![1e30f32, 1.0], 1, vec![-1e30, 1.0], 1).unwrap();
    let mut backend = NaiveBackend::<f32>::new();
    let config = TrainConfig {
        epochs: usize::MAX,
        batch_size: 1,
        learning_rate: 1.0,
        seed: 0,
    };
    let error = train(&mut backend, &mut network, &data, &data, &config, |_| {}).unwrap_err();
    assert!(
        matches!(error, TrainError::Step { epoch: 1, .. }),
        "{error:?}"
    );
}

#[test]
fn a_linger_of_duration_max_saturates() {
    let backend = RayonBackend::new("rayon-naive", NaiveBackend::<f64>::new);
    assert_eq!(backend.with_linger(Duration::MAX).linger(), MAX_LINGER);
    let backend = RayonBackend::new("rayon-naive", NaiveBackend::<f64>::new);
    let short = Duration::from_micros(300);
    assert_eq!(backend.with_linger(short).linger(), short);
}

#[test]
fn a_faer_backend_asked_for_usize_max_threads_runs_on_the_pool_it_has() {
    let case = backprop_verify::Case::random(Architecture::seed(5, 7, 3).unwrap(), 9, 1);
    let batch = case.batch().unwrap();
    let mut reference = case.network.zero_gradient();
    let reference_loss = NaiveBackend::new()
        .loss_and_gradient(&case.network, &batch, &mut reference)
        .unwrap();
    let mut gradient = case.network.zero_gradient();
    let loss = pool(2).install(|| {
        FaerBackend::with_parallelism(Parallelism::Rayon(usize::MAX))
            .loss_and_gradient(&case.network, &batch, &mut gradient)
            .unwrap()
    });
    crate::driver::assert_agrees(
        "Rayon(usize::MAX)",
        (loss, gradient.as_slice()),
        (reference_loss, reference.as_slice()),
        1e-12,
    );
}

#[test]
fn helpers_return_errors_instead_of_panicking() {
    let matrix = MatrixRef::new(&[1.0, 2.0, 3.0, 4.0], 2, 2).unwrap();
    assert_eq!(matrix.row(1), Some(&[3.0, 4.0][..]));
    assert_eq!(matrix.row(2), None);
    assert_eq!(matrix.row(usize::MAX), None);
}

// ------------------------------------------------------------- NaN and overflow

/// A 2-3-1 seed network with every weight 0.1.
fn small_network<T: Scalar>() -> Network<T> {
    let architecture = Architecture::seed(2, 3, 1).unwrap();
    let params = Params::from_values(
        &architecture,
        vec![T::from_f64(0.1); architecture.param_count()],
    )
    .unwrap();
    Network::new(architecture, params).unwrap()
}

#[test]
fn non_finite_parameters_are_rejected_where_they_enter() {
    let architecture = Architecture::seed(2, 3, 1).unwrap();
    // Index 7 is layer 0's weight (row 3, col 1)? No: W^1 is 3 x 2, so 7 is bias 1.
    for (index, location) in [
        (
            3,
            ParamLocation::Weight {
                layer: 0,
                row: 1,
                col: 1,
            },
        ),
        (7, ParamLocation::Bias { layer: 0, index: 1 }),
        (12, ParamLocation::Bias { layer: 1, index: 0 }),
    ] {
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let mut values = vec![0.25; architecture.param_count()];
            values[index] = bad;
            let params = Params::from_values(&architecture, values).unwrap();
            let error = Network::new(architecture.clone(), params.clone()).unwrap_err();
            assert_non_finite_parameter(&error, location, bad);

            let mut network = small_network::<f64>();
            let before = network.clone();
            let error = network.set_params(params).unwrap_err();
            assert_non_finite_parameter(&error, location, bad);
            assert_eq!(network, before, "set_params left the network as it was");

            let error = network
                .update_params(|values| values[index] = bad)
                .unwrap_err();
            assert_non_finite_parameter(&error, location, bad);
            assert_bits_equal(&network, &before);
        }
    }
    // A good edit goes through and returns the closure's value.
    let mut network = small_network::<f64>();
    let sum = network
        .update_params(|values| {
            values[0] = 2.0;
            values.iter().sum::<f64>()
        })
        .unwrap();
    assert!((sum - (2.0 + 0.1 * 12.0)).abs() < 1e-12);
}

fn assert_non_finite_parameter(error: &Error, expected: ParamLocation, bad: f64) {
    match error {
        Error::NonFiniteParameter { location, value } => {
            assert_eq!(*location, expected);
            assert!(value.to_bits() == bad.to_bits() || (value.is_nan() && bad.is_nan()));
        }
        other => panic!("expected NonFiniteParameter at {expected}, got {other:?}"),
    }
}

fn assert_bits_equal<T: Scalar>(a: &Network<T>, b: &Network<T>) {
    let bits = |n: &Network<T>| -> Vec<u64> {
        n.params()
            .as_slice()
            .iter()
            .map(|v| v.to_f64().to_bits())
            .collect()
    };
    assert_eq!(bits(a), bits(b), "the parameters changed");
}

#[test]
fn a_nan_left_through_param_values_mut_is_reported_at_every_next_use() {
    let mut network = small_network::<f64>();
    network.param_values_mut()[4] = f64::NAN; // layer 0, row 2, col 0
    let location = ParamLocation::Weight {
        layer: 0,
        row: 2,
        col: 0,
    };
    assert_non_finite_parameter(&network.check_finite().unwrap_err(), location, f64::NAN);
    let (x, y) = ([0.5, -0.5], [1.0]);
    let batch = Batch::from_slices(network.architecture(), 1, &x, &y).unwrap();
    for kind in BackendKind::ALL {
        let mut backend = kind.create::<f64>();
        let mut gradient = network.zero_gradient();
        let error = backend
            .sgd_step(&mut network, &batch, &mut gradient, 0.1)
            .unwrap_err();
        assert_non_finite_parameter(&error, location, f64::NAN);
        let error = backend
            .loss_and_gradient(&network, &batch, &mut gradient)
            .unwrap_err();
        assert_non_finite_parameter(&error, location, f64::NAN);
        let error = backend
            .forward(&network, &batch.inputs(), &mut [0.0])
            .unwrap_err();
        assert_non_finite_parameter(&error, location, f64::NAN);
    }
    let error = backprop::train::checkpoint::to_bytes(&network).unwrap_err();
    assert!(
        matches!(error, TrainError::Core(Error::NonFiniteParameter { .. })),
        "{error:?}"
    );
    let data = Dataset::regression(vec![0.5, -0.5], 2, vec![1.0], 1).unwrap();
    let error = backprop::train::evaluate(&mut NaiveBackend::new(), &network, &data).unwrap_err();
    assert!(
        matches!(error, TrainError::Core(Error::NonFiniteParameter { .. })),
        "{error:?}"
    );
    // Writing a finite value back heals it.
    network.param_values_mut()[4] = 0.1;
    assert_eq!(network.check_finite(), Ok(()));
    assert_eq!(network, small_network());
}

#[test]
fn a_network_narrowed_past_f32_reports_the_overflow() {
    let mut network = small_network::<f64>();
    network.update_params(|values| values[2] = 1e300).unwrap();
    let narrowed = network.to_precision::<f32>();
    assert_non_finite_parameter(
        &narrowed.check_finite().unwrap_err(),
        ParamLocation::Weight {
            layer: 0,
            row: 1,
            col: 0,
        },
        f64::INFINITY,
    );
}

/// Every backend: the step fails with `expected` and leaves the network bit for bit as it was.
fn assert_step_fails<T: backprop::Precision>(
    network: &Network<T>,
    x: &[T],
    y: &[T],
    learning_rate: T,
    expected: impl Fn(&Error) -> bool,
) {
    let batch = Batch::from_slices(
        network.architecture(),
        x.len() / network.architecture().input_width(),
        x,
        y,
    )
    .unwrap();
    let forking = pool(2);
    let backends = BackendKind::ALL.into_iter().flat_map(|kind| {
        [
            kind.create::<T>(),
            kind.create_forking::<T>(Arc::clone(&forking)),
        ]
    });
    for mut backend in backends {
        let mut stepped = network.clone();
        let mut gradient = network.zero_gradient();
        let error = backend
            .sgd_step(&mut stepped, &batch, &mut gradient, learning_rate)
            .unwrap_err();
        assert!(expected(&error), "{}: {error:?}", backend.name());
        assert_bits_equal(&stepped, network);
    }
}

#[test]
fn an_update_that_overflows_is_refused_on_every_backend() {
    // One identity neuron with weight 1e18 (f32): the output is 1e18, the
    // loss 5e35 and the gradient 1e18, all finite, and a step of 1e21 times
    // that gradient overflows.
    let architecture = Architecture::new(&[1, 1], &[Activation::Identity], Loss::Mse).unwrap();
    let params = Params::from_values(&architecture, vec![1e18f32, 0.0]).unwrap();
    let network = Network::new(architecture, params).unwrap();
    assert_step_fails(&network, &[1.0, 1.0], &[0.0, 0.0], 1e21, |error| {
        matches!(
            error,
            Error::NonFiniteUpdate {
                location: ParamLocation::Weight { layer: 0, row: 0, col: 0 },
                parameter,
                gradient,
                learning_rate,
            } if *parameter == 1e18f32 as f64 && *gradient == 1e18f32 as f64 && *learning_rate == 1e21f32 as f64
        )
    });
    // A small step from the same place is fine.
    let mut network = network;
    let batch = Batch::from_slices(network.architecture(), 1, &[1.0], &[0.0]).unwrap();
    let mut gradient = network.zero_gradient();
    NaiveBackend::new()
        .sgd_step(&mut network, &batch, &mut gradient, 1e-3)
        .unwrap();
    network.check_finite().unwrap();
}

#[test]
fn a_gradient_that_overflows_is_refused_on_every_backend() {
    // Inputs of 1e37 and targets of -3e38 (f32): the forward pass is finite,
    // delta^L = (a - y) is 3.1e38, and delta^L x overflows.
    let architecture = Architecture::new(&[1, 1], &[Activation::Identity], Loss::Mse).unwrap();
    let params = Params::from_values(&architecture, vec![1.0f32, 0.0]).unwrap();
    let network = Network::new(architecture, params).unwrap();
    assert_step_fails(&network, &[1e37], &[-3e38], 1.0, |error| {
        matches!(
            error,
            Error::NonFiniteGradient {
                location: ParamLocation::Weight { layer: 0, row: 0, col: 0 },
                value,
            } if *value == f64::INFINITY
        )
    });
    let batch = Batch::from_slices(network.architecture(), 1, &[1e37], &[-3e38]).unwrap();
    let mut gradient = network.zero_gradient();
    let error = NaiveBackend::new()
        .loss_and_gradient(&network, &batch, &mut gradient)
        .unwrap_err();
    assert!(
        matches!(error, Error::NonFiniteGradient { .. }),
        "{error:?}"
    );
}

#[test]
fn a_loss_that_overflows_is_refused_on_every_backend() {
    // Targets of 1e20 (f32): the gradient is finite, the squared error is not.
    let network = small_network::<f32>();
    assert_step_fails(
        &network,
        &[0.5, 0.5],
        &[1e20],
        0.1,
        |error| matches!(error, Error::NonFiniteLoss { value } if *value == f64::INFINITY),
    );
}

#[test]
fn inputs_that_could_overflow_get_the_same_error_on_every_backend() {
    // Inputs near 3e38 (f32): the naive backend once gave NaN and faer 0.5.
    let network = small_network::<f32>();
    let limit = f32::MAX as f64 / 16.0;
    let huge = [3e38f32, -3e38];
    for kind in BackendKind::ALL {
        let mut backend = kind.create::<f32>();
        let inputs = Inputs::new(MatrixRef::new(&huge, 1, 2).unwrap()).unwrap();
        let error = backend.forward(&network, &inputs, &mut [0.0]).unwrap_err();
        assert!(
            matches!(error, Error::MayOverflow { layer: 0, bound, limit: l } if bound > l && l == limit),
            "{kind}: {error:?}"
        );
    }
    assert_step_fails(&network, &huge, &[0.5], 0.1, |error| {
        matches!(error, Error::MayOverflow { layer: 0, .. })
    });
    // A sample's output no longer depends on the rest of its batch: a batch
    // holding one huge sample is refused as a whole, and the ordinary sample
    // alone gives the same output on every backend.
    let mixed = [0.5f32, 0.25, 3e38, 3e38];
    let inputs = Inputs::new(MatrixRef::new(&mixed, 2, 2).unwrap()).unwrap();
    let mut alone = Vec::new();
    for kind in BackendKind::ALL {
        let mut backend = kind.create::<f32>();
        let error = backend
            .forward(&network, &inputs, &mut [0.0; 2])
            .unwrap_err();
        assert!(
            matches!(error, Error::MayOverflow { .. }),
            "{kind}: {error:?}"
        );
        let single = Inputs::new(MatrixRef::new(&mixed[..2], 1, 2).unwrap()).unwrap();
        let mut out = [0.0f32];
        backend.forward(&network, &single, &mut out).unwrap();
        alone.push(out[0]);
    }
    assert!(
        alone.iter().all(|&a| (a - alone[0]).abs() <= 1e-6),
        "{alone:?}"
    );
}

#[test]
fn softmax_cross_entropy_is_finite_wherever_its_gradient_is() {
    // Logits of +-2e38 (f32) and +-1e308 (f64): a target of 0 on the far
    // logit once gave 0 * -inf = NaN.
    let check = |z: [f64; 2]| {
        let y = [1.0, 0.0];
        let loss = Loss::SoftmaxCrossEntropy.sample_value(&z, &y).unwrap();
        let mut delta = [0.0; 2];
        Loss::SoftmaxCrossEntropy
            .output_gradient(&z, &y, 1.0, &mut delta)
            .unwrap();
        assert_eq!(loss, 0.0, "{z:?}");
        assert!(delta.iter().all(|d| d.is_finite()), "{delta:?}");
    };
    check([1e308, -1e308]);
    let z32 = [2e38f32, -2e38];
    let loss = Loss::SoftmaxCrossEntropy
        .sample_value(&z32, &[1.0, 0.0])
        .unwrap();
    assert_eq!(loss, 0.0);
    // Through a network such logits are refused before any backend runs.
    let architecture =
        Architecture::new(&[1, 2], &[Activation::Identity], Loss::SoftmaxCrossEntropy).unwrap();
    let params = Params::from_values(&architecture, vec![1.0f32, -1.0, 0.0, 0.0]).unwrap();
    let network = Network::new(architecture, params).unwrap();
    assert_step_fails(&network, &[2e38], &[1.0, 0.0], 0.1, |error| {
        matches!(error, Error::MayOverflow { layer: 0, .. })
    });
}

// ------------------------------------------------------------- failing workers

/// Where a faulty inner backend fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Its partition's gradient (whole, or without the first layer's weights).
    Partition,
    /// Its block of the first layer's weight gradient, when that is split.
    FirstLayerBlock,
    /// Its block of the first layer's forward pass, when that is cut by units.
    FirstLayerUnits,
    /// The layers above the first, when that is cut by units.
    AboveFirst,
}

/// How it fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    Error,
    Panic,
    /// A NaN in the gradient it writes, found when the parts are combined.
    Nan,
}

/// A sequential backend (faer or SIMD) that fails in `phase` if it is worker `victim`.
struct Faulty<B> {
    inner: B,
    id: usize,
    victim: usize,
    phase: Phase,
    fault: Fault,
}

impl<B> Faulty<B> {
    fn fail(&self, phase: Phase) -> Result<(), Error> {
        if self.id != self.victim || self.phase != phase {
            return Ok(());
        }
        match self.fault {
            Fault::Error => Err(Error::TooLarge {
                what: "injected fault",
                rows: self.id,
                cols: 0,
            }),
            Fault::Panic => panic!("injected panic in worker {}", self.id),
            Fault::Nan => Ok(()),
        }
    }

    fn poison(&self, phase: Phase, values: &mut [f64]) {
        if self.id == self.victim
            && self.phase == phase
            && self.fault == Fault::Nan
            && let Some(value) = values.last_mut()
        {
            *value = f64::NAN;
        }
    }
}

impl<B: Backend<f64>> Backend<f64> for Faulty<B> {
    fn name(&self) -> &'static str {
        "faulty"
    }

    fn run_forward(&mut self, task: backprop::ForwardTask<'_, f64>) -> Result<(), Error> {
        self.inner.run_forward(task)
    }

    fn run_loss_and_gradient(&mut self, mut task: GradientTask<'_, f64>) -> Result<f64, Error> {
        self.fail(Phase::Partition)?;
        let loss = self.inner.run_loss_and_gradient(task.reborrow())?;
        let (_, _, mut gradient) = task.into_parts();
        self.poison(Phase::Partition, gradient.as_mut_slice());
        Ok(loss)
    }
}

impl<B: FirstLayerSplit<f64>> FirstLayerSplit<f64> for Faulty<B> {
    fn run_gradient_but_first_weights(
        &mut self,
        mut task: SplitGradientTask<'_, f64>,
    ) -> Result<f64, Error> {
        self.fail(Phase::Partition)?;
        let loss = self.inner.run_gradient_but_first_weights(task.reborrow())?;
        let (_, _, mut gradient) = task.into_parts().0.into_parts();
        self.poison(Phase::Partition, gradient.as_mut_slice());
        Ok(loss)
    }

    fn run_first_weight_rows(&mut self, task: &mut FirstWeightRowsTask<'_, f64>) {
        // A block returns no error: it can only panic or write garbage.
        if self.fault == Fault::Panic {
            let _ = self.fail(Phase::FirstLayerBlock);
        }
        self.inner.run_first_weight_rows(task);
        self.poison(Phase::FirstLayerBlock, task.output_mut());
    }
}

impl<B: FirstLayerUnits<f64>> FirstLayerUnits<f64> for Faulty<B> {
    fn run_first_layer_units(&mut self, mut task: FirstUnitsTask<'_, f64>) -> Result<(), Error> {
        self.fail(Phase::FirstLayerUnits)?;
        self.inner.run_first_layer_units(task.reborrow())?;
        self.poison(Phase::FirstLayerUnits, task.outputs_mut().0);
        Ok(())
    }

    fn run_gradient_above_first(
        &mut self,
        mut task: AboveFirstTask<'_, f64>,
    ) -> Result<f64, Error> {
        self.fail(Phase::AboveFirst)?;
        let loss = self.inner.run_gradient_above_first(task.reborrow())?;
        let (_, _, mut gradient) = task.into_parts().0.into_parts();
        self.poison(Phase::AboveFirst, gradient.as_mut_slice());
        Ok(loss)
    }
}

/// A rayon backend over faulty faer workers on 2 threads, forking for every
/// batch; `split` selects the split first layer (one partition per thread)
/// over whole gradients in 3 fixed partitions.
fn faulty_rayon(split: bool, victim: usize, phase: Phase, fault: Fault) -> Box<dyn Backend<f64>> {
    let next = Arc::new(AtomicUsize::new(0));
    let make = move || Faulty {
        inner: FaerBackend::sequential(),
        id: next.fetch_add(1, Ordering::SeqCst),
        victim,
        phase,
        fault,
    };
    let backend = if split {
        RayonBackend::splitting_first_layer("faulty-split", make)
    } else {
        RayonBackend::new("faulty-whole", make)
            .with_partitions(Partitions::Fixed(NonZeroUsize::new(3).expect("3")))
    };
    Box::new(
        backend
            .with_pool(pool(2))
            .with_parallel_threshold(0.0)
            .with_min_rows_per_partition(1),
    )
}

/// The message of a panic payload.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default()
}

/// A faulty step: what it is called, the backend, and which worker fails where, how.
type Scenario = (String, Box<dyn Backend<f64>>, usize, Phase, Fault);

/// Runs one SGD step of each scenario's backend on `case` (panics silenced)
/// and checks that it leaves the network bit for bit as it was, with the
/// injected error, the injected panic, or a NaN gradient where `nan_at`
/// says (`None`: anywhere).
fn assert_faults_change_nothing(
    case: &backprop_verify::Case<f64>,
    scenarios: Vec<Scenario>,
    nan_at: impl Fn(Phase, usize) -> Option<ParamLocation>,
) {
    let batch = case.batch().unwrap();
    let hook = panic::take_hook();
    panic::set_hook(Box::new(|_| {}));
    let mut outcomes = Vec::new();
    for (label, mut backend, victim, phase, fault) in scenarios {
        let mut network = case.network.clone();
        let mut gradient = network.zero_gradient();
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
            backend.sgd_step(&mut network, &batch, &mut gradient, 0.5)
        }));
        let outcome = outcome.map_err(|p| panic_message(&*p));
        outcomes.push((label, victim, phase, fault, outcome));
        assert_bits_equal(&network, &case.network);
    }
    panic::set_hook(hook);
    for (label, victim, phase, fault, outcome) in outcomes {
        match (fault, outcome) {
            (Fault::Error, Ok(Err(error))) => assert_eq!(
                error,
                Error::TooLarge {
                    what: "injected fault",
                    rows: victim,
                    cols: 0
                },
                "{label}"
            ),
            (Fault::Panic, Err(message)) => {
                assert_eq!(
                    message,
                    format!("injected panic in worker {victim}"),
                    "{label}"
                )
            }
            (Fault::Nan, Ok(Err(Error::NonFiniteGradient { location, value }))) => {
                assert!(value.is_nan(), "{label}");
                if let Some(expected) = nan_at(phase, victim) {
                    assert_eq!(location, expected, "{label}");
                }
            }
            (_, other) => panic!("{label}: unexpected {other:?}"),
        }
    }
}

#[test]
fn a_failing_or_panicking_worker_leaves_the_network_bit_for_bit_as_it_was() {
    let case = backprop_verify::Case::random(Architecture::seed(6, 8, 3).unwrap(), 12, 5);
    let mut scenarios: Vec<Scenario> = Vec::new();
    let mut add = |split: bool, victim: usize, phase: Phase, fault: Fault| {
        let label = format!("split {split}, worker {victim}, {phase:?}, {fault:?}");
        let backend = faulty_rayon(split, victim, phase, fault);
        scenarios.push((label, backend, victim, phase, fault));
    };
    for fault in [Fault::Error, Fault::Panic, Fault::Nan] {
        // Whole gradients in 3 partitions, any of which fails.
        for victim in 0..3 {
            add(false, victim, Phase::Partition, fault);
        }
        // The split first layer: 2 partitions, then 2 blocks of hidden units.
        for victim in 0..2 {
            add(true, victim, Phase::Partition, fault);
            if fault != Fault::Error {
                add(true, victim, Phase::FirstLayerBlock, fault);
            }
        }
    }
    assert_faults_change_nothing(&case, scenarios, |phase, victim| match phase {
        // The last value of a partition's gradient: the last bias.
        Phase::Partition => Some(ParamLocation::Bias { layer: 1, index: 2 }),
        // The last weight of the block of 4 hidden units.
        _ => Some(ParamLocation::Weight {
            layer: 0,
            row: 4 * victim + 3,
            col: 5,
        }),
    });
    // The same backends without a fault step normally.
    let mut backend = faulty_rayon(true, usize::MAX, Phase::Partition, Fault::Error);
    let mut network = case.network.clone();
    let mut gradient = network.zero_gradient();
    backend
        .sgd_step(&mut network, &case.batch().unwrap(), &mut gradient, 0.5)
        .unwrap();
    assert_ne!(network, case.network);
}

/// A rayon backend cutting the first layer by hidden units over faulty SIMD
/// workers on 2 threads, forking for every batch.
fn faulty_units(victim: usize, phase: Phase, fault: Fault) -> Box<dyn Backend<f64>> {
    let next = Arc::new(AtomicUsize::new(0));
    let make = move || Faulty {
        inner: SimdBackend::new(),
        id: next.fetch_add(1, Ordering::SeqCst),
        victim,
        phase,
        fault,
    };
    Box::new(
        RayonBackend::first_layer_by_units("faulty-units", make)
            .with_pool(pool(2))
            .with_parallel_threshold(0.0),
    )
}

#[test]
fn a_failing_or_panicking_worker_of_the_first_layer_by_units_leaves_the_network_as_it_was() {
    // The first layer holds 320 of the 344 weights, so it is cut by units.
    let case = backprop_verify::Case::random(Architecture::seed(40, 8, 3).unwrap(), 12, 5);
    let batch = case.batch().unwrap();
    let mut scenarios: Vec<Scenario> = Vec::new();
    let mut add = |victim: usize, phase: Phase, fault: Fault| {
        let label = format!("worker {victim}, {phase:?}, {fault:?}");
        scenarios.push((
            label,
            faulty_units(victim, phase, fault),
            victim,
            phase,
            fault,
        ));
    };
    for fault in [Fault::Error, Fault::Panic, Fault::Nan] {
        for victim in 0..2 {
            add(victim, Phase::FirstLayerUnits, fault);
            if fault != Fault::Error {
                add(victim, Phase::FirstLayerBlock, fault);
            }
        }
        // The layers above run on the first worker.
        add(0, Phase::AboveFirst, fault);
    }
    assert_faults_change_nothing(&case, scenarios, |phase, victim| match phase {
        // The last value of the gradient: the last bias.
        Phase::AboveFirst => Some(ParamLocation::Bias { layer: 1, index: 2 }),
        // The last weight of the block of 4 hidden units.
        Phase::FirstLayerBlock => Some(ParamLocation::Weight {
            layer: 0,
            row: 4 * victim + 3,
            col: 39,
        }),
        // A NaN activation reaches every layer's gradient.
        _ => None,
    });
    // Without a fault the step is the SIMD kernel's own, to the bit.
    let mut backend = faulty_units(usize::MAX, Phase::AboveFirst, Fault::Error);
    let (mut network, mut want_network) = (case.network.clone(), case.network.clone());
    let (mut gradient, mut want) = (network.zero_gradient(), network.zero_gradient());
    let loss = backend
        .sgd_step(&mut network, &batch, &mut gradient, 0.5)
        .unwrap();
    let want_loss = SimdBackend::<f64>::new()
        .sgd_step(&mut want_network, &batch, &mut want, 0.5)
        .unwrap();
    assert_eq!(loss.to_bits(), want_loss.to_bits());
    assert_bits_equal(&network, &want_network);
    assert_ne!(network, case.network);
}

/// A backend whose gradient holds a NaN at `index`, for the default step.
struct NanGradient {
    inner: NaiveBackend<f64>,
    index: usize,
}

impl Backend<f64> for NanGradient {
    fn name(&self) -> &'static str {
        "nan-gradient"
    }

    fn run_forward(&mut self, task: backprop::ForwardTask<'_, f64>) -> Result<(), Error> {
        self.inner.run_forward(task)
    }

    fn run_loss_and_gradient(&mut self, mut task: GradientTask<'_, f64>) -> Result<f64, Error> {
        let loss = self.inner.run_loss_and_gradient(task.reborrow())?;
        let (_, _, mut gradient) = task.into_parts();
        gradient.as_mut_slice()[self.index] = f64::NAN;
        Ok(loss)
    }
}

#[test]
fn the_default_step_refuses_a_non_finite_gradient_from_any_kernel() {
    let case = backprop_verify::Case::random(Architecture::seed(3, 4, 2).unwrap(), 5, 9);
    let batch = case.batch().unwrap();
    for (index, location) in [
        (
            0,
            ParamLocation::Weight {
                layer: 0,
                row: 0,
                col: 0,
            },
        ),
        (13, ParamLocation::Bias { layer: 0, index: 1 }),
        (25, ParamLocation::Bias { layer: 1, index: 1 }),
    ] {
        let mut backend = NanGradient {
            inner: NaiveBackend::new(),
            index,
        };
        let mut network = case.network.clone();
        let mut gradient = network.zero_gradient();
        let error = backend
            .sgd_step(&mut network, &batch, &mut gradient, 0.5)
            .unwrap_err();
        assert!(
            matches!(error, Error::NonFiniteGradient { location: l, value } if l == location && value.is_nan()),
            "{error:?}"
        );
        assert_bits_equal(&network, &case.network);
        let error = backend
            .loss_and_gradient(&network, &batch, &mut gradient)
            .unwrap_err();
        assert!(matches!(error, Error::NonFiniteGradient { location: l, .. } if l == location));
    }
}
