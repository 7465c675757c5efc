//! Datasets to train on: features with class labels (one-hot targets) or with real-valued targets, and their splits.
//!
//! A [`Dataset`] is built checked ([`Dataset::classification`] or
//! [`Dataset::regression`]): whole rows, matching row counts, finite values,
//! labels below the class count. So a dataset always yields a valid
//! [`Batch`] for an architecture of matching widths, and [`crate::train`]
//! treats both kinds alike.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use backprop_core::{Architecture, Batch, Inputs, MatrixRef, Scalar};

use crate::error::{DatasetPart, Error};

/// Samples: features `rows x feature_width` (row-major) and targets
/// `rows x target_width`, with a class label per row when the targets are
/// the labels' one-hot encoding.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset<T> {
    features: Vec<T>,
    targets: Vec<T>,
    /// One label per row for classification, `None` for real-valued targets.
    labels: Option<Vec<usize>>,
    feature_width: usize,
    target_width: usize,
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
    /// A classification dataset: `features` (`labels.len() x feature_width`,
    /// row-major) with one label per row, each below `class_count`; the
    /// targets are the labels' one-hot encoding (`class_count` wide).
    ///
    /// Both widths must be at least 1. An empty dataset is allowed here;
    /// training or evaluating on one is a core `EmptyBatch` error.
    pub fn classification(
        features: Vec<T>,
        feature_width: usize,
        labels: Vec<usize>,
        class_count: usize,
    ) -> Result<Self, Error> {
        check_rows(
            DatasetPart::Features,
            &features,
            feature_width,
            labels.len(),
        )?;
        if class_count == 0 {
            return Err(Error::ZeroWidth {
                part: DatasetPart::Targets,
            });
        }
        // A count per class must fit in memory too (see `class_counts`).
        reserve::<usize>(DatasetPart::Targets, 1, class_count)?;
        let targets = one_hot(&labels, class_count)?;
        Ok(Dataset {
            features,
            targets,
            labels: Some(labels),
            feature_width,
            target_width: class_count,
        })
    }

    /// A regression dataset: `features` (`rows x feature_width`, row-major)
    /// with real-valued `targets` (`rows x target_width`), every value finite.
    ///
    /// Both widths must be at least 1; the number of rows is read from the
    /// features and must match the targets'. An empty dataset is allowed here.
    pub fn regression(
        features: Vec<T>,
        feature_width: usize,
        targets: Vec<T>,
        target_width: usize,
    ) -> Result<Self, Error> {
        let rows = whole_rows(DatasetPart::Features, features.len(), feature_width)?;
        let target_rows = whole_rows(DatasetPart::Targets, targets.len(), target_width)?;
        if rows != target_rows {
            return Err(Error::RowCountMismatch {
                feature_rows: rows,
                target_rows,
            });
        }
        check_finite(DatasetPart::Features, &features, feature_width)?;
        check_finite(DatasetPart::Targets, &targets, target_width)?;
        Ok(Dataset {
            features,
            targets,
            labels: None,
            feature_width,
            target_width,
        })
    }

    /// Number of samples.
    pub fn rows(&self) -> usize {
        self.features.len() / self.feature_width
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.features.is_empty()
    }

    /// Features per sample, the input width `n` a network needs.
    pub fn feature_width(&self) -> usize {
        self.feature_width
    }

    /// Targets per sample, the output width `m` a network needs (the class
    /// count for classification).
    pub fn target_width(&self) -> usize {
        self.target_width
    }

    /// Whether the targets are class labels (one-hot), not real values.
    pub fn is_classification(&self) -> bool {
        self.labels.is_some()
    }

    /// The number of classes for classification, `None` for real-valued targets.
    pub fn class_count(&self) -> Option<usize> {
        self.labels.as_ref().map(|_| self.target_width)
    }

    /// The features, `rows x feature_width`, row-major.
    pub fn features(&self) -> &[T] {
        &self.features
    }

    /// Sample `row`'s features; `None` past the last row.
    pub fn sample(&self, row: usize) -> Option<&[T]> {
        row_of(&self.features, self.feature_width, row)
    }

    /// The targets, `rows x target_width`, row-major: one-hot for classification.
    pub fn targets(&self) -> &[T] {
        &self.targets
    }

    /// Sample `row`'s targets; `None` past the last row.
    pub fn target(&self, row: usize) -> Option<&[T]> {
        row_of(&self.targets, self.target_width, row)
    }

    /// The class label of every sample, `None` for real-valued targets.
    pub fn labels(&self) -> Option<&[usize]> {
        self.labels.as_deref()
    }

    /// How many samples each class has, indexed by class; `None` for
    /// real-valued targets.
    pub fn class_counts(&self) -> Option<Vec<usize>> {
        let labels = self.labels.as_ref()?;
        let mut counts = vec![0; self.target_width];
        for &label in labels {
            // Labels are checked below the class count when built.
            if let Some(count) = counts.get_mut(label) {
                *count += 1;
            }
        }
        Some(counts)
    }

    /// The features as a validated matrix of inputs (an error if there are no samples).
    pub fn inputs(&self) -> Result<Inputs<'_, T>, Error> {
        let matrix = MatrixRef::new(&self.features, self.rows(), self.feature_width)?;
        Ok(Inputs::new(matrix)?)
    }

    /// The whole dataset as one batch for `architecture`, whose input width
    /// must be the feature width and whose output width the target width.
    pub fn batch(&self, architecture: &Architecture) -> Result<Batch<'_, T>, Error> {
        let rows = self.rows();
        Ok(Batch::new(
            architecture,
            MatrixRef::new(&self.features, rows, self.feature_width)?,
            MatrixRef::new(&self.targets, rows, self.target_width)?,
        )?)
    }

    /// The samples at `indices`, in that order (repeats allowed), of the same kind.
    pub fn subset(&self, indices: &[usize]) -> Result<Self, Error> {
        let rows = self.rows();
        let mut features = reserve(DatasetPart::Features, indices.len(), self.feature_width)?;
        let mut targets = reserve(DatasetPart::Targets, indices.len(), self.target_width)?;
        for &index in indices {
            let (Some(sample), Some(target)) = (self.sample(index), self.target(index)) else {
                return Err(Error::IndexOutOfRange { index, rows });
            };
            features.extend_from_slice(sample);
            targets.extend_from_slice(target);
        }
        // Every index was checked against the rows above, so none is dropped.
        let labels = self.labels.as_ref().map(|labels| {
            indices
                .iter()
                .filter_map(|&i| labels.get(i))
                .copied()
                .collect()
        });
        Ok(Dataset {
            features,
            targets,
            labels,
            feature_width: self.feature_width,
            target_width: self.target_width,
        })
    }

    /// Splits the rows at random (seeded): `round(rows * test_fraction)` go
    /// to the test set, the others to the training set. Works for both kinds
    /// of dataset; for classification [`Dataset::stratified_split_indices`]
    /// also keeps the class proportions.
    ///
    /// The same seed always gives the same split. `test_fraction` must lie
    /// strictly between 0 and 1.
    pub fn split_indices(&self, test_fraction: f64, seed: u64) -> Result<SplitIndices, Error> {
        check_test_fraction(test_fraction)?;
        let mut rng = StdRng::seed_from_u64(seed);
        let mut order: Vec<usize> = (0..self.rows()).collect();
        order.shuffle(&mut rng);
        let (test, train) = order.split_at(test_count(order.len(), test_fraction));
        let (mut train, mut test) = (train.to_vec(), test.to_vec());
        train.sort_unstable();
        test.sort_unstable();
        Ok(SplitIndices { train, test })
    }

    /// The training and test sets of [`Dataset::split_indices`].
    pub fn split(&self, test_fraction: f64, seed: u64) -> Result<Split<T>, Error> {
        let indices = self.split_indices(test_fraction, seed)?;
        self.split_at(&indices)
    }

    /// Splits the rows class by class: of each class's `c` samples,
    /// `round(c * test_fraction)` chosen at random (seeded) go to the test set,
    /// the others to the training set, so both keep the class proportions.
    ///
    /// The same seed always gives the same split. `test_fraction` must lie
    /// strictly between 0 and 1, and the dataset must hold class labels
    /// ([`Error::NeedsLabels`] otherwise).
    pub fn stratified_split_indices(
        &self,
        test_fraction: f64,
        seed: u64,
    ) -> Result<SplitIndices, Error> {
        let Some(labels) = &self.labels else {
            return Err(Error::NeedsLabels {
                operation: "a stratified split",
                target_width: self.target_width,
            });
        };
        check_test_fraction(test_fraction)?;
        let mut rng = StdRng::seed_from_u64(seed);
        let mut train = Vec::with_capacity(labels.len());
        let mut test = Vec::new();
        // The rows class by class, in increasing order of class and row;
        // classes without a sample are skipped (shuffling none draws nothing),
        // so the work grows with the rows, not with the class count.
        let mut by_class: Vec<usize> = (0..labels.len()).collect();
        by_class.sort_by_key(|&row| labels[row]);
        for members in by_class.chunk_by(|&a, &b| labels[a] == labels[b]) {
            let mut members = members.to_vec();
            members.shuffle(&mut rng);
            let (test_part, train_part) =
                members.split_at(test_count(members.len(), test_fraction));
            test.extend_from_slice(test_part);
            train.extend_from_slice(train_part);
        }
        train.sort_unstable();
        test.sort_unstable();
        Ok(SplitIndices { train, test })
    }

    /// The training and test sets of [`Dataset::stratified_split_indices`].
    pub fn stratified_split(&self, test_fraction: f64, seed: u64) -> Result<Split<T>, Error> {
        let indices = self.stratified_split_indices(test_fraction, seed)?;
        self.split_at(&indices)
    }

    fn split_at(&self, indices: &SplitIndices) -> Result<Split<T>, Error> {
        Ok(Split {
            train: self.subset(&indices.train)?,
            test: self.subset(&indices.test)?,
        })
    }

    /// The same dataset rounded (or widened) to another precision; an
    /// [`Error::NonFinite`] if a value overflows the narrower type.
    pub fn to_precision<U: Scalar>(&self) -> Result<Dataset<U>, Error> {
        let convert =
            |values: &[T]| -> Vec<U> { values.iter().map(|v| U::from_f64(v.to_f64())).collect() };
        let (features, targets) = (convert(&self.features), convert(&self.targets));
        check_finite(DatasetPart::Features, &features, self.feature_width)?;
        check_finite(DatasetPart::Targets, &targets, self.target_width)?;
        Ok(Dataset {
            features,
            targets,
            labels: self.labels.clone(),
            feature_width: self.feature_width,
            target_width: self.target_width,
        })
    }
}

/// One-hot targets `labels.len() x class_count`: row `r` is 1 at `labels[r]`
/// and 0 elsewhere. Every label must be below `class_count`.
pub fn one_hot<T: Scalar>(labels: &[usize], class_count: usize) -> Result<Vec<T>, Error> {
    let mut targets = reserve(DatasetPart::Targets, labels.len(), class_count)?;
    for (sample, &label) in labels.iter().enumerate() {
        if label >= class_count {
            return Err(Error::LabelOutOfRange {
                sample,
                label,
                classes: class_count,
            });
        }
        targets.extend((0..class_count).map(|class| if class == label { T::ONE } else { T::ZERO }));
    }
    Ok(targets)
}

/// Row `row` of a row-major buffer of rows of `width`; `None` past the end.
fn row_of<T>(values: &[T], width: usize, row: usize) -> Option<&[T]> {
    let start = row.checked_mul(width)?;
    values.get(start..start.checked_add(width)?)
}

/// An empty buffer with room for `rows x width` values, or an error if they cannot fit.
fn reserve<T>(part: DatasetPart, rows: usize, width: usize) -> Result<Vec<T>, Error> {
    let too_large = || Error::TooLarge { part, rows, width };
    let len = rows.checked_mul(width).ok_or_else(too_large)?;
    let mut values = Vec::new();
    values.try_reserve_exact(len).map_err(|_| too_large())?;
    Ok(values)
}

/// The number of rows of width `width` in `len` values; the width must be at
/// least 1 and the rows whole.
fn whole_rows(part: DatasetPart, len: usize, width: usize) -> Result<usize, Error> {
    if width == 0 {
        return Err(Error::ZeroWidth { part });
    }
    if !len.is_multiple_of(width) {
        return Err(Error::RaggedRows {
            part,
            width,
            found: len,
        });
    }
    Ok(len / width)
}

/// Checks that `values` are `rows` whole, finite rows of width `width`.
fn check_rows<T: Scalar>(
    part: DatasetPart,
    values: &[T],
    width: usize,
    rows: usize,
) -> Result<(), Error> {
    let found = whole_rows(part, values.len(), width)?;
    if found != rows {
        return Err(Error::RowCountMismatch {
            feature_rows: found,
            target_rows: rows,
        });
    }
    check_finite(part, values, width)
}

/// The first NaN or infinity in rows of width `width`, as an error.
fn check_finite<T: Scalar>(part: DatasetPart, values: &[T], width: usize) -> Result<(), Error> {
    match values.iter().position(|value| !value.is_finite()) {
        Some(index) => Err(Error::NonFinite {
            part,
            row: index / width,
            column: index % width,
            value: values[index].to_f64(),
        }),
        None => Ok(()),
    }
}

/// Checks that a test fraction lies strictly between 0 and 1.
fn check_test_fraction(test_fraction: f64) -> Result<(), Error> {
    if test_fraction > 0.0 && test_fraction < 1.0 {
        Ok(())
    } else {
        Err(Error::InvalidSetting {
            name: "test_fraction",
            value: test_fraction.to_string(),
            expected: "strictly between 0 and 1".to_owned(),
        })
    }
}

/// How many of `rows` samples go to the test set: `round(rows * test_fraction)`.
fn test_count(rows: usize, test_fraction: f64) -> usize {
    ((rows as f64 * test_fraction).round() as usize).min(rows)
}
