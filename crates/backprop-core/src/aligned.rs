//! A matrix buffer that starts on a cache-line boundary, for kernels' scratch.

use std::ops::{Deref, DerefMut};

use crate::{Error, Scalar, resize_matrix};

/// The alignment of an [`AlignedBuffer`]'s first value, in bytes: one cache
/// line, and the size of an AVX-512 vector.
pub const CACHE_LINE: usize = 64;

/// A buffer of values whose first one sits on a [`CACHE_LINE`] boundary, so
/// that rows of whole vectors never straddle two lines.
///
/// A `Vec` is aligned only to its type (and `malloc` to 16 bytes), and where
/// its buffer falls changes from one allocation to the next. A kernel whose
/// scratch rows are a whole number of 64-byte vectors then runs at one speed
/// or another by chance: the SIMD backend's S step (64-32-10, batch 64,
/// `f64`) took 13.7, 13.7 and 15.5 us with `Vec`s and 13.2, 13.2 and 11.7 us
/// with these, in three alternated runs of `cargo run --release -p
/// backprop-simd --example compare` (`docs/simd-speed.md`).
///
/// Dereferences to the slice of its values; sized only by
/// [`AlignedBuffer::resize`], which reuses the allocation when it can, so that
/// a step on a shape seen before allocates nothing.
#[derive(Debug, Default)]
pub struct AlignedBuffer<T> {
    /// The values, with up to a line of them more before the first aligned one.
    values: Vec<T>,
    /// The index of the first aligned value.
    start: usize,
    /// The number of values.
    len: usize,
}

impl<T: Scalar> AlignedBuffer<T> {
    /// Sizes the buffer for a `rows x cols` matrix (zeros where it grows),
    /// failing with [`Error::TooLarge`] naming `what` and the sizes if it
    /// does not fit in memory, like [`resize_matrix`].
    pub fn resize(&mut self, what: &'static str, rows: usize, cols: usize) -> Result<(), Error> {
        let too_large = || Error::TooLarge { what, rows, cols };
        let len = rows.checked_mul(cols).ok_or_else(too_large)?;
        let spare = CACHE_LINE / std::mem::size_of::<T>();
        let padded = len.checked_add(spare).ok_or_else(too_large)?;
        resize_matrix(&mut self.values, what, padded, 1).map_err(|_| too_large())?;
        // A `T`-aligned pointer is at most `spare - 1` values before a line.
        self.start = self.values.as_ptr().align_offset(CACHE_LINE).min(spare);
        self.len = len;
        Ok(())
    }
}

impl<T> Deref for AlignedBuffer<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        &self.values[self.start..self.start + self.len]
    }
}

impl<T> DerefMut for AlignedBuffer<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.values[self.start..self.start + self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::{AlignedBuffer, CACHE_LINE};
    use crate::Error;

    fn check<T: crate::Scalar>() {
        let mut buffer = AlignedBuffer::<T>::default();
        assert!(buffer.is_empty());
        // Growing, shrinking and growing again, each time aligned and sized.
        for (rows, cols) in [(3, 5), (64, 64), (1, 1), (0, 7), (33, 17)] {
            buffer.resize("test", rows, cols).expect("fits");
            assert_eq!(buffer.len(), rows * cols);
            assert_eq!(buffer.as_ptr() as usize % CACHE_LINE, 0, "{rows} x {cols}");
            // At most a line's worth of values more than the matrix.
            let spare = CACHE_LINE / std::mem::size_of::<T>();
            assert_eq!(buffer.values.len(), rows * cols + spare);
            buffer.fill(T::ONE);
            assert!(buffer.iter().all(|&v| v == T::ONE));
        }
        let error = buffer.resize("huge", usize::MAX / 2, 3).unwrap_err();
        assert_eq!(
            error,
            Error::TooLarge {
                what: "huge",
                rows: usize::MAX / 2,
                cols: 3
            }
        );
        let error = buffer.resize("huge", usize::MAX, 1).unwrap_err();
        assert!(matches!(
            error,
            Error::TooLarge {
                rows: usize::MAX,
                cols: 1,
                ..
            }
        ));
        let error = buffer.resize("huge", 1 << 40, 1 << 10).unwrap_err();
        assert!(matches!(error, Error::TooLarge { cols: 1024, .. }));
    }

    #[test]
    fn every_size_starts_on_a_cache_line_and_huge_ones_are_errors() {
        check::<f32>();
        check::<f64>();
    }
}
