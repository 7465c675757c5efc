//! The allocation counter installed in a binary of its own: it sees allocations on the calling
//! thread and on others, and nothing when nothing allocates.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use backprop_verify::{Allocations, CountingAllocator, allocations_during};

#[global_allocator]
static COUNTING: CountingAllocator = CountingAllocator;

#[test]
fn nothing_allocated_counts_nothing() {
    let mut values = vec![1.0f64; 100];
    let counted = allocations_during(|| {
        for v in &mut values {
            *v *= 2.0;
        }
    })
    .expect("installed");
    assert_eq!(counted.this_thread, 0);
    assert_eq!(values[99], 2.0);
}

#[test]
fn allocations_and_reallocations_on_the_calling_thread_are_counted() {
    // Two thousand allocations first, so that a count that added the
    // totals before and after instead of taking their difference shows.
    let earlier: Vec<Box<u64>> = (0..2000).map(Box::new).collect();
    let counted = allocations_during(|| {
        let mut values: Vec<u32> = Vec::with_capacity(1);
        values.extend(0..1000);
        std::hint::black_box(&values);
        for k in 0..3u64 {
            std::hint::black_box(Box::new(k));
        }
    })
    .expect("installed");
    // One allocation, at least one reallocation, three boxes; the other
    // tests of this binary may allocate meanwhile, but not by the thousand.
    assert!(
        counted.this_thread >= 5 && counted.this_thread < 100,
        "{counted:?}"
    );
    assert!(counted.all_threads >= counted.this_thread, "{counted:?}");
    assert!(counted.all_threads < 1000, "{counted:?}");
    drop(earlier);
}

#[test]
fn another_threads_allocations_count_for_all_threads_only() {
    // The thread is started, and waits (ten seconds at most, so that a
    // count that fails before it lets the thread go cannot hang the test),
    // before the count begins.
    let (go, done) = (AtomicBool::new(false), AtomicBool::new(false));
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let start = Instant::now();
            while !go.load(Ordering::Acquire) {
                if start.elapsed() > Duration::from_secs(10) {
                    return;
                }
                std::hint::spin_loop();
            }
            std::hint::black_box(vec![0u8; 4096]);
            done.store(true, Ordering::Release);
        });
        let counted: Allocations = allocations_during(|| {
            go.store(true, Ordering::Release);
            while !done.load(Ordering::Acquire) {
                std::hint::spin_loop();
            }
        })
        .expect("installed");
        assert_eq!(counted.this_thread, 0, "{counted:?}");
        assert!(counted.all_threads >= 1, "{counted:?}");
    });
}
