//! A panic of the kernel under test, turned into the failure of the check that met it.
//!
//! The verifier runs kernels it did not write. One that panics on some
//! shape fails the check that called it, with the panic's message, and the
//! run goes on to the other checks and cells (on the same instance, so a
//! kernel that a panic leaves broken fails them too); the report then names
//! every cell and check that panicked, where an unguarded run would stop at
//! the first with no report. The panic hook still prints where it happened.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::report::{CheckKind, CheckReport};

/// `check()`, or a failed report of `kind` if it panics.
pub fn guarded(kind: CheckKind, check: impl FnOnce() -> CheckReport) -> CheckReport {
    caught(check).unwrap_or_else(|message| CheckReport::failed(kind, message))
}

/// `run()`, or `panicked: ` and the panic's message if it panics: for the
/// measurements around the checks.
pub fn caught<R>(run: impl FnOnce() -> R) -> Result<R, String> {
    catch_unwind(AssertUnwindSafe(run))
        .map_err(|payload| format!("panicked: {}", panic_message(&*payload)))
}

/// A panic's message, when it carries one as text.
fn panic_message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic without a message")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_fails_its_check_with_the_message() {
        let report = guarded(CheckKind::Forward, || panic!("row {} of {}", 3, 4));
        assert!(!report.passed());
        assert_eq!(report.kind, CheckKind::Forward);
        assert_eq!(report.failure.as_deref(), Some("panicked: row 3 of 4"));
        let report = guarded(CheckKind::SgdStep, || std::panic::panic_any(7u8));
        assert_eq!(
            report.failure.as_deref(),
            Some("panicked: a panic without a message")
        );
    }

    #[test]
    fn a_check_that_returns_keeps_its_report() {
        let report = guarded(CheckKind::Forward, || CheckReport::new(CheckKind::Forward));
        assert!(report.passed());
        assert_eq!(caught(|| 2.0), Ok(2.0));
        assert_eq!(
            caught(|| -> f64 { panic!("no") }),
            Err("panicked: no".to_owned())
        );
    }
}
