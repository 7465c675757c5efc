//! Labelled data sets for classification, and the handwritten digits loader (gzip CSV) with a stratified split.
//!
//! The digits file holds one sample per line: 64 comma-separated pixel counts
//! in `0..=16` (an 8x8 image, row-major), then the digit `0..=9`. [`parse`]
//! scales the pixels to `[0, 1]` and turns the labels into one-hot targets.
//! Every malformed line is an [`Error::Data`] naming its line and, where one
//! field is at fault, its column (both 1-based); nothing panics.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use flate2::read::GzDecoder;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::{Architecture, Batch, Error, Inputs, MatrixRef, MatrixRole, Scalar};

/// Pixels per digit image: 8 x 8.
pub const PIXELS: usize = 64;
/// Classes of the digits data set: the digits 0 to 9.
pub const CLASSES: usize = 10;
/// The largest pixel count in the digits file; pixels are divided by it.
pub const MAX_PIXEL: f64 = 16.0;
/// Columns per line of the digits file: the pixels, then the label.
pub const COLUMNS: usize = PIXELS + 1;
/// Samples in the digits file shipped in `data/digits.csv.gz`.
pub const SAMPLES: usize = 1797;
/// The share of each class held out for testing in the standard split.
pub const TEST_FRACTION: f64 = 0.2;
/// The seed of the standard split, fixed so every run tests on the same samples.
pub const SPLIT_SEED: u64 = 0;

/// Labelled samples: features `rows x feature_count` (row-major), one class
/// label per row, and the labels' one-hot targets `rows x class_count`.
///
/// Built through [`Dataset::new`], which checks that every label is below the
/// class count and every feature is finite, so a dataset always yields a
/// valid [`Batch`] for an architecture of matching widths.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset<T> {
    features: Vec<T>,
    targets: Vec<T>,
    labels: Vec<usize>,
    feature_count: usize,
    class_count: usize,
}

/// Sample indices of a train/test split, each list in increasing order and
/// disjoint from the other.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitIndices {
    /// Rows of the training set.
    pub train: Vec<usize>,
    /// Rows of the test set.
    pub test: Vec<usize>,
}

/// A dataset split into a training set and a test set.
#[derive(Clone, Debug, PartialEq)]
pub struct Split<T> {
    /// The samples to train on.
    pub train: Dataset<T>,
    /// The held-out samples to evaluate on.
    pub test: Dataset<T>,
}

impl<T: Scalar> Dataset<T> {
    /// Pairs `features` (`labels.len() x feature_count`, row-major) with
    /// `labels`, each below `class_count`, and builds the one-hot targets.
    ///
    /// An empty dataset is allowed here; training or evaluating on one is an
    /// [`Error::EmptyBatch`].
    pub fn new(
        features: Vec<T>,
        feature_count: usize,
        labels: Vec<usize>,
        class_count: usize,
    ) -> Result<Self, Error> {
        let rows = labels.len();
        if rows.checked_mul(feature_count) != Some(features.len()) {
            return Err(Error::MatrixLength {
                rows,
                cols: feature_count,
                found: features.len(),
            });
        }
        if let Some(index) = features.iter().position(|value| !value.is_finite()) {
            return Err(Error::NonFiniteValue {
                role: MatrixRole::Inputs,
                row: index / feature_count,
                col: index % feature_count,
                value: features[index].to_f64(),
            });
        }
        let targets = one_hot(&labels, class_count)?;
        Ok(Dataset {
            features,
            targets,
            labels,
            feature_count,
            class_count,
        })
    }

    /// Number of samples.
    pub fn rows(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Features per sample, the input width `n` a network needs.
    pub fn feature_count(&self) -> usize {
        self.feature_count
    }

    /// Number of classes, the output width `m` a network needs.
    pub fn class_count(&self) -> usize {
        self.class_count
    }

    /// The features, `rows x feature_count`, row-major.
    pub fn features(&self) -> &[T] {
        &self.features
    }

    /// Sample `row`'s features; `None` past the last row.
    pub fn sample(&self, row: usize) -> Option<&[T]> {
        let start = row.checked_mul(self.feature_count)?;
        let end = start.checked_add(self.feature_count)?;
        self.features.get(start..end)
    }

    /// The one-hot targets, `rows x class_count`, row-major.
    pub fn targets(&self) -> &[T] {
        &self.targets
    }

    /// The class label of every sample.
    pub fn labels(&self) -> &[usize] {
        &self.labels
    }

    /// How many samples each class has, indexed by class.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.class_count];
        for &label in &self.labels {
            counts[label] += 1;
        }
        counts
    }

    /// The features as a validated matrix of inputs (an error if there are no samples).
    pub fn inputs(&self) -> Result<Inputs<'_, T>, Error> {
        Inputs::new(MatrixRef::new(
            &self.features,
            self.rows(),
            self.feature_count,
        )?)
    }

    /// The whole dataset as one batch for `architecture`, whose input width must
    /// be the feature count and whose output width the class count.
    pub fn batch(&self, architecture: &Architecture) -> Result<Batch<'_, T>, Error> {
        Batch::new(
            architecture,
            MatrixRef::new(&self.features, self.rows(), self.feature_count)?,
            MatrixRef::new(&self.targets, self.rows(), self.class_count)?,
        )
    }

    /// The samples at `indices`, in that order (repeats allowed).
    pub fn subset(&self, indices: &[usize]) -> Result<Self, Error> {
        let mut features = Vec::with_capacity(indices.len() * self.feature_count);
        let mut labels = Vec::with_capacity(indices.len());
        for &index in indices {
            let sample = self.sample(index).ok_or_else(|| Error::InvalidSetting {
                name: "sample index",
                value: index.to_string(),
                expected: format!("less than the dataset's {} rows", self.rows()),
            })?;
            features.extend_from_slice(sample);
            labels.push(self.labels[index]);
        }
        Dataset::new(features, self.feature_count, labels, self.class_count)
    }

    /// Splits the rows class by class: of each class's `c` samples,
    /// `round(c * test_fraction)` chosen at random (seeded) go to the test set,
    /// the others to the training set, so both keep the class proportions.
    ///
    /// The same seed always gives the same split. `test_fraction` must lie
    /// strictly between 0 and 1.
    pub fn stratified_split_indices(
        &self,
        test_fraction: f64,
        seed: u64,
    ) -> Result<SplitIndices, Error> {
        if !(test_fraction > 0.0 && test_fraction < 1.0) {
            return Err(Error::InvalidSetting {
                name: "test_fraction",
                value: test_fraction.to_string(),
                expected: "strictly between 0 and 1".to_owned(),
            });
        }
        let mut rng = StdRng::seed_from_u64(seed);
        let mut train = Vec::with_capacity(self.rows());
        let mut test = Vec::new();
        for class in 0..self.class_count {
            let mut members: Vec<usize> = (0..self.rows())
                .filter(|&row| self.labels[row] == class)
                .collect();
            members.shuffle(&mut rng);
            let test_count =
                ((members.len() as f64 * test_fraction).round() as usize).min(members.len());
            test.extend_from_slice(&members[..test_count]);
            train.extend_from_slice(&members[test_count..]);
        }
        train.sort_unstable();
        test.sort_unstable();
        Ok(SplitIndices { train, test })
    }

    /// The training and test sets of [`Dataset::stratified_split_indices`].
    pub fn stratified_split(&self, test_fraction: f64, seed: u64) -> Result<Split<T>, Error> {
        let indices = self.stratified_split_indices(test_fraction, seed)?;
        Ok(Split {
            train: self.subset(&indices.train)?,
            test: self.subset(&indices.test)?,
        })
    }

    /// The same dataset rounded (or widened) to another precision.
    pub fn to_precision<U: Scalar>(&self) -> Dataset<U> {
        let convert = |values: &[T]| values.iter().map(|v| U::from_f64(v.to_f64())).collect();
        Dataset {
            features: convert(&self.features),
            targets: convert(&self.targets),
            labels: self.labels.clone(),
            feature_count: self.feature_count,
            class_count: self.class_count,
        }
    }
}

/// One-hot targets `labels.len() x class_count`: row `r` is 1 at `labels[r]`
/// and 0 elsewhere. Every label must be below `class_count`.
pub fn one_hot<T: Scalar>(labels: &[usize], class_count: usize) -> Result<Vec<T>, Error> {
    let mut targets = vec![T::ZERO; labels.len() * class_count];
    for (row, &label) in labels.iter().enumerate() {
        if label >= class_count {
            return Err(Error::InvalidSetting {
                name: "label",
                value: format!("{label} (sample {row})"),
                expected: format!("less than the class count {class_count}"),
            });
        }
        targets[row * class_count + label] = T::ONE;
    }
    Ok(targets)
}

/// Reads the digits file at `path` (gzip-compressed CSV; see [`parse`]).
pub fn load<T: Scalar>(path: impl AsRef<Path>) -> Result<Dataset<T>, Error> {
    let path = path.as_ref();
    let file = File::open(path).map_err(|error| Error::Io {
        path: path.display().to_string(),
        reason: error.to_string(),
    })?;
    parse(BufReader::new(file))
}

/// Reads gzip-compressed digits CSV (see [`parse_csv`]).
///
/// A stream that is not gzip, or is cut short, is an [`Error::Data`] naming
/// the line being read when decompression failed.
pub fn parse<T: Scalar>(gzip: impl Read) -> Result<Dataset<T>, Error> {
    let mut counted = CountingReader {
        inner: gzip,
        bytes: 0,
    };
    let result = parse_lines(BufReader::new(GzDecoder::new(&mut counted)), true);
    if counted.bytes == 0 {
        return Err(empty_file_error());
    }
    result
}

/// Reads uncompressed digits CSV: no header, one sample per line, 64 pixel
/// counts in `0..=16` then the label `0..=9`.
///
/// Pixels are scaled to `[0, 1]` (divided by 16) and labels become one-hot
/// targets. Blank lines are skipped; fields may carry surrounding spaces and
/// lines a trailing `\r`. Anything else out of place, or a file without a
/// sample, is an [`Error::Data`] naming the line and column (1-based).
pub fn parse_csv<T: Scalar>(csv: impl BufRead) -> Result<Dataset<T>, Error> {
    parse_lines(csv, false)
}

fn parse_lines<T: Scalar>(mut reader: impl BufRead, gzip: bool) -> Result<Dataset<T>, Error> {
    let mut features = Vec::with_capacity(SAMPLES * PIXELS);
    let mut labels = Vec::with_capacity(SAMPLES);
    let mut line = Vec::new();
    let mut line_number = 0;
    loop {
        line.clear();
        line_number += 1;
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(|error| Error::Data {
                line: line_number,
                column: None,
                reason: if gzip {
                    format!("the gzip stream cannot be read (corrupt or truncated): {error}")
                } else {
                    format!("the stream cannot be read: {error}")
                },
            })?;
        if read == 0 {
            break;
        }
        let text = std::str::from_utf8(&line).map_err(|error| Error::Data {
            line: line_number,
            column: None,
            reason: format!("not UTF-8 text: {error}"),
        })?;
        let text = text.trim_end_matches(['\n', '\r']);
        if text.trim().is_empty() {
            continue;
        }
        let label = parse_sample(text, line_number, &mut features)?;
        labels.push(label);
    }
    if labels.is_empty() {
        return Err(empty_file_error());
    }
    Dataset::new(features, PIXELS, labels, CLASSES)
}

/// Appends one line's scaled pixels to `features` and returns its label; on
/// error `features` may hold part of the line, which the caller discards.
fn parse_sample<T: Scalar>(text: &str, line: usize, features: &mut Vec<T>) -> Result<usize, Error> {
    let found = text.split(',').count();
    if found != COLUMNS {
        return Err(Error::Data {
            line,
            column: None,
            reason: format!(
                "expected {COLUMNS} comma-separated columns ({PIXELS} pixels, then the label), found {found}"
            ),
        });
    }
    let mut label = 0;
    for (index, field) in text.split(',').enumerate() {
        let column = index + 1;
        let field = field.trim();
        let at = |reason: String| Error::Data {
            line,
            column: Some(column),
            reason,
        };
        let value: f64 = field
            .parse()
            .map_err(|_| at(format!("'{field}' is not a number")))?;
        if index < PIXELS {
            if !(0.0..=MAX_PIXEL).contains(&value) {
                return Err(at(format!(
                    "pixel {value} is outside 0..=16 (pixel {index} of the 8x8 image)"
                )));
            }
            features.push(T::from_f64(value / MAX_PIXEL));
        } else {
            if !(0.0..=(CLASSES - 1) as f64).contains(&value) || value.fract() != 0.0 {
                return Err(at(format!(
                    "label {value} is not a digit: it must be a whole number from 0 to 9"
                )));
            }
            label = value as usize;
        }
    }
    Ok(label)
}

fn empty_file_error() -> Error {
    Error::Data {
        line: 1,
        column: None,
        reason: "the file is empty: no sample to read".to_owned(),
    }
}

/// Counts the bytes read through it, to tell an empty file from a broken one.
struct CountingReader<R> {
    inner: R,
    bytes: u64,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buffer)?;
        self.bytes += read as u64;
        Ok(read)
    }
}
