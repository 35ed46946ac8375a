//! `asarray`'s discovery: which spoke takes an object.
//!
//! The order is the contract's (`docs/architecture.md`): DLPack, the buffer protocol, `__array_struct__`,
//! `__array_interface__`. A spoke that refuses with `BufferError` passes the
//! object on to the next one; any other error is the answer.

use pyo3::exceptions::{PyBufferError, PyTypeError};
use pyo3::prelude::*;

use super::lookup;
use crate::python::dlpack as dlpack_python;
use crate::python::{array_interface, buffer};
use crate::tensor::Tensor;

/// Imports `obj` through the first protocol that takes it, zero-copy.
pub(crate) fn import_any(obj: &Bound<'_, PyAny>) -> PyResult<Tensor> {
    let py = obj.py();
    let mut refusals: Vec<String> = Vec::new();
    if dlpack_python::is_dlpack_capsule(obj)
        || lookup::on_type(obj, pyo3::intern!(py, "__dlpack__")) == lookup::OnType::Defined
    {
        match dlpack_python::import_object(obj, None, None, false) {
            Ok(tensor) => return Ok(tensor),
            Err(err) if err.is_instance_of::<PyBufferError>(py) => {
                refusals.push(format!("DLPack: {err}"))
            }
            Err(err) => return Err(err),
        }
    }
    if buffer::has_buffer(obj) {
        match buffer::import(obj) {
            Ok(tensor) => return Ok(tensor),
            Err(err) if err.is_instance_of::<PyBufferError>(py) => {
                refusals.push(format!("buffer protocol: {err}"))
            }
            Err(err) => return Err(err),
        }
    }
    match array_interface::try_import(obj) {
        Ok(Some(tensor)) => return Ok(tensor),
        Ok(None) => {}
        Err(err) if err.is_instance_of::<PyBufferError>(py) => {
            refusals.push(format!("array interface: {err}"))
        }
        Err(err) => return Err(err),
    }
    let type_name = obj.get_type().name()?;
    Err(if refusals.is_empty() {
        PyTypeError::new_err(format!(
            "{type_name} speaks no array protocol dlbridge understands \
             (DLPack, the buffer protocol, __array_struct__, __array_interface__)"
        ))
    } else {
        PyBufferError::new_err(format!(
            "no protocol could import {type_name}: {}",
            refusals.join("; ")
        ))
    })
}
