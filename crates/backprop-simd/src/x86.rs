//! The x86-64 lanes: AVX-512 registers (16 `f32` or 8 `f64`) and AVX2 registers
//! (8 `f32` or 4 `f64`), both with FMA.
//!
//! Every method calls intrinsics that need the path's target features. The
//! types are only used by code instantiated inside the `#[target_feature]`
//! functions of `kernels.rs`, which are only called with a [`crate::kernels::Kernels`]
//! token that was created after the CPU was detected to have those features,
//! and every method is `#[inline(always)]`, so it is compiled into such a
//! function: that is the safety argument of every `unsafe` block here.

#[allow(clippy::wildcard_imports)]
use std::arch::x86_64::*;

use crate::lanes::{Lanes, Math as _, scale_pow2_in_halves};

/// Sixteen `f32` in an AVX-512 register.
#[derive(Clone, Copy, Debug)]
pub(crate) struct F32x16(__m512);

/// Eight `f64` in an AVX-512 register.
#[derive(Clone, Copy, Debug)]
pub(crate) struct F64x8(__m512d);

/// Eight `f32` in an AVX2 register.
#[derive(Clone, Copy, Debug)]
pub(crate) struct F32x8(__m256);

/// Four `f64` in an AVX2 register.
#[derive(Clone, Copy, Debug)]
pub(crate) struct F64x4(__m256d);

/// The AVX-512 mask of the first `count` of 16 lanes.
#[inline(always)]
fn first16(count: usize) -> __mmask16 {
    ((1u32 << count.min(16)) - 1) as __mmask16
}

/// The AVX-512 mask of the first `count` of 8 lanes.
#[inline(always)]
fn first8(count: usize) -> __mmask8 {
    ((1u32 << count.min(8)) - 1) as __mmask8
}

impl Lanes for F32x16 {
    type T = f32;
    type Mask = __mmask16;
    const LANES: usize = 16;

    #[inline(always)]
    fn splat(value: f32) -> Self {
        // SAFETY: see the module docs (AVX-512F is enabled where this runs).
        F32x16(unsafe { _mm512_set1_ps(value) })
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: the caller vouches for 16 readable values; features as in the module docs.
        F32x16(unsafe { _mm512_loadu_ps(p) })
    }
    #[inline(always)]
    unsafe fn load_first(p: *const f32, count: usize) -> Self {
        // SAFETY: masked-off lanes are not read; the caller vouches for the others.
        F32x16(unsafe { _mm512_maskz_loadu_ps(first16(count), p) })
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: the caller vouches for 16 writable values.
        unsafe { _mm512_storeu_ps(p, self.0) }
    }
    #[inline(always)]
    unsafe fn store_first(self, p: *mut f32, count: usize) {
        // SAFETY: masked-off lanes are not written; the caller vouches for the others.
        unsafe { _mm512_mask_storeu_ps(p, first16(count), self.0) }
    }
    #[inline(always)]
    unsafe fn broadcast(p: *const f32) -> Self {
        // SAFETY: the caller vouches for `p`.
        F32x16(unsafe { _mm512_set1_ps(p.read()) })
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        // SAFETY: see the module docs.
        F32x16(unsafe { _mm512_add_ps(self.0, o.0) })
    }
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        // SAFETY: see the module docs.
        F32x16(unsafe { _mm512_sub_ps(self.0, o.0) })
    }
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        // SAFETY: see the module docs.
        F32x16(unsafe { _mm512_mul_ps(self.0, o.0) })
    }
    #[inline(always)]
    fn div(self, o: Self) -> Self {
        // SAFETY: see the module docs.
        F32x16(unsafe { _mm512_div_ps(self.0, o.0) })
    }
    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        // SAFETY: see the module docs.
        F32x16(unsafe { _mm512_fmadd_ps(self.0, b.0, c.0) })
    }
    #[inline(always)]
    fn max(self, o: Self) -> Self {
        // SAFETY: see the module docs.
        F32x16(unsafe { _mm512_max_ps(self.0, o.0) })
    }
    #[inline(always)]
    fn min(self, o: Self) -> Self {
        // SAFETY: see the module docs.
        F32x16(unsafe { _mm512_min_ps(self.0, o.0) })
    }
    #[inline(always)]
    fn abs(self) -> Self {
        // SAFETY: see the module docs.
        F32x16(unsafe { _mm512_abs_ps(self.0) })
    }
    #[inline(always)]
    fn neg_abs(self) -> Self {
        // SAFETY: see the module docs. Sets the sign bit: one instruction.
        F32x16(unsafe {
            _mm512_castsi512_ps(_mm512_or_si512(
                _mm512_castps_si512(self.0),
                _mm512_set1_epi32(i32::MIN),
            ))
        })
    }
    #[inline(always)]
    fn floor(self) -> Self {
        // SAFETY: see the module docs.
        F32x16(unsafe {
            _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC }>(self.0)
        })
    }
    #[inline(always)]
    fn pow2(self) -> Self {
        // SAFETY: see the module docs. `k + 1.5 * 2^23` holds `k` in its low
        // mantissa bits; moved into the exponent field they make `2^k`.
        F32x16(unsafe {
            let rounder = _mm512_set1_ps(f32::ROUNDER);
            let bits = _mm512_castps_si512(_mm512_add_ps(self.0, rounder));
            let k = _mm512_sub_epi32(bits, _mm512_castps_si512(rounder));
            _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_add_epi32(
                k,
                _mm512_set1_epi32(127),
            )))
        })
    }
    #[inline(always)]
    fn scale_pow2(self, n: Self) -> Self {
        // SAFETY: see the module docs. `vscalefps` computes `self * 2^n` with
        // one rounding, subnormal and infinite results included.
        F32x16(unsafe { _mm512_scalef_ps(self.0, n.0) })
    }
    #[inline(always)]
    fn gt(self, o: Self) -> __mmask16 {
        // SAFETY: see the module docs.
        unsafe { _mm512_cmp_ps_mask::<_CMP_GT_OQ>(self.0, o.0) }
    }
    #[inline(always)]
    fn lt(self, o: Self) -> __mmask16 {
        // SAFETY: see the module docs.
        unsafe { _mm512_cmp_ps_mask::<_CMP_LT_OQ>(self.0, o.0) }
    }
    #[inline(always)]
    fn select(mask: __mmask16, if_true: Self, if_false: Self) -> Self {
        // SAFETY: see the module docs.
        F32x16(unsafe { _mm512_mask_blend_ps(mask, if_false.0, if_true.0) })
    }
    #[inline(always)]
    fn reduce_add(self) -> f32 {
        // SAFETY: see the module docs.
        unsafe { _mm512_reduce_add_ps(self.0) }
    }
    #[inline(always)]
    fn recip(self) -> Self {
        // SAFETY: see the module docs. One Newton step on the 14-bit
        // estimate: r (1 + (1 - x r)), relative error below 2^-27.
        F32x16(unsafe {
            let r = _mm512_rcp14_ps(self.0);
            let e = _mm512_fnmadd_ps(self.0, r, _mm512_set1_ps(1.0));
            _mm512_fmadd_ps(r, e, r)
        })
    }
    #[inline(always)]
    unsafe fn transpose_block(
        src: *const f32,
        ss: usize,
        dst: *mut f32,
        ds: usize,
        (rows, cols, count): (usize, usize, usize),
    ) {
        // SAFETY: the caller vouches for the rows read and written; masked
        // lanes are neither read nor written. Features as in the module docs.
        unsafe {
            let mut r = [_mm512_setzero_ps(); 16];
            for (i, r) in r.iter_mut().enumerate().take(rows) {
                *r = if cols == 16 {
                    _mm512_loadu_ps(src.add(i * ss))
                } else {
                    _mm512_maskz_loadu_ps(first16(cols), src.add(i * ss))
                };
            }
            let columns = transpose16(r);
            for (c, &column) in columns.iter().enumerate().take(cols) {
                if count == 16 {
                    _mm512_storeu_ps(dst.add(c * ds), column);
                } else {
                    _mm512_mask_storeu_ps(dst.add(c * ds), first16(count), column);
                }
            }
        }
    }
}

/// The transpose of 16 rows of 16 `f32`: interleave pairs of rows by 32,
/// then by 64 bits (within each 128-bit lane, `u[4g + c]` then holds column
/// `4 lane + c` of rows `4g .. 4g + 3`), then gather the 128-bit lanes twice.
#[inline(always)]
fn transpose16(r: [__m512; 16]) -> [__m512; 16] {
    // SAFETY: see the module docs.
    unsafe {
        let mut t = [_mm512_setzero_ps(); 16];
        for k in 0..8 {
            t[2 * k] = _mm512_unpacklo_ps(r[2 * k], r[2 * k + 1]);
            t[2 * k + 1] = _mm512_unpackhi_ps(r[2 * k], r[2 * k + 1]);
        }
        let mut u = [_mm512_setzero_ps(); 16];
        for g in 0..4 {
            let (a, b, c, d) = (
                _mm512_castps_pd(t[4 * g]),
                _mm512_castps_pd(t[4 * g + 2]),
                _mm512_castps_pd(t[4 * g + 1]),
                _mm512_castps_pd(t[4 * g + 3]),
            );
            u[4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
            u[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
            u[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(c, d));
            u[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(c, d));
        }
        let mut s = [_mm512_setzero_ps(); 16];
        for h in [0, 8] {
            for c in 0..4 {
                s[h + c] = _mm512_shuffle_f32x4::<0x88>(u[h + c], u[h + 4 + c]);
                s[h + 4 + c] = _mm512_shuffle_f32x4::<0xDD>(u[h + c], u[h + 4 + c]);
            }
        }
        let mut out = [_mm512_setzero_ps(); 16];
        for c in 0..4 {
            out[c] = _mm512_shuffle_f32x4::<0x88>(s[c], s[8 + c]);
            out[8 + c] = _mm512_shuffle_f32x4::<0xDD>(s[c], s[8 + c]);
            out[4 + c] = _mm512_shuffle_f32x4::<0x88>(s[4 + c], s[12 + c]);
            out[12 + c] = _mm512_shuffle_f32x4::<0xDD>(s[4 + c], s[12 + c]);
        }
        out
    }
}

impl Lanes for F64x8 {
    type T = f64;
    type Mask = __mmask8;
    const LANES: usize = 8;

    #[inline(always)]
    fn splat(value: f64) -> Self {
        // SAFETY: see the module docs.
        F64x8(unsafe { _mm512_set1_pd(value) })
    }
    #[inline(always)]
    unsafe fn load(p: *const f64) -> Self {
        // SAFETY: the caller vouches for 8 readable values.
        F64x8(unsafe { _mm512_loadu_pd(p) })
    }
    #[inline(always)]
    unsafe fn load_first(p: *const f64, count: usize) -> Self {
        // SAFETY: masked-off lanes are not read; the caller vouches for the others.
        F64x8(unsafe { _mm512_maskz_loadu_pd(first8(count), p) })
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f64) {
        // SAFETY: the caller vouches for 8 writable values.
        unsafe { _mm512_storeu_pd(p, self.0) }
    }
    #[inline(always)]
    unsafe fn store_first(self, p: *mut f64, count: usize) {
        // SAFETY: masked-off lanes are not written; the caller vouches for the others.
        unsafe { _mm512_mask_storeu_pd(p, first8(count), self.0) }
    }
    #[inline(always)]
    unsafe fn broadcast(p: *const f64) -> Self {
        // SAFETY: the caller vouches for `p`.
        F64x8(unsafe { _mm512_set1_pd(p.read()) })
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        // SAFETY: see the module docs.
        F64x8(unsafe { _mm512_add_pd(self.0, o.0) })
    }
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        // SAFETY: see the module docs.
        F64x8(unsafe { _mm512_sub_pd(self.0, o.0) })
    }
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        // SAFETY: see the module docs.
        F64x8(unsafe { _mm512_mul_pd(self.0, o.0) })
    }
    #[inline(always)]
    fn div(self, o: Self) -> Self {
        // SAFETY: see the module docs.
        F64x8(unsafe { _mm512_div_pd(self.0, o.0) })
    }
    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        // SAFETY: see the module docs.
        F64x8(unsafe { _mm512_fmadd_pd(self.0, b.0, c.0) })
    }
    #[inline(always)]
    fn max(self, o: Self) -> Self {
        // SAFETY: see the module docs.
        F64x8(unsafe { _mm512_max_pd(self.0, o.0) })
    }
    #[inline(always)]
    fn min(self, o: Self) -> Self {
        // SAFETY: see the module docs.
        F64x8(unsafe { _mm512_min_pd(self.0, o.0) })
    }
    #[inline(always)]
    fn abs(self) -> Self {
        // SAFETY: see the module docs.
        F64x8(unsafe { _mm512_abs_pd(self.0) })
    }
    #[inline(always)]
    fn neg_abs(self) -> Self {
        // SAFETY: see the module docs. Sets the sign bit: one instruction.
        F64x8(unsafe {
            _mm512_castsi512_pd(_mm512_or_si512(
                _mm512_castpd_si512(self.0),
                _mm512_set1_epi64(i64::MIN),
            ))
        })
    }
    #[inline(always)]
    fn floor(self) -> Self {
        // SAFETY: see the module docs.
        F64x8(unsafe {
            _mm512_roundscale_pd::<{ _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC }>(self.0)
        })
    }
    #[inline(always)]
    fn pow2(self) -> Self {
        // SAFETY: see the module docs; the rounder trick of `F32x16::pow2` in 64 bits.
        F64x8(unsafe {
            let rounder = _mm512_set1_pd(f64::ROUNDER);
            let bits = _mm512_castpd_si512(_mm512_add_pd(self.0, rounder));
            let k = _mm512_sub_epi64(bits, _mm512_castpd_si512(rounder));
            _mm512_castsi512_pd(_mm512_slli_epi64::<52>(_mm512_add_epi64(
                k,
                _mm512_set1_epi64(1023),
            )))
        })
    }
    #[inline(always)]
    fn scale_pow2(self, n: Self) -> Self {
        // SAFETY: see the module docs; `vscalefpd` as in `F32x16::scale_pow2`.
        F64x8(unsafe { _mm512_scalef_pd(self.0, n.0) })
    }
    #[inline(always)]
    fn gt(self, o: Self) -> __mmask8 {
        // SAFETY: see the module docs.
        unsafe { _mm512_cmp_pd_mask::<_CMP_GT_OQ>(self.0, o.0) }
    }
    #[inline(always)]
    fn lt(self, o: Self) -> __mmask8 {
        // SAFETY: see the module docs.
        unsafe { _mm512_cmp_pd_mask::<_CMP_LT_OQ>(self.0, o.0) }
    }
    #[inline(always)]
    fn select(mask: __mmask8, if_true: Self, if_false: Self) -> Self {
        // SAFETY: see the module docs.
        F64x8(unsafe { _mm512_mask_blend_pd(mask, if_false.0, if_true.0) })
    }
    #[inline(always)]
    fn reduce_add(self) -> f64 {
        // SAFETY: see the module docs.
        unsafe { _mm512_reduce_add_pd(self.0) }
    }
    #[inline(always)]
    fn recip(self) -> Self {
        // SAFETY: see the module docs. Two Newton steps on the 14-bit
        // estimate, relative error below 2^-52.
        F64x8(unsafe {
            let one = _mm512_set1_pd(1.0);
            let mut r = _mm512_rcp14_pd(self.0);
            for _ in 0..2 {
                let e = _mm512_fnmadd_pd(self.0, r, one);
                r = _mm512_fmadd_pd(r, e, r);
            }
            r
        })
    }
    #[inline(always)]
    unsafe fn transpose_block(
        src: *const f64,
        ss: usize,
        dst: *mut f64,
        ds: usize,
        (rows, cols, count): (usize, usize, usize),
    ) {
        // SAFETY: the caller vouches for the rows read and written; masked
        // lanes are neither read nor written.
        unsafe {
            let mut r = [_mm512_setzero_pd(); 8];
            for (i, r) in r.iter_mut().enumerate().take(rows) {
                *r = if cols == 8 {
                    _mm512_loadu_pd(src.add(i * ss))
                } else {
                    _mm512_maskz_loadu_pd(first8(cols), src.add(i * ss))
                };
            }
            let columns = transpose8(r);
            for (c, &column) in columns.iter().enumerate().take(cols) {
                if count == 8 {
                    _mm512_storeu_pd(dst.add(c * ds), column);
                } else {
                    _mm512_mask_storeu_pd(dst.add(c * ds), first8(count), column);
                }
            }
        }
    }
}

/// The transpose of 8 rows of 8 `f64`: `t[2k]` holds the even columns of
/// rows `2k, 2k + 1` interleaved and `t[2k + 1]` the odd ones; `s` pairs
/// rows 0-3 and 4-7 into columns (0, 4), (2, 6), (1, 5), (3, 7).
#[inline(always)]
fn transpose8(r: [__m512d; 8]) -> [__m512d; 8] {
    // SAFETY: see the module docs.
    unsafe {
        let mut t = [_mm512_setzero_pd(); 8];
        for k in 0..4 {
            t[2 * k] = _mm512_unpacklo_pd(r[2 * k], r[2 * k + 1]);
            t[2 * k + 1] = _mm512_unpackhi_pd(r[2 * k], r[2 * k + 1]);
        }
        let mut s = [_mm512_setzero_pd(); 8];
        for h in [0, 4] {
            s[h] = _mm512_shuffle_f64x2::<0x88>(t[h], t[h + 2]);
            s[h + 1] = _mm512_shuffle_f64x2::<0xDD>(t[h], t[h + 2]);
            s[h + 2] = _mm512_shuffle_f64x2::<0x88>(t[h + 1], t[h + 3]);
            s[h + 3] = _mm512_shuffle_f64x2::<0xDD>(t[h + 1], t[h + 3]);
        }
        let mut out = [_mm512_setzero_pd(); 8];
        for (k, (low, high)) in [(0, 4), (2, 6), (1, 5), (3, 7)].into_iter().enumerate() {
            out[low] = _mm512_shuffle_f64x2::<0x88>(s[k], s[4 + k]);
            out[high] = _mm512_shuffle_f64x2::<0xDD>(s[k], s[4 + k]);
        }
        out
    }
}

/// The AVX2 mask vector of the first `count` of 8 32-bit lanes.
#[inline(always)]
fn first_of_8(count: usize) -> __m256i {
    // SAFETY: see the module docs (AVX2 is enabled where this runs).
    unsafe {
        _mm256_cmpgt_epi32(
            _mm256_set1_epi32(count.min(8) as i32),
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        )
    }
}

/// The AVX2 mask vector of the first `count` of 4 64-bit lanes.
#[inline(always)]
fn first_of_4(count: usize) -> __m256i {
    // SAFETY: see the module docs.
    unsafe {
        _mm256_cmpgt_epi64(
            _mm256_set1_epi64x(count.min(4) as i64),
            _mm256_setr_epi64x(0, 1, 2, 3),
        )
    }
}

impl Lanes for F32x8 {
    type T = f32;
    type Mask = __m256;
    const LANES: usize = 8;

    #[inline(always)]
    fn splat(value: f32) -> Self {
        // SAFETY: see the module docs.
        F32x8(unsafe { _mm256_set1_ps(value) })
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: the caller vouches for 8 readable values.
        F32x8(unsafe { _mm256_loadu_ps(p) })
    }
    #[inline(always)]
    unsafe fn load_first(p: *const f32, count: usize) -> Self {
        // SAFETY: masked-off lanes are not read; the caller vouches for the others.
        F32x8(unsafe { _mm256_maskload_ps(p, first_of_8(count)) })
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: the caller vouches for 8 writable values.
        unsafe { _mm256_storeu_ps(p, self.0) }
    }
    #[inline(always)]
    unsafe fn store_first(self, p: *mut f32, count: usize) {
        // SAFETY: masked-off lanes are not written; the caller vouches for the others.
        unsafe { _mm256_maskstore_ps(p, first_of_8(count), self.0) }
    }
    #[inline(always)]
    unsafe fn broadcast(p: *const f32) -> Self {
        // SAFETY: the caller vouches for `p`.
        F32x8(unsafe { _mm256_broadcast_ss(&*p) })
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        // SAFETY: see the module docs.
        F32x8(unsafe { _mm256_add_ps(self.0, o.0) })
    }
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        // SAFETY: see the module docs.
        F32x8(unsafe { _mm256_sub_ps(self.0, o.0) })
    }
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        // SAFETY: see the module docs.
        F32x8(unsafe { _mm256_mul_ps(self.0, o.0) })
    }
    #[inline(always)]
    fn div(self, o: Self) -> Self {
        // SAFETY: see the module docs.
        F32x8(unsafe { _mm256_div_ps(self.0, o.0) })
    }
    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        // SAFETY: see the module docs.
        F32x8(unsafe { _mm256_fmadd_ps(self.0, b.0, c.0) })
    }
    #[inline(always)]
    fn max(self, o: Self) -> Self {
        // SAFETY: see the module docs.
        F32x8(unsafe { _mm256_max_ps(self.0, o.0) })
    }
    #[inline(always)]
    fn min(self, o: Self) -> Self {
        // SAFETY: see the module docs.
        F32x8(unsafe { _mm256_min_ps(self.0, o.0) })
    }
    #[inline(always)]
    fn abs(self) -> Self {
        // SAFETY: see the module docs.
        F32x8(unsafe { _mm256_andnot_ps(_mm256_set1_ps(-0.0), self.0) })
    }
    #[inline(always)]
    fn floor(self) -> Self {
        // SAFETY: see the module docs.
        F32x8(unsafe { _mm256_floor_ps(self.0) })
    }
    #[inline(always)]
    fn neg_abs(self) -> Self {
        // SAFETY: see the module docs. Sets the sign bit: one instruction.
        F32x8(unsafe { _mm256_or_ps(self.0, _mm256_set1_ps(-0.0)) })
    }
    #[inline(always)]
    fn scale_pow2(self, n: Self) -> Self {
        // SAFETY: see the module docs. When every `|n| <= 126`, `2^n` is a
        // normal number and one product rounds once (to a subnormal too);
        // otherwise (or for a NaN `n`) the two halves.
        unsafe {
            let small = _mm256_cmp_ps::<_CMP_LE_OQ>(n.abs().0, _mm256_set1_ps(126.0));
            if _mm256_movemask_ps(small) == 0xff {
                self.mul(n.pow2())
            } else {
                scale_pow2_in_halves(self, n)
            }
        }
    }
    #[inline(always)]
    fn pow2(self) -> Self {
        // SAFETY: see the module docs; the rounder trick of `F32x16::pow2`.
        F32x8(unsafe {
            let rounder = _mm256_set1_ps(f32::ROUNDER);
            let bits = _mm256_castps_si256(_mm256_add_ps(self.0, rounder));
            let k = _mm256_sub_epi32(bits, _mm256_castps_si256(rounder));
            _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(
                k,
                _mm256_set1_epi32(127),
            )))
        })
    }
    #[inline(always)]
    fn gt(self, o: Self) -> __m256 {
        // SAFETY: see the module docs.
        unsafe { _mm256_cmp_ps::<_CMP_GT_OQ>(self.0, o.0) }
    }
    #[inline(always)]
    fn lt(self, o: Self) -> __m256 {
        // SAFETY: see the module docs.
        unsafe { _mm256_cmp_ps::<_CMP_LT_OQ>(self.0, o.0) }
    }
    #[inline(always)]
    fn select(mask: __m256, if_true: Self, if_false: Self) -> Self {
        // SAFETY: see the module docs.
        F32x8(unsafe { _mm256_blendv_ps(if_false.0, if_true.0, mask) })
    }
    #[inline(always)]
    fn reduce_add(self) -> f32 {
        // SAFETY: see the module docs.
        unsafe {
            let quad = _mm_add_ps(
                _mm256_castps256_ps128(self.0),
                _mm256_extractf128_ps::<1>(self.0),
            );
            let pair = _mm_add_ps(quad, _mm_movehl_ps(quad, quad));
            _mm_cvtss_f32(_mm_add_ss(pair, _mm_movehdup_ps(pair)))
        }
    }
    #[inline(always)]
    unsafe fn transpose_block(
        src: *const f32,
        ss: usize,
        dst: *mut f32,
        ds: usize,
        (rows, cols, count): (usize, usize, usize),
    ) {
        // SAFETY: the caller vouches for the rows read and written; masked
        // lanes are neither read nor written.
        unsafe {
            let mut r = [_mm256_setzero_ps(); 8];
            for (i, r) in r.iter_mut().enumerate().take(rows) {
                *r = if cols == 8 {
                    _mm256_loadu_ps(src.add(i * ss))
                } else {
                    _mm256_maskload_ps(src.add(i * ss), first_of_8(cols))
                };
            }
            // u[4g + c]: column 4 lane + c of rows 4g..4g+3 in each 128-bit lane.
            let mut t = [_mm256_setzero_ps(); 8];
            for k in 0..4 {
                t[2 * k] = _mm256_unpacklo_ps(r[2 * k], r[2 * k + 1]);
                t[2 * k + 1] = _mm256_unpackhi_ps(r[2 * k], r[2 * k + 1]);
            }
            let mut u = [_mm256_setzero_ps(); 8];
            for g in 0..2 {
                let (a, b, c, d) = (
                    _mm256_castps_pd(t[4 * g]),
                    _mm256_castps_pd(t[4 * g + 2]),
                    _mm256_castps_pd(t[4 * g + 1]),
                    _mm256_castps_pd(t[4 * g + 3]),
                );
                u[4 * g] = _mm256_castpd_ps(_mm256_unpacklo_pd(a, b));
                u[4 * g + 1] = _mm256_castpd_ps(_mm256_unpackhi_pd(a, b));
                u[4 * g + 2] = _mm256_castpd_ps(_mm256_unpacklo_pd(c, d));
                u[4 * g + 3] = _mm256_castpd_ps(_mm256_unpackhi_pd(c, d));
            }
            let mut columns = [_mm256_setzero_ps(); 8];
            for c in 0..4 {
                columns[c] = _mm256_permute2f128_ps::<0x20>(u[c], u[4 + c]);
                columns[4 + c] = _mm256_permute2f128_ps::<0x31>(u[c], u[4 + c]);
            }
            for (c, &column) in columns.iter().enumerate().take(cols) {
                if count == 8 {
                    _mm256_storeu_ps(dst.add(c * ds), column);
                } else {
                    _mm256_maskstore_ps(dst.add(c * ds), first_of_8(count), column);
                }
            }
        }
    }
}

impl Lanes for F64x4 {
    type T = f64;
    type Mask = __m256d;
    const LANES: usize = 4;

    #[inline(always)]
    fn splat(value: f64) -> Self {
        // SAFETY: see the module docs.
        F64x4(unsafe { _mm256_set1_pd(value) })
    }
    #[inline(always)]
    unsafe fn load(p: *const f64) -> Self {
        // SAFETY: the caller vouches for 4 readable values.
        F64x4(unsafe { _mm256_loadu_pd(p) })
    }
    #[inline(always)]
    unsafe fn load_first(p: *const f64, count: usize) -> Self {
        // SAFETY: masked-off lanes are not read; the caller vouches for the others.
        F64x4(unsafe { _mm256_maskload_pd(p, first_of_4(count)) })
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f64) {
        // SAFETY: the caller vouches for 4 writable values.
        unsafe { _mm256_storeu_pd(p, self.0) }
    }
    #[inline(always)]
    unsafe fn store_first(self, p: *mut f64, count: usize) {
        // SAFETY: masked-off lanes are not written; the caller vouches for the others.
        unsafe { _mm256_maskstore_pd(p, first_of_4(count), self.0) }
    }
    #[inline(always)]
    unsafe fn broadcast(p: *const f64) -> Self {
        // SAFETY: the caller vouches for `p`.
        F64x4(unsafe { _mm256_broadcast_sd(&*p) })
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        // SAFETY: see the module docs.
        F64x4(unsafe { _mm256_add_pd(self.0, o.0) })
    }
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        // SAFETY: see the module docs.
        F64x4(unsafe { _mm256_sub_pd(self.0, o.0) })
    }
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        // SAFETY: see the module docs.
        F64x4(unsafe { _mm256_mul_pd(self.0, o.0) })
    }
    #[inline(always)]
    fn div(self, o: Self) -> Self {
        // SAFETY: see the module docs.
        F64x4(unsafe { _mm256_div_pd(self.0, o.0) })
    }
    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        // SAFETY: see the module docs.
        F64x4(unsafe { _mm256_fmadd_pd(self.0, b.0, c.0) })
    }
    #[inline(always)]
    fn max(self, o: Self) -> Self {
        // SAFETY: see the module docs.
        F64x4(unsafe { _mm256_max_pd(self.0, o.0) })
    }
    #[inline(always)]
    fn min(self, o: Self) -> Self {
        // SAFETY: see the module docs.
        F64x4(unsafe { _mm256_min_pd(self.0, o.0) })
    }
    #[inline(always)]
    fn abs(self) -> Self {
        // SAFETY: see the module docs.
        F64x4(unsafe { _mm256_andnot_pd(_mm256_set1_pd(-0.0), self.0) })
    }
    #[inline(always)]
    fn floor(self) -> Self {
        // SAFETY: see the module docs.
        F64x4(unsafe { _mm256_floor_pd(self.0) })
    }
    #[inline(always)]
    fn neg_abs(self) -> Self {
        // SAFETY: see the module docs. Sets the sign bit: one instruction.
        F64x4(unsafe { _mm256_or_pd(self.0, _mm256_set1_pd(-0.0)) })
    }
    #[inline(always)]
    fn scale_pow2(self, n: Self) -> Self {
        // SAFETY: see the module docs; as `F32x8::scale_pow2`, with `|n| <= 1022`.
        unsafe {
            let small = _mm256_cmp_pd::<_CMP_LE_OQ>(n.abs().0, _mm256_set1_pd(1022.0));
            if _mm256_movemask_pd(small) == 0xf {
                self.mul(n.pow2())
            } else {
                scale_pow2_in_halves(self, n)
            }
        }
    }
    #[inline(always)]
    fn pow2(self) -> Self {
        // SAFETY: see the module docs; the rounder trick of `F32x16::pow2` in 64 bits.
        F64x4(unsafe {
            let rounder = _mm256_set1_pd(f64::ROUNDER);
            let bits = _mm256_castpd_si256(_mm256_add_pd(self.0, rounder));
            let k = _mm256_sub_epi64(bits, _mm256_castpd_si256(rounder));
            _mm256_castsi256_pd(_mm256_slli_epi64::<52>(_mm256_add_epi64(
                k,
                _mm256_set1_epi64x(1023),
            )))
        })
    }
    #[inline(always)]
    fn gt(self, o: Self) -> __m256d {
        // SAFETY: see the module docs.
        unsafe { _mm256_cmp_pd::<_CMP_GT_OQ>(self.0, o.0) }
    }
    #[inline(always)]
    fn lt(self, o: Self) -> __m256d {
        // SAFETY: see the module docs.
        unsafe { _mm256_cmp_pd::<_CMP_LT_OQ>(self.0, o.0) }
    }
    #[inline(always)]
    fn select(mask: __m256d, if_true: Self, if_false: Self) -> Self {
        // SAFETY: see the module docs.
        F64x4(unsafe { _mm256_blendv_pd(if_false.0, if_true.0, mask) })
    }
    #[inline(always)]
    fn reduce_add(self) -> f64 {
        // SAFETY: see the module docs.
        unsafe {
            let pair = _mm_add_pd(
                _mm256_castpd256_pd128(self.0),
                _mm256_extractf128_pd::<1>(self.0),
            );
            _mm_cvtsd_f64(_mm_add_sd(pair, _mm_unpackhi_pd(pair, pair)))
        }
    }
    #[inline(always)]
    unsafe fn transpose_block(
        src: *const f64,
        ss: usize,
        dst: *mut f64,
        ds: usize,
        (rows, cols, count): (usize, usize, usize),
    ) {
        // SAFETY: the caller vouches for the rows read and written; masked
        // lanes are neither read nor written.
        unsafe {
            let mut r = [_mm256_setzero_pd(); 4];
            for (i, r) in r.iter_mut().enumerate().take(rows) {
                *r = if cols == 4 {
                    _mm256_loadu_pd(src.add(i * ss))
                } else {
                    _mm256_maskload_pd(src.add(i * ss), first_of_4(cols))
                };
            }
            let t0 = _mm256_unpacklo_pd(r[0], r[1]);
            let t1 = _mm256_unpackhi_pd(r[0], r[1]);
            let t2 = _mm256_unpacklo_pd(r[2], r[3]);
            let t3 = _mm256_unpackhi_pd(r[2], r[3]);
            let columns = [
                _mm256_permute2f128_pd::<0x20>(t0, t2),
                _mm256_permute2f128_pd::<0x20>(t1, t3),
                _mm256_permute2f128_pd::<0x31>(t0, t2),
                _mm256_permute2f128_pd::<0x31>(t1, t3),
            ];
            for (c, &column) in columns.iter().enumerate().take(cols) {
                if count == 4 {
                    _mm256_storeu_pd(dst.add(c * ds), column);
                } else {
                    _mm256_maskstore_pd(dst.add(c * ds), first_of_4(count), column);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backprop_core::Scalar;

    /// The AVX2 `scale_pow2` of `T` against `reference`, on vectors of
    /// values in `[1/2, 2)` scaled by every `n` in `exponents`: all lanes
    /// with one `n` (so the one-product form runs wherever it may), and
    /// lanes spread over the `n` around it (so vectors that mix both sides
    /// of the normal range take the two halves). Returns the mismatches.
    #[target_feature(enable = "avx2,fma")]
    fn mismatches<V: Lanes>(
        exponents: std::ops::RangeInclusive<i32>,
        reference: impl Fn(V::T, i32) -> V::T,
    ) -> Vec<(V::T, i32, V::T)> {
        let lanes = V::LANES;
        let xs: Vec<V::T> = (0..lanes)
            .map(|i| V::T::from_f64(0.5 + 1.5 * i as f64 / lanes as f64 + 1e-3))
            .collect();
        let mut wrong = Vec::new();
        let mut got = vec![V::T::ZERO; lanes];
        for n in exponents {
            for spread in [0, 1] {
                let ns: Vec<i32> = (0..lanes).map(|i| n + spread * i as i32).collect();
                let ns_t: Vec<V::T> = ns.iter().map(|&n| V::T::from_f64(f64::from(n))).collect();
                // SAFETY: every vector holds `lanes` values.
                unsafe {
                    V::load(xs.as_ptr())
                        .scale_pow2(V::load(ns_t.as_ptr()))
                        .store(got.as_mut_ptr());
                }
                for ((&x, &n), &got) in xs.iter().zip(&ns).zip(&got) {
                    let want = reference(x, n);
                    if got.to_f64().to_bits() != want.to_f64().to_bits() {
                        wrong.push((x, n, got));
                    }
                }
            }
        }
        wrong
    }

    fn has_avx2() -> bool {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }

    #[test]
    fn avx2_scale_pow2_rounds_once_on_both_sides_of_the_normal_range() {
        if !has_avx2() {
            return;
        }
        // `f32`: the product in `f64` is exact, and rounds once into `f32`
        // (a subnormal, zero or infinity included).
        let single = |x: f32, n: i32| (f64::from(x) * 2f64.powi(n)) as f32;
        // SAFETY: the CPU has AVX2 and FMA.
        let wrong = unsafe { mismatches::<F32x8>(-160..=130, single) };
        assert!(wrong.is_empty(), "{wrong:?}");
        // `f64`: a first factor that is exact, then one rounding.
        let double = |x: f64, n: i32| x * 2f64.powi(n / 2) * 2f64.powi(n - n / 2);
        // SAFETY: as above.
        let wrong = unsafe { mismatches::<F64x4>(-1090..=1030, double) };
        assert!(wrong.is_empty(), "{wrong:?}");
    }

    /// The largest error of `exp` on `V` over a sweep of `x` from `from` to
    /// `to`, in units of `T`'s epsilon relative to the reference value.
    #[inline(always)]
    fn worst_exp_error<V: Lanes>(from: f64, to: f64, reference: impl Fn(f64) -> f64) -> f64 {
        let (lanes, count) = (V::LANES, 1 << 18);
        let mut worst = 0.0f64;
        let (mut xs, mut out) = (vec![V::T::ZERO; lanes], vec![V::T::ZERO; lanes]);
        for start in (0..count).step_by(lanes) {
            for (k, x) in xs.iter_mut().enumerate() {
                *x = V::T::from_f64(from + (to - from) * (start + k) as f64 / count as f64);
            }
            // SAFETY: both vectors hold `lanes` values.
            unsafe { crate::lanes::exp(V::load(xs.as_ptr())).store(out.as_mut_ptr()) };
            for (x, y) in xs.iter().zip(&out) {
                let want = reference(x.to_f64());
                let error = (y.to_f64() - want).abs() / (want * 2.0 * V::T::UNIT_ROUNDOFF.to_f64());
                worst = worst.max(error);
            }
        }
        worst
    }

    /// `exp` on the AVX2 lanes: `f32` against `f64`'s (a reference to far
    /// below `f32`'s last place) and `f64` against the standard library's.
    #[target_feature(enable = "avx2,fma")]
    fn avx2_exp_errors() -> (f64, f64) {
        (
            worst_exp_error::<F32x8>(-87.0, 88.0, f64::exp),
            worst_exp_error::<F64x4>(-700.0, 700.0, f64::exp),
        )
    }

    #[test]
    fn avx2_exp_is_within_an_ulp() {
        if !has_avx2() {
            return;
        }
        // SAFETY: the CPU has AVX2 and FMA.
        let (single, double) = unsafe { avx2_exp_errors() };
        // Measured on an AMD EPYC (Zen 2): 0.60 and 1.00 (the standard
        // library's own error is up to about half a unit).
        assert!(single < 1.0, "f32: {single} units");
        assert!(double < 1.5, "f64: {double} units");
    }
}
