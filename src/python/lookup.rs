//! Fast "does this type define X?" checks for discovery.
//!
//! `hasattr` on a missing attribute builds and discards an `AttributeError`,
//! which costs more than a whole exchange. `_PyType_Lookup` reads the type's
//! method cache instead: no exception, no new reference. It is a private but
//! exported CPython function (Cython relies on it too); PyO3 does not bind it.

use pyo3::prelude::*;
use pyo3::types::PyString;

unsafe extern "C" {
    fn _PyType_Lookup(
        ty: *mut pyo3::ffi::PyTypeObject,
        name: *mut pyo3::ffi::PyObject,
    ) -> *mut pyo3::ffi::PyObject;
}

/// Whether `type(object)` (or a base) defines `name`.
pub(crate) fn type_defines(object: &Bound<'_, PyAny>, name: &Bound<'_, PyString>) -> bool {
    // SAFETY: both pointers are live; the lookup returns a borrowed reference
    // (or NULL) and never leaves an exception set.
    !unsafe { _PyType_Lookup(pyo3::ffi::Py_TYPE(object.as_ptr()), name.as_ptr()) }.is_null()
}
