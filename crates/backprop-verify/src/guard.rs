//! A panic of the kernel under test, turned into the failure of the check that met it.
//!
//! The verifier runs kernels it did not write. One that panics on some
//! shape fails the check that called it, with the panic's message, and the
//! run goes on to the other checks and cells (on the same instance, so a
//! kernel that a panic leaves broken fails them too); the report then names
//! every cell and check that panicked, where an unguarded run would stop at
//! the first with no report.
//!
//! A panic on the thread of a guarded call is not printed (a kernel that
//! panics on every cell would otherwise bury the report under a trace per
//! check): its place in the source goes into the failure's message. The
//! kit's panic hook, installed at the first guarded call, hands every
//! other panic (another thread's, a kernel's own workers' among them, or
//! this thread's outside a guarded call) to the hook it replaced, and
//! every panic too where `RUST_BACKTRACE` asks for traces or panics abort
//! (no report would come). A hook set after it replaces it: the failures
//! then carry no place, and the panics print as that hook says.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe, PanicHookInfo, catch_unwind};
use std::sync::Once;

use crate::report::{CheckKind, CheckReport};

thread_local! {
    /// How many guarded calls this thread is inside.
    static GUARDED: Cell<usize> = const { Cell::new(0) };
    /// The place and message of this thread's last guarded panic.
    static PLACE: RefCell<Option<(String, String)>> = const { RefCell::new(None) };
}

/// Installs the kit's panic hook, once per process (see the module docs).
fn install_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = panic::take_hook();
        let traced = std::env::var_os("RUST_BACKTRACE").is_some_and(|value| value != "0");
        let quiet = !traced && !cfg!(panic = "abort");
        panic::set_hook(Box::new(move |info: &PanicHookInfo<'_>| {
            let guarded = GUARDED.with(Cell::get) > 0;
            if guarded && let Some(place) = info.location() {
                let message = panic_message(info.payload()).to_owned();
                PLACE.with(|last| *last.borrow_mut() = Some((place.to_string(), message)));
            }
            if !(guarded && quiet) {
                previous(info);
            }
        }));
    });
}

/// `check()`, or a failed report of `kind` if it panics.
pub fn guarded(kind: CheckKind, check: impl FnOnce() -> CheckReport) -> CheckReport {
    caught(check).unwrap_or_else(|message| CheckReport::failed(kind, message))
}

/// `run()`, or `panicked: `, the panic's message and, for a panic on this
/// thread, `(at file:line:column)` if it panics: for the measurements
/// around the checks.
pub fn caught<R>(run: impl FnOnce() -> R) -> Result<R, String> {
    install_hook();
    PLACE.with(|last| last.borrow_mut().take());
    GUARDED.with(|depth| depth.set(depth.get() + 1));
    let result = catch_unwind(AssertUnwindSafe(run));
    GUARDED.with(|depth| depth.set(depth.get() - 1));
    result.map_err(|payload| {
        let message = panic_message(&*payload);
        // The place kept is this payload's only if its message is the same:
        // a kernel may have caught a panic of its own before.
        match PLACE.with(|last| last.borrow_mut().take()) {
            Some((place, said)) if said == message => format!("panicked: {message} (at {place})"),
            _ => format!("panicked: {message}"),
        }
    })
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
        let line = line!() + 1;
        let report = guarded(CheckKind::Forward, || panic!("row {} of {}", 3, 4));
        assert!(!report.passed());
        assert_eq!(report.kind, CheckKind::Forward);
        let place = format!("{}:{line}:", file!());
        let expected = format!("panicked: row 3 of 4 (at {place}");
        let failure = report.failure.unwrap_or_default();
        assert!(failure.starts_with(&expected), "{failure}");
        let report = guarded(CheckKind::SgdStep, || std::panic::panic_any(7u8));
        let failure = report.failure.unwrap_or_default();
        assert!(
            failure.starts_with("panicked: a panic without a message (at "),
            "{failure}"
        );
    }

    #[test]
    fn a_panic_on_another_thread_keeps_its_message_without_a_place() {
        let report = guarded(CheckKind::Forward, || {
            let worker = std::thread::spawn(|| panic!("in a worker"));
            match worker.join() {
                Ok(()) => CheckReport::new(CheckKind::Forward),
                Err(payload) => std::panic::resume_unwind(payload),
            }
        });
        assert_eq!(report.failure.as_deref(), Some("panicked: in a worker"));
    }

    #[test]
    fn a_check_that_returns_keeps_its_report() {
        let report = guarded(CheckKind::Forward, || CheckReport::new(CheckKind::Forward));
        assert!(report.passed());
        assert_eq!(caught(|| 2.0), Ok(2.0));
        let failure = caught(|| -> f64 { panic!("no") }).unwrap_err();
        assert!(failure.starts_with("panicked: no (at "), "{failure}");
    }

    #[test]
    fn a_place_kept_from_a_panic_caught_before_is_not_given_to_another() {
        let failure = caught(|| {
            let caught_inside = catch_unwind(|| panic!("handled inside"));
            assert!(caught_inside.is_err());
            let worker = std::thread::spawn(|| panic!("in a worker"));
            let Err(payload) = worker.join();
            std::panic::resume_unwind(payload);
        })
        .unwrap_err();
        assert_eq!(failure, "panicked: in a worker");
    }
}
