//! An allocation counter for test binaries: proof that a kernel's steps on a shape it has
//! seen before allocate nothing.
//!
//! A training loop calls a kernel thousands of times on the same shapes; a
//! kernel that allocates per step pays the allocator (and, for large
//! buffers, fresh pages) every time. Install [`CountingAllocator`] as the
//! global allocator of a test binary of its own (it counts for the whole
//! binary, so keep the counting test alone in it: another test running
//! beside it would be counted in [`Allocations::all_threads`]), warm the
//! kernel up on a shape, then count:
//!
//! ```ignore
//! use backprop_verify::{CountingAllocator, allocations_during};
//!
//! #[global_allocator]
//! static COUNTING: CountingAllocator = CountingAllocator;
//!
//! #[test]
//! fn steps_after_the_first_allocate_nothing() {
//!     // ... a network, a batch, `my_kernel`, one warm-up step ...
//!     let counted = allocations_during(|| {
//!         for _ in 0..5 {
//!             my_kernel.sgd_step(&mut network, &batch, &mut gradient, 0.01).unwrap();
//!         }
//!     })
//!     .expect("the counting allocator is installed");
//!     assert_eq!(counted.all_threads, 0);
//! }
//! ```
//!
//! [`Allocations::this_thread`] counts the calling thread alone, which is
//! what to check for a kernel that runs on the calling thread while other
//! threads of the program may allocate; [`Allocations::all_threads`] counts
//! every thread, for a kernel that runs on a pool.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The system allocator, counting every allocation and reallocation on the
/// calling thread and on all threads (see the [module docs](self)).
#[derive(Clone, Copy, Debug, Default)]
pub struct CountingAllocator;

thread_local! {
    /// Allocations and reallocations made by this thread.
    static THIS_THREAD: Cell<usize> = const { Cell::new(0) };
}

/// Allocations and reallocations made by every thread.
static ALL_THREADS: AtomicUsize = AtomicUsize::new(0);

/// Counts one allocation on the calling thread (none once its locals are
/// gone) and on all threads.
fn count() {
    let _ = THIS_THREAD.try_with(|count| count.set(count.get() + 1));
    ALL_THREADS.fetch_add(1, Ordering::Relaxed);
}

// SAFETY: every method forwards to `System` with the caller's own arguments,
// so `System`'s guarantees carry over unchanged.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller upholds `GlobalAlloc::alloc_zeroed`'s contract.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller upholds `GlobalAlloc::dealloc`'s contract.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Allocations and reallocations counted while a closure ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Allocations {
    /// Made by the thread that called [`allocations_during`].
    pub this_thread: usize,
    /// Made by any thread, the calling one included.
    pub all_threads: usize,
}

/// What [`allocations_during`] refuses: counting in a binary whose global
/// allocator is not [`CountingAllocator`], where every count would be 0
/// whatever the code did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotInstalled;

impl fmt::Display for NotInstalled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "backprop_verify::CountingAllocator is not this binary's global allocator, \
             so no allocation would be counted",
        )
    }
}

impl std::error::Error for NotInstalled {}

/// Runs `f` and counts the allocations made meanwhile.
///
/// [`NotInstalled`], without running `f`, if [`CountingAllocator`] is not
/// the global allocator of the binary: the count would then be 0 whatever
/// `f` does. (One allocation, made before `f` runs, tells.)
pub fn allocations_during(f: impl FnOnce()) -> Result<Allocations, NotInstalled> {
    let probe = ALL_THREADS.load(Ordering::Relaxed);
    drop(std::hint::black_box(Box::new(0u64)));
    if ALL_THREADS.load(Ordering::Relaxed) == probe {
        return Err(NotInstalled);
    }
    let this_thread = THIS_THREAD.with(Cell::get);
    let all_threads = ALL_THREADS.load(Ordering::Relaxed);
    f();
    Ok(Allocations {
        this_thread: THIS_THREAD.with(Cell::get) - this_thread,
        all_threads: ALL_THREADS.load(Ordering::Relaxed) - all_threads,
    })
}

#[cfg(test)]
mod tests {
    use super::{NotInstalled, allocations_during};

    /// The library's own test binary keeps the system allocator, so the
    /// counter must refuse to report, and not run the code, rather than
    /// report 0.
    #[test]
    fn a_counter_that_is_not_installed_refuses_to_count() {
        let mut ran = false;
        assert_eq!(allocations_during(|| ran = true), Err(NotInstalled));
        assert!(!ran, "the code was not run");
        assert!(
            NotInstalled
                .to_string()
                .contains("is not this binary's global allocator")
        );
    }
}
