//! Project automation, run as `cargo xtask <task>`: `verify` proves every backend's gradients, `bench` times them, `fuzz` feeds the file readers mutated inputs.

mod bench;
mod fuzz;
mod verify;

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

const USAGE: &str =
    "usage: cargo xtask <verify | bench | fuzz> [options]; --help after a task lists its options";

/// The largest single allocation [`CappedAllocator`] grants; no limit
/// unless `cargo xtask fuzz` sets one.
pub(crate) static ALLOCATION_LIMIT: AtomicUsize = AtomicUsize::new(usize::MAX);
/// Allocations refused for being above the limit.
pub(crate) static REFUSED_ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

/// The system allocator, refusing (returning null for) any single
/// allocation above [`ALLOCATION_LIMIT`]: code that reserves with
/// `try_reserve` gets an error it can return, code that allocates
/// infallibly aborts, which the fuzz campaign reports as a crash.
struct CappedAllocator;

impl CappedAllocator {
    fn allowed(size: usize) -> bool {
        if size <= ALLOCATION_LIMIT.load(Ordering::Relaxed) {
            return true;
        }
        REFUSED_ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        false
    }
}

// SAFETY: every call is forwarded to the system allocator unchanged, or
// answered with null, which `GlobalAlloc` allows for any request.
unsafe impl GlobalAlloc for CappedAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !Self::allowed(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !Self::allowed(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !Self::allowed(new_size) {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CappedAllocator = CappedAllocator;

/// The workspace root: the parent of this crate's folder.
fn workspace_root() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| Path::new(".").to_path_buf(), Path::to_path_buf)
}

/// A task's usage, asked for with `-h` or `--help`: printed to standard
/// output, and the task exits with success.
#[derive(Debug)]
struct HelpRequested(String);

impl std::fmt::Display for HelpRequested {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HelpRequested {}

/// Walks a task's arguments: `on_arg(arg, value)` handles each one, calling
/// `value()` to take the next argument as its value; `-h` or `--help` stops
/// with [`HelpRequested`], and a flag missing its value with `usage` as an error.
fn for_each_arg(
    args: &[String],
    usage: &str,
    mut on_arg: impl FnMut(&str, &mut dyn FnMut() -> anyhow::Result<String>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if matches!(arg.as_str(), "-h" | "--help") {
            return Err(HelpRequested(usage.to_owned()).into());
        }
        let mut value = || {
            args.next()
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("{arg} needs a value\n{usage}"))
        };
        on_arg(arg, &mut value)?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("verify") => verify::run(&args[1..]),
        Some("bench") => bench::run(&args[1..], &workspace_root()),
        Some("fuzz") => fuzz::run(&args[1..], &workspace_root()),
        Some("-h" | "--help") => {
            println!(
                "{USAGE}\n\n  verify    run every check on every backend and the negative controls\n  bench     run the criterion benches, then report, save and plot their medians\n  fuzz      feed the digits and checkpoint readers seeded, mutated inputs; fail on any panic or crash"
            );
            return ExitCode::SUCCESS;
        }
        Some(other) => Err(anyhow::anyhow!("unknown task '{other}'\n{USAGE}")),
        None => Err(anyhow::anyhow!(USAGE)),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) if error.is::<HelpRequested>() => {
            println!("{error}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_after_a_task_is_a_request_not_an_error() {
        let args = ["--quick".to_owned(), "--help".to_owned()];
        let error = for_each_arg(&args, "usage: the task", |_, _| Ok(())).unwrap_err();
        assert!(error.is::<HelpRequested>());
        assert_eq!(error.to_string(), "usage: the task");
        let args = ["--json".to_owned()];
        let error = for_each_arg(&args, "usage", |_, value| value().map(|_| ())).unwrap_err();
        assert!(!error.is::<HelpRequested>());
        assert_eq!(error.to_string(), "--json needs a value\nusage");
    }
}
