//! The registry behind its C ABI: the `BorrowApi` table every binary in a
//! process calls, whoever compiled it (the C declaration is in the parent
//! module's docs). No Python here: the Python layer only publishes the
//! table (`src/python/borrow/capsule.rs`), so Miri runs these functions.

use super::key::BorrowKey;
use super::lock::{SpinGuard, SpinLock};
use super::registry::{Conflict, Registry};
use std::ffi::{c_int, c_void};
use std::ptr::NonNull;

/// The ABI version this binary publishes and needs.
pub(crate) const VERSION: u64 = 1;

/// The table a registry is reached through (see the module docs for the
/// C declaration).
#[repr(C)]
pub(crate) struct BorrowApi {
    pub(crate) version: u64,
    pub(crate) state: *mut c_void,
    pub(crate) acquire:
        unsafe extern "C" fn(*mut c_void, *const BorrowKey, c_int, *mut Conflict) -> c_int,
    pub(crate) release: unsafe extern "C" fn(*mut c_void, *const BorrowKey, c_int) -> c_int,
    /// Read by other binaries and by tests (`held` in the C declaration).
    pub(crate) held: unsafe extern "C" fn(*mut c_void) -> usize,
}

/// Locks the state, whatever a panicking holder left (the registry's
/// methods leave it consistent at every step).
///
/// # Safety
///
/// `state` is the `SpinLock<Registry>` of a table made by [`BorrowApi::leak`].
unsafe fn lock<'a>(state: *mut c_void) -> SpinGuard<'a, Registry> {
    // SAFETY: the caller's promise: a leaked `SpinLock<Registry>`, never freed.
    let lock = unsafe { &*state.cast::<SpinLock<Registry>>() };
    lock.lock()
}

unsafe extern "C" fn acquire(
    state: *mut c_void,
    key: *const BorrowKey,
    exclusive: c_int,
    out: *mut Conflict,
) -> c_int {
    // No panic may cross this boundary: one becomes a refusal.
    std::panic::catch_unwind(|| {
        // SAFETY: the ABI: `key` points to a valid key for the call, and
        // `state` is this table's.
        let (key, mut registry) = unsafe { (*key, lock(state)) };
        match registry.acquire(key, exclusive != 0) {
            Ok(()) => 0,
            Err(conflict) => {
                if !out.is_null() {
                    // SAFETY: the ABI: a non-NULL `out` is writable.
                    unsafe { out.write(conflict) };
                }
                -1
            }
        }
    })
    .unwrap_or(-1)
}

unsafe extern "C" fn release(state: *mut c_void, key: *const BorrowKey, exclusive: c_int) -> c_int {
    std::panic::catch_unwind(|| {
        // SAFETY: as in `acquire`.
        let (key, mut registry) = unsafe { (*key, lock(state)) };
        if registry.release(key, exclusive != 0) {
            0
        } else {
            -1
        }
    })
    .unwrap_or(-1)
}

unsafe extern "C" fn held(state: *mut c_void) -> usize {
    // SAFETY: the ABI: `state` is this table's.
    std::panic::catch_unwind(|| unsafe { lock(state) }.len()).unwrap_or(0)
}

impl BorrowApi {
    /// A new, empty registry behind this binary's functions, never freed:
    /// a pointer to it (cached by any binary) never dangles.
    pub(crate) fn leak() -> NonNull<Self> {
        let state = Box::into_raw(Box::new(SpinLock::new(Registry::default())));
        NonNull::from(Box::leak(Box::new(Self {
            version: VERSION,
            state: state.cast(),
            acquire,
            release,
            held,
        })))
    }

    /// Frees a table made by [`BorrowApi::leak`] (tests: Miri counts leaks).
    ///
    /// # Safety
    ///
    /// `api` came from `leak`, and nothing uses it afterwards.
    #[cfg(test)]
    pub(crate) unsafe fn free(api: NonNull<Self>) {
        // SAFETY: the caller's promise: both boxes are ours and unused.
        unsafe {
            let api = Box::from_raw(api.as_ptr());
            drop(Box::from_raw(api.state.cast::<SpinLock<Registry>>()));
        }
    }

    /// Records a borrow of `key`, or returns the held borrow it conflicts
    /// with.
    pub(crate) fn acquire(&self, key: &BorrowKey, exclusive: bool) -> Result<(), Conflict> {
        let mut held = Conflict::NONE;
        // SAFETY: a published table of version ≥ 1 (its maker checked):
        // valid state; `key` and `held` are valid for the call.
        let rc = unsafe { (self.acquire)(self.state, key, c_int::from(exclusive), &mut held) };
        if rc == 0 { Ok(()) } else { Err(held) }
    }

    /// Ends one borrow of `key` taken with the same `exclusive`; `false`
    /// when none was held (a double release: a bug).
    pub(crate) fn release(&self, key: &BorrowKey, exclusive: bool) -> bool {
        // SAFETY: as in `acquire`.
        unsafe { (self.release)(self.state, key, c_int::from(exclusive)) == 0 }
    }

    /// How many distinct keys are held.
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        // SAFETY: as in `acquire`.
        unsafe { (self.held)(self.state) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys over real memory (what Miri checks: the functions run through
    /// the C ABI, on the addresses of a live allocation).
    fn key_of(data: &[f64], offset: usize, len: usize) -> BorrowKey {
        let address = data[offset..].as_ptr().addr();
        BorrowKey::new(address, &[len], &[8], 8)
    }

    #[test]
    fn aliasing_refused_disjoint_accepted_through_the_c_abi() {
        let table = BorrowApi::leak();
        // SAFETY: a fresh table, freed at the end of the test.
        let api = unsafe { table.as_ref() };
        let memory = vec![0.0f64; 10];
        let (whole, head, tail) = (
            key_of(&memory, 0, 10),
            key_of(&memory, 0, 9),
            key_of(&memory, 1, 9),
        );
        // f(a, a): a shared and an exclusive borrow of the same memory.
        api.acquire(&whole, false).unwrap();
        let held = api.acquire(&whole, true).unwrap_err();
        assert_eq!((held.key, held.exclusive, held.readers), (whole, 0, 1));
        // Shared borrows coexist.
        api.acquire(&head, false).unwrap();
        assert!(api.release(&head, false));
        assert!(api.release(&whole, false));
        assert_eq!(api.held(), 0);
        // f(a[1:], a[:-1]): overlapping slices, read one and write the other.
        api.acquire(&tail, false).unwrap();
        let held = api.acquire(&head, true).unwrap_err();
        assert_eq!((held.key, held.exclusive), (tail, 0));
        assert!(api.release(&tail, false));
        // ... and the other way round: a write held refuses a read.
        api.acquire(&head, true).unwrap();
        let held = api.acquire(&tail, false).unwrap_err();
        assert_eq!((held.key, held.exclusive, held.readers), (head, 1, 0));
        assert!(api.release(&head, true));
        // Disjoint memory: a[:5] written while a[5:] is read.
        let (low, high) = (key_of(&memory, 0, 5), key_of(&memory, 5, 5));
        api.acquire(&low, true).unwrap();
        api.acquire(&high, false).unwrap();
        assert_eq!(api.held(), 2);
        // Released exactly once: a second release is refused, and says so.
        assert!(api.release(&low, true));
        assert!(!api.release(&low, true), "released twice");
        assert!(!api.release(&high, true), "held shared, not exclusive");
        assert!(api.release(&high, false));
        assert_eq!(api.held(), 0);
        // Another allocation never conflicts.
        let other = vec![0.0f64; 10];
        api.acquire(&whole, true).unwrap();
        api.acquire(&key_of(&other, 0, 10), true).unwrap();
        assert!(api.release(&whole, true) && api.release(&key_of(&other, 0, 10), true));
        // SAFETY: `api` is not used again.
        unsafe { BorrowApi::free(table) };
    }

    #[test]
    fn a_null_out_pointer_is_allowed() {
        let table = BorrowApi::leak();
        // SAFETY: a fresh table, freed at the end of the test.
        let api = unsafe { table.as_ref() };
        let memory = [1u8; 4];
        let key = BorrowKey::new(memory.as_ptr().addr(), &[4], &[1], 1);
        // SAFETY: the ABI: valid state and key; `out` may be NULL.
        unsafe {
            assert_eq!((api.acquire)(api.state, &key, 1, std::ptr::null_mut()), 0);
            assert_eq!((api.acquire)(api.state, &key, 0, std::ptr::null_mut()), -1);
            assert_eq!((api.release)(api.state, &key, 1), 0);
            BorrowApi::free(table);
        }
    }
}
