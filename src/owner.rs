//! What keeps a tensor's memory alive, released exactly once.
//!
//! Each owner holds one Rust or foreign resource and releases it in its
//! `Drop` ([`Allocation`]): a Rust allocation through the global allocator,
//! a DLPack managed tensor through its deleter (dlpark's `Managed`), or
//! whatever a layer above supplies. A [`Tensor`](crate::Tensor) holds its
//! owner in a [`Holder`]: inline while one tensor (or export) has it, moved
//! to a shared, counted block at the first clone, so the resource goes when
//! the last of them does, on whichever thread that is.

use std::alloc::{self, Layout as AllocLayout};
use std::ptr::NonNull;

mod holder;
mod live;
pub(crate) use holder::Holder;

use dlpark::Managed;
use dlpark::ffi::{DLManagedTensor, DLManagedTensorVersioned};

use crate::error::{Cause, Error, Result};

/// Alignment of Rust-owned data: a cache line, enough for any SIMD load.
pub const DATA_ALIGNMENT: usize = 64;

/// Rust-owned data buffers (from `zeros`, `empty`, `copy()`, or arrays handed
/// over from Rust) not yet freed. Tests use it to prove exactly-once release.
///
/// An exact snapshot: the count at one instant during the call, even while
/// other threads make and free buffers (a buffer made on one thread and
/// freed on another is never seen freed but not made). Only if other
/// threads count without pause through all of the reader's 64 collects of
/// the per-thread counts does it report an over-count instead (the
/// buffers made by its last collect less those freed by the one before).
/// What a thread did before it synchronised with the caller (joined, or
/// through a lock, a channel or the GIL) is always in the count.
///
/// # Panics
///
/// If the count is below zero: some Rust-owned buffer was released twice.
/// Never falsely, snapshot or over-count.
pub fn live_buffers() -> usize {
    live::total()
}

/// Counts one live Rust-owned buffer for as long as it exists.
struct LiveBuffer;

impl LiveBuffer {
    #[inline]
    fn new() -> Self {
        live::count(live::Event::Made);
        Self
    }
}

impl Drop for LiveBuffer {
    #[inline]
    fn drop(&mut self) {
        live::count(live::Event::Freed);
    }
}

/// A 64-byte-aligned heap block owned by Rust.
///
/// The block is over-allocated by [`DATA_ALIGNMENT`] bytes from the plain
/// `malloc`/`calloc` path (16-byte alignment) and the data starts at the
/// first 64-byte boundary inside it. Asking glibc for 64-byte alignment
/// directly (`posix_memalign`) splits a leading fragment off every block
/// and frees it into a fastbin; the next large free then pays for
/// `malloc_consolidate` (11% of `dlbridge.empty((256, 256))` in a profile).
/// Sixty-four bytes of slack per block is the cheaper price.
pub(crate) struct RustBuffer {
    /// The block as allocated (an aligned dangling pointer for zero bytes).
    block: NonNull<u8>,
    /// The block's size (`0`: nothing allocated, nothing to free); its
    /// alignment is always [`MALLOC_ALIGNMENT`]. Two words, so a tensor
    /// holds the buffer inline ([`Holder`]).
    size: usize,
    _live: LiveBuffer,
}

// SAFETY: the block is plain bytes owned by this value alone; freeing it
// from any thread is what the global allocator allows.
unsafe impl Send for RustBuffer {}
// SAFETY: `&RustBuffer` exposes only the address, never the bytes.
unsafe impl Sync for RustBuffer {}

/// The alignment the system allocator gives without its aligned path.
const MALLOC_ALIGNMENT: usize = 16;

impl RustBuffer {
    /// Allocates `nbytes` bytes, zeroed if asked (`calloc`-style, so large
    /// zeroed blocks come straight from fresh zero pages).
    pub(crate) fn allocate(nbytes: usize, zeroed: bool) -> Result<Self> {
        if nbytes == 0 {
            // No allocation: an aligned dangling pointer is valid for 0 bytes.
            let block =
                NonNull::new(std::ptr::without_provenance_mut(DATA_ALIGNMENT)).expect("non-zero");
            return Ok(Self {
                block,
                size: 0,
                _live: LiveBuffer::new(),
            });
        }
        let layout = nbytes
            .checked_add(DATA_ALIGNMENT - MALLOC_ALIGNMENT)
            .and_then(|size| AllocLayout::from_size_align(size, MALLOC_ALIGNMENT).ok())
            .ok_or_else(|| {
                Error::value(Cause::Allocation, format!("cannot allocate {nbytes} bytes"))
            })?;
        // SAFETY: `layout` has a non-zero size.
        let raw = unsafe {
            if zeroed {
                alloc::alloc_zeroed(layout)
            } else {
                alloc::alloc(layout)
            }
        };
        let block = NonNull::new(raw).ok_or_else(|| {
            Error::memory(
                Cause::Allocation,
                format!("out of memory allocating {nbytes} bytes"),
            )
        })?;
        let buffer = Self {
            block,
            size: layout.size(),
            _live: LiveBuffer::new(),
        };
        advise_huge_pages(buffer.as_ptr(), nbytes);
        Ok(buffer)
    }

    /// The first 64-byte boundary inside the block: the block is 16-aligned,
    /// so it is at most 48 bytes in, leaving the `nbytes` asked for after it.
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        if self.size == 0 {
            return self.block.as_ptr();
        }
        let skip = self.block.as_ptr().addr().wrapping_neg() % DATA_ALIGNMENT;
        debug_assert!(skip <= DATA_ALIGNMENT - MALLOC_ALIGNMENT);
        // SAFETY: `skip <= DATA_ALIGNMENT - MALLOC_ALIGNMENT`, inside the block.
        unsafe { self.block.as_ptr().add(skip) }
    }
}

impl Drop for RustBuffer {
    fn drop(&mut self) {
        if self.size != 0 {
            // SAFETY: `block` came from `alloc`/`alloc_zeroed` with this
            // size and alignment (a valid layout then, so now) and is freed
            // only here, once.
            unsafe {
                let layout = AllocLayout::from_size_align_unchecked(self.size, MALLOC_ALIGNMENT);
                alloc::dealloc(self.block.as_ptr(), layout);
            }
        }
    }
}

/// Blocks this large get transparent huge pages where the kernel offers
/// them (NumPy's threshold in `alloc.c`): fewer TLB misses and page faults
/// when the block is first touched. (Only the Linux, non-Miri advice uses it.)
#[cfg(all(target_os = "linux", not(miri)))]
const HUGE_PAGE_THRESHOLD: usize = 4 << 20;

/// `madvise(MADV_HUGEPAGE)` on the whole pages inside a large block. Advice
/// only: a kernel without THP says no, and nothing changes.
#[cfg(all(target_os = "linux", not(miri)))]
fn advise_huge_pages(block: *mut u8, nbytes: usize) {
    const MADV_HUGEPAGE: std::ffi::c_int = 14;
    const PAGE: usize = 4096;
    unsafe extern "C" {
        fn madvise(
            addr: *mut std::ffi::c_void,
            len: usize,
            advice: std::ffi::c_int,
        ) -> std::ffi::c_int;
    }
    if nbytes < HUGE_PAGE_THRESHOLD {
        return;
    }
    let skip = block.align_offset(PAGE);
    let len = (nbytes - skip) & !(PAGE - 1);
    // SAFETY: `[block + skip, block + skip + len)` lies inside the block just
    // allocated (and owned by the caller); madvise only changes how the
    // kernel backs those pages, never their contents or validity.
    unsafe { madvise(block.add(skip).cast(), len, MADV_HUGEPAGE) };
}

#[cfg(not(all(target_os = "linux", not(miri))))]
fn advise_huge_pages(_block: *mut u8, _nbytes: usize) {}

/// What keeps a tensor's memory alive: one resource, released exactly once,
/// by its own `Drop`, when the last view or export holding it is gone (on
/// whichever thread that is).
///
/// The core knows two kinds only, after arrow-buffer's `Deallocation`:
/// memory Rust allocated (`RustBuffer`, `RustVec`) and foreign memory
/// that some other owner releases (a DLPack managed tensor through its
/// deleter, or anything a layer above supplies: the Python layer's object
/// references and `Py_buffer` views implement this trait in
/// `src/python/owner.rs`, so the core never names them).
///
/// ```
/// use std::sync::Arc;
/// use dlbridge::{Allocation, Cause, Claims, DType, Descriptor, Device, Layout, Source, Tensor};
///
/// /// Memory of our own, freed when the last view or export of it is gone.
/// struct Samples(Vec<f32>);
/// impl Allocation for Samples {} // foreign to dlbridge: not Rust-owned
///
/// let mut samples = vec![1.0f32, 2.0, 3.0];
/// let descriptor = Descriptor::new(Claims {
///     what: "samples",
///     base: samples.as_mut_ptr().cast(),
///     offset: 0,
///     layout: Layout::contiguous(&[3], 4).unwrap(),
///     dtype: DType::FLOAT32,
///     device: Device::CPU,
///     readonly: false,
///     source: Source::Rust,
///     len: Some(12),
/// })
/// .unwrap();
/// // SAFETY: the three floats live in the Vec's heap block, which moving
/// // the Vec into the owner does not move, for as long as the owner lives.
/// let mut t = unsafe { Tensor::from_descriptor(descriptor, Arc::new(Samples(samples))) };
/// // SAFETY: nothing writes this memory while the view lives.
/// assert_eq!(unsafe { t.as_ndarray::<f32>() }.unwrap().sum(), 6.0);
/// // Exclusivity cannot be proved for memory an `Allocation` of ours owns.
/// assert_eq!(t.as_ndarray_mut::<f32>().unwrap_err().cause(), Cause::Aliasing);
/// ```
pub trait Allocation: Send + Sync + 'static {
    /// Whether Rust allocated the memory and nothing outside this process's
    /// Rust code can reach it: the premise of the safe mutable view
    /// (`Tensor::as_ndarray_mut`). Foreign memory is never that. Answering
    /// `true` is a promise the unsafe `Tensor::from_descriptor` makes its
    /// caller keep (see its `# Safety`).
    fn is_rust_owned(&self) -> bool {
        false
    }
}

impl Allocation for RustBuffer {
    fn is_rust_owned(&self) -> bool {
        true
    }
}

/// The heap buffer of a Rust `Vec` (an `ndarray::Array`'s, or a `Vec`
/// moved in), counted by [`live_buffers`] while it lives: its pointer and
/// capacity, two words, so a tensor holds it inline ([`Holder`]).
pub(crate) struct RustVec<T> {
    ptr: NonNull<T>,
    capacity: usize,
    _live: LiveBuffer,
}

// SAFETY: the buffer is owned by this value alone and never read through
// it; freeing it from any thread is what `Vec<T>` allows for `T: Send`.
unsafe impl<T: Send> Send for RustVec<T> {}
// SAFETY: `&RustVec` exposes nothing of the buffer.
unsafe impl<T: Sync> Sync for RustVec<T> {}

impl<T: Copy> RustVec<T> {
    /// Takes the vector's buffer over (its elements are plain `Copy`
    /// values: nothing to drop but the buffer).
    pub(crate) fn new(values: Vec<T>) -> Self {
        let mut values = std::mem::ManuallyDrop::new(values);
        Self {
            // A `Vec`'s pointer is never NULL (dangling when it allocated nothing).
            ptr: NonNull::new(values.as_mut_ptr()).unwrap_or_else(|| unreachable!()),
            capacity: values.capacity(),
            _live: LiveBuffer::new(),
        }
    }
}

impl<T: Copy + Send + Sync + 'static> RustVec<T> {
    /// An owned `ndarray` array's heap buffer, held as its owner (two
    /// words, inline in a [`Holder`]): taking the array's `Vec` apart does
    /// not move the buffer, so every pointer into the array stays valid for
    /// the holder's life, and nothing else frees it.
    pub(crate) fn holding<D: ndarray::Dimension>(array: ndarray::Array<T, D>) -> Holder {
        let (values, _) = array.into_raw_vec_and_offset();
        Holder::new(Self::new(values))
    }
}

impl<T> Drop for RustVec<T> {
    fn drop(&mut self) {
        // SAFETY: the pointer and capacity of a `Vec<T>` that nothing else
        // frees; length 0, as its `Copy` elements need no drop.
        drop(unsafe { Vec::from_raw_parts(self.ptr.as_ptr(), 0, self.capacity) });
    }
}

impl<T: Send + Sync + 'static> Allocation for RustVec<T> {
    fn is_rust_owned(&self) -> bool {
        true
    }
}

/// A DLPack managed tensor (legacy or versioned): its deleter runs on drop.
impl Allocation for Managed<DLManagedTensor> {}
impl Allocation for Managed<DLManagedTensorVersioned> {}
