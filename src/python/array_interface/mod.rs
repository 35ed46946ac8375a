//! Array interface spoke, Python half (NumPy's protocol, version 3):
//! `__array_struct__` capsules (`structs.rs`) and `__array_interface__`
//! dicts (`dict.rs`), both ways.
//!
//! # Import
//!
//! - `__array_struct__` is a capsule with a NULL name holding a
//!   `PyArrayInterface`. Its destructor may free the data (NumPy's
//!   `test_cstruct`), so **the capsule** is the owner: a reference to it is
//!   wrapped in its owner before anything is validated, and released once,
//!   when the last view is gone, however long after the source object died.
//! - `__array_interface__` is a dict. Its `data` is `(pointer, readonly)`
//!   memory that **the object** keeps alive (so the object is the owner), or
//!   a buffer exporter (absent or `None`: the object itself) whose acquired
//!   `Py_buffer` is the owner and whose `len` bounds the layout.
//!
//! Both refuse what the hub cannot carry: byte-swapped data, structured
//! records, masks, non-numeric kinds. NumPy shows `ml_dtypes` elements
//! (bfloat16, float8) as opaque `V2`/`V1`; for those the object's
//! `dtype.name` says what they are, and other opaque elements come in as
//! opaque bytes.
//!
//! # Export
//!
//! `Tensor.__array_interface__` is built once per Python `Tensor` (it is
//! immutable) and handed out as a shallow copy, so a consumer that edits its
//! dict cannot change the next one. `Tensor.__array_struct__` is a fresh
//! capsule per call whose block holds the `PyArrayInterface` and a clone of
//! the tensor: the interface's shape and strides point into that clone's
//! layout, and the clone keeps the memory alive until the capsule dies.

pub(crate) mod dict;
pub(crate) mod structs;

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

use crate::dtype::DType;
use crate::error::{Cause, Error, Result};
use crate::python::lookup::protocol_attribute;
use crate::python::names::{shown, type_name};
use crate::tensor::Tensor;
use dict::import_dict;
use structs::import_struct;

/// `from_array_interface`: `__array_struct__` first, then `__array_interface__`.
pub(crate) fn import(object: &Bound<'_, PyAny>) -> PyResult<Tensor> {
    try_import(object)?.ok_or_else(|| {
        PyErr::from(Error::type_error(
            Cause::NoProtocol,
            format!(
                "{} has neither __array_struct__ nor __array_interface__",
                type_name(object)
            ),
        ))
    })
}

/// Imports through `__array_struct__`, then `__array_interface__`; `Ok(None)`
/// when the object offers neither. Each attribute is evaluated at most once
/// (see `python::lookup`), and an error raised while evaluating one
/// (`AttributeError` included) is the producer's, returned as is.
///
/// A struct that cannot be carried (`BufferError`) gives the dict a chance:
/// the two describe the same memory, and the dict may say more (a `descr`).
pub(crate) fn try_import(object: &Bound<'_, PyAny>) -> PyResult<Option<Tensor>> {
    let py = object.py();
    let mut refusal = None;
    if let Some(capsule) = protocol_attribute(object, intern!(py, "__array_struct__"))? {
        match import_struct(object, &capsule) {
            Ok(tensor) => return Ok(Some(tensor)),
            Err(err) if err.is_instance_of::<pyo3::exceptions::PyBufferError>(py) => {
                refusal = Some(err)
            }
            Err(err) => return Err(err),
        }
    }
    if let Some(interface) = protocol_attribute(object, intern!(py, "__array_interface__"))? {
        return import_dict(object, &interface).map(Some);
    }
    refusal.map_or(Ok(None), Err)
}

/// Opaque `V<n>` bytes become the object's own dtype when
/// it names one of that size (`ml_dtypes`' bfloat16 and float8 kinds), and
/// opaque bytes ([`DType::opaque`]) otherwise, which `Tensor.view` can name.
pub(crate) fn resolve_void(object: &Bound<'_, PyAny>, itemsize: usize) -> Result<DType> {
    let py = object.py();
    let named = object
        .getattr_opt(intern!(py, "dtype"))
        .ok()
        .flatten()
        .and_then(|dtype| dtype.getattr_opt(intern!(py, "name")).ok().flatten())
        .and_then(|name| name.extract::<String>().ok())
        .and_then(|name| DType::from_name(&name).ok())
        .filter(|dtype| dtype.itemsize() == itemsize);
    named.map_or_else(|| DType::opaque(itemsize), Ok)
}

/// Refuses a `descr` that describes structured records (anything but the
/// default `[('', typestr)]`).
pub(crate) fn refuse_records(descr: &Bound<'_, PyAny>) -> Result<()> {
    let Ok(list) = descr.cast::<PyList>() else {
        // NumPy puts a dtype object here; a plain dtype has no fields.
        let fields = descr
            .getattr_opt("fields")
            .ok()
            .flatten()
            .is_some_and(|f| !f.is_none());
        return if fields { Err(records(descr)) } else { Ok(()) };
    };
    let default = list.len() == 1
        && list.get_item(0).ok().is_some_and(|field| {
            field
                .get_item(0)
                .ok()
                .and_then(|name| name.extract::<String>().ok())
                .is_some_and(|name| name.is_empty())
        });
    if default { Ok(()) } else { Err(records(descr)) }
}

fn records(descr: &Bound<'_, PyAny>) -> Error {
    Error::buffer(
        Cause::DType,
        format!(
            "structured records (descr {}) have no DLPack dtype",
            shown(descr)
        ),
    )
}

/// `dict[key]` of an interface dict (`protocol` names it in messages): a
/// missing key is a malformed interface. The host and CUDA array interfaces
/// share it.
///
/// `key` is an interned string (`intern!`): a `&str` key made a new
/// `PyString` per lookup and freed it (about 330 instructions of each
/// import, two keys).
pub(crate) fn required<'py>(
    protocol: &str,
    dict: &Bound<'py, PyDict>,
    key: &Bound<'py, PyString>,
) -> PyResult<Bound<'py, PyAny>> {
    dict.get_item(key)?.ok_or_else(|| {
        let key = key.to_cow().unwrap_or_default();
        Error::value(
            Cause::Capsule,
            format!("{protocol} has no {key:?} key (it is required)"),
        )
        .into()
    })
}
