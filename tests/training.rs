//! Training end to end: the digits loader, datasets and splits, the training loop on classification and regression with every backend, and checkpoints.

use std::collections::HashMap;
use std::f64::consts::PI;
use std::io::Write;
use std::path::PathBuf;

use backprop::train::digits::{self, TEST_FRACTION};
use backprop::train::{
    Dataset, DatasetPart, EpochStats, Error, Split, TrainConfig, checkpoint, evaluate, train,
};
use backprop::{
    Activation, Architecture, Backend, BackendKind, Error as CoreError, Loss, MatrixRole, Network,
    Precision, Scalar,
};
use flate2::Compression;
use flate2::write::GzEncoder;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

/// Samples per class in the shipped file, digits 0 to 9.
const CLASS_COUNTS: [usize; 10] = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180];

/// The seed of the initial weights and the shuffling in the training tests.
const SEED: u64 = 7;

fn digits_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/digits.csv.gz")
}

/// The shipped digits in their standard 80/20 split.
fn digits_split<T: Scalar>() -> Split<T> {
    digits::load::<T>(digits_path())
        .expect("the shipped digits load")
        .stratified_split(TEST_FRACTION, digits::SPLIT_SEED)
        .expect("a valid split")
}

/// The fastest backend this build offers: faer when it is there, else the reference.
fn fastest_kind() -> BackendKind {
    ["faer", "naive"]
        .iter()
        .find_map(|name| name.parse().ok())
        .unwrap_or(BackendKind::Naive)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).expect("writing to memory");
    encoder.finish().expect("writing to memory")
}

/// One line of the digits CSV: pixel `i` is `i % 17`, then the label.
fn csv_line(label: &str) -> String {
    let mut fields: Vec<String> = (0..64).map(|i| (i % 17).to_string()).collect();
    fields.push(label.to_owned());
    fields.join(",") + "\n"
}

/// Three valid lines, labels 0, 1 and 2, with `replace(line_index, fields)` applied.
fn csv_with(edit: impl FnOnce(&mut Vec<Vec<String>>)) -> String {
    let mut lines: Vec<Vec<String>> = (0..3)
        .map(|label| {
            csv_line(&label.to_string())
                .trim_end()
                .split(',')
                .map(str::to_owned)
                .collect()
        })
        .collect();
    edit(&mut lines);
    lines.iter().map(|fields| fields.join(",") + "\n").collect()
}

fn parse_gzip(csv: &str) -> Result<Dataset<f64>, Error> {
    digits::parse::<f64>(gzip(csv.as_bytes()).as_slice())
}

/// The line and column of a data error, failing the test for any other result.
fn data_error_position(result: Result<Dataset<f64>, Error>) -> (usize, Option<usize>, String) {
    match result {
        Err(error @ Error::Data { line, column, .. }) => (line, column, error.to_string()),
        other => panic!("expected a data error, got {other:?}"),
    }
}

// ---------------------------------------------------------------- loader

#[test]
fn the_shipped_digits_load_with_scaled_pixels_and_one_hot_targets() {
    let data = digits::load::<f64>(digits_path()).unwrap();
    assert_eq!(data.rows(), digits::SAMPLES);
    assert_eq!(data.feature_width(), 64);
    assert_eq!(data.target_width(), 10);
    assert_eq!(data.class_count(), Some(10));
    assert!(data.is_classification());
    assert_eq!(data.class_counts().unwrap(), CLASS_COUNTS);
    assert!(data.features().iter().all(|&p| (0.0..=1.0).contains(&p)));
    assert!(data.features().contains(&1.0));
    // The first line of the file: 0,0,5,13,9,1,0,0,... label 0.
    let first = data.sample(0).unwrap();
    assert_eq!(
        &first[..6],
        &[0.0, 0.0, 5.0 / 16.0, 13.0 / 16.0, 9.0 / 16.0, 1.0 / 16.0]
    );
    let labels = data.labels().unwrap();
    assert_eq!(labels[..3], [0, 1, 2]);
    for (targets, &label) in data.targets().chunks(10).zip(labels) {
        let hot: Vec<usize> = (0..10).filter(|&i| targets[i] == 1.0).collect();
        assert_eq!(hot, [label]);
        assert_eq!(targets.iter().sum::<f64>(), 1.0);
    }
    // f32 holds the same values, exactly (they are multiples of 1/16).
    let narrow = digits::load::<f32>(digits_path()).unwrap();
    assert_eq!(narrow, data.to_precision::<f32>().unwrap());
}

#[test]
fn csv_with_crlf_blank_lines_and_spaces_parses() {
    let csv = csv_line("3").replace('\n', "\r\n") + "\n" + &csv_line(" 9 ").replace(",", " , ");
    let data = parse_gzip(&csv).unwrap();
    assert_eq!(data.labels(), Some(&[3, 9][..]));
    assert_eq!(data.sample(1).unwrap()[16], 16.0 / 16.0);
    let plain = digits::parse_csv::<f32>(csv.as_bytes()).unwrap();
    assert_eq!(plain.labels(), Some(&[3, 9][..]));
}

#[test]
fn a_wrong_column_count_names_the_line() {
    let csv = csv_with(|lines| {
        lines[1].pop();
    });
    let (line, column, message) = data_error_position(parse_gzip(&csv));
    assert_eq!((line, column), (2, None));
    assert!(
        message.contains("line 2") && message.contains("found 64"),
        "{message}"
    );

    let csv = csv_with(|lines| lines[2].push("1".to_owned()));
    let (line, _, message) = data_error_position(parse_gzip(&csv));
    assert_eq!(line, 3);
    assert!(
        message.contains("expected 65") && message.contains("found 66"),
        "{message}"
    );
}

#[test]
fn a_non_number_names_the_line_and_column() {
    let csv = csv_with(|lines| lines[2][4] = "seven".to_owned());
    let (line, column, message) = data_error_position(parse_gzip(&csv));
    assert_eq!((line, column), (3, Some(5)));
    assert!(
        message.contains("line 3, column 5") && message.contains("'seven'"),
        "{message}"
    );

    let csv = csv_with(|lines| lines[0][10] = String::new());
    assert_eq!(data_error_position(parse_gzip(&csv)).1, Some(11));
}

#[test]
fn a_pixel_out_of_range_names_the_line_and_column() {
    for bad in ["17", "-1", "16.5", "NaN", "inf"] {
        let csv = csv_with(|lines| lines[1][63] = bad.to_owned());
        let (line, column, message) = data_error_position(parse_gzip(&csv));
        assert_eq!((line, column), (2, Some(64)), "{bad}");
        assert!(message.contains("0..=16"), "{message}");
    }
}

#[test]
fn a_label_outside_0_to_9_names_the_line_and_column() {
    for bad in ["10", "-1", "3.5", "NaN"] {
        let csv = csv_with(|lines| lines[0][64] = bad.to_owned());
        let (line, column, message) = data_error_position(parse_gzip(&csv));
        assert_eq!((line, column), (1, Some(65)), "{bad}");
        assert!(message.contains("0 to 9"), "{message}");
    }
}

#[test]
fn an_empty_file_is_an_error() {
    for (what, bytes) in [
        ("no bytes at all", Vec::new()),
        ("an empty gzip stream", gzip(b"")),
        ("only blank lines", gzip(b"\n\r\n  \n")),
    ] {
        let (line, column, message) = data_error_position(digits::parse::<f64>(bytes.as_slice()));
        assert_eq!((line, column), (1, None), "{what}");
        assert!(message.contains("empty"), "{what}: {message}");
    }
    let (_, _, message) = data_error_position(digits::parse_csv::<f64>(&b""[..]));
    assert!(message.contains("empty"), "{message}");
}

#[test]
fn a_truncated_or_foreign_stream_is_an_error_not_a_panic() {
    let whole = std::fs::read(digits_path()).unwrap();
    for keep in [whole.len() / 2, whole.len() - 4, 15] {
        let (line, column, message) = data_error_position(digits::parse::<f64>(&whole[..keep]));
        assert!(line >= 1 && column.is_none(), "{message}");
        assert!(message.contains("gzip"), "cut at {keep}: {message}");
    }
    // Half the file decompresses to hundreds of good lines before the cut.
    let (line, _, _) = data_error_position(digits::parse::<f64>(&whole[..whole.len() / 2]));
    assert!(line > 100, "line {line}");
    // Plain CSV is not gzip.
    let plain = csv_line("1");
    let (line, _, message) = data_error_position(digits::parse::<f64>(plain.as_bytes()));
    assert_eq!(line, 1);
    assert!(message.contains("gzip"), "{message}");
}

#[test]
fn a_missing_file_is_an_io_error_naming_the_path_and_keeping_the_os_error() {
    let error = digits::load::<f32>("no/such/digits.csv.gz").unwrap_err();
    match &error {
        Error::Io { path, source } => {
            assert_eq!(path.to_str(), Some("no/such/digits.csv.gz"));
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected an I/O error, got {other:?}"),
    }
    assert!(
        error.to_string().contains("no/such/digits.csv.gz"),
        "{error}"
    );
    let source = std::error::Error::source(&error).expect("the OS error is the source");
    let os = source
        .downcast_ref::<std::io::Error>()
        .expect("an io::Error");
    assert_eq!(os.kind(), std::io::ErrorKind::NotFound);
}

#[test]
fn datasets_check_their_labels_and_lengths() {
    let error = Dataset::<f64>::classification(vec![0.0; 4], 2, vec![0, 3], 3).unwrap_err();
    assert!(
        matches!(
            error,
            Error::LabelOutOfRange {
                sample: 1,
                label: 3,
                classes: 3
            }
        ),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("label 3 of sample 1")
            && error.to_string().contains("3 classes"),
        "{error}"
    );
    let error = Dataset::<f64>::classification(vec![0.0; 5], 2, vec![0, 1], 3).unwrap_err();
    assert!(
        matches!(
            error,
            Error::RaggedRows {
                part: DatasetPart::Features,
                width: 2,
                found: 5
            }
        ),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("5 values") && error.to_string().contains("width 2"),
        "{error}"
    );
    let error = Dataset::<f64>::classification(vec![0.0; 6], 2, vec![0, 1], 3).unwrap_err();
    assert!(
        matches!(
            error,
            Error::RowCountMismatch {
                feature_rows: 3,
                target_rows: 2
            }
        ),
        "{error:?}"
    );
    let error = Dataset::<f64>::classification(vec![0.0, f64::NAN], 2, vec![0], 3).unwrap_err();
    assert!(
        matches!(
            error,
            Error::NonFinite {
                part: DatasetPart::Features,
                row: 0,
                column: 1,
                ..
            }
        ),
        "{error:?}"
    );
    for (features, width, classes, part) in [
        (vec![], 0, 3, DatasetPart::Features),
        (vec![], 1, 0, DatasetPart::Targets),
    ] {
        let error = Dataset::<f64>::classification(features, width, vec![], classes).unwrap_err();
        assert!(
            matches!(error, Error::ZeroWidth { part: found } if found == part),
            "{error:?}"
        );
    }
    assert_eq!(
        backprop::train::one_hot::<f32>(&[2, 0], 3).unwrap(),
        [0.0, 0.0, 1.0, 1.0, 0.0, 0.0]
    );
    let data = Dataset::<f64>::classification(vec![1.0, 2.0, 3.0, 4.0], 2, vec![0, 1], 2).unwrap();
    let error = data.subset(&[2]).unwrap_err();
    assert!(
        matches!(error, Error::IndexOutOfRange { index: 2, rows: 2 }),
        "{error:?}"
    );
    let twice = data.subset(&[1, 1]).unwrap();
    assert_eq!(twice.features(), [3.0, 4.0, 3.0, 4.0]);
    assert_eq!(twice.labels(), Some(&[1, 1][..]));
    assert_eq!(twice.targets(), [0.0, 1.0, 0.0, 1.0]);
}

#[test]
fn regression_datasets_hold_real_valued_targets_of_any_width() {
    // Three samples, two features, targets of width 2.
    let features = vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    let targets = vec![-0.5, 0.25, 1.5, 2.5, 1e3, -1e-3];
    let data = Dataset::<f64>::regression(features.clone(), 2, targets.clone(), 2).unwrap();
    assert_eq!(
        (data.rows(), data.feature_width(), data.target_width()),
        (3, 2, 2)
    );
    assert!(!data.is_classification());
    assert_eq!(data.labels(), None);
    assert_eq!(data.class_count(), None);
    assert_eq!(data.class_counts(), None);
    assert_eq!(data.targets(), targets);
    assert_eq!(data.target(1), Some(&[1.5, 2.5][..]));
    assert_eq!(data.target(3), None);
    let picked = data.subset(&[2, 0]).unwrap();
    assert_eq!(picked.features(), [5.0, 6.0, 1.0, 2.0]);
    assert_eq!(picked.targets(), [1e3, -1e-3, -0.5, 0.25]);
    assert_eq!(picked.labels(), None);
    let architecture = Architecture::new(
        &[2, 3, 2],
        &[Activation::Tanh, Activation::Identity],
        Loss::Mse,
    )
    .unwrap();
    assert_eq!(data.batch(&architecture).unwrap().rows(), 3);
    assert_eq!(data.inputs().unwrap().rows(), 3);

    let error = Dataset::<f64>::regression(features.clone(), 2, vec![0.0; 5], 2).unwrap_err();
    assert!(
        matches!(
            error,
            Error::RaggedRows {
                part: DatasetPart::Targets,
                width: 2,
                found: 5
            }
        ),
        "{error:?}"
    );
    let error = Dataset::<f64>::regression(features.clone(), 2, vec![0.0; 4], 1).unwrap_err();
    assert!(
        matches!(
            error,
            Error::RowCountMismatch {
                feature_rows: 3,
                target_rows: 4
            }
        ),
        "{error:?}"
    );
    assert!(
        error.to_string().contains('3') && error.to_string().contains('4'),
        "{error}"
    );
    let mut infinite = targets.clone();
    infinite[5] = f64::INFINITY;
    let error = Dataset::<f64>::regression(features.clone(), 2, infinite, 2).unwrap_err();
    assert!(
        matches!(
            error,
            Error::NonFinite {
                part: DatasetPart::Targets,
                row: 2,
                column: 1,
                value
            } if value == f64::INFINITY
        ),
        "{error:?}"
    );
    let error = Dataset::<f64>::regression(features.clone(), 2, targets.clone(), 0).unwrap_err();
    assert!(
        matches!(
            error,
            Error::ZeroWidth {
                part: DatasetPart::Targets
            }
        ),
        "{error:?}"
    );
    // 1e300 is finite in f64 but not in f32.
    let wide = Dataset::<f64>::regression(vec![1.0], 1, vec![1e300], 1).unwrap();
    let error = wide.to_precision::<f32>().unwrap_err();
    assert!(
        matches!(
            error,
            Error::NonFinite {
                part: DatasetPart::Targets,
                row: 0,
                column: 0,
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn a_regression_set_has_no_stratified_split_but_a_plain_one() {
    let rows = 50;
    let xs: Vec<f64> = (0..rows).map(|i| i as f64).collect();
    let data = Dataset::<f64>::regression(xs.clone(), 1, xs, 1).unwrap();
    for error in [
        data.stratified_split_indices(0.2, 1).unwrap_err(),
        data.stratified_split(0.2, 1).unwrap_err(),
    ] {
        assert!(
            matches!(
                error,
                Error::NeedsLabels {
                    operation: "a stratified split",
                    target_width: 1
                }
            ),
            "{error:?}"
        );
        assert!(error.to_string().contains("class labels"), "{error}");
    }
    let indices = data.split_indices(0.2, 1).unwrap();
    assert_eq!((indices.train.len(), indices.test.len()), (40, 10));
    let mut all: Vec<usize> = indices.train.iter().chain(&indices.test).copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..rows).collect::<Vec<_>>(), "disjoint and complete");
    assert!(indices.train.is_sorted() && indices.test.is_sorted());
    assert_eq!(indices, data.split_indices(0.2, 1).unwrap());
    assert_ne!(indices, data.split_indices(0.2, 2).unwrap());
    let split = data.split(0.2, 1).unwrap();
    // Each sample's target is its feature, so the rows stayed whole.
    assert_eq!(split.test.features(), split.test.targets());
    let test_rows: Vec<usize> = split.test.features().iter().map(|&x| x as usize).collect();
    assert_eq!(test_rows, indices.test);
    for bad in [0.0, 1.0, -0.5, f64::NAN] {
        let error = data.split_indices(bad, 3).unwrap_err();
        assert!(
            matches!(
                error,
                Error::InvalidSetting {
                    name: "test_fraction",
                    ..
                }
            ),
            "{error:?}"
        );
    }

    // The plain split works on labelled data too and keeps the labels.
    let labelled = digits::load::<f32>(digits_path()).unwrap();
    let split = labelled.split(TEST_FRACTION, digits::SPLIT_SEED).unwrap();
    assert_eq!(
        split.test.rows(),
        (labelled.rows() as f64 * 0.2).round() as usize
    );
    assert_eq!(split.train.rows() + split.test.rows(), labelled.rows());
    assert_eq!(split.test.class_count(), Some(10));
}

// ---------------------------------------------------------------- split

#[test]
fn the_split_is_stratified_disjoint_and_complete() {
    let data = digits::load::<f32>(digits_path()).unwrap();
    let indices = data
        .stratified_split_indices(TEST_FRACTION, digits::SPLIT_SEED)
        .unwrap();
    let mut all: Vec<usize> = indices.train.iter().chain(&indices.test).copied().collect();
    all.sort_unstable();
    assert_eq!(
        all,
        (0..data.rows()).collect::<Vec<_>>(),
        "disjoint and complete"
    );

    let split = data
        .stratified_split(TEST_FRACTION, digits::SPLIT_SEED)
        .unwrap();
    assert_eq!(split.train.rows() + split.test.rows(), data.rows());
    for (class, (&train, &test)) in split
        .train
        .class_counts()
        .unwrap()
        .iter()
        .zip(&split.test.class_counts().unwrap())
        .enumerate()
    {
        let total = CLASS_COUNTS[class];
        assert_eq!(train + test, total, "class {class}");
        assert_eq!(test, (total as f64 * 0.2).round() as usize, "class {class}");
    }
    assert_eq!(split.test.rows(), 359);
    assert_eq!(split.test.sample(0), data.sample(indices.test[0]));
}

#[test]
fn the_split_is_deterministic_for_a_seed() {
    let data = digits::load::<f32>(digits_path()).unwrap();
    let first = data.stratified_split_indices(0.2, 3).unwrap();
    assert_eq!(first, data.stratified_split_indices(0.2, 3).unwrap());
    assert_ne!(first, data.stratified_split_indices(0.2, 4).unwrap());
    for bad in [0.0, 1.0, -0.5, f64::NAN] {
        let error = data.stratified_split_indices(bad, 3).unwrap_err();
        assert!(
            matches!(
                error,
                Error::InvalidSetting {
                    name: "test_fraction",
                    ..
                }
            ),
            "{error:?}"
        );
    }
}

// ---------------------------------------------------------------- training

fn seed_network<T: Scalar>() -> Network<T> {
    Network::init(Architecture::seed(64, 32, 10).unwrap(), SEED)
}

fn softmax_network<T: Scalar>(hidden: Activation) -> Network<T> {
    let architecture = Architecture::with_hidden_and_output(
        &[64, 32, 10],
        hidden,
        Activation::Identity,
        Loss::SoftmaxCrossEntropy,
    )
    .unwrap();
    Network::init(architecture, SEED)
}

fn config(epochs: usize, learning_rate: f64) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 32,
        learning_rate,
        seed: SEED,
    }
}

/// Trains `network` with `kind` and returns the history.
fn run<T: Precision>(
    kind: BackendKind,
    network: &mut Network<T>,
    split: &Split<T>,
    config: &TrainConfig,
) -> Vec<EpochStats> {
    let mut backend = kind.create::<T>();
    train(
        backend.as_mut(),
        network,
        &split.train,
        &split.test,
        config,
        |_| {},
    )
    .unwrap()
}

#[test]
fn the_seed_network_reaches_95_percent() {
    let split = digits_split::<f32>();
    let mut network = seed_network::<f32>();
    let history = run(fastest_kind(), &mut network, &split, &config(150, 20.0));
    let last = history.last().unwrap();
    assert!(last.test.accuracy().unwrap() >= 0.95, "{last:?}");
    assert!(
        last.train_loss < history[0].train_loss / 4.0,
        "{last:?} vs {:?}",
        history[0]
    );
}

#[test]
fn softmax_cross_entropy_with_tanh_or_relu_reaches_96_percent() {
    let split = digits_split::<f32>();
    for hidden in [Activation::Tanh, Activation::Relu] {
        let mut network = softmax_network::<f32>(hidden);
        let history = run(fastest_kind(), &mut network, &split, &config(100, 0.3));
        let last = history.last().unwrap();
        assert!(last.test.accuracy().unwrap() >= 0.96, "{hidden}: {last:?}");
    }
}

#[test]
fn every_backend_tracks_the_naive_losses_to_1e_9_in_f64() {
    let split = digits_split::<f64>();
    let config = config(10, 20.0);
    let reference = run(
        BackendKind::Naive,
        &mut seed_network::<f64>(),
        &split,
        &config,
    );
    for kind in BackendKind::ALL
        .into_iter()
        .filter(|&k| k != BackendKind::Naive)
    {
        let history = run(kind, &mut seed_network::<f64>(), &split, &config);
        assert_eq!(history.len(), reference.len());
        for (ours, theirs) in history.iter().zip(&reference) {
            let relative = (ours.train_loss - theirs.train_loss).abs() / theirs.train_loss;
            assert!(
                relative <= 1e-9,
                "{kind}, epoch {}: relative {relative:e}",
                ours.epoch
            );
            let relative = (ours.test.loss - theirs.test.loss).abs() / theirs.test.loss;
            assert!(
                relative <= 1e-9,
                "{kind}, epoch {}: test loss relative {relative:e}",
                ours.epoch
            );
        }
    }
}

#[test]
fn every_backend_reaches_the_same_accuracy_within_half_a_point() {
    let split = digits_split::<f64>();
    let config = config(150, 20.0);
    let accuracies: Vec<(BackendKind, f64)> = BackendKind::ALL
        .into_iter()
        .map(|kind| {
            let history = run(kind, &mut seed_network::<f64>(), &split, &config);
            (kind, history.last().unwrap().test.accuracy().unwrap())
        })
        .collect();
    let (_, reference) = accuracies[0];
    assert!(reference >= 0.95, "{accuracies:?}");
    for &(kind, accuracy) in &accuracies {
        assert!(
            (accuracy - reference).abs() <= 0.005,
            "{kind}: {accuracies:?}"
        );
    }
}

#[test]
fn training_is_reproducible_for_a_seed_and_reports_every_epoch() {
    let split = digits_split::<f32>();
    let mut seen = Vec::new();
    let mut first = seed_network::<f32>();
    let mut backend = BackendKind::Naive.create::<f32>();
    let history = train(
        backend.as_mut(),
        &mut first,
        &split.train,
        &split.test,
        &config(3, 20.0),
        |stats| seen.push(*stats),
    )
    .unwrap();
    assert_eq!(seen, history);
    assert_eq!(
        history.iter().map(|s| s.epoch).collect::<Vec<_>>(),
        [1, 2, 3]
    );

    let mut second = seed_network::<f32>();
    assert_eq!(
        run(BackendKind::Naive, &mut second, &split, &config(3, 20.0)),
        history
    );
    assert_eq!(first, second);

    let mut reshuffled = seed_network::<f32>();
    let other_seed = TrainConfig {
        seed: SEED + 1,
        ..config(3, 20.0)
    };
    run(BackendKind::Naive, &mut reshuffled, &split, &other_seed);
    assert_ne!(first.params(), reshuffled.params());

    let mut untouched = seed_network::<f32>();
    assert!(run(BackendKind::Naive, &mut untouched, &split, &config(0, 20.0)).is_empty());
    assert_eq!(untouched, seed_network::<f32>());
}

#[test]
fn evaluation_agrees_with_the_backend_loss_and_counts_argmax_hits() {
    // Two samples, two classes, a 2-2 identity network: outputs are the inputs.
    for loss in Loss::ALL {
        let architecture = Architecture::new(&[2, 2], &[Activation::Identity], loss).unwrap();
        let mut network = Network::<f64>::zeros(architecture.clone());
        network.param_values_mut()[..4].copy_from_slice(&[1.0, 0.0, 0.0, 1.0]);
        let data = Dataset::classification(vec![0.9, 0.1, 0.8, 0.3], 2, vec![0, 1], 2).unwrap();
        let mut backend = BackendKind::Naive.create::<f64>();
        let result = evaluate(backend.as_mut(), &network, &data).unwrap();
        assert_eq!((result.correct, result.samples), (Some(1), 2));
        assert_eq!(result.accuracy(), Some(0.5));
        // Predictions: the outputs for MSE, their softmax for cross-entropy.
        let expected_max = match loss {
            Loss::Mse => 0.8,
            Loss::SoftmaxCrossEntropy => 1.0 / (1.0 + (-0.5f64).exp()),
        };
        assert!(
            (result.max_abs_error - expected_max).abs() <= 1e-14,
            "{loss}: {} vs {expected_max}",
            result.max_abs_error
        );
        let batch = data.batch(&architecture).unwrap();
        let mut gradient = network.zero_gradient();
        let expected = backend
            .loss_and_gradient(&network, &batch, &mut gradient)
            .unwrap();
        assert!(
            (result.loss - expected).abs() <= 1e-15,
            "{loss}: {} vs {expected}",
            result.loss
        );
    }
}

#[test]
fn evaluating_real_valued_targets_reports_the_loss_and_the_largest_error_but_no_accuracy() {
    // A 1-2 identity network, weights (2, -1) and biases (1, 0).
    let architecture = Architecture::new(&[1, 2], &[Activation::Identity], Loss::Mse).unwrap();
    let mut network = Network::<f64>::zeros(architecture.clone());
    network
        .param_values_mut()
        .copy_from_slice(&[2.0, -1.0, 1.0, 0.0]);
    // Targets of width 2: outputs are (2x + 1, -x).
    let data = Dataset::regression(
        vec![0.0, 1.0, -2.0],
        1,
        vec![1.0, 0.0, 3.5, -1.0, -3.0, 2.25],
        2,
    )
    .unwrap();
    let mut backend = BackendKind::Naive.create::<f64>();
    let result = evaluate(backend.as_mut(), &network, &data).unwrap();
    assert_eq!((result.correct, result.accuracy()), (None, None));
    assert_eq!(result.samples, 3);
    // Errors: row 0 (0, 0), row 1 (0.5, 0), row 2 (0, 0.25).
    assert_eq!(result.max_abs_error, 0.5);
    let batch = data.batch(&architecture).unwrap();
    let mut gradient = network.zero_gradient();
    let expected = backend
        .loss_and_gradient(&network, &batch, &mut gradient)
        .unwrap();
    assert!(
        (result.loss - expected).abs() <= 1e-15,
        "{} vs {expected}",
        result.loss
    );
    assert!(
        (expected - (0.25 + 0.0625) / 12.0).abs() <= 1e-15,
        "{expected}"
    );
}

/// `count` evenly spaced points from `-pi` to `pi`, with `sin x` as targets.
fn sine(count: usize) -> Dataset<f64> {
    let xs: Vec<f64> = (0..count)
        .map(|i| -PI + 2.0 * PI * i as f64 / (count - 1) as f64)
        .collect();
    let ys = xs.iter().map(|x| x.sin()).collect();
    Dataset::regression(xs, 1, ys, 1).unwrap()
}

#[test]
fn every_backend_learns_sine_to_within_0_1_through_train() {
    let architecture = Architecture::with_hidden_and_output(
        &[1, 16, 1],
        Activation::Tanh,
        Activation::Identity,
        Loss::Mse,
    )
    .unwrap();
    // 64 training samples; the check is on 1001 points, nearly all of them
    // between the samples (7 points are scored after every epoch).
    let (samples, monitor, grid) = (sine(64), sine(7), sine(1001));
    let config = TrainConfig {
        epochs: 5000,
        batch_size: 2,
        learning_rate: 0.05,
        seed: SEED,
    };
    for kind in BackendKind::ALL {
        let mut network = Network::<f64>::init(architecture.clone(), SEED);
        let mut backend = kind.create::<f64>();
        let history = train(
            backend.as_mut(),
            &mut network,
            &samples,
            &monitor,
            &config,
            |_| {},
        )
        .unwrap();
        let last = history.last().unwrap();
        assert_eq!(last.test.accuracy(), None);
        assert!(
            last.train_loss < history[0].train_loss / 100.0,
            "{kind}: {last:?} vs {:?}",
            history[0]
        );
        let result = evaluate(backend.as_mut(), &network, &grid).unwrap();
        assert!(result.max_abs_error < 0.1, "{kind}: {result:?}");
        // The same error, measured independently of evaluate: a forward pass
        // over the grid against sin x.
        let mut outputs = vec![0.0; grid.rows()];
        backend
            .forward(&network, &grid.inputs().unwrap(), &mut outputs)
            .unwrap();
        let worst = grid
            .features()
            .iter()
            .zip(&outputs)
            .map(|(x, y)| (y - x.sin()).abs())
            .fold(0.0, f64::max);
        assert_eq!(worst, result.max_abs_error, "{kind}");
    }
}

#[test]
fn bad_training_settings_are_errors_before_any_update() {
    let split = digits_split::<f64>();
    let mut network = seed_network::<f64>();
    let mut backend = BackendKind::Naive.create::<f64>();
    let mut attempt = |network: &mut Network<f64>,
                       train_set: &Dataset<f64>,
                       test_set: &Dataset<f64>,
                       config: TrainConfig| {
        train(
            backend.as_mut(),
            network,
            train_set,
            test_set,
            &config,
            |_| {},
        )
        .unwrap_err()
    };
    let error = attempt(
        &mut network,
        &split.train,
        &split.test,
        TrainConfig {
            batch_size: 0,
            ..config(1, 1.0)
        },
    );
    assert!(
        matches!(
            error,
            Error::InvalidSetting {
                name: "batch_size",
                ..
            }
        ),
        "{error:?}"
    );
    let error = attempt(&mut network, &split.train, &split.test, config(1, -1.0));
    assert!(
        matches!(
            error,
            Error::Core(CoreError::InvalidLearningRate { value: -1.0 })
        ),
        "{error:?}"
    );
    let empty = Dataset::<f64>::classification(Vec::new(), 64, Vec::new(), 10).unwrap();
    let error = attempt(&mut network, &split.train, &empty, config(1, 1.0));
    assert!(
        matches!(error, Error::Core(CoreError::EmptyBatch { .. })),
        "{error:?}"
    );
    let three_classes = Dataset::<f64>::classification(vec![0.5; 64], 64, vec![2], 3).unwrap();
    let error = attempt(&mut network, &three_classes, &split.test, config(1, 1.0));
    match &error {
        Error::Core(core) => assert_eq!(
            *core,
            CoreError::WidthMismatch {
                role: MatrixRole::Targets,
                expected: 10,
                found: 3
            }
        ),
        other => panic!("expected a core width mismatch, got {other:?}"),
    }
    // The core error is the source, and its message names the widths.
    let source = std::error::Error::source(&error).expect("a core error has a source");
    let core = source.downcast_ref::<CoreError>().expect("a core error");
    assert!(
        core.to_string().contains("3 columns") && core.to_string().contains("10"),
        "{core}"
    );
    assert_eq!(network, seed_network::<f64>(), "no update happened");

    // A linear network with a huge step diverges to infinity: the first step
    // whose loss, gradient or update is not finite is an error naming the
    // epoch and the step, and the network keeps the step before's parameters.
    let linear = Architecture::new(&[64, 10], &[Activation::Identity], Loss::Mse).unwrap();
    let mut network = Network::<f64>::init(linear, SEED);
    let error = attempt(&mut network, &split.train, &split.test, config(5, 1e6));
    let Error::Step {
        epoch,
        step,
        source,
    } = &error
    else {
        panic!("expected a failed step, got {error:?}");
    };
    assert!(
        matches!(
            source,
            CoreError::NonFiniteLoss { .. }
                | CoreError::NonFiniteGradient { .. }
                | CoreError::NonFiniteUpdate { .. }
        ),
        "{source:?}"
    );
    assert_eq!((*epoch, *step), (1, 27), "{error}");
    assert!(error.to_string().contains("step 27 of epoch 1"), "{error}");
    network
        .check_finite()
        .expect("the parameters before the failed step");
}

// ---------------------------------------------------------------- checkpoints

/// A small trained network of each loss and of several layers.
fn trained_networks<T: Precision>() -> Vec<Network<T>> {
    let split = digits_split::<T>();
    let deep = Architecture::new(
        &[64, 16, 12, 10],
        &[Activation::Relu, Activation::Tanh, Activation::Identity],
        Loss::SoftmaxCrossEntropy,
    )
    .unwrap();
    let mut networks = vec![seed_network::<T>(), Network::init(deep, SEED)];
    for (network, rate) in networks.iter_mut().zip([20.0, 0.3]) {
        run(BackendKind::Naive, network, &split, &config(2, rate));
    }
    networks
}

fn assert_bit_identical<T: Scalar>(a: &Network<T>, b: &Network<T>) {
    assert_eq!(a.architecture(), b.architecture());
    let bits = |n: &Network<T>| {
        n.params()
            .as_slice()
            .iter()
            .map(|v| v.to_f64().to_bits())
            .collect::<Vec<_>>()
    };
    assert_eq!(bits(a), bits(b));
}

#[test]
fn checkpoints_round_trip_bit_identically() {
    for network in trained_networks::<f32>() {
        let loaded =
            checkpoint::from_bytes::<f32>(&checkpoint::to_bytes(&network).unwrap()).unwrap();
        assert_bit_identical(&network, &loaded);
    }
    for network in trained_networks::<f64>() {
        let loaded =
            checkpoint::from_bytes::<f64>(&checkpoint::to_bytes(&network).unwrap()).unwrap();
        assert_bit_identical(&network, &loaded);
    }
    let network = &trained_networks::<f32>()[0];
    let path = std::env::temp_dir().join(format!(
        "backprop-checkpoint-{}.safetensors",
        std::process::id()
    ));
    checkpoint::save(network, &path).unwrap();
    let loaded = checkpoint::load::<f32>(&path);
    std::fs::remove_file(&path).unwrap();
    assert_bit_identical(network, &loaded.unwrap());
}

#[test]
fn checkpoints_use_pytorch_linear_names_shapes_and_metadata() {
    let network = &trained_networks::<f32>()[1];
    let bytes = checkpoint::to_bytes(network).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let mut names = file.names();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "layers.0.bias",
            "layers.0.weight",
            "layers.1.bias",
            "layers.1.weight",
            "layers.2.bias",
            "layers.2.weight"
        ]
    );
    let weight = file.tensor("layers.1.weight").unwrap();
    assert_eq!(
        (weight.dtype(), weight.shape()),
        (Dtype::F32, &[12, 16][..])
    );
    assert_eq!(file.tensor("layers.1.bias").unwrap().shape(), [12]);
    // W^2 row-major, exactly as the flat parameters hold it.
    let first = f32::from_le_bytes(weight.data()[..4].try_into().unwrap());
    assert_eq!(first, network.params().layer(1).unwrap().weights[0]);
    let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
    let metadata = header.metadata().clone().unwrap();
    assert_eq!(metadata[checkpoint::WIDTHS_KEY], "64,16,12,10");
    assert_eq!(metadata[checkpoint::ACTIVATIONS_KEY], "relu,tanh,identity");
    assert_eq!(metadata[checkpoint::LOSS_KEY], "softmax-cross-entropy");
}

/// Tensors of a checkpoint, editable: name, dtype, shape and bytes.
type Tensors = Vec<(String, Dtype, Vec<usize>, Vec<u8>)>;

/// Rewrites a valid checkpoint after `edit` changes its tensors and metadata.
fn rewrite(bytes: &[u8], edit: impl FnOnce(&mut Tensors, &mut HashMap<String, String>)) -> Vec<u8> {
    let file = SafeTensors::deserialize(bytes).unwrap();
    let (_, header) = SafeTensors::read_metadata(bytes).unwrap();
    let mut metadata = header.metadata().clone().unwrap();
    let mut tensors: Tensors = file
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            (
                name,
                view.dtype(),
                view.shape().to_vec(),
                view.data().to_vec(),
            )
        })
        .collect();
    edit(&mut tensors, &mut metadata);
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(name, dtype, shape, data)| {
            (
                name.clone(),
                TensorView::new(*dtype, shape.clone(), data).unwrap(),
            )
        })
        .collect();
    safetensors::serialize(views, Some(metadata)).unwrap()
}

/// The tensor name and message of a checkpoint error, failing the test for any other result.
fn checkpoint_error(bytes: &[u8]) -> (Option<String>, String) {
    match checkpoint::from_bytes::<f32>(bytes) {
        Err(Error::Checkpoint { tensor, reason }) => {
            let message = Error::Checkpoint {
                tensor: tensor.clone(),
                reason,
            }
            .to_string();
            (tensor, message)
        }
        other => panic!("expected a checkpoint error, got {other:?}"),
    }
}

#[test]
fn a_missing_or_unexpected_tensor_is_named() {
    let bytes = checkpoint::to_bytes(&seed_network::<f32>()).unwrap();
    let missing = rewrite(&bytes, |tensors, _| {
        tensors.retain(|t| t.0 != "layers.1.bias")
    });
    let (tensor, message) = checkpoint_error(&missing);
    assert_eq!(tensor.as_deref(), Some("layers.1.bias"));
    assert!(
        message.contains("missing") && message.contains("[10]"),
        "{message}"
    );

    let extra = rewrite(&bytes, |tensors, _| {
        tensors.push((
            "layers.2.weight".to_owned(),
            Dtype::F32,
            vec![1],
            vec![0; 4],
        ))
    });
    let (tensor, message) = checkpoint_error(&extra);
    assert_eq!(tensor.as_deref(), Some("layers.2.weight"));
    assert!(message.contains("unexpected"), "{message}");
}

#[test]
fn a_wrong_shape_names_the_tensor_and_both_shapes() {
    let bytes = checkpoint::to_bytes(&seed_network::<f32>()).unwrap();
    // Transposed: the same bytes as [64, 32] instead of PyTorch's [32, 64].
    let transposed = rewrite(&bytes, |tensors, _| {
        for tensor in tensors.iter_mut().filter(|t| t.0 == "layers.0.weight") {
            tensor.2 = vec![64, 32];
        }
    });
    let (tensor, message) = checkpoint_error(&transposed);
    assert_eq!(tensor.as_deref(), Some("layers.0.weight"));
    assert!(
        message.contains("[64, 32]") && message.contains("[32, 64]"),
        "{message}"
    );

    // Metadata that disagrees with the tensors is caught the same way.
    let wider = rewrite(&bytes, |_, metadata| {
        metadata.insert(checkpoint::WIDTHS_KEY.to_owned(), "64,33,10".to_owned());
    });
    let (tensor, message) = checkpoint_error(&wider);
    assert_eq!(tensor.as_deref(), Some("layers.0.weight"));
    assert!(message.contains("[33, 64]"), "{message}");
}

#[test]
fn a_wrong_dtype_names_the_tensor_and_both_dtypes() {
    let wide = checkpoint::to_bytes(&seed_network::<f64>()).unwrap();
    let (tensor, message) = checkpoint_error(&wide);
    assert_eq!(tensor.as_deref(), Some("layers.0.weight"));
    assert!(
        message.contains("F64") && message.contains("F32"),
        "{message}"
    );

    let bytes = checkpoint::to_bytes(&seed_network::<f32>()).unwrap();
    let integers = rewrite(&bytes, |tensors, _| {
        for tensor in tensors.iter_mut().filter(|t| t.0 == "layers.1.bias") {
            tensor.1 = Dtype::I32;
        }
    });
    let (tensor, message) = checkpoint_error(&integers);
    assert_eq!(tensor.as_deref(), Some("layers.1.bias"));
    assert!(message.contains("I32"), "{message}");
}

#[test]
fn corrupt_bytes_are_errors() {
    let bytes = checkpoint::to_bytes(&trained_networks::<f32>()[0]).unwrap();
    // A flipped bit in the last weight: the header still parses, the checksum does not match.
    let mut flipped = bytes.clone();
    *flipped.last_mut().unwrap() ^= 0x01;
    let (tensor, message) = checkpoint_error(&flipped);
    assert_eq!(tensor, None);
    assert!(
        message.contains("corrupt") && message.contains("checksum"),
        "{message}"
    );
    // Cut short, a garbled header, garbage, nothing at all.
    let mut garbled = bytes.clone();
    garbled[9] = b'#';
    let cases: [(&str, &[u8]); 5] = [
        ("truncated", &bytes[..bytes.len() - 7]),
        ("header only", &bytes[..40]),
        ("garbled header", &garbled),
        ("garbage", b"definitely not a safetensors file"),
        ("empty", b""),
    ];
    for (what, corrupt) in cases {
        let (_, message) = checkpoint_error(corrupt);
        assert!(message.contains("safetensors"), "{what}: {message}");
    }
}

#[test]
fn a_missing_or_invalid_architecture_is_an_error() {
    let bytes = checkpoint::to_bytes(&seed_network::<f32>()).unwrap();
    let no_loss = rewrite(&bytes, |_, metadata| {
        metadata.remove(checkpoint::LOSS_KEY);
    });
    let (_, message) = checkpoint_error(&no_loss);
    assert!(message.contains("'loss'"), "{message}");
    let unknown = rewrite(&bytes, |_, metadata| {
        metadata.insert(
            checkpoint::ACTIVATIONS_KEY.to_owned(),
            "sigmoid,swish".to_owned(),
        );
    });
    let (_, message) = checkpoint_error(&unknown);
    assert!(message.contains("swish"), "{message}");
    let error = checkpoint::load::<f32>("no/such/model.safetensors").unwrap_err();
    assert!(
        matches!(&error, Error::Io { path, source }
            if path.to_str() == Some("no/such/model.safetensors")
                && source.kind() == std::io::ErrorKind::NotFound),
        "{error:?}"
    );
}
