//! `Tensor.__dlpack__` as a raw `METH_FASTCALL | METH_KEYWORDS` method.
//!
//! Every DLPack consumer (`np.from_dlpack`, `torch.from_dlpack` without the
//! exchange API, JAX, CuPy) calls `__dlpack__` with keywords. PyO3's generic
//! argument parser matches each keyword by UTF-8 string comparison, about
//! 450 instructions a call, a third of the whole export. Keyword names in a
//! call are interned strings, so here they are matched by pointer first
//! (string equality only as the fallback), and nothing else changes: the
//! export itself is [`dlpack_python::export`].
//!
//! The method is a plain `PyMethodDef` wrapped in a method descriptor and
//! stored in the type's dict when the module initialises; CPython checks the
//! receiver's type before calling it, as for any method.

use std::ffi::CStr;

use pyo3::ffi;
use pyo3::prelude::*;

use crate::error::{Cause, Error};
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyString, PyType};

use crate::python::names::shown;
use crate::python::tensor::PyTensor;

/// The text signature (for `inspect.signature`) and the docstring.
const DOC: &CStr =
    c"__dlpack__($self, /, *, stream=None, max_version=None, dl_device=None, copy=None)
--

A DLPack capsule of this tensor (a fresh one per call).

`max_version` at (1, x) or later gives a versioned capsule, otherwise a
legacy one; `dl_device` must be this tensor's device; `copy=True` exports
a private copy; `stream` must be None for CPU tensors, and for CUDA
tensors is made to wait for the tensor's work (None, 1 and -1 need
nothing; 0 is refused).";

/// The keyword parameters, in order.
const NAMES: [&str; 4] = ["stream", "max_version", "dl_device", "copy"];

/// The interned parameter names, made once.
fn names(py: Python<'_>) -> &[Py<PyString>; 4] {
    static NAMES_INTERNED: PyOnceLock<[Py<PyString>; 4]> = PyOnceLock::new();
    NAMES_INTERNED.get_or_init(py, || NAMES.map(|name| PyString::intern(py, name).unbind()))
}

/// Installs the method on `ty` (the `Tensor` type), replacing any other.
pub(crate) fn install(ty: &Bound<'_, PyType>) -> PyResult<()> {
    let py = ty.py();
    // The definition must outlive the type: it is made once and leaked, as a
    // C extension's static method table would be.
    let def: &'static mut ffi::PyMethodDef = Box::leak(Box::new(ffi::PyMethodDef {
        ml_name: c"__dlpack__".as_ptr(),
        ml_meth: ffi::PyMethodDefPointer {
            PyCFunctionFastWithKeywords: dunder_dlpack,
        },
        ml_flags: ffi::METH_FASTCALL | ffi::METH_KEYWORDS,
        ml_doc: DOC.as_ptr(),
    }));
    let type_ptr = ty.as_type_ptr();
    // SAFETY: `type_ptr` is a ready type and `def` lives forever.
    let descriptor = unsafe { ffi::PyDescr_NewMethod(type_ptr, def) };
    // SAFETY: a new reference, or NULL with an exception set.
    let descriptor = unsafe { Bound::from_owned_ptr_or_err(py, descriptor) }?;
    // Written into the type's own dict: PyO3 marks its types immutable
    // (`Py_TPFLAGS_IMMUTABLETYPE`, so `setattr` refuses) and has no way to
    // declare a raw `METH_FASTCALL` method. Why it stays sound across PyO3
    // upgrades: the dict is CPython's, not PyO3's (PyO3 only fills it from
    // its method table when it creates the type, and never reads it back or
    // caches its entries); this is what CPython's own `type_setattro` does
    // for a mutable type (set the item, then `PyType_Modified` to drop the
    // method caches), done once, in module initialisation, before any
    // instance or subclass exists. test_dlpack.py's
    // `test_dunder_dlpack_signature_and_keywords` checks the method is ours.
    // SAFETY: `type_ptr` is a ready heap type, and `PyType_Ready` gives
    // every heap type a dict (only static builtin types of CPython 3.12+
    // keep theirs elsewhere); PyType_Modified then drops any cached lookups
    // of the name.
    unsafe {
        let dict = (*type_ptr).tp_dict;
        if ffi::PyDict_SetItem(dict, names_key(py).as_ptr(), descriptor.as_ptr()) != 0 {
            return Err(PyErr::fetch(py));
        }
        ffi::PyType_Modified(type_ptr);
    }
    Ok(())
}

fn names_key(py: Python<'_>) -> Bound<'_, PyString> {
    PyString::intern(py, "__dlpack__")
}

/// The C entry point: no panic may unwind into CPython.
unsafe extern "C" fn dunder_dlpack(
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: CPython calls methods with the thread attached.
    let py = unsafe { Python::assume_attached() };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: forwarded from CPython's call, see `call`.
        unsafe { call(py, slf, args, nargs, kwnames) }
    }));
    let result = outcome.unwrap_or_else(|payload| {
        Err(pyo3::panic::PanicException::new_err(
            payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic in Tensor.__dlpack__".to_owned()),
        ))
    });
    match result {
        Ok(capsule) => capsule.into_ptr(),
        Err(err) => {
            err.restore(py);
            std::ptr::null_mut()
        }
    }
}

/// Parses the keywords and exports.
///
/// # Safety
///
/// The arguments of a `METH_FASTCALL | METH_KEYWORDS` call on a `Tensor`:
/// `slf` an instance, `args` holding `nargs` positional values followed by
/// one value per name in `kwnames` (a tuple, or NULL for none).
unsafe fn call(
    py: Python<'_>,
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> PyResult<Py<PyAny>> {
    if nargs != 0 {
        return Err(PyErr::from(Error::type_error(
            Cause::Argument,
            format!("Tensor.__dlpack__() takes no positional arguments ({nargs} given)"),
        )));
    }
    // SAFETY: the method descriptor checked that `slf` is a Tensor.
    let tensor = unsafe { Bound::from_borrowed_ptr(py, slf).cast_into_unchecked::<PyTensor>() };
    let mut values: [Option<Bound<'_, PyAny>>; 4] = [None, None, None, None];
    if !kwnames.is_null() {
        // SAFETY: `kwnames` is a tuple of strings owned by the caller.
        let kwnames = unsafe { Bound::from_borrowed_ptr(py, kwnames).cast_into_unchecked() };
        let names = names(py);
        for (i, name) in pyo3::types::PyTupleMethods::iter(&kwnames).enumerate() {
            let slot = slot_of(names, &name)?;
            // SAFETY: the keyword values follow the (zero) positional ones.
            let value = unsafe { Bound::from_borrowed_ptr(py, *args.add(i)) };
            if values[slot].replace(value).is_some() {
                return Err(PyErr::from(Error::type_error(
                    Cause::Argument,
                    format!(
                        "Tensor.__dlpack__() got multiple values for argument '{}'",
                        NAMES[slot]
                    ),
                )));
            }
        }
    }
    let [stream, max_version, dl_device, copy] = values;
    let copy = match copy {
        Some(value) if !value.is_none() => Some(value.extract::<bool>().map_err(|_| {
            PyErr::from(Error::type_error(
                Cause::Argument,
                format!("copy must be None or a bool, got {value}"),
            ))
        })?),
        _ => None,
    };
    super::export(
        py,
        &tensor.get().inner,
        stream.as_ref(),
        max_version.as_ref(),
        dl_device.as_ref(),
        copy,
    )
}

/// Which parameter `name` is: by pointer (interned names), else by value.
fn slot_of(names: &[Py<PyString>; 4], name: &Bound<'_, PyAny>) -> PyResult<usize> {
    if let Some(slot) = names.iter().position(|n| n.as_ptr() == name.as_ptr()) {
        return Ok(slot);
    }
    let known = name
        .cast::<PyString>()
        .ok()
        .and_then(|name| name.to_str().ok())
        .and_then(|text| NAMES.iter().position(|&n| n == text));
    known.ok_or_else(|| {
        PyErr::from(Error::type_error(
            Cause::Argument,
            format!(
                "Tensor.__dlpack__() got an unexpected keyword argument {}",
                shown(name)
            ),
        ))
    })
}
