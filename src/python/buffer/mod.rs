//! Buffer protocol spoke, Python half: import any PEP 3118 exporter
//! (`PyObject_GetBuffer`), export tensors (`__getbuffer__`).
//!
//! Import acquires a `Py_buffer` with strides and format (readonly allowed,
//! suboffsets not asked for), wraps it in its RAII owner at once
//! ([`PyBufferView`]), and only then lets the core half validate it.
//!
//! Export fills a consumer's `Py_buffer` straight from the tensor's validated
//! layout: `shape` and `strides` point into the tensor's own (immutable)
//! arrays, and `view.obj` holds the Python `Tensor`, so nothing is allocated
//! per view and nothing needs freeing in `__releasebuffer__`.

use std::ffi::{CStr, c_int};

use pyo3::ffi;
use pyo3::prelude::*;

use crate::descriptor::Descriptor;
use crate::dtype::DType;
use crate::error::{Cause, Error, Result};
use crate::owner::Holder;
use crate::protocol::buffer::{self as core, PyBufferFields};
use crate::protocol::pep3118;
use crate::python::owner::PyBufferView;
use crate::tensor::Tensor;

/// The fields of an acquired view, borrowed for as long as the view lives.
pub(crate) fn fields(view: &ffi::Py_buffer) -> PyBufferFields<'_> {
    let ndim = usize::try_from(view.ndim).unwrap_or(0);
    // SAFETY: a filled `Py_buffer` points `format` at a NUL-terminated
    // string and `shape`/`strides` (when non-NULL) at `ndim` entries, all
    // owned by the exporter until the view is released, which the borrow of
    // `view` outlives.
    unsafe {
        PyBufferFields {
            buf: view.buf.cast(),
            len: view.len,
            readonly: view.readonly != 0,
            format: (!view.format.is_null()).then(|| CStr::from_ptr(view.format).to_bytes()),
            itemsize: view.itemsize,
            ndim: view.ndim,
            shape: (!view.shape.is_null()).then(|| std::slice::from_raw_parts(view.shape, ndim)),
            strides: (!view.strides.is_null())
                .then(|| std::slice::from_raw_parts(view.strides, ndim)),
            has_suboffsets: !view.suboffsets.is_null(),
        }
    }
}

fn acquire(object: &Bound<'_, PyAny>) -> PyResult<Box<PyBufferView>> {
    PyBufferView::acquire(object, ffi::PyBUF_RECORDS_RO)
}

fn assemble(descriptor: Descriptor, owner: Box<PyBufferView>) -> Tensor {
    // SAFETY: the exporter keeps `buf` valid over the described layout until
    // the view is released, and the view is released only when the owner drops.
    unsafe { Tensor::from_held(descriptor, Holder::new(owner)) }
}

/// Whether `object` is exactly a `memoryview`, `bytes` or `bytearray`: the
/// builtin exporters, which speak no protocol but the buffer protocol.
pub(crate) fn is_builtin_exporter(object: &Bound<'_, PyAny>) -> bool {
    // SAFETY: `object` is live; the checks compare its type's address.
    unsafe {
        let obj = object.as_ptr();
        // `memoryview` cannot be subclassed: its check is exact.
        ffi::PyMemoryView_Check(obj) != 0
            || ffi::PyBytes_CheckExact(obj) != 0
            || ffi::PyByteArray_CheckExact(obj) != 0
    }
}

/// Whether `object` exports buffers at all.
pub(crate) fn has_buffer(object: &Bound<'_, PyAny>) -> bool {
    // SAFETY: `object` is alive and the thread attached; the check has no side effects.
    unsafe { ffi::PyObject_CheckBuffer(object.as_ptr()) != 0 }
}

/// Imports a PEP 3118 exporter with its own format and layout, zero-copy.
///
/// An exporter that fails to export (NumPy raises `ValueError` for dtypes it
/// cannot describe) is reported as a `BufferError`, so discovery moves on to
/// the next protocol, as NumPy's own does.
#[inline(always)]
pub(crate) fn import(object: &Bound<'_, PyAny>) -> PyResult<Tensor> {
    let owner = acquire(object).map_err(|err| {
        let py = object.py();
        if err.is_instance_of::<pyo3::exceptions::PyBufferError>(py) {
            err
        } else {
            let refused: PyErr =
                Error::buffer(Cause::NoProtocol, format!("the exporter refused: {err}")).into();
            refused.set_cause(py, Some(err));
            refused
        }
    })?;
    let descriptor = core::describe(&fields(owner.raw()))?;
    Ok(assemble(descriptor, owner))
}

/// `from_buffer`: reinterprets the bytes of a C-contiguous buffer as
/// `dtype` with `shape` (one `-1` may be inferred), starting `offset` bytes in.
pub(crate) fn from_buffer(
    object: &Bound<'_, PyAny>,
    dtype: Option<DType>,
    shape: Option<&[i64]>,
    offset: usize,
) -> PyResult<Tensor> {
    let owner = acquire(object)?;
    let view = fields(owner.raw());
    let described = core::describe(&view)?;
    if dtype.is_none() && shape.is_none() && offset == 0 {
        return Ok(assemble(described, owner));
    }
    let (_, len, _) = core::lent_bytes(&view)?;
    let descriptor = core::reinterpret(&described, len, dtype, shape, offset)?;
    Ok(assemble(descriptor, owner))
}

/// Fills a consumer's `Py_buffer` from `tensor`, honouring every request flag.
///
/// # Safety
///
/// `view` must point to a writable `Py_buffer`, and `owner` must be the
/// Python object that holds `tensor` immutably for at least as long as the
/// consumer keeps the view (its reference is stored in `view.obj`).
pub(crate) unsafe fn fill_view(
    tensor: &Tensor,
    owner: Bound<'_, PyAny>,
    view: *mut ffi::Py_buffer,
    flags: c_int,
) -> Result<()> {
    if view.is_null() {
        return Err(Error::buffer(Cause::Argument, "NULL Py_buffer"));
    }
    // PEP 3118: a refusing exporter leaves `view.obj` NULL (the consumer may
    // have passed garbage there), so clear it before any check can fail.
    // SAFETY: the caller guarantees `view` is writable.
    unsafe { (*view).obj = std::ptr::null_mut() };
    tensor.device().ensure_cpu("the buffer protocol")?;
    let layout = tensor.layout();
    let wants = |flag: c_int| flags & flag == flag;
    if wants(ffi::PyBUF_WRITABLE) && tensor.readonly() {
        return Err(Error::buffer(
            Cause::Readonly,
            "the tensor is readonly; a writable buffer was requested",
        ));
    }
    if wants(ffi::PyBUF_C_CONTIGUOUS) && !layout.is_c_contiguous() {
        return Err(Error::buffer(
            Cause::Layout,
            "the tensor is not C-contiguous",
        ));
    }
    if wants(ffi::PyBUF_F_CONTIGUOUS) && !layout.is_f_contiguous() {
        return Err(Error::buffer(
            Cause::Layout,
            "the tensor is not Fortran-contiguous",
        ));
    }
    if wants(ffi::PyBUF_ANY_CONTIGUOUS) && !(layout.is_c_contiguous() || layout.is_f_contiguous()) {
        return Err(Error::buffer(Cause::Layout, "the tensor is not contiguous"));
    }
    if !wants(ffi::PyBUF_STRIDES) && !layout.is_c_contiguous() {
        return Err(Error::buffer(
            Cause::Layout,
            "the tensor is not C-contiguous, so the consumer must accept strides (PyBUF_STRIDES)",
        ));
    }
    let format = if wants(ffi::PyBUF_FORMAT) {
        // No format for a dtype PEP 3118 cannot name: `"2x"` (NumPy's own
        // for `V2`) reads as a record of padding, so NumPy's coercion would
        // give `[() ()]`; refused, NumPy moves on to the interfaces and then
        // `__array__`. An unformatted request still gets the bytes.
        let dtype = tensor.dtype();
        pep3118::format_of(dtype)
            .ok_or_else(|| {
                Error::buffer(
                    Cause::DType,
                    format!(
                        "dtype {dtype} has no PEP 3118 format (a format would read as padding, \
                         not values): np.asarray(t) gives its values, t.view(\"uint8\") its bytes"
                    ),
                )
            })?
            .as_ptr()
            .cast_mut()
    } else {
        std::ptr::null_mut()
    };
    let ndim = layout.ndim();
    let nd = wants(ffi::PyBUF_ND) && ndim > 0;
    // SAFETY: the caller guarantees `view` is writable; shape and strides point
    // into the tensor's immutable layout arrays (usize and isize have the size
    // and alignment of Py_ssize_t, and every extent fits in isize by
    // validation), which live as long as `owner`, stored in `view.obj`.
    unsafe {
        (*view).buf = tensor.data_ptr().cast();
        (*view).len = layout.nbytes() as isize;
        (*view).itemsize = layout.itemsize() as isize;
        (*view).readonly = c_int::from(tensor.readonly());
        (*view).format = format;
        (*view).ndim = if wants(ffi::PyBUF_ND) {
            ndim as c_int
        } else {
            0
        };
        (*view).shape = if nd {
            layout.shape().as_ptr().cast::<isize>().cast_mut()
        } else {
            std::ptr::null_mut()
        };
        (*view).strides = if nd && wants(ffi::PyBUF_STRIDES) {
            layout.strides().as_ptr().cast_mut()
        } else {
            std::ptr::null_mut()
        };
        (*view).suboffsets = std::ptr::null_mut();
        (*view).internal = std::ptr::null_mut();
        (*view).obj = owner.into_ptr();
    }
    Ok(())
}
