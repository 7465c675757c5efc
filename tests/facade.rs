//! Choosing a backend at run time through `BackendKind`.

use backprop::{Architecture, Backend, BackendKind, Batch, Loss, NaiveBackend, Network};
use backprop_verify::Case;

use crate::driver::{assert_agrees, pool};

#[test]
fn every_kind_round_trips_through_its_name() {
    for kind in BackendKind::ALL {
        assert_eq!(kind.to_string().parse::<BackendKind>(), Ok(kind));
        assert_eq!(kind.create::<f64>().name(), kind.name());
        assert_eq!(kind.create::<f32>().name(), kind.name());
    }
}

#[test]
fn an_unknown_backend_name_lists_the_valid_ones() {
    let error = "cuda".parse::<BackendKind>().unwrap_err().to_string();
    assert!(error.contains("'cuda'"), "{error}");
    for kind in BackendKind::ALL {
        assert!(error.contains(kind.name()), "{error}");
    }
}

#[test]
fn sgd_steps_through_a_boxed_backend_reduce_the_loss() {
    let architecture = Architecture::seed(2, 4, 1).unwrap();
    assert_eq!(architecture.loss(), Loss::Mse);
    let inputs = [0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0];
    let targets = [0.0, 1.0, 1.0, 0.0];
    for kind in BackendKind::ALL {
        let mut backend: Box<dyn Backend<f64>> = kind.create();
        let mut network = Network::<f64>::init(architecture.clone(), 3);
        let batch = Batch::from_slices(&architecture, 4, &inputs, &targets).unwrap();
        let mut gradient = network.zero_gradient();
        let first = backend
            .sgd_step(&mut network, &batch, &mut gradient, 2.0)
            .unwrap();
        let mut last = first;
        for _ in 0..50 {
            last = backend
                .sgd_step(&mut network, &batch, &mut gradient, 2.0)
                .unwrap();
        }
        assert!(last < first, "{kind}: loss {first} -> {last}");
    }
}

#[test]
fn initialisation_is_bit_identical_for_a_seed_and_differs_across_seeds() {
    let architecture = Architecture::seed(5, 7, 3).unwrap();
    let a = Network::<f64>::init(architecture.clone(), 11);
    let b = Network::<f64>::init(architecture.clone(), 11);
    let c = Network::<f64>::init(architecture.clone(), 12);
    assert_eq!(a, b);
    assert_ne!(a.params(), c.params());
    // Glorot bound for the 5 -> 7 layer; biases start at zero.
    let bound = (6.0f64 / 12.0).sqrt();
    let layer = a.params().layer(0).unwrap();
    assert!(layer.weights.iter().all(|w| w.abs() <= bound));
    assert!(layer.bias.iter().all(|&b| b == 0.0));
    // f32 from the same seed is the f64 network rounded.
    let single = Network::<f32>::init(architecture, 11);
    for (s, d) in single.params().as_slice().iter().zip(a.params().as_slice()) {
        assert_eq!(*s, *d as f32);
    }
}

#[test]
fn every_configuration_of_every_kind_agrees_with_the_reference() {
    let case = Case::random(Architecture::seed(6, 5, 3).unwrap(), 11, 9);
    let gradient_of = |backend: &mut dyn Backend<f64>| {
        let mut gradient = case.network.zero_gradient();
        let loss = backend
            .loss_and_gradient(&case.network, &case.batch().unwrap(), &mut gradient)
            .unwrap();
        (loss, gradient.into_values())
    };
    let (loss, gradient) = gradient_of(&mut NaiveBackend::new());
    for kind in BackendKind::ALL {
        let configurations = [
            ("default", kind.create()),
            ("reproducible", kind.create_reproducible(pool(3))),
            ("forking", kind.create_forking(pool(2))),
        ];
        for (name, mut backend) in configurations {
            let (l, g) = gradient_of(&mut *backend);
            let label = format!("{kind} {name}");
            assert_agrees(&label, (l, &g), (loss, &gradient), 1e-12);
        }
    }
}
