//! Buffer protocol spoke (PEP 3118): import any exporter, export N-d views.
//!
//! Import acquires a `Py_buffer` with strides and format (readonly allowed,
//! suboffsets not asked for), wraps it in its RAII owner at once, and only
//! then validates it: format (our own parser), itemsize, ndim, shape and
//! strides, and that the bytes the layout touches lie inside `len`.
//!
//! Export fills a consumer's `Py_buffer` straight from the tensor's validated
//! layout: `shape` and `strides` point into the tensor's own (immutable)
//! arrays, and `view.obj` holds the Python `Tensor`, so nothing is allocated
//! per view and nothing needs freeing in `__releasebuffer__`.

use std::borrow::Cow;
use std::ffi::{CStr, c_int};

use pyo3::ffi;
use pyo3::prelude::*;

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::layout::{Layout, MAX_NDIM};
use crate::owner::Owner;
use crate::protocol::pep3118;
use crate::python::owner::PyBufferView;
use crate::tensor::{Source, Tensor, check_data};

/// What the buffer describes, read out of an acquired `Py_buffer`.
struct Described {
    data: *mut u8,
    len: usize,
    dtype: DType,
    layout: Layout,
    readonly: bool,
}

/// The bytes an acquired `Py_buffer` lends: `(buf, len, readonly)`.
///
/// The one check of a view's memory that every buffer import makes (the
/// direct import, `from_buffer`, and an `__array_interface__` whose `data`
/// is a buffer exporter): no suboffsets (PIL-style indirect arrays, whose
/// "data" are row pointers), a non-negative `len`, and a non-NULL `buf`
/// when `len` says there are bytes.
pub(crate) fn lent_bytes(view: &ffi::Py_buffer) -> Result<(*mut u8, usize, bool)> {
    if !view.suboffsets.is_null() {
        return Err(Error::buffer(
            "buffers with suboffsets (PIL-style indirect arrays) are not supported",
        ));
    }
    let len = usize::try_from(view.len)
        .map_err(|_| Error::value(format!("buffer has a negative len {}", view.len)))?;
    let buf = view.buf.cast::<u8>();
    if buf.is_null() && len > 0 {
        return Err(Error::buffer(format!(
            "buffer has a NULL data pointer for len {len}"
        )));
    }
    Ok((buf, len, view.readonly != 0))
}

fn describe(view: &ffi::Py_buffer) -> Result<Described> {
    let (data, len, readonly) = lent_bytes(view)?;
    let format = if view.format.is_null() {
        "B"
    } else {
        // SAFETY: a non-NULL format is a NUL-terminated string owned by the
        // exporter for the life of the view.
        unsafe { CStr::from_ptr(view.format) }
            .to_str()
            .map_err(|_| Error::buffer("buffer format is not ASCII"))?
    };
    let dtype = pep3118::parse_format(format)?;
    let itemsize = usize::try_from(view.itemsize).unwrap_or(0);
    if itemsize != dtype.itemsize() {
        return Err(Error::buffer(format!(
            "buffer itemsize {} does not match its format {format:?} ({} bytes)",
            view.itemsize,
            dtype.itemsize()
        )));
    }
    let ndim = usize::try_from(view.ndim)
        .map_err(|_| Error::value(format!("buffer has a negative ndim {}", view.ndim)))?;
    if ndim > MAX_NDIM {
        return Err(Error::value(format!(
            "buffer has ndim {ndim}, more than the maximum of {MAX_NDIM}"
        )));
    }
    let layout = if view.shape.is_null() && ndim == 0 {
        // PEP 3118: ndim 0 (shape NULL) is a scalar, one item (NumPy 0-d
        // arrays, ctypes simple types, our own 0-d export).
        Layout::contiguous(&[], itemsize)?
    } else if view.shape.is_null() {
        // No shape: the whole buffer as one run of items.
        if len % itemsize != 0 {
            return Err(Error::buffer(format!(
                "buffer len {len} is not a multiple of its itemsize {itemsize}"
            )));
        }
        Layout::contiguous(&[len / itemsize], itemsize)?
    } else {
        // SAFETY: a non-NULL shape has `ndim` entries owned by the exporter.
        let shape = unsafe { std::slice::from_raw_parts(view.shape, ndim) };
        let strides = (!view.strides.is_null()).then(|| {
            // SAFETY: a non-NULL strides array has `ndim` entries, like shape.
            as_i64(unsafe { std::slice::from_raw_parts(view.strides, ndim) })
        });
        Layout::from_signed(&as_i64(shape), strides.as_deref(), itemsize)?
    };
    // PEP 3118's `len` is the product of the shape times the itemsize; a
    // contiguous layout must also fit in it byte for byte.
    if layout.nbytes() > len {
        return Err(Error::buffer(format!(
            "buffer shape {:?} needs {} bytes but its len is {len}",
            layout.shape(),
            layout.nbytes()
        )));
    }
    if layout.is_c_contiguous() || layout.is_f_contiguous() {
        layout.check_within(0, len)?;
    }
    check_data("buffer", data, data, &layout, true)?;
    Ok(Described {
        data,
        len,
        dtype,
        layout,
        readonly,
    })
}

/// `Py_ssize_t` values as `i64`, borrowed where the two are the same type.
fn as_i64(values: &[isize]) -> Cow<'_, [i64]> {
    if size_of::<isize>() == size_of::<i64>() && align_of::<isize>() == align_of::<i64>() {
        // SAFETY: same size and alignment (checked above), and every bit
        // pattern of either is a valid value of the other.
        Cow::Borrowed(unsafe { std::slice::from_raw_parts(values.as_ptr().cast(), values.len()) })
    } else {
        Cow::Owned(values.iter().map(|&v| v as i64).collect())
    }
}

fn acquire(object: &Bound<'_, PyAny>) -> PyResult<PyBufferView> {
    PyBufferView::acquire(object, ffi::PyBUF_RECORDS_RO)
}

fn assemble(parts: Described, owner: PyBufferView) -> Tensor {
    // SAFETY: the exporter keeps `buf` valid over the described layout until
    // the view is released, and the view is released only when the owner drops.
    unsafe {
        Tensor::from_parts(
            parts.data,
            parts.layout,
            parts.dtype,
            crate::Device::CPU,
            parts.readonly,
            Source::Buffer,
            Owner::PyBuffer(owner),
        )
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
pub(crate) fn import(object: &Bound<'_, PyAny>) -> PyResult<Tensor> {
    let owner = acquire(object).map_err(|err| {
        let py = object.py();
        if err.is_instance_of::<pyo3::exceptions::PyBufferError>(py) {
            err
        } else {
            let refused =
                pyo3::exceptions::PyBufferError::new_err(format!("the exporter refused: {err}"));
            refused.set_cause(py, Some(err));
            refused
        }
    })?;
    let parts = describe(owner.raw())?;
    Ok(assemble(parts, owner))
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
    let parts = describe(owner.raw())?;
    if dtype.is_none() && shape.is_none() && offset == 0 {
        return Ok(assemble(parts, owner));
    }
    if !parts.layout.is_c_contiguous() {
        return Err(Error::value(format!(
            "from_buffer reinterprets raw bytes and needs a C-contiguous buffer; \
             this one has shape {:?} and strides {:?}",
            parts.layout.shape(),
            parts.layout.strides()
        ))
        .into());
    }
    let dtype = dtype.unwrap_or(parts.dtype);
    let itemsize = dtype.itemsize();
    let len = parts.layout.nbytes().min(parts.len);
    if offset > len {
        return Err(Error::value(format!(
            "offset {offset} is beyond the buffer's {len} bytes"
        ))
        .into());
    }
    let available = len - offset;
    let shape = resolve_shape(shape, available, itemsize)?;
    let layout = Layout::from_signed(&shape, None, itemsize)?;
    if layout.nbytes() != available {
        return Err(Error::value(format!(
            "shape {shape:?} of {dtype} needs {} bytes, but the buffer has {available} bytes after offset {offset}",
            layout.nbytes()
        ))
        .into());
    }
    let data = parts.data.wrapping_add(offset);
    Ok(assemble(
        Described {
            data,
            dtype,
            layout,
            ..parts
        },
        owner,
    ))
}

fn resolve_shape(shape: Option<&[i64]>, available: usize, itemsize: usize) -> Result<Vec<i64>> {
    let divide = |known: usize, what: &str| {
        let bytes = known.checked_mul(itemsize).filter(|&b| b > 0);
        match bytes {
            Some(bytes) if available % bytes == 0 => Ok((available / bytes) as i64),
            _ => Err(Error::value(format!(
                "{available} bytes do not divide into {what} of {itemsize}-byte items"
            ))),
        }
    };
    let Some(shape) = shape else {
        return Ok(vec![divide(1, "whole items")?]);
    };
    let inferred: Vec<usize> = (0..shape.len()).filter(|&i| shape[i] == -1).collect();
    match inferred.as_slice() {
        [] => Ok(shape.to_vec()),
        [axis] => {
            let known = shape
                .iter()
                .filter(|&&n| n != -1)
                .try_fold(1usize, |acc, &n| {
                    usize::try_from(n).ok().and_then(|n| acc.checked_mul(n))
                })
                .ok_or_else(|| {
                    Error::value(format!(
                        "invalid shape {shape:?}: extents must be non-negative (one may be -1, \
                         to be inferred) and their product must fit in usize"
                    ))
                })?;
            let mut resolved = shape.to_vec();
            resolved[*axis] = divide(known, &format!("shape {shape:?}"))?;
            Ok(resolved)
        }
        _ => Err(Error::value(format!(
            "shape {shape:?} may infer (-1) at most one axis"
        ))),
    }
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
        return Err(Error::buffer("NULL Py_buffer"));
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
            "the tensor is readonly; a writable buffer was requested",
        ));
    }
    if wants(ffi::PyBUF_C_CONTIGUOUS) && !layout.is_c_contiguous() {
        return Err(Error::buffer("the tensor is not C-contiguous"));
    }
    if wants(ffi::PyBUF_F_CONTIGUOUS) && !layout.is_f_contiguous() {
        return Err(Error::buffer("the tensor is not Fortran-contiguous"));
    }
    if wants(ffi::PyBUF_ANY_CONTIGUOUS) && !(layout.is_c_contiguous() || layout.is_f_contiguous()) {
        return Err(Error::buffer("the tensor is not contiguous"));
    }
    if !wants(ffi::PyBUF_STRIDES) && !layout.is_c_contiguous() {
        return Err(Error::buffer(
            "the tensor is not C-contiguous, so the consumer must accept strides (PyBUF_STRIDES)",
        ));
    }
    let format = if wants(ffi::PyBUF_FORMAT) {
        pep3118::format_of(tensor.dtype())
            .or_else(|| pep3118::opaque_format(tensor.itemsize()))
            .ok_or_else(|| Error::buffer(format!("dtype {} has no buffer format", tensor.dtype())))?
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
