//! The guard of one tracked borrow: taken when a borrowed argument
//! (`ReadonlyTensor`, `ReadwriteTensor`: `crate::python::arg`) is
//! extracted, released exactly once when it drops, and the refusals that
//! name what could not be borrowed.

use pyo3::prelude::*;
use pyo3::{Bound, PyAny, Python};

use super::capsule::{self, BorrowApi};
use super::rust_numpy::{NumpyBorrow, Refusal};
use crate::borrow::key::BorrowKey;
use crate::borrow::registry::Conflict;
use crate::descriptor::{Descriptor, Source};
use crate::dtype::DType;
use crate::error::{Cause, Error};

/// A borrow recorded in the process's registry (and rust-numpy's, when it
/// has its own and the object is a NumPy array), released exactly once, on
/// drop. `Python<'py>` keeps it on an attached thread (it is not `Send`).
pub(crate) struct Guard<'py> {
    _py: Python<'py>,
    api: &'static BorrowApi,
    key: BorrowKey,
    exclusive: bool,
    numpy: Option<NumpyBorrow<'py>>,
}

/// How a refusal names the tensor: dtype, shape and where it came from.
pub(crate) fn describe(dtype: DType, shape: &[usize], source: Source) -> String {
    format!(
        "the {dtype} tensor of shape {shape:?} (source {})",
        source.as_str()
    )
}

fn readonly_error(what: &str) -> PyErr {
    Error::buffer(
        Cause::Readonly,
        format!("cannot borrow {what} mutably: it is readonly"),
    )
    .into()
}

fn conflict_error(what: &str, key: &BorrowKey, exclusive: bool, held: &Conflict) -> PyErr {
    let how = if exclusive { "mutably" } else { "for reading" };
    let (start, end) = (key.start, key.end);
    let (held_start, held_end) = (held.key.start, held.key.end);
    let error = if held.exclusive != 0 {
        Error::buffer(
            Cause::Aliasing,
            format!(
                "cannot borrow {what} {how}: its bytes {start:#x}..{end:#x} overlap a mutable borrow \
                 already held (bytes {held_start:#x}..{held_end:#x}) by another argument or a call still running"
            ),
        )
    } else {
        Error::buffer(
            Cause::Aliasing,
            format!(
                "cannot borrow {what} mutably: its bytes {start:#x}..{end:#x} overlap {} shared borrow(s) \
                 already held (bytes {held_start:#x}..{held_end:#x}) by another argument or a call still running",
                held.readers
            ),
        )
    };
    error.into()
}

impl<'py> Guard<'py> {
    /// Takes a borrow of `key` (the memory of `object`, named by `what` in
    /// a refusal), shared or `exclusive`.
    pub(crate) fn acquire<'b: 'py>(
        object: &Bound<'b, PyAny>,
        key: BorrowKey,
        exclusive: bool,
        what: impl Fn() -> String,
    ) -> PyResult<Self> {
        let py: Python<'py> = object.py();
        let api = capsule::api(py)?;
        if let Err(held) = api.acquire(&key, exclusive) {
            return Err(conflict_error(&what(), &key, exclusive, &held));
        }
        let mut guard = Self {
            _py: py,
            api,
            key,
            exclusive,
            numpy: None,
        };
        // On a refusal `guard` drops here and gives dlbridge's borrow back.
        guard.numpy = match NumpyBorrow::acquire(object, exclusive) {
            Ok(numpy) => numpy,
            Err(Refusal::NotWritable) => return Err(readonly_error(&what())),
            Err(Refusal::Borrowed) => {
                let how = if exclusive { "mutably" } else { "for reading" };
                return Err(Error::buffer(
                    Cause::Aliasing,
                    format!(
                        "cannot borrow {} {how}: a rust-numpy extension holds a conflicting borrow of this \
                         NumPy array (a PyReadwriteArray, or a PyReadonlyArray)",
                        what()
                    ),
                )
                .into());
            }
        };
        Ok(guard)
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        drop(self.numpy.take());
        // This key was acquired with this kind by `acquire` and is released
        // once, here: a refusal (not held) would be a double release
        // somewhere, which tests must see (never a panic in release builds:
        // the borrow is gone either way).
        let released = self.api.release(&self.key, self.exclusive);
        debug_assert!(released, "borrow {:?} released twice", self.key);
    }
}

/// The refusals of a mutable borrow beside the registry's: readonly memory,
/// and a layout that reaches one element through two indices (a stride of
/// 0, overlapping rows: `iter_mut` would hand out two `&mut` to one element).
pub(crate) fn check_writable(d: &Descriptor) -> PyResult<()> {
    let what = || describe(d.dtype, d.layout.shape(), d.source);
    if d.readonly {
        return Err(readonly_error(&what()));
    }
    if d.layout.overlaps_itself() {
        return Err(Error::buffer(
            Cause::Aliasing,
            format!(
                "cannot borrow {} mutably: two indices may reach one element (byte strides {:?})",
                what(),
                d.layout.strides()
            ),
        )
        .into());
    }
    Ok(())
}
