//! A tensor as a real `numpy.ndarray`, through NumPy's C API.
//!
//! `np.from_dlpack(t)` would do the same job through a capsule, a version
//! negotiation and NumPy's own DLPack import (about 570 ns for a 16-element
//! array here). NumPy's C API makes the array directly over the tensor's
//! memory, as rust-numpy's `into_pyarray` does: `PyArray_NewFromDescr` with
//! the data pointer, shape and byte strides, then `PyArray_SetBaseObject`
//! with an object that holds the tensor's owner (`base.rs`). The owner is
//! released exactly once, when NumPy frees the last array over the memory
//! (the base object's destructor), on whatever thread that is.
//!
//! The API table is the `_ARRAY_API` capsule of NumPy's multiarray module
//! (`numpy._core._multiarray_umath` in NumPy 2, `numpy.core.multiarray` in
//! 1.x), read once per process; its slots used here (2, 45, 94, 282) are
//! NumPy's stable C ABI since 1.7. NumPy is imported on first use, so it
//! stays an optional runtime dependency: without it the call raises
//! `ImportError` naming what was asked.

use std::ffi::{c_int, c_long, c_void};

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use super::base::owner_object;
use crate::dtype::DType;
use crate::error::{Cause, Error};
use crate::python::errors::framework_missing;
use crate::tensor::Tensor;

type DescrFromType = unsafe extern "C" fn(c_int) -> *mut ffi::PyObject;
type NewFromDescr = unsafe extern "C" fn(
    *mut ffi::PyTypeObject,
    *mut ffi::PyObject,
    c_int,
    *mut isize,
    *mut isize,
    *mut c_void,
    c_int,
    *mut ffi::PyObject,
) -> *mut ffi::PyObject;
type SetBaseObject = unsafe extern "C" fn(*mut ffi::PyObject, *mut ffi::PyObject) -> c_int;

/// The four slots of NumPy's C API this module calls.
struct Api {
    array_type: *mut ffi::PyTypeObject,
    descr_from_type: DescrFromType,
    new_from_descr: NewFromDescr,
    set_base_object: SetBaseObject,
}

// SAFETY: the pointers are process-lifetime statics of NumPy's extension
// module (kept loaded by the capsule reference this module leaks), used only
// while attached to the interpreter.
unsafe impl Send for Api {}
// SAFETY: as above; the table is never written.
unsafe impl Sync for Api {}

const NPY_ARRAY_WRITEABLE: c_int = 0x0400;

fn api(py: Python<'_>) -> PyResult<&'static Api> {
    static API: PyOnceLock<Api> = PyOnceLock::new();
    API.get_or_try_init(py, || {
        let module = py
            .import("numpy._core._multiarray_umath")
            .or_else(|_| py.import("numpy.core.multiarray"))
            .map_err(|err| framework_missing(py, "numpy.ndarray", "NumPy", err))?;
        let capsule = module.getattr("_ARRAY_API")?;
        // SAFETY: `_ARRAY_API` is a capsule with a NULL name whose pointer is
        // NumPy's `void *PyArray_API[]`; a failed read sets an exception.
        let table = unsafe { ffi::PyCapsule_GetPointer(capsule.as_ptr(), std::ptr::null()) }
            .cast::<*const c_void>();
        if table.is_null() {
            return Err(PyErr::fetch(py));
        }
        // The table lives as long as the capsule; keep the capsule for ever.
        std::mem::forget(capsule);
        // SAFETY: slots 2, 45, 94 and 282 hold `PyArray_Type` and the three
        // functions with the signatures above in every NumPy since 1.7.
        unsafe {
            Ok(Api {
                array_type: (*table.add(2)).cast_mut().cast(),
                descr_from_type: std::mem::transmute::<*const c_void, DescrFromType>(
                    *table.add(45),
                ),
                new_from_descr: std::mem::transmute::<*const c_void, NewFromDescr>(*table.add(94)),
                set_base_object: std::mem::transmute::<*const c_void, SetBaseObject>(
                    *table.add(282),
                ),
            })
        }
    })
}

/// NumPy's type number for a dtype it has (`NPY_TYPES`), or `None`.
fn type_num(dtype: DType) -> Option<c_int> {
    // `int64` is `long` where `long` has 64 bits, else `long long`.
    let long_is_64 = size_of::<c_long>() == 8;
    Some(match dtype {
        DType::BOOL => 0,
        DType::INT8 => 1,
        DType::UINT8 => 2,
        DType::INT16 => 3,
        DType::UINT16 => 4,
        DType::INT32 => 5,
        DType::UINT32 => 6,
        DType::INT64 if long_is_64 => 7,
        DType::UINT64 if long_is_64 => 8,
        DType::INT64 => 9,
        DType::UINT64 => 10,
        DType::FLOAT32 => 11,
        DType::FLOAT64 => 12,
        DType::COMPLEX64 => 14,
        DType::COMPLEX128 => 15,
        DType::FLOAT16 => 23,
        _ => return None,
    })
}

/// `tensor` as a `numpy.ndarray` over the same memory (read-only when the
/// tensor is). The array is the owner's last holder once `tensor` is gone.
pub(crate) fn to_ndarray<'py>(py: Python<'py>, tensor: Tensor) -> PyResult<Bound<'py, PyAny>> {
    let dtype = tensor.dtype();
    let Some(type_num) = type_num(dtype) else {
        return Err(Error::type_error(
            Cause::DType,
            format!(
                "numpy.ndarray has no dtype for {dtype}; return it as a torch.Tensor, \
                 a jax.Array or a dlbridge.Tensor instead"
            ),
        )
        .into());
    };
    tensor.device().ensure_cpu("a numpy.ndarray")?;
    let api = api(py)?;
    // At most `MAX_NDIM` (64) axes: the cast is exact.
    let ndim = tensor.ndim() as c_int;
    let flags = if tensor.readonly() {
        0
    } else {
        NPY_ARRAY_WRITEABLE
    };
    // SAFETY: a builtin type number: NumPy returns its (immortal) descriptor
    // with a new reference, which `new_from_descr` steals.
    let descr = unsafe { (api.descr_from_type)(type_num) };
    if descr.is_null() {
        return Err(PyErr::fetch(py));
    }
    // Strides that are exactly C order's are left for NumPy to fill in:
    // it then knows the array's contiguity as it writes them, instead of
    // working it out again from given strides (the same strides either way).
    let strides = if has_c_strides(tensor.shape(), tensor.strides(), tensor.itemsize()) {
        std::ptr::null_mut()
    } else {
        tensor.strides().as_ptr().cast_mut()
    };
    // SAFETY: shape and strides are `ndim` validated values (extents fit in
    // `isize`, so `usize` and `isize` agree bit for bit); NumPy copies them
    // (or, NULL, writes C strides, equal to the tensor's). The data pointer
    // is valid over the layout's span while the owner lives, which the base
    // object below guarantees.
    let array = unsafe {
        (api.new_from_descr)(
            api.array_type,
            descr,
            ndim,
            tensor.shape().as_ptr().cast_mut().cast(),
            strides,
            tensor.data_ptr().cast(),
            flags,
            std::ptr::null_mut(),
        )
    };
    if array.is_null() {
        return Err(PyErr::fetch(py));
    }
    // SAFETY: a new reference to the array just made.
    let array = unsafe { Bound::from_owned_ptr(py, array) };
    let base = owner_object(py, tensor.into_owner())?;
    // SAFETY: `array` is a fresh ndarray without a base; the call steals
    // the reference to `base` (releasing it itself on failure).
    if unsafe { (api.set_base_object)(array.as_ptr(), base) } != 0 {
        return Err(PyErr::fetch(py));
    }
    Ok(array)
}

/// Whether `strides` are exactly the C-order strides NumPy writes for
/// `shape` (each the product of the later extents, times the itemsize, on
/// every axis: length-1 axes included, and empty arrays too).
fn has_c_strides(shape: &[usize], strides: &[isize], itemsize: usize) -> bool {
    // NumPy's `_array_fill_strides` steps by `max(extent, 1)`.
    let mut step = itemsize as isize;
    for (&extent, &stride) in shape.iter().zip(strides).rev() {
        if stride != step {
            return false;
        }
        // A validated layout's byte size fits in isize; an empty one's
        // product may not, so it saturates (and then never matches).
        step = step.saturating_mul(extent.max(1) as isize);
    }
    true
}
