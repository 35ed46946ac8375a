//! Reading a `PyCapsule` a producer (or CPython, in a destructor) hands
//! over: the checks every capsule protocol makes before it trusts a pointer
//! (DLPack, `__array_struct__`, the Arrow PyCapsule interface, DLPack's C
//! exchange table), written once.

use std::ffi::{CStr, c_void};
use std::ptr::NonNull;

use pyo3::ffi;
use pyo3::prelude::*;

/// `object`'s capsule name: `None` when `object` is not exactly a capsule,
/// `Some(None)` for an unnamed one. Sets no error.
pub(crate) fn name_of<'a>(object: &'a Bound<'_, PyAny>) -> Option<Option<&'a CStr>> {
    // SAFETY: `object` is a live reference and the thread is attached.
    if unsafe { ffi::PyCapsule_CheckExact(object.as_ptr()) } == 0 {
        return None;
    }
    // SAFETY: a capsule; GetName returns its (possibly NULL) name and cannot fail.
    let name = unsafe { ffi::PyCapsule_GetName(object.as_ptr()) };
    // SAFETY: a capsule's name is a NUL-terminated string that outlives the
    // capsule, which `object` keeps alive for `'a`.
    Some((!name.is_null()).then(|| unsafe { CStr::from_ptr(name) }))
}

/// The pointer of a capsule whose name (`name`, as [`name_of`] read it)
/// the caller has just checked: `PyCapsule_GetPointer` alone, without
/// [`pointer_of`]'s second check of the type and name (which cost the DLPack
/// capsule import 46 instructions: 1,469 against 1,423, callgrind). A
/// capsule cannot hold NULL; if
/// CPython still answers NULL, its error (or `null()`) is returned.
pub(crate) fn pointer_under(
    capsule: &Bound<'_, PyAny>,
    name: Option<&CStr>,
    null: impl FnOnce() -> PyErr,
) -> PyResult<NonNull<c_void>> {
    let name = name.map_or(std::ptr::null(), CStr::as_ptr);
    // SAFETY: `capsule` is a live capsule (the caller read its name) and the
    // thread is attached; GetPointer sets an error on failure.
    let pointer = unsafe { ffi::PyCapsule_GetPointer(capsule.as_ptr(), name) };
    NonNull::new(pointer).ok_or_else(|| PyErr::take(capsule.py()).unwrap_or_else(null))
}

/// The pointer of `capsule` if it is a capsule named `name` (`None`: an
/// unnamed one), and `None` otherwise. Sets no error.
pub(crate) fn pointer_of(
    capsule: &Bound<'_, PyAny>,
    name: Option<&CStr>,
) -> Option<NonNull<c_void>> {
    // SAFETY: `capsule` is a live reference and the thread is attached.
    unsafe { pointer_in(capsule.as_ptr(), name) }
}

/// As [`pointer_of`], on a raw object: what a capsule destructor reads. It
/// sets no error (one may be in flight) and makes no new reference to the
/// object (a dying capsule must not be resurrected).
///
/// # Safety
///
/// `capsule` is a live object (or the capsule being destroyed), and the
/// thread is attached.
pub(crate) unsafe fn pointer_in(
    capsule: *mut ffi::PyObject,
    name: Option<&CStr>,
) -> Option<NonNull<c_void>> {
    let name = name.map_or(std::ptr::null(), CStr::as_ptr);
    // SAFETY: the caller's contract. IsValid only reads the object (type,
    // name, non-NULL pointer) and sets no error; with the name matched,
    // GetPointer cannot fail.
    unsafe {
        if ffi::PyCapsule_IsValid(capsule, name) != 1 {
            return None;
        }
        NonNull::new(ffi::PyCapsule_GetPointer(capsule, name))
    }
}
