//! Counters that make the fast import paths observable to the tests.
//!
//! The exact-`numpy.ndarray` field read and torch's C exchange API both
//! produce the tensor the slow path (`__dlpack__`) would, and the other
//! shortcuts (builtin buffers, a lent ndarray, a pyarrow `ChunkedArray`
//! sent to its stream) what their protocol would; a regression that
//! silently turned one off would leave every value right and every test
//! green, only slower. Each successful fast import bumps its counter, and
//! `dlbridge._native._testing.fast_path_counts()` reads them, so the suite can
//! assert that the fast path was taken.
//!
//! The increment is a relaxed load and store, not an atomic add: the
//! callers hold the GIL, a lost count under free threading would only make
//! a count low (never unsound), and a locked `xadd` per import is not free.

use std::sync::atomic::{AtomicU64, Ordering};

/// One fast path's count of successful imports.
pub(crate) struct Counter(AtomicU64);

impl Counter {
    const fn new() -> Self {
        Self(AtomicU64::new(0))
    }

    /// Counts one import taken through this path.
    pub(crate) fn hit(&self) {
        self.0
            .store(self.0.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Imports read from an exact `numpy.ndarray`'s fields.
pub(crate) static NDARRAY_FIELDS: Counter = Counter::new();
/// Imports through a producer's DLPack C exchange API.
pub(crate) static EXCHANGE_API: Counter = Counter::new();
/// Imports of an exact `memoryview`, `bytes` or `bytearray` through the
/// buffer protocol before the importer's protocol walk (`importer.rs`).
pub(crate) static BUILTIN_BUFFER: Counter = Counter::new();
/// Extension arguments (`ReadonlyTensor`, `ReadwriteTensor`) that borrowed an exact
/// `numpy.ndarray` for the call, taking no reference and no allocation.
pub(crate) static LENT_ARGUMENTS: Counter = Counter::new();
/// pyarrow `ChunkedArray`s (recognised by identity) sent straight to their
/// Arrow stream, their `__array__` (which always copies) not asked for a
/// view first (`importer.rs`, `Stage::ArrowViewsFirst`).
pub(crate) static CHUNKED_ARRAY_STREAM: Counter = Counter::new();

/// Imports taken through each fast path by *this binary's* copy of dlbridge
/// since it was loaded (feature `python`), by name: `ndarray_fields`,
/// `exchange_api`, `lent_arguments`, `builtin_buffer`,
/// `chunked_array_stream`. An extension crate links its own copy
/// and may expose these to its tests (cargo feature `testing`), as
/// `dlbridge._native._testing.fast_path_counts()` does for the Python package, so that a fast path silently turned off fails
/// a test rather than only slowing down.
pub fn fast_path_counts() -> [(&'static str, u64); 5] {
    [
        ("ndarray_fields", NDARRAY_FIELDS.get()),
        ("exchange_api", EXCHANGE_API.get()),
        ("lent_arguments", LENT_ARGUMENTS.get()),
        ("builtin_buffer", BUILTIN_BUFFER.get()),
        ("chunked_array_stream", CHUNKED_ARRAY_STREAM.get()),
    ]
}
