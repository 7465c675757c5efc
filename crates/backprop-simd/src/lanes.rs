//! The vector operations the kernels are written in, the portable lanes, and the
//! elementwise math (exp, the activations and their slopes) built on them.
//!
//! Every kernel of the crate is generic over [`Lanes`]: one vector of `T`
//! values as a register of the instruction set in use. The x86 module
//! implements it for AVX-512 and AVX2 registers; [`Portable`] implements it
//! with plain arrays for any CPU. The generic code is only ever instantiated
//! inside functions compiled for the matching instruction set, which run only
//! after the CPU was found to have it (see `kernels.rs`).

use backprop_core::{Activation, Scalar};

/// One vector of `LANES` values of `T`, and what the kernels do with it.
///
/// Methods are `#[inline(always)]` in every implementation, so that they are
/// compiled into the caller, which carries the target features.
pub(crate) trait Lanes: Copy {
    /// The element type.
    type T: Math;
    /// A per-lane condition.
    type Mask: Copy;
    /// Values per vector.
    const LANES: usize;

    /// Every lane `value`.
    fn splat(value: Self::T) -> Self;
    /// Loads `LANES` values from `p`.
    ///
    /// # Safety
    /// `p .. p + LANES` must be readable.
    unsafe fn load(p: *const Self::T) -> Self;
    /// Loads the first `count` values from `p` (`1 <= count <= LANES`), zero in the other lanes.
    ///
    /// # Safety
    /// `p .. p + count` must be readable.
    unsafe fn load_first(p: *const Self::T, count: usize) -> Self;
    /// Stores every lane at `p`.
    ///
    /// # Safety
    /// `p .. p + LANES` must be writable.
    unsafe fn store(self, p: *mut Self::T);
    /// Stores the first `count` lanes at `p` (`1 <= count <= LANES`).
    ///
    /// # Safety
    /// `p .. p + count` must be writable.
    unsafe fn store_first(self, p: *mut Self::T, count: usize);
    /// Every lane the value at `p`.
    ///
    /// # Safety
    /// `p` must be readable.
    #[inline(always)]
    unsafe fn broadcast(p: *const Self::T) -> Self {
        // SAFETY: the caller guarantees that `p` is readable.
        Self::splat(unsafe { p.read() })
    }

    /// `self + other`.
    fn add(self, other: Self) -> Self;
    /// `self - other`.
    fn sub(self, other: Self) -> Self;
    /// `self * other`.
    fn mul(self, other: Self) -> Self;
    /// `self / other`.
    fn div(self, other: Self) -> Self;
    /// `self * b + c`, with one rounding where the instruction set has FMA.
    fn mul_add(self, b: Self, c: Self) -> Self;
    /// The larger of the two (`other` if either is NaN).
    fn max(self, other: Self) -> Self;
    /// The smaller of the two (`other` if either is NaN).
    fn min(self, other: Self) -> Self;
    /// `|self|`.
    fn abs(self) -> Self;
    /// `-|self|`.
    #[inline(always)]
    fn neg_abs(self) -> Self {
        Self::splat(<Self::T as Scalar>::ZERO).sub(self.abs())
    }
    /// Rounded toward minus infinity.
    fn floor(self) -> Self;
    /// `2^self`, for integer values in the normal exponent range.
    fn pow2(self) -> Self;
    /// `self * 2^n` for integer values `n` (at most a few hundreds, or a
    /// few thousands for `f64`), with one rounding, so that results below
    /// the smallest normal number come out as subnormals: `2^n` applied in
    /// two halves that each stay in the normal range.
    #[inline(always)]
    fn scale_pow2(self, n: Self) -> Self {
        scale_pow2_in_halves(self, n)
    }
    /// Lanes where `self > other`.
    fn gt(self, other: Self) -> Self::Mask;
    /// Lanes where `self < other`.
    fn lt(self, other: Self) -> Self::Mask;
    /// `if_true` where `mask` is set, else `if_false`.
    fn select(mask: Self::Mask, if_true: Self, if_false: Self) -> Self;
    /// The sum of the lanes.
    fn reduce_add(self) -> Self::T;

    /// `e^x` per lane: `exp.rs` of `backprop-core` in vector form.
    #[inline(always)]
    fn exp(self) -> Self {
        exp(self)
    }

    /// `ln x` per lane, one lane at a time (used once per sample by the softmax).
    #[inline(always)]
    fn ln(self) -> Self {
        let mut values = [<Self::T as Scalar>::ZERO; MAX_LANES];
        // SAFETY: `values` holds `MAX_LANES >= LANES` values.
        unsafe { self.store(values.as_mut_ptr()) };
        for value in &mut values[..Self::LANES] {
            *value = value.ln();
        }
        // SAFETY: as above.
        unsafe { Self::load(values.as_ptr()) }
    }

    /// `1 / self`: a division unless the instruction set has a fast
    /// reciprocal, refined to within an ulp or two (and exact for powers of two).
    #[inline(always)]
    fn recip(self) -> Self {
        Self::splat(<Self::T as Scalar>::ONE).div(self)
    }

    /// Transposes one block of up to `LANES x LANES` values: reads `rows`
    /// rows of `cols` values at `src` (rows `src_stride` apart), and writes
    /// `cols` rows of `count` values at `dst` (rows `dst_stride` apart),
    /// `dst[c][r] = src[r][c]`, zero for `r >= rows`.
    ///
    /// # Safety
    /// The rows read must be readable and the rows written writable; `rows`,
    /// `cols` and `count` are at most `LANES`, `cols` and `count` at least 1.
    #[inline(always)]
    unsafe fn transpose_block(
        src: *const Self::T,
        src_stride: usize,
        dst: *mut Self::T,
        dst_stride: usize,
        (rows, cols, count): (usize, usize, usize),
    ) {
        for c in 0..cols {
            for r in 0..count {
                let value = if r < rows {
                    // SAFETY: a position the caller vouches for.
                    unsafe { src.add(r * src_stride + c).read() }
                } else {
                    <Self::T as Scalar>::ZERO
                };
                // SAFETY: a position the caller vouches for.
                unsafe { dst.add(c * dst_stride + r).write(value) };
            }
        }
    }
}

/// The most lanes any implementation has (16 `f32` in an AVX-512 register).
pub(crate) const MAX_LANES: usize = 16;

/// The constants and per-type pieces of the vector math, for `f32` and `f64`.
pub(crate) trait Math: Scalar {
    /// `log2 e`.
    const LOG2_E: Self;
    /// The high part of `ln 2`, with few enough bits that `n * LN2_HI` is exact.
    const LN2_HI: Self;
    /// `ln 2 - LN2_HI`.
    const LN2_LO: Self;
    /// `1.5 * 2^p`: adding it rounds to an integer.
    const ROUNDER: Self;
    /// The largest argument whose exponential is finite.
    const MAX_EXP_ARGUMENT: Self;
    /// The smallest argument whose exponential rounds to more than zero.
    const MIN_EXP_ARGUMENT: Self;
    /// Positive infinity.
    const INFINITY: Self;
    /// `e^r` for `|r| <= ln(2)/2`.
    fn exp_reduced<V: Lanes<T = Self>>(r: V) -> V;
    /// `tanh x` for `|x| < 0.625`, where `1 - 2 / (e^{2x} + 1)` would cancel.
    fn tanh_small<V: Lanes<T = Self>>(x: V) -> V;
    /// `2^k` for an integer `k` in the normal exponent range.
    fn pow2_scalar(k: Self) -> Self;
    /// `floor(x)`.
    fn floor_scalar(x: Self) -> Self;
}

/// A constant as a vector.
#[inline(always)]
fn c<V: Lanes>(value: f64) -> V {
    V::splat(V::T::from_f64(value))
}

impl Math for f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const ROUNDER: f32 = 12_582_912.0;
    const MAX_EXP_ARGUMENT: f32 = 88.722_84;
    const MIN_EXP_ARGUMENT: f32 = -103.972_08;
    const INFINITY: f32 = f32::INFINITY;

    #[inline(always)]
    fn exp_reduced<V: Lanes<T = f32>>(r: V) -> V {
        // The Cephes single-precision coefficients, as in `backprop-core`,
        // summed by Estrin's scheme (see `estrin_pair`).
        let c = [
            1.0,
            1.0,
            0.5,
            1.666_666_5e-1,
            4.166_579_6e-2,
            8.333_452e-3,
            1.398_199_9e-3,
            1.987_569_1e-4,
        ];
        let r2 = r.mul(r);
        let r4 = r2.mul(r2);
        let tail = estrin_pair(c[6], c[7], r).mul_add(r4, estrin_four(&c[2..6], r, r2));
        horner_head(tail, &c[..2], r)
    }

    #[inline(always)]
    fn tanh_small<V: Lanes<T = f32>>(x: V) -> V {
        // Cephes `tanhf`: x + x^3 P(x^2), relative error about 2^-24.
        let z = x.mul(x);
        let mut p = V::splat(-5.704_988_7e-3);
        p = p.mul_add(z, V::splat(2.063_909e-2));
        p = p.mul_add(z, V::splat(-5.373_971_6e-2));
        p = p.mul_add(z, V::splat(1.333_144_2e-1));
        p = p.mul_add(z, V::splat(-3.333_328e-1));
        p.mul(z).mul_add(x, x)
    }

    fn pow2_scalar(k: f32) -> f32 {
        2f32.powi(k as i32)
    }

    fn floor_scalar(x: f32) -> f32 {
        x.floor()
    }
}

impl Math for f64 {
    const LOG2_E: f64 = std::f64::consts::LOG2_E;
    const LN2_HI: f64 = 6.931_471_803_691_238e-1;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    const ROUNDER: f64 = 6_755_399_441_055_744.0;
    const MAX_EXP_ARGUMENT: f64 = 709.782_712_893_383_9;
    const MIN_EXP_ARGUMENT: f64 = -745.133_219_101_941_1;
    const INFINITY: f64 = f64::INFINITY;

    #[inline(always)]
    fn exp_reduced<V: Lanes<T = f64>>(r: V) -> V {
        // Taylor coefficients 1/k! up to k = 13, as in `backprop-core`,
        // summed by Estrin's scheme (see `estrin_pair`).
        let c = [
            1.0,
            1.0,
            1.0 / 2.0,
            1.0 / 6.0,
            1.0 / 24.0,
            1.0 / 120.0,
            1.0 / 720.0,
            1.0 / 5_040.0,
            1.0 / 40_320.0,
            1.0 / 362_880.0,
            1.0 / 3_628_800.0,
            1.0 / 39_916_800.0,
            1.0 / 479_001_600.0,
            1.0 / 6_227_020_800.0,
        ];
        let r2 = r.mul(r);
        let r4 = r2.mul(r2);
        let r8 = r4.mul(r4);
        let low = estrin_four(&c[6..10], r, r2).mul_add(r4, estrin_four(&c[2..6], r, r2));
        let tail = estrin_four(&c[10..], r, r2).mul_add(r8, low);
        horner_head(tail, &c[..2], r)
    }

    #[inline(always)]
    fn tanh_small<V: Lanes<T = f64>>(x: V) -> V {
        // Cephes `tanh`: x + x^3 P(x^2) / Q(x^2).
        let s = x.mul(x);
        let p = V::splat(-9.643_991_794_250_523e-1)
            .mul_add(s, V::splat(-9.928_772_310_019_185e1))
            .mul_add(s, V::splat(-1.614_687_684_417_079_5e3));
        let q = s
            .add(V::splat(1.128_116_784_916_329_3e2))
            .mul_add(s, V::splat(2.235_488_390_601_004_6e3))
            .mul_add(s, V::splat(4.844_063_053_251_255e3));
        x.mul(s).mul(p.mul(q.recip())).add(x)
    }

    fn pow2_scalar(k: f64) -> f64 {
        2f64.powi(k as i32)
    }

    fn floor_scalar(x: f64) -> f64 {
        x.floor()
    }
}

/// `c0 + c1 r`: the leaves of Estrin's scheme, which sums a polynomial as
/// a tree of such pairs, joined in powers `r^2`, `r^4`, `r^8` (each join
/// one FMA): the exponential's polynomial is 6 FMAs deep instead of
/// Horner's 14 in `f64` (5 instead of 8 in `f32`), with its first two
/// terms still added by Horner's scheme ([`horner_head`]), which keeps it
/// as accurate (measured on a sweep of `x`: 0.70 units in the last place
/// in `f32`, as with Horner's scheme). On an AMD EPYC of the Zen 2 family
/// (AVX2), sigmoid and tanh epilogues ran 4-7% (`f32`) and 16-20% (`f64`)
/// faster than with Horner's scheme.
#[inline(always)]
fn estrin_pair<V: Lanes>(c0: V::T, c1: V::T, r: V) -> V {
    V::splat(c1).mul_add(r, V::splat(c0))
}

/// `c[0] + r (c[1] + r tail)`: the polynomial's first two terms added by
/// Horner's scheme to the rest (`tail`, summed by Estrin's), so that the
/// result is rounded by its last FMA alone and the tail's larger rounding
/// errors come scaled by `r^2 <= 0.12`.
#[inline(always)]
fn horner_head<V: Lanes>(tail: V, c: &[V::T], r: V) -> V {
    tail.mul_add(r, V::splat(c[1])).mul_add(r, V::splat(c[0]))
}

/// `c[0] + c[1] r + c[2] r^2 + c[3] r^3` by Estrin's scheme, given `r2 = r^2`.
#[inline(always)]
fn estrin_four<V: Lanes>(c: &[V::T], r: V, r2: V) -> V {
    estrin_pair(c[2], c[3], r).mul_add(r2, estrin_pair(c[0], c[1], r))
}

/// [`Lanes::scale_pow2`] for any `n` it allows: `2^n` applied in two
/// halves that each stay in the normal range.
#[inline(always)]
pub(crate) fn scale_pow2_in_halves<V: Lanes>(x: V, n: V) -> V {
    let half = n.mul(V::splat(<V::T as Scalar>::HALF)).floor();
    x.mul(half.pow2()).mul(n.sub(half).pow2())
}

/// `e^x` per lane, the algorithm of `backprop-core`'s `exp.rs`: `n = round(x /
/// ln 2)`, `r = x - n ln 2` in two parts, its polynomial for `e^r` (summed
/// by Estrin's scheme here, by Horner's there), and
/// `e^r 2^n` (see [`Lanes::scale_pow2`]). Within one unit in the last place;
/// `+inf` above the largest finite result, `0` below the smallest, NaN for NaN.
#[inline(always)]
pub(crate) fn exp<V: Lanes>(x: V) -> V {
    exp_checked::<V, true>(x)
}

/// [`exp`], without the checks for large arguments when `UPPER` is false:
/// then `x` must be at most 0 (or NaN).
#[inline(always)]
fn exp_checked<V: Lanes, const UPPER: bool>(x: V) -> V {
    let (max, min) = (
        V::splat(V::T::MAX_EXP_ARGUMENT),
        V::splat(V::T::MIN_EXP_ARGUMENT),
    );
    // `max` and `min` return their second operand when either is NaN, so a
    // NaN argument stays NaN through the clamp and everything after it.
    let clamped = if UPPER {
        max.min(min.max(x))
    } else {
        min.max(x)
    };
    let rounder = V::splat(V::T::ROUNDER);
    let n = clamped
        .mul_add(V::splat(V::T::LOG2_E), rounder)
        .sub(rounder);
    let r = n.mul_add(V::splat(-V::T::LN2_HI), clamped);
    let r = n.mul_add(V::splat(-V::T::LN2_LO), r);
    let value = V::T::exp_reduced(r).scale_pow2(n);
    let value = if UPPER {
        V::select(x.gt(max), V::splat(V::T::INFINITY), value)
    } else {
        value
    };
    V::select(x.lt(min), V::splat(V::T::ZERO), value)
}

/// `tanh x` and its slope `1 - tanh^2 x` per lane, from `t = e^{-2|x|}`, at
/// most 1, and `q = 1 / (1 + t)`: the value is [`Math::tanh_small`] below
/// `|x| = 0.625` and `sign(x) (1 - 2 t q)` above (Cephes' form, with `t`
/// instead of `1 / t`, which overflows); the slope is `4 t q^2` everywhere,
/// which keeps its relative accuracy where `1 - tanh^2 x` would cancel to 0.
#[inline(always)]
pub(crate) fn tanh_and_slope<V: Lanes>(x: V) -> (V, V) {
    let one = V::splat(V::T::ONE);
    let magnitude = x.abs();
    let t = exp_checked::<V, false>(magnitude.add(magnitude).neg_abs());
    let q = one.add(t).recip();
    let two_t_q = t.add(t).mul(q);
    let large = one.sub(two_t_q);
    let large = V::select(
        x.lt(V::splat(V::T::ZERO)),
        V::splat(V::T::ZERO).sub(large),
        large,
    );
    let small = V::T::tanh_small(x);
    // A NaN argument is NaN in `large`, and so in the result.
    let value = V::select(magnitude.lt(c(0.625)), small, large);
    (value, two_t_q.add(two_t_q).mul(q))
}

/// `act(z)` and `act'(z)` per lane, as `backprop-core`'s `Activation`
/// defines them: the sigmoid without overflow for any `|z|`, the slopes
/// formed from `z` without cancellation (`Activation::slope`), ReLU's slope
/// 0 at 0.
#[inline(always)]
pub(crate) fn activate<V: Lanes>(activation: Activation, z: V) -> (V, V) {
    let zero = V::splat(V::T::ZERO);
    let one = V::splat(V::T::ONE);
    match activation {
        Activation::Sigmoid => {
            // With e = e^-|z| and q = 1 / (1 + e): q for z >= 0, e q below;
            // the slope e q^2.
            let e = exp_checked::<V, false>(z.neg_abs());
            let q = one.add(e).recip();
            let e_q = e.mul(q);
            (V::select(z.lt(zero), e_q, q), e_q.mul(q))
        }
        Activation::Tanh => tanh_and_slope(z),
        Activation::Relu => {
            let positive = z.gt(zero);
            (V::select(positive, z, zero), V::select(positive, one, zero))
        }
        Activation::Identity => (z, one),
    }
}

/// Portable lanes: four values in an array, for CPUs without the vector
/// instructions of the x86 paths (and to check those paths against). The
/// compiler vectorizes them for the baseline instruction set; `exp` and `ln`
/// are `backprop-core`'s scalar functions, lane by lane.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Portable<T>([T; 4]);

impl<T: Math> Portable<T> {
    #[inline(always)]
    fn map(self, f: impl Fn(T) -> T) -> Self {
        Portable(self.0.map(f))
    }

    #[inline(always)]
    fn zip(self, other: Self, f: impl Fn(T, T) -> T) -> Self {
        let mut out = self.0;
        for (out, other) in out.iter_mut().zip(other.0) {
            *out = f(*out, other);
        }
        Portable(out)
    }

    #[inline(always)]
    fn test(self, other: Self, f: impl Fn(T, T) -> bool) -> [bool; 4] {
        let mut out = [false; 4];
        for ((out, a), b) in out.iter_mut().zip(self.0).zip(other.0) {
            *out = f(a, b);
        }
        out
    }
}

impl<T: Math> Lanes for Portable<T> {
    type T = T;
    type Mask = [bool; 4];
    const LANES: usize = 4;

    #[inline(always)]
    fn splat(value: T) -> Self {
        Portable([value; 4])
    }

    #[inline(always)]
    unsafe fn load(p: *const T) -> Self {
        // SAFETY: the caller guarantees four readable values at `p`.
        Portable(unsafe { p.cast::<[T; 4]>().read_unaligned() })
    }

    #[inline(always)]
    unsafe fn load_first(p: *const T, count: usize) -> Self {
        let mut out = [T::ZERO; 4];
        for (i, out) in out.iter_mut().enumerate().take(count) {
            // SAFETY: the caller guarantees `count` readable values at `p`.
            *out = unsafe { p.add(i).read() };
        }
        Portable(out)
    }

    #[inline(always)]
    unsafe fn store(self, p: *mut T) {
        // SAFETY: the caller guarantees four writable values at `p`.
        unsafe { p.cast::<[T; 4]>().write_unaligned(self.0) }
    }

    #[inline(always)]
    unsafe fn store_first(self, p: *mut T, count: usize) {
        for (i, value) in self.0.into_iter().enumerate().take(count) {
            // SAFETY: the caller guarantees `count` writable values at `p`.
            unsafe { p.add(i).write(value) };
        }
    }

    #[inline(always)]
    fn add(self, other: Self) -> Self {
        self.zip(other, |a, b| a + b)
    }

    #[inline(always)]
    fn sub(self, other: Self) -> Self {
        self.zip(other, |a, b| a - b)
    }

    #[inline(always)]
    fn mul(self, other: Self) -> Self {
        self.zip(other, |a, b| a * b)
    }

    #[inline(always)]
    fn div(self, other: Self) -> Self {
        self.zip(other, |a, b| a / b)
    }

    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        self.mul(b).add(c)
    }

    #[inline(always)]
    fn max(self, other: Self) -> Self {
        self.zip(other, |a, b| if a > b { a } else { b })
    }

    #[inline(always)]
    fn min(self, other: Self) -> Self {
        self.zip(other, |a, b| if a < b { a } else { b })
    }

    #[inline(always)]
    fn abs(self) -> Self {
        self.map(T::abs)
    }

    #[inline(always)]
    fn floor(self) -> Self {
        self.map(T::floor_scalar)
    }

    #[inline(always)]
    fn pow2(self) -> Self {
        self.map(T::pow2_scalar)
    }

    #[inline(always)]
    fn gt(self, other: Self) -> [bool; 4] {
        self.test(other, |a, b| a > b)
    }

    #[inline(always)]
    fn lt(self, other: Self) -> [bool; 4] {
        self.test(other, |a, b| a < b)
    }

    #[inline(always)]
    fn select(mask: [bool; 4], if_true: Self, if_false: Self) -> Self {
        let mut out = if_false.0;
        for ((out, set), value) in out.iter_mut().zip(mask).zip(if_true.0) {
            if set {
                *out = value;
            }
        }
        Portable(out)
    }

    #[inline(always)]
    fn reduce_add(self) -> T {
        let [a, b, c, d] = self.0;
        (a + c) + (b + d)
    }

    #[inline(always)]
    fn exp(self) -> Self {
        self.map(T::exp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each lane of `f` on `V` against the scalar `g`, in units in the last
    /// place (relative to the larger magnitude, for values near zero).
    fn worst_ulps<V: Lanes<T = f64>>(
        f: impl Fn(V) -> V,
        g: impl Fn(f64) -> f64,
        xs: &[f64],
    ) -> f64 {
        let mut worst = 0.0f64;
        let mut out = [0.0; MAX_LANES];
        for chunk in xs.chunks_exact(V::LANES) {
            // SAFETY: the chunk and `out` hold at least `LANES` values.
            unsafe { f(V::load(chunk.as_ptr())).store(out.as_mut_ptr()) };
            for (&x, &y) in chunk.iter().zip(&out) {
                let expected = g(x);
                if expected.is_finite() && expected != 0.0 {
                    worst = worst.max((y - expected).abs() / (expected.abs() * f64::EPSILON));
                } else {
                    assert_eq!(y, expected, "at {x}");
                }
            }
        }
        worst
    }

    #[test]
    fn portable_exp_is_the_core_function() {
        let xs: Vec<f64> = (0..4000).map(|i| (i as f64 - 2000.0) / 97.0).collect();
        assert_eq!(
            worst_ulps::<Portable<f64>>(|v| v.exp(), Scalar::exp, &xs),
            0.0
        );
    }
}
