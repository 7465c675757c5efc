//! Validated row-major views of a batch: inputs `X: B x n` and targets `Y: B x m`.

use std::ops::Range;

use crate::{Architecture, Error, MatrixRole, Scalar};

/// A row-major `rows x cols` view of a slice whose length has been checked.
#[derive(Clone, Copy, Debug)]
pub struct MatrixRef<'a, T> {
    values: &'a [T],
    rows: usize,
    cols: usize,
}

impl<'a, T> MatrixRef<'a, T> {
    /// Views `values` as `rows x cols`, row-major; the length must be `rows * cols`.
    pub fn new(values: &'a [T], rows: usize, cols: usize) -> Result<Self, Error> {
        if rows.checked_mul(cols) != Some(values.len()) {
            return Err(Error::MatrixLength {
                rows,
                cols,
                found: values.len(),
            });
        }
        Ok(MatrixRef { values, rows, cols })
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The values, row-major.
    pub fn as_slice(&self) -> &'a [T] {
        self.values
    }

    /// Row `r`; `None` past the last row.
    pub fn row(&self, r: usize) -> Option<&'a [T]> {
        if r >= self.rows {
            return None;
        }
        self.values.get(r * self.cols..(r + 1) * self.cols)
    }

    /// The rows in `range`, which must lie within the matrix.
    fn row_range(&self, range: Range<usize>) -> MatrixRef<'a, T> {
        MatrixRef {
            values: &self.values[range.start * self.cols..range.end * self.cols],
            rows: range.len(),
            cols: self.cols,
        }
    }
}

/// Checks that a matrix has rows and only finite values; returns its
/// largest magnitude.
fn check_finite_rows<T: Scalar>(matrix: &MatrixRef<'_, T>, role: MatrixRole) -> Result<f64, Error> {
    if matrix.rows == 0 {
        return Err(Error::EmptyBatch { role });
    }
    let largest = T::largest_magnitude(matrix.values);
    if largest.is_finite() {
        return Ok(largest.to_f64());
    }
    let index = matrix
        .values
        .iter()
        .position(|v| !v.is_finite())
        .unwrap_or_default();
    Err(Error::NonFiniteValue {
        role,
        row: index / matrix.cols.max(1),
        col: index % matrix.cols.max(1),
        value: matrix.values.get(index).map_or(f64::NAN, |v| v.to_f64()),
    })
}

/// Inputs of a forward pass: at least one row, every value finite.
#[derive(Clone, Copy, Debug)]
pub struct Inputs<'a, T> {
    matrix: MatrixRef<'a, T>,
    /// The largest `|x|` (of the whole matrix a sub-range was cut from).
    bound: f64,
}

impl<'a, T: Scalar> Inputs<'a, T> {
    /// Validates a matrix of inputs: no empty batch, no NaN or infinity.
    pub fn new(matrix: MatrixRef<'a, T>) -> Result<Self, Error> {
        let bound = check_finite_rows(&matrix, MatrixRole::Inputs)?;
        Ok(Inputs { matrix, bound })
    }

    /// An upper bound of the largest `|x|`, found when the inputs were checked.
    pub fn largest_magnitude(&self) -> f64 {
        self.bound
    }

    /// The inputs as a matrix.
    pub fn matrix(&self) -> MatrixRef<'a, T> {
        self.matrix
    }

    /// Number of samples `B`.
    pub fn rows(&self) -> usize {
        self.matrix.rows
    }

    /// The rows in `range` as inputs of their own; `None` if the range is
    /// empty or reaches past the last row.
    pub fn sub_inputs(&self, range: Range<usize>) -> Option<Inputs<'a, T>> {
        if range.is_empty() || range.end > self.rows() {
            return None;
        }
        Some(self.rows_of(range))
    }

    /// The rows in `range`, a non-empty range within the rows.
    pub(crate) fn rows_of(&self, range: Range<usize>) -> Inputs<'a, T> {
        Inputs {
            matrix: self.matrix.row_range(range),
            bound: self.bound,
        }
    }

    /// Checks that the width is the architecture's input width `n`.
    pub fn check_width(&self, architecture: &Architecture) -> Result<(), Error> {
        check_width(
            self.matrix.cols,
            architecture.input_width(),
            MatrixRole::Inputs,
        )
    }
}

fn check_width(found: usize, expected: usize, role: MatrixRole) -> Result<(), Error> {
    if found == expected {
        Ok(())
    } else {
        Err(Error::WidthMismatch {
            role,
            expected,
            found,
        })
    }
}

/// A training batch: inputs and targets with the same number of rows (at
/// least one), widths that match an architecture, and only finite values.
///
/// NaN and infinity are rejected here, when the batch is built, so that no
/// kernel ever sees them.
#[derive(Clone, Copy, Debug)]
pub struct Batch<'a, T> {
    inputs: MatrixRef<'a, T>,
    targets: MatrixRef<'a, T>,
    /// The largest `|x|` and `|y|`, found when the batch was checked.
    input_bound: f64,
    target_bound: f64,
}

impl<'a, T: Scalar> Batch<'a, T> {
    /// Validates `inputs: B x n` and `targets: B x m` for `architecture`.
    pub fn new(
        architecture: &Architecture,
        inputs: MatrixRef<'a, T>,
        targets: MatrixRef<'a, T>,
    ) -> Result<Self, Error> {
        if inputs.rows != targets.rows {
            return Err(Error::RowCountMismatch {
                input_rows: inputs.rows,
                target_rows: targets.rows,
            });
        }
        let mut batch = Batch {
            inputs,
            targets,
            input_bound: 0.0,
            target_bound: 0.0,
        };
        batch.check_widths(architecture)?;
        batch.input_bound = check_finite_rows(&inputs, MatrixRole::Inputs)?;
        batch.target_bound = check_finite_rows(&targets, MatrixRole::Targets)?;
        Ok(batch)
    }

    /// Validates flat row-major slices of `rows` samples for `architecture`.
    pub fn from_slices(
        architecture: &Architecture,
        rows: usize,
        inputs: &'a [T],
        targets: &'a [T],
    ) -> Result<Self, Error> {
        Batch::new(
            architecture,
            MatrixRef::new(inputs, rows, architecture.input_width())?,
            MatrixRef::new(targets, rows, architecture.output_width())?,
        )
    }

    /// Checks that the widths are the architecture's `n` and `m`.
    pub fn check_widths(&self, architecture: &Architecture) -> Result<(), Error> {
        check_width(
            self.inputs.cols,
            architecture.input_width(),
            MatrixRole::Inputs,
        )?;
        check_width(
            self.targets.cols,
            architecture.output_width(),
            MatrixRole::Targets,
        )
    }

    /// Number of samples `B`.
    pub fn rows(&self) -> usize {
        self.inputs.rows
    }

    /// The inputs `X`.
    pub fn inputs(&self) -> Inputs<'a, T> {
        Inputs {
            matrix: self.inputs,
            bound: self.input_bound,
        }
    }

    /// An upper bound of the largest `|y|`, found when the batch was checked.
    pub fn target_magnitude(&self) -> f64 {
        self.target_bound
    }

    /// The targets `Y`.
    pub fn targets(&self) -> MatrixRef<'a, T> {
        self.targets
    }

    /// The samples in `range` as a batch of their own; `None` if the range is
    /// empty or reaches past the last row.
    pub fn sub_batch(&self, range: Range<usize>) -> Option<Batch<'a, T>> {
        if range.is_empty() || range.end > self.rows() {
            return None;
        }
        Some(self.rows_of(range))
    }

    /// The samples in `range`, a non-empty range within the rows.
    pub(crate) fn rows_of(&self, range: Range<usize>) -> Batch<'a, T> {
        Batch {
            inputs: self.inputs.row_range(range.clone()),
            targets: self.targets.row_range(range),
            input_bound: self.input_bound,
            target_bound: self.target_bound,
        }
    }
}

/// Resizes `buffer` to a `rows x cols` matrix (new values zero), or fails
/// with [`Error::TooLarge`] naming `what` when that many values do not fit in
/// `usize` or cannot be allocated: a size too large for memory is an error,
/// never an abort.
pub fn resize_matrix<T: Scalar>(
    buffer: &mut Vec<T>,
    what: &'static str,
    rows: usize,
    cols: usize,
) -> Result<(), Error> {
    let too_large = || Error::TooLarge { what, rows, cols };
    let length = rows.checked_mul(cols).ok_or_else(too_large)?;
    if let Some(more) = length.checked_sub(buffer.len()) {
        buffer.try_reserve_exact(more).map_err(|_| too_large())?;
    }
    buffer.resize(length, T::ZERO);
    Ok(())
}
