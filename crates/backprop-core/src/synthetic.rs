//! The deterministic batch that the workspace's timing programs and benchmarks step on.

use crate::{Error, Scalar, resize_matrix};

/// Inputs `rows x n` in `[0, 1)` (`(i * 7 mod 17) / 17` for the `i`-th value) and targets
/// `rows x m` alternating `0, 1, 0, ...`, both row-major: a batch whose values are the same on
/// every run (and, up to each precision's rounding, in `f32` and `f64`), so that timings of
/// different programs and builds step on the same data. Pass them to [`Batch::from_slices`](crate::Batch::from_slices).
///
/// # Errors
///
/// [`Error::TooLarge`] naming the matrix when `rows x n` or `rows x m` values do not fit in
/// memory.
pub fn synthetic_batch<T: Scalar>(
    rows: usize,
    n: usize,
    m: usize,
) -> Result<(Vec<T>, Vec<T>), Error> {
    let mut inputs = Vec::new();
    resize_matrix(&mut inputs, "synthetic inputs", rows, n)?;
    for (i, value) in inputs.iter_mut().enumerate() {
        *value = T::from_f64((i * 7 % 17) as f64 / 17.0);
    }
    let mut targets = Vec::new();
    resize_matrix(&mut targets, "synthetic targets", rows, m)?;
    for (i, value) in targets.iter_mut().enumerate() {
        *value = T::from_f64((i % 2) as f64);
    }
    Ok((inputs, targets))
}

#[cfg(test)]
mod tests {
    use super::synthetic_batch;
    use crate::Error;

    #[test]
    fn the_values_follow_their_formulas_row_major() {
        let (inputs, targets) = synthetic_batch::<f64>(2, 3, 2).expect("a small batch");
        let sevenths = [0.0, 7.0, 14.0, 4.0, 11.0, 1.0].map(|k| k / 17.0);
        assert_eq!(inputs, sevenths);
        assert_eq!(targets, [0.0, 1.0, 0.0, 1.0]);
        let (single, _) = synthetic_batch::<f32>(2, 3, 2).expect("a small batch");
        assert!(single.iter().zip(&inputs).all(|(&s, &d)| s == d as f32));
    }

    #[test]
    fn a_batch_too_large_for_memory_is_an_error_naming_its_sizes() {
        let error = synthetic_batch::<f32>(usize::MAX / 2, 3, 1).expect_err("too large");
        assert!(matches!(
            error,
            Error::TooLarge {
                what: "synthetic inputs",
                rows,
                cols: 3
            } if rows == usize::MAX / 2
        ));
        let error = synthetic_batch::<f32>(1 << 20, 1, 1 << 50).expect_err("too large");
        assert!(matches!(
            error,
            Error::TooLarge {
                what: "synthetic targets",
                ..
            }
        ));
    }
}
