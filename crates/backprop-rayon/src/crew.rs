//! Forks whose helpers stay awake: rayon jobs that keep spinning for a while
//! after a fork, so that the next fork starts at once instead of waking a
//! sleeping thread (why that matters is in the crate docs, under "Forking").
//!
//! A [`Crew`] runs a fork's items on the calling thread and on helpers: jobs
//! spawned on the pool that, after the items they took are done, spin
//! (calling `rayon::yield_now` now and then, so that other work on the pool
//! still runs, and yielding the core when the pool has none, so that a
//! thread sharing the core, the caller above all, runs) until the next fork
//! posts items or the linger time passes without one. This is the "block
//! time" of OpenMP runtimes, on top of an ordinary rayon pool.
//!
//! Items are taken one at a time from a shared board, so whichever threads
//! turn up do the work: the calling thread takes items too, and a fork never
//! waits for a helper that has not started, which keeps it free of deadlock
//! when the pool is busy, has one thread, or is the pool the caller runs on.
//! The calling thread keeps the first item for itself, so that a fork's
//! item 0 runs on the same thread as the last fork's (and, on two threads
//! with the helper awake, item 1 too): a worker whose data is cut the same
//! way in every phase of a step finds it in its own core's cache.

use std::any::Any;
use std::convert::Infallible;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rayon::ThreadPool;

/// How long a helper keeps spinning for the next fork by default.
///
/// Long enough to span the gap between two training steps, short enough that
/// an idle program stops burning a core almost at once.
pub const DEFAULT_LINGER: Duration = Duration::from_millis(2);

/// The longest a helper spins for the next fork; a longer linger asked for is
/// taken as this one (a helper keeps a core busy while it spins).
pub const MAX_LINGER: Duration = Duration::from_secs(1);

/// Items of a fork held on the stack; more go into a vector.
const ITEMS_ON_STACK: usize = 16;

/// Spins between two looks at the clock and at the pool's other work.
const SPINS_PER_CHECK: u32 = 64;

/// Spins of a fork waiting for its last items between two yields of the core.
const SPINS_BEFORE_YIELD: u32 = 1 << 10;

/// A fork's work, with its lifetime erased so that helpers (which are
/// `'static` jobs) can hold it on the board.
///
/// Sound because [`Crew::run`] posts it and, before returning or unwinding,
/// takes it off the board and waits until every item taken from the board is
/// finished (see [`Posted`]): a helper calls it only for an item it took
/// while it was posted. One board holds one fork's work at a time: every
/// path that posts work takes the crew by `&mut self`, so two forks of one
/// crew can never overlap (an item cannot fork on its own crew, and two
/// threads cannot fork on it at once).
#[derive(Clone, Copy)]
struct PostedWork(*const (dyn Fn(usize) + Sync + 'static));

// SAFETY: the pointee is `Sync`, so calling it from any thread is sound; how
// long it lives is covered on the type.
unsafe impl Send for PostedWork {}

/// What the calling thread and the helpers share, under one lock.
struct Board {
    work: Option<PostedWork>,
    items: usize,
    next_item: usize,
    /// Helpers spawned and not yet gone.
    helpers: usize,
}

struct Shared {
    board: Mutex<Board>,
    /// Bumped whenever a fork posts work; helpers watch it without the lock.
    posts: AtomicU64,
    /// Items of the posted work that are finished.
    finished: AtomicUsize,
    /// The first panic of an item, resumed on the calling thread.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
}

impl Shared {
    fn board(&self) -> MutexGuard<'_, Board> {
        self.board.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next item of the posted work, if any is left.
    fn take(&self) -> Option<(usize, PostedWork)> {
        let mut board = self.board();
        let work = board.work?;
        (board.next_item < board.items).then(|| {
            board.next_item += 1;
            (board.next_item - 1, work)
        })
    }

    /// Runs every item left, catching a panic so that the fork still ends.
    fn run_items(&self) {
        while let Some((item, work)) = self.take() {
            // SAFETY: `item` was taken while `work` was posted, so `Crew::run`
            // is waiting for it and the work is alive (see `PostedWork`).
            unsafe { self.run_item(item, work) };
        }
    }

    /// Runs one item taken from the board, catching a panic, and counts it finished.
    ///
    /// # Safety
    /// `item` must have been taken while `work` was posted (see `PostedWork`).
    unsafe fn run_item(&self, item: usize, work: PostedWork) {
        // SAFETY: the caller vouches that `work` is alive.
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| unsafe { (*work.0)(item) }));
        if let Err(payload) = outcome {
            let mut panic = self.panic.lock().unwrap_or_else(PoisonError::into_inner);
            panic.get_or_insert(payload);
        }
        self.finished.fetch_add(1, Ordering::Release);
    }

    /// A helper's life: runs items whenever some are posted, and leaves once
    /// `linger` has passed since the last fork it saw.
    fn help(&self, linger: Duration) {
        // A helper is spawned for posted work, so it starts by running items.
        let mut seen = self.posts.load(Ordering::Acquire);
        self.run_items();
        let mut deadline = Instant::now() + linger;
        let mut spins = 0u32;
        loop {
            let posts = self.posts.load(Ordering::Acquire);
            if seen != posts {
                seen = posts;
                self.run_items();
                deadline = Instant::now() + linger;
            }
            spins += 1;
            if spins == SPINS_PER_CHECK {
                spins = 0;
                // Lets other work queued on the pool run meanwhile, and when
                // there is none gives the core away for a moment: a thread
                // this one waits for (the caller, forking next) may share
                // its core, and would otherwise wait for the scheduler to
                // preempt a spinning helper.
                if rayon::yield_now() == Some(rayon::Yield::Idle) {
                    std::thread::yield_now();
                }
                // A fork posted while this thread was away (running other
                // work, or not scheduled) counts: look before leaving.
                if self.posts.load(Ordering::Acquire) != seen {
                    continue;
                }
                if Instant::now() >= deadline {
                    let mut board = self.board();
                    let posted = board.work.is_some() && board.next_item < board.items;
                    if !posted {
                        board.helpers -= 1;
                        return;
                    }
                }
            }
            std::hint::spin_loop();
        }
    }
}

/// Work on the board: dropping it takes the work off and waits until every
/// item taken from it is finished, which is what makes [`PostedWork`] sound.
struct Posted<'a>(&'a Shared);

impl Drop for Posted<'_> {
    fn drop(&mut self) {
        let shared = self.0;
        let taken = {
            let mut board = shared.board();
            board.work = None;
            board.next_item
        };
        // Each item taken is running on a thread that will finish it; give
        // the core away now and then in case that thread is waiting for it.
        let mut spins = 0u32;
        while shared.finished.load(Ordering::Acquire) < taken {
            spins += 1;
            if spins == SPINS_BEFORE_YIELD {
                spins = 0;
                std::thread::yield_now();
            }
            std::hint::spin_loop();
        }
    }
}

/// Runs forks on a pool with helpers that stay awake between them.
pub(crate) struct Crew {
    shared: Arc<Shared>,
    /// The pool helpers are spawned on; the global pool without one.
    pub(crate) pool: Option<Arc<ThreadPool>>,
    pub(crate) linger: Duration,
}

impl Crew {
    /// A crew on the global pool whose helpers wait [`DEFAULT_LINGER`] for the next fork.
    pub(crate) fn new() -> Self {
        Crew {
            shared: Arc::new(Shared {
                board: Mutex::new(Board {
                    work: None,
                    items: 0,
                    next_item: 0,
                    helpers: 0,
                }),
                posts: AtomicU64::new(0),
                finished: AtomicUsize::new(0),
                panic: Mutex::new(None),
            }),
            pool: None,
            linger: DEFAULT_LINGER,
        }
    }

    /// The threads of the pool.
    pub(crate) fn threads(&self) -> usize {
        self.pool
            .as_ref()
            .map_or_else(rayon::current_num_threads, |pool| {
                pool.current_num_threads()
            })
    }

    /// Calls `work` on every item, each on one of the calling thread and up
    /// to `threads - 1` helpers, and returns when all are done.
    pub(crate) fn spread<I: Send>(
        &mut self,
        items: impl Iterator<Item = I>,
        work: &(impl Fn(I) + Sync),
    ) {
        match self.try_spread(items.map(Ok::<I, Infallible>), work) {
            Ok(()) => {}
            Err(never) => match never {},
        }
    }

    /// [`Crew::spread`] over items that may fail to be made: the first
    /// error is returned before any item runs.
    ///
    /// The first [`ITEMS_ON_STACK`] items wait for their thread in slots on
    /// the stack, so a fork of no more items allocates nothing.
    pub(crate) fn try_spread<I: Send, E>(
        &mut self,
        items: impl Iterator<Item = Result<I, E>>,
        work: &(impl Fn(I) + Sync),
    ) -> Result<(), E> {
        let mut items = items;
        let slots: [Mutex<Option<I>>; ITEMS_ON_STACK] = std::array::from_fn(|_| Mutex::new(None));
        let mut count = 0;
        for slot in &slots {
            let Some(item) = items.next() else { break };
            *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(item?);
            count += 1;
        }
        // Empty, and so not allocated, unless there were more items.
        let more = items
            .map(|item| item.map(|item| Mutex::new(Some(item))))
            .collect::<Result<Vec<_>, E>>()?;
        self.run(count + more.len(), &|k| {
            let slot = slots.get(k).or_else(|| more.get(k - ITEMS_ON_STACK));
            // The board hands out each item once, so the item is still there.
            let item =
                slot.and_then(|slot| slot.lock().unwrap_or_else(PoisonError::into_inner).take());
            if let Some(item) = item {
                work(item);
            }
        });
        Ok(())
    }

    /// [`Crew::spread`] if `fork`; otherwise `work` on every item in turn on
    /// the calling thread.
    pub(crate) fn spread_if<I: Send>(
        &mut self,
        fork: bool,
        items: impl Iterator<Item = I>,
        work: &(impl Fn(I) + Sync),
    ) {
        if fork {
            self.spread(items, work);
        } else {
            items.for_each(work);
        }
    }

    /// Helpers alive now (spinning or working).
    #[cfg(test)]
    pub(crate) fn helpers(&self) -> usize {
        self.shared.board().helpers
    }

    /// Calls `work(0)`, ..., `work(items - 1)` once each, on the calling
    /// thread and on up to `threads - 1` helpers, and returns when all are
    /// done. A panic in an item is resumed here once every item has finished.
    pub(crate) fn run(&mut self, items: usize, work: &(dyn Fn(usize) + Sync)) {
        let shared = &self.shared;
        let wanted = items.min(self.threads()).saturating_sub(1);
        // SAFETY: only the lifetime is erased; see `PostedWork`. `&mut self`
        // makes this the only fork on the board until it returns.
        let erased = unsafe {
            std::mem::transmute::<
                *const (dyn Fn(usize) + Sync + '_),
                *const (dyn Fn(usize) + Sync + 'static),
            >(work)
        };
        let missing = {
            let mut board = shared.board();
            shared.finished.store(0, Ordering::Relaxed);
            // Item 0 is the calling thread's (see the module docs).
            *board = Board {
                work: Some(PostedWork(erased)),
                items,
                next_item: items.min(1),
                helpers: board.helpers,
            };
            shared.posts.fetch_add(1, Ordering::Release);
            let missing = wanted.saturating_sub(board.helpers);
            board.helpers += missing;
            missing
        };
        // From here on, leaving this function (by a panic too) first waits
        // for every item taken.
        let posted = Posted(shared);
        for _ in 0..missing {
            let (helper, linger) = (Arc::clone(shared), self.linger);
            let job = move || helper.help(linger);
            match &self.pool {
                Some(pool) => pool.spawn(job),
                None => rayon::spawn(job),
            }
        }
        if items > 0 {
            // SAFETY: item 0 was taken when the work was posted above.
            unsafe { shared.run_item(0, PostedWork(erased)) };
        }
        shared.run_items();
        drop(posted);
        let panic = shared
            .panic
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(payload) = panic {
            panic::resume_unwind(payload);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    use super::{Crew, ITEMS_ON_STACK};

    fn crew(threads: usize, linger: Duration) -> Crew {
        let mut crew = Crew::new();
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build();
        crew.pool = Some(Arc::new(pool.expect("a pool")));
        crew.linger = linger;
        crew
    }

    /// Waits up to 10 s for `condition`; whether it came true.
    fn eventually(condition: impl Fn() -> bool) -> bool {
        let start = Instant::now();
        while !condition() {
            if start.elapsed() > Duration::from_secs(10) {
                return false;
            }
            std::thread::yield_now();
        }
        true
    }

    #[test]
    fn every_item_runs_exactly_once_in_every_fork() {
        for threads in [1, 2, 3] {
            let mut crew = crew(threads, Duration::from_millis(5));
            // Up to ITEMS_ON_STACK items wait on the stack; more in a vector.
            for items in [0, 1, 2, 3, 7, ITEMS_ON_STACK, ITEMS_ON_STACK + 1, 32] {
                for _ in 0..20 {
                    let runs: Vec<AtomicUsize> = (0..items).map(|_| AtomicUsize::new(0)).collect();
                    crew.spread(runs.iter(), &|count: &AtomicUsize| {
                        count.fetch_add(1, Ordering::Relaxed);
                    });
                    assert!(runs.iter().all(|count| count.load(Ordering::Relaxed) == 1));
                }
            }
        }
    }

    #[test]
    fn a_fork_of_no_items_runs_nothing() {
        let mut crew = crew(2, Duration::from_millis(5));
        let calls = AtomicUsize::new(0);
        for _ in 0..10 {
            crew.run(0, &|_| {
                calls.fetch_add(1, Ordering::Relaxed);
            });
        }
        assert_eq!(calls.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn the_calling_thread_runs_the_first_item_of_every_fork() {
        // With helpers spinning and ready to take items the moment they are
        // posted, item 0 still runs on the calling thread.
        let mut crew = crew(2, Duration::from_millis(50));
        let caller = std::thread::current().id();
        for items in [1, 2, 3] {
            for _ in 0..200 {
                let first_on_caller = AtomicBool::new(false);
                crew.spread(0..items, &|item: usize| {
                    if item == 0 {
                        let here = std::thread::current().id() == caller;
                        first_on_caller.store(here, Ordering::Relaxed);
                    }
                });
                assert!(first_on_caller.load(Ordering::Relaxed), "{items} items");
            }
        }
    }

    #[test]
    fn an_item_that_cannot_be_made_stops_the_fork_before_any_item_runs() {
        // A failure among the items on the stack, among those past them,
        // and as the last item.
        let mut crew = crew(2, Duration::from_millis(5));
        for (items, failing) in [(5, 3), (20, ITEMS_ON_STACK + 2), (20, 19)] {
            let runs = AtomicUsize::new(0);
            let made = (0..items).map(|k| if k == failing { Err(k) } else { Ok(k) });
            let outcome = crew.try_spread(made, &|_: usize| {
                runs.fetch_add(1, Ordering::Relaxed);
            });
            assert_eq!(outcome, Err(failing));
            assert_eq!(
                runs.load(Ordering::Relaxed),
                0,
                "{items} items, {failing} failing"
            );
        }
        let runs = AtomicUsize::new(0);
        let made = (0..20).map(Ok::<usize, ()>);
        let outcome = crew.try_spread(made, &|_: usize| {
            runs.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(outcome, Ok(()));
        assert_eq!(runs.load(Ordering::Relaxed), 20);
    }

    #[test]
    fn items_run_at_the_same_time_on_two_threads() {
        let mut crew = crew(2, Duration::from_millis(50));
        let started = [AtomicBool::new(false), AtomicBool::new(false)];
        let overlapped = AtomicUsize::new(0);
        crew.spread(0..2usize, &|item| {
            started[item].store(true, Ordering::SeqCst);
            if eventually(|| started[1 - item].load(Ordering::SeqCst)) {
                overlapped.fetch_add(1, Ordering::SeqCst);
            }
        });
        assert_eq!(overlapped.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_panic_in_an_item_reaches_the_caller_after_every_item_ran() {
        let mut crew = crew(2, Duration::from_millis(5));
        let finished = AtomicUsize::new(0);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            crew.spread(0..8usize, &|item| {
                if item == 3 {
                    panic!("item 3 fails");
                }
                finished.fetch_add(1, Ordering::SeqCst);
            });
        }));
        let payload = outcome.expect_err("the panic is resumed");
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"item 3 fails"));
        assert_eq!(finished.load(Ordering::SeqCst), 7);
        // The crew still works afterwards.
        let sum = AtomicUsize::new(0);
        crew.spread(1..=4usize, &|item| {
            sum.fetch_add(item, Ordering::SeqCst);
        });
        assert_eq!(sum.load(Ordering::SeqCst), 10);
    }

    #[test]
    fn forks_from_inside_the_pool_finish() {
        for threads in [1, 2] {
            let mut crew = crew(threads, Duration::from_millis(5));
            let pool = Arc::clone(crew.pool.as_ref().expect("a pool"));
            let crew = &mut crew;
            let runs = AtomicUsize::new(0);
            pool.install(|| {
                for _ in 0..50 {
                    crew.spread(0..4usize, &|_| {
                        runs.fetch_add(1, Ordering::SeqCst);
                    });
                }
            });
            assert_eq!(runs.load(Ordering::SeqCst), 200);
        }
    }

    #[test]
    fn crews_sharing_a_pool_from_several_threads_all_finish() {
        let pool = Arc::new(
            rayon::ThreadPoolBuilder::new()
                .num_threads(2)
                .build()
                .expect("a pool"),
        );
        let total = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..3 {
                let mut crew = Crew::new();
                crew.linger = Duration::from_millis(20);
                crew.pool = Some(Arc::clone(&pool));
                let total = &total;
                scope.spawn(move || {
                    for _ in 0..100 {
                        crew.spread(0..3usize, &|_| {
                            total.fetch_add(1, Ordering::SeqCst);
                        });
                    }
                });
            }
        });
        assert_eq!(total.load(Ordering::SeqCst), 3 * 100 * 3);
    }

    #[test]
    fn helpers_stay_for_the_linger_and_then_leave() {
        let mut crew = crew(3, Duration::from_millis(20));
        crew.spread(0..3usize, &|_| ());
        assert_eq!(crew.helpers(), 2, "one helper per thread beyond the caller");
        crew.spread(0..3usize, &|_| ());
        assert_eq!(
            crew.helpers(),
            2,
            "the next fork tops them up, never beyond"
        );
        assert!(eventually(|| crew.helpers() == 0));
        let runs = AtomicUsize::new(0);
        crew.spread(0..3usize, &|_| {
            runs.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(
            runs.load(Ordering::SeqCst),
            3,
            "a fork after they left spawns new ones"
        );
    }

    #[test]
    fn helpers_that_ran_items_wait_for_the_next_fork() {
        // Three items that wait for one another run on three threads, so
        // both helpers have run one; with a linger of a second they are
        // still there well after the fork, the one that spawned them and
        // the next, which they take up while waiting.
        let mut crew = crew(3, super::MAX_LINGER);
        for fork in 1..=2 {
            let arrived = AtomicUsize::new(0);
            crew.spread(0..3usize, &|_| {
                arrived.fetch_add(1, Ordering::SeqCst);
                assert!(eventually(|| arrived.load(Ordering::SeqCst) == 3));
            });
            std::thread::sleep(Duration::from_millis(50));
            assert_eq!(crew.helpers(), 2, "after fork {fork}");
        }
    }

    #[test]
    fn a_helper_kept_away_past_its_linger_stays_for_a_fork_posted_meanwhile() {
        /// Lets the jobs go when dropped, so that a failed assertion
        /// leaves no job spinning on the pool.
        struct Release(Arc<AtomicBool>);
        impl Drop for Release {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let linger = Duration::from_millis(300);
        let mut crew = crew(2, linger);
        // Two items that wait for each other: the helper has run one.
        let arrived = AtomicUsize::new(0);
        crew.spread(0..2usize, &|_| {
            arrived.fetch_add(1, Ordering::SeqCst);
            assert!(eventually(|| arrived.load(Ordering::SeqCst) == 2));
        });
        assert_eq!(crew.helpers(), 1);
        // Two jobs that hold both threads of the pool: the lingering helper
        // runs one of them from inside its wait, and is away until released.
        let pool = Arc::clone(crew.pool.as_ref().expect("a pool"));
        let (started, done) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let release = Release(Arc::new(AtomicBool::new(false)));
        for _ in 0..2 {
            let (started, done, release) = (
                Arc::clone(&started),
                Arc::clone(&done),
                Arc::clone(&release.0),
            );
            pool.spawn(move || {
                started.fetch_add(1, Ordering::SeqCst);
                while !release.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(1));
                }
                done.fetch_add(1, Ordering::SeqCst);
            });
        }
        assert!(eventually(|| started.load(Ordering::SeqCst) == 2));
        // Past the linger, a fork the caller runs alone...
        std::thread::sleep(linger + linger / 2);
        crew.spread(0..2usize, &|_| ());
        // ...keeps the helper when it comes back: it sees that fork and
        // waits a linger more, rather than leaving because its wait ran out
        // while it was away.
        drop(release);
        assert!(eventually(|| done.load(Ordering::SeqCst) == 2));
        std::thread::sleep(linger / 10);
        assert_eq!(
            crew.helpers(),
            1,
            "the helper left although a fork came while it was away"
        );
        assert!(eventually(|| crew.helpers() == 0));
    }

    #[test]
    fn a_zero_linger_lets_helpers_go_at_once() {
        let mut crew = crew(2, Duration::ZERO);
        for _ in 0..20 {
            crew.spread(0..2usize, &|_| ());
        }
        assert!(eventually(|| crew.helpers() == 0));
    }

    #[test]
    fn one_crew_handed_between_threads_runs_each_fork_whole() {
        // The only way to share a crew is exclusive access (`&mut self` on
        // every path that posts work): here a mutex hands it from thread to
        // thread, and every fork still runs all its items exactly once.
        let crew = std::sync::Mutex::new(crew(2, Duration::from_millis(5)));
        let total = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..3 {
                scope.spawn(|| {
                    for _ in 0..50 {
                        let runs: Vec<AtomicUsize> = (0..5).map(|_| AtomicUsize::new(0)).collect();
                        let mut crew = crew.lock().expect("no test thread panics");
                        crew.spread(runs.iter(), &|count: &AtomicUsize| {
                            count.fetch_add(1, Ordering::SeqCst);
                        });
                        drop(crew);
                        assert!(runs.iter().all(|count| count.load(Ordering::SeqCst) == 1));
                        total.fetch_add(5, Ordering::SeqCst);
                    }
                });
            }
        });
        assert_eq!(total.load(Ordering::SeqCst), 3 * 50 * 5);
    }
}
