//! The registry's lock: one atomic read-modify-write per critical section.
//!
//! Every call of the registry's C ABI is made by an attached thread, so
//! with the GIL the lock is never contended; a free-threaded build may
//! contend it, for the few dozen instructions a scan of the held borrows
//! takes. `std::sync::Mutex` pays two read-modify-writes per section (a
//! compare-exchange to lock, a swap to unlock that looks for sleepers),
//! and a tracked argument takes two sections (acquire, release): four
//! locked instructions, each a full barrier, on every accept. This lock
//! takes it with one compare-exchange and gives it back with a plain
//! release store; a contended taker spins, then yields its time slice.

use std::cell::UnsafeCell;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};

/// A value behind a spin lock.
#[derive(Debug, Default)]
pub(crate) struct SpinLock<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the lock hands out the value to one thread at a time (the
// compare-exchange below), as `Mutex<T>` does: `T: Send` is enough.
unsafe impl<T: Send> Sync for SpinLock<T> {}

impl<T> SpinLock<T> {
    /// A new, unlocked value.
    pub(crate) fn new(value: T) -> Self {
        Self {
            locked: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// Waits for the value and holds it until the guard drops (on unwind
    /// too: the holder's methods leave the value consistent at every step).
    pub(crate) fn lock(&self) -> SpinGuard<'_, T> {
        let mut spins = 0u32;
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            // Wait on a plain load (no cache-line ping-pong), a while
            // spinning, then giving the holder the core.
            while self.locked.load(Ordering::Relaxed) {
                if spins < 64 {
                    spins += 1;
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
            }
        }
        SpinGuard { lock: self }
    }
}

/// Exclusive access to a [`SpinLock`]'s value.
pub(crate) struct SpinGuard<'a, T> {
    lock: &'a SpinLock<T>,
}

impl<T> Deref for SpinGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock: no other reference exists.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for SpinGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and the guard is borrowed mutably.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for SpinGuard<'_, T> {
    fn drop(&mut self) {
        // Publishes this section's writes to the next taker (its Acquire).
        self.lock.locked.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_exclude_each_other() {
        use std::sync::atomic::{AtomicBool, Ordering};
        // Miri runs every interleaving slowly: fewer rounds there.
        let rounds = if cfg!(miri) { 50 } else { 5_000 };
        let lock = SpinLock::new(0u64);
        let inside = AtomicBool::new(false);
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..rounds {
                        let mut value = lock.lock();
                        // Two sections at once would find the flag set.
                        assert!(!inside.swap(true, Ordering::Relaxed), "two holders at once");
                        // A read and a write in two steps, with a yield
                        // between: a lost update shows any overlap too.
                        let seen = *value;
                        std::thread::yield_now();
                        *value = seen + 1;
                        inside.store(false, Ordering::Relaxed);
                    }
                });
            }
        });
        assert_eq!(*lock.lock(), 4 * rounds);
    }

    #[test]
    fn released_on_unwind() {
        let lock = SpinLock::new(1);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _held = lock.lock();
            panic!("a holder panics");
        }));
        assert!(result.is_err());
        assert_eq!(*lock.lock(), 1, "not left locked");
    }
}
