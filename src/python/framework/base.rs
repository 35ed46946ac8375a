//! The base object of a `numpy.ndarray` made over a tensor's memory: a
//! Python object that holds the tensor's owner inline and releases it, once,
//! when NumPy frees the last array over the memory.
//!
//! A `PyCapsule` did this before, with the owner behind a `Box` (an owner's
//! holder is three words, a capsule holds one thin pointer): per
//! array a heap allocation and its free, and a name check in the
//! destructor, about 200 of the return's instructions. This type's
//! instances are the owner with an object header: one `PyObject_Malloc`,
//! one `PyObject_Free`. The owner's [`Holder`] moves in as the tensor had
//! it: an owner the tensor alone held (a `Vec` returned from Rust) stays
//! inline, with no shared block. It holds no Python reference, so it takes no part
//! in garbage collection; it is a heap type made once per process (never
//! freed: the type pointer cached here stays valid).

use std::mem::ManuallyDrop;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use crate::owner::Holder;

/// An instance: the object header, then the owner.
#[repr(C)]
struct OwnerObject {
    ob_base: ffi::PyObject,
    /// Dropped once, by `dealloc`.
    owner: ManuallyDrop<Holder>,
}

struct TypePtr(*mut ffi::PyTypeObject);
// SAFETY: a type object that is never freed (a strong reference is kept),
// used only while attached to the interpreter.
unsafe impl Send for TypePtr {}
// SAFETY: as above; the pointer is never written after it is made.
unsafe impl Sync for TypePtr {}

/// The instance destructor: drops the owner, frees the object, and gives
/// back the instance's reference to its heap type.
unsafe extern "C" fn dealloc(object: *mut ffi::PyObject) {
    // SAFETY: CPython calls this for instances of the type made below only,
    // once, when the last reference is gone: an initialised `OwnerObject`
    // allocated with `PyObject_Malloc`, whose owner nothing else drops.
    unsafe {
        let ty = ffi::Py_TYPE(object);
        let owner = &raw mut (*object.cast::<OwnerObject>()).owner;
        // No panic crosses this boundary: an owner whose release panics is
        // left released as far as it got.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            ManuallyDrop::drop(&mut *owner);
        }));
        ffi::PyObject_Free(object.cast());
        ffi::Py_DECREF(ty.cast());
    }
}

fn owner_type(py: Python<'_>) -> PyResult<*mut ffi::PyTypeObject> {
    static TYPE: PyOnceLock<TypePtr> = PyOnceLock::new();
    TYPE.get_or_try_init(py, || {
        let mut slots = [
            ffi::PyType_Slot {
                slot: ffi::Py_tp_dealloc,
                pfunc: dealloc as *mut std::ffi::c_void,
            },
            ffi::PyType_Slot {
                slot: ffi::Py_tp_doc,
                pfunc: c"The owner of a numpy.ndarray's memory, made by dlbridge."
                    .as_ptr()
                    .cast_mut()
                    .cast(),
            },
            ffi::PyType_Slot {
                slot: 0,
                pfunc: std::ptr::null_mut(),
            },
        ];
        let mut spec = ffi::PyType_Spec {
            name: c"dlbridge.NumpyBase".as_ptr(),
            // An `OwnerObject` is a few words: the cast is exact.
            basicsize: size_of::<OwnerObject>() as std::ffi::c_int,
            itemsize: 0,
            // Not a base type, not collected (no Python references inside).
            flags: ffi::Py_TPFLAGS_DEFAULT as std::ffi::c_uint,
            slots: slots.as_mut_ptr(),
        };
        // SAFETY: a valid spec whose strings are static; CPython copies the
        // slots. Returns a new reference (kept for ever) or NULL with an
        // exception set.
        let ty = unsafe { ffi::PyType_FromSpec(&raw mut spec) };
        if ty.is_null() {
            return Err(PyErr::fetch(py));
        }
        Ok(TypePtr(ty.cast()))
    })
    .map(|ty| ty.0)
}

/// A new base object owning `owner` (a new reference).
///
/// # Errors
///
/// `MemoryError` when the object cannot be allocated (the owner is then
/// released on return), or the error of making the type the first time.
pub(crate) fn owner_object(py: Python<'_>, owner: Holder) -> PyResult<*mut ffi::PyObject> {
    let ty = owner_type(py)?;
    // SAFETY: an allocation of the type's basic size; `PyObject_Init` sets
    // the header (type and reference count, taking a reference to the heap
    // type, which `dealloc` gives back), then the owner is moved in: the
    // object is complete before anything can see it.
    unsafe {
        let object = ffi::PyObject_Malloc(size_of::<OwnerObject>()).cast::<ffi::PyObject>();
        if object.is_null() {
            // CPython's own out-of-memory error, as its allocators raise it.
            ffi::PyErr_NoMemory();
            return Err(PyErr::fetch(py));
        }
        ffi::PyObject_Init(object, ty);
        (&raw mut (*object.cast::<OwnerObject>()).owner).write(ManuallyDrop::new(owner));
        Ok(object)
    }
}
