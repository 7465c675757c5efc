//! The faer backend's parallel passes, its sequential guarantee, and the rayon backend's scheme per partition kind.

use std::num::NonZeroUsize;

use backprop::{
    Activation, Architecture, Backend, FaerBackend, Loss, NaiveBackend, Parallelism, Partitions,
    RayonBackend,
};
use backprop_verify::Case;

use crate::driver::{assert_agrees, pool};

fn loss_and_gradient(backend: &mut dyn Backend<f64>, case: &Case<f64>) -> (f64, Vec<f64>) {
    let mut gradient = case.network.zero_gradient();
    let loss = backend
        .loss_and_gradient(&case.network, &case.batch().unwrap(), &mut gradient)
        .unwrap();
    (loss, gradient.into_values())
}

#[test]
fn the_parallel_elementwise_passes_give_the_sequential_bits() {
    // rows x outputs of 2^14 and more: the loss pass and the delta pass run
    // in blocks of rows on the pool, for every activation and both losses.
    for (hidden, output, loss) in [
        (Activation::Tanh, Activation::Sigmoid, Loss::Mse),
        (
            Activation::Relu,
            Activation::Identity,
            Loss::SoftmaxCrossEntropy,
        ),
        (Activation::Sigmoid, Activation::Tanh, Loss::Mse),
        (Activation::Identity, Activation::Relu, Loss::Mse),
    ] {
        let architecture =
            Architecture::with_hidden_and_output(&[6, 160, 130], hidden, output, loss).unwrap();
        let case = Case::random(architecture, 131, 5);
        let expected = loss_and_gradient(&mut NaiveBackend::new(), &case);
        let sequential = loss_and_gradient(&mut FaerBackend::sequential(), &case);
        let parallel = pool(2).install(|| {
            loss_and_gradient(
                &mut FaerBackend::with_parallelism(Parallelism::Rayon(2)),
                &case,
            )
        });
        assert_eq!(
            parallel.0.to_bits(),
            sequential.0.to_bits(),
            "{hidden} {output}"
        );
        assert_eq!(parallel.1, sequential.1, "{hidden} {output} {loss}");
        assert_agrees(
            &format!("{hidden} {output} {loss}"),
            (parallel.0, &parallel.1),
            (expected.0, &expected.1),
            1e-12,
        );
    }
}

#[test]
fn the_sequential_faer_backend_never_forks() {
    assert_eq!(
        FaerBackend::<f32>::sequential().parallelism(),
        Parallelism::Sequential
    );
    assert_eq!(FaerBackend::<f64>::new().parallelism(), Parallelism::Auto);
}

#[test]
fn fixed_partitions_combine_whole_gradients_even_over_a_splitting_inner_backend() {
    // With fixed partitions the first layer is never split: the bits are
    // those of the same partitions over an inner backend that cannot split.
    let case = Case::random(Architecture::seed(12, 9, 4).unwrap(), 10, 7);
    let fixed = Partitions::Fixed(NonZeroUsize::new(3).unwrap());
    let mut splitting =
        RayonBackend::splitting_first_layer("splitting", FaerBackend::<f64>::sequential)
            .with_pool(pool(2))
            .with_partitions(fixed)
            .with_parallel_threshold(0.0);
    let mut whole = RayonBackend::new("whole", FaerBackend::<f64>::sequential)
        .with_pool(pool(2))
        .with_partitions(fixed)
        .with_parallel_threshold(0.0);
    let a = loss_and_gradient(&mut splitting, &case);
    let b = loss_and_gradient(&mut whole, &case);
    assert_eq!(a.0.to_bits(), b.0.to_bits());
    assert_eq!(a.1, b.1);
}
