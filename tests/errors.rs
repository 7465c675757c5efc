//! Bad input: each mistake gets its own typed error naming the sizes, never a panic.

use backprop::{
    Activation, Architecture, Backend, BackendKind, Batch, Error, FaerBackend, FirstLayerSplit,
    FirstWeightRowsTask, GradientTask, Inputs, Loss, MatrixRef, MatrixRole, Network, Params,
    SplitGradientTask,
};

fn message(error: &Error) -> String {
    error.to_string()
}

#[test]
fn architectures_reject_bad_shapes() {
    let sigmoid = Activation::Sigmoid;
    let e = Architecture::new(&[3], &[], Loss::Mse).unwrap_err();
    assert_eq!(e, Error::TooFewWidths { found: 1 });
    assert!(message(&e).contains("got 1"));

    let e = Architecture::new(&[3, 0, 2], &[sigmoid, sigmoid], Loss::Mse).unwrap_err();
    assert!(matches!(e, Error::ZeroWidth { position: 1, .. }), "{e:?}");
    assert!(message(&e).contains("3-0-2"), "{e}");

    let e = Architecture::new(&[3, 4, 2], &[sigmoid], Loss::Mse).unwrap_err();
    assert_eq!(
        e,
        Error::ActivationCount {
            layers: 2,
            found: 1
        }
    );
    assert_eq!(message(&e), "2 weight layers need 2 activations, got 1");
    let e = Architecture::new(&[3, 2], &[sigmoid, sigmoid], Loss::Mse).unwrap_err();
    assert_eq!(message(&e), "1 weight layer needs 1 activation, got 2");
    let e = Error::TooLarge {
        what: "synthetic inputs",
        rows: 1 << 50,
        cols: 64,
    };
    assert_eq!(
        message(&e),
        format!(
            "synthetic inputs: {} x 64 values do not fit in memory",
            1u64 << 50
        )
    );

    let e = Architecture::new(&[3, 2], &[sigmoid], Loss::SoftmaxCrossEntropy).unwrap_err();
    assert_eq!(e, Error::SoftmaxNeedsIdentityOutput { found: sigmoid });
    assert!(message(&e).contains("sigmoid"));

    let e = Architecture::new(&[usize::MAX, 2], &[sigmoid], Loss::Mse).unwrap_err();
    assert!(matches!(e, Error::ParameterCountOverflow { .. }), "{e:?}");
    assert!(message(&e).contains(&usize::MAX.to_string()), "{e}");

    let e = Architecture::new(&[1 << 40, 1 << 30, 2], &[sigmoid, sigmoid], Loss::Mse).unwrap_err();
    assert!(matches!(e, Error::ParameterCountOverflow { .. }), "{e:?}");
}

#[test]
fn params_of_the_wrong_length_or_layout_are_rejected() {
    let architecture = Architecture::seed(3, 4, 2).unwrap();
    assert_eq!(architecture.param_count(), 4 * 3 + 4 + 2 * 4 + 2);
    let e = Params::<f64>::from_values(&architecture, vec![0.0; 25]).unwrap_err();
    assert!(
        matches!(
            e,
            Error::ParameterLength {
                expected: 26,
                found: 25,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        message(&e).contains("26") && message(&e).contains("25") && message(&e).contains("3-4-2")
    );

    let other = Architecture::seed(3, 5, 2).unwrap();
    let e = Network::new(architecture.clone(), Params::<f64>::zeros(&other)).unwrap_err();
    assert!(matches!(e, Error::ParameterLayout { .. }), "{e:?}");
    assert!(
        message(&e).contains("3-5-2") && message(&e).contains("3-4-2"),
        "{e}"
    );
}

#[test]
fn batches_reject_bad_shapes_and_values() {
    let architecture = Architecture::seed(3, 4, 2).unwrap();
    let x = [0.5f64; 6];
    let y = [0.5f64; 4];

    let e = MatrixRef::new(&x[..5], 2, 3).unwrap_err();
    assert_eq!(
        e,
        Error::MatrixLength {
            rows: 2,
            cols: 3,
            found: 5
        }
    );
    assert!(
        message(&e).contains("2 x 3") && message(&e).contains("6") && message(&e).contains("5")
    );

    let empty = Batch::<f64>::from_slices(&architecture, 0, &[], &[]).unwrap_err();
    assert_eq!(
        empty,
        Error::EmptyBatch {
            role: MatrixRole::Inputs
        }
    );

    let rows = Batch::new(
        &architecture,
        MatrixRef::new(&x, 2, 3).unwrap(),
        MatrixRef::new(&y[..2], 1, 2).unwrap(),
    )
    .unwrap_err();
    assert_eq!(
        rows,
        Error::RowCountMismatch {
            input_rows: 2,
            target_rows: 1
        }
    );
    assert!(message(&rows).contains("2 rows") && message(&rows).contains("1"));

    let inputs = Batch::new(
        &architecture,
        MatrixRef::new(&x, 3, 2).unwrap(),
        MatrixRef::new(&[0.5; 6], 3, 2).unwrap(),
    )
    .unwrap_err();
    assert_eq!(
        inputs,
        Error::WidthMismatch {
            role: MatrixRole::Inputs,
            expected: 3,
            found: 2
        }
    );

    let targets = Batch::new(
        &architecture,
        MatrixRef::new(&x, 2, 3).unwrap(),
        MatrixRef::new(&[0.5; 6], 2, 3).unwrap(),
    )
    .unwrap_err();
    assert_eq!(
        targets,
        Error::WidthMismatch {
            role: MatrixRole::Targets,
            expected: 2,
            found: 3
        }
    );
    assert!(message(&targets).contains("3 columns") && message(&targets).contains("needs 2"));

    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let mut x = x;
        x[4] = bad;
        let e = Batch::from_slices(&architecture, 2, &x, &y).unwrap_err();
        assert!(
            matches!(
                e,
                Error::NonFiniteValue {
                    role: MatrixRole::Inputs,
                    row: 1,
                    col: 1,
                    ..
                }
            ),
            "{e:?}"
        );
        let mut y = y;
        y[3] = bad;
        let e = Batch::from_slices(&architecture, 2, &[0.5; 6], &y).unwrap_err();
        assert!(
            matches!(
                e,
                Error::NonFiniteValue {
                    role: MatrixRole::Targets,
                    row: 1,
                    col: 1,
                    ..
                }
            ),
            "{e:?}"
        );
    }
    let e = Inputs::new(MatrixRef::new(&[f32::NAN], 1, 1).unwrap()).unwrap_err();
    assert!(
        message(&e).contains("NaN") && message(&e).contains("row 0"),
        "{e}"
    );
}

#[test]
fn backends_reject_mismatched_networks_batches_and_buffers() {
    let architecture = Architecture::seed(3, 4, 2).unwrap();
    let wider = Architecture::seed(5, 4, 2).unwrap();
    let network = Network::<f64>::init(architecture.clone(), 1);
    let (x, y) = ([0.5; 10], [0.5; 4]);
    let wide_batch = Batch::from_slices(&wider, 2, &x, &y).unwrap();
    for kind in BackendKind::ALL {
        let mut backend = kind.create::<f64>();
        let mut gradient = network.zero_gradient();
        let e = backend
            .loss_and_gradient(&network, &wide_batch, &mut gradient)
            .unwrap_err();
        assert_eq!(
            e,
            Error::WidthMismatch {
                role: MatrixRole::Inputs,
                expected: 3,
                found: 5
            }
        );

        let batch = Batch::from_slices(&architecture, 2, &x[..6], &y).unwrap();
        let mut wrong_gradient = Params::zeros(&wider);
        let e = backend
            .loss_and_gradient(&network, &batch, &mut wrong_gradient)
            .unwrap_err();
        assert!(matches!(e, Error::ParameterLayout { .. }), "{kind}: {e:?}");

        let mut outputs = [0.0; 3];
        let e = backend
            .forward(&network, &batch.inputs(), &mut outputs)
            .unwrap_err();
        assert_eq!(
            e,
            Error::MatrixLength {
                rows: 2,
                cols: 2,
                found: 3
            }
        );
    }
}

#[test]
fn first_layer_splits_reject_pieces_that_do_not_fit() {
    let architecture = Architecture::seed(3, 4, 2).unwrap();
    let network = Network::<f64>::init(architecture.clone(), 1);
    let (x, y) = ([0.5; 6], [0.5; 4]);
    let batch = Batch::from_slices(&architecture, 2, &x, &y).unwrap();
    let mut gradient = network.zero_gradient();
    let mismatch = |what, expected, found| Error::SplitMismatch {
        what,
        expected,
        found,
    };

    // delta^1 of 2 rows and 4 hidden units holds 8 values.
    let task = GradientTask::new(&network, batch, &mut gradient).unwrap();
    let e = SplitGradientTask::new(task, &mut [0.0; 7]).unwrap_err();
    assert_eq!(e, mismatch("first delta length", 8, 7));
    assert_eq!(
        message(&e),
        "first-layer split: first delta length is 7, the other pieces need 8"
    );

    let delta = MatrixRef::new(&[0.25; 8], 2, 4).unwrap();
    let three_rows = MatrixRef::new(&[0.5; 9], 3, 3).unwrap();
    let inputs = batch.inputs().matrix();
    let e = FirstWeightRowsTask::new(delta, three_rows, 0..4, &mut [0.0; 12]).unwrap_err();
    assert_eq!(e, mismatch("delta rows", 3, 2));
    let e = FirstWeightRowsTask::new(delta, inputs, 2..5, &mut [0.0; 9]).unwrap_err();
    assert_eq!(e, mismatch("end of the units", 4, 5));
    let e = FirstWeightRowsTask::new(delta, inputs, std::ops::Range { start: 3, end: 1 }, &mut [])
        .unwrap_err();
    assert_eq!(e, mismatch("start of the units", 1, 3));
    let e = FirstWeightRowsTask::new(delta, inputs, 1..3, &mut [0.0; 5]).unwrap_err();
    assert_eq!(e, mismatch("output length", 6, 5));

    // A delta by unit is d_1 x B: its columns are the batch's rows, its rows the units.
    let by_unit = MatrixRef::new(&[0.25; 8], 4, 2).unwrap();
    let e = FirstWeightRowsTask::by_unit(by_unit, three_rows, 0..4, &mut [0.0; 12]).unwrap_err();
    assert_eq!(e, mismatch("delta columns", 3, 2));
    assert_eq!(
        message(&e),
        "first-layer split: delta columns is 2, the other pieces need 3"
    );
    let e = FirstWeightRowsTask::by_unit(by_unit, inputs, 2..5, &mut [0.0; 9]).unwrap_err();
    assert_eq!(e, mismatch("end of the units", 4, 5));
    let e = FirstWeightRowsTask::by_unit(by_unit, inputs, 1..3, &mut [0.0; 5]).unwrap_err();
    assert_eq!(e, mismatch("output length", 6, 5));

    // Pieces that fit run, and give the rows of delta^T X, in either layout.
    for by_unit in [None, Some(by_unit)] {
        let mut out = [0.0; 6];
        let mut task = match by_unit {
            None => FirstWeightRowsTask::new(delta, inputs, 1..3, &mut out),
            Some(by_unit) => FirstWeightRowsTask::by_unit(by_unit, inputs, 1..3, &mut out),
        }
        .expect("pieces that fit");
        FaerBackend::<f64>::sequential().run_first_weight_rows(&mut task);
        assert_eq!(task.output(), &[0.25; 6]);
    }
}

#[test]
fn learning_rates_must_be_finite_and_non_negative() {
    let architecture = Architecture::seed(1, 1, 1).unwrap();
    let mut network = Network::<f64>::init(architecture.clone(), 1);
    let before = network.clone();
    let batch = Batch::from_slices(&architecture, 1, &[0.5], &[1.0]).unwrap();
    for kind in BackendKind::ALL {
        let mut backend = kind.create::<f64>();
        let mut gradient = network.zero_gradient();
        for bad in [-0.1, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let e = backend
                .sgd_step(&mut network, &batch, &mut gradient, bad)
                .unwrap_err();
            assert!(matches!(e, Error::InvalidLearningRate { .. }), "{e:?}");
            assert!(message(&e).contains(&bad.to_string()), "{e}");
            assert_eq!(
                network, before,
                "a rejected step must not touch the network"
            );
        }
        // Zero is allowed: the step computes the loss and leaves the parameters alone.
        backend
            .sgd_step(&mut network, &batch, &mut gradient, 0.0)
            .unwrap();
        assert_eq!(network, before);
    }
}
