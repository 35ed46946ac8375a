//! A tensor's owner, held inline by one tensor until its first clone.
//!
//! Most owners are never shared: an import viewed and dropped, an array
//! exported once. A `std::sync::Arc` for them costs a heap block per
//! tensor (`malloc` and `free`, about 230 instructions of a 4x4 DLPack
//! import) and two locked read-modify-writes at its release (the strong and
//! the weak count), which is most of what separated dlbridge from dlpark's
//! borrowed view. A [`Holder`] keeps an owner of up to two words (a DLPack
//! `Managed`, a `Vec`'s pointer and capacity, a Rust block, an
//! `Arc<dyn Allocation>` from the layers above) in place, and releases it
//! with a plain call when the one tensor holding it goes.
//!
//! The first clone (through `&self`, perhaps on two threads at once) moves
//! the owner into a shared block: an `Arc<Shared>` holding a copy of the
//! inline bits, published by a compare-and-swap of the holder's state from
//! its vtable to the block. From then on the inline bits are a dead copy,
//! never released; the block's count says when the last holder is gone. A
//! thread that loses the race forgets its own copy (the block is freed, the
//! owner in it not released), so the owner is released exactly once.

use std::mem::{ManuallyDrop, MaybeUninit};
use std::sync::Arc;
use std::sync::atomic::{AtomicPtr, Ordering};

use super::Allocation;

/// Two words: room for an owner held inline.
type Inline = [MaybeUninit<usize>; 2];

/// What a holder knows of the value inline (one per value type).
struct VTable {
    /// Drops the value in place (releases the resource).
    drop: unsafe fn(*mut Inline),
    /// The value's [`Allocation::is_rust_owned`].
    is_rust_owned: unsafe fn(*const Inline) -> bool,
    /// Whether the value is an `Arc<dyn Allocation>`, shared by cloning it
    /// rather than by moving it into a block.
    is_arc: bool,
}

/// The vtable of a value of type `A` held inline.
struct Kind<A>(std::marker::PhantomData<A>);

impl<A: Allocation> Kind<A> {
    const VTABLE: VTable = VTable {
        drop: drop_value::<A>,
        is_rust_owned: rust_owned::<A>,
        is_arc: false,
    };
}

/// The vtable of an `Arc<dyn Allocation>` held inline.
const ARC_VTABLE: VTable = VTable {
    drop: drop_arc,
    is_rust_owned: arc_rust_owned,
    is_arc: true,
};

/// # Safety
///
/// `value` holds a live `A`, which is not used again.
unsafe fn drop_value<A>(value: *mut Inline) {
    // SAFETY: forwarded from the caller.
    unsafe { value.cast::<A>().drop_in_place() }
}

/// # Safety
///
/// `value` holds a live `A`.
unsafe fn rust_owned<A: Allocation>(value: *const Inline) -> bool {
    // SAFETY: forwarded from the caller.
    unsafe { (*value.cast::<A>()).is_rust_owned() }
}

/// # Safety
///
/// `value` holds a live `Arc<dyn Allocation>`, which is not used again.
unsafe fn drop_arc(value: *mut Inline) {
    // SAFETY: forwarded from the caller.
    unsafe { value.cast::<Arc<dyn Allocation>>().drop_in_place() }
}

/// # Safety
///
/// `value` holds a live `Arc<dyn Allocation>`.
unsafe fn arc_rust_owned(value: *const Inline) -> bool {
    // SAFETY: forwarded from the caller.
    unsafe { (**value.cast::<Arc<dyn Allocation>>()).is_rust_owned() }
}

/// An owner moved out of its holder at the first clone, shared by count.
struct Shared {
    vtable: &'static VTable,
    /// The value (never an `Arc`: those are shared by cloning).
    value: Inline,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // SAFETY: the block holds the only live copy of the value (the
        // holder's inline copy is dead once the block is published).
        unsafe { (self.vtable.drop)(&mut self.value) }
    }
}

impl Allocation for Shared {
    fn is_rust_owned(&self) -> bool {
        // SAFETY: the value is live while the block is.
        unsafe { (self.vtable.is_rust_owned)(&self.value) }
    }
}

/// The low bit of a holder's state: set once the value is in a block.
const PROMOTED: usize = 1;

/// A tensor's owner: a value released exactly once, when the last holder
/// of it is gone (see the module docs).
///
/// `Holder` is `Send + Sync` because every value put in it is
/// ([`Allocation`] requires both) and its state is atomic.
pub(crate) struct Holder {
    /// The `&'static VTable` of the value inline; or, with [`PROMOTED`]
    /// set, the `Arc<Shared>` (from `Arc::into_raw`) it moved to, of which
    /// this holder owns one count.
    state: AtomicPtr<()>,
    value: Inline,
}

impl Holder {
    /// Holds `value` inline (at most two words, checked at compile time).
    #[inline(always)]
    pub(crate) fn new<A: Allocation>(value: A) -> Self {
        const {
            assert!(size_of::<A>() <= size_of::<Inline>());
            assert!(align_of::<A>() <= align_of::<Inline>());
        }
        let vtable: &'static VTable = &Kind::<A>::VTABLE;
        Self::inline(value, vtable)
    }

    /// Holds a shared owner (cloned by its own count, never moved).
    #[inline(always)]
    pub(crate) fn shared(owner: Arc<dyn Allocation>) -> Self {
        const {
            assert!(size_of::<Arc<dyn Allocation>>() <= size_of::<Inline>());
            assert!(align_of::<Arc<dyn Allocation>>() <= align_of::<Inline>());
        }
        Self::inline(owner, &ARC_VTABLE)
    }

    #[inline(always)]
    fn inline<A>(value: A, vtable: &'static VTable) -> Self {
        let mut inline: Inline = [MaybeUninit::uninit(); 2];
        // SAFETY: `A` fits the two words and their alignment (the callers'
        // compile-time checks); `vtable` is `A`'s.
        unsafe { inline.as_mut_ptr().cast::<A>().write(value) };
        Self {
            state: AtomicPtr::new(std::ptr::from_ref(vtable).cast_mut().cast()),
            value: inline,
        }
    }

    /// The block the value moved to, if it did; else its vtable.
    #[inline(always)]
    fn decode(state: *mut ()) -> Result<*const Shared, &'static VTable> {
        if state.addr() & PROMOTED != 0 {
            Ok(state.map_addr(|addr| addr & !PROMOTED).cast_const().cast())
        } else {
            // SAFETY: an untagged state is always a `&'static VTable`.
            Err(unsafe { &*state.cast_const().cast::<VTable>() })
        }
    }

    /// The inline value as an `Arc<dyn Allocation>`, for a vtable that
    /// says it is one.
    #[inline(always)]
    fn arc(&self) -> &Arc<dyn Allocation> {
        // SAFETY: only called when the vtable is `ARC_VTABLE`, whose value
        // is an `Arc<dyn Allocation>`, live while `self` is.
        unsafe { &*self.value.as_ptr().cast::<Arc<dyn Allocation>>() }
    }

    /// Moves the value into a shared block (or finds the block another
    /// thread moved it to first) and returns the block.
    #[cold]
    fn promote(&self, state: *mut (), vtable: &'static VTable) -> *const Shared {
        // A bitwise copy of the value: only the copy in the block that wins
        // below is ever released; the inline one is dead from then on.
        let block = Arc::into_raw(Arc::new(Shared {
            vtable,
            value: self.value,
        }));
        let tagged = block
            .cast_mut()
            .cast::<()>()
            .map_addr(|addr| addr | PROMOTED);
        match self
            .state
            .compare_exchange(state, tagged, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => block,
            Err(winner) => {
                // SAFETY: `block` came from `Arc::into_raw` just above and
                // nobody else saw it: its one count is ours.
                let ours = unsafe { Arc::from_raw(block) };
                // The winner's block holds the value: ours is a duplicate,
                // freed without releasing it.
                std::mem::forget(Arc::into_inner(ours));
                match Self::decode(winner) {
                    Ok(shared) => shared,
                    Err(_) => unreachable!("the state only ever changes to a block"),
                }
            }
        }
    }

    /// A new count of the block `shared` (kept alive by `self`'s count).
    #[inline(always)]
    fn share_block(shared: *const Shared) -> Self {
        // SAFETY: `shared` came from `Arc::into_raw` and the holder that
        // published it owns a count, alive while the caller borrows it.
        let arc: Arc<dyn Allocation> = unsafe {
            Arc::increment_strong_count(shared);
            Arc::from_raw(shared)
        };
        Self::shared(arc)
    }

    /// Whether Rust allocated the memory (see [`Allocation::is_rust_owned`]).
    pub(crate) fn is_rust_owned(&self) -> bool {
        match Self::decode(self.state.load(Ordering::Acquire)) {
            // SAFETY: the block is alive while this holder's count is.
            Ok(shared) => unsafe { (*shared).is_rust_owned() },
            // SAFETY: an unpromoted value is live and `vtable` is its own.
            Err(vtable) => unsafe { (vtable.is_rust_owned)(&self.value) },
        }
    }

    /// How many holders (tensors, exports) keep the owner, this one
    /// included; weak references to a shared `Arc` count too.
    pub(crate) fn holders(&self) -> usize {
        match Self::decode(self.state.load(Ordering::Acquire)) {
            Ok(shared) => {
                // SAFETY: the block is alive while this holder's count is;
                // the `ManuallyDrop` gives the count back untouched.
                let arc = ManuallyDrop::new(unsafe { Arc::from_raw(shared) });
                Arc::strong_count(&arc)
            }
            Err(vtable) if vtable.is_arc => {
                Arc::strong_count(self.arc()) + Arc::weak_count(self.arc())
            }
            Err(_) => 1,
        }
    }

    /// Whether two holders keep the same owner.
    #[cfg_attr(not(test), allow(dead_code))] // tests of the layers above
    pub(crate) fn same_owner(&self, other: &Self) -> bool {
        let id = |holder: &Self| -> *const () {
            match Self::decode(holder.state.load(Ordering::Acquire)) {
                Ok(shared) => shared.cast(),
                Err(vtable) if vtable.is_arc => Arc::as_ptr(holder.arc()).cast(),
                Err(_) => std::ptr::from_ref(&holder.value).cast(),
            }
        };
        std::ptr::eq(id(self), id(other))
    }
}

impl Clone for Holder {
    fn clone(&self) -> Self {
        let state = self.state.load(Ordering::Acquire);
        match Self::decode(state) {
            Ok(shared) => Self::share_block(shared),
            Err(vtable) if vtable.is_arc => Self::shared(Arc::clone(self.arc())),
            Err(vtable) => Self::share_block(self.promote(state, vtable)),
        }
    }
}

impl Drop for Holder {
    #[inline]
    fn drop(&mut self) {
        match Self::decode(*self.state.get_mut()) {
            // SAFETY: this holder's count of its block, given back.
            Ok(shared) => drop(unsafe { Arc::from_raw(shared) }),
            // SAFETY: the value was never moved to a block: this holder
            // alone has it, and releases it once, here.
            Err(vtable) => unsafe { (vtable.drop)(&mut self.value) },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

    use super::*;

    /// Counts its releases in the counter it shares.
    struct Counted(Arc<AtomicUsize>);

    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, SeqCst);
        }
    }

    impl Allocation for Counted {}

    fn counter() -> Arc<AtomicUsize> {
        Arc::new(AtomicUsize::new(0))
    }

    #[test]
    fn a_unique_owner_is_released_once_on_drop() {
        let released = counter();
        let holder = Holder::new(Counted(Arc::clone(&released)));
        assert_eq!(holder.holders(), 1);
        drop(holder);
        assert_eq!(released.load(SeqCst), 1);
    }

    #[test]
    fn clones_share_the_owner_and_the_last_releases_it() {
        let released = counter();
        let first = Holder::new(Counted(Arc::clone(&released)));
        let second = first.clone();
        let third = second.clone();
        assert!(first.same_owner(&second) && second.same_owner(&third));
        assert_eq!(first.holders(), 3);
        drop(first);
        drop(third);
        assert_eq!((released.load(SeqCst), second.holders()), (0, 1));
        drop(second);
        assert_eq!(released.load(SeqCst), 1);
    }

    #[test]
    fn an_arc_is_shared_by_its_own_count() {
        let released = counter();
        let arc: Arc<dyn Allocation> = Arc::new(Counted(Arc::clone(&released)));
        let holder = Holder::shared(Arc::clone(&arc));
        let clone = holder.clone();
        assert!(holder.same_owner(&clone));
        assert_eq!(Arc::strong_count(&arc), 3);
        drop((holder, clone));
        assert_eq!((Arc::strong_count(&arc), released.load(SeqCst)), (1, 0));
        drop(arc);
        assert_eq!(released.load(SeqCst), 1);
    }

    #[test]
    fn clones_racing_on_threads_release_the_owner_once() {
        let released = counter();
        let holder = Holder::new(Counted(Arc::clone(&released)));
        let clones: Vec<Holder> = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..4).map(|_| scope.spawn(|| holder.clone())).collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        assert!(clones.iter().all(|clone| clone.same_owner(&holder)));
        assert_eq!(holder.holders(), 5);
        drop(holder);
        std::thread::scope(|scope| {
            for clone in clones {
                scope.spawn(move || drop(clone));
            }
        });
        assert_eq!(released.load(SeqCst), 1);
    }
}
