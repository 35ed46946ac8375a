//! `__array_interface__` dicts both ways: pointer data (the object is the
//! owner) or buffer data (the acquired `Py_buffer` is), and the dict a
//! tensor publishes.

use pyo3::ffi;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use super::{refuse_records, required, resolve_void};
use crate::descriptor::Source;
use crate::descriptor::{Claims, Descriptor};
use crate::device::Device;
use crate::dtype::DType;
use crate::error::{Cause, Error};
use crate::layout::Layout;
use crate::owner::Holder;
use crate::protocol::buffer;
use crate::protocol::typestr::{self, Parsed};
use crate::python::buffer::fields;
use crate::python::ints::int_tuple;
use crate::python::names::{shown, type_name};
use crate::python::owner::{PyBufferView, PyOwner};
use crate::tensor::Tensor;

/// The protocol's name, in messages.
const PROTOCOL: &str = "__array_interface__";

/// Imports an `__array_interface__` dict.
pub(crate) fn import_dict(
    object: &Bound<'_, PyAny>,
    interface: &Bound<'_, PyAny>,
) -> PyResult<Tensor> {
    let py = object.py();
    let dict = interface.cast::<PyDict>().map_err(|_| {
        PyErr::from(Error::type_error(
            Cause::Capsule,
            format!(
                "__array_interface__ of {} is a {}, not a dict",
                type_name(object),
                type_name(interface)
            ),
        ))
    })?;
    let version = dict.get_item(intern!(py, "version"))?;
    match version.as_ref().map(|v| v.extract::<i64>()) {
        Some(Ok(3)) => {}
        _ => {
            return Err(Error::value(
                Cause::Version,
                format!(
                    "__array_interface__ version {} is not supported (dlbridge reads version 3)",
                    version.map_or_else(|| "missing".to_owned(), |v| shown(&v))
                ),
            )
            .into());
        }
    }
    let typestr = required(PROTOCOL, dict, intern!(py, "typestr"))?;
    let typestr: String = if let Ok(text) = typestr.cast::<PyString>() {
        text.to_str()?.to_owned()
    } else if let Ok(bytes) = typestr.cast::<PyBytes>() {
        String::from_utf8_lossy(bytes.as_bytes()).into_owned()
    } else {
        return Err(PyErr::from(Error::type_error(
            Cause::DType,
            format!(
                "__array_interface__ typestr must be a str, got {}",
                type_name(&typestr)
            ),
        )));
    };
    if let Some(mask) = dict.get_item(intern!(py, "mask"))?
        && !mask.is_none()
    {
        return Err(Error::buffer(
            Cause::ProducerState,
            "__array_interface__ has a mask; masked arrays cannot be carried without losing it",
        )
        .into());
    }
    if let Some(descr) = dict.get_item(intern!(py, "descr"))? {
        refuse_records(&descr)?;
    }
    let dtype = match typestr::parse_typestr(&typestr)? {
        Parsed::DType(dtype) => dtype,
        Parsed::Void(itemsize) => resolve_void(object, itemsize)?,
    };
    let shape = int_tuple(
        PROTOCOL,
        &required(PROTOCOL, dict, intern!(py, "shape"))?,
        "shape",
    )?;
    let strides = match dict.get_item(intern!(py, "strides"))? {
        Some(strides) if !strides.is_none() => Some(int_tuple(PROTOCOL, &strides, "strides")?),
        _ => None,
    };
    let layout = Layout::from_signed(&shape, strides.as_deref(), dtype.itemsize())?;
    let offset = match dict.get_item(intern!(py, "offset"))? {
        Some(offset) if !offset.is_none() => {
            let offset: i64 = offset.extract().map_err(|_| {
                PyErr::from(Error::type_error(
                    Cause::Pointer,
                    format!("__array_interface__ offset must be an int, got {offset}"),
                ))
            })?;
            usize::try_from(offset).map_err(|_| {
                Error::value(
                    Cause::Pointer,
                    format!("__array_interface__ offset must be non-negative, got {offset}"),
                )
            })?
        }
        _ => 0,
    };
    let data = dict.get_item(intern!(py, "data"))?;
    match data {
        Some(data) if data.cast::<PyTuple>().is_ok() => {
            if offset != 0 {
                return Err(Error::value(Cause::Pointer, format!(
                    "__array_interface__ offset {offset} with a (pointer, readonly) data tuple: \
                     the offset belongs to buffer data (NumPy ignores it here; dlbridge will not guess)"
                ))
                .into());
            }
            let (address, readonly) = pointer_data(&data)?;
            let descriptor = Descriptor::new(Claims {
                what: PROTOCOL,
                base: std::ptr::with_exposed_provenance_mut::<u8>(address),
                offset: 0,
                layout,
                dtype,
                device: Device::CPU,
                readonly,
                source: Source::ArrayInterface,
                len: None,
            })?;
            let owner = PyOwner::new(object.clone().unbind());
            // SAFETY: the interface's contract: the object keeps the memory at
            // `address` valid over the layout while it lives, and the owner
            // holds the object.
            Ok(unsafe { Tensor::from_held(descriptor, Holder::new(owner)) })
        }
        Some(data) if !data.is_none() => buffer_data(&data, layout, dtype, offset),
        _ => buffer_data(object, layout, dtype, offset),
    }
}

/// `data = (pointer, readonly)`.
fn pointer_data(data: &Bound<'_, PyAny>) -> PyResult<(usize, bool)> {
    let tuple = data.cast::<PyTuple>()?;
    if tuple.len() != 2 {
        return Err(PyErr::from(Error::type_error(
            Cause::Capsule,
            format!("__array_interface__ data must be a (pointer, readonly) 2-tuple, got {data}"),
        )));
    }
    let address = tuple.get_item(0)?;
    let address: usize = address.extract().map_err(|_| {
        PyErr::from(Error::type_error(
            Cause::Pointer,
            format!("__array_interface__ data pointer must be a non-negative int, got {address}"),
        ))
    })?;
    let readonly = tuple.get_item(1)?.is_truthy()?;
    Ok((address, readonly))
}

/// Buffer data: the exporter's bytes, `offset` in, bounded by its `len`.
fn buffer_data(
    exporter: &Bound<'_, PyAny>,
    layout: Layout,
    dtype: DType,
    offset: usize,
) -> PyResult<Tensor> {
    // Writable if the exporter allows it, like NumPy; read-only otherwise.
    let view = match PyBufferView::acquire(exporter, ffi::PyBUF_WRITABLE) {
        Ok(view) => view,
        Err(_) => PyBufferView::acquire(exporter, ffi::PyBUF_SIMPLE).map_err(|err| {
            let refused = Error::buffer(
                Cause::NoProtocol,
                format!(
                    "__array_interface__ data ({}) gives no buffer: {err}",
                    type_name(exporter)
                ),
            );
            PyErr::from(refused)
        })?,
    };
    // The one check every buffer import makes (NULL `buf`, suboffsets).
    let (buf, len, readonly) = buffer::lent_bytes(&fields(view.raw()))?;
    let descriptor = Descriptor::new(Claims {
        what: PROTOCOL,
        base: buf,
        offset,
        layout,
        dtype,
        device: Device::CPU,
        readonly,
        source: Source::ArrayInterface,
        len: Some(len),
    })?;
    // SAFETY: the exporter keeps `buf` valid for `len` bytes until the view is
    // released (when the owner drops), and the layout was checked to lie
    // inside it, `offset` bytes in.
    Ok(unsafe { Tensor::from_held(descriptor, Holder::new(view)) })
}

/// `Tensor.__array_interface__` as a fresh dict (NumPy's keys, version 3).
pub(crate) fn interface_dict<'py>(
    py: Python<'py>,
    tensor: &Tensor,
) -> PyResult<Bound<'py, PyDict>> {
    tensor.device().ensure_cpu("the array interface")?;
    typestr::ensure_named(tensor.dtype(), PROTOCOL)?;
    let typestr = typestr::typestr_of(tensor.dtype());
    let dict = PyDict::new(py);
    dict.set_item(
        intern!(py, "data"),
        (tensor.data_ptr() as usize, tensor.readonly()),
    )?;
    let layout = tensor.layout();
    if layout.is_c_contiguous() {
        dict.set_item(intern!(py, "strides"), py.None())?;
    } else {
        dict.set_item(intern!(py, "strides"), PyTuple::new(py, layout.strides())?)?;
    }
    dict.set_item(
        intern!(py, "descr"),
        PyList::new(py, [("", typestr.as_str())])?,
    )?;
    dict.set_item(intern!(py, "typestr"), typestr)?;
    dict.set_item(intern!(py, "shape"), PyTuple::new(py, layout.shape())?)?;
    dict.set_item(intern!(py, "version"), 3)?;
    Ok(dict)
}
