//! The matrix products of a step, each in a layout faer runs at its full rate, the
//! transposition that puts `delta` in that layout, and the register clean-up after faer's kernels.
//!
//! # Layouts
//!
//! faer's GEMM rate depends on the storage order of its operands. Named as
//! faer's own column-major matrices (`A^T` is an operand stored row-major,
//! `C^T =` a row-major destination), `cargo run --release -p backprop-faer
//! --example layouts` measured, for `1024^3` on one thread of the 2-core
//! benchmark machine (Intel Xeon, AVX-512, virtualised, shared; GFLOP/s,
//! medians of interleaved rounds, a run of 5 rounds under moderate load /
//! a run of 7 under heavy load; `docs/faer-layouts.md` has both runs whole):
//!
//! | layout | f32 | f64 |
//! |---|---|---|
//! | `C = A B` | 137 / 63 | 62 / 43 |
//! | `C = A^T B` | 128 / 69 | 70 / 53 |
//! | `C^T = A^T B` | 113 / 73 | 74 / 34 |
//! | `C^T = A^T B^T` | 80 / 81 | 72 / 53 |
//! | `C = A B^T` | 55 / 44 | 30 / 26 |
//! | `C = A^T B^T` | 54 / 41 | 29 / 25 |
//! | `C^T = A B` | 44 / 42 | 30 / 21 |
//! | `C^T = A B^T` | 55 / 39 | 31 / 21 |
//!
//! faer turns a row-major destination into a column-major one by
//! transposing the whole product (`C^T = X Y` is `C = Y^T X^T`), and then
//! runs at full rate exactly when the right operand is column-major. So a
//! product into a row-major destination is fast when its *left* operand is
//! row-major, whatever the right one is.
//!
//! Every buffer of the backend is row-major (`B x d` for activations and
//! deltas, `d_l x d_{l-1}` for weights and their gradients, the caller's
//! `X` and outputs), and the products are:
//!
//! | product | as computed | left operand | rate |
//! |---|---|---|---|
//! | forward `Z^l = A^{l-1} W^l^T` | `Z` (row-major) `= A^{l-1}` (row-major) `W^T` | row-major | full (`C^T = A^T B`) |
//! | delta `delta^{l-1} = delta^l W^l` | `delta^{l-1}` (row-major) `= delta^l` (row-major) `W` (row-major) | row-major | full (`C^T = A^T B^T`) |
//! | weight gradient `dW^l = delta^l^T A^{l-1}` | `dW` (row-major) `= D^l A^{l-1}`, `D^l = delta^l^T` copied feature-major (`d_l x B`, row-major) | row-major | full (`C^T = A^T B^T`) |
//!
//! The weight gradient is the one product whose left operand, `delta^T`, is
//! naturally column-major: as a view of the row-major `delta` it runs in the
//! slow half (`C^T = A B^T`). Writing `dW^T` instead does not help (a
//! column-major destination then needs `delta` column-major), and `delta`
//! cannot be kept feature-major throughout, since the delta product needs it
//! sample-major (feature-major `delta` in gives feature-major out only
//! through `W^T`, column-major again). So `delta^l` is transposed into the
//! scratch (`B d_l` values, against the product's `2 B d_l d_{l-1}` flops)
//! whenever the product is large enough to care: see
//! [`TRANSPOSE_MIN_INNER`]. The first layer's blocks of hidden units
//! ([`crate::FaerBackend`]'s `FirstLayerSplit`) do the same with their block.
//! A transposed copy of a weight matrix would not help any product: the
//! weights are only ever the right operand.

use std::ops::Range;

use backprop_core::{RowSplit, Scalar, widest_vectors};
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;

use crate::{FaerScalar, Parallelism};

/// The batch size (the inner dimension of the weight gradient `delta^T A`)
/// from which `delta` is transposed so that the product runs in a fast layout.
///
/// Below it faer's small-matrix kernels run both layouts about alike:
/// measured with `cargo run --release -p backprop-faer --example layouts --
/// M N K 5` (f32, one thread, GFLOP/s fast layout against slow), the weight
/// gradients of S (`32 x 64 x 64`: 158 against 162; `10 x 32 x 64`: 70
/// against 73) and of M's second layer (`10 x 256 x 128`: 142 against 152)
/// gained nothing, M's first (`256 x 784 x 128`) 167 against 126 in the
/// probe, but no step time: in an A/B of this backend against the commit
/// before the change (`steps -- S,M f32,f64`, 15 interleaved rounds), M
/// with the transposition at batch 128 took 796 against 742 us sequentially
/// and 838 against 775 us with `Auto`, and without it (this threshold) 743
/// against 746 and 823 against 825. At `1024 x 1024 x 512` the layouts ran
/// at 124 against 65, and at `1024^3` 115-137 against 44-55.
pub const TRANSPOSE_MIN_INNER: usize = 256;

/// A row-major `rows x cols` slice as a faer view, without copying.
pub(crate) fn view<T: FaerScalar>(values: &[T], rows: usize, cols: usize) -> MatRef<'_, T> {
    MatRef::from_row_major_slice(values, rows, cols).as_dyn_stride()
}

/// A mutable row-major `rows x cols` slice as a faer view, without copying.
pub(crate) fn view_mut<T: FaerScalar>(values: &mut [T], rows: usize, cols: usize) -> MatMut<'_, T> {
    MatMut::from_row_major_slice_mut(values, rows, cols).as_dyn_stride_mut()
}

/// `dst = lhs * rhs`, overwriting `dst`, with the parallelism chosen for its size.
pub(crate) fn product<T: FaerScalar>(
    dst: MatMut<'_, T>,
    lhs: MatRef<'_, T>,
    rhs: MatRef<'_, T>,
    parallelism: Parallelism,
) {
    match parallelism.for_product(dst.nrows(), dst.ncols(), lhs.ncols()) {
        ProductPlan::Faer(par) => {
            matmul(dst, Accum::Replace, lhs, rhs, T::ONE, par);
            clear_upper_state();
        }
        ProductPlan::RowBlocks(blocks) => row_blocks(dst, lhs, rhs, blocks),
    }
}

/// How one product runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProductPlan {
    /// One faer product with this parallelism.
    Faer(Par),
    /// This many sequential faer products at once on rayon's pool, one per
    /// block of the destination's rows (and the left operand's). A block
    /// keeps the layout of the whole, so each runs at the sequential rate.
    RowBlocks(usize),
}

/// `dst = lhs * rhs` as sequential products over the blocks of
/// `RowSplit::new(rows, blocks)`, forked in halves (no allocation).
fn row_blocks<T: FaerScalar>(
    dst: MatMut<'_, T>,
    lhs: MatRef<'_, T>,
    rhs: MatRef<'_, T>,
    blocks: usize,
) {
    let split = RowSplit::new(dst.nrows(), blocks);
    fork_row_blocks(dst, lhs, rhs, &split, 0..split.count());
}

/// The parts `parts` of `split`, whose rows `dst` and `lhs` hold, each a
/// sequential product: two halves of the parts at once until one is left.
fn fork_row_blocks<T: FaerScalar>(
    dst: MatMut<'_, T>,
    lhs: MatRef<'_, T>,
    rhs: MatRef<'_, T>,
    split: &RowSplit,
    parts: Range<usize>,
) {
    if parts.len() <= 1 {
        matmul(dst, Accum::Replace, lhs, rhs, T::ONE, Par::Seq);
        clear_upper_state();
        return;
    }
    let middle = parts.start + parts.len() / 2;
    let at = split.range(middle).start - split.range(parts.start).start;
    let (top, bottom) = dst.split_at_row_mut(at);
    let (lhs_top, lhs_bottom) = lhs.split_at_row(at);
    rayon::join(
        || fork_row_blocks(top, lhs_top, rhs, split, parts.start..middle),
        || fork_row_blocks(bottom, lhs_bottom, rhs, split, middle..parts.end),
    );
}

/// The row stride of a transposed `cols x rows` matrix in the scratch: `rows`
/// and a few values more, so that its rows do not all start in the same set
/// of the first-level cache when `rows` is a power of two: a 1024 x 1024 f32
/// transposition took 1.4 ms with rows of 1024 values and 0.78 ms with rows
/// of 1040 (best of 50, on the loaded benchmark machine).
pub(crate) fn transposed_stride(rows: usize) -> usize {
    rows + 16
}

/// What a transposition does to the values on the way, besides moving them.
#[derive(Debug, Default)]
pub(crate) struct OnTheWay<'a, T> {
    /// Multiplies each value by the one at the same place of this matrix
    /// (the source's shape and stride): `delta = (delta W) (.) act'`, for a
    /// `delta` read nowhere else.
    pub(crate) slopes: Option<&'a [T]>,
    /// Receives the column sums of the values written, one per column
    /// transposed, each summed over the rows in order (as
    /// `passes::column_sums` sums them): the bias gradient `1^T delta`.
    pub(crate) sums: Option<&'a mut [T]>,
}

/// `dst = src^T` for the columns `first .. first + cols` of `src`, a
/// row-major matrix of `rows` rows of `stride` values, with what `on_the_way`
/// asks for (each way compiled apart: 1024 x 1024 took 0.77 ms alone, 0.71
/// with the sums, 0.87 with the sums and the slopes in `f32`; 1.31, 1.44
/// and 1.94 ms in `f64`, medians of 30 interleaved runs on one thread of
/// the benchmark machine, in a throwaway probe; the sums cost next to
/// nothing, the slopes their
/// matrix's read, where the passes they replace read and wrote `delta`
/// again); `dst` is `cols x rows`, row-major with rows of
/// [`transposed_stride`]`(rows)` values. Split over `blocks` blocks of
/// `dst`'s rows on rayon's pool.
pub(crate) fn transpose<T: Scalar>(
    dst: &mut [T],
    src: &[T],
    (rows, stride): (usize, usize),
    (first, cols): (usize, usize),
    blocks: usize,
    on_the_way: OnTheWay<'_, T>,
) {
    let ld = transposed_stride(rows);
    let dst = &mut dst[..cols * ld];
    let OnTheWay { slopes, sums } = on_the_way;
    let sums = sums.map(|sums| &mut sums[..cols]);
    if blocks <= 1 || cols < 2 {
        transpose_block(dst, (src, slopes), (rows, stride, ld, first), sums);
        return;
    }
    let block_cols = cols.div_ceil(blocks);
    let dst = dst.par_chunks_mut(block_cols * ld).enumerate();
    match sums {
        Some(sums) => dst
            .zip(sums.par_chunks_mut(block_cols))
            .for_each(|((b, dst), sums)| {
                let shape = (rows, stride, ld, first + b * block_cols);
                transpose_block(dst, (src, slopes), shape, Some(sums));
            }),
        None => dst.for_each(|(b, dst)| {
            let shape = (rows, stride, ld, first + b * block_cols);
            transpose_block(dst, (src, slopes), shape, None);
        }),
    }
}

/// A transposed `cols x rows` matrix in the scratch (see [`transposed_stride`]) as a faer view.
pub(crate) fn transposed_view<T: FaerScalar>(
    values: &[T],
    rows: usize,
    cols: usize,
) -> MatRef<'_, T> {
    let ld = transposed_stride(rows);
    MatRef::from_row_major_slice_with_stride(&values[..cols * ld], cols, rows, ld).as_dyn_stride()
}

widest_vectors! {
    /// `dst = src^T` for the `dst.len() / ld` columns of `src` (`rows` rows
    /// of `stride` values) from `first` on, times the slopes and with the
    /// column sums if asked for: [`transpose_tiles`] compiled for each of
    /// the four ways.
    fn transpose_block<T: Scalar>(
        dst: &mut [T],
        src: (&[T], Option<&[T]>),
        shape: (usize, usize, usize, usize),
        sums: Option<&mut [T]>,
    ) {
        let (values, slopes) = src;
        match (slopes, sums) {
            (None, None) => transpose_tiles::<T, false, false>(dst, values, values, shape, &mut []),
            (Some(slopes), None) => transpose_tiles::<T, true, false>(dst, values, slopes, shape, &mut []),
            (None, Some(sums)) => transpose_tiles::<T, false, true>(dst, values, values, shape, sums),
            (Some(slopes), Some(sums)) => transpose_tiles::<T, true, true>(dst, values, slopes, shape, sums),
        }
    }
}

/// `dst = src^T` (times `slopes` if `SLOPES`) for the `dst.len() / ld`
/// columns of `src` (`rows` rows of `stride` values) from `first` on, in 8 x
/// 8 tiles read row by row into registers and written column by column (8
/// lines of each matrix at a time: power-of-two strides put them all in one
/// set of the first-level cache, which holds 8 or more); with `SUMS`, the
/// column sums into `sums`, added up as the rows come, in order.
#[inline(always)]
fn transpose_tiles<T: Scalar, const SLOPES: bool, const SUMS: bool>(
    dst: &mut [T],
    src: &[T],
    slopes: &[T],
    (rows, stride, ld, first): (usize, usize, usize, usize),
    sums: &mut [T],
) {
    const TILE: usize = 8;
    let cols = dst.len() / ld;
    let value = |at: usize| {
        if SLOPES {
            src[at] * slopes[at]
        } else {
            src[at]
        }
    };
    if SUMS {
        sums.fill(T::ZERO);
    }
    let (full_rows, full_cols) = (rows - rows % TILE, cols - cols % TILE);
    for r0 in (0..full_rows).step_by(TILE) {
        for c0 in (0..full_cols).step_by(TILE) {
            let mut tile = [[T::ZERO; TILE]; TILE];
            for (i, line) in tile.iter_mut().enumerate() {
                let start = (r0 + i) * stride + first + c0;
                line.copy_from_slice(&src[start..start + TILE]);
                if SLOPES {
                    for (v, &slope) in line.iter_mut().zip(&slopes[start..start + TILE]) {
                        *v *= slope;
                    }
                }
            }
            if SUMS {
                let sums = &mut sums[c0..c0 + TILE];
                for line in &tile {
                    for (sum, &v) in sums.iter_mut().zip(line) {
                        *sum += v;
                    }
                }
            }
            for j in 0..TILE {
                let start = (c0 + j) * ld + r0;
                dst[start..start + TILE].copy_from_slice(&tile.map(|line| line[j]));
            }
        }
    }
    // The ragged right and bottom edges, value by value: each column's
    // rows still come in order.
    let mut edge = |dst: &mut [T], r: usize, c: usize| {
        let v = value(r * stride + first + c);
        dst[c * ld + r] = v;
        if SUMS {
            sums[c] += v;
        }
    };
    for r in 0..full_rows {
        for c in full_cols..cols {
            edge(dst, r, c);
        }
    }
    for r in full_rows..rows {
        for c in 0..cols {
            edge(dst, r, c);
        }
    }
}

/// Clears the upper halves of the vector registers on the calling thread.
///
/// faer's x86 GEMM kernels (assembly generated by the build script of
/// `private-gemm-x86` 0.1.22, which emits no `vzeroupper`) return with the
/// upper halves of the AVX-512 registers dirty. Every legacy-SSE instruction
/// after that, which is all the scalar code of a default `x86-64` build (the
/// elementwise passes, the loss, the SGD update in `backprop-core`), then
/// runs several times slower until something clears the state. Measured on
/// the 2-core AMD EPYC (Zen 4, virtualised) this workspace was first
/// benchmarked on: a 1M-value f32 sigmoid pass took 20 ms after one faer
/// product and 5.5 ms with this call after it; the sequential L step went
/// from about 165 ms to about 120 ms, the M step from about 1.8 ms to about
/// 1.2 ms.
///
/// The elementwise passes call it too when they run on rayon's threads, which
/// have just run the kernels of a parallel product, and a step that may fork
/// ends by calling it on every thread of the pool: otherwise the next code to
/// run there (another backend's workers, say) pays the slowdown. Measured with
/// the rayon backend over naive workers on M (784-256-10, batch 128, f32)
/// right after a parallel faer step: 22.8 ms a step with the pool's threads
/// left dirty, 16.5 ms after clearing them.
#[inline]
pub(crate) fn clear_upper_state() {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: `vzeroupper` needs AVX and nothing else; the CPU has AVX,
        // detected just above.
        unsafe { vzeroupper() }
    }
}

/// Executes `vzeroupper`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
fn vzeroupper() {
    std::arch::x86_64::_mm256_zeroupper();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_of_a_column_block_in_any_number_of_blocks() {
        // Sizes on both sides of the 8-value tile, and a block of columns.
        // No columns at all, and no blocks (taken as one), are fine too.
        // Each way: values moved alone, times slopes, with column sums, both.
        // The values are not exact sums of one another, so a sum taken in
        // another order than the rows' would show in its bits.
        for (rows, stride, first, cols) in [
            (1, 1, 0, 1),
            (5, 7, 2, 4),
            (33, 40, 3, 35),
            (17, 16, 0, 16),
            (6, 5, 5, 0),
        ] {
            let src: Vec<f64> = (0..rows * stride).map(|i| 0.1 * i as f64 - 7.3).collect();
            let slope_values: Vec<f64> = (0..rows * stride).map(|i| 1.0 / (i + 3) as f64).collect();
            for (with_slopes, with_sums) in
                [(false, false), (true, false), (false, true), (true, true)]
            {
                for blocks in [0, 1, 2, 3, 64] {
                    let ld = transposed_stride(rows);
                    let mut dst = vec![f64::NAN; cols * ld + 3];
                    let mut sums = vec![f64::NAN; cols + 2];
                    let on_the_way = OnTheWay {
                        slopes: with_slopes.then_some(&slope_values[..]),
                        sums: with_sums.then_some(&mut sums[..cols]),
                    };
                    transpose(
                        &mut dst,
                        &src,
                        (rows, stride),
                        (first, cols),
                        blocks,
                        on_the_way,
                    );
                    let label = format!(
                        "{rows}x{stride} from {first}, slopes {with_slopes}, {blocks} blocks"
                    );
                    for c in 0..cols {
                        let mut sum = 0.0;
                        for r in 0..rows {
                            let at = r * stride + first + c;
                            let value = if with_slopes {
                                src[at] * slope_values[at]
                            } else {
                                src[at]
                            };
                            assert_eq!(
                                dst[c * ld + r].to_bits(),
                                value.to_bits(),
                                "{label}: ({r}, {c})"
                            );
                            sum += value;
                        }
                        if with_sums {
                            assert_eq!(sums[c].to_bits(), sum.to_bits(), "{label}: sum of {c}");
                        }
                    }
                    assert!(dst[cols * ld..].iter().all(|v| v.is_nan()), "{label}");
                    let untouched = if with_sums { &sums[cols..] } else { &sums[..] };
                    assert!(untouched.iter().all(|v| v.is_nan()), "{label}");
                    let view = transposed_view(&dst, rows, cols);
                    assert_eq!((view.nrows(), view.ncols()), (cols, rows));
                }
            }
        }
    }

    #[test]
    fn transposed_rows_are_padded_a_little_off_powers_of_two() {
        // The padding moves rows of power-of-two lengths out of one cache
        // set (a stride that is a multiple of 64 values is not), for at most
        // 16 values a row.
        for rows in [1, 64, 256, 1024, 4096] {
            let ld = transposed_stride(rows);
            assert!(ld > rows && ld <= rows + 16, "{rows}: {ld}");
            assert_ne!(ld % 64, 0, "{rows}: {ld}");
        }
    }

    #[test]
    fn row_blocks_compute_the_product_in_any_number_of_blocks() {
        // Blocks from none to more than the rows, on pools of 1 to 3
        // threads; every value against the one sequential product.
        let (m, k, n) = (23, 19, 13);
        let lhs: Vec<f64> = (0..m * k).map(|i| ((i * 7) % 11) as f64 - 5.0).collect();
        let rhs: Vec<f64> = (0..k * n).map(|i| ((i * 5) % 13) as f64 / 8.0).collect();
        let mut expected = vec![0.0; m * n];
        product(
            view_mut(&mut expected, m, n),
            view(&lhs, m, k),
            view(&rhs, k, n),
            Parallelism::Sequential,
        );
        for threads in 1..=3 {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            for blocks in [0, 1, 2, 3, 5, 8, m, m + 4] {
                let mut dst = vec![f64::NAN; m * n];
                pool.install(|| {
                    row_blocks(
                        view_mut(&mut dst, m, n),
                        view(&lhs, m, k),
                        view(&rhs, k, n),
                        blocks,
                    );
                });
                // Small integers and eighths: every sum is exact.
                assert_eq!(dst, expected, "{blocks} blocks on {threads} threads");
            }
        }
        let mut empty: Vec<f64> = Vec::new();
        row_blocks(
            view_mut(&mut empty, 0, n),
            view(&lhs[..0], 0, k),
            view(&rhs, k, n),
            4,
        );
    }
}
