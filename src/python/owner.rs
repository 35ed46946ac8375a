//! A Python object kept alive as a tensor's owner.

use pyo3::{Py, PyAny, Python};

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

impl Drop for PyOwner {
    fn drop(&mut self) {
        let mut slot = self.0.take();
        if Python::try_attach(|_py| drop(slot.take())).is_none() {
            // The interpreter is finalised: leak the reference.
            std::mem::forget(slot.take());
        }
    }
}
