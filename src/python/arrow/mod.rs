//! `Tensor.__arrow_c_array__`: the Arrow PyCapsule interface, export only,
//! zero-copy, so `pa.array(t)` and `pl.Series(t)` take a tensor (pyarrow
//! never calls `__array__`).
//!
//! The pair returned is an `"arrow_schema"` capsule and an `"arrow_array"`
//! capsule around the C Data Interface structs of `ffi`. A consumer moves a
//! struct out (copies it and sets the capsule's `release` to NULL) and calls
//! `release` when its array dies; a capsule never consumed releases its
//! struct in its destructor. Either way each level's clone of the tensor is
//! dropped once, and the tensor's owner is released once, by the last one.
//!
//! What exports: a C-contiguous CPU tensor of at least one axis whose dtype
//! Arrow stores as the tensor does (the ints, float16 `e`, float32, float64).
//! 1-D is a primitive array; N-D is nested FixedSizeLists (`+w:<extent>`)
//! over the primitive array of every element. Everything else is refused,
//! never copied: bool (Arrow's booleans are bits), bfloat16, float8,
//! complex and opaque bytes, non-CPU memory, strided layouts, 0-d tensors,
//! elements not aligned to their size.
//!
//! `requested_schema` is honoured whole or refused with `BufferError`
//! (`crate::protocol::arrow::export`): the formats, no dictionary, no
//! extension type but `arrow.fixed_shape_tensor` (which N-d tensors then
//! export as, zero-copy); names, flags and other metadata are copied. The
//! spec lets a callee that cannot provide the request answer with its own
//! schema instead, but pyarrow 26's `pa.array` then fails to cast it
//! (`AttributeError` on `array.cast`, a bug of its own), and a zero-copy
//! export cannot cast; the message names `pa.array(t).cast(type)`.
//!
//! Import (`import`): `__arrow_c_array__` and one-chunk
//! `__arrow_c_stream__` producers, read-only and zero-copy.
//!
//! Not implemented: `__arrow_c_schema__` (neither pyarrow's arrays nor
//! polars' Series offer it on an array, and the type travels in the pair)
//! and `__arrow_c_device_array__` (the CPU protocol is what every consumer
//! here asks for; a non-CPU tensor is refused).

mod import;

pub(crate) use import::{speaks_arrow, try_import};

use std::ffi::CStr;

use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::error::{Cause, Error};
use crate::protocol::arrow::export;
use crate::protocol::arrow::ffi::{ArrowArray, ArrowSchema};
use crate::python::capsule;
use crate::python::names::type_name;
use crate::tensor::Tensor;

const SCHEMA_NAME: &CStr = c"arrow_schema";
const ARRAY_NAME: &CStr = c"arrow_array";

/// `Tensor.__arrow_c_array__(requested_schema)`: `(schema, array)` capsules.
pub(crate) fn export<'py>(
    py: Python<'py>,
    tensor: &Tensor,
    requested_schema: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyTuple>> {
    let plan = match requested_schema.filter(|r| !r.is_none()) {
        Some(requested) => {
            let levels = read_request(requested)?;
            export::plan(tensor, Some(levels.as_deref()))?
        }
        None => export::plan(tensor, None)?,
    };
    let schema = capsule(
        py,
        Box::into_raw(export::new_schema(&plan.schema)),
        SCHEMA_NAME,
        free_schema_capsule,
    )?;
    let array = capsule(
        py,
        Box::into_raw(export::new_array(tensor, &plan.shape)),
        ARRAY_NAME,
        free_array_capsule,
    )?;
    PyTuple::new(py, [schema, array])
}

/// Reads the consumer's schema capsule (see `export::read_request`).
fn read_request(requested: &Bound<'_, PyAny>) -> PyResult<Option<Vec<export::RequestedLevel>>> {
    let Some(schema) = capsule::pointer_of(requested, Some(SCHEMA_NAME)) else {
        return Err(Error::type_error(
            Cause::Argument,
            format!(
                "requested_schema must be None or an \"arrow_schema\" PyCapsule, got a {}",
                type_name(requested)
            ),
        )
        .into());
    };
    let schema = schema.as_ptr().cast::<ArrowSchema>().cast_const();
    // SAFETY: an "arrow_schema" capsule holds an ArrowSchema (the PyCapsule
    // interface's contract), kept alive by the capsule, which the caller
    // holds for the call; a released one (release NULL) is not read.
    unsafe {
        if (*schema).release.is_none() {
            return Err(Error::value(
                Cause::Capsule,
                "requested_schema holds an ArrowSchema that has already been released",
            )
            .into());
        }
        Ok(export::read_request(schema)?)
    }
}

/// Wraps a leaked struct in a capsule named `name` that frees it with
/// `destructor`; if the capsule cannot be made, the struct is released
/// and freed here.
fn capsule<'py, T: Released>(
    py: Python<'py>,
    raw: *mut T,
    name: &'static CStr,
    destructor: unsafe extern "C" fn(*mut pyo3::ffi::PyObject),
) -> PyResult<Bound<'py, PyAny>> {
    // SAFETY: `raw` is a leaked Box the capsule takes over; `name` is static.
    let capsule = unsafe { pyo3::ffi::PyCapsule_New(raw.cast(), name.as_ptr(), Some(destructor)) };
    if capsule.is_null() {
        // SAFETY: no capsule took the struct: it is still ours alone.
        unsafe { T::release_and_free(raw) };
        return Err(PyErr::fetch(py));
    }
    // SAFETY: PyCapsule_New returned a new reference.
    Ok(unsafe { Bound::from_owned_ptr(py, capsule) })
}

/// A C Data Interface struct this module leaks into a capsule.
trait Released {
    /// Releases the struct unless a consumer moved it out, then frees it.
    ///
    /// # Safety
    ///
    /// `raw` is a leaked `Box<Self>` built by `ffi`, freed by no one else.
    unsafe fn release_and_free(raw: *mut Self);
}

impl Released for ArrowSchema {
    unsafe fn release_and_free(raw: *mut Self) {
        // SAFETY: the caller's contract; release is the struct's own.
        unsafe {
            if let Some(release) = (*raw).release {
                release(raw);
            }
            drop(Box::from_raw(raw));
        }
    }
}

impl Released for ArrowArray {
    unsafe fn release_and_free(raw: *mut Self) {
        // SAFETY: as for ArrowSchema.
        unsafe {
            if let Some(release) = (*raw).release {
                release(raw);
            }
            drop(Box::from_raw(raw));
        }
    }
}

/// The capsule destructor: the struct is released if no consumer moved it
/// out, and freed. It reads the capsule without setting an error (one may
/// be in flight) and never makes a new reference to the dying capsule.
unsafe fn free_capsule<T: Released>(capsule: *mut pyo3::ffi::PyObject, name: &CStr) {
    // SAFETY: CPython passes the capsule being destroyed, attached.
    let Some(raw) = (unsafe { capsule::pointer_in(capsule, Some(name)) }) else {
        return;
    };
    // SAFETY: the capsule owned the leaked struct; its destructor runs once.
    unsafe { T::release_and_free(raw.as_ptr().cast::<T>()) };
}

unsafe extern "C" fn free_schema_capsule(capsule: *mut pyo3::ffi::PyObject) {
    // SAFETY: called by CPython on an "arrow_schema" capsule made above.
    unsafe { free_capsule::<ArrowSchema>(capsule, SCHEMA_NAME) }
}

unsafe extern "C" fn free_array_capsule(capsule: *mut pyo3::ffi::PyObject) {
    // SAFETY: called by CPython on an "arrow_array" capsule made above.
    unsafe { free_capsule::<ArrowArray>(capsule, ARRAY_NAME) }
}
