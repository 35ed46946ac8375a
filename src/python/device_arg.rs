//! Device arguments: `from_dlpack(device=)` and `Tensor.__dlpack__(dl_device=)`.
//!
//! | spelling | examples | read as |
//! | --- | --- | --- |
//! | `None` | | no request |
//! | a device string | `"cpu"`, `"cuda"`, `"cuda:1"` | [`DeviceRequest::parse`] (DLPack's lower-case type names) |
//! | a DLPack tuple | `(2, 0)` | `(device_type, device_id)` |
//! | `torch.device` | `torch.device("cuda:0")` | its `type` and `index`, torch recognised by identity |
//! | a device holder | a tensor, anything with `__dlpack_device__` | the tuple it returns |
//!
//! A wrong type is a `TypeError`; the right type with a bad value (`"gpu"`,
//! `"CPU"`, `(1, 2**31)`, `(2**32, 0)`, a 3-tuple) a `ValueError`, as NumPy
//! answers `device="gpu"`. Messages name the parameter the caller used and
//! show the value's repr.

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyInt, PyString, PyTuple, PyType};

use super::names::shown;
use crate::device::{Device, DeviceRequest};
use crate::error::{Cause, Error};

/// Reads a device argument named `name`; `Ok(None)` for `None`.
pub(crate) fn parse(value: &Bound<'_, PyAny>, name: &str) -> PyResult<Option<DeviceRequest>> {
    if value.is_none() {
        return Ok(None);
    }
    if let Ok(text) = value.cast::<PyString>() {
        return string(value, &text.to_cow()?, name).map(Some);
    }
    if let Ok(tuple) = value.cast::<PyTuple>() {
        return dlpack_tuple(tuple, name, &|| shown(value)).map(|d| Some(d.into()));
    }
    if let Some(device) = torch_device(value, name)? {
        return Ok(Some(device));
    }
    let py = value.py();
    if let Ok(method) = value.getattr(intern!(py, "__dlpack_device__")) {
        let answer = method.call0()?;
        let tuple = answer.cast::<PyTuple>().map_err(|_| {
            PyErr::from(Error::type_error(
                Cause::Argument,
                format!(
                    "{name}.__dlpack_device__() must return a (device_type, device_id) tuple, \
                     got {}",
                    shown(&answer)
                ),
            ))
        })?;
        let what = || format!("{}.__dlpack_device__() = {}", shown(value), shown(&answer));
        return dlpack_tuple(tuple, name, &what).map(|d| Some(d.into()));
    }
    Err(Error::type_error(
        Cause::Argument,
        format!(
            "{name} must be None, a device string such as \"cpu\" or \"cuda:0\", a \
             (device_type, device_id) tuple, a torch.device or an object with \
             __dlpack_device__, got {}",
            shown(value)
        ),
    )
    .into())
}

/// A device string (`value` is what a refusal shows).
fn string(value: &Bound<'_, PyAny>, text: &str, name: &str) -> PyResult<DeviceRequest> {
    DeviceRequest::parse(text).ok_or_else(|| {
        Error::value(
            Cause::Argument,
            format!(
                "{name} {} is not a device (expected \"cpu\", \"cuda\", \"cuda:N\" or another \
                 DLPack device type name, in lower case)",
                shown(value)
            ),
        )
        .into()
    })
}

/// A `(device_type, device_id)` tuple of ints, each in DLPack's range
/// (`DLDeviceType` is a C enum, `device_id` an `int32_t`; neither negative).
pub(crate) fn dlpack_tuple(
    tuple: &Bound<'_, PyTuple>,
    name: &str,
    what: &dyn Fn() -> String,
) -> PyResult<Device> {
    if tuple.len() != 2 {
        return Err(Error::value(
            Cause::Argument,
            format!(
                "{name} must be a (device_type, device_id) pair, got {}",
                what()
            ),
        )
        .into());
    }
    let mut fields = [0i32; 2];
    for (slot, item) in fields.iter_mut().zip(tuple.iter()) {
        if !item.is_instance_of::<PyInt>() {
            return Err(Error::type_error(
                Cause::Argument,
                format!(
                    "{name} must be a (device_type, device_id) tuple of ints, got {}",
                    what()
                ),
            )
            .into());
        }
        *slot = item
            .extract::<i32>()
            .ok()
            .filter(|&n| n >= 0)
            .ok_or_else(|| {
                PyErr::from(Error::value(
                    Cause::Argument,
                    format!(
                        "{name} {} has a device_type or device_id out of range (0 to 2**31 - 1)",
                        what()
                    ),
                ))
            })?;
    }
    let [device_type, device_id] = fields;
    Ok(Device {
        device_type: device_type.unsigned_abs(),
        device_id,
    })
}

/// A `torch.device` (by identity with the loaded torch's type; torch is
/// never imported here): `Ok(None)` for anything else.
fn torch_device(value: &Bound<'_, PyAny>, name: &str) -> PyResult<Option<DeviceRequest>> {
    static TORCH_DEVICE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    let py = value.py();
    let ty = match TORCH_DEVICE.get(py) {
        Some(ty) => ty.bind(py).clone(),
        None => {
            let modules = py
                .import(intern!(py, "sys"))?
                .getattr(intern!(py, "modules"))?;
            let Ok(torch) = modules.get_item(intern!(py, "torch")) else {
                return Ok(None);
            };
            let Ok(ty) = torch
                .getattr(intern!(py, "device"))
                .and_then(|d| d.cast_into::<PyType>().map_err(PyErr::from))
            else {
                return Ok(None);
            };
            TORCH_DEVICE.get_or_init(py, || ty.clone().unbind());
            ty
        }
    };
    if !value.get_type().is(&ty) {
        return Ok(None);
    }
    let kind: String = value.getattr(intern!(py, "type"))?.extract()?;
    let index: Option<i64> = value.getattr(intern!(py, "index"))?.extract()?;
    let text = match index {
        Some(index) => format!("{kind}:{index}"),
        None => kind,
    };
    string(value, &text, name).map(Some)
}
