//! The benchmark harness: the protocol's shapes, the contenders, criterion groups, the table and the plot.
//!
//! `benches/step.rs` runs it on the registered backends; `cargo xtask bench`
//! runs that bench and reports with [`results`] and [`plot`]. An author adds
//! a kernel beside the built-in ones in a few lines, in a bench of their own
//! (`harness = false`):
//!
//! ```no_run
//! use backprop::{Backend, NaiveBackend};
//! use backprop_benches::Harness;
//! use backprop_benches::criterion::Criterion;
//!
//! fn main() -> Result<(), backprop_benches::ContenderError> {
//!     let mut criterion = Criterion::default().configure_from_args();
//!     Harness::builtin()
//!         .with("mine", || Box::new(NaiveBackend::<f32>::new()), || Box::new(NaiveBackend::<f64>::new()))?
//!         .only(&["mine", "faer"])? // a name misspelt or taken twice is an error naming the contenders
//!         .run(&mut criterion); // benches, then prints this run's table
//!     Ok(())
//! }
//! ```

pub mod harness;
pub mod plot;
pub mod results;

/// The criterion this harness runs on, so that a bench of an author's own
/// needs no version of it to match.
pub use criterion;
pub use harness::{Contender, ContenderError, Failure, Harness, PEAK_SIDE, SHAPES, SWEEP};
pub use results::{Record, human};
