//! A backend behind `Box<dyn Backend<T>>` or `&mut dyn Backend<T>` runs its own overrides, not the trait's defaults.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use backprop::{
    Architecture, Backend, BackendKind, Error, FaerBackend, ForwardTask, GradientTask,
    NaiveBackend, Network, Params, RayonBackend, SgdTask, SimdBackend,
};
use backprop_verify::Case;

use crate::driver::pool;

/// Counts how often each `run_*` method of an inner naive backend is called.
#[derive(Default)]
struct Counts {
    forward: AtomicUsize,
    gradient: AtomicUsize,
    sgd: AtomicUsize,
}

/// The naive backend with a fused-looking `run_sgd_step` that counts its calls.
struct Probe {
    naive: NaiveBackend<f64>,
    counts: Arc<Counts>,
}

impl Probe {
    fn new(counts: &Arc<Counts>) -> Self {
        Probe {
            naive: NaiveBackend::new(),
            counts: Arc::clone(counts),
        }
    }
}

impl Backend<f64> for Probe {
    fn name(&self) -> &'static str {
        "probe"
    }

    fn run_forward(&mut self, task: ForwardTask<'_, f64>) -> Result<(), Error> {
        self.counts.forward.fetch_add(1, Ordering::SeqCst);
        self.naive.run_forward(task)
    }

    fn run_loss_and_gradient(&mut self, task: GradientTask<'_, f64>) -> Result<f64, Error> {
        self.counts.gradient.fetch_add(1, Ordering::SeqCst);
        self.naive.run_loss_and_gradient(task)
    }

    fn run_sgd_step(&mut self, mut task: SgdTask<'_, f64>) -> Result<f64, Error> {
        self.counts.sgd.fetch_add(1, Ordering::SeqCst);
        let loss = self.naive.run_loss_and_gradient(task.gradient_task())?;
        task.apply_update(loss)
    }
}

/// A factory of boxed backends, as a program choosing one at run time has.
fn boxed_probe(counts: &Arc<Counts>) -> Box<dyn Backend<f64>> {
    Box::new(Probe::new(counts))
}

/// `(sgd, gradient, forward)` calls so far.
fn calls(counts: &Counts) -> (usize, usize, usize) {
    (
        counts.sgd.load(Ordering::SeqCst),
        counts.gradient.load(Ordering::SeqCst),
        counts.forward.load(Ordering::SeqCst),
    )
}

fn step(backend: &mut dyn Backend<f64>, case: &Case<f64>) -> (Network<f64>, Params<f64>, f64) {
    let mut network = case.network.clone();
    let mut gradient = network.zero_gradient();
    let loss = backend
        .sgd_step(&mut network, &case.batch().unwrap(), &mut gradient, 0.5)
        .unwrap();
    (network, gradient, loss)
}

#[test]
fn a_boxed_backend_takes_its_own_sgd_step() {
    let case = Case::random(Architecture::seed(4, 3, 2).unwrap(), 5, 1);
    let counts = Arc::new(Counts::default());
    let mut boxed = boxed_probe(&counts);
    let (network, _, _) = step(&mut boxed, &case);
    assert_eq!(calls(&counts), (1, 0, 0), "the box forwards run_sgd_step");
    assert_ne!(network, case.network, "the step updated the network");

    // The box's own `Backend` impl, reached through a generic.
    fn generic_step<B: Backend<f64>>(backend: &mut B, case: &Case<f64>) {
        step(backend, case);
    }
    generic_step(&mut boxed, &case);
    assert_eq!(
        calls(&counts),
        (2, 0, 0),
        "Box<dyn Backend> as a Backend itself"
    );

    let mut outputs = vec![0.0; 5 * 2];
    boxed
        .forward(&case.network, &case.batch().unwrap().inputs(), &mut outputs)
        .unwrap();
    let mut gradient = case.network.zero_gradient();
    boxed
        .loss_and_gradient(&case.network, &case.batch().unwrap(), &mut gradient)
        .unwrap();
    assert_eq!(calls(&counts), (2, 1, 1));
}

#[test]
fn a_backend_behind_a_mutable_reference_takes_its_own_sgd_step() {
    let case = Case::random(Architecture::seed(4, 3, 2).unwrap(), 5, 2);
    let counts = Arc::new(Counts::default());
    let mut probe = Probe::new(&counts);
    let by_reference: &mut dyn Backend<f64> = &mut probe;
    step(by_reference, &case);
    // `&mut B` is a backend too, forwarding every `run_*` method.
    fn generic_step<B: Backend<f64>>(mut backend: B, case: &Case<f64>) {
        step(&mut backend, case);
    }
    generic_step(&mut probe, &case);
    assert_eq!(calls(&counts), (2, 0, 0));
}

#[test]
fn a_boxed_rayon_backend_forwards_its_step_to_its_boxed_inner_backends() {
    // One partition (below the flop threshold): the rayon backend hands the
    // whole step to its inner backend's own `run_sgd_step`, through two boxes.
    let case = Case::random(Architecture::seed(4, 3, 2).unwrap(), 5, 3);
    let counts = Arc::new(Counts::default());
    let inner_counts = Arc::clone(&counts);
    let mut rayon: Box<dyn Backend<f64>> = Box::new(RayonBackend::new("rayon-probe", move || {
        boxed_probe(&inner_counts)
    }));
    step(&mut rayon, &case);
    assert_eq!(calls(&counts), (1, 0, 0));
}

#[test]
fn the_boxed_rayon_faer_from_the_factory_steps_as_the_concrete_one() {
    // Forking for every batch, so that the fused step (the update inside the
    // combination, the first layer split by hidden units) is what runs.
    let case = Case::random(Architecture::seed(30, 20, 4).unwrap(), 24, 4);
    let pool = pool(2);
    let mut boxed = BackendKind::RayonFaer.create_forking::<f64>(Arc::clone(&pool));
    let mut concrete =
        RayonBackend::splitting_first_layer("rayon-faer", FaerBackend::<f64>::sequential)
            .with_pool(pool)
            .with_parallel_threshold(0.0)
            .with_min_rows_per_partition(1);
    let (boxed_network, boxed_gradient, boxed_loss) = step(&mut boxed, &case);
    let (network, gradient, loss) = step(&mut concrete, &case);
    assert_eq!(boxed_loss.to_bits(), loss.to_bits());
    assert_eq!(boxed_gradient, gradient);
    assert_eq!(boxed_network, network);

    // And a boxed inner faer backend still offers the split: same bits again.
    let mut boxed_inner = RayonBackend::splitting_first_layer("rayon-boxed-faer", || {
        Box::new(FaerBackend::<f64>::sequential())
    })
    .with_pool(crate::driver::pool(2))
    .with_parallel_threshold(0.0)
    .with_min_rows_per_partition(1);
    let (inner_network, _, inner_loss) = step(&mut boxed_inner, &case);
    assert_eq!(inner_loss.to_bits(), loss.to_bits());
    assert_eq!(inner_network, network);
}

#[test]
fn the_boxed_rayon_simd_from_the_factory_cuts_the_first_layer_as_the_concrete_one() {
    // The first layer holds 600 of the 640 weights and the batch is below
    // UNITS_MAX_ROWS: the step cuts it by hidden units.
    let case = Case::random(Architecture::seed(30, 20, 2).unwrap(), 24, 4);
    let pool = pool(2);
    let mut boxed = BackendKind::RayonSimd.create_forking::<f64>(Arc::clone(&pool));
    let mut concrete = RayonBackend::first_layer_by_units("rayon-simd", SimdBackend::<f64>::new)
        .with_pool(pool)
        .with_parallel_threshold(0.0)
        .with_min_rows_per_partition(1);
    let (boxed_network, boxed_gradient, boxed_loss) = step(&mut boxed, &case);
    let (network, gradient, loss) = step(&mut concrete, &case);
    assert_eq!(boxed_loss.to_bits(), loss.to_bits());
    assert_eq!(boxed_gradient, gradient);
    assert_eq!(boxed_network, network);
    // The cut gives the SIMD kernel's own step, bit for bit.
    let (simd_network, _, simd_loss) = step(&mut SimdBackend::<f64>::new(), &case);
    assert_eq!(simd_loss.to_bits(), loss.to_bits());
    assert_eq!(simd_network, network);

    // And a boxed inner SIMD backend still offers the cut: same bits again.
    let mut boxed_inner = RayonBackend::first_layer_by_units("rayon-boxed-simd", || {
        Box::new(SimdBackend::<f64>::new())
    })
    .with_pool(crate::driver::pool(2))
    .with_parallel_threshold(0.0);
    let (inner_network, _, inner_loss) = step(&mut boxed_inner, &case);
    assert_eq!(inner_loss.to_bits(), loss.to_bits());
    assert_eq!(inner_network, network);
}
