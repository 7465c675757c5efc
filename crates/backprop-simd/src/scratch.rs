//! The backend's reusable state: the plan of the architecture it last saw, and
//! the buffers of one step, samples in columns, sized once per shape.

use backprop_core::{Activation, AlignedBuffer, Architecture, Error, LayerShape, Loss, Scalar};

use crate::step::block_room_len;

/// What a step needs to know of the architecture, copied so that a fused SGD
/// step can hold the parameters mutably while it runs.
#[derive(Debug)]
pub(crate) struct Plan {
    /// The widths `d_0 .. d_L`.
    pub(crate) widths: Vec<usize>,
    /// Each weight layer's place in the flat buffer.
    pub(crate) shapes: Vec<LayerShape>,
    /// Each weight layer's activation.
    pub(crate) activations: Vec<Activation>,
    /// The loss.
    pub(crate) loss: Loss,
}

/// Every matrix of a step is `d x stride`: one row per unit, one column per
/// sample, `stride` the batch rounded up to whole vectors. The columns past
/// the batch (the padding) always hold finite values: the transposes write
/// zeros there, and the loss pass writes zero deltas.
#[derive(Debug, Default)]
pub(crate) struct Buffers<T> {
    /// The batch size.
    pub(crate) rows: usize,
    /// Columns per row: `rows` rounded up to whole vectors.
    pub(crate) stride: usize,
    /// Room for one depth block of one column panel of a product's `B`,
    /// formed just before the tiles read it: a block of `X^T` or of
    /// `A^{l-1}^T`, or of `X` copied (see `step::Operand`).
    pub(crate) block_room: AlignedBuffer<T>,
    /// The targets `Y^T`, `m x stride`.
    pub(crate) yt: AlignedBuffer<T>,
    /// `a[l]`: the activations of weight layer `l`, `d_{l+1} x stride`
    /// (pre-activations while their product is summed).
    pub(crate) a: Vec<AlignedBuffer<T>>,
    /// `slopes[l]`: `act'` of weight layer `l`, the same shape.
    pub(crate) slopes: Vec<AlignedBuffer<T>>,
    /// `delta` of the current layer, `widest x stride`.
    pub(crate) delta: AlignedBuffer<T>,
    /// `delta` of the layer below; the two swap roles per layer.
    pub(crate) below: AlignedBuffer<T>,
}

/// The plan and the buffers, for the last shape seen.
#[derive(Debug, Default)]
pub(crate) struct Scratch<T> {
    /// Empty before the first call.
    pub(crate) plan: Plan,
    /// Sized for `plan` and the last batch.
    pub(crate) buffers: Buffers<T>,
    /// A block of hidden units' `delta^1` with one row per unit (`units x
    /// rows`), as the rows of the first layer's weight gradient read it (see
    /// `step::first_weight_rows`); sized by each call, reusing its allocation.
    pub(crate) delta_block: AlignedBuffer<T>,
    /// The lanes the buffers were padded for.
    lanes: usize,
}

impl Default for Plan {
    fn default() -> Self {
        Plan {
            widths: Vec::new(),
            shapes: Vec::new(),
            activations: Vec::new(),
            loss: Loss::Mse,
        }
    }
}

impl<T: Scalar> Scratch<T> {
    /// Sizes everything for `architecture`, `rows` samples and vectors of
    /// `lanes` values. Does nothing when all three are those of the previous
    /// call, so that a step allocates nothing; otherwise resizes in place.
    /// Fails if a matrix does not fit in memory.
    pub(crate) fn fit(
        &mut self,
        architecture: &Architecture,
        rows: usize,
        lanes: usize,
    ) -> Result<(), Error> {
        let plan = &mut self.plan;
        let same_plan = plan.widths == architecture.widths()
            && plan.activations == architecture.activations()
            && plan.loss == architecture.loss();
        if same_plan && self.buffers.rows == rows && self.lanes == lanes {
            return Ok(());
        }
        // Forget the old shape first, so that a failure below leaves no stale match.
        plan.widths.clear();
        self.buffers.rows = 0;
        plan.shapes.clear();
        plan.shapes.extend_from_slice(architecture.layers());
        plan.activations.clear();
        plan.activations
            .extend_from_slice(architecture.activations());
        plan.loss = architecture.loss();

        let b = &mut self.buffers;
        let too_large = || Error::TooLarge {
            what: "simd scratch",
            rows,
            cols: lanes,
        };
        let stride = rows
            .checked_next_multiple_of(lanes.max(1))
            .ok_or_else(too_large)?;
        let widths = architecture.widths();
        let layers = &widths[1..];
        b.size_block_room()?;
        b.yt.resize("simd scratch Y^T", architecture.output_width(), stride)?;
        b.a.resize_with(layers.len(), AlignedBuffer::default);
        b.slopes.resize_with(layers.len(), AlignedBuffer::default);
        for ((a, slopes), &width) in b.a.iter_mut().zip(&mut b.slopes).zip(layers) {
            a.resize("simd scratch A", width, stride)?;
            slopes.resize("simd scratch slopes", width, stride)?;
        }
        let widest = layers.iter().copied().max().unwrap_or(1);
        b.delta.resize("simd scratch delta", widest, stride)?;
        b.below.resize("simd scratch delta", widest, stride)?;
        b.stride = stride;
        b.rows = rows;
        self.lanes = lanes;
        plan.widths.extend_from_slice(widths);
        Ok(())
    }
}

impl<T: Scalar> Buffers<T> {
    /// Sizes [`Buffers::block_room`] (32 KiB), reusing its allocation.
    pub(crate) fn size_block_room(&mut self) -> Result<(), Error> {
        let len = block_room_len::<T>();
        self.block_room.resize("simd scratch block", 1, len)
    }
}

impl<T> Buffers<T> {
    /// Whether the batch is a whole number of vectors: then the scratch has
    /// no padding, and a `d x stride` matrix of it is laid out as a
    /// `d x rows` one of the caller's.
    pub(crate) fn unpadded(&self) -> bool {
        self.rows == self.stride
    }
}

/// Copies `given` (`d x cols`, one row after the other) into `padded`, rows
/// `stride` apart, with zeros in the padding (which must hold finite values).
pub(crate) fn copy_padded<T: Scalar>(given: &[T], cols: usize, padded: &mut [T], stride: usize) {
    if cols == 0 {
        return;
    }
    for (row, out) in given
        .chunks_exact(cols)
        .zip(padded.chunks_exact_mut(stride))
    {
        out[..cols].copy_from_slice(row);
        out[cols..].fill(T::ZERO);
    }
}

/// Copies the first `rows` values of each row of `padded` (rows `stride`
/// apart) into `out`, one row after the other: a matrix of the scratch
/// without its padding (the reverse of [`copy_padded`]).
pub(crate) fn copy_unpadded<T: Copy>(padded: &[T], stride: usize, out: &mut [T], rows: usize) {
    if rows == 0 {
        return;
    }
    for (out, row) in out.chunks_exact_mut(rows).zip(padded.chunks(stride)) {
        out.copy_from_slice(&row[..rows]);
    }
}

#[cfg(test)]
mod tests {
    use backprop_core::{Activation, Architecture, CACHE_LINE, Loss};

    use super::Scratch;

    #[test]
    fn every_buffer_starts_on_a_cache_line_for_every_shape() {
        let mut scratch = Scratch::<f64>::default();
        for (widths, rows, lanes) in [
            (&[64, 32, 10][..], 64, 8),
            (&[3, 5, 7, 2], 9, 8),
            (&[17, 1], 1, 4),
            (&[64, 32, 10], 100, 16),
        ] {
            let activations = vec![Activation::Sigmoid; widths.len() - 1];
            let architecture = Architecture::new(widths, &activations, Loss::Mse).expect("valid");
            scratch.fit(&architecture, rows, lanes).expect("fits");
            let b = &scratch.buffers;
            let stride = rows.next_multiple_of(lanes);
            assert_eq!(b.stride, stride);
            assert_eq!(b.block_room.len(), (32 << 10) / 8);
            let mut all = vec![&b.block_room[..], &b.yt, &b.delta, &b.below];
            all.extend(b.a.iter().chain(&b.slopes).map(|m| &m[..]));
            for matrix in all {
                assert_eq!(
                    matrix.as_ptr() as usize % CACHE_LINE,
                    0,
                    "{widths:?} {rows}"
                );
            }
        }
    }
}
