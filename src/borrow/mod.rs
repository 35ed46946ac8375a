//! Tracked borrows of memory other code can reach: the registry behind
//! every safe view of an array argument (`ReadonlyTensor` takes a shared
//! borrow, `ReadwriteTensor` an exclusive one; feature `python`), rust-numpy's `PyReadonlyArray` /
//! `PyReadwriteArray` model carried over to every producer dlbridge
//! imports. The registry itself (keys, rules, the C ABI) is plain Rust,
//! here, so Miri checks it; the Python layer only publishes it.
//!
//! # The model
//!
//! Rust's aliasing rule, one `&mut` or any number of `&`, cannot be checked
//! at compile time for memory that Python hands over: `f(a, a)` passes one
//! array twice, `f(a[1:], a[:2])` two overlapping views of one, and a NumPy
//! array, a torch tensor from `torch.from_numpy` of it and a `memoryview`
//! of either are three objects over the same bytes. So every borrow is
//! recorded in a registry while it lives, and a new one is refused when it
//! would break the rule:
//!
//! - a reading argument (`ReadonlyTensor`) takes a *shared* borrow:
//!   refused only where a mutable borrow of overlapping memory is held;
//! - a `ReadwriteTensor` takes an *exclusive* borrow: refused where any
//!   borrow of overlapping memory is held, and for readonly memory or a
//!   layout that reaches one element through two indices (a stride of 0);
//! - the borrow ends when the value drops: when the function returns,
//!   raises, or fails to extract a later argument (PyO3 drops the ones
//!   already extracted), exactly once.
//!
//! A refusal is a `BufferError` (a valid array that cannot go where it was
//! asked, as `docs/architecture.md` has it; [`Cause::Aliasing`](crate::Cause::Aliasing), or
//! [`Cause::Readonly`](crate::Cause::Readonly)) naming the tensor (dtype, shape, source), its byte
//! range and the held borrow's kind and byte range. rust-numpy raises its
//! own `BorrowError`; dlbridge keeps to the exceptions it already documents.
//!
//! **Keys are memory, not objects.** rust-numpy keys a borrow by the NumPy
//! base object and the byte range within it; dlbridge imports from many
//! producers that share memory without sharing objects, so a borrow is
//! keyed by what it covers: the byte range `[start, end)` of its
//! elements, and the lattice its elements start on (the data pointer and
//! the gcd of the strides of the axes longer than 1). Two borrows conflict
//! when their ranges overlap *and* some element of one may share a byte with
//! an element of the other: `a[::2]` and `a[1::2]` do not conflict (the
//! element starts differ by 8 bytes modulo 16, and each element is 8 bytes
//! wide), nor do the colour channels of an image. rust-numpy's test (the
//! gcd divides the pointer difference) is this one for one-byte elements
//! only; with the widths in it, a `uint8` view at byte 1 of a `float64`
//! array is a conflict, as it must be. It is still a sufficient test for
//! *no overlap*, not an exact one: `a[:, ::3]` and `a[:, 1::3]` of a 10×10
//! array are refused though they share nothing (as in rust-numpy).
//!
//! **One registry per process, whichever binary made it.**
//! Each extension links its own copy of dlbridge, perhaps another version,
//! so the registry is a versioned C ABI in a capsule at
//! `sys._dlbridge_borrow_registry`: the first binary to borrow creates it,
//! every other one uses its functions. A mutable borrow held by one
//! extension blocks every overlapping borrow in any other. The ABI, in C:
//!
//! ```c
//! typedef struct {            /* BorrowKey */
//!     uintptr_t start, end;   /* bytes covered: [start, end); start == end: none */
//!     uintptr_t data;         /* address of element [0, ..., 0] */
//!     size_t itemsize;        /* bytes per element */
//!     size_t gcd;             /* gcd of |byte strides| of axes of extent > 1; 0: none */
//! } BorrowKey;
//! typedef struct {            /* Conflict: the held borrow that refused */
//!     BorrowKey key;
//!     int32_t exclusive;      /* 1: held mutably; 0: shared */
//!     size_t readers;         /* shared borrows of that key */
//! } Conflict;
//! typedef struct {            /* the capsule's pointer, named "dlbridge.borrow_registry" */
//!     uint64_t version;       /* 1; later versions only append fields */
//!     void *state;
//!     int (*acquire)(void *state, const BorrowKey *, int exclusive, Conflict *out); /* 0 or -1 */
//!     int (*release)(void *state, const BorrowKey *, int exclusive);   /* 0, or -1: not held */
//!     size_t (*held)(void *state);                                     /* keys held */
//! } BorrowApi;
//! ```
//!
//! Every call is made by an attached thread (the GIL held). A binary that
//! knows version N accepts any version ≥ N; this one needs 1.
//! `tests/python/helpers/borrow_peer.c` is a whole client (and registry) in
//! C. Why `sys`: it exists before any extension loads, needs no import and
//! belongs to no package, so extensions built on different dlbridge
//! versions, or run without the `dlbridge` Python package, meet there.
//!
//! **rust-numpy joins in:** when no rust-numpy extension has
//! published its registry yet, dlbridge publishes one in its place that
//! forwards to dlbridge's, so both libraries share one registry keyed by
//! memory; when one has, dlbridge also takes every borrow of a
//! `numpy.ndarray` argument in it. Either way a `ReadwriteTensor` and a
//! rust-numpy `PyReadwriteArray` of one NumPy array cannot both exist.
//!
//! # What it cannot see
//!
//! The registry makes safe Rust code unable to create aliasing through
//! tracked borrows; it does not make anyone else follow the rule.
//!
//! - **Untracked views are `unsafe`.** [`Tensor`](crate::Tensor) and
//!   [`TypedTensor`](crate::TypedTensor) (owning handles, which outlive
//!   a call) take no borrow, so their views
//!   ([`Tensor::as_ndarray`](crate::Tensor::as_ndarray),
//!   [`TypedTensor::view`](crate::TypedTensor::view)) are `unsafe fn`s,
//!   as rust-numpy's `PyArray::as_array` is: the caller promises that
//!   nothing writes the memory while the view lives. Every safe view of
//!   memory other code can reach comes from a tracked argument, so
//!   `fn f(x: ReadonlyTensor<f64>, out: ReadwriteTensor<f64>)` called as
//!   `f(a, a)` is refused at extraction. For the same reason no borrowed
//!   argument hands out its `Tensor` (a clone would be an untracked
//!   handle); `to_tensor` makes an owning one, whose views are `unsafe`. Copies
//!   ([`Tensor::copy`](crate::Tensor::copy)) read without a borrow, as
//!   rust-numpy's `to_owned_array` does.
//! - **Code that does not ask.** Python code, C, C++ or Fortran
//!   extensions, NumPy's own ufuncs, raw pointers taken from `data_ptr`,
//!   `unsafe` Rust (`as_ndarray_mut_unchecked`), and libraries with a
//!   registry of their own (rust-numpy is the one joined) write without
//!   consulting the registry. A borrowed function that calls back into
//!   Python can have its memory written under it; like rust-numpy, dlbridge
//!   holds that unchecked code is its author's to get right.
//! - **Producers that mutate on their own.** A torch tensor written by a
//!   CUDA stream or another thread's in-place op, memory-mapped files, an
//!   array a producer resizes or frees while borrowed are outside the
//!   registry. The owner a tensor holds stops NumPy from resizing (it
//!   counts references) but not torch: `x.resize_(n)` reallocates the
//!   storage DLPack exported and frees the old memory under every view
//!   (docs/limitations.md, "torch").
//! - **Threads.** Borrows are taken and released with the GIL held (the
//!   types are not `Send`); they are not locks: a second thread asking for a
//!   conflicting borrow is refused, not made to wait. A view may be used
//!   with the GIL released (`py.detach`), and stays tracked while it is.
//! - **Devices.** Keys are host addresses of CPU memory (the only memory
//!   the typed views reach).
//! - **The meeting point.** A registry created before someone deletes or
//!   replaces `sys._dlbridge_borrow_registry` stays in use by the binaries
//!   that already found it; binaries that look later would make a second
//!   one, and the two would not see each other's borrows. Likewise a NumPy
//!   first imported while a borrow is held, or a NumPy array reached through
//!   another object while rust-numpy keeps its own registry, escapes
//!   rust-numpy's view.

// Without the `python` feature nothing publishes the registry: it is built
// (and tested, under Miri too) all the same.
#[cfg_attr(not(feature = "python"), allow(dead_code))]
pub(crate) mod abi;
#[cfg_attr(not(feature = "python"), allow(dead_code))]
pub(crate) mod key;
#[cfg_attr(not(feature = "python"), allow(dead_code))]
pub(crate) mod lock;
#[cfg_attr(not(feature = "python"), allow(dead_code))]
pub(crate) mod registry;
