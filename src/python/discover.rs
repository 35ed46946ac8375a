//! `asarray`'s discovery: which spoke takes an object, in one table.
//!
//! The order is the contract's (`docs/architecture.md`): DLPack, the buffer
//! protocol, the array interface (`__array_struct__`, then
//! `__array_interface__`). A spoke that does not speak to the object says
//! so (`Ok(None)`) without raising; one that refuses with `BufferError`
//! passes the object on to the next; any other error is the answer.

use pyo3::exceptions::PyBufferError;
use pyo3::prelude::*;

use crate::error::{Cause, Error};

use super::lookup::{self, OnType};
use crate::python::{array_interface, buffer, dlpack};
use crate::tensor::Tensor;

/// One protocol's importer: `Ok(None)` when the object does not speak it.
type Importer = fn(&Bound<'_, PyAny>) -> PyResult<Option<Tensor>>;

/// `asarray`'s order: the protocol's name (for messages) and its importer.
const PROTOCOLS: [(&str, Importer); 3] = [
    ("DLPack", dlpack_importer),
    ("buffer protocol", buffer_importer),
    ("array interface", array_interface::try_import),
];

fn dlpack_importer(obj: &Bound<'_, PyAny>) -> PyResult<Option<Tensor>> {
    let speaks = dlpack::is_dlpack_capsule(obj)
        || lookup::on_type(obj, pyo3::intern!(obj.py(), "__dlpack__")) == OnType::Defined;
    if !speaks {
        return Ok(None);
    }
    dlpack::import_object(obj, None, None, false).map(Some)
}

fn buffer_importer(obj: &Bound<'_, PyAny>) -> PyResult<Option<Tensor>> {
    if !buffer::has_buffer(obj) {
        return Ok(None);
    }
    buffer::import(obj).map(Some)
}

/// Imports `obj` through the first protocol that takes it, zero-copy.
pub(crate) fn import_any(obj: &Bound<'_, PyAny>) -> PyResult<Tensor> {
    let py = obj.py();
    let mut refusals: Vec<String> = Vec::new();
    for (name, importer) in PROTOCOLS {
        match importer(obj) {
            Ok(Some(tensor)) => return Ok(tensor),
            Ok(None) => {}
            Err(err) if err.is_instance_of::<PyBufferError>(py) => {
                refusals.push(format!("{name}: {err}"))
            }
            Err(err) => return Err(err),
        }
    }
    let type_name = obj.get_type().name()?;
    Err(if refusals.is_empty() {
        PyErr::from(Error::type_error(
            Cause::NoProtocol,
            format!(
                "{type_name} speaks no array protocol dlbridge understands \
                 (DLPack, the buffer protocol, __array_struct__, __array_interface__)"
            ),
        ))
    } else {
        PyErr::from(Error::buffer(
            Cause::NoProtocol,
            format!(
                "no protocol could import {type_name}: {}",
                refusals.join("; ")
            ),
        ))
    })
}
