//! The conformance kit: independent oracles and checks that prove any backend's gradients right.
//!
//! Point it at a kernel, yours or ours, and it runs the whole verification
//! protocol on a matrix of cases and reports, per check, how close the
//! kernel came to failing:
//!
//! ```
//! use backprop_naive::NaiveBackend;
//! use backprop_verify::Conformance;
//!
//! # fn main() -> Result<(), backprop_core::Error> {
//! // Any `Backend<f64>`: here the reference kernel, on one seed.
//! let report = Conformance::<f64>::new("naive", NaiveBackend::<f64>::new)
//!     .quick()
//!     .run()?;
//! println!("{report}"); // the table, the sensitivity, the controls, the verdict
//! assert!(report.passed());
//! # Ok(())
//! # }
//! ```
//!
//! In a test crate, [`conformance_tests!`] expands to the same protocol as
//! property tests on random cases from [`strategies`].
//!
//! Everything starts from one generic forward-loss function
//! ([`Problem::loss`]) that knows nothing of backpropagation. Two oracles
//! differentiate it in `f64`: central finite differences with Richardson
//! extrapolation, which report their own error estimate, and forward-mode
//! dual numbers, which are exact up to rounding and also carry the magnitude
//! that bounds that rounding. The checks in [`checks`] compare a backend
//! against them and report the worst error-to-tolerance ratio and where it
//! occurred; [`suite`] runs all of them on one case, [`Conformance`] on the
//! whole [`matrix`]; [`controls`] holds deliberately wrong kernels, and
//! wrappers that make any kernel wrong, that the checks must reject. A
//! kernel that panics fails the check that met the panic ([`guard`]), and
//! the run goes on. The oracles compute their components in parallel on
//! rayon's global pool.
//!
//! The tolerances are derived in the docs of [`checks`].

/// Re-exported for [`conformance_tests!`], so that an author's test crate
/// needs no dependency of its own on proptest.
pub use proptest;

pub mod allocations;
pub mod case;
pub mod checks;
pub mod conformance;
pub mod controls;
pub mod forward;
pub mod guard;
mod macros;
pub mod matrix;
pub mod oracles;
pub mod real;
pub mod report;
mod rotation;
pub mod strategies;
pub mod suite;
pub mod summary;

pub use allocations::{Allocations, CountingAllocator, NotInstalled, allocations_during};
pub use case::Case;
pub use checks::{Cancellation, Oracle};
pub use conformance::{CheckPrecision, Conformance};
pub use controls::{Control, ControlBackend, Flaw, Flawed, OutputFlaw};
pub use forward::Problem;
pub use matrix::{Matrix, Shape};
pub use real::{Dual, Real};
pub use report::{CheckKind, CheckReport, Discrepancy, Quantity};
pub use summary::{CellReport, ConformanceReport, ControlReport};
