//! The kernels: the register-blocked product tile, its epilogues, the loss and the
//! transposes; written once over [`Lanes`] and compiled once per instruction set
//! behind a token that proves the CPU has it.
//!
//! # Safety
//!
//! The generic kernels take raw pointers and are `unsafe`. They are reached
//! only through the [`Kernels`] methods, which first check (with `assert!`,
//! at the cost of a few multiplications per call) that every value the kernel
//! will touch lies inside the slices they were given, and then call a copy of
//! the kernel compiled with the path's target features. A token of an x86
//! path is only created by its `detect` function once the CPU is found to
//! have those features. The checks can only fail on a bug in this crate's
//! driver, never on caller input (shapes are checked when tasks are built).

use std::ops::Range;

use backprop_core::{Activation, Loss, Scalar};

use crate::lanes::{Lanes, MAX_LANES, Math, Portable, activate};

/// One tile of a product `C (+)= A B` whose `B` is read in vectors:
/// `C[i][v] = sum_p A_i(p) B_v(p)` for `i < mr` rows and `v < nr` vectors,
/// with `A_i(p) = a[i a_row + p a_step]` (one value, broadcast),
/// `B_v(p) = b[p b_step + v LANES ..]` (one vector) and
/// `C[i][v] = c[i c_row + v LANES ..]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TileSpec {
    /// Steps of the sum.
    pub(crate) depth: usize,
    /// From one row of `A` to the next.
    pub(crate) a_row: usize,
    /// From one step of `A` to the next.
    pub(crate) a_step: usize,
    /// From one step of `B` to the next.
    pub(crate) b_step: usize,
    /// From one row of `C` to the next.
    pub(crate) c_row: usize,
    /// Lanes used in the last vector of a row (`LANES` unless the tile ends a ragged row).
    pub(crate) last: usize,
    /// Add to `C` instead of overwriting it.
    pub(crate) accumulate: bool,
}

impl TileSpec {
    /// Panics unless an `mr x nr`-vector tile stays inside slices of these lengths.
    fn check(&self, mr: usize, nr: usize, lanes: usize, lengths: [usize; 3]) {
        let [a, b, c] = lengths;
        assert!(mr >= 1 && nr >= 1 && self.depth >= 1, "empty tile");
        assert!(self.last >= 1 && self.last <= lanes, "bad last vector");
        let width = (nr - 1) * lanes + self.last;
        let a_end = (mr - 1)
            .saturating_mul(self.a_row)
            .saturating_add((self.depth - 1).saturating_mul(self.a_step));
        let b_end = (self.depth - 1)
            .saturating_mul(self.b_step)
            .saturating_add(width);
        let c_end = (mr - 1).saturating_mul(self.c_row).saturating_add(width);
        assert!(a_end < a && b_end <= b && c_end <= c, "tile out of bounds");
    }
}

/// Panics unless `rows x cols` of a matrix with rows `stride` apart fit in `len` values.
fn check_region(len: usize, stride: usize, rows: &Range<usize>, cols: &Range<usize>) {
    if rows.is_empty() || cols.is_empty() {
        return;
    }
    let end = (rows.end - 1)
        .saturating_mul(stride)
        .saturating_add(cols.end);
    assert!(end <= len, "region out of bounds");
}

/// The product tile (see [`TileSpec`]); `PARTIAL` when the last vector is ragged.
///
/// # Safety
/// Every position the spec names for `mr = MR`, `nr = NR` must be valid (as
/// [`TileSpec::check`] asserts), and the lanes' instructions available.
#[inline(always)]
unsafe fn tile<V: Lanes, const MR: usize, const NR: usize, const PARTIAL: bool>(
    a: *const V::T,
    b: *const V::T,
    c: *mut V::T,
    s: &TileSpec,
) {
    let l = V::LANES;
    let zero = V::splat(V::T::ZERO);
    let mut acc = [[zero; NR]; MR];
    let (mut a, mut b) = (a, b);
    // SAFETY (whole body): every pointer below lies in the ranges the caller vouches for.
    unsafe {
        for _ in 0..s.depth {
            let mut vectors = [zero; NR];
            for (v, vector) in vectors.iter_mut().enumerate() {
                *vector = if PARTIAL && v + 1 == NR {
                    V::load_first(b.add(v * l), s.last)
                } else {
                    V::load(b.add(v * l))
                };
            }
            for (i, row) in acc.iter_mut().enumerate() {
                let value = V::broadcast(a.add(i * s.a_row));
                for (acc, &vector) in row.iter_mut().zip(&vectors) {
                    *acc = value.mul_add(vector, *acc);
                }
            }
            a = a.wrapping_add(s.a_step);
            b = b.wrapping_add(s.b_step);
        }
        for (i, row) in acc.iter().enumerate() {
            for (v, &sum) in row.iter().enumerate() {
                let p = c.add(i * s.c_row + v * l);
                if PARTIAL && v + 1 == NR {
                    let sum = if s.accumulate {
                        sum.add(V::load_first(p, s.last))
                    } else {
                        sum
                    };
                    sum.store_first(p, s.last);
                } else {
                    let sum = if s.accumulate {
                        sum.add(V::load(p))
                    } else {
                        sum
                    };
                    sum.store(p);
                }
            }
        }
    }
}

/// `Z += bias` per row, then `A = act(Z)` over `Z` and `act'` into `slopes`
/// (when not null), on `rows` rows of `width` values (whole vectors).
///
/// # Safety
/// The rows must be valid at `values` (and `slopes`), `bias` must hold `rows` values.
#[inline(always)]
unsafe fn activate_rows<V: Lanes>(
    values: *mut V::T,
    slopes: *mut V::T,
    bias: *const V::T,
    shape: (usize, usize, usize),
    activation: Activation,
) {
    // One copy of the loop per activation, each with its function inlined
    // (a closure here would be compiled apart, without the target features).
    // SAFETY: passed on from the caller.
    unsafe {
        match activation {
            Activation::Sigmoid => {
                each::<V, SIGMOID, ACTIVATION_GROUP>(values, slopes, bias, shape)
            }
            Activation::Tanh => each::<V, TANH, ACTIVATION_GROUP>(values, slopes, bias, shape),
            Activation::Relu => each::<V, RELU, ACTIVATION_GROUP>(values, slopes, bias, shape),
            Activation::Identity => {
                each::<V, IDENTITY, ACTIVATION_GROUP>(values, slopes, bias, shape)
            }
        }
    }
}

/// Vectors [`each`] takes at a time (see [`vectors`]).
const ACTIVATION_GROUP: usize = 4;

/// The activations as constants, for [`each`].
const SIGMOID: u8 = 0;
const TANH: u8 = 1;
const RELU: u8 = 2;
const IDENTITY: u8 = 3;

/// [`activate_rows`] for one activation `ACT`: each row `GROUP` vectors
/// at a time, then two (a tile's rows on the AVX2 path are two vectors
/// wide), then one.
///
/// # Safety
/// As for [`activate_rows`].
#[inline(always)]
unsafe fn each<V: Lanes, const ACT: u8, const GROUP: usize>(
    values: *mut V::T,
    slopes: *mut V::T,
    bias: *const V::T,
    (stride, rows, width): (usize, usize, usize),
) {
    let l = V::LANES;
    // SAFETY: the positions lie in the rows the caller vouches for.
    unsafe {
        for r in 0..rows {
            let b = V::broadcast(bias.add(r));
            let (mut offset, end) = (r * stride, r * stride + width);
            while offset + GROUP * l <= end {
                vectors::<V, ACT, GROUP>(values.add(offset), slopes, offset, b);
                offset += GROUP * l;
            }
            while offset + 2 * l <= end {
                vectors::<V, ACT, 2>(values.add(offset), slopes, offset, b);
                offset += 2 * l;
            }
            if offset < end {
                vectors::<V, ACT, 1>(values.add(offset), slopes, offset, b);
            }
        }
    }
}

/// `COUNT` consecutive vectors of [`each`] at `values`, their slopes at
/// `slopes + offset` (unless null), with the bias `b`: independent chains
/// of some 30 operations each, which the processor overlaps when they come
/// together.
///
/// # Safety
/// The vectors must be valid at `values` (and `slopes + offset`).
#[inline(always)]
unsafe fn vectors<V: Lanes, const ACT: u8, const COUNT: usize>(
    values: *mut V::T,
    slopes: *mut V::T,
    offset: usize,
    b: V,
) {
    let activation = match ACT {
        SIGMOID => Activation::Sigmoid,
        TANH => Activation::Tanh,
        RELU => Activation::Relu,
        _ => Activation::Identity,
    };
    let l = V::LANES;
    let mut out = [(b, b); COUNT];
    // SAFETY: passed on from the caller.
    unsafe {
        for (g, out) in out.iter_mut().enumerate() {
            *out = activate(activation, V::load(values.add(g * l)).add(b));
        }
        for (g, &(a, slope)) in out.iter().enumerate() {
            a.store(values.add(g * l));
            if !slopes.is_null() {
                slope.store(slopes.add(offset + g * l));
            }
        }
    }
}

/// `values *= factors` elementwise on `rows` rows of `width` values (whole vectors).
///
/// # Safety
/// The rows must be valid at both pointers.
#[inline(always)]
unsafe fn scale_rows<V: Lanes>(
    values: *mut V::T,
    factors: *const V::T,
    stride: usize,
    rows: usize,
    width: usize,
) {
    // SAFETY: the positions lie in the rows the caller vouches for.
    unsafe {
        for r in 0..rows {
            let mut offset = r * stride;
            for _ in 0..width / V::LANES {
                let p = values.add(offset);
                V::load(p).mul(V::load(factors.add(offset))).store(p);
                offset += V::LANES;
            }
        }
    }
}

/// `out = params + step * grad` on `rows` rows of `width` values (any width).
///
/// # Safety
/// The rows must be valid at all three pointers.
#[inline(always)]
unsafe fn update_rows<V: Lanes>(
    out: *mut V::T,
    params: *const V::T,
    grad: *const V::T,
    stride: usize,
    rows: usize,
    width: usize,
    step: V::T,
) {
    let l = V::LANES;
    let step = V::splat(step);
    // SAFETY: the positions lie in the rows the caller vouches for.
    unsafe {
        for r in 0..rows {
            let mut offset = r * stride;
            let end = offset + width;
            while offset + l <= end {
                V::load(grad.add(offset))
                    .mul_add(step, V::load(params.add(offset)))
                    .store(out.add(offset));
                offset += l;
            }
            if offset < end {
                let count = end - offset;
                V::load_first(grad.add(offset), count)
                    .mul_add(step, V::load_first(params.add(offset), count))
                    .store_first(out.add(offset), count);
            }
        }
    }
}

/// `out[r] = sum of row r` over `rows` rows of `width` values (whole vectors).
///
/// # Safety
/// The rows must be valid at `values`, and `out` must hold `rows` values.
#[inline(always)]
unsafe fn row_sums<V: Lanes>(
    values: *const V::T,
    stride: usize,
    rows: usize,
    width: usize,
    out: *mut V::T,
) {
    // SAFETY: the positions lie in the rows the caller vouches for.
    unsafe {
        for r in 0..rows {
            let mut sum = V::splat(V::T::ZERO);
            let mut offset = r * stride;
            for _ in 0..width / V::LANES {
                sum = sum.add(V::load(values.add(offset)));
                offset += V::LANES;
            }
            out.add(r).write(sum.reduce_add());
        }
    }
}

/// `dst[c dst_stride + r] = src[r src_stride + c]` for `r < rows`, `c < cols`,
/// and zero for `rows <= r < pad`, in blocks of `LANES x LANES` values
/// transposed in registers (with masks at the ragged edges).
///
/// # Safety
/// Both matrices must be valid for those positions.
#[inline(always)]
unsafe fn transpose<V: Lanes>(
    src: *const V::T,
    (rows, cols, src_stride): (usize, usize, usize),
    dst: *mut V::T,
    (dst_stride, pad): (usize, usize),
) {
    let l = V::LANES;
    for r in (0..pad).step_by(l) {
        let (valid, count) = (rows.saturating_sub(r).min(l), (pad - r).min(l));
        for c in (0..cols).step_by(l) {
            // SAFETY: the block reads rows `r .. r + valid < rows` and columns
            // `c .. c + l.min(cols - c)` of `src`, and writes rows `c ..` and
            // columns `r .. r + count <= pad` of `dst`, which the caller vouches for.
            unsafe {
                V::transpose_block(
                    src.wrapping_add(r * src_stride + c),
                    src_stride,
                    dst.add(c * dst_stride + r),
                    dst_stride,
                    (valid, (cols - c).min(l), count),
                );
            }
        }
    }
}

/// Vectors of samples the loss pass takes side by side, each output's
/// values of them read together: 8 cache lines of each row of each matrix
/// on AVX2 (`f32`), each line used whole while it is in cache.
///
/// One vector at a time, a batch of 1024 `f32` samples (rows 4 KiB apart,
/// so every output's values in the same first-level cache set) missed the
/// cache at every read: on 256-256 at batch 1024, AVX2 on an AMD EPYC of
/// the Zen 2 family, `perf record` put 38% of a 6.1 ms `simd` step in the
/// loss pass (MSE, about 30 cycles a value); with 4 vectors side by side
/// 12% of 4.0 ms, with 16 5% of 3.6 ms. A throwaway switch inside one
/// process (medians of interleaved rounds, the copies of `spaced_operand`
/// on) timed whole steps with 16 over one at a time: 256-256-256 at 1024
/// 0.80x and at 256 0.97x, `rayon-simd` on 256-256-256 at 1024 0.93x,
/// 512-512-512 at 256 0.97x, 256-256 with softmax at 1024 0.93x; S, M and
/// 64-128-128-128-10 unchanged.
const LOSS_VECTORS: usize = 16;

/// The loss pass over the output layer, samples in lanes: writes `delta^L`
/// (`1/B` included, zero in the padding lanes) and returns the sum of the
/// samples' shares of the loss, as `backprop-core`'s `Loss` defines them.
///
/// `a`, `slopes`, `y` and `delta` are `outputs x stride` (stride a whole
/// number of vectors), of which the first `valid` columns are samples.
/// Each vector's sums run over the outputs in order and the total over the
/// vectors in order, however many are taken side by side.
///
/// # Safety
/// The four matrices must be valid at their pointers.
#[inline(always)]
unsafe fn loss_pass<V: Lanes>(
    loss: Loss,
    (a, slopes, y): (*const V::T, *const V::T, *const V::T),
    delta: *mut V::T,
    (outputs, stride, valid): (usize, usize, usize),
    inverse_batch: V::T,
) -> V::T {
    let l = V::LANES;
    let mut total = V::T::ZERO;
    let mut col = 0;
    // SAFETY: every block lies in the matrices the caller vouches for.
    unsafe {
        while col < stride {
            let samples = valid.saturating_sub(col);
            let live = samples.div_ceil(l);
            let inputs = (a.add(col), slopes.add(col), y.add(col));
            let (out, shape) = (delta.add(col), (outputs, stride, samples));
            let taken = if live >= LOSS_VECTORS {
                loss_block::<V, LOSS_VECTORS>(loss, inputs, out, shape, inverse_batch, &mut total);
                LOSS_VECTORS
            } else if live > 0 {
                loss_block::<V, 1>(loss, inputs, out, shape, inverse_batch, &mut total);
                1
            } else {
                for i in 0..outputs {
                    V::splat(V::T::ZERO).store(out.add(i * stride));
                }
                1
            };
            col += taken * l;
        }
    }
    total
}

/// [`loss_pass`] over `G` vectors of samples from the matrices' first
/// column, each holding at least one sample (`valid >= (G - 1) LANES + 1`):
/// each vector's share of the loss added to `total` in turn.
///
/// # Safety
/// As for [`loss_pass`], with `G` vectors in every row.
#[inline(always)]
unsafe fn loss_block<V: Lanes, const G: usize>(
    loss: Loss,
    (a, slopes, y): (*const V::T, *const V::T, *const V::T),
    delta: *mut V::T,
    (outputs, stride, valid): (usize, usize, usize),
    inverse_batch: V::T,
    total: &mut V::T,
) {
    let l = V::LANES;
    let zero = V::splat(V::T::ZERO);
    let one = V::splat(V::T::ONE);
    let ones = [V::T::ONE; MAX_LANES];
    let at = |i: usize, j: usize| i * stride + j * l;
    // SAFETY: the positions lie in the matrices the caller vouches for, and
    // `ones` holds `MAX_LANES >= LANES` values.
    unsafe {
        let masks: [V; G] =
            std::array::from_fn(|j| V::load_first(ones.as_ptr(), (valid - j * l).min(l)));
        match loss {
            Loss::Mse => {
                let scale = V::splat(inverse_batch / V::T::from_usize(outputs));
                let mut squares = [zero; G];
                for i in 0..outputs {
                    for j in 0..G {
                        let d = V::load(a.add(at(i, j))).sub(V::load(y.add(at(i, j))));
                        squares[j] = d.mul_add(d, squares[j]);
                        d.mul(scale)
                            .mul(V::load(slopes.add(at(i, j))))
                            .mul(masks[j])
                            .store(delta.add(at(i, j)));
                    }
                }
                let halves = V::splat(V::T::from_usize(2 * outputs));
                for j in 0..G {
                    *total += squares[j].div(halves).mul(masks[j]).reduce_add();
                }
            }
            Loss::SoftmaxCrossEntropy => {
                // The largest logit of each sample and the index of its
                // first occurrence, as `Loss::output_gradient` finds them.
                let mut max: [V; G] = std::array::from_fn(|j| V::load(a.add(at(0, j))));
                let mut top = [zero; G];
                for i in 1..outputs {
                    for j in 0..G {
                        let z = V::load(a.add(at(i, j)));
                        let greater = z.gt(max[j]);
                        max[j] = V::select(greater, z, max[j]);
                        top[j] = V::select(greater, V::splat(V::T::from_usize(i)), top[j]);
                    }
                }
                // 1 in the lanes whose largest logit is output `i`, else 0.
                let is_top = |i: usize, top: V| {
                    let i = V::splat(V::T::from_usize(i));
                    V::select(top.lt(i), zero, V::select(top.gt(i), zero, one))
                };
                let (mut sum, mut others, mut mass, mut other_mass) =
                    ([zero; G], [zero; G], [zero; G], [zero; G]);
                for i in 0..outputs {
                    for j in 0..G {
                        let e = V::load(a.add(at(i, j))).sub(max[j]).exp();
                        let (y, other) = (V::load(y.add(at(i, j))), one.sub(is_top(i, top[j])));
                        sum[j] = sum[j].add(e);
                        others[j] = others[j].add(e.mul(other));
                        mass[j] = mass[j].add(y);
                        other_mass[j] = other_mass[j].add(y.mul(other));
                    }
                }
                let log_normaliser: [V; G] = std::array::from_fn(|j| max[j].add(sum[j].ln()));
                let inverse_sum: [V; G] = std::array::from_fn(|j| one.div(sum[j]));
                let inverse_batch = V::splat(inverse_batch);
                // The top output's `p s - y` without subtracting from 1.
                let top_delta: [V; G] = std::array::from_fn(|j| {
                    other_mass[j].sub(mass[j].mul(others[j]).mul(inverse_sum[j]))
                });
                let mut value = [zero; G];
                for i in 0..outputs {
                    for j in 0..G {
                        let (z, y) = (V::load(a.add(at(i, j))), V::load(y.add(at(i, j))));
                        value[j] = value[j].sub(y.mul(z.sub(log_normaliser[j])));
                        let p_s = z.sub(max[j]).exp().mul(inverse_sum[j]).mul(mass[j]);
                        let here = is_top(i, top[j]).gt(zero);
                        V::select(here, top_delta[j], p_s.sub(y))
                            .mul(inverse_batch)
                            .mul(masks[j])
                            .store(delta.add(at(i, j)));
                    }
                }
                for j in 0..G {
                    *total += value[j].mul(masks[j]).reduce_add();
                }
            }
        }
    }
}

/// Independent chains of the FMA loop: enough to keep two FMA units busy
/// through a latency of 5 cycles (10 in flight), and few enough that the
/// chains and the multiplier fit AVX2's 16 vector registers. With 16
/// chains one was spilled to the stack every round, and the loop measured
/// 61 instead of 107 GFLOP/s on an AMD EPYC of the Zen 2 family.
pub(crate) const FMA_CHAINS: usize = 12;

/// `rounds` steps of [`FMA_CHAINS`] independent chains of vector
/// multiply-adds, for measuring the FMA peak of one core; returns the sum
/// of the chains.
#[inline(always)]
fn fma_chains<V: Lanes>(rounds: usize, seed: V::T) -> V::T {
    let x = V::splat(seed);
    let y = V::splat(V::T::from_f64(1e-7));
    let mut acc = [V::splat(V::T::ZERO); FMA_CHAINS];
    for _ in 0..rounds {
        for acc in &mut acc {
            *acc = acc.mul_add(x, y);
        }
    }
    acc.iter()
        .fold(V::splat(V::T::ZERO), |sum, &acc| sum.add(acc))
        .reduce_add()
}

/// The loss pass's matrices: the output layer's activations (the logits for
/// softmax cross-entropy) and slopes, and the targets, all `outputs x stride`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LossInputs<'a, T> {
    /// `A^L`, samples in columns.
    pub(crate) a: &'a [T],
    /// `act'` of the output layer.
    pub(crate) slopes: &'a [T],
    /// The targets, transposed.
    pub(crate) y: &'a [T],
    /// Output units.
    pub(crate) outputs: usize,
    /// Columns per row (a whole number of vectors).
    pub(crate) stride: usize,
    /// Columns that are samples.
    pub(crate) valid: usize,
}

/// The kernels of one instruction set for `T`. A value is a token: the x86
/// paths' tokens exist only once the CPU was found to have their features.
pub(crate) trait Kernels<T: Math>: Copy {
    /// Values per vector.
    const LANES: usize;
    /// The most vectors a product tile spans.
    const NR_MAX: usize;
    /// The most rows a product tile of `nr` vectors has (register budget).
    fn mr_max(nr: usize) -> usize;

    /// Runs one product tile of `mr` rows and `nr` vectors, `partial` when
    /// its last vector is ragged (see [`TileSpec`]).
    fn tile(self, shape: (usize, usize, bool), a: &[T], b: &[T], c: &mut [T], spec: &TileSpec);
    /// Bias, activation and slope over a region of whole vectors (see `activate_rows`).
    #[allow(clippy::too_many_arguments)]
    fn activate(
        self,
        values: &mut [T],
        slopes: Option<&mut [T]>,
        bias: &[T],
        stride: usize,
        rows: Range<usize>,
        cols: Range<usize>,
        activation: Activation,
    );
    /// `values *= factors` over a region of whole vectors.
    fn scale(
        self,
        values: &mut [T],
        factors: &[T],
        stride: usize,
        rows: Range<usize>,
        cols: Range<usize>,
    );
    /// `out = params + step * grad` over a region.
    fn update(
        self,
        out: &mut [T],
        params: &[T],
        grad: &[T],
        stride: usize,
        region: (Range<usize>, Range<usize>),
        step: T,
    );
    /// Row sums of `rows x width` values (whole vectors) into `out`.
    fn row_sums(self, values: &[T], stride: usize, rows: usize, width: usize, out: &mut [T]);
    /// `src` (`rows x cols`, rows `src_stride` apart) transposed into `dst`
    /// (rows `dst_stride` apart), zero from column `rows` to `pad`.
    fn transpose(
        self,
        src: &[T],
        shape: (usize, usize, usize),
        dst: &mut [T],
        dst_stride: usize,
        pad: usize,
    );
    /// The loss pass (see `loss_pass`): `delta^L` and the sum of the samples' losses.
    fn loss(self, loss: Loss, inputs: LossInputs<'_, T>, delta: &mut [T], inverse_batch: T) -> T;
    /// `rounds` steps of [`FMA_CHAINS`] independent vector multiply-add chains (see `fma_chains`).
    fn fma_chains(self, rounds: usize, seed: T) -> T;
}

/// Implements [`Kernels`] for a token and element type with the given lanes,
/// target features (none for the portable path) and product tiles (the rows
/// for each vector count).
macro_rules! kernels {
    (
        $token:ty, $t:ty, $lanes:ty, [$(#[$features:meta])*],
        nr_max: $nr_max:literal,
        tiles: { $($nr:literal => [$($mr:literal)*]),* $(,)? } $(,)?
    ) => {
        impl Kernels<$t> for $token {
            const LANES: usize = <$lanes as Lanes>::LANES;
            const NR_MAX: usize = $nr_max;

            fn mr_max(nr: usize) -> usize {
                let mut most = 1;
                $( $( if nr == $nr && $mr > most { most = $mr; } )* )*
                most
            }

            fn tile(self, (mr, nr, partial): (usize, usize, bool), a: &[$t], b: &[$t], c: &mut [$t], spec: &TileSpec) {
                spec.check(mr, nr, <$lanes as Lanes>::LANES, [a.len(), b.len(), c.len()]);
                $(#[$features])*
                unsafe fn run<const MR: usize, const NR: usize, const P: bool>(
                    a: *const $t, b: *const $t, c: *mut $t, spec: &TileSpec,
                ) {
                    // SAFETY: checked by the caller; features enabled on this function.
                    unsafe { tile::<$lanes, MR, NR, P>(a, b, c, spec) }
                }
                let (a, b, c) = (a.as_ptr(), b.as_ptr(), c.as_mut_ptr());
                // SAFETY: the tile was checked against the slices just above,
                // and `self` proves that the CPU has the features of `run`.
                unsafe {
                    match (nr, mr, partial) {
                        $( $(
                            ($nr, $mr, false) => run::<$mr, $nr, false>(a, b, c, spec),
                            ($nr, $mr, true) => run::<$mr, $nr, true>(a, b, c, spec),
                        )* )*
                        _ => panic!("no {mr} x {nr} tile"),
                    }
                }
            }

            fn activate(
                self,
                values: &mut [$t],
                mut slopes: Option<&mut [$t]>,
                bias: &[$t],
                stride: usize,
                rows: Range<usize>,
                cols: Range<usize>,
                activation: Activation,
            ) {
                assert!(cols.len() % <$lanes as Lanes>::LANES == 0 && rows.end <= bias.len());
                check_region(values.len(), stride, &rows, &cols);
                if let Some(slopes) = slopes.as_deref() {
                    check_region(slopes.len(), stride, &rows, &cols);
                }
                if rows.is_empty() || cols.is_empty() {
                    return;
                }
                $(#[$features])*
                unsafe fn run(
                    values: *mut $t, slopes: *mut $t, bias: *const $t,
                    shape: (usize, usize, usize), activation: Activation,
                ) {
                    let (stride, rows, width) = shape;
                    // SAFETY: checked by the caller; features enabled on this function.
                    unsafe { activate_rows::<$lanes>(values, slopes, bias, (stride, rows, width), activation) }
                }
                let start = rows.start * stride + cols.start;
                let slopes = slopes
                    .as_deref_mut()
                    .map_or(std::ptr::null_mut(), |s| s[start..].as_mut_ptr());
                // SAFETY: the region was checked just above; `self` proves the features.
                unsafe {
                    run(
                        values[start..].as_mut_ptr(),
                        slopes,
                        bias[rows.start..].as_ptr(),
                        (stride, rows.len(), cols.len()),
                        activation,
                    )
                }
            }

            fn scale(self, values: &mut [$t], factors: &[$t], stride: usize, rows: Range<usize>, cols: Range<usize>) {
                assert!(cols.len() % <$lanes as Lanes>::LANES == 0);
                check_region(values.len(), stride, &rows, &cols);
                check_region(factors.len(), stride, &rows, &cols);
                if rows.is_empty() || cols.is_empty() {
                    return;
                }
                $(#[$features])*
                unsafe fn run(values: *mut $t, factors: *const $t, stride: usize, rows: usize, width: usize) {
                    // SAFETY: checked by the caller; features enabled on this function.
                    unsafe { scale_rows::<$lanes>(values, factors, stride, rows, width) }
                }
                let start = rows.start * stride + cols.start;
                // SAFETY: the region was checked just above; `self` proves the features.
                unsafe {
                    run(values[start..].as_mut_ptr(), factors[start..].as_ptr(), stride, rows.len(), cols.len())
                }
            }

            fn update(
                self,
                out: &mut [$t],
                params: &[$t],
                grad: &[$t],
                stride: usize,
                (rows, cols): (Range<usize>, Range<usize>),
                step: $t,
            ) {
                check_region(out.len(), stride, &rows, &cols);
                check_region(params.len(), stride, &rows, &cols);
                check_region(grad.len(), stride, &rows, &cols);
                if rows.is_empty() || cols.is_empty() {
                    return;
                }
                $(#[$features])*
                unsafe fn run(
                    out: *mut $t, params: *const $t, grad: *const $t,
                    stride: usize, rows: usize, width: usize, step: $t,
                ) {
                    // SAFETY: checked by the caller; features enabled on this function.
                    unsafe { update_rows::<$lanes>(out, params, grad, stride, rows, width, step) }
                }
                let start = rows.start * stride + cols.start;
                // SAFETY: the region was checked just above; `self` proves the features.
                unsafe {
                    run(
                        out[start..].as_mut_ptr(), params[start..].as_ptr(), grad[start..].as_ptr(),
                        stride, rows.len(), cols.len(), step,
                    )
                }
            }

            fn row_sums(self, values: &[$t], stride: usize, rows: usize, width: usize, out: &mut [$t]) {
                assert!(width % <$lanes as Lanes>::LANES == 0 && out.len() >= rows);
                check_region(values.len(), stride, &(0..rows), &(0..width));
                $(#[$features])*
                unsafe fn run(values: *const $t, stride: usize, rows: usize, width: usize, out: *mut $t) {
                    // SAFETY: checked by the caller; features enabled on this function.
                    unsafe { row_sums::<$lanes>(values, stride, rows, width, out) }
                }
                // SAFETY: the region and `out` were checked just above; `self` proves the features.
                unsafe { run(values.as_ptr(), stride, rows, width, out.as_mut_ptr()) }
            }

            fn transpose(
                self,
                src: &[$t],
                (rows, cols, src_stride): (usize, usize, usize),
                dst: &mut [$t],
                dst_stride: usize,
                pad: usize,
            ) {
                assert!(pad >= rows);
                check_region(src.len(), src_stride, &(0..rows), &(0..cols));
                check_region(dst.len(), dst_stride, &(0..cols), &(0..pad));
                $(#[$features])*
                unsafe fn run(src: *const $t, shape: (usize, usize, usize), dst: *mut $t, out: (usize, usize)) {
                    // SAFETY: checked by the caller; features enabled on this function.
                    unsafe { transpose::<$lanes>(src, shape, dst, out) }
                }
                // SAFETY: both regions were checked just above; `self` proves the features.
                unsafe { run(src.as_ptr(), (rows, cols, src_stride), dst.as_mut_ptr(), (dst_stride, pad)) }
            }

            fn fma_chains(self, rounds: usize, seed: $t) -> $t {
                $(#[$features])*
                unsafe fn run(rounds: usize, seed: $t) -> $t {
                    fma_chains::<$lanes>(rounds, seed)
                }
                // SAFETY: `self` proves that the CPU has the features of `run`.
                unsafe { run(rounds, seed) }
            }

            fn loss(self, loss: Loss, inputs: LossInputs<'_, $t>, delta: &mut [$t], inverse_batch: $t) -> $t {
                let LossInputs { a, slopes, y, outputs, stride, valid } = inputs;
                assert!(stride % <$lanes as Lanes>::LANES == 0 && valid <= stride && outputs >= 1);
                let whole = (0..outputs, 0..stride);
                for len in [a.len(), slopes.len(), y.len(), delta.len()] {
                    check_region(len, stride, &whole.0, &whole.1);
                }
                $(#[$features])*
                unsafe fn run(
                    loss: Loss, inputs: (*const $t, *const $t, *const $t), delta: *mut $t,
                    shape: (usize, usize, usize), inverse_batch: $t,
                ) -> $t {
                    // SAFETY: checked by the caller; features enabled on this function.
                    unsafe { loss_pass::<$lanes>(loss, inputs, delta, shape, inverse_batch) }
                }
                // SAFETY: the four matrices were checked just above; `self` proves the features.
                unsafe {
                    run(
                        loss,
                        (a.as_ptr(), slopes.as_ptr(), y.as_ptr()),
                        delta.as_mut_ptr(),
                        (outputs, stride, valid),
                        inverse_batch,
                    )
                }
            }
        }
    };
}

/// The portable path: plain Rust on arrays of four values, for any CPU.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct PortableKernels;

kernels!(
    PortableKernels, f32, Portable<f32>, [],
    nr_max: 2,
    tiles: { 1 => [1 2 3 4], 2 => [1 2 3 4] },
);
kernels!(
    PortableKernels, f64, Portable<f64>, [],
    nr_max: 2,
    tiles: { 1 => [1 2 3 4], 2 => [1 2 3 4] },
);

#[cfg(target_arch = "x86_64")]
pub(crate) use x86_kernels::{Avx2Kernels, Avx512Kernels};

#[cfg(target_arch = "x86_64")]
mod x86_kernels {
    use super::*;
    use crate::x86::{F32x8, F32x16, F64x4, F64x8};

    /// The AVX-512 path's token: AVX-512F, AVX2 and FMA.
    #[derive(Clone, Copy, Debug)]
    pub(crate) struct Avx512Kernels(());

    impl Avx512Kernels {
        /// The token, if the CPU has the path's features.
        pub(crate) fn detect() -> Option<Self> {
            let found = std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma");
            found.then_some(Avx512Kernels(()))
        }
    }

    /// The AVX2 path's token: AVX2 and FMA.
    #[derive(Clone, Copy, Debug)]
    pub(crate) struct Avx2Kernels(());

    impl Avx2Kernels {
        /// The token, if the CPU has the path's features.
        pub(crate) fn detect() -> Option<Self> {
            let found = std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma");
            found.then_some(Avx2Kernels(()))
        }
    }

    // 32 vector registers: up to 24 accumulators, the vectors of B and a broadcast.
    kernels!(
        Avx512Kernels, f32, F32x16, [#[target_feature(enable = "avx512f,avx2,fma")]],
        nr_max: 4,
        tiles: {
            1 => [1 2 3 4 5 6 7 8],
            2 => [1 2 3 4 5 6 7 8 9 10 11 12],
            3 => [1 2 3 4 5 6 7 8],
            4 => [1 2 3 4 5 6],
        },
    );
    kernels!(
        Avx512Kernels, f64, F64x8, [#[target_feature(enable = "avx512f,avx2,fma")]],
        nr_max: 4,
        tiles: {
            1 => [1 2 3 4 5 6 7 8],
            2 => [1 2 3 4 5 6 7 8 9 10 11 12],
            3 => [1 2 3 4 5 6 7 8],
            4 => [1 2 3 4 5 6],
        },
    );
    // 16 vector registers: up to 12 accumulators.
    kernels!(
        Avx2Kernels, f32, F32x8, [#[target_feature(enable = "avx2,fma")]],
        nr_max: 2,
        tiles: { 1 => [1 2 3 4 5 6 7 8], 2 => [1 2 3 4 5 6] },
    );
    kernels!(
        Avx2Kernels, f64, F64x4, [#[target_feature(enable = "avx2,fma")]],
        nr_max: 2,
        tiles: { 1 => [1 2 3 4 5 6 7 8], 2 => [1 2 3 4 5 6] },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The loss pass over `outputs x stride` values (`valid` samples), in
    /// blocks as it runs, and one vector at a time with the same running
    /// total: the same bits in `delta^L` and in the total.
    fn blocks_change_no_bit<T: Math>(loss: Loss, outputs: usize, stride: usize, valid: usize) {
        let value = |i: usize, scale: f64| T::from_f64(((i * 37 % 101) as f64 - 50.0) * scale);
        let len = outputs * stride;
        let a: Vec<T> = (0..len).map(|i| value(i, 0.02)).collect();
        let slopes: Vec<T> = (0..len).map(|i| value(i + 7, 0.005)).collect();
        let y: Vec<T> = (0..len).map(|i| value(i + 3, 0.01)).collect();
        let inverse_batch = T::ONE / T::from_usize(valid);
        let (ptrs, shape) = (
            (a.as_ptr(), slopes.as_ptr(), y.as_ptr()),
            (outputs, stride, valid),
        );
        let mut blocked = vec![T::from_f64(f64::NAN); len];
        let mut single = blocked.clone();
        // SAFETY: every matrix holds `outputs x stride` values, and each
        // vector of the walk below holds at least one sample.
        let (blocked_total, single_total) = unsafe {
            let blocked_total =
                loss_pass::<Portable<T>>(loss, ptrs, blocked.as_mut_ptr(), shape, inverse_batch);
            let mut single_total = T::ZERO;
            for col in (0..valid).step_by(4) {
                let (a, slopes, y) = ptrs;
                loss_block::<Portable<T>, 1>(
                    loss,
                    (a.add(col), slopes.add(col), y.add(col)),
                    single.as_mut_ptr().add(col),
                    (outputs, stride, valid - col),
                    inverse_batch,
                    &mut single_total,
                );
            }
            for i in 0..outputs {
                single[i * stride + valid.next_multiple_of(4)..(i + 1) * stride].fill(T::ZERO);
            }
            (blocked_total, single_total)
        };
        assert!(blocked_total.to_f64().is_finite());
        assert_eq!(
            blocked_total.to_f64().to_bits(),
            single_total.to_f64().to_bits()
        );
        let bits = |v: &[T]| v.iter().map(|x| x.to_f64().to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&blocked), bits(&single), "{loss:?}");
    }

    #[test]
    fn the_loss_passs_blocks_change_no_bit() {
        // 37 vectors of 4 lanes: two whole blocks, then five single vectors,
        // the last ragged; and a stride past the samples.
        for loss in [Loss::Mse, Loss::SoftmaxCrossEntropy] {
            for (stride, valid) in [(148, 146), (148, 148), (160, 129)] {
                blocks_change_no_bit::<f64>(loss, 5, stride, valid);
                blocks_change_no_bit::<f32>(loss, 5, stride, valid);
            }
        }
    }

    /// A 2 x 2-vector tile of depth 3 with `lanes` lanes, rows packed.
    fn tile(lanes: usize) -> TileSpec {
        TileSpec {
            depth: 3,
            a_row: 3,
            a_step: 1,
            b_step: 2 * lanes,
            c_row: 2 * lanes,
            last: lanes,
            accumulate: false,
        }
    }

    #[test]
    fn a_tile_that_fits_passes_its_check() {
        let lanes = 8;
        // A: 2 rows of 3; B: 3 steps of 2 vectors; C: 2 rows of 2 vectors.
        tile(lanes).check(2, 2, lanes, [6, 6 * lanes, 4 * lanes]);
    }

    /// The message `guard` panicked with, or `None` when it let the call through.
    fn refusal(guard: impl FnOnce()) -> Option<String> {
        let payload = std::panic::catch_unwind(std::panic::AssertUnwindSafe(guard)).err()?;
        let message = payload.downcast_ref::<String>().cloned();
        Some(message.unwrap_or_else(|| {
            payload
                .downcast_ref::<&str>()
                .map_or_else(String::new, |s| (*s).to_owned())
        }))
    }

    #[test]
    fn a_tile_one_value_past_b_is_refused() {
        // The second vector of B's last step ends one value past B.
        let lanes = 8;
        let message = refusal(|| tile(lanes).check(2, 2, lanes, [6, 6 * lanes - 1, 4 * lanes]));
        assert!(message.is_some_and(|m| m.contains("tile out of bounds")));
    }

    #[test]
    fn a_tile_one_value_past_c_is_refused() {
        let lanes = 8;
        let message = refusal(|| tile(lanes).check(2, 2, lanes, [6, 6 * lanes, 4 * lanes - 1]));
        assert!(message.is_some_and(|m| m.contains("tile out of bounds")));
    }

    #[test]
    fn a_region_one_value_past_its_matrix_is_refused() {
        // Rows 1..3 of 4 columns, rows 5 apart, end at 2 * 5 + 4 = 14.
        let message = refusal(|| check_region(13, 5, &(1..3), &(0..4)));
        assert!(message.is_some_and(|m| m.contains("region out of bounds")));
    }

    #[test]
    fn a_region_that_fits_or_is_empty_passes() {
        check_region(14, 5, &(1..3), &(0..4));
        check_region(0, 5, &(3..3), &(0..4));
        check_region(0, 5, &(0..4), &(2..2));
    }

    #[test]
    fn the_widest_path_the_cpu_has_is_detected() {
        #[cfg(target_arch = "x86_64")]
        {
            let has = |feature: &str| match feature {
                "avx512f" => std::arch::is_x86_feature_detected!("avx512f"),
                "avx2" => std::arch::is_x86_feature_detected!("avx2"),
                _ => std::arch::is_x86_feature_detected!("fma"),
            };
            let avx2 = has("avx2") && has("fma");
            assert_eq!(Avx2Kernels::detect().is_some(), avx2);
            assert_eq!(Avx512Kernels::detect().is_some(), avx2 && has("avx512f"));
        }
    }

    #[test]
    fn the_fma_chains_sum_what_they_compute() {
        // With x = 1 each chain adds y = 1e-7 per round: 12 chains of LANES lanes.
        fn check<K: Kernels<f64>>(k: K) {
            let expected = (12 * K::LANES * 10) as f64 * 1e-7;
            assert!(
                (k.fma_chains(10, 1.0) - expected).abs() < 1e-15,
                "{}",
                K::LANES
            );
        }
        check(PortableKernels);
        #[cfg(target_arch = "x86_64")]
        if let Some(k) = Avx512Kernels::detect() {
            check(k);
        }
    }

    /// Every activation of `k` over a dense sweep and at the limits against
    /// `backprop-core`'s scalar function: the largest error in units of `T`'s
    /// epsilon relative to `max(|expected|, tiny)`; and NaN stays NaN.
    fn worst_error<T: Math, K: Kernels<T>>(k: K, activation: Activation) -> f64 {
        let lanes = K::LANES;
        let mut z: Vec<T> = (0..40_000)
            .map(|i| T::from_f64((i as f64 - 20_000.0) / 1_000.0))
            .collect();
        z.extend([-1e4, -800.0, -100.0, -88.0, 88.0, 100.0, 800.0, 1e4].map(T::from_f64));
        z.resize(z.len().next_multiple_of(lanes), T::ZERO);
        let mut values = z.clone();
        let mut slopes = vec![T::ZERO; z.len()];
        let bias = [T::ZERO];
        k.activate(
            &mut values,
            Some(&mut slopes),
            &bias,
            z.len(),
            0..1,
            0..z.len(),
            activation,
        );
        let mut worst = 0.0f64;
        for ((&z, &a), &slope) in z.iter().zip(&values).zip(&slopes) {
            let (expected, expected_slope) = activation.value_and_slope(z);
            for (got, want) in [(a, expected), (slope, expected_slope)] {
                let (got, want) = (got.to_f64(), want.to_f64());
                let scale = want.abs().max(1e-30);
                worst = worst.max((got - want).abs() / scale / (2.0 * T::UNIT_ROUNDOFF));
            }
        }
        let mut nan = vec![T::from_f64(f64::NAN); lanes];
        k.activate(&mut nan, None, &bias, lanes, 0..1, 0..lanes, activation);
        // ReLU maps NaN to 0, as `Activation::value` does (`NaN > 0` is false).
        if activation != Activation::Relu {
            assert!(nan.iter().all(|v| !v.is_finite()), "{activation}: NaN lost");
        }
        worst
    }

    fn check_path<K: Kernels<f32> + Kernels<f64>>(k: K) {
        for activation in Activation::ALL {
            let (single, double) = (
                worst_error::<f32, K>(k, activation),
                worst_error::<f64, K>(k, activation),
            );
            // Measured on the AVX2 and portable paths: at most 2.7 (f32)
            // and 2.9 (tanh, f64) units.
            assert!(single <= 4.0, "{activation} f32: {single} eps");
            assert!(double <= 4.0, "{activation} f64: {double} eps");
        }
        let (single, double) = (
            worst_softmax_error::<f32, K>(k),
            worst_softmax_error::<f64, K>(k),
        );
        assert!(single <= 4.0, "softmax f32: {single} eps");
        assert!(double <= 4.0, "softmax f64: {double} eps");
    }

    /// The softmax cross-entropy pass of `k` against `Loss::output_gradient`
    /// on samples whose largest logit sits at every position, ties and
    /// dominant logits included: the largest error in units of `T`'s epsilon
    /// relative to each sample's largest `|delta|`, and the loss's.
    fn worst_softmax_error<T: Math, K: Kernels<T>>(k: K) -> f64 {
        let outputs = 4;
        let stride = 2 * K::LANES.max(4);
        let valid = stride - 1;
        // Logit rows: each position on top in turn, ties, and a top 50
        // ahead of the rest (where p - 1 rounds to 0 in either type).
        let row = |b: usize| -> [f64; 4] {
            let top = b % outputs;
            let mut z = [0.3 * b as f64 - 1.0, -0.7, 0.2, -2.0];
            z[top] = match b % 3 {
                0 => 50.0,
                1 => 1.5,
                _ => z[(top + 1) % outputs],
            };
            z
        };
        let (mut a, mut y) = (
            vec![T::ZERO; outputs * stride],
            vec![T::ZERO; outputs * stride],
        );
        for b in 0..valid {
            let z = row(b);
            for i in 0..outputs {
                a[i * stride + b] = T::from_f64(z[i]);
                // One-hot on the top, or spread, in turn.
                let target = if b % 2 == 0 {
                    f64::from(i == b % outputs)
                } else {
                    0.25
                };
                y[i * stride + b] = T::from_f64(target);
            }
        }
        let slopes = vec![T::ONE; outputs * stride];
        let inputs = LossInputs {
            a: &a,
            slopes: &slopes,
            y: &y,
            outputs,
            stride,
            valid,
        };
        let mut delta = vec![T::ZERO; outputs * stride];
        let inverse_batch = T::ONE / T::from_usize(valid);
        let total = k.loss(Loss::SoftmaxCrossEntropy, inputs, &mut delta, inverse_batch);
        let mut worst = 0.0f64;
        let mut expected_total = 0.0;
        for b in 0..valid {
            let column = |m: &[T]| (0..outputs).map(|i| m[i * stride + b]).collect::<Vec<T>>();
            let (z, targets) = (column(&a), column(&y));
            let mut expected = vec![T::ZERO; outputs];
            let loss = Loss::SoftmaxCrossEntropy;
            loss.output_gradient(&z, &targets, inverse_batch, &mut expected)
                .unwrap();
            expected_total += loss.sample_value(&z, &targets).unwrap().to_f64();
            let scale = expected.iter().fold(0.0f64, |s, e| s.max(e.to_f64().abs()));
            for (i, e) in expected.iter().enumerate() {
                let got = delta[i * stride + b].to_f64();
                worst = worst.max((got - e.to_f64()).abs() / scale / (2.0 * T::UNIT_ROUNDOFF));
            }
        }
        let loss_error = (total.to_f64() - expected_total).abs() / expected_total.abs();
        assert!(
            loss_error <= 64.0 * T::UNIT_ROUNDOFF,
            "loss {total} vs {expected_total}"
        );
        assert!((valid..stride).all(|b| (0..outputs).all(|i| delta[i * stride + b] == T::ZERO)));
        worst
    }

    #[test]
    fn activations_and_the_softmax_agree_with_the_core_functions_on_every_path() {
        check_path(PortableKernels);
        #[cfg(target_arch = "x86_64")]
        {
            if let Some(k) = Avx512Kernels::detect() {
                check_path(k);
            }
            if let Some(k) = Avx2Kernels::detect() {
                check_path(k);
            }
        }
    }
}
