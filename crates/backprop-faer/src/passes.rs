//! The fused elementwise passes between the products, on the calling thread
//! or split into blocks of rows over rayon's pool.
//!
//! Each pass computes every value exactly as the naive backend does (the same
//! core functions, the same order of operations), so the way it is split
//! changes no bit of the result.

use backprop_core::{Activation, Architecture, Loss, Scalar, widest_vectors};
use rayon::prelude::*;

use crate::gemm::clear_upper_state;

/// The length of one block when `values` (rows of `width`) are split `blocks` ways.
fn block_len(values: usize, width: usize, blocks: usize) -> usize {
    let width = width.max(1);
    (values / width).div_ceil(blocks.max(1)).max(1) * width
}

/// What the activation pass leaves in the `Z` buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeepSlopes {
    /// The slopes `act'(Z + 1 b^T)`, for the backward pass of a gradient call.
    Yes,
    /// Nothing needed: a forward pass alone.
    No,
}

/// `A = act(Z + 1 b^T)` over a `rows x bias.len()` matrix, in `blocks`
/// blocks, with the slopes `act'` written over `Z` if `keep` says so.
pub(crate) fn bias_and_activation<T: Scalar>(
    z: &mut [T],
    a: &mut [T],
    bias: &[T],
    (activation, keep): (Activation, KeepSlopes),
    blocks: usize,
) {
    let run = |z: &mut [T], a: &mut [T]| match keep {
        KeepSlopes::Yes => add_bias_and_activate_keeping_slopes(z, a, bias, activation),
        KeepSlopes::No => add_bias_and_activate(z, a, bias, activation),
    };
    if blocks <= 1 {
        run(z, a);
    } else {
        let len = block_len(z.len(), bias.len(), blocks);
        z.par_chunks_mut(len)
            .zip(a.par_chunks_mut(len))
            .for_each(|(z, a)| {
                clear_upper_state();
                run(z, a);
            });
    }
}

/// `delta (.)= slopes` elementwise over rows of `width`, in `blocks` blocks;
/// nothing for an identity layer, whose slopes are all 1.
pub(crate) fn times_slopes<T: Scalar>(
    delta: &mut [T],
    slopes: &[T],
    activation: Activation,
    width: usize,
    blocks: usize,
) {
    if activation == Activation::Identity {
        return;
    }
    if blocks <= 1 {
        multiply_by_slopes(delta, slopes);
    } else {
        let len = block_len(delta.len(), width, blocks);
        delta
            .par_chunks_mut(len)
            .zip(slopes.par_chunks(len))
            .for_each(|(delta, slopes)| {
                clear_upper_state();
                multiply_by_slopes(delta, slopes);
            });
    }
}

/// Writes each row's share of the loss into `row_loss` and its
/// `delta^L = dJ/dZ^L` (the `1/B` included) into `delta`, in `blocks`
/// blocks; returns the sum of the shares, taken over the rows in order.
///
/// `a` and `slopes` are the output layer's (the slopes as the activation
/// pass kept them), `y` the targets, all `B x m`.
pub(crate) fn loss_and_output_delta<T: Scalar>(
    architecture: &Architecture,
    a: &[T],
    slopes: &[T],
    y: &[T],
    row_loss: &mut [T],
    delta: &mut [T],
    blocks: usize,
) -> T {
    let loss = architecture.loss();
    let activations = architecture.activations();
    let activation = activations[activations.len() - 1];
    let width = architecture.output_width();
    let rows = row_loss.len();
    let inverse_batch = T::ONE / T::from_usize(rows);
    let run = |a: &[T], slopes: &[T], y: &[T], row_loss: &mut [T], delta: &mut [T]| {
        let slopes = (activation != Activation::Identity).then_some(slopes);
        rows_loss_and_delta(a, y, slopes, row_loss, delta, (loss, inverse_batch));
    };
    if blocks <= 1 {
        run(a, slopes, y, row_loss, delta);
    } else {
        let len = block_len(delta.len(), width, blocks);
        let block_rows = len / width.max(1);
        a.par_chunks(len)
            .zip(slopes.par_chunks(len))
            .zip(y.par_chunks(len))
            .zip(row_loss.par_chunks_mut(block_rows))
            .zip(delta.par_chunks_mut(len))
            .for_each(|((((a, slopes), y), row_loss), delta)| {
                clear_upper_state();
                run(a, slopes, y, row_loss, delta);
            });
    }
    row_loss.iter().fold(T::ZERO, |sum, &share| sum + share)
}

/// `sums = 1^T delta`: the column sums of a `rows x sums.len()` matrix, row by row.
pub(crate) fn column_sums<T: Scalar>(delta: &[T], sums: &mut [T]) {
    sums.fill(T::ZERO);
    for row in delta.chunks_exact(sums.len()) {
        for (sum, &d) in sums.iter_mut().zip(row) {
            *sum += d;
        }
    }
}

widest_vectors! {
    /// `dst = src`, or `src (.) slopes` with slopes, and `sums = 1^T dst`
    /// (summed row by row, as [`column_sums`] sums): a layer's `delta` taken
    /// out of the scratch in one pass.
    pub(crate) fn copy_and_column_sums<T: Scalar>(dst: &mut [T], src: &[T], slopes: Option<&[T]>, sums: &mut [T]) {
        sums.fill(T::ZERO);
        let width = sums.len();
        let rows = dst.chunks_exact_mut(width).zip(src.chunks_exact(width)).enumerate();
        for (r, (dst, src)) in rows {
            match slopes {
                Some(slopes) => {
                    let slopes = &slopes[r * width..(r + 1) * width];
                    for (((d, &v), &slope), sum) in dst.iter_mut().zip(src).zip(slopes).zip(&mut *sums) {
                        *d = v * slope;
                        *sum += *d;
                    }
                }
                None => {
                    for ((d, &v), sum) in dst.iter_mut().zip(src).zip(&mut *sums) {
                        *d = v;
                        *sum += v;
                    }
                }
            }
        }
    }
}

widest_vectors! {
    /// `A = act(Z + 1 b^T)` over whole rows, one loop per activation so that
    /// each sees a fixed function.
    fn add_bias_and_activate<T: Scalar>(z: &[T], a: &mut [T], bias: &[T], activation: Activation) {
        #[inline(always)]
        fn pass<T: Scalar>(z: &[T], a: &mut [T], bias: &[T], act: impl Fn(T) -> T) {
            let width = bias.len();
            for (z, a) in z.chunks_exact(width).zip(a.chunks_exact_mut(width)) {
                for ((&z, a), &b) in z.iter().zip(a).zip(bias) {
                    *a = act(z + b);
                }
            }
        }
        match activation {
            Activation::Sigmoid => pass(z, a, bias, |v| Activation::Sigmoid.value(v)),
            Activation::Tanh => pass(z, a, bias, |v| Activation::Tanh.value(v)),
            Activation::Relu => pass(z, a, bias, |v| Activation::Relu.value(v)),
            Activation::Identity => pass(z, a, bias, |v| v),
        }
    }
}

widest_vectors! {
    /// [`add_bias_and_activate`], also writing the slopes `act'(Z + 1 b^T)`
    /// over `Z` (left as it is for an identity layer).
    fn add_bias_and_activate_keeping_slopes<T: Scalar>(
        z: &mut [T],
        a: &mut [T],
        bias: &[T],
        activation: Activation,
    ) {
        #[inline(always)]
        fn pass<T: Scalar>(z: &mut [T], a: &mut [T], bias: &[T], act: impl Fn(T) -> (T, T)) {
            let width = bias.len();
            for (z, a) in z.chunks_exact_mut(width).zip(a.chunks_exact_mut(width)) {
                for ((z, a), &b) in z.iter_mut().zip(a).zip(bias) {
                    (*a, *z) = act(*z + b);
                }
            }
        }
        match activation {
            Activation::Sigmoid => pass(z, a, bias, |v| Activation::Sigmoid.value_and_slope(v)),
            Activation::Tanh => pass(z, a, bias, |v| Activation::Tanh.value_and_slope(v)),
            Activation::Relu => pass(z, a, bias, |v| Activation::Relu.value_and_slope(v)),
            Activation::Identity => add_bias_and_activate(z, a, bias, activation),
        }
    }
}

widest_vectors! {
    /// `delta (.)= slopes`.
    fn multiply_by_slopes<T: Scalar>(delta: &mut [T], slopes: &[T]) {
        for (d, &slope) in delta.iter_mut().zip(slopes) {
            *d *= slope;
        }
    }
}

widest_vectors! {
    /// Each row's share of the loss and its `dJ/dA^L`, times the row's
    /// slopes if there are slopes (then `dJ/dZ^L`), row by row: the row is
    /// still in cache when it is multiplied.
    fn rows_loss_and_delta<T: Scalar>(
        a: &[T],
        y: &[T],
        slopes: Option<&[T]>,
        row_loss: &mut [T],
        delta: &mut [T],
        loss_and_scale: (Loss, T),
    ) {
        let (loss, inverse_batch) = loss_and_scale;
        let width = delta.len() / row_loss.len().max(1);
        let rows = a
            .chunks_exact(width)
            .zip(y.chunks_exact(width))
            .zip(row_loss.iter_mut())
            .zip(delta.chunks_exact_mut(width))
            .enumerate();
        for (r, (((a, y), share), delta)) in rows {
            // The rows are whole chunks of one width, so the lengths agree.
            *share = loss.sample_value(a, y).unwrap_or(T::from_f64(f64::NAN));
            let _ = loss.output_gradient(a, y, inverse_batch, delta);
            if let Some(slopes) = slopes {
                let slopes = &slopes[r * width..(r + 1) * width];
                for (d, &slope) in delta.iter_mut().zip(slopes) {
                    *d *= slope;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use backprop_core::{Activation, Architecture, Loss};

    use super::{
        KeepSlopes, bias_and_activation, column_sums, copy_and_column_sums, loss_and_output_delta,
        times_slopes,
    };

    /// Values in `[-2, 2)` from a seeded sequence.
    fn values(count: usize, seed: usize) -> Vec<f64> {
        (0..count)
            .map(|i| ((i * 7919 + seed * 104_729) % 1000) as f64 / 250.0 - 2.0)
            .collect()
    }

    #[test]
    fn every_pass_gives_the_same_bits_in_any_number_of_blocks() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .expect("a pool");
        let (rows, width) = (11, 6);
        for loss in Loss::ALL {
            let output = match loss {
                Loss::Mse => Activation::Tanh,
                Loss::SoftmaxCrossEntropy => Activation::Identity,
            };
            let architecture =
                Architecture::with_hidden_and_output(&[3, width], output, output, loss)
                    .expect("a valid architecture");
            let run = |blocks: usize| {
                let (mut z, mut a) = (values(rows * width, 1), vec![0.0; rows * width]);
                let bias = values(width, 2);
                bias_and_activation(&mut z, &mut a, &bias, (output, KeepSlopes::Yes), blocks);
                // A forward pass alone gives the same activations.
                let (mut z_alone, mut a_alone) = (values(rows * width, 1), vec![0.0; rows * width]);
                let keep = (output, KeepSlopes::No);
                bias_and_activation(&mut z_alone, &mut a_alone, &bias, keep, blocks);
                assert_eq!(a_alone, a, "A of a forward pass alone in {blocks} blocks");
                let y = values(rows * width, 3);
                let (mut row_loss, mut delta) = (vec![0.0; rows], vec![0.0; rows * width]);
                let total = loss_and_output_delta(
                    &architecture,
                    &a,
                    &z,
                    &y,
                    &mut row_loss,
                    &mut delta,
                    blocks,
                );
                times_slopes(&mut delta, &z, Activation::Sigmoid, width, blocks);
                (z, a, row_loss, delta, total)
            };
            let one = run(1);
            for blocks in [2, 3, 4, 11, 12] {
                let split = pool.install(|| run(blocks));
                assert_eq!(split.0, one.0, "slopes in {blocks} blocks");
                assert_eq!(split.1, one.1, "A in {blocks} blocks");
                assert_eq!(split.2, one.2, "row losses in {blocks} blocks");
                assert_eq!(split.3, one.3, "deltas in {blocks} blocks");
                assert_eq!(
                    split.4.to_bits(),
                    one.4.to_bits(),
                    "loss in {blocks} blocks"
                );
            }
        }
    }

    #[test]
    fn a_copy_with_its_sums_is_the_passes_it_replaces() {
        // `copy_and_column_sums` against `times_slopes` and then
        // `column_sums`, bit for bit, with and without slopes; widths on
        // both sides of a vector, values that round differently in another order.
        for (rows, width) in [(1, 1), (7, 3), (5, 17), (3, 40)] {
            let src = values(rows * width, 4);
            let slopes = values(rows * width, 5);
            for with_slopes in [false, true] {
                let mut expected = src.clone();
                if with_slopes {
                    times_slopes(&mut expected, &slopes, Activation::Sigmoid, width, 1);
                }
                let mut expected_sums = vec![f64::NAN; width];
                column_sums(&expected, &mut expected_sums);
                let (mut copy, mut sums) = (vec![f64::NAN; rows * width], vec![f64::NAN; width]);
                let slopes = with_slopes.then_some(&slopes[..]);
                copy_and_column_sums(&mut copy, &src, slopes, &mut sums);
                let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(
                    bits(&copy),
                    bits(&expected),
                    "{rows} x {width}, {with_slopes}"
                );
                assert_eq!(
                    bits(&sums),
                    bits(&expected_sums),
                    "{rows} x {width}, {with_slopes}"
                );
            }
        }
    }

    #[test]
    fn the_output_delta_is_the_losss_gradient_times_the_slopes() {
        // Against the core's own per-sample functions, row by row, bit for
        // bit: the slopes applied for a squashing output layer, not for an
        // identity one.
        let (rows, width) = (7, 5);
        for (output, loss) in [
            (Activation::Sigmoid, Loss::Mse),
            (Activation::Identity, Loss::SoftmaxCrossEntropy),
            (Activation::Identity, Loss::Mse),
        ] {
            let architecture =
                Architecture::with_hidden_and_output(&[3, width], output, output, loss)
                    .expect("a valid architecture");
            let (a, slopes, y) = (
                values(rows * width, 6),
                values(rows * width, 7),
                values(rows * width, 8),
            );
            let (mut row_loss, mut delta) = (vec![0.0; rows], vec![f64::NAN; rows * width]);
            let total =
                loss_and_output_delta(&architecture, &a, &slopes, &y, &mut row_loss, &mut delta, 1);
            let inverse_batch = 1.0 / rows as f64;
            let mut expected = vec![0.0; rows * width];
            let mut expected_total = 0.0;
            for r in 0..rows {
                let at = r * width..(r + 1) * width;
                loss.output_gradient(
                    &a[at.clone()],
                    &y[at.clone()],
                    inverse_batch,
                    &mut expected[at.clone()],
                )
                .expect("rows of the output width");
                if output != Activation::Identity {
                    for (d, &s) in expected[at.clone()].iter_mut().zip(&slopes[at.clone()]) {
                        *d *= s;
                    }
                }
                expected_total += loss.sample_value(&a[at.clone()], &y[at]).expect("a row");
            }
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&delta), bits(&expected), "{output} {loss}");
            assert_eq!(total.to_bits(), expected_total.to_bits(), "{output} {loss}");
        }
    }
}
