//! The count behind [`live_buffers`](super::live_buffers), kept per thread
//! and read as an exact snapshot.
//!
//! One global atomic counter cost two locked read-modify-writes per buffer
//! (about 10 ns each on the export path, where they drain the store buffer
//! full of the fresh block's writes): more than dlpark's whole export of an
//! array. Each thread instead counts in a [`Slot`] only it writes: one
//! plain load and one plain store per buffer made or freed, no locked
//! instruction and no fence on x86.
//!
//! # What a slot holds
//!
//! Two counters, each modulo 2^32: the buffers its thread made, and those
//! it freed. Two monotonic counters rather than one net count, because the
//! reader needs frees and makes apart (below); every count changes its
//! counter, so a counter is its own version. (Two `u32`s, not halves of one
//! `u64`: a half that wraps would carry into the other.)
//!
//! # Reading them all at once
//!
//! The reader, [`Registry::total`], loads the counters one after another
//! while other threads count. A plain sum is not a snapshot: a buffer made
//! on thread A and freed on thread B can be seen freed (B's slot read after
//! the free) but not made (A's slot read before the make), and the sum dips
//! below zero, which reads as a double release; reading again until the sum
//! is not negative does not make it exact. So the reader collects every
//! counter, collects them again, and so on until two consecutive collects
//! are equal, and reports the buffers *made* by the later collect less
//! those *freed* by the earlier one, plus `retired`:
//!
//! - In two equal collects each counter's two loads read one store (no
//!   ABA: below). Those stores form a consistent cut: anything that happens
//!   before a counted make or free is counted too (the ordering argument
//!   below, for every pair of counters, since all loads of the earlier
//!   collect precede all loads of the later). So the report is the count
//!   at one instant, exactly: every buffer counted freed is counted made.
//! - Even when the collects differ, a free counted by the earlier collect
//!   has its make counted by the later one (the same argument), so the
//!   report is below zero only if some buffer really was released twice.
//!   That is the fallback when other threads count between every two
//!   collects: after [`COLLECTS`] collects the last two are reported as
//!   they are, an over-count rather than a snapshot (it also counts the
//!   buffers made between the two, freed or not), with the double-release
//!   check still sound (a double release it hides is one the next quiet
//!   read reports). A reader waits only while some thread counts between every two
//!   of its collects; it yields between them, and never makes more than
//!   [`COLLECTS`]: it cannot starve, and never panics falsely.
//!
//! # Memory ordering
//!
//! A counter's owner stores with `Release`, the reader loads with `Acquire`
//! (both plain `mov`s on x86). Say buffer X is made on A (store `a` to A's
//! made counter) and freed on B (store `b` to B's freed counter). Handing
//! X from A to B synchronises the two threads (a channel, a lock, a join,
//! the GIL: safe Rust offers nothing less), so `a` happens before `b`. If
//! the earlier collect's load of B's counter reads `b`, or a later store of
//! B's (which `b` precedes in B's program order), that load synchronises
//! with the store it reads, so `a` happens before it, and so before every
//! load of the later collect, which follow it in the reader's program
//! order. A load that `a` happens before reads `a` or a later store to that
//! counter (coherence): the later collect counts X made. With `Relaxed`
//! loads nothing would order the reader's load of A's counter after `a`.
//! The owner's own load is `Relaxed`: it reads its own last store.
//!
//! # Wrapping
//!
//! Counters wrap modulo 2^32 (a thread that made 2^32 buffers in its life
//! is not rare), and so does the sum: the reader adds the made counters,
//! subtracts the freed ones and adds `retired` in wrapping `u32`
//! arithmetic, which is the true count modulo 2^32 however the counters
//! wrapped. The true count is a number of live buffers, far below 2^31
//! (2^31 live buffers would be 2^31 tensors or exports, or buffers leaked
//! on purpose with `mem::forget`), or a little below zero after a real
//! double release; so the `u32` read as an `i32` is the count. The
//! fallback's over-count adds the buffers made between the last
//! two collects, which stays below 2^31 unless 2^31 buffers are made in
//! that instant.
//!
//! A counter repeats a value only after 2^32 counts, so two equal loads of
//! it read one store unless its thread made (or freed) 2^32 buffers, about
//! 4 s of nothing else at 1 ns each, between the reader's two loads of it,
//! a few microseconds apart.
//!
//! # Threads that come and go
//!
//! A thread's slot is retired when the thread exits: its net count moves
//! into `retired` and the slot, zeroed, is reused by the next new thread,
//! under the registry lock. The reader holds that lock for all its
//! collects, so no slot joins, leaves or is zeroed meanwhile, and the
//! registry holds as many slots as threads ever ran at once. A buffer
//! counted on a thread whose slot is already gone (from another
//! thread-local's destructor) counts in `retired` directly, under the lock.
//! What `retired` holds when the reader takes the lock happened before all
//! its loads; a make or free that joins `retired` after the reader's
//! critical section cannot have happened before a store the reader loads
//! (that store would then happen before the reader's critical section
//! ended, and the critical section before it).

use std::num::Wrapping;
use std::sync::atomic::AtomicU32;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// What a thread counts: one buffer made, or one freed.
#[derive(Clone, Copy)]
pub(super) enum Event {
    Made,
    Freed,
}

/// Collects [`Registry::total`] makes before it reports the last two as
/// they are (an over-count, the double-release check still sound).
const COLLECTS: usize = 64;

/// The buffers one thread made and freed, each modulo 2^32. Written only by
/// the thread that owns it.
#[derive(Default)]
pub(super) struct Slot {
    made: AtomicU32,
    freed: AtomicU32,
}

/// One collect's loads of a slot: made, freed.
type Counts = (u32, u32);

impl Slot {
    /// Counts `event`: the hot path, one plain load and one plain store.
    /// Only the owning thread calls it.
    #[inline]
    pub(super) fn count(&self, event: Event) {
        let counter = match event {
            Event::Made => &self.made,
            Event::Freed => &self.freed,
        };
        // Only this thread writes the slot (its retirement too, under the
        // lock, on this thread): no read-modify-write needed, and the load
        // reads this thread's own last store. `Release`: see the module docs.
        counter.store(counter.load(Relaxed).wrapping_add(1), Release);
    }

    fn load(&self) -> Counts {
        (self.made.load(Acquire), self.freed.load(Acquire))
    }
}

pub(super) struct Registry {
    /// Every slot handed out, live or free (leaked once, reused).
    slots: Vec<&'static Slot>,
    /// Slots of exited threads, zeroed, for new threads.
    free: Vec<&'static Slot>,
    /// The net count of exited threads (and late counts), modulo 2^32.
    retired: Wrapping<u32>,
}

impl Registry {
    pub(super) const fn new() -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
            retired: Wrapping(0),
        }
    }

    /// A slot for a new thread: an exited thread's, or a new one.
    fn register(&mut self) -> &'static Slot {
        self.free.pop().unwrap_or_else(|| {
            let slot: &'static Slot = Box::leak(Box::default());
            self.slots.push(slot);
            slot
        })
    }

    /// Moves an exiting thread's count into `retired` and frees its slot
    /// (on that thread: its last writes to the slot).
    fn retire(&mut self, slot: &'static Slot) {
        self.retired +=
            Wrapping(slot.made.swap(0, Relaxed)) - Wrapping(slot.freed.swap(0, Relaxed));
        self.free.push(slot);
    }

    /// The live count: exact when two consecutive collects agree, an upper
    /// bound after [`COLLECTS`] that never did, below zero only after a
    /// real double release (module docs). `between(i)` runs after each
    /// collect's loads of slot `i` (the tests' hook; a no-op otherwise).
    pub(super) fn total(&self, mut between: impl FnMut(usize)) -> i32 {
        let mut collect = |counts: &mut Vec<Counts>| {
            counts.clear();
            for (i, slot) in self.slots.iter().enumerate() {
                counts.push(slot.load());
                between(i);
            }
        };
        let mut earlier = Vec::with_capacity(self.slots.len());
        let mut later = Vec::with_capacity(self.slots.len());
        collect(&mut earlier);
        for attempt in 2..=COLLECTS {
            collect(&mut later);
            if later == earlier || attempt == COLLECTS {
                break;
            }
            std::mem::swap(&mut earlier, &mut later);
            std::thread::yield_now();
        }
        let made: Wrapping<u32> = later.iter().map(|&(made, _)| Wrapping(made)).sum();
        let freed: Wrapping<u32> = earlier.iter().map(|&(_, freed)| Wrapping(freed)).sum();
        // The true count modulo 2^32, and far from ±2^31 (module docs).
        (self.retired + made - freed).0 as i32
    }
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry::new());

fn registry() -> MutexGuard<'static, Registry> {
    // The registry's data is consistent after every statement: a panic
    // elsewhere while it was held leaves nothing half-done.
    REGISTRY.lock().unwrap_or_else(PoisonError::into_inner)
}

/// This thread's slot; returned to the registry when the thread exits.
struct Local(&'static Slot);

impl Drop for Local {
    fn drop(&mut self) {
        registry().retire(self.0);
    }
}

thread_local! {
    static LOCAL: Local = Local(registry().register());
}

/// Counts `event` on this thread.
#[inline]
pub(super) fn count(event: Event) {
    if LOCAL.try_with(|local| local.0.count(event)).is_err() {
        registry().retired += match event {
            Event::Made => Wrapping(1),
            Event::Freed => Wrapping(u32::MAX),
        };
    }
}

/// The Rust-owned buffers live now (module docs).
pub(super) fn total() -> usize {
    checked(registry().total(|_| {}))
}

/// A count, which is below zero only if some buffer was freed twice (or
/// counted freed without being counted made): a bug tests must see (the
/// Python suite runs a release build), not a count of 0 that looks like
/// "nothing live". A panic, never across `extern "C"`: the callers are
/// Rust code and PyO3's `live_buffers`, which turns it into a Python
/// exception.
fn checked(live: i32) -> usize {
    assert!(
        live >= 0,
        "live_buffers: {live} (a Rust-owned buffer released twice)"
    );
    live.unsigned_abs() as usize
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::sync::mpsc;
    use std::thread::JoinHandle;

    use super::*;

    thread_local! {
        /// The slot of the test's own registry a `Worker` thread counts in.
        static MINE: Cell<Option<&'static Slot>> = const { Cell::new(None) };
    }

    /// A buffer as `LiveBuffer` counts one, in the test's registry: made
    /// on one worker's slot, freed on whichever worker drops it.
    struct Buffer;

    impl Buffer {
        fn new() -> Self {
            MINE.get().expect("a worker").count(Event::Made);
            Self
        }
    }

    impl Drop for Buffer {
        fn drop(&mut self) {
            // A buffer a failed test leaves on its own thread is not counted.
            if !std::thread::panicking() {
                MINE.get().expect("a worker").count(Event::Freed);
            }
        }
    }

    type Job = Box<dyn FnOnce() + Send>;

    /// A thread counting in one slot of the test's registry, running the
    /// jobs it is sent; a job's result comes back through a channel, which
    /// orders the job before whatever the caller does next (as handing a
    /// buffer to another thread always does).
    struct Worker {
        jobs: Option<mpsc::Sender<Job>>,
        thread: Option<JoinHandle<()>>,
    }

    impl Worker {
        fn new(slot: &'static Slot) -> Self {
            let (jobs, inbox) = mpsc::channel::<Job>();
            let thread = std::thread::spawn(move || {
                MINE.set(Some(slot));
                for job in inbox {
                    job();
                }
            });
            Self {
                jobs: Some(jobs),
                thread: Some(thread),
            }
        }

        fn run<R: Send + 'static>(&self, job: impl FnOnce() -> R + Send + 'static) -> R {
            let (done, result) = mpsc::sync_channel(1);
            let job: Job = Box::new(move || done.send(job()).unwrap());
            self.jobs.as_ref().unwrap().send(job).unwrap();
            result.recv().unwrap()
        }
    }

    impl Drop for Worker {
        fn drop(&mut self) {
            drop(self.jobs.take());
            if let Some(thread) = self.thread.take() {
                // Not `unwrap`: a worker that panicked has said so already.
                let _ = thread.join();
            }
        }
    }

    /// The tests' registries once done: their slots are leaked like the
    /// global registry's, and stay reachable (Miri checks for leaks).
    static KEPT: Mutex<Vec<Registry>> = Mutex::new(Vec::new());

    /// A test's own registry, kept in `KEPT` when the test is done.
    struct Own(Registry);

    impl std::ops::Deref for Own {
        type Target = Registry;
        fn deref(&self) -> &Registry {
            &self.0
        }
    }

    impl std::ops::DerefMut for Own {
        fn deref_mut(&mut self) -> &mut Registry {
            &mut self.0
        }
    }

    impl Drop for Own {
        fn drop(&mut self) {
            let registry = std::mem::replace(&mut self.0, Registry::new());
            let mut kept = KEPT.lock().unwrap_or_else(PoisonError::into_inner);
            kept.push(registry);
        }
    }

    /// A registry of two slots, a worker counting in each: `a` in the slot
    /// collected first, `b` in the one collected after it.
    fn two_workers() -> (Own, Worker, Worker) {
        let mut registry = Own(Registry::new());
        let (a, b) = (registry.register(), registry.register());
        (registry, Worker::new(a), Worker::new(b))
    }

    /// Between the reader's loads of `a`'s slot and `b`'s: two buffers made
    /// on `a`, handed to `b` and freed there.
    fn hand_over_two(a: &Worker, b: &Worker) {
        let buffers = a.run(|| [Buffer::new(), Buffer::new()]);
        b.run(move || drop(buffers));
    }

    /// One buffer live (made on `a`), read with two more made on `a` and
    /// freed on `b` between the loads of their slots in each of the first
    /// `limit` collects: the count read and the hand-overs made. The kept
    /// buffer is then freed, and the count back at zero.
    fn read_with_hand_overs(limit: usize) -> (usize, usize) {
        let (registry, a, b) = two_workers();
        let kept = a.run(Buffer::new);
        let mut hand_overs = 0;
        let live = checked(registry.total(|slot| {
            if slot == 0 && hand_overs < limit {
                hand_overs += 1;
                hand_over_two(&a, &b);
            }
        }));
        b.run(move || drop(kept));
        assert_eq!(checked(registry.total(|_| {})), 0);
        (live, hand_overs)
    }

    /// The false "released twice": a sum of the slots reads 1 - 2 = -1
    /// each time (and did for all nine sums of a reader that retried eight
    /// times); the double collect waits out the hand-overs and reads 1.
    #[test]
    fn a_buffer_made_and_freed_on_two_threads_between_slot_reads_is_counted_exactly() {
        assert_eq!(read_with_hand_overs(9), (1, 9));
    }

    /// Threads that count between every two collects starve the double
    /// collect: the reader stops after `COLLECTS` and reports the makes of
    /// its last collect less the frees of the one before, which is no
    /// false "released twice". Here every hand-over is made and freed
    /// between one collect's two loads, so the frees the earlier collect
    /// saw are exactly the makes the later one adds: 1, the count held
    /// throughout (an over-count needs a buffer made before the later
    /// collect whose free the earlier one missed).
    #[test]
    fn a_reader_whose_collects_never_agree_reports_the_last_two() {
        assert_eq!(read_with_hand_overs(usize::MAX), (1, COLLECTS));
    }

    /// One buffer made on `a`, freed twice on `b`, and the count read
    /// with hand-overs between every two slot loads or none.
    fn read_after_a_double_release(hand_overs: bool) -> usize {
        let (registry, a, b) = two_workers();
        let buffer = a.run(Buffer::new);
        b.run(move || {
            MINE.get().unwrap().count(Event::Freed);
            drop(buffer);
        });
        checked(registry.total(|slot| {
            if hand_overs && slot == 0 {
                hand_over_two(&a, &b);
            }
        }))
    }

    /// A real double release still fails loudly when the collects agree.
    #[test]
    #[should_panic(expected = "live_buffers: -1 (a Rust-owned buffer released twice)")]
    fn a_double_release_panics() {
        read_after_a_double_release(false);
    }

    /// ... and when they never agree (the over-count's check is sound).
    #[test]
    #[should_panic(expected = "a Rust-owned buffer released twice")]
    fn a_double_release_panics_while_collects_never_agree() {
        read_after_a_double_release(true);
    }

    /// Each counter wraps modulo 2^32 on its own; the sum is still the count.
    #[test]
    fn counts_that_wrapped_still_sum_to_the_live_count() {
        let (registry, a, b) = two_workers();
        // 2^32 - 1 made on `a`, 2^32 - 3 of them freed on `b`: 2 live.
        registry.slots[0].made.store(u32::MAX, Relaxed);
        registry.slots[1].freed.store(u32::MAX - 2, Relaxed);
        assert_eq!(checked(registry.total(|_| {})), 2);
        // Three more made (`a`'s made wraps to 2), one freed.
        let buffers = a.run(|| [Buffer::new(), Buffer::new(), Buffer::new()]);
        assert_eq!(registry.slots[0].load(), (2, 0));
        let [first, rest @ ..] = buffers;
        b.run(move || drop(first));
        assert_eq!(checked(registry.total(|_| {})), 4);
        b.run(move || drop(rest));
        assert_eq!(checked(registry.total(|_| {})), 2);
    }

    /// An exited thread's count moves to `retired`, and its slot, zeroed,
    /// goes to the next thread.
    #[test]
    fn a_retired_slot_keeps_its_count_and_is_reused() {
        let (mut registry, a, b) = two_workers();
        let buffer = a.run(Buffer::new);
        drop(a);
        let slot = registry.slots[0];
        registry.retire(slot);
        assert_eq!(checked(registry.total(|_| {})), 1);
        assert!(std::ptr::eq(registry.register(), slot));
        assert_eq!(slot.load(), (0, 0));
        b.run(move || drop(buffer));
        assert_eq!(checked(registry.total(|_| {})), 0);
    }
}
