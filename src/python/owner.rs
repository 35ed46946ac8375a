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
/// is validated, so every refusal path releases it too.
pub(crate) struct PyBufferView(Box<pyo3::ffi::Py_buffer>);

// SAFETY: the view is only read under the interpreter (validation) and only
// released in `Drop`, which attaches to the interpreter first; CPython allows
// a buffer to be released from any thread that holds the GIL.
unsafe impl Send for PyBufferView {}
// SAFETY: shared references expose only immutable reads of the view's fields.
unsafe impl Sync for PyBufferView {}

impl PyBufferView {
    /// Acquires a buffer from `object` with `flags`.
    pub(crate) fn acquire(
        object: &pyo3::Bound<'_, PyAny>,
        flags: std::ffi::c_int,
    ) -> pyo3::PyResult<Self> {
        // Zeroed in place (cheaper than `calloc`): a careless exporter that
        // skips a field leaves it NULL rather than uninitialised.
        let mut view = Box::<pyo3::ffi::Py_buffer>::new_uninit();
        // SAFETY: writes zeros over the whole (owned, uninitialised) view.
        unsafe { view.as_mut_ptr().write_bytes(0, 1) };
        // SAFETY: `object` is alive and the thread attached; the exporter
        // writes the view (it never reads it).
        if unsafe { pyo3::ffi::PyObject_GetBuffer(object.as_ptr(), view.as_mut_ptr(), flags) } != 0
        {
            return Err(pyo3::PyErr::fetch(object.py()));
        }
        // SAFETY: every field is initialised: zeroed above, then filled.
        Ok(Self(unsafe { view.assume_init() }))
    }

    pub(crate) fn raw(&self) -> &pyo3::ffi::Py_buffer {
        &self.0
    }
}

/// Foreign memory: the exporter's, lent until the view is released.
impl Allocation for PyBufferView {}

impl Drop for PyBufferView {
    fn drop(&mut self) {
        let view: *mut pyo3::ffi::Py_buffer = &mut *self.0;
        // SAFETY: the view was filled by a successful PyObject_GetBuffer and is
        // released here once; PyBuffer_Release needs the interpreter attached.
        let released = Python::try_attach(|_py| unsafe { pyo3::ffi::PyBuffer_Release(view) });
        if released.is_none() {
            // Interpreter finalised: the exporter is gone with it; leak the box
            // rather than hand CPython a view it can no longer release.
            std::mem::forget(std::mem::replace(
                &mut self.0,
                Box::new(pyo3::ffi::Py_buffer::new()),
            ));
        }
    }
}
