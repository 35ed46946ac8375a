//! DLPack spoke, Python half: capsules, `__dlpack__` negotiation, and the
//! arguments of `Tensor.__dlpack__` (`dunder.rs` is the method itself,
//! `exchange.rs` the C exchange table both ways).

pub(crate) mod dunder;
pub(crate) mod exchange;
pub(crate) mod ndarray_fields;
pub(crate) mod stream;
pub(crate) mod torch;

use std::ffi::CStr;

use dlpark::ffi::{
    DLManagedTensor, DLManagedTensorVersioned, DLPACK_MAJOR_VERSION, DLPACK_MINOR_VERSION,
};
use dlpark::{Managed, ManagedTensorBase};
use pyo3::ffi;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{IntoPyDict, PyDict, PyTuple};

use crate::device::{Device, DeviceRequest};
use crate::error::{Cause, Error};
use crate::protocol::dlpack::from_raw_cause;
use crate::python::capsule;
use crate::python::device_arg;
use crate::python::lookup::protocol_attribute;
use crate::python::names::{shown, type_name};
use crate::tensor::Tensor;
use exchange as dlpack_exchange;

const DLTENSOR: &CStr = c"dltensor";
const DLTENSOR_VERSIONED: &CStr = c"dltensor_versioned";
const USED_DLTENSOR: &CStr = c"used_dltensor";
const USED_DLTENSOR_VERSIONED: &CStr = c"used_dltensor_versioned";

/// Whether `object` is a capsule (consumed or not) with a DLPack name.
pub(crate) fn is_dlpack_capsule(object: &Bound<'_, PyAny>) -> bool {
    capsule::name_of(object).flatten().is_some_and(|name| {
        [
            DLTENSOR,
            DLTENSOR_VERSIONED,
            USED_DLTENSOR,
            USED_DLTENSOR_VERSIONED,
        ]
        .contains(&name)
    })
}

/// Consumes a DLPack capsule into a tensor. The capsule is renamed `used_…`
/// the moment its pointer is taken, so from then on dlbridge alone releases
/// it (exactly once, even when validation refuses it); on any failure before
/// that the capsule stays unconsumed and its own destructor releases it.
///
/// A legacy (`"dltensor"`) capsule imports read-only unless `legacy_writable`
/// (NumPy's rule: the legacy ABI cannot say "read-only").
pub(crate) fn consume_capsule(
    capsule: &Bound<'_, PyAny>,
    legacy_writable: bool,
) -> PyResult<Tensor> {
    let ptr = capsule.as_ptr();
    let Some(name) = capsule::name_of(capsule) else {
        return Err(PyErr::from(Error::type_error(
            Cause::Capsule,
            format!(
                "expected a DLPack capsule, got {}",
                capsule.get_type().name()?
            ),
        )));
    };
    let name = name.unwrap_or(c"");
    let (used, versioned) = match name {
        n if n == DLTENSOR => (USED_DLTENSOR, false),
        n if n == DLTENSOR_VERSIONED => (USED_DLTENSOR_VERSIONED, true),
        n if n == USED_DLTENSOR || n == USED_DLTENSOR_VERSIONED => {
            return Err(
                Error::value(Cause::Capsule, "DLPack capsule has already been consumed").into(),
            );
        }
        other => {
            return Err(Error::value(Cause::Capsule, format!(
                "capsule named {other:?} is not a DLPack capsule (expected \"dltensor\" or \"dltensor_versioned\")"
            ))
            .into());
        }
    };
    let raw = capsule::pointer_under(capsule, Some(name), || {
        Error::buffer(Cause::Capsule, "DLPack capsule holds a NULL pointer").into()
    })?
    .as_ptr();
    // SAFETY: `used` is a 'static C string, as capsule names must be.
    if unsafe { ffi::PyCapsule_SetName(ptr, used.as_ptr()) } != 0 {
        return Err(PyErr::fetch(capsule.py()));
    }
    // From here the managed tensor is ours: `from_raw` releases it on a
    // version refusal and `Tensor::try_from` on any other refusal.
    let tensor = if versioned {
        // SAFETY: a "dltensor_versioned" capsule holds a DLManagedTensorVersioned
        // whose ownership the rename above transferred to us.
        let managed = unsafe { Managed::from_raw(raw.cast::<DLManagedTensorVersioned>()) }
            .map_err(|e| {
                Error::buffer(
                    from_raw_cause(&e),
                    format!("cannot import DLPack tensor: {e}"),
                )
            })?;
        Tensor::try_from(managed)
    } else {
        // SAFETY: as above, for a legacy "dltensor" capsule.
        let managed = unsafe { Managed::from_raw(raw.cast::<DLManagedTensor>()) }.map_err(|e| {
            Error::buffer(
                from_raw_cause(&e),
                format!("cannot import DLPack tensor: {e}"),
            )
        })?;
        if legacy_writable {
            Tensor::from_dlpack_legacy_writable(managed)
        } else {
            Tensor::try_from(managed)
        }
    };
    Ok(tensor?)
}

/// Imports any DLPack producer: a capsule, or an object with `__dlpack__`.
///
/// An exact `numpy.ndarray` is read from its fields (the tensor its
/// `__dlpack__` would describe; see `ndarray_fields.rs`). A tensor whose
/// type publishes the C exchange API comes across with one C call (CPU, or
/// CUDA once ordered on the legacy default stream: `exchange.rs`).
/// Otherwise the producer's `__dlpack_device__` is asked first, then its
/// `__dlpack__`: with `max_version`, with `stream=1` when the tensor will
/// be on a CUDA device (the stream dlbridge promises its CUDA tensors are
/// ready on, as the Array API asks a consumer to name its stream), with
/// `dl_device` when `device` is another device than the tensor's, and with
/// `copy` when dlbridge cannot make the copy itself (it copies CPU memory
/// only). A producer that rejects the keywords with `TypeError` is asked
/// again without them (only when neither `dl_device` nor `copy` was
/// passed). The result is dispatched on the capsule's name, never on what
/// was asked.
pub(crate) fn import_object(
    object: &Bound<'_, PyAny>,
    device: Option<DeviceRequest>,
    copy: Option<bool>,
    legacy_writable: bool,
) -> PyResult<Tensor> {
    import_object_retrying(
        object,
        device,
        copy,
        legacy_writable,
        |_| true,
        Asker::FromDlpack,
    )
}

/// Who imports through [`import_object_retrying`]: what it asks, and who
/// makes a copy of CPU memory.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Asker {
    /// `from_dlpack`: an exact ndarray's fields and the exchange table are
    /// asked first, and a copy of CPU memory is made here.
    FromDlpack,
    /// The importer's DLPack stage (`importer.rs`): its shortcuts asked the
    /// ndarray's fields and the exchange table already (asking again would
    /// ask the producer twice), and `asarray`'s `accept` copies the CPU
    /// memory of whichever stage took the object; a device tensor is the
    /// producer's copy (`__dlpack__(copy=True)`), or refused.
    ImporterStage,
}

impl Asker {
    /// `tensor`, once `copy=True` owed a copy of it that the producer was
    /// not asked for: made here (`Tensor::copy`, which refuses memory not
    /// the CPU's), or, for the importer's stage, left to `asarray` when the
    /// memory is the CPU's.
    #[inline(always)]
    fn copied(self, tensor: Tensor, copy: bool) -> PyResult<Tensor> {
        let here = copy && (self == Self::FromDlpack || !tensor.device().is_cpu());
        copied_here(tensor, here)
    }
}

/// [`import_object`], asking a producer that rejected the versioned call
/// with `TypeError` again with no arguments only if `retry_legacy(object)`
/// (discovery says no for a producer it can ask through another protocol:
/// pyarrow refuses with `TypeError` what DLPack cannot carry, and warns on
/// the legacy call), as `asker` asks ([`Asker`]).
pub(crate) fn import_object_retrying(
    object: &Bound<'_, PyAny>,
    device: Option<DeviceRequest>,
    copy: Option<bool>,
    legacy_writable: bool,
    retry_legacy: impl Fn(&Bound<'_, PyAny>) -> bool,
    asker: Asker,
) -> PyResult<Tensor> {
    let py = object.py();
    if is_dlpack_capsule(object) {
        let tensor = consume_capsule(object, legacy_writable)?;
        return from_capsule(tensor, device, copy, asker);
    }
    let fast = device.is_none() && copy != Some(false) && asker == Asker::FromDlpack;
    if fast && let Some(tensor) = ndarray_fields::import(object)? {
        return copied_here(tensor, copy == Some(true));
    }
    let producer = dlpack_exchange::producer(object);
    // The exchange path checks torch's view bits itself, once the dtype is
    // known; `__dlpack__` is asked only after the same checks, because
    // torch's exports the negative bit silently.
    if fast && let Some(tensor) = dlpack_exchange::import(object, producer, copy == Some(true))? {
        return copied_here(tensor, copy == Some(true));
    }
    torch::refuse_torch_states(object, producer.torch(), None)?;
    // `__dlpack__` is evaluated once (see `python::lookup`); `None` on the
    // class switches the protocol off.
    let Some(method) = protocol_attribute(object, intern!(py, "__dlpack__"))? else {
        return Err(no_dlpack(object));
    };
    let own = dlpack_device(object)?;
    let target = device.map(|request| request.resolve(own));
    let lands_on = target.or(own);
    // A copy of CPU memory is made here, so a producer that copies without
    // saying so (PyTorch leaves IS_COPIED clear) cannot confuse it; any
    // other copy is the producer's to make, as the Array API has it.
    let copy_here =
        copy == Some(true) && own.is_none_or(Device::is_cpu) && lands_on.is_none_or(Device::is_cpu);
    let request = Request {
        dl_device: target.filter(|&t| Some(t) != own),
        copy: if copy_here { None } else { copy },
        stream: lands_on.is_some_and(crate::cuda::is_cuda),
    };
    let capsule = match call_dlpack(&method, request) {
        Ok(capsule) => capsule,
        Err(err)
            if err.is_instance_of::<pyo3::exceptions::PyTypeError>(py)
                && request.dl_device.is_none()
                && request.copy.is_none()
                && retry_legacy(object) =>
        {
            // A producer that predates `max_version` (DLPack < 1.0); the
            // stream was in the protocol from the start.
            if request.stream {
                method.call(
                    (),
                    Some(&[(intern!(py, "stream"), LEGACY_STREAM)].into_py_dict(py)?),
                )?
            } else {
                method.call0()?
            }
        }
        Err(err) => return Err(err),
    };
    if !is_dlpack_capsule(&capsule) {
        return Err(PyErr::from(Error::type_error(
            Cause::Capsule,
            format!(
                "__dlpack__ of {} returned {}, not a DLPack capsule",
                object.get_type().name()?,
                capsule.get_type().name()?
            ),
        )));
    }
    let tensor = consume_capsule(&capsule, legacy_writable)?;
    if let Some(device) = target
        && tensor.device() != device
    {
        return Err(Error::buffer(
            Cause::Device,
            format!(
                "asked the producer for device {device}, it returned device {}",
                tensor.device()
            ),
        )
        .into());
    }
    asker.copied(tensor, copy_here)
}

/// `__dlpack__(stream=1)`: the legacy default stream.
const LEGACY_STREAM: usize = 1;

/// What `__dlpack__` is asked for beyond `max_version`.
#[derive(Clone, Copy)]
struct Request {
    dl_device: Option<Device>,
    copy: Option<bool>,
    /// `stream=1`: the tensor will be on a CUDA device.
    stream: bool,
}

/// The device a producer's `__dlpack_device__` names (`None` when it has
/// none: such a producer is asked as before DLPack had devices).
fn dlpack_device(object: &Bound<'_, PyAny>) -> PyResult<Option<Device>> {
    let py = object.py();
    let Some(method) = protocol_attribute(object, intern!(py, "__dlpack_device__"))? else {
        return Ok(None);
    };
    let answer = method.call0()?;
    let what = || {
        format!(
            "__dlpack_device__() of {} = {}",
            type_name(object),
            shown(&answer)
        )
    };
    let tuple = answer.cast::<PyTuple>().map_err(|_| {
        PyErr::from(Error::type_error(
            Cause::Argument,
            format!("{} is not a (device_type, device_id) tuple", what()),
        ))
    })?;
    device_arg::dlpack_tuple(tuple, "the producer's device", &what).map(Some)
}

/// A capsule as `from_dlpack(capsule, device=..., copy=...)` asked: a
/// capsule is already made, so it can neither move nor be asked to copy.
fn from_capsule(
    tensor: Tensor,
    device: Option<DeviceRequest>,
    copy: Option<bool>,
    asker: Asker,
) -> PyResult<Tensor> {
    let on = tensor.device();
    if let Some(request) = device
        && request.resolve(Some(on)) != on
    {
        return Err(Error::buffer(
            Cause::Device,
            format!(
                "capsule is on device {on}, not {}",
                request.resolve(Some(on))
            ),
        )
        .into());
    }
    if copy == Some(true) && !on.is_cpu() {
        return Err(Error::buffer(
            Cause::Copy,
            format!(
                "copy=True of a DLPack capsule on device {on}: dlbridge copies CPU memory only, \
                 and a capsule cannot be asked for a copy (pass the producer itself: its \
                 __dlpack__ is asked to copy)"
            ),
        )
        .into());
    }
    asker.copied(tensor, copy == Some(true))
}

/// `tensor`, or a Rust-owned copy of it (inlined: a `Tensor` is large, and
/// the zero-copy imports should not move it once more).
#[inline(always)]
fn copied_here(tensor: Tensor, copy: bool) -> PyResult<Tensor> {
    Ok(if copy { tensor.copy()? } else { tensor })
}

fn no_dlpack(object: &Bound<'_, PyAny>) -> PyErr {
    PyErr::from(Error::type_error(
        Cause::NoProtocol,
        format!(
            "{} does not support DLPack (no __dlpack__ method)",
            type_name(object)
        ),
    ))
}

/// `method(max_version=(1, 3)[, stream=1][, dl_device=...][, copy=...])`,
/// `method` being the producer's (bound) `__dlpack__`.
///
/// The common forms (nothing but `max_version`, or that and `stream=1`) are
/// one vectorcall with cached keyword names and values: no dict is built.
fn call_dlpack<'py>(method: &Bound<'py, PyAny>, request: Request) -> PyResult<Bound<'py, PyAny>> {
    static KWNAMES: PyOnceLock<Py<PyTuple>> = PyOnceLock::new();
    static KWNAMES_STREAM: PyOnceLock<Py<PyTuple>> = PyOnceLock::new();
    static MAX_VERSION: PyOnceLock<Py<PyTuple>> = PyOnceLock::new();
    let py = method.py();
    let max_version = MAX_VERSION
        .get_or_try_init(py, || {
            PyTuple::new(py, [DLPACK_MAJOR_VERSION, DLPACK_MINOR_VERSION]).map(Bound::unbind)
        })?
        .bind(py);
    if request.dl_device.is_none() && request.copy.is_none() {
        let (cache, names): (_, &[&str]) = if request.stream {
            (&KWNAMES_STREAM, &["max_version", "stream"])
        } else {
            (&KWNAMES, &["max_version"])
        };
        let kwnames = cache
            .get_or_try_init(py, || PyTuple::new(py, names).map(Bound::unbind))?
            .bind(py);
        let stream = LEGACY_STREAM.into_pyobject(py)?;
        // Slot 0 is scratch space the callee may use (ARGUMENTS_OFFSET), so
        // a bound method prepends `self` without copying the arguments.
        let mut args = [std::ptr::null_mut(), max_version.as_ptr(), stream.as_ptr()];
        // SAFETY: `args[1..]` holds one keyword value per name in `kwnames`
        // (one or two), no positional ones; all objects outlive the call,
        // and `args[0]` is writable scratch as ARGUMENTS_OFFSET allows.
        let result = unsafe {
            ffi::PyObject_Vectorcall(
                method.as_ptr(),
                args.as_mut_ptr().add(1),
                ffi::PY_VECTORCALL_ARGUMENTS_OFFSET,
                kwnames.as_ptr(),
            )
        };
        // SAFETY: a new reference, or NULL with an exception set.
        return unsafe { Bound::from_owned_ptr_or_err(py, result) };
    }
    let kwargs = PyDict::new(py);
    kwargs.set_item(intern!(py, "max_version"), max_version)?;
    if request.stream {
        kwargs.set_item(intern!(py, "stream"), LEGACY_STREAM)?;
    }
    if let Some(device) = request.dl_device {
        kwargs.set_item(
            intern!(py, "dl_device"),
            (device.device_type, device.device_id),
        )?;
    }
    if let Some(copy) = request.copy {
        kwargs.set_item(intern!(py, "copy"), copy)?;
    }
    method.call((), Some(&kwargs))
}

/// `Tensor.__dlpack__`: a fresh capsule per call.
pub(crate) fn export(
    py: Python<'_>,
    tensor: &Tensor,
    stream: Option<&Bound<'_, PyAny>>,
    max_version: Option<&Bound<'_, PyAny>>,
    dl_device: Option<&Bound<'_, PyAny>>,
    copy: Option<bool>,
) -> PyResult<Py<PyAny>> {
    let versioned = match max_version {
        None => false,
        Some(value) if value.is_none() => false,
        Some(value) => {
            let tuple = value.cast::<PyTuple>().map_err(|_| {
                PyErr::from(Error::type_error(
                    Cause::Argument,
                    format!("max_version must be a (major, minor) tuple, got {value}"),
                ))
            })?;
            let (major, _minor): (u32, u32) = tuple.extract().map_err(|_| {
                PyErr::from(Error::type_error(
                    Cause::Argument,
                    format!("max_version must be a (major, minor) tuple of ints, got {value}"),
                ))
            })?;
            major >= DLPACK_MAJOR_VERSION
        }
    };
    if let Some(stream) = stream
        && !stream.is_none()
        && tensor.device().is_cpu()
    {
        return Err(Error::value(
            Cause::Argument,
            format!("stream must be None for a CPU tensor, got {stream}"),
        )
        .into());
    }
    if let Some(requested) = dl_device
        .map(|value| device_arg::parse(value, "dl_device"))
        .transpose()?
        .flatten()
        .map(|request| request.resolve(Some(tensor.device())))
        && requested != tensor.device()
    {
        return Err(if copy == Some(false) {
            Error::buffer(
                Cause::Copy,
                format!(
                    "dl_device {requested} needs a copy from device {} but copy=False",
                    tensor.device()
                ),
            )
        } else {
            Error::buffer(
                Cause::Device,
                format!(
                    "cannot export to dl_device {requested}: the tensor is on device {} and \
                     dlbridge does not copy across devices",
                    tensor.device()
                ),
            )
        }
        .into());
    }
    // Last, once nothing else can refuse: the wait is queued for a capsule
    // that will be handed out.
    if crate::cuda::is_cuda(tensor.device()) {
        stream::order_for_consumer(tensor, stream)?;
    }
    match (versioned, copy == Some(true)) {
        (true, false) => into_capsule(py, tensor.to_dlpack_versioned()?),
        (true, true) => into_capsule(py, tensor.to_dlpack_copy()?),
        (false, false) => into_capsule(py, tensor.to_dlpack_legacy()?),
        (false, true) => into_capsule(py, tensor.to_dlpack_legacy_copy()?),
    }
}

/// The capsule name and destructor of one managed-tensor ABI.
trait CapsuleAbi: ManagedTensorBase {
    const NAME: &'static CStr;
}

impl CapsuleAbi for DLManagedTensor {
    const NAME: &'static CStr = DLTENSOR;
}

impl CapsuleAbi for DLManagedTensorVersioned {
    const NAME: &'static CStr = DLTENSOR_VERSIONED;
}

/// Destructor of an exported capsule (DLPack's Python spec): a consumed
/// capsule (renamed `used_…`) belongs to its consumer and is left alone; an
/// unconsumed one still owns its managed tensor and deletes it.
///
/// It never builds a Python object from the dying capsule (that would
/// resurrect it), and nothing in it can unwind.
unsafe extern "C" fn capsule_destructor<M: CapsuleAbi>(capsule: *mut ffi::PyObject) {
    // SAFETY: CPython passes the capsule being destroyed, attached; under
    // the unused name it still owns its managed tensor, deleted once here.
    unsafe {
        if let Some(managed) = capsule::pointer_in(capsule, Some(M::NAME)) {
            M::drop_raw(managed.as_ptr().cast::<M>());
        }
    }
}

/// Wraps a fresh managed tensor in a single-use capsule.
fn into_capsule<M: CapsuleAbi>(py: Python<'_>, managed: Managed<M>) -> PyResult<Py<PyAny>> {
    let raw = managed.into_raw();
    // SAFETY: `raw` is an owned managed tensor; the capsule takes ownership,
    // its destructor deletes it unless a consumer renames the capsule first.
    let capsule =
        unsafe { ffi::PyCapsule_New(raw.cast(), M::NAME.as_ptr(), Some(capsule_destructor::<M>)) };
    if capsule.is_null() {
        // SAFETY: the capsule was not created, so `raw` is still ours alone.
        unsafe { M::drop_raw(raw) };
        return Err(PyErr::fetch(py));
    }
    // SAFETY: PyCapsule_New returned a new reference.
    Ok(unsafe { Bound::from_owned_ptr(py, capsule) }.unbind())
}
