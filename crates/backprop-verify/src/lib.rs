//! Independent oracles and checks that prove a backend's gradients right.
//!
//! Everything here starts from one generic forward-loss function
//! ([`Problem::loss`]) that knows nothing of backpropagation. Two oracles
//! differentiate it in `f64`: central finite differences with Richardson
//! extrapolation, which report their own error estimate, and forward-mode
//! dual numbers, which are exact up to rounding and also carry the magnitude
//! that bounds that rounding. The checks in [`checks`] compare a backend
//! against them and report the worst error-to-tolerance ratio and where it
//! occurred; [`suite`] runs all of them; [`controls`] holds deliberately
//! wrong kernels that the checks must reject.
//!
//! The tolerances are derived in the docs of [`checks`].

pub mod case;
pub mod checks;
pub mod controls;
pub mod forward;
pub mod oracles;
pub mod real;
pub mod report;
pub mod suite;

pub use case::Case;
pub use checks::Oracle;
pub use controls::{ControlBackend, Flaw};
pub use forward::Problem;
pub use real::{Dual, Real};
pub use report::{CheckKind, CheckReport, Discrepancy, Quantity};
