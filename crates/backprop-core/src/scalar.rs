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

    /// Converts a count to this type (exact up to `2^24` for `f32`, `2^53` for `f64`).
    fn from_usize(count: usize) -> Self {
        Self::from_f64(count as f64)
    }
}

macro_rules! impl_scalar {
    ($t:ident, $name:literal, $exp:path) => {
        impl Scalar for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const HALF: Self = 0.5;
            const UNIT_ROUNDOFF: f64 = $t::EPSILON as f64 / 2.0;
            const NAME: &'static str = $name;

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
        }
    };
}

impl_scalar!(f32, "f32", crate::exp::exp_f32);
impl_scalar!(f64, "f64", crate::exp::exp_f64);
