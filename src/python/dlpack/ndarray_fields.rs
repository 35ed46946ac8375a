//! An exact `numpy.ndarray` read straight from its object struct.
//!
//! `dlbridge.asarray(a)` on an ndarray would otherwise ask `a.__dlpack__()`
//! for a capsule, which NumPy fills from the very fields read here, and then
//! consume it: an argument parse, a `PyMem_Malloc`, a capsule, a name swap
//! and a deleter, about 1,500 instructions for nothing the fields do not
//! already say. This module takes the same answer without the round trip.
//!
//! # What it promises
//!
//! The tensor is the one the DLPack import of `a` gives: the same pointer,
//! shape, byte strides, dtype and readonly flag. [`import`] gives it an
//! owner that holds a strong reference to `a` (as NumPy's own DLPack
//! deleter does); [`read_lent`] gives a borrowed argument the bare
//! descriptor, the argument holding `a` itself for the call. Two things
//! differ, both on purpose: the tensor's `source` is `"ndarray"`
//! (`Source::Ndarray`) where the DLPack import says `"dlpack"`, and a
//! refusal by the shared pointer checks names `numpy.ndarray`, since no
//! DLPack object was made. Whether the path was taken is counted
//! (`fast_path::NDARRAY_FIELDS`, `LENT_ARGUMENTS`), which the tests read:
//! a path silently turned off fails them.
//!
//! Only arrays whose export NumPy would make without question take this
//! path: a builtin numeric dtype in native byte order, strides that are
//! whole multiples of the itemsize, and memory that did not itself come from
//! a DLPack capsule (which may name another device). Everything else, and
//! every ndarray subclass, returns `None` and goes through `__dlpack__`, so
//! refusals and their messages stay NumPy's. The pointer checks of the
//! DLPack import (NULL data, a span that wraps around) apply here too.
//!
//! The path is taken with NumPy 2.4 or later only. Older NumPy exported
//! NULL strides for C-contiguous arrays (so size-1 axes came back with
//! compact strides, not the array's own) and, in 1.x, refused readonly
//! arrays to DLPack altogether; reading the fields would differ there.
//!
//! # Why reading the struct is sound
//!
//! `PyArrayObject_fields` and the head of `PyArray_Descr` up to `type_num`
//! are NumPy's public C ABI: unchanged from NumPy 1.x to 2.x (NumPy 2 moved
//! only the descriptor fields *after* `type_num`). The type is recognised by
//! pointer identity with `numpy.ndarray`, resolved once from the loaded
//! `numpy` module and kept alive for the life of the process; it must be a
//! static type (a Python class named "numpy.ndarray" is a heap type) with
//! instances at least as large as the fields read, so no other object is
//! ever read through these layouts.

use std::ffi::{CStr, c_char, c_int, c_long};
use std::sync::atomic::{AtomicPtr, Ordering};

use pyo3::ffi;
use pyo3::prelude::*;

use crate::descriptor::Source;
use crate::descriptor::{Claims, Descriptor};
use crate::device::Device;
use crate::dtype::DType;
use crate::layout::{Layout, MAX_NDIM};
use crate::owner::Holder;
use crate::python::owner::PyOwner;
use crate::tensor::Tensor;

/// `PyArrayObject_fields` (numpy/ndarraytypes.h), up to `flags`.
#[repr(C)]
struct ArrayFields {
    ob_base: ffi::PyObject,
    data: *mut c_char,
    nd: c_int,
    dimensions: *const isize,
    strides: *const isize,
    base: *mut ffi::PyObject,
    descr: *const DescrHead,
    flags: c_int,
}

/// The head of `PyArray_Descr`, identical in NumPy 1.x and 2.x.
#[repr(C)]
struct DescrHead {
    ob_base: ffi::PyObject,
    typeobj: *mut ffi::PyTypeObject,
    kind: c_char,
    type_: c_char,
    byteorder: c_char,
    flags: c_char,
    type_num: c_int,
}

const NPY_ARRAY_WRITEABLE: c_int = 0x0400;

/// `numpy.ndarray`, once seen; a strong reference is held forever.
static NDARRAY: AtomicPtr<ffi::PyTypeObject> = AtomicPtr::new(std::ptr::null_mut());

/// Stands in `NDARRAY` for "NumPy is too old for this path": an address no
/// type can have, so the identity check always fails, without a retry.
static TOO_OLD: u8 = 0;

/// Whether `object`'s type is exactly `numpy.ndarray` (and NumPy is 2.4 or
/// later, whose `__dlpack__` this path reproduces; see the module docs).
fn is_exact_ndarray(object: &Bound<'_, PyAny>) -> bool {
    // SAFETY: `object` is a live reference; its type pointer is valid.
    let ty = unsafe { ffi::Py_TYPE(object.as_ptr()) };
    let known = NDARRAY.load(Ordering::Acquire);
    if !known.is_null() {
        return ty == known;
    }
    // Not yet resolved. Only a static (non-heap) type named "numpy.ndarray"
    // whose instances are at least as large as the fields read is worth
    // resolving for: a Python class can take the name but is always a heap
    // type. It must then be the loaded `numpy` module's `ndarray`.
    // SAFETY: `ty` is a live type; these fields are plain reads.
    let (name, flags, basicsize) = unsafe {
        (
            CStr::from_ptr((*ty).tp_name),
            (*ty).tp_flags,
            (*ty).tp_basicsize,
        )
    };
    if name != c"numpy.ndarray"
        || flags & ffi::Py_TPFLAGS_HEAPTYPE != 0
        || usize::try_from(basicsize).unwrap_or(0) < size_of::<ArrayFields>()
    {
        return false;
    }
    let py = object.py();
    let Ok(Some(numpy)) = py
        .import("sys")
        .and_then(|sys| sys.getattr("modules"))
        .and_then(|modules| modules.get_item("numpy").map(Some).or(Ok(None)))
    else {
        return false;
    };
    let Ok(ndarray) = numpy.getattr("ndarray") else {
        return false;
    };
    if ndarray.as_ptr().cast::<ffi::PyTypeObject>() != ty {
        return false;
    }
    if !numpy_at_least(&numpy, (2, 4)) {
        NDARRAY.store(
            std::ptr::from_ref(&TOO_OLD).cast_mut().cast(),
            Ordering::Release,
        );
        return false;
    }
    // Keep the type alive for as long as the address is remembered.
    std::mem::forget(ndarray.unbind());
    NDARRAY.store(ty, Ordering::Release);
    true
}

/// Whether `numpy.__version__` is at least `(major, minor)`.
fn numpy_at_least(numpy: &Bound<'_, PyAny>, wanted: (u32, u32)) -> bool {
    let Ok(version) = numpy
        .getattr("__version__")
        .and_then(|v| v.extract::<String>())
    else {
        return false;
    };
    let mut parts = version.split('.').map(|part| part.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) >= wanted,
        _ => false,
    }
}

/// The dtype of a builtin NumPy type number that NumPy exports through
/// DLPack unconditionally (`None`: leave it to `__dlpack__`).
fn dtype_of(type_num: c_int) -> Option<DType> {
    // C `int`/`long` widths vary by platform: the int/uint code at the
    // width the compiler says.
    let int = |bytes: usize, signed: bool| DType::int(signed, bytes);
    const INT: usize = size_of::<c_int>();
    const LONG: usize = size_of::<c_long>();
    match type_num {
        0 => Some(DType::BOOL),
        1 => Some(DType::INT8),
        2 => Some(DType::UINT8),
        3 => Some(DType::INT16),
        4 => Some(DType::UINT16),
        5 => int(INT, true),
        6 => int(INT, false),
        7 => int(LONG, true),
        8 => int(LONG, false),
        9 => Some(DType::INT64),
        10 => Some(DType::UINT64),
        11 => Some(DType::FLOAT32),
        12 => Some(DType::FLOAT64),
        14 => Some(DType::COMPLEX64),
        15 => Some(DType::COMPLEX128),
        23 => Some(DType::FLOAT16),
        _ => None,
    }
}

/// Whether NumPy's descriptor byte order is the machine's.
fn native_byteorder(byteorder: c_char) -> bool {
    let native = crate::dtype::NATIVE_BYTE_ORDER as u8;
    matches!(byteorder as u8, b'=' | b'|') || byteorder as u8 == native
}

/// Imports an exact `numpy.ndarray` as its DLPack export would, or `None`
/// when the array must go through `__dlpack__` (see the module docs).
#[inline(always)]
pub(crate) fn import(object: &Bound<'_, PyAny>) -> PyResult<Option<Tensor>> {
    let Some(descriptor) = read(object)? else {
        return Ok(None);
    };
    let owner = PyOwner::new(object.clone().unbind());
    crate::python::fast_path::NDARRAY_FIELDS.hit();
    // SAFETY: NumPy guarantees the array's memory covers its shape and
    // strides for as long as the array lives, which the owner ensures; it
    // is writable unless the WRITEABLE flag is clear.
    Ok(Some(unsafe {
        Tensor::from_held(descriptor, Holder::new(owner))
    }))
}

/// The checked descriptor of an exact `numpy.ndarray`, for an argument that
/// borrows it for the length of a call and keeps no owner at all (counted as
/// a lent argument); `None` when it must be imported another way.
#[inline(always)]
pub(crate) fn read_lent(object: &Bound<'_, PyAny>) -> PyResult<Option<Descriptor>> {
    let descriptor = read(object)?;
    if descriptor.is_some() {
        crate::python::fast_path::LENT_ARGUMENTS.hit();
    }
    Ok(descriptor)
}

/// The checked descriptor of an exact `numpy.ndarray`'s fields, or `None`
/// when the array must go through `__dlpack__`.
#[inline(always)]
fn read(object: &Bound<'_, PyAny>) -> PyResult<Option<Descriptor>> {
    if !is_exact_ndarray(object) {
        return Ok(None);
    }
    // SAFETY: the object's type is exactly numpy.ndarray, whose instances
    // start with `PyArrayObject_fields`; the thread is attached, so the
    // fields are not being torn down while read.
    let fields = unsafe { &*object.as_ptr().cast::<ArrayFields>() };
    // SAFETY: every ndarray has a live descriptor starting with this head.
    let descr = unsafe { &*fields.descr };
    let Some(dtype) = dtype_of(descr.type_num) else {
        return Ok(None);
    };
    if !native_byteorder(descr.byteorder) || from_capsule(fields.base) {
        return Ok(None);
    }
    let ndim = usize::try_from(fields.nd).unwrap_or(usize::MAX);
    if ndim > MAX_NDIM {
        return Ok(None);
    }
    let (shape, strides): (&[isize], &[isize]) = if ndim == 0 {
        (&[], &[])
    } else {
        // SAFETY: an ndarray with `nd > 0` points `dimensions` and `strides`
        // at `nd` values each, alive as long as the array.
        unsafe {
            (
                std::slice::from_raw_parts(fields.dimensions, ndim),
                std::slice::from_raw_parts(fields.strides, ndim),
            )
        }
    };
    let itemsize = dtype.itemsize() as isize;
    if strides.iter().any(|stride| stride % itemsize != 0) {
        return Ok(None);
    }
    // SAFETY: an ndarray's extents are never negative, and `isize` and
    // `usize` share size and alignment, so the values read the same.
    let extents = unsafe { std::slice::from_raw_parts(shape.as_ptr().cast::<usize>(), ndim) };
    let layout = Layout::new(extents, Some(strides), dtype.itemsize())?;
    // The same tensor and checks as the DLPack import of this array
    // (`test_ndarray_fields.py` compares them case by case), named for what
    // was read: NumPy's own struct, no DLPack object.
    let descriptor = Descriptor::new(Claims {
        what: "numpy.ndarray",
        base: fields.data.cast::<u8>(),
        offset: 0,
        layout,
        dtype,
        device: Device::CPU,
        readonly: fields.flags & NPY_ARRAY_WRITEABLE == 0,
        source: Source::Ndarray,
        len: None,
    })?;
    Ok(Some(descriptor))
}

/// Whether the array's memory came from a DLPack capsule (NumPy keeps the
/// capsule as the last base), whose device NumPy would report instead of CPU.
fn from_capsule(mut base: *mut ffi::PyObject) -> bool {
    let ndarray = NDARRAY.load(Ordering::Acquire);
    // SAFETY: `base` is NULL or a live object owned by the array being
    // read, as is every base along the chain.
    unsafe {
        while !base.is_null() && ffi::PyObject_TypeCheck(base, ndarray) != 0 {
            base = (*base.cast::<ArrayFields>()).base;
        }
        !base.is_null() && ffi::PyCapsule_CheckExact(base) != 0
    }
}
