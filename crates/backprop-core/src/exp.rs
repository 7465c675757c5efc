//! A branch-free exponential for `f32` and `f64` that the compiler can vectorize.
//!
//! The standard library's `exp` is a call into the platform's maths library,
//! which no loop around it can vectorize; the activation and loss passes call
//! it once per value, and on the benchmark shapes it was the largest cost
//! after the matrix products. This is the classic Cody-Waite scheme, written
//! with selects instead of branches:
//!
//! 1. `n = round(x / ln 2)`, by the add-and-subtract of `1.5 * 2^p` (no
//!    rounding instruction is needed on baseline x86-64);
//! 2. `r = x - n ln 2`, with `ln 2` split in two so that `n ln2_hi` is exact;
//! 3. `e^r` by a polynomial on `|r| <= ln(2)/2`;
//! 4. `e^x = e^r 2^n`, built from exponent bits in two halves so that results
//!    below the smallest normal number come out as subnormals.
//!
//! Arguments above the largest whose exponential is finite give infinity,
//! arguments below the smallest whose exponential rounds to more than zero
//! give zero, NaN gives NaN. `tests` checks every result against the standard
//! library within 1 unit in the last place over a dense sweep of each type's range.

/// `e^x` in `f32`.
#[inline(always)]
pub(crate) fn exp_f32(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    // ln 2 = LN2_HI + LN2_LO, LN2_HI with 9 significant bits so `n * LN2_HI` is exact.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const ROUNDER: f32 = 12_582_912.0; // 1.5 * 2^23
    const MAX_ARGUMENT: f32 = 88.722_84; // ln(f32::MAX)
    const MIN_ARGUMENT: f32 = -103.972_08; // ln of half the smallest subnormal

    let clamped = x.clamp(MIN_ARGUMENT, MAX_ARGUMENT);
    let shifted = clamped * LOG2_E + ROUNDER;
    let n = shifted - ROUNDER;
    let r = (clamped - n * LN2_HI) - n * LN2_LO;
    // Minimax coefficients of the Cephes single-precision exponential.
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e_r = p * r * r + r + 1.0;
    // n as an integer, from the rounder's low mantissa bits.
    let n = (shifted.to_bits() as i32).wrapping_sub(ROUNDER.to_bits() as i32);
    let half = n >> 1;
    let scale_a = f32::from_bits(((half + 127) as u32) << 23);
    let scale_b = f32::from_bits(((n - half + 127) as u32) << 23);
    let value = e_r * scale_a * scale_b;
    let value = if x > MAX_ARGUMENT {
        f32::INFINITY
    } else {
        value
    };
    let value = if x < MIN_ARGUMENT { 0.0 } else { value };
    if x.is_nan() { x } else { value }
}

/// `e^x` in `f64`.
#[inline(always)]
pub(crate) fn exp_f64(x: f64) -> f64 {
    const LOG2_E: f64 = std::f64::consts::LOG2_E;
    // ln 2 = LN2_HI + LN2_LO, LN2_HI with 32 significant bits so `n * LN2_HI` is exact.
    const LN2_HI: f64 = 6.931_471_803_691_238e-1;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    const ROUNDER: f64 = 6_755_399_441_055_744.0; // 1.5 * 2^52
    const MAX_ARGUMENT: f64 = 709.782_712_893_383_9; // ln(f64::MAX)
    const MIN_ARGUMENT: f64 = -745.133_219_101_941_1; // ln of half the smallest subnormal

    let clamped = x.clamp(MIN_ARGUMENT, MAX_ARGUMENT);
    let shifted = clamped * LOG2_E + ROUNDER;
    let n = shifted - ROUNDER;
    let r = (clamped - n * LN2_HI) - n * LN2_LO;
    // Taylor coefficients 1/k! up to k = 13: the truncation error on
    // |r| <= ln(2)/2 is below 4e-18, far under half an ulp.
    let mut p = 1.0 / 6_227_020_800.0;
    for factorial in [
        479_001_600.0,
        39_916_800.0,
        3_628_800.0,
        362_880.0,
        40_320.0,
        5_040.0,
        720.0,
        120.0,
        24.0,
        6.0,
        2.0,
    ] {
        p = p * r + 1.0 / factorial;
    }
    let e_r = p * r * r + r + 1.0;
    let n = (shifted.to_bits() as i64).wrapping_sub(ROUNDER.to_bits() as i64);
    let half = n >> 1;
    let scale_a = f64::from_bits(((half + 1023) as u64) << 52);
    let scale_b = f64::from_bits(((n - half + 1023) as u64) << 52);
    let value = e_r * scale_a * scale_b;
    let value = if x > MAX_ARGUMENT {
        f64::INFINITY
    } else {
        value
    };
    let value = if x < MIN_ARGUMENT { 0.0 } else { value };
    if x.is_nan() { x } else { value }
}

#[cfg(test)]
mod tests {
    use super::{exp_f32, exp_f64};

    /// The distance in units in the last place between two finite positive values.
    fn ulps_f32(a: f32, b: f32) -> u32 {
        a.to_bits().abs_diff(b.to_bits())
    }

    fn ulps_f64(a: f64, b: f64) -> u64 {
        a.to_bits().abs_diff(b.to_bits())
    }

    #[test]
    fn f32_is_within_one_ulp_of_the_standard_library() {
        let mut worst = 0;
        let steps = 2_000_000;
        for i in 0..=steps {
            let x = -104.0 + 193.0 * i as f32 / steps as f32;
            let (ours, reference) = (exp_f32(x), x.exp());
            if reference.is_finite() && reference > f32::MIN_POSITIVE {
                let error = ulps_f32(ours, reference);
                assert!(error <= 1, "exp({x}) = {ours}, std gives {reference}");
                worst = worst.max(error);
            } else {
                // Subnormal and overflowing results: within a subnormal's spacing.
                assert!(
                    (ours - reference).abs() <= f32::from_bits(2) || ours == reference,
                    "exp({x}) = {ours} vs {reference}"
                );
            }
        }
        assert!(worst <= 1);
    }

    #[test]
    fn f64_is_within_one_ulp_of_the_standard_library() {
        let steps = 2_000_000;
        for i in 0..=steps {
            let x = -746.0 + 1456.0 * i as f64 / steps as f64;
            let (ours, reference) = (exp_f64(x), x.exp());
            if reference.is_finite() && reference > f64::MIN_POSITIVE {
                assert!(
                    ulps_f64(ours, reference) <= 1,
                    "exp({x}) = {ours}, std gives {reference}"
                );
            } else {
                assert!(
                    (ours - reference).abs() <= f64::from_bits(2) || ours == reference,
                    "exp({x}) = {ours} vs {reference}"
                );
            }
        }
    }

    #[test]
    fn edges_are_exact() {
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f64(0.0), 1.0);
        assert_eq!(exp_f32(-0.0), 1.0);
        assert_eq!(exp_f32(1000.0), f32::INFINITY);
        assert_eq!(exp_f64(1000.0), f64::INFINITY);
        assert_eq!(exp_f32(-1000.0), 0.0);
        assert_eq!(exp_f64(-1000.0), 0.0);
        assert_eq!(exp_f32(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp_f64(f64::NEG_INFINITY), 0.0);
        assert!(exp_f32(f32::NAN).is_nan());
        assert!(exp_f64(f64::NAN).is_nan());
        // Exactly at the ends of the range: e^x is still the smallest
        // subnormal below, and still finite above in f64 (in f32 the largest
        // argument already rounds up past ln(f32::MAX), to infinity).
        let (low32, low64, high64) = (
            -103.972_08f32,
            -745.133_219_101_941_1f64,
            709.782_712_893_383_9f64,
        );
        assert_eq!(exp_f32(low32), low32.exp());
        assert_eq!(exp_f64(low64), low64.exp());
        assert!(exp_f64(high64).is_finite() && ulps_f64(exp_f64(high64), high64.exp()) <= 1);
        // Small arguments, where e^x - 1 ~ x must survive.
        for x in [1e-8f64, -1e-8, 1e-3, -1e-3] {
            assert!(ulps_f64(exp_f64(x), x.exp()) <= 1);
        }
    }
}
