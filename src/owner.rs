//! What keeps a tensor's memory alive, released exactly once.
//!
//! Each variant owns one foreign (or Rust) resource and releases it in its
//! `Drop`: the DLPack managed tensor through its deleter (dlpark's `Managed`),
//! a Rust allocation through the global allocator. A [`Tensor`](crate::Tensor)
//! holds its owner in an `Arc`; views and exports clone the `Arc`, so the
//! resource goes when the last of them does, on whichever thread that is.

use std::alloc::{self, Layout as AllocLayout};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};

use dlpark::Managed;
use dlpark::ffi::{DLManagedTensor, DLManagedTensorVersioned};

use crate::error::{Error, Result};

/// Alignment of Rust-owned data: a cache line, enough for any SIMD load.
pub const DATA_ALIGNMENT: usize = 64;

static LIVE_BUFFERS: AtomicUsize = AtomicUsize::new(0);

/// Rust-owned data buffers (from `zeros`, `empty`, `copy()`, or arrays handed
/// over from Rust) not yet freed. Tests use it to prove exactly-once release.
pub fn live_buffers() -> usize {
    LIVE_BUFFERS.load(Ordering::SeqCst)
}

/// Counts one live Rust-owned buffer for as long as it exists.
struct LiveBuffer;

impl LiveBuffer {
    fn new() -> Self {
        LIVE_BUFFERS.fetch_add(1, Ordering::SeqCst);
        Self
    }
}

impl Drop for LiveBuffer {
    fn drop(&mut self) {
        LIVE_BUFFERS.fetch_sub(1, Ordering::SeqCst);
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
    /// The first 64-byte boundary inside the block.
    ptr: NonNull<u8>,
    /// The block as allocated (`None` for zero bytes: nothing to free).
    block: Option<(NonNull<u8>, AllocLayout)>,
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
            let ptr =
                NonNull::new(std::ptr::without_provenance_mut(DATA_ALIGNMENT)).expect("non-zero");
            return Ok(Self {
                ptr,
                block: None,
                _live: LiveBuffer::new(),
            });
        }
        let layout = nbytes
            .checked_add(DATA_ALIGNMENT - MALLOC_ALIGNMENT)
            .and_then(|size| AllocLayout::from_size_align(size, MALLOC_ALIGNMENT).ok())
            .ok_or_else(|| Error::value(format!("cannot allocate {nbytes} bytes")))?;
        // SAFETY: `layout` has a non-zero size.
        let raw = unsafe {
            if zeroed {
                alloc::alloc_zeroed(layout)
            } else {
                alloc::alloc(layout)
            }
        };
        let block = NonNull::new(raw)
            .ok_or_else(|| Error::memory(format!("out of memory allocating {nbytes} bytes")))?;
        // The block is 16-aligned, so the next 64-byte boundary is at most
        // 48 bytes in, leaving `nbytes` bytes after it inside the block.
        let skip = raw.addr().wrapping_neg() % DATA_ALIGNMENT;
        debug_assert!(skip + nbytes <= layout.size());
        // SAFETY: `skip <= DATA_ALIGNMENT - MALLOC_ALIGNMENT`, inside the block.
        let ptr = unsafe { block.add(skip) };
        advise_huge_pages(ptr.as_ptr(), nbytes);
        Ok(Self {
            ptr,
            block: Some((block, layout)),
            _live: LiveBuffer::new(),
        })
    }

    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }
}

impl Drop for RustBuffer {
    fn drop(&mut self) {
        if let Some((block, layout)) = self.block {
            // SAFETY: `block` came from `alloc`/`alloc_zeroed` with this
            // layout and is freed only here, once.
            unsafe { alloc::dealloc(block.as_ptr(), layout) };
        }
    }
}

/// Blocks this large get transparent huge pages where the kernel offers
/// them (NumPy's threshold in `alloc.c`): fewer TLB misses and page faults
/// when the block is first touched.
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

/// Keeps a tensor's memory alive; dropping it releases the resource once.
///
/// The fields are never read: they are held for their `Drop`.
#[allow(dead_code)]
pub(crate) enum Owner {
    /// A block allocated by dlbridge.
    Rust(RustBuffer),
    /// A Rust value that owns the memory (an `ndarray::Array`, a `Vec`).
    RustValue(Box<dyn Send + Sync>, LiveBufferToken),
    /// A legacy DLPack managed tensor; its deleter runs on drop.
    DlpackLegacy(Managed<DLManagedTensor>),
    /// A versioned DLPack managed tensor; its deleter runs on drop.
    DlpackVersioned(Managed<DLManagedTensorVersioned>),
    /// A Python object (exporter, buffer view, capsule), released with the
    /// interpreter attached.
    #[cfg(feature = "python")]
    Python(crate::python::owner::PyOwner),
    /// An acquired `Py_buffer`, released with `PyBuffer_Release`.
    #[cfg(feature = "python")]
    PyBuffer(crate::python::owner::PyBufferView),
}

/// The live-buffer count of a Rust value that owns tensor memory.
pub(crate) struct LiveBufferToken(#[allow(dead_code)] LiveBuffer);

impl LiveBufferToken {
    pub(crate) fn new() -> Self {
        Self(LiveBuffer::new())
    }
}
