//! The step: forward, loss, backward and the fused update, as products cut
//! into register tiles with their epilogues, over any instruction set's kernels.

use std::ops::Range;

use backprop_core::{Activation, AlignedBuffer, DeltaLayout};

use crate::kernels::{Kernels, LossInputs, TileSpec};
use crate::lanes::Math;
use crate::scratch::{Buffers, Plan, copy_unpadded};

/// Bytes of the vectors of `B` one tile reads over the steps of one depth
/// block: the block is cut so that they stay in the level-1 cache (48 KiB
/// on the measured machine) beside the rows of `A` and the tile of `C`.
///
/// Measured in isolation (f32, AVX-512, the minimum of 30 interleaved
/// runs): the first layer's forward product of M (784-256-10, batch 128),
/// when it read `X^T` in rows 512 bytes apart, ran about 8% faster with
/// blocks of 64 steps than of 128; the products whose steps read contiguous
/// or unevenly spaced vectors ran as fast with 128 as with 256. `X^T` is
/// now transposed one block at a time ([`Operand::Transposed`]), so that
/// product reads blocks of 128 contiguous steps.
const PANEL_BYTES: usize = 32 << 10;

/// Values of the room [`Operand::Transposed`] and [`Operand::Copied`] need:
/// one depth block of one column panel, at most [`PANEL_BYTES`], since no
/// path's panel is wide enough (`NR_MAX x LANES`) for the block's floor of
/// 16 steps to exceed it (a test checks every path).
pub(crate) fn block_room_len<T>() -> usize {
    PANEL_BYTES / size_of::<T>()
}

/// A product `C = A B` as [`TileSpec`] describes its tiles, over `rows x cols`
/// values of `C` and `depth` steps.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Product {
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    pub(crate) depth: usize,
    pub(crate) a_row: usize,
    pub(crate) a_step: usize,
    pub(crate) c_row: usize,
}

/// The `B` of a product.
#[derive(Debug)]
pub(crate) enum Operand<'a, T> {
    /// Read where it lies, its steps `step` values apart.
    InPlace { b: &'a [T], step: usize },
    /// The transpose of `x` (`rows x depth` values, rows `stride` apart:
    /// the product's columns are the rows of `x`, and zero past `rows`),
    /// formed in `room` (at least [`block_room_len`] values) one depth
    /// block of one column panel at a time, just before that block's tiles
    /// read it: so the transpose is never stored whole, and the tiles find
    /// each block in the first-level cache, its steps one after the other.
    Transposed {
        x: &'a [T],
        rows: usize,
        stride: usize,
        room: &'a mut [T],
    },
    /// `B` as [`Operand::InPlace`] would read it, steps `step` values
    /// apart, copied into `room` (at least [`block_room_len`] values)
    /// one depth block of one column panel at a time, just before that
    /// block's tiles read it, its steps one after the other.
    Copied {
        b: &'a [T],
        step: usize,
        room: &'a mut [T],
    },
}

/// The rows of `x` (`rows x n`, row-major) as the `B` of a product that
/// reads them in place, one step per row: copied a block at a time into
/// `room` ([`Operand::Copied`]) when there is room and `x` is larger than a
/// depth block may hold ([`PANEL_BYTES`]), read where they lie otherwise.
///
/// Measured with throwaway switches inside one process (f32, AVX-512,
/// medians of 100-150 alternations of 21 steps each way): copying, the
/// `rayon-simd` step cut by hidden units on M at batch 128 took 0.994 (the
/// machine in its fast spell) to 0.936 (slow spell) times as long, one
/// `simd` thread on M 0.905-0.938, the batch split at 256 and 1024 rows
/// 0.950-0.972 (784 inputs) and 0.951-0.967 (256 inputs); on S
/// (64-32-10, batch 64, an `x` of 16 KiB) 1.052-1.056, hence the size rule.
fn rows_operand<'a, T>(x: &'a [T], n: usize, room: Option<&'a mut [T]>) -> Operand<'a, T> {
    match room {
        Some(room) if size_of_val(x) > PANEL_BYTES => Operand::Copied {
            b: x,
            step: n,
            room,
        },
        _ => Operand::InPlace { b: x, step: n },
    }
}

/// Rows a product needs before [`spaced_operand`] copies its `B`: the copy
/// is shared by every row tile of a column panel, and over a 10-unit output
/// layer it cost more than the longer blocks saved.
const SPACED_COPY_MIN_ROWS: usize = 32;

/// `b`, its steps `step` values apart (a matrix of activations or deltas,
/// one row per unit, a batch of samples wide), as the `B` of a product of
/// `rows x depth` on `K`'s tiles: copied a block at a time into `room`
/// ([`Operand::Copied`]) when its steps are [`strided`] for `K`'s widest
/// column panel and so far apart that a depth block read in place would
/// hold fewer than `depth` of them, and the product has
/// [`SPACED_COPY_MIN_ROWS`] rows to share the copy; read where it lies
/// otherwise.
///
/// The tiles sum each depth block from zero and add it to the stored
/// partial sum, so the copy's longer blocks round differently: the bits
/// differ from the in-place ones, as any change of block would, and stay
/// the same from run to run.
///
/// In place, a batch of 1024 `f32` samples (steps 4 KiB apart, every one
/// in the same first-level cache set) gave depth blocks of 16 steps, whose
/// tiles ran far from the FMA units' rate. Measured with a throwaway switch
/// inside one process (AVX2, AMD EPYC of the Zen 2 family, medians of
/// interleaved rounds, `f32`), one `simd` step with the copy over one
/// without: 64-128-128-128-10 at batch 1024 0.72x, 256-256-256 at 1024
/// 0.75x and at 256 0.93x, 256-32-256 at 1024 0.89x, `rayon-simd` on
/// 256-256-256 at 1024 0.80x; 784-256-10 at 128 and 64-32-10 at 1024
/// unchanged once the rows rule kept the copy off their output layers
/// (1.005x and 1.023x with it there).
fn spaced_operand<'a, T: Math, K: Kernels<T>>(
    b: &'a [T],
    step: usize,
    (rows, depth): (usize, usize),
    room: &'a mut [T],
) -> Operand<'a, T> {
    let span = step * size_of::<T>();
    let short = strided::<T>(step, K::NR_MAX * K::LANES) && (PANEL_BYTES / span).max(16) < depth;
    if short && rows >= SPACED_COPY_MIN_ROWS {
        Operand::Copied { b, step, room }
    } else {
        Operand::InPlace { b, step }
    }
}

/// The column panels of a product `cols` values wide, in vectors: up to
/// `NR_MAX` each, their sizes balanced to differ by at most one.
pub(crate) fn panels<T: Math, K: Kernels<T>>(cols: usize) -> impl Iterator<Item = Range<usize>> {
    let vecs = cols.div_ceil(K::LANES);
    let count = vecs.div_ceil(K::NR_MAX);
    (0..count).map(move |panel| panel * vecs / count..(panel + 1) * vecs / count)
}

/// Whether the steps of a product's `B`, `width` values each and `b_step`
/// values apart, are strided: a multiple of 256 bytes apart, so that the
/// rows of a panel fall into a fraction of the first-level cache's sets.
fn strided<T>(b_step: usize, width: usize) -> bool {
    (b_step * size_of::<T>()).is_multiple_of(256) && b_step > width
}

/// Runs the product `p` tile by tile: column panels of up to `NR_MAX`
/// vectors, each cut into depth blocks and row tiles of up to `mr_max` rows
/// (sizes balanced to differ by at most one); calls `epilogue(c, rows, cols)`
/// on each tile once its sum is complete, while it is still in cache.
pub(crate) fn broadcast_product<T: Math, K: Kernels<T>>(
    k: K,
    p: Product,
    a: &[T],
    mut b: Operand<'_, T>,
    c: &mut [T],
    mut epilogue: impl FnMut(&mut [T], Range<usize>, Range<usize>),
) {
    if p.rows == 0 || p.cols == 0 || p.depth == 0 {
        return;
    }
    let l = K::LANES;
    let vecs = p.cols.div_ceil(l);
    let last = p.cols - (vecs - 1) * l;
    for Range { start: v0, end: v1 } in panels::<T, K>(p.cols) {
        let nr = v1 - v0;
        let ends_row = v1 == vecs;
        let partial = ends_row && last < l;
        let tiles = p.rows.div_ceil(K::mr_max(nr));
        let (first, width) = (v0 * l, nr * l);
        let b_step = match b {
            Operand::InPlace { step, .. } => step,
            Operand::Transposed { .. } | Operand::Copied { .. } => width,
        };
        // The block is sized by the whole span of a step when its rows fall
        // into a fraction of the cache's sets.
        let span = if strided::<T>(b_step, width) {
            b_step
        } else {
            width
        };
        let block = (PANEL_BYTES / (span * size_of::<T>())).max(16);
        let cols = first..(v1 * l).min(p.cols);
        let mut d0 = 0;
        while d0 < p.depth {
            let d1 = (d0 + block).min(p.depth);
            let b = match &mut b {
                Operand::InPlace { b, .. } => &b[first + d0 * b_step..],
                Operand::Transposed {
                    x,
                    rows,
                    stride,
                    room,
                } => {
                    let valid = rows.saturating_sub(first).min(width);
                    let x = x.get(first * *stride + d0..).unwrap_or_default();
                    k.transpose(x, (valid, d1 - d0, *stride), room, width, width);
                    &room[..]
                }
                Operand::Copied { b, step, room } => {
                    let valid = (p.cols - first).min(width);
                    let steps = b.get(first + d0 * *step..).unwrap_or_default();
                    for (to, from) in room
                        .chunks_exact_mut(width)
                        .zip(steps.chunks(*step))
                        .take(d1 - d0)
                    {
                        to[..valid].copy_from_slice(&from[..valid]);
                    }
                    &room[..]
                }
            };
            let spec = TileSpec {
                depth: d1 - d0,
                a_row: p.a_row,
                a_step: p.a_step,
                b_step,
                c_row: p.c_row,
                last: if ends_row { last } else { l },
                accumulate: d0 > 0,
            };
            for t in 0..tiles {
                let (r0, r1) = (t * p.rows / tiles, (t + 1) * p.rows / tiles);
                k.tile(
                    (r1 - r0, nr, partial),
                    &a[r0 * p.a_row + d0 * p.a_step..],
                    b,
                    &mut c[r0 * p.c_row + first..],
                    &spec,
                );
                if d1 == p.depth {
                    epilogue(c, r0..r1, cols.clone());
                }
            }
            d0 = d1;
        }
    }
}

/// The parameters as a step sees them: read only, or read with the SGD
/// update `theta + step * gradient` written into another buffer as the
/// gradient of each layer is complete.
#[derive(Debug)]
pub(crate) enum Weights<'a, T> {
    /// The gradient only.
    Read(&'a [T]),
    /// A fused SGD step with `step = -eta`, the updated values written into
    /// `updated` (the network's spare buffer, lent by `SgdTask::run_fused`,
    /// which checks them before they become the parameters).
    Update {
        /// Every parameter, in the flat layout.
        params: &'a [T],
        /// Room for every updated parameter, in the same layout.
        updated: &'a mut [T],
        /// `-eta`.
        step: T,
    },
}

impl<T: Math> Weights<'_, T> {
    /// The current values.
    fn values(&self) -> &[T] {
        match self {
            Weights::Read(values) | Weights::Update { params: values, .. } => values,
        }
    }

    /// Writes `theta + step * grad` for a region of the parameters starting
    /// at `offset` (rows `stride` apart), when this is an SGD step.
    fn update<K: Kernels<T>>(
        &mut self,
        k: K,
        (offset, stride): (usize, usize),
        grad: &[T],
        region: (Range<usize>, Range<usize>),
    ) {
        if let Weights::Update {
            params,
            updated,
            step,
        } = self
        {
            k.update(
                &mut updated[offset..],
                &params[offset..],
                grad,
                stride,
                region,
                *step,
            );
        }
    }
}

/// How a gradient step treats the first layer.
#[derive(Debug)]
pub(crate) enum First<'a, T> {
    /// Its forward pass from the inputs, and its whole weight gradient.
    Whole,
    /// Its forward pass from the inputs; `delta^1` (`rows x d_1`, row-major)
    /// written here instead of its weight gradient.
    DeltaOut(&'a mut [T]),
    /// Its activations and slopes given: in the buffers
    /// ([`first_layer_units`] or a copy) when `None`, else read where they
    /// lie; `delta^1` written here in their layout (`d_1 x rows`, one
    /// hidden unit per row).
    Given(&'a mut [T], Option<FirstLayerValues<'a, T>>),
}

/// What becomes of a step's `delta^1`.
enum FirstDelta<'a, T> {
    /// The first layer's weight gradient is formed from it.
    Used,
    /// Written into the caller's buffer in this layout.
    Out(&'a mut [T], DeltaLayout),
    /// Formed in the caller's buffer already, by unit.
    Formed,
}

/// The first layer's activations and slopes as another kernel formed them,
/// each `d_1 x stride` (the batch a whole number of vectors, so no padding).
#[derive(Clone, Copy, Debug)]
pub(crate) struct FirstLayerValues<'a, T> {
    pub(crate) activations: &'a [T],
    pub(crate) slopes: &'a [T],
}

/// Layer `l`'s activations and slopes: the given first layer's, or the buffers'.
fn layer_values<'b, T>(
    (a, slopes): (&'b [AlignedBuffer<T>], &'b [AlignedBuffer<T>]),
    given: Option<FirstLayerValues<'b, T>>,
    l: usize,
) -> (&'b [T], &'b [T]) {
    match given {
        Some(values) if l == 0 => (values.activations, values.slopes),
        _ => (&a[l], &slopes[l]),
    }
}

/// The forward pass of `rows` samples `x` (`rows x n`, row-major): leaves
/// every layer's activations (and, with `slopes`, `act'`) in the buffers.
pub(crate) fn forward<T: Math, K: Kernels<T>>(
    k: K,
    plan: &Plan,
    buffers: &mut Buffers<T>,
    params: &[T],
    x: &[T],
    slopes: bool,
) {
    let hidden = plan.shapes[0].outputs;
    let out = FirstOut::Scratch { slopes };
    first_layer_units(k, plan, buffers, params, x, 0..hidden, out);
    forward_above_first(k, plan, buffers, params, None, slopes);
}

/// Where a block of hidden units' first-layer activations goes.
#[derive(Debug)]
pub(crate) enum FirstOut<'a, T> {
    /// The buffers, with the slopes `act'` too if `slopes`.
    Scratch { slopes: bool },
    /// The caller's activations and slopes (each `units.len() x stride`).
    Into(&'a mut [T], &'a mut [T]),
}

/// The rows `units` of the first layer's activations of the samples `x`
/// (`rows x n`, row-major), with or without their slopes, where `out` says.
pub(crate) fn first_layer_units<T: Math, K: Kernels<T>>(
    k: K,
    plan: &Plan,
    buffers: &mut Buffers<T>,
    params: &[T],
    x: &[T],
    units: Range<usize>,
    out: FirstOut<'_, T>,
) {
    let (rows, stride) = (buffers.rows, buffers.stride);
    let first = units.start * stride;
    let (out, slope) = match out {
        FirstOut::Into(out, slope) => (out, Some(slope)),
        FirstOut::Scratch { slopes } => (
            &mut buffers.a[0][first..],
            slopes.then_some(&mut buffers.slopes[0][first..]),
        ),
    };
    let room = &mut buffers.block_room;
    let n = plan.widths[0];
    let input = Operand::Transposed {
        x,
        rows,
        stride: n,
        room,
    };
    layer_forward(k, plan, 0, params, (input, stride), units, out, slope);
}

/// The layers above the first, from the first layer's activations in the
/// buffers or `given`.
fn forward_above_first<T: Math, K: Kernels<T>>(
    k: K,
    plan: &Plan,
    buffers: &mut Buffers<T>,
    params: &[T],
    given: Option<FirstLayerValues<'_, T>>,
    slopes: bool,
) {
    let stride = buffers.stride;
    for l in 1..plan.shapes.len() {
        let (before, here) = buffers.a.split_at_mut(l);
        let input = match given {
            Some(values) if l == 1 => values.activations,
            _ => &before[l - 1],
        };
        let slope = slopes.then_some(&mut buffers.slopes[l][..]);
        let units = 0..plan.shapes[l].outputs;
        let shape = (plan.shapes[l].outputs, plan.shapes[l].inputs);
        let input = spaced_operand::<T, K>(input, stride, shape, &mut buffers.block_room);
        layer_forward(
            k,
            plan,
            l,
            params,
            (input, stride),
            units,
            &mut here[0],
            slope,
        );
    }
}

/// The rows `units` of layer `l`'s `Z^l = W^l A^{l-1}` from `input`
/// (`A^{l-1}`, rows `stride` apart, or `X^T` transposed block by block:
/// [`Operand`]), activated into `out` (and their `act'` into
/// `slope`), both `units.len() x stride` from the block's first unit on: a
/// row of W broadcast, samples in the vectors.
#[allow(clippy::too_many_arguments)]
fn layer_forward<T: Math, K: Kernels<T>>(
    k: K,
    plan: &Plan,
    l: usize,
    params: &[T],
    (input, stride): (Operand<'_, T>, usize),
    units: Range<usize>,
    out: &mut [T],
    mut slope: Option<&mut [T]>,
) {
    let shape = plan.shapes[l];
    let activation = plan.activations[l];
    let product = Product {
        rows: units.len(),
        cols: stride,
        depth: shape.inputs,
        a_row: shape.inputs,
        a_step: 1,
        c_row: stride,
    };
    let weights = &params[shape.weight_range()][units.start * shape.inputs..];
    let bias = &params[shape.bias_range()][units.start..];
    broadcast_product(k, product, weights, input, out, |c, rows, cols| {
        k.activate(
            c,
            slope.as_deref_mut(),
            bias,
            stride,
            rows,
            cols,
            activation,
        );
    });
}

/// Writes the output layer's activations of the last forward pass into
/// `outputs` (`rows x m`, row-major).
pub(crate) fn write_outputs<T: Math, K: Kernels<T>>(
    k: K,
    plan: &Plan,
    buffers: &Buffers<T>,
    outputs: &mut [T],
) {
    let m = plan.shapes[plan.shapes.len() - 1].outputs;
    let last = &buffers.a[plan.shapes.len() - 1];
    k.transpose(last, (m, buffers.rows, buffers.stride), outputs, m, m);
}

/// The loss of `rows` samples `x`, `y` and its gradient, written into `grad`
/// (the flat layout), with the update fused in when `weights` says so.
///
/// `first` says whether the first layer's forward pass is run or given, and
/// whether its weight gradient is formed and applied or `delta^1` written
/// out instead (`x` is read only when it is run or formed).
pub(crate) fn gradient<T: Math, K: Kernels<T>>(
    k: K,
    plan: &Plan,
    buffers: &mut Buffers<T>,
    mut weights: Weights<'_, T>,
    (x, y): (&[T], &[T]),
    grad: &mut [T],
    first: First<'_, T>,
) -> T {
    let (first_delta, given) = match first {
        First::Whole => {
            forward(k, plan, buffers, weights.values(), x, true);
            (FirstDelta::Used, None)
        }
        First::DeltaOut(delta) => {
            forward(k, plan, buffers, weights.values(), x, true);
            (FirstDelta::Out(delta, DeltaLayout::BySample), None)
        }
        First::Given(delta, given) => {
            forward_above_first(k, plan, buffers, weights.values(), given, true);
            (FirstDelta::Out(delta, DeltaLayout::ByUnit), given)
        }
    };
    let (rows, stride) = (buffers.rows, buffers.stride);
    let last = plan.shapes.len() - 1;
    // `delta^1` by unit of a batch without padding (`d_1 x stride` is then
    // `d_1 x rows`) is formed straight in the caller's buffer by the layer
    // above's product, when there is one.
    let (mut first_delta, mut direct) = match first_delta {
        FirstDelta::Out(out, DeltaLayout::ByUnit) if buffers.unpadded() && last > 0 => {
            (FirstDelta::Formed, Some(out))
        }
        first_delta => (first_delta, None),
    };
    let m = plan.shapes[last].outputs;
    k.transpose(y, (rows, m, m), &mut buffers.yt, stride, stride);
    let (a, slopes) = layer_values((&buffers.a, &buffers.slopes), given, last);
    let inputs = LossInputs {
        a,
        slopes,
        y: &buffers.yt,
        outputs: m,
        stride,
        valid: rows,
    };
    let inverse_batch = T::ONE / T::from_usize(rows);
    let loss_sum = k.loss(plan.loss, inputs, &mut buffers.delta, inverse_batch);

    let (mut delta, mut below): (&mut [T], &mut [T]) = (&mut buffers.delta, &mut buffers.below);
    for l in (0..=last).rev() {
        let shape = plan.shapes[l];
        let (n_in, n_out) = (shape.inputs, shape.outputs);
        if l == 1
            && let Some(out) = direct.take()
        {
            below = out;
        }
        let d = &delta[..n_out * stride];

        // delta^{l-1} = (W^l^T delta^l) (.) act'_{l-1};
        // a column of W broadcast, samples in the vectors. Never for l = 0.
        if l > 0 {
            let (_, slopes) = layer_values((&buffers.a, &buffers.slopes), given, l - 1);
            let identity = plan.activations[l - 1] == Activation::Identity;
            let product = Product {
                rows: n_in,
                cols: stride,
                depth: n_out,
                a_row: 1,
                a_step: n_in,
                c_row: stride,
            };
            let w = &weights.values()[shape.weight_range()];
            broadcast_product(
                k,
                product,
                w,
                spaced_operand::<T, K>(d, stride, (n_in, n_out), &mut buffers.block_room),
                below,
                |c, rows, cols| {
                    if !identity {
                        k.scale(c, slopes, stride, rows, cols);
                    }
                },
            );
        }

        // dJ/db^l: the sums of delta^l's rows, then the update of b^l.
        let (grad_w, rest) = grad[shape.offset..].split_at_mut(shape.weight_count());
        let grad_b = &mut rest[..n_out];
        k.row_sums(d, stride, n_out, stride, grad_b);
        let bias_at = (shape.bias_range().start, n_out);
        weights.update(k, bias_at, grad_b, (0..1, 0..n_out));

        // dJ/dW^l = delta^l^T A^{l-1}, then the update of W^l.
        let weights_at = (shape.offset, n_in);
        if l == 0 {
            match &mut first_delta {
                FirstDelta::Out(out, DeltaLayout::BySample) => {
                    k.transpose(d, (n_out, rows, stride), out, n_out, n_out);
                }
                FirstDelta::Out(out, DeltaLayout::ByUnit) => copy_unpadded(d, stride, out, rows),
                FirstDelta::Formed => {}
                FirstDelta::Used => {
                    // A value of delta broadcast, a row of X in the vectors.
                    let product = Product {
                        rows: n_out,
                        cols: n_in,
                        depth: rows,
                        a_row: stride,
                        a_step: 1,
                        c_row: n_in,
                    };
                    broadcast_product(
                        k,
                        product,
                        d,
                        rows_operand(x, n_in, Some(&mut buffers.block_room)),
                        grad_w,
                        |c, rows, cols| {
                            weights.update(k, weights_at, c, (rows, cols));
                        },
                    );
                }
            }
        } else {
            // As for the first layer, with A^{l-1} transposed back to one
            // sample per row a block at a time: a value of delta broadcast,
            // a row of A^{l-1}^T in the vectors.
            let (a, _) = layer_values((&buffers.a, &buffers.slopes), given, l - 1);
            let input = Operand::Transposed {
                x: a,
                rows: n_in,
                stride,
                room: &mut buffers.block_room,
            };
            let product = Product {
                rows: n_out,
                cols: n_in,
                depth: rows,
                a_row: stride,
                a_step: 1,
                c_row: n_in,
            };
            broadcast_product(k, product, d, input, grad_w, |c, rows, cols| {
                weights.update(k, weights_at, c, (rows, cols));
            });
            std::mem::swap(&mut delta, &mut below);
        }
    }
    loss_sum / T::from_usize(rows)
}

/// Rows `units` of `delta^T X` into `out` (`units.len() x n`), for `delta`
/// (`rows x hidden` or, [`DeltaLayout::ByUnit`], `hidden x rows`) and `x`
/// (`rows x n`), all row-major; `x` read as [`rows_operand`] says, with
/// `room` for its blocks.
///
/// A `delta` by sample is read where it lies, or, with `by_unit` (room for
/// `units.len() x rows` values), its block is first transposed there, one
/// row per unit, so that the product's broadcasts read each unit's values
/// one after the other rather than one line per step, `hidden` values
/// apart: in the depth blocks of 128 steps the product runs in, those lines
/// crowd the first-level cache (on M, rows of 1 KiB fall into 4 of its 64
/// sets). A `delta` by unit is read where it lies, each unit's values in
/// one piece. The sums run in the same order either way, so the values are
/// the same to the bit.
///
/// Measured with throwaway probes (f32, AVX-512): on M at batch 128, the
/// `rayon-simd` step cut by hidden units took 0.963-0.969 times as long
/// with the copy (medians of about 200 alternations of 21 steps each way
/// in one process, three runs; an A/A control gave 0.999-1.005), 0.977 in
/// `f64`; the partitioned step at batches 256 and 1024, 0.973 and 0.944.
/// One block of 128 units alone, the median of interleaved calls: over M's
/// `x` (784 wide) at 32 to 1024 rows, 0.85-0.99 times as long; with 100 or
/// 300 hidden units, 0.84. Over a 256-wide `x`, whose rows are [`strided`],
/// the copy once cost 1-5% while the product read `x` in place, in blocks
/// of 32 steps; now that `x` is copied into blocks of 128 steps, reading
/// `delta` in place there took 1.023-1.037 times as long (the batch split at
/// 256 and 1024 rows, 256-256-10 and 512-128-10), so the copy is always made.
pub(crate) fn first_weight_rows<T: Math, K: Kernels<T>>(
    k: K,
    (delta, layout, hidden): (&[T], DeltaLayout, usize),
    (x, n): (&[T], usize),
    (rows, units): (usize, Range<usize>),
    by_unit: Option<&mut [T]>,
    out: &mut [T],
    room: Option<&mut [T]>,
) {
    let (a, a_row, a_step) = match (layout, by_unit) {
        (DeltaLayout::ByUnit, _) => {
            let block = delta.get(units.start * rows..).unwrap_or_default();
            (block, rows, 1)
        }
        (DeltaLayout::BySample, Some(block)) => {
            let delta = delta.get(units.start..).unwrap_or_default();
            k.transpose(delta, (rows, units.len(), hidden), block, rows, rows);
            (&*block, rows, 1)
        }
        (DeltaLayout::BySample, None) => (delta.get(units.start..).unwrap_or_default(), 1, hidden),
    };
    let product = Product {
        rows: units.len(),
        cols: n,
        depth: rows,
        a_row,
        a_step,
        c_row: n,
    };
    let b = rows_operand(x, n, room);
    broadcast_product(k, product, a, b, out, |_, _, _| {});
}

#[cfg(test)]
mod tests {
    use backprop_core::DeltaLayout;

    use super::{
        Operand, SPACED_COPY_MIN_ROWS, block_room_len, first_weight_rows, rows_operand,
        spaced_operand,
    };
    use crate::kernels::{Kernels, PortableKernels};

    /// Rows 2..5 of `delta^T X` over 19 samples of `n` inputs, with `delta`
    /// by sample read in place and with room for its copy by unit (and for
    /// blocks of `X`), and with `delta` given by unit: the same bits, the
    /// sums of a direct loop to within rounding, the copy by unit always
    /// made, and `X` copied only when it is larger than a block (300 `f64`
    /// inputs: 44.5 KiB).
    fn by_unit_is_where_it_lies<K: Kernels<f64>>(k: K, n: usize) {
        let (rows, hidden, units) = (19, 7, 2..5);
        let delta: Vec<f64> = (0..rows * hidden)
            .map(|i| ((i * 13 % 29) as f64 - 14.0) / 7.0)
            .collect();
        let x: Vec<f64> = (0..rows * n).map(|i| (i * 7 % 17) as f64 / 17.0).collect();
        let mut in_place = vec![f64::NAN; units.len() * n];
        let mut by_unit = vec![f64::NAN; units.len() * rows];
        let mut room = vec![f64::NAN; block_room_len::<f64>()];
        let mut copied = in_place.clone();
        let mut given = in_place.clone();
        let (d, xs) = ((&delta[..], DeltaLayout::BySample, hidden), (&x[..], n));
        first_weight_rows(k, d, xs, (rows, units.clone()), None, &mut in_place, None);
        let (by_unit_room, x_room) = (Some(&mut by_unit[..]), Some(&mut room[..]));
        first_weight_rows(
            k,
            d,
            xs,
            (rows, units.clone()),
            by_unit_room,
            &mut copied,
            x_room,
        );
        let transposed: Vec<f64> = (0..hidden * rows)
            .map(|i| delta[i % rows * hidden + i / rows])
            .collect();
        let d = (&transposed[..], DeltaLayout::ByUnit, hidden);
        first_weight_rows(k, d, xs, (rows, units.clone()), None, &mut given, None);
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&in_place), bits(&copied), "n = {n}");
        assert_eq!(bits(&in_place), bits(&given), "n = {n}");
        assert_eq!(
            room.iter().any(|v| !v.is_nan()),
            n == 300,
            "X copied, n = {n}"
        );
        for (i, unit) in units.enumerate() {
            let column = (0..rows).map(|r| delta[r * hidden + unit]);
            assert!(by_unit[i * rows..(i + 1) * rows].iter().copied().eq(column));
            for c in 0..n {
                let sum: f64 = (0..rows)
                    .map(|r| delta[r * hidden + unit] * x[r * n + c])
                    .sum();
                assert!((in_place[i * n + c] - sum).abs() <= 1e-12 * (1.0 + sum.abs()));
            }
        }
    }

    #[test]
    fn rows_are_copied_only_when_larger_than_a_block() {
        // 32 KiB of `f64` is 4096 values: read in place; one more: copied.
        let x = vec![0.5_f64; 4097];
        let mut room = vec![0.0; block_room_len::<f64>()];
        let fits = rows_operand(&x[..4096], 64, Some(&mut room[..]));
        assert!(matches!(fits, Operand::InPlace { step: 64, .. }));
        let larger = rows_operand(&x[..4097], 64, Some(&mut room[..]));
        assert!(matches!(larger, Operand::Copied { step: 64, .. }));
        assert!(matches!(
            rows_operand(&x[..4097], 64, None),
            Operand::InPlace { .. }
        ));
    }

    /// Whether [`spaced_operand`] on `K`'s tiles copies a `B` of steps
    /// `step` values apart into a product of `rows x depth`.
    fn copied<K: Kernels<f32>>(step: usize, rows: usize, depth: usize) -> bool {
        let b = vec![0.5_f32; step * depth];
        let mut room = vec![0.0; block_room_len::<f32>()];
        match spaced_operand::<f32, K>(&b, step, (rows, depth), &mut room) {
            Operand::Copied { step: s, .. } => s == step,
            Operand::InPlace { step: s, .. } => {
                assert_eq!(s, step);
                false
            }
            Operand::Transposed { .. } => panic!("transposed"),
        }
    }

    #[test]
    fn spaced_steps_are_copied_only_when_a_block_would_be_short() {
        let many = SPACED_COPY_MIN_ROWS;
        let copied = copied::<PortableKernels>;
        // Steps 4 KiB apart: blocks of 16 steps in place.
        assert!(copied(1024, many, 17));
        assert!(!copied(1024, many, 16));
        assert!(!copied(1024, many - 1, 40));
        // 1 KiB apart: blocks of 32 steps.
        assert!(copied(256, many, 33));
        assert!(!copied(256, many, 32));
        // Not a multiple of 256 bytes: the block is sized by the panel.
        assert!(!copied(1020, many, 40));
    }

    /// AVX-512's widest `f32` panel is 4 vectors of 16, 256 bytes: a batch
    /// no wider is one panel, whose block is sized by its own width, and
    /// is never copied; one twice as wide is. Only the tiles' sizes are
    /// read, so this runs on any x86-64 CPU.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn a_batch_of_one_panel_is_never_copied() {
        use crate::kernels::Avx512Kernels;
        let width = <Avx512Kernels as Kernels<f32>>::NR_MAX * 16;
        assert_eq!(width * size_of::<f32>(), 256);
        let many = SPACED_COPY_MIN_ROWS;
        assert!(!copied::<Avx512Kernels>(width, many, 1000));
        assert!(copied::<Avx512Kernels>(2 * width, many, 65));
        assert!(!copied::<Avx512Kernels>(2 * width, many, 64));
    }

    /// The widest column panel of `K`'s products keeps a depth block of
    /// [`block_room_len`] values at least the floor of 16 steps deep,
    /// so the room of a block is never too small.
    fn the_room_fits<T: crate::lanes::Math, K: Kernels<T>>(_: K) {
        let width = K::NR_MAX * K::LANES;
        assert!(16 * width <= block_room_len::<T>(), "{width} lanes");
    }

    #[test]
    fn a_block_of_the_widest_panel_fits_its_room() {
        the_room_fits::<f32, _>(PortableKernels);
        the_room_fits::<f64, _>(PortableKernels);
        #[cfg(target_arch = "x86_64")]
        {
            use crate::kernels::{Avx2Kernels, Avx512Kernels};
            if let Some(k) = Avx512Kernels::detect() {
                the_room_fits::<f32, _>(k);
                the_room_fits::<f64, _>(k);
            }
            if let Some(k) = Avx2Kernels::detect() {
                the_room_fits::<f32, _>(k);
                the_room_fits::<f64, _>(k);
            }
        }
    }

    #[test]
    fn the_first_weight_rows_of_delta_in_either_layout_are_the_same_bits() {
        for n in [37, 64, 300] {
            by_unit_is_where_it_lies(PortableKernels, n);
            #[cfg(target_arch = "x86_64")]
            {
                use crate::kernels::{Avx2Kernels, Avx512Kernels};
                if let Some(k) = Avx512Kernels::detect() {
                    by_unit_is_where_it_lies(k, n);
                }
                if let Some(k) = Avx2Kernels::detect() {
                    by_unit_is_where_it_lies(k, n);
                }
            }
        }
    }
}
