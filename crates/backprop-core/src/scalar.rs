//! The floating-point types every backend computes in: `f32` and `f64`, nothing else.

use std::fmt::{Debug, Display};
use std::iter::Sum;
use std::ops::{Add, AddAssign, Div, DivAssign, Mul, MulAssign, Neg, Sub, SubAssign};

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// A real number type a network can be computed in.
///
/// Implemented by `f32` and `f64` only; the trait is sealed so that every
/// tolerance in the workspace can be derived from a known unit roundoff.
/// Each bound is there for a reason:
///
/// - `Copy + Default + PartialOrd + Debug + Display`: values are passed by value,
///   buffers are zero-filled, compared and printed in error messages and reports;
/// - the arithmetic operators and `Sum`: the kernels are written with them;
/// - `Send + Sync + 'static`: buffers cross threads in the parallel backend and
///   live inside boxed backends.
pub trait Scalar:
    sealed::Sealed
    + Copy
    + Default
    + PartialOrd
    + Debug
    + Display
    + Send
    + Sync
    + 'static
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + Sum
{
    /// The additive identity.
    const ZERO: Self;
    /// The multiplicative identity.
    const ONE: Self;
    /// One half, exact in both types.
    const HALF: Self;
    /// The unit roundoff `u`: half the distance from 1 to the next larger number.
    const UNIT_ROUNDOFF: f64;
    /// The type's name as Rust spells it, used in reports and benchmark ids.
    const NAME: &'static str;
    /// The largest finite value, widened to `f64`.
    const LARGEST: f64;
    /// The smallest positive normal value, widened to `f64`: below it
    /// numbers lose relative precision.
    const SMALLEST_NORMAL: f64;

    /// Rounds an `f64` to this type (exact for `f64`).
    fn from_f64(value: f64) -> Self;
    /// Widens this value to `f64` (always exact).
    fn to_f64(self) -> f64;
    /// The natural exponential, within one unit in the last place, branch-free
    /// so that loops over it vectorize (see `exp.rs`).
    fn exp(self) -> Self;
    /// The natural logarithm.
    fn ln(self) -> Self;
    /// The hyperbolic tangent.
    fn tanh(self) -> Self;
    /// The absolute value.
    fn abs(self) -> Self;
    /// The larger of two values (the other one if either is NaN).
    fn max(self, other: Self) -> Self;
    /// Whether the value is neither infinite nor NaN.
    fn is_finite(self) -> bool;
    /// The largest `|v|` over `values` (0 for none): NaN if any value is
    /// NaN, else infinity if any is infinite, so the result is finite exactly
    /// when every value is. One vectorized pass over the bits, so cheap
    /// enough to check every gradient of a training step.
    fn largest_magnitude(values: &[Self]) -> Self;
    /// Writes `out[i] = params[i] + step * gradient[i]` (over the common
    /// length, the same bits as `vector::axpy`) and returns the largest
    /// `|out[i]|`, with the NaN and infinity of [`Scalar::largest_magnitude`]:
    /// an SGD update and its check in one vectorized pass.
    fn step_into(out: &mut [Self], params: &[Self], step: Self, gradient: &[Self]) -> Self;

    /// Converts a count to this type (exact up to `2^24` for `f32`, `2^53` for `f64`).
    fn from_usize(count: usize) -> Self {
        Self::from_f64(count as f64)
    }
}

macro_rules! impl_scalar {
    ($t:ident, $bits:ident, $name:literal, $exp:path) => {
        impl Scalar for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const HALF: Self = 0.5;
            const UNIT_ROUNDOFF: f64 = $t::EPSILON as f64 / 2.0;
            const NAME: &'static str = $name;
            const LARGEST: f64 = $t::MAX as f64;
            const SMALLEST_NORMAL: f64 = $t::MIN_POSITIVE as f64;

            #[inline]
            fn from_f64(value: f64) -> Self {
                value as $t
            }
            #[inline]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline]
            fn exp(self) -> Self {
                $exp(self)
            }
            #[inline]
            fn abs(self) -> Self {
                $t::abs(self)
            }
            #[inline]
            fn ln(self) -> Self {
                $t::ln(self)
            }
            #[inline]
            fn tanh(self) -> Self {
                $t::tanh(self)
            }
            #[inline]
            fn max(self, other: Self) -> Self {
                $t::max(self, other)
            }
            #[inline]
            fn is_finite(self) -> bool {
                $t::is_finite(self)
            }
            fn largest_magnitude(values: &[Self]) -> Self {
                /// Lanes of the running maximum: four AVX-512 registers of
                /// `f32` bits, so that the maxima of one pass do not wait on
                /// each other.
                const LANES: usize = 64;
                #[inline(always)]
                fn body(values: &[$t]) -> $bits {
                    // The bits of |v| order as |v| does, NaN above infinity;
                    // integer maxima vectorize, float maxima with NaN do not.
                    // Fixed-size chunks let the loop compile to whole
                    // registers (an iterator over slices measured 8x slower).
                    const MAGNITUDE: $bits = !(1 << ($bits::BITS - 1));
                    let mut lanes = [0 as $bits; LANES];
                    let mut chunks = values.chunks_exact(LANES);
                    for chunk in &mut chunks {
                        if let Ok(chunk) = <&[$t; LANES]>::try_from(chunk) {
                            for k in 0..LANES {
                                lanes[k] = lanes[k].max(chunk[k].to_bits() & MAGNITUDE);
                            }
                        }
                    }
                    let mut largest = 0;
                    for lane in lanes {
                        largest = largest.max(lane);
                    }
                    for value in chunks.remainder() {
                        largest = largest.max(value.to_bits() & MAGNITUDE);
                    }
                    largest
                }
                #[cfg(target_arch = "x86_64")]
                {
                    #[target_feature(enable = "avx512f")]
                    fn avx512(values: &[$t]) -> $bits {
                        body(values)
                    }
                    #[target_feature(enable = "avx2")]
                    fn avx2(values: &[$t]) -> $bits {
                        body(values)
                    }
                    if std::arch::is_x86_feature_detected!("avx512f") {
                        // SAFETY: the CPU has AVX-512F, detected just above.
                        return $t::from_bits(unsafe { avx512(values) });
                    }
                    if std::arch::is_x86_feature_detected!("avx2") {
                        // SAFETY: the CPU has AVX2, detected just above.
                        return $t::from_bits(unsafe { avx2(values) });
                    }
                }
                $t::from_bits(body(values))
            }
            fn step_into(out: &mut [Self], params: &[Self], step: Self, gradient: &[Self]) -> Self {
                const LANES: usize = 64;
                #[inline(always)]
                fn body(out: &mut [$t], params: &[$t], step: $t, gradient: &[$t]) -> $bits {
                    const MAGNITUDE: $bits = !(1 << ($bits::BITS - 1));
                    let len = out.len().min(params.len()).min(gradient.len());
                    let (out, params, gradient) =
                        (&mut out[..len], &params[..len], &gradient[..len]);
                    let mut lanes = [0 as $bits; LANES];
                    let mut outs = out.chunks_exact_mut(LANES);
                    let mut thetas = params.chunks_exact(LANES);
                    let mut grads = gradient.chunks_exact(LANES);
                    for ((out, theta), g) in (&mut outs).zip(&mut thetas).zip(&mut grads) {
                        if let (Ok(out), Ok(theta), Ok(g)) = (
                            <&mut [$t; LANES]>::try_from(out),
                            <&[$t; LANES]>::try_from(theta),
                            <&[$t; LANES]>::try_from(g),
                        ) {
                            for k in 0..LANES {
                                let mut value = theta[k];
                                value += step * g[k];
                                out[k] = value;
                                lanes[k] = lanes[k].max(value.to_bits() & MAGNITUDE);
                            }
                        }
                    }
                    let mut largest = 0;
                    for lane in lanes {
                        largest = largest.max(lane);
                    }
                    let rest = outs
                        .into_remainder()
                        .iter_mut()
                        .zip(thetas.remainder())
                        .zip(grads.remainder());
                    for ((out, &theta), &g) in rest {
                        let mut value = theta;
                        value += step * g;
                        *out = value;
                        largest = largest.max(value.to_bits() & MAGNITUDE);
                    }
                    largest
                }
                #[cfg(target_arch = "x86_64")]
                {
                    #[target_feature(enable = "avx512f")]
                    fn avx512(out: &mut [$t], params: &[$t], step: $t, gradient: &[$t]) -> $bits {
                        body(out, params, step, gradient)
                    }
                    #[target_feature(enable = "avx2,fma")]
                    fn avx2(out: &mut [$t], params: &[$t], step: $t, gradient: &[$t]) -> $bits {
                        body(out, params, step, gradient)
                    }
                    if std::arch::is_x86_feature_detected!("avx512f") {
                        // SAFETY: the CPU has AVX-512F, detected just above.
                        return $t::from_bits(unsafe { avx512(out, params, step, gradient) });
                    }
                    if std::arch::is_x86_feature_detected!("avx2")
                        && std::arch::is_x86_feature_detected!("fma")
                    {
                        // SAFETY: the CPU has AVX2 and FMA, detected just above.
                        return $t::from_bits(unsafe { avx2(out, params, step, gradient) });
                    }
                }
                $t::from_bits(body(out, params, step, gradient))
            }
        }
    };
}

impl_scalar!(f32, u32, "f32", crate::exp::exp_f32);
impl_scalar!(f64, u64, "f64", crate::exp::exp_f64);

#[cfg(test)]
mod tests {
    use super::Scalar;

    #[test]
    fn the_largest_magnitude_is_finite_exactly_when_every_value_is() {
        for len in [0, 1, 5, 63, 64, 65, 200] {
            let mut values: Vec<f32> = (0..len).map(|i| i as f32 - 30.0).collect();
            let expected = values.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            assert_eq!(f32::largest_magnitude(&values), expected);
            if len > 0 {
                values[len - 1] = f32::NEG_INFINITY;
                assert_eq!(f32::largest_magnitude(&values), f32::INFINITY);
                values[len / 2] = -f32::NAN;
                assert!(f32::largest_magnitude(&values).is_nan());
            }
        }
        let (params, gradient) = ([1.0f32; 70], [2.0f32; 70]);
        let mut out = [0.0f32; 70];
        assert_eq!(f32::step_into(&mut out, &params, -0.5, &gradient), 0.0);
        assert!(out.iter().all(|&v| v == 0.0));
        let mut gradient = gradient;
        gradient[69] = -8.0;
        assert_eq!(f32::step_into(&mut out, &params, -0.5, &gradient), 5.0);
        gradient[3] = f32::INFINITY;
        assert_eq!(
            f32::step_into(&mut out, &params, -0.5, &gradient),
            f32::NEG_INFINITY.abs()
        );
        gradient[5] = f32::NAN;
        assert!(f32::step_into(&mut out, &params, 0.0, &gradient).is_nan());
        let values = [1e300, -2e300, 3.0];
        assert_eq!(f64::largest_magnitude(&values), 2e300);
        assert!(f64::largest_magnitude(&[f64::NAN, f64::INFINITY]).is_nan());
        assert_eq!(f64::largest_magnitude(&[f64::MAX, -0.0]), f64::MAX);
    }
}
