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

#[cfg(test)]
mod tests {
    use super::{Batch, Inputs, MatrixRef, resize_matrix};
    use crate::{Activation, Architecture, Error, Loss, MatrixRole};

    /// A 3-2 architecture: `n = 3`, `m = 2`.
    fn three_two() -> Architecture {
        Architecture::new(&[3, 2], &[Activation::Identity], Loss::Mse).expect("valid")
    }

    #[test]
    fn a_matrix_view_has_its_shape_and_its_rows() {
        let values: Vec<u8> = (0..12).collect();
        let matrix = MatrixRef::new(&values, 4, 3).expect("4 x 3");
        assert_eq!((matrix.rows(), matrix.cols()), (4, 3));
        assert_eq!(matrix.row(0), Some(&[0, 1, 2][..]));
        assert_eq!(matrix.row(2), Some(&[6, 7, 8][..]));
        assert_eq!(matrix.row(3), Some(&[9, 10, 11][..]));
        assert_eq!(matrix.row(4), None);
        assert_eq!(matrix.row(usize::MAX), None);
        let middle = matrix.row_range(1..3);
        assert_eq!((middle.rows(), middle.cols()), (2, 3));
        assert_eq!(middle.as_slice(), &[3, 4, 5, 6, 7, 8]);
        let error = MatrixRef::new(&values, 5, 3).unwrap_err();
        assert!(
            matches!(
                error,
                Error::MatrixLength {
                    rows: 5,
                    cols: 3,
                    found: 12
                }
            ),
            "{error:?}"
        );
    }

    #[test]
    fn a_non_finite_value_is_named_by_row_and_column() {
        let mut values = vec![0.5f32; 12];
        values[7] = f32::NEG_INFINITY;
        let matrix = MatrixRef::new(&values, 4, 3).expect("4 x 3");
        let error = Inputs::new(matrix).unwrap_err();
        assert!(
            matches!(error, Error::NonFiniteValue { role: MatrixRole::Inputs, row: 2, col: 1, value } if value == f64::NEG_INFINITY),
            "{error:?}"
        );
        let none: [f32; 0] = [];
        let error = Inputs::new(MatrixRef::new(&none, 0, 3).expect("0 x 3")).unwrap_err();
        assert!(
            matches!(
                error,
                Error::EmptyBatch {
                    role: MatrixRole::Inputs
                }
            ),
            "{error:?}"
        );
        let finite = [1.0f32, -4.0, 2.0];
        let inputs = Inputs::new(MatrixRef::new(&finite, 1, 3).expect("1 x 3")).expect("finite");
        assert_eq!(inputs.largest_magnitude(), 4.0);
    }

    #[test]
    fn widths_are_checked_against_the_architecture() {
        let architecture = three_two();
        let x = [0.0f32; 8];
        let inputs = Inputs::new(MatrixRef::new(&x, 2, 4).expect("2 x 4")).expect("finite");
        let error = inputs.check_width(&architecture).unwrap_err();
        assert!(
            matches!(
                error,
                Error::WidthMismatch {
                    role: MatrixRole::Inputs,
                    expected: 3,
                    found: 4
                }
            ),
            "{error:?}"
        );
        let (x, y) = ([0.0f32; 6], [0.0f32; 6]);
        let error = Batch::new(
            &architecture,
            MatrixRef::new(&x, 2, 3).expect("2 x 3"),
            MatrixRef::new(&y, 2, 3).expect("2 x 3"),
        )
        .unwrap_err();
        assert!(
            matches!(
                error,
                Error::WidthMismatch {
                    role: MatrixRole::Targets,
                    expected: 2,
                    found: 3
                }
            ),
            "{error:?}"
        );
        let error = Batch::new(
            &architecture,
            MatrixRef::new(&x, 2, 3).expect("2 x 3"),
            MatrixRef::new(&y[..2], 1, 2).expect("1 x 2"),
        )
        .unwrap_err();
        assert!(
            matches!(
                error,
                Error::RowCountMismatch {
                    input_rows: 2,
                    target_rows: 1
                }
            ),
            "{error:?}"
        );
        let other = Architecture::new(&[4, 2], &[Activation::Identity], Loss::Mse).expect("valid");
        let batch = Batch::from_slices(&architecture, 2, &x, &y[..4]).expect("valid");
        assert!(batch.check_widths(&architecture).is_ok());
        assert!(batch.check_widths(&other).is_err());
    }

    #[test]
    fn sub_batches_and_sub_inputs_take_non_empty_ranges_within_the_rows() {
        let architecture = three_two();
        let x: Vec<f32> = (0..12).map(|i| i as f32).collect();
        let y = [0.5f32, -3.0, 1.0, 1.0, 0.0, 0.0, 2.0, 2.0];
        let batch = Batch::from_slices(&architecture, 4, &x, &y).expect("valid");
        assert_eq!(batch.target_magnitude(), 3.0);
        assert_eq!(batch.inputs().largest_magnitude(), 11.0);
        let part = batch.sub_batch(1..3).expect("within");
        assert_eq!(part.rows(), 2);
        assert_eq!(part.inputs().matrix().as_slice(), &x[3..9]);
        assert_eq!(part.targets().as_slice(), &y[2..6]);
        assert!(batch.sub_batch(3..4).is_some());
        for range in [2..2, 3..5, 4..5, 0..5] {
            assert!(batch.sub_batch(range.clone()).is_none(), "{range:?}");
        }
        let inputs = batch.inputs();
        assert_eq!(inputs.sub_inputs(0..4).expect("all").rows(), 4);
        assert_eq!(
            inputs.sub_inputs(3..4).expect("last").matrix().as_slice(),
            &x[9..12]
        );
        for range in [1..1, 2..5, 4..5] {
            assert!(inputs.sub_inputs(range.clone()).is_none(), "{range:?}");
        }
    }

    #[test]
    fn resize_matrix_sizes_a_buffer_or_names_what_does_not_fit() {
        let mut buffer = vec![1.0f32; 3];
        resize_matrix(&mut buffer, "a test matrix", 2, 4).expect("8 values fit");
        assert_eq!(buffer, [1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        resize_matrix(&mut buffer, "a test matrix", 1, 2).expect("shrinks");
        assert_eq!(buffer, [1.0, 1.0]);
        for (rows, cols) in [(usize::MAX, 2), (1 << 62, 1)] {
            let error = resize_matrix(&mut buffer, "a test matrix", rows, cols).unwrap_err();
            assert!(
                matches!(error, Error::TooLarge { what: "a test matrix", rows: r, cols: c } if r == rows && c == cols),
                "{error:?}"
            );
        }
        assert_eq!(buffer, [1.0, 1.0], "left as it was");
    }
}
