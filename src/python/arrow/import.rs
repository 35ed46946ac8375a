//! Arrow in: an object with `__arrow_c_array__` (a `(schema, array)` pair of
//! PyCapsules) or `__arrow_c_stream__` (an `"arrow_array_stream"` capsule of
//! exactly one chunk) as a read-only tensor, zero-copy.
//!
//! The structs are moved out of the producer's capsules, as the PyCapsule
//! interface prescribes (copied, the originals marked released, so the
//! capsules' destructors free only the struct memory); the core
//! (`crate::protocol::arrow::import`) checks every field and owns the pair,
//! releasing each once when the last view of the tensor is gone.

use std::ffi::CStr;

use pyo3::intern;
use pyo3::prelude::*;

use crate::error::{Cause, Error};
use crate::protocol::arrow::ffi::{ArrowArray, ArrowArrayStream, ArrowSchema};
use crate::protocol::arrow::{import, stream};
use crate::python::capsule;
use crate::python::lookup::{self, OnType};
use crate::python::names::type_name;
use crate::tensor::Tensor;

use super::{ARRAY_NAME, SCHEMA_NAME};

const STREAM_NAME: &CStr = c"arrow_array_stream";

/// Whether `type(obj)` defines the Arrow PyCapsule interface.
pub(crate) fn speaks_arrow(obj: &Bound<'_, PyAny>) -> bool {
    let py = obj.py();
    lookup::on_type(obj, intern!(py, "__arrow_c_array__")) == OnType::Defined
        || lookup::on_type(obj, intern!(py, "__arrow_c_stream__")) == OnType::Defined
}

/// Imports `obj` through `__arrow_c_array__`, else `__arrow_c_stream__`;
/// `Ok(None)` when it offers neither.
pub(crate) fn try_import(obj: &Bound<'_, PyAny>) -> PyResult<Option<Tensor>> {
    let py = obj.py();
    if let Some(method) = lookup::protocol_attribute(obj, intern!(py, "__arrow_c_array__"))? {
        let pair = method.call0()?;
        let (schema, array) = pair.extract::<(Bound<'_, PyAny>, Bound<'_, PyAny>)>().map_err(|_| {
            PyErr::from(Error::type_error(
                Cause::Capsule,
                format!(
                    "__arrow_c_array__ of {} returned {}, not a (schema, array) pair of PyCapsules",
                    type_name(obj),
                    type_name(&pair)
                ),
            ))
        })?;
        let schema_ptr = capsule_pointer::<ArrowSchema>(obj, &schema, SCHEMA_NAME)?;
        let array_ptr = capsule_pointer::<ArrowArray>(obj, &array, ARRAY_NAME)?;
        // SAFETY: the capsules hold the structs their names say (the
        // PyCapsule interface's contract), alive while we hold the capsules;
        // each is moved out (copied, the original marked released), so the
        // producer's capsule destructors release nothing, and the core owns
        // the copies from here.
        let tensor = unsafe {
            let (schema, array) = (take_schema(schema_ptr), take_array(array_ptr));
            import::import(schema, array)?
        };
        return Ok(Some(tensor));
    }
    if let Some(method) = lookup::protocol_attribute(obj, intern!(py, "__arrow_c_stream__"))? {
        let capsule = method.call0()?;
        let stream_ptr = capsule_pointer::<ArrowArrayStream>(obj, &capsule, STREAM_NAME)?;
        // SAFETY: as above, for the stream: moved out, then read for its
        // one chunk and released by the core.
        let tensor = unsafe {
            let moved = stream_ptr.read();
            (*stream_ptr).release = None;
            let (schema, array) = stream::one_chunk(moved)?;
            import::import(schema, array)?
        };
        return Ok(Some(tensor));
    }
    Ok(None)
}

/// The struct in `capsule`, checked to be named `name`.
fn capsule_pointer<T>(
    obj: &Bound<'_, PyAny>,
    capsule: &Bound<'_, PyAny>,
    name: &'static CStr,
) -> PyResult<*mut T> {
    let Some(pointer) = capsule::pointer_of(capsule, Some(name)) else {
        return Err(Error::type_error(
            Cause::Capsule,
            format!(
                "{} gave a {} where the Arrow PyCapsule interface has a {name:?} PyCapsule",
                type_name(obj),
                type_name(capsule)
            ),
        )
        .into());
    };
    Ok(pointer.as_ptr().cast::<T>())
}

/// Moves the schema out of its capsule.
///
/// # Safety
///
/// `ptr` is a live `ArrowSchema` the caller may move.
unsafe fn take_schema(ptr: *mut ArrowSchema) -> ArrowSchema {
    // SAFETY: the caller's contract; a released original has a NULL release.
    unsafe {
        let moved = ptr.read();
        (*ptr).release = None;
        moved
    }
}

/// Moves the array out of its capsule (as [`take_schema`]).
///
/// # Safety
///
/// `ptr` is a live `ArrowArray` the caller may move.
unsafe fn take_array(ptr: *mut ArrowArray) -> ArrowArray {
    // SAFETY: as in `take_schema`.
    unsafe {
        let moved = ptr.read();
        (*ptr).release = None;
        moved
    }
}
