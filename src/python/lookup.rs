//! Protocol attributes, each looked up once per import.
//!
//! `hasattr` evaluates a property, so `hasattr` followed by `getattr` runs a
//! producer's `__array_struct__` twice (NumPy's own `test_cstruct` allocates
//! a new capsule and new data on every access), and `hasattr` on a missing
//! attribute builds and discards an `AttributeError`, which costs more than
//! a whole exchange. So discovery asks the *type* first: `_PyType_Lookup`
//! reads the type's method cache (no exception, no new reference). It is a
//! private but exported CPython function (Cython relies on it too); PyO3
//! does not bind it.
//!
//! A protocol attribute set to `None` on the class (`__dlpack__ = None`)
//! switches the protocol off, as in Python's own protocols (`__hash__ =
//! None`). An attribute the type defines is evaluated exactly once, and any
//! exception it raises, `AttributeError` included, is the producer's own
//! error, not "this object speaks no protocol".

use pyo3::prelude::*;
use pyo3::types::PyString;

unsafe extern "C" {
    fn _PyType_Lookup(
        ty: *mut pyo3::ffi::PyTypeObject,
        name: *mut pyo3::ffi::PyObject,
    ) -> *mut pyo3::ffi::PyObject;
}

/// What `type(object)` (or a base) says about a protocol attribute.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum OnType {
    /// Not defined on the type (it may still be an instance attribute).
    Absent,
    /// Defined as `None`: the protocol is switched off.
    Off,
    /// Defined (a method, a property, a value).
    Defined,
}

/// `name` in `type(object)`'s MRO, without evaluating it (a borrowed
/// reference to the class attribute itself, or `None`). As a side effect
/// CPython gives the type a version tag if it had none.
pub(crate) fn type_lookup<'py>(
    object: &Bound<'py, PyAny>,
    name: &Bound<'py, PyString>,
) -> Option<Bound<'py, PyAny>> {
    // SAFETY: both pointers are live; the lookup returns a borrowed reference
    // (or NULL) and never leaves an exception set; the reference is turned
    // into an owned one at once, before anything can run.
    unsafe {
        let found = _PyType_Lookup(pyo3::ffi::Py_TYPE(object.as_ptr()), name.as_ptr());
        (!found.is_null()).then(|| Bound::from_borrowed_ptr(object.py(), found))
    }
}

/// Whether `type(object)` (or a base) defines `name`, without evaluating it.
pub(crate) fn on_type(object: &Bound<'_, PyAny>, name: &Bound<'_, PyString>) -> OnType {
    // SAFETY: both pointers are live; the lookup returns a borrowed reference
    // (or NULL) and never leaves an exception set. The result is only
    // compared, never dereferenced.
    let found = unsafe { _PyType_Lookup(pyo3::ffi::Py_TYPE(object.as_ptr()), name.as_ptr()) };
    if found.is_null() {
        OnType::Absent
    } else if found == none_ptr() {
        OnType::Off
    } else {
        OnType::Defined
    }
}

/// The instance attribute `name` of an object whose type does not define
/// it (`OnType::Absent`), without an exception for a miss. With the generic
/// attribute lookup (no `__getattr__`, no custom `tp_getattro`) that can
/// only be an entry of the instance `__dict__`, read directly: a miss costs
/// a dictionary probe, where `getattr` on CPython before 3.13 built and
/// discarded an `AttributeError` (about half a microsecond, more than a
/// whole import). Any other type is asked through `getattr`.
pub(crate) fn instance_attribute<'py>(
    object: &Bound<'py, PyAny>,
    name: &Bound<'py, PyString>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    use pyo3::ffi;
    let obj = object.as_ptr();
    // SAFETY: `obj` is live; its type's slots are plain reads.
    let (generic, has_dict) = unsafe {
        let ty = ffi::Py_TYPE(obj);
        (
            // CPython's exported function, which a type without its own
            // lookup inherits in this slot: one address, compared as such.
            (*ty).tp_getattro.is_some_and(|getattro| {
                std::ptr::fn_addr_eq(getattro, ffi::PyObject_GenericGetAttr as ffi::getattrofunc)
            }),
            (*ty).tp_dictoffset != 0 || (*ty).tp_flags & ffi::Py_TPFLAGS_MANAGED_DICT != 0,
        )
    };
    if !generic {
        return object.getattr_opt(name);
    }
    if !has_dict {
        return Ok(None);
    }
    // SAFETY: the type has an instance dict (checked above); the call
    // returns a new reference to it, or NULL with an exception set.
    let dict = unsafe { ffi::PyObject_GenericGetDict(obj, std::ptr::null_mut()) };
    if dict.is_null() {
        return Err(PyErr::fetch(object.py()));
    }
    // SAFETY: a new, non-NULL reference.
    let dict = unsafe { Bound::from_owned_ptr(object.py(), dict) };
    let dict = dict.cast::<pyo3::types::PyDict>()?;
    pyo3::types::PyDictMethods::get_item(dict, name)
}

fn none_ptr() -> *mut pyo3::ffi::PyObject {
    // SAFETY: `Py_None` returns the address of the immortal `None` singleton.
    unsafe { pyo3::ffi::Py_None() }
}

/// Reads the protocol attribute `name` of `object`, evaluating it at most
/// once. `Ok(None)` when the object does not offer it (absent, or `None`);
/// an error raised while evaluating an attribute the type defines is
/// returned as is.
pub(crate) fn protocol_attribute<'py>(
    object: &Bound<'py, PyAny>,
    name: &Bound<'py, PyString>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let value = match on_type(object, name) {
        OnType::Off => return Ok(None),
        OnType::Defined => object.getattr(name)?,
        // An instance attribute, or one a `__getattr__` provides: missing
        // here is an `AttributeError` from the lookup itself.
        OnType::Absent => match instance_attribute(object, name)? {
            Some(value) => value,
            None => return Ok(None),
        },
    };
    Ok((!value.is_none()).then_some(value))
}
