//! CUDA array interface spoke, Python half (Numba's specification, version
//! 3; version 2, PyTorch's, is read too): `__cuda_array_interface__` dicts
//! both ways. The checks are the core half's
//! (`protocol::cuda_array_interface`); the stream rules are `crate::cuda`'s.
//!
//! # Import
//!
//! The dict's `data` is `(pointer, readonly)` device memory that **the
//! object** keeps alive, so the object is the owner, released once when the
//! last view is gone. The device is the driver's answer for the pointer
//! (`cuPointerGetAttribute`: its ordinal, and `cuda_managed` for managed
//! memory) when a CUDA driver can be loaded, and `cuda:0` otherwise (the
//! interface itself names no device). A `stream` is synchronised on before
//! the import returns (`cuStreamSynchronize`, as Numba does), unless
//! `from_cuda_array_interface(obj, sync=False)` says the caller will order
//! its work itself; without a driver that synchronisation refuses with
//! `BufferError`. Masks, structured records, non-native byte order and
//! kinds DLPack has no dtype for are refused as for the host interface.
//!
//! A property that raises `AttributeError` means "not this protocol" (how
//! PyTorch's and dlbridge's CPU tensors decline it), so discovery moves on.
//!
//! # Export
//!
//! `Tensor.__cuda_array_interface__` is a fresh version 3 dict for CUDA
//! memory with `stream: 1`: every CUDA tensor dlbridge holds is ready on the
//! legacy default stream (see `crate::cuda`). Any other device raises
//! `AttributeError`, so `hasattr` is `False` and consumers move on.

use pyo3::exceptions::PyAttributeError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use crate::cuda::{self, Stream, driver};
use crate::device::Device;
use crate::error::{Cause, Error};
use crate::owner::Holder;
use crate::protocol::cuda_array_interface::{self as core, Fields};
use crate::protocol::typestr;
use crate::python::array_interface::{refuse_records, required, resolve_void};
use crate::python::dlpack::{exchange, torch};
use crate::python::ints::int_tuple;
use crate::python::lookup::{OnType, on_type};
use crate::python::names::{shown, type_name};
use crate::python::owner::PyOwner;
use crate::tensor::Tensor;

const WHAT: &str = "__cuda_array_interface__";

/// The object's `__cuda_array_interface__`, evaluated once: `None` when it
/// has none, it is `None`, or evaluating it raises `AttributeError` (the
/// protocol's way to decline); any other error is the producer's.
fn attribute<'py>(object: &Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, PyAny>>> {
    let py = object.py();
    let name = intern!(py, "__cuda_array_interface__");
    let value = match on_type(object, name) {
        OnType::Off => return Ok(None),
        // An instance attribute, or one a `__getattr__` provides (the
        // cheapest miss: no Python exception object where CPython has
        // PyObject_GetOptionalAttr).
        OnType::Absent => crate::python::lookup::instance_attribute(object, name)?,
        OnType::Defined => match object.getattr(name) {
            Ok(value) => Some(value),
            Err(err) if err.is_instance_of::<PyAttributeError>(py) => None,
            Err(err) => return Err(err),
        },
    };
    Ok(value.filter(|value| !value.is_none()))
}

/// Discovery's importer: `Ok(None)` when the object does not speak the
/// interface.
pub(crate) fn try_import(object: &Bound<'_, PyAny>) -> PyResult<Option<Tensor>> {
    match attribute(object)? {
        Some(interface) => import_dict(object, &interface, true).map(Some),
        None => Ok(None),
    }
}

/// `from_cuda_array_interface`.
pub(crate) fn import(object: &Bound<'_, PyAny>, sync: bool) -> PyResult<Tensor> {
    let Some(interface) = attribute(object)? else {
        return Err(Error::type_error(
            Cause::NoProtocol,
            format!("{} has no __cuda_array_interface__", type_name(object)),
        )
        .into());
    };
    import_dict(object, &interface, sync)
}

fn import_dict(
    object: &Bound<'_, PyAny>,
    interface: &Bound<'_, PyAny>,
    sync: bool,
) -> PyResult<Tensor> {
    let py = object.py();
    // PyTorch's interface drops the conjugate and negative bits as its
    // DLPack export does: refused here as on every DLPack path.
    torch::refuse_torch_states(object, exchange::producer(object).torch(), None)?;
    let dict = interface.cast::<PyDict>().map_err(|_| {
        PyErr::from(Error::type_error(
            Cause::Capsule,
            format!(
                "{WHAT} of {} is a {}, not a dict",
                type_name(object),
                type_name(interface)
            ),
        ))
    })?;
    let version = match dict.get_item(intern!(py, "version"))? {
        Some(value) => value.extract::<i64>().map_err(|_| {
            PyErr::from(Error::value(
                Cause::Version,
                format!(
                    "{WHAT} version {} is not supported (dlbridge reads versions 2 and 3)",
                    shown(&value)
                ),
            ))
        })?,
        None => {
            return Err(Error::value(
                Cause::Version,
                format!("{WHAT} has no version (it is required; dlbridge reads versions 2 and 3)"),
            )
            .into());
        }
    };
    let typestr = typestr_of(&required(WHAT, dict, intern!(py, "typestr"))?)?;
    let masked = dict
        .get_item(intern!(py, "mask"))?
        .is_some_and(|mask| !mask.is_none());
    if let Some(descr) = dict.get_item(intern!(py, "descr"))?
        && !masked
    {
        refuse_records(&descr)?;
    }
    let shape = int_tuple(WHAT, &required(WHAT, dict, intern!(py, "shape"))?, "shape")?;
    let strides = match dict.get_item(intern!(py, "strides"))? {
        Some(strides) if !strides.is_none() => Some(int_tuple(WHAT, &strides, "strides")?),
        _ => None,
    };
    let data = pointer_data(&required(WHAT, dict, intern!(py, "data"))?)?;
    // Version 2 has no `stream`: one there is not read.
    let stream = match dict.get_item(intern!(py, "stream"))? {
        Some(stream) if version >= 3 && !stream.is_none() => Some(stream_value(&stream)?),
        _ => None,
    };
    let fields = Fields {
        version,
        typestr: &typestr,
        shape: &shape,
        strides: strides.as_deref(),
        data,
        masked,
        stream,
    };
    // The first lookup loads the driver (and cuInit can take a while).
    let device = py.detach(|| device_of(data.0))?;
    let (descriptor, stream) = core::describe(&fields, device, |n| resolve_void(object, n))?;
    let owner = PyOwner::new(object.clone().unbind());
    if let Some(stream) = stream
        && sync
    {
        // The producer may still be writing: wait, as the interface asks of
        // a consumer, so the tensor is ready on every stream from here on.
        let wait = || driver::synchronize(device, stream);
        py.detach(wait)?;
    }
    // SAFETY: device memory is never dereferenced by dlbridge; the owner
    // holds the object, which keeps it allocated (the interface's contract).
    Ok(unsafe { Tensor::from_held(descriptor, Holder::new(owner)) })
}

/// The device the driver names for `address`, or `cuda:0` when there is no
/// driver to ask (or nothing to ask about: an empty array's `0`).
fn device_of(address: usize) -> crate::error::Result<Device> {
    let declared = Device {
        device_type: cuda::CUDA,
        device_id: 0,
    };
    if address == 0 {
        return Ok(declared);
    }
    Ok(driver::device_of_pointer(address)?.unwrap_or(declared))
}

fn typestr_of(value: &Bound<'_, PyAny>) -> PyResult<String> {
    if let Ok(text) = value.cast::<PyString>() {
        Ok(text.to_str()?.to_owned())
    } else if let Ok(bytes) = value.cast::<PyBytes>() {
        Ok(String::from_utf8_lossy(bytes.as_bytes()).into_owned())
    } else {
        Err(PyErr::from(Error::type_error(
            Cause::DType,
            format!("{WHAT} typestr must be a str, got {}", shown(value)),
        )))
    }
}

/// `data = (pointer, readonly)`.
fn pointer_data(data: &Bound<'_, PyAny>) -> PyResult<(usize, bool)> {
    let pair = data
        .cast::<PyTuple>()
        .ok()
        .filter(|tuple| tuple.len() == 2)
        .ok_or_else(|| {
            PyErr::from(Error::type_error(
                Cause::Capsule,
                format!(
                    "{WHAT} data must be a (pointer, readonly) 2-tuple, got {}",
                    shown(data)
                ),
            ))
        })?;
    let address = pair.get_item(0)?;
    let address: usize = address.extract().map_err(|_| {
        PyErr::from(Error::type_error(
            Cause::Pointer,
            format!(
                "{WHAT} data pointer must be a non-negative int, got {}",
                shown(&address)
            ),
        ))
    })?;
    Ok((address, pair.get_item(1)?.is_truthy()?))
}

fn stream_value(stream: &Bound<'_, PyAny>) -> PyResult<i128> {
    if !stream.is_instance_of::<pyo3::types::PyInt>() {
        return Err(Error::type_error(
            Cause::Stream,
            format!(
                "{WHAT} stream must be None or an int, got {}",
                shown(stream)
            ),
        )
        .into());
    }
    stream.extract::<i128>().map_err(|_| {
        Error::value(
            Cause::Stream,
            format!(
                "{WHAT} stream {} does not fit in 128 bits, so it is no CUDA stream handle",
                shown(stream)
            ),
        )
        .into()
    })
}

/// `Tensor.__cuda_array_interface__`: a fresh version 3 dict.
pub(crate) fn interface_dict<'py>(
    py: Python<'py>,
    tensor: &Tensor,
) -> PyResult<Bound<'py, PyDict>> {
    core::ensure_exportable(tensor)?;
    typestr::ensure_named(tensor.dtype(), "__cuda_array_interface__")?;
    let typestr = typestr::typestr_of(tensor.dtype());
    let layout = tensor.layout();
    let dict = PyDict::new(py);
    dict.set_item(intern!(py, "shape"), PyTuple::new(py, layout.shape())?)?;
    dict.set_item(intern!(py, "typestr"), typestr.as_str())?;
    dict.set_item(
        intern!(py, "descr"),
        PyList::new(py, [("", typestr.as_str())])?,
    )?;
    dict.set_item(
        intern!(py, "data"),
        (core::data_pointer(tensor), tensor.readonly()),
    )?;
    if layout.is_c_contiguous() {
        dict.set_item(intern!(py, "strides"), py.None())?;
    } else {
        dict.set_item(intern!(py, "strides"), PyTuple::new(py, layout.strides())?)?;
    }
    dict.set_item(intern!(py, "version"), 3)?;
    dict.set_item(intern!(py, "stream"), Stream::LEGACY.handle())?;
    Ok(dict)
}
