//! The backend's reusable buffers: `Z^l` (then the slopes) and `A^l` per layer, two `delta` matrices, row losses.

use backprop_core::{AlignedBuffer, Error, Scalar};

/// Row-major `B x d_l` matrices for one shape `(widths, rows)`, kept between calls.
///
/// Every region a step reads has been written earlier in the same step, so the
/// values left over from a previous call (or a previous shape) are never used.
#[derive(Debug, Default)]
pub(crate) struct Scratch<T> {
    /// The widths the buffers are sized for (empty before the first call).
    widths: Vec<usize>,
    /// The batch size the buffers are sized for.
    rows: usize,
    /// `slopes[l]`, `B x d_{l+1}`, first receives `Z` of weight layer `l`
    /// (0-based) from the product; the activation pass of a gradient call
    /// then overwrites it with the slopes `act'(Z)` the backward pass
    /// multiplies by (an identity layer's slopes are all 1 and never read),
    /// so keeping them costs no memory beyond `Z`'s.
    pub(crate) slopes: Vec<AlignedBuffer<T>>,
    /// `a[l]` holds `A` of weight layer `l`; the input `A^0` is never copied.
    pub(crate) a: Vec<AlignedBuffer<T>>,
    /// `delta` of the current layer, `B x` the widest layer.
    pub(crate) delta: AlignedBuffer<T>,
    /// `delta` of the layer below, the same size; the two swap roles per layer.
    pub(crate) delta_below: AlignedBuffer<T>,
    /// `delta^T` of the current layer, feature-major (`d_l x B`, rows
    /// padded: `gemm::transposed_stride`), for the weight gradient's product
    /// (see `gemm.rs`).
    pub(crate) delta_t: AlignedBuffer<T>,
    /// A block of hidden units' `delta^1^T` for `FirstLayerSplit`; sized
    /// apart from the shape, grown when a larger block comes and never shrunk.
    pub(crate) block_t: AlignedBuffer<T>,
    /// Each sample's share of the loss, summed in order once all are known.
    pub(crate) row_loss: AlignedBuffer<T>,
}

impl<T: Scalar> Scratch<T> {
    /// Sizes the buffers for `widths` and `rows` samples.
    ///
    /// Does nothing when the shape is the one of the previous call, so that a
    /// step allocates nothing; otherwise resizes in place, reusing capacity
    /// when the shape shrinks. Fails if a `rows x d_l` matrix does not fit
    /// in memory.
    pub(crate) fn fit(&mut self, widths: &[usize], rows: usize) -> Result<(), Error> {
        if self.rows == rows && self.widths == widths {
            return Ok(());
        }
        // Forget the old shape first, so a failure below leaves no stale match.
        self.widths.clear();
        let layer_widths = widths.get(1..).unwrap_or_default();
        self.slopes
            .resize_with(layer_widths.len(), AlignedBuffer::default);
        self.a
            .resize_with(layer_widths.len(), AlignedBuffer::default);
        let mut widest = 0;
        for ((slopes, a), &cols) in self.slopes.iter_mut().zip(&mut self.a).zip(layer_widths) {
            slopes.resize("faer scratch Z", rows, cols)?;
            a.resize("faer scratch A", rows, cols)?;
            widest = widest.max(cols);
        }
        self.delta.resize("faer scratch delta", rows, widest)?;
        self.delta_below
            .resize("faer scratch delta", rows, widest)?;
        let stride = crate::gemm::transposed_stride(rows);
        self.delta_t
            .resize("faer scratch delta^T", widest, stride)?;
        self.row_loss.resize("faer scratch row losses", rows, 1)?;
        self.widths.extend_from_slice(widths);
        self.rows = rows;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use backprop_core::CACHE_LINE;

    use super::Scratch;

    #[test]
    fn every_buffer_starts_on_a_cache_line_for_every_shape() {
        let mut scratch = Scratch::<f32>::default();
        for (widths, rows) in [(&[64, 32, 10][..], 64), (&[3, 5, 7, 2], 9), (&[17, 1], 1)] {
            scratch.fit(widths, rows).expect("fits");
            let s = &scratch;
            let mut all = vec![&s.delta[..], &s.delta_below, &s.delta_t, &s.row_loss];
            all.extend(s.a.iter().chain(&s.slopes).map(|m| &m[..]));
            for matrix in all {
                assert_eq!(
                    matrix.as_ptr() as usize % CACHE_LINE,
                    0,
                    "{widths:?} {rows}"
                );
            }
            assert_eq!(s.a.len(), widths.len() - 1);
            assert_eq!(s.delta.len(), rows * widths[1..].iter().max().unwrap());
        }
    }
}
