//! Whether this binary is `dlbridge._native`, whose `PyTensor` class is the
//! one `dlbridge.Tensor`.
//!
//! An extension crate that depends on dlbridge links its own copy of the
//! Rust code, and with it a `PyTensor` class that no Python object is an
//! instance of: there, a `dlbridge.Tensor` is imported through its
//! protocols and a result crosses through the exchange table (`convert.rs`).
//! Only the home binary may clone a `dlbridge.Tensor`'s inner tensor or
//! build one directly.

use std::sync::atomic::{AtomicBool, Ordering};

/// Set when this binary's module init registered its `PyTensor` as
/// `dlbridge._native.Tensor`; in an extension crate's binary it stays false.
static HOME_BINARY: AtomicBool = AtomicBool::new(false);

/// Called by `dlbridge._native`'s module init.
pub(crate) fn mark_home_binary() {
    HOME_BINARY.store(true, Ordering::Release);
}

/// Whether `dlbridge._native`'s module init ran in this binary.
pub(crate) fn is_home_binary() -> bool {
    HOME_BINARY.load(Ordering::Acquire)
}
