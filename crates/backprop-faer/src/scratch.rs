//! The backend's reusable buffers: `Z^l` (then the slopes) and `A^l` per layer, two `delta` matrices, row losses.

use backprop_core::{Error, Scalar, resize_matrix};

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
    pub(crate) slopes: Vec<Vec<T>>,
    /// `a[l]` holds `A` of weight layer `l`; the input `A^0` is never copied.
    pub(crate) a: Vec<Vec<T>>,
    /// `delta` of the current layer, `B x` the widest layer.
    pub(crate) delta: Vec<T>,
    /// `delta` of the layer below, the same size; the two swap roles per layer.
    pub(crate) delta_below: Vec<T>,
    /// `delta^T` of the current layer, feature-major (`d_l x B`, rows
    /// padded: `gemm::transposed_stride`), for the weight gradient's product
    /// (see `gemm.rs`).
    pub(crate) delta_t: Vec<T>,
    /// A block of hidden units' `delta^1^T` for `FirstLayerSplit`; sized
    /// apart from the shape, grown when a larger block comes and never shrunk.
    pub(crate) block_t: Vec<T>,
    /// Each sample's share of the loss, summed in order once all are known.
    pub(crate) row_loss: Vec<T>,
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
        self.slopes.resize_with(layer_widths.len(), Vec::new);
        self.a.resize_with(layer_widths.len(), Vec::new);
        let mut widest = 0;
        for ((slopes, a), &cols) in self.slopes.iter_mut().zip(&mut self.a).zip(layer_widths) {
            resize_matrix(slopes, "faer scratch Z", rows, cols)?;
            resize_matrix(a, "faer scratch A", rows, cols)?;
            widest = widest.max(cols);
        }
        resize_matrix(&mut self.delta, "faer scratch delta", rows, widest)?;
        resize_matrix(&mut self.delta_below, "faer scratch delta", rows, widest)?;
        let stride = crate::gemm::transposed_stride(rows);
        resize_matrix(&mut self.delta_t, "faer scratch delta^T", widest, stride)?;
        resize_matrix(&mut self.row_loss, "faer scratch row losses", rows, 1)?;
        self.widths.extend_from_slice(widths);
        self.rows = rows;
        Ok(())
    }
}
