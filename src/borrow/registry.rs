//! The registry's state and rules: which borrows are held, and whether a new
//! one may join them. Pure bookkeeping; the capsule (`capsule.rs`) makes one
//! instance shared by every binary in the process.

use super::key::BorrowKey;

/// A held borrow that a new one conflicts with, as the C ABI reports it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Conflict {
    /// The memory the held borrow covers.
    pub(crate) key: BorrowKey,
    /// 1: the held borrow is exclusive (mutable); 0: shared.
    pub(crate) exclusive: i32,
    /// How many shared borrows hold `key` (0 for an exclusive one).
    pub(crate) readers: usize,
}

impl Conflict {
    /// A placeholder the C ABI's callee overwrites on a refusal.
    pub(crate) const NONE: Self = Self {
        key: BorrowKey {
            start: 0,
            end: 0,
            data: 0,
            itemsize: 0,
            gcd: 0,
        },
        exclusive: 0,
        readers: 0,
    };
}

/// One key and how it is held: `count > 0` shared borrows, or `-1` one
/// exclusive borrow. Equal keys share an entry (rust-numpy's flags).
#[derive(Debug)]
struct Entry {
    key: BorrowKey,
    count: isize,
}

/// The borrows held in this process.
///
/// A handful are held at any time (the arguments of the calls on the
/// stack), so a vector scanned in full is the fastest map there is.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    entries: Vec<Entry>,
}

impl Registry {
    /// Records a borrow of `key`, or says which held borrow it conflicts
    /// with: an exclusive borrow conflicts with every borrow it may overlap,
    /// a shared one with the exclusive ones. Empty keys always succeed and
    /// are not recorded.
    pub(crate) fn acquire(&mut self, key: BorrowKey, exclusive: bool) -> Result<(), Conflict> {
        if key.is_empty() {
            return Ok(());
        }
        let mut same = None;
        for (index, entry) in self.entries.iter().enumerate() {
            if !entry.key.conflicts(&key) {
                continue;
            }
            if !exclusive && entry.count > 0 {
                if entry.key == key {
                    same = Some(index);
                }
                continue;
            }
            return Err(Conflict {
                key: entry.key,
                exclusive: i32::from(entry.count < 0),
                readers: entry.count.max(0).unsigned_abs(),
            });
        }
        match same {
            Some(index) => {
                let count = &mut self.entries[index].count;
                // isize::MAX readers cannot exist (each is a live object).
                *count = count.saturating_add(1);
            }
            None => self.entries.push(Entry {
                key,
                count: if exclusive { -1 } else { 1 },
            }),
        }
        Ok(())
    }

    /// Forgets one borrow of `key` taken with the same `exclusive`; `false`
    /// when none is held (a caller's bug: nothing changes).
    pub(crate) fn release(&mut self, key: BorrowKey, exclusive: bool) -> bool {
        if key.is_empty() {
            return true;
        }
        let held = |entry: &Entry| entry.key == key && (entry.count < 0) == exclusive;
        let Some(index) = self.entries.iter().position(held) else {
            return false;
        };
        let count = &mut self.entries[index].count;
        if *count > 1 {
            *count -= 1;
        } else {
            self.entries.swap_remove(index);
        }
        true
    }

    /// How many distinct keys are held (tests and diagnostics).
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: usize = 0x1000;

    fn floats(offset: usize, n: usize, step: isize) -> BorrowKey {
        BorrowKey::new(BASE + 8 * offset, &[n], &[8 * step], 8)
    }

    #[test]
    fn two_mutable_borrows_of_one_array_conflict() {
        let mut r = Registry::default();
        let a = floats(0, 10, 1);
        r.acquire(a, true).unwrap();
        let conflict = r.acquire(a, true).unwrap_err();
        assert_eq!(
            (conflict.key, conflict.exclusive, conflict.readers),
            (a, 1, 0)
        );
        assert_eq!(r.acquire(a, false).unwrap_err().key, a);
        assert!(r.release(a, true));
        assert_eq!(r.len(), 0);
        r.acquire(a, true).unwrap();
        assert!(r.release(a, true));
    }

    #[test]
    fn shared_borrows_share_and_exclude_mutation() {
        let mut r = Registry::default();
        let a = floats(0, 10, 1);
        let part = floats(2, 3, 1);
        r.acquire(a, false).unwrap();
        r.acquire(a, false).unwrap();
        r.acquire(part, false).unwrap();
        assert_eq!(r.len(), 2, "equal keys share an entry");
        let conflict = r.acquire(part, true).unwrap_err();
        assert_eq!(conflict.exclusive, 0);
        assert!(conflict.readers >= 1);
        // The disjoint tail is free for a mutable borrow only once `a` goes.
        assert!(r.acquire(floats(5, 5, 1), true).is_err());
        assert!(r.release(a, false));
        assert!(
            r.acquire(floats(5, 5, 1), true).is_err(),
            "a second reader of `a` remains"
        );
        assert!(r.release(a, false));
        r.acquire(floats(5, 5, 1), true).unwrap();
        assert!(r.acquire(part, true).is_err(), "part is still read");
        assert!(r.release(part, false));
        r.acquire(part, true).unwrap();
        assert!(r.release(part, true) && r.release(floats(5, 5, 1), true));
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn disjoint_and_interleaved_borrows_coexist() {
        let mut r = Registry::default();
        r.acquire(floats(0, 5, 1), true).unwrap();
        r.acquire(floats(5, 5, 1), true).unwrap();
        assert!(r.acquire(floats(4, 2, 1), false).is_err());
        let mut r = Registry::default();
        r.acquire(floats(0, 5, 2), true).unwrap();
        r.acquire(floats(1, 5, 2), true).unwrap();
        assert!(r.acquire(floats(2, 4, 2), false).is_err());
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn release_is_exact() {
        let mut r = Registry::default();
        let a = floats(0, 4, 1);
        assert!(!r.release(a, false), "nothing held");
        r.acquire(a, false).unwrap();
        assert!(!r.release(a, true), "held shared, not exclusive");
        assert!(!r.release(floats(0, 3, 1), false), "another key");
        assert!(r.release(a, false));
        assert!(!r.release(a, false), "released once only");
        // Empty keys are never recorded, so they never conflict.
        let empty = floats(0, 0, 1);
        r.acquire(empty, true).unwrap();
        r.acquire(empty, true).unwrap();
        assert_eq!(r.len(), 0);
        assert!(r.release(empty, true));
    }
}
