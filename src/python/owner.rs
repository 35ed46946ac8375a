//! A Python object kept alive as a tensor's owner.

use pyo3::{Py, PyAny, Python};

use crate::owner::Allocation;

/// Holds a strong reference to a Python object; dropping it releases the
/// reference with the interpreter attached, from any thread.
///
/// After interpreter finalisation the reference is leaked rather than
/// released: touching a finalised interpreter would crash, and the process
/// is exiting anyway (the choice NumPy's DLPack deleter makes too).
pub(crate) struct PyOwner(Option<Py<PyAny>>);

impl PyOwner {
    pub(crate) fn new(object: Py<PyAny>) -> Self {
        Self(Some(object))
    }
}

/// Foreign memory: the Python object releases it, once, when dropped.
impl Allocation for PyOwner {}

impl Drop for PyOwner {
    fn drop(&mut self) {
        let mut slot = self.0.take();
        if Python::try_attach(|_py| drop(slot.take())).is_none() {
            // The interpreter is finalised: leak the reference.
            std::mem::forget(slot.take());
        }
    }
}

/// A `Py_buffer` acquired with `PyObject_GetBuffer`, released exactly once
/// with `PyBuffer_Release` (interpreter attached) when dropped.
///
/// It is wrapped the moment the exporter fills it, *before* anything about it
/// is validated, so every refusal path releases it too. The view is filled in
/// place inside the box that owns it and never moves afterwards (an
/// exporter may keep pointers into it): one allocation per import (a
/// boxed view inside an `Arc` took two, and LLVM turned the zeroed box into
/// a `calloc`, 177 instructions of a 1,960-instruction
/// `asarray(memoryview)`).
#[repr(transparent)]
pub(crate) struct PyBufferView(pyo3::ffi::Py_buffer);

// SAFETY: the view is only read under the interpreter (validation) and only
// released in `Drop`, which attaches to the interpreter first; CPython allows
// a buffer to be released from any thread that holds the GIL.
unsafe impl Send for PyBufferView {}
// SAFETY: shared references expose only immutable reads of the view's fields.
unsafe impl Sync for PyBufferView {}

impl PyBufferView {
    /// Acquires a buffer from `object` with `flags`, into its owning box
    /// (the view must not move: an exporter may point `shape` and `strides`
    /// into it). A tensor holds the box inline (one word, no shared block:
    /// as an `Arc`, the last release was a locked decrement and a second
    /// free, 6% of `asarray(memoryview)`'s samples).
    pub(crate) fn acquire(
        object: &pyo3::Bound<'_, PyAny>,
        flags: std::ffi::c_int,
    ) -> pyo3::PyResult<Box<Self>> {
        let mut owner = Box::<Self>::new_uninit();
        // Opaque to the optimiser: it folded the allocation and the zeroing
        // below into one `calloc` (177 instructions, against about 70).
        let slot = std::hint::black_box(owner.as_mut_ptr());
        // SAFETY: `slot` is the owned, uninitialised view: it is zeroed
        // first (a careless exporter that skips a field leaves it NULL rather
        // than uninitialised), then filled by the exporter, which only
        // writes it. `PyBufferView` is a transparent-layout newtype of one
        // field, so its address is the view's.
        let filled = unsafe {
            slot.write(Self(pyo3::ffi::Py_buffer::new()));
            pyo3::ffi::PyObject_GetBuffer(object.as_ptr(), slot.cast(), flags)
        };
        if filled != 0 {
            // Nothing to release: the zeroed view is dropped as uninit memory.
            return Err(pyo3::PyErr::fetch(object.py()));
        }
        // SAFETY: every field is initialised: zeroed above, then filled.
        Ok(unsafe { owner.assume_init() })
    }

    pub(crate) fn raw(&self) -> &pyo3::ffi::Py_buffer {
        &self.0
    }
}

/// Foreign memory: the exporter's, lent until the view is released; boxed,
/// so the view stays where the exporter filled it.
impl Allocation for Box<PyBufferView> {}

impl Drop for PyBufferView {
    fn drop(&mut self) {
        let view: *mut pyo3::ffi::Py_buffer = &mut self.0;
        // SAFETY: the view was filled by a successful PyObject_GetBuffer and is
        // released here once; PyBuffer_Release needs the interpreter attached.
        // After finalisation the exporter is gone with the interpreter: the
        // view is left unreleased (its memory goes with the box).
        let _ = Python::try_attach(|_py| unsafe { pyo3::ffi::PyBuffer_Release(view) });
    }
}
