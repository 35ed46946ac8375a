//! DLPack 1.3 C exchange API (`__dlpack_c_exchange_api__`): both sides.
//!
//! Consumer: the table lives on the producer's *type*. What dlbridge learns
//! of a type (its table's import function, whether it is a torch tensor
//! type) is cached per thread, keyed by the type's address **and its
//! version tag** (`tp_version_tag`). CPython gives every type a fresh tag
//! when it is created or modified and never reuses one, so a hit can only
//! mean the same, unmodified type, and the cache holds no reference: a
//! type is never kept alive by having been seen (the previous cache pinned
//! its first 32 types, and everything they referenced, for ever). A type
//! without a valid tag is simply not cached. A CPU tensor then comes across
//! with one C call and no capsule. A CUDA tensor comes across the same
//! way, then is ordered on the legacy default stream (the stream dlbridge
//! promises its CUDA tensors are ready on), because the exchange API never
//! synchronises: the table's `current_work_stream` names the producer's
//! stream, and only when that is another stream is an event recorded on it
//! and waited for, through the driver. A tensor on any other device, or a
//! CUDA one whose ordering cannot be made here (no `current_work_stream`,
//! no driver), is handed back (its deleter runs) and imported through
//! `__dlpack__(stream=1)` instead, where the producer orders it.
//!
//! torch's table is less strict than its own `__dlpack__`: every import of
//! a torch tensor is checked by `torch.rs` first. A table that fails is not
//! the last word either: the import falls back to `__dlpack__`, whose
//! refusal (`BufferError` for a sparse layout, say) is the producer's
//! considered one.
//!
//! Producer: `dlbridge.Tensor` publishes its own table through dlpark's
//! `install_exchange_api`, so consumers such as PyTorch can skip the capsule.

use std::cell::Cell;
use std::ffi::{CStr, c_int, c_uint, c_void};
use std::ptr::NonNull;

use dlpark::Managed;
use dlpark::ffi::{
    DLDevice, DLDeviceType, DLManagedTensorVersioned, DLPACK_MAJOR_VERSION, DLPackExchangeAPI,
    DLTensor,
};
use dlpark::python::DlpackExchangeProducer;
use pyo3::ffi;
use pyo3::prelude::*;

use super::torch::{self, Torch, refuse_torch_states};
use crate::cuda::{self, Stream, driver};
use crate::device::Device;
use crate::dtype::DType;
use crate::error::{Cause, Error};
use crate::protocol::dlpack::from_raw_cause;
use crate::python::capsule;
use crate::python::fast_path;
use crate::python::lookup::{self, OnType, type_lookup};
use crate::python::tensor::PyTensor;
use crate::tensor::Tensor;

const CAPSULE_NAME: &CStr = c"dlpack_exchange_api";
/// Types remembered per thread; beyond this, the oldest entry is replaced.
const CACHE_SLOTS: usize = 16;

type FromPyObject = unsafe extern "C" fn(*mut c_void, *mut *mut DLManagedTensorVersioned) -> c_int;
type CurrentWorkStream = unsafe extern "C" fn(DLDeviceType, i32, *mut *mut c_void) -> c_int;

/// What an import needs to know of a producer's type.
#[derive(Clone, Copy)]
pub(crate) struct Producer {
    /// The table's `managed_tensor_from_py_object_no_sync`, if the type
    /// publishes a compatible (major 1) table.
    from_py_object: Option<FromPyObject>,
    /// The same table's `current_work_stream`.
    work_stream: Option<CurrentWorkStream>,
    /// Whether (and how) the type is a torch tensor type.
    torch: Torch,
    /// Whether the type defines `__dlpack__` (not `None`): what the
    /// importer's DLPack stage asks before anything else ([`shortcut`]).
    dlpack_defined: bool,
}

impl Producer {
    /// Whether (and how) the type is a torch tensor type.
    pub(crate) fn torch(self) -> Torch {
        self.torch
    }
}

/// One cache entry: a type's address and version tag (0: empty).
#[derive(Clone, Copy)]
struct Entry {
    ty: usize,
    tag: c_uint,
    producer: Producer,
}

const NO_PRODUCER: Producer = Producer {
    from_py_object: None,
    work_stream: None,
    torch: Torch::No,
    dlpack_defined: false,
};

/// A small per-thread cache: no lock, no atomics, no references held. The
/// keys sit apart from what they map to, so a lookup reads 16 bytes an
/// entry, not the whole entry.
struct Cache {
    keys: [Cell<(usize, c_uint)>; CACHE_SLOTS],
    producers: [Cell<Producer>; CACHE_SLOTS],
    next: Cell<usize>,
}

thread_local! {
    static CACHE: Cache = const {
        Cache {
            keys: [const { Cell::new((0, 0)) }; CACHE_SLOTS],
            producers: [const { Cell::new(NO_PRODUCER) }; CACHE_SLOTS],
            next: Cell::new(0),
        }
    };
}

impl Cache {
    fn find(&self, ty: usize, tag: c_uint) -> Option<Producer> {
        let slot = self.keys.iter().position(|key| key.get() == (ty, tag))?;
        Some(self.producers[slot].get())
    }

    fn store(&self, entry: Entry) {
        let slot = self.next.get();
        self.keys[slot].set((entry.ty, entry.tag));
        self.producers[slot].set(entry.producer);
        self.next.set((slot + 1) % CACHE_SLOTS);
    }
}

/// The type's version tag; 0 means "none valid" (never cached).
fn version_tag(ty: *mut ffi::PyTypeObject) -> c_uint {
    // SAFETY: `ty` is the live type of a live object; the tag is a plain
    // field, read with the thread attached.
    unsafe { (*ty).tp_version_tag }
}

/// What dlbridge knows of `object`'s type: cached, or learnt now.
pub(crate) fn producer(object: &Bound<'_, PyAny>) -> Producer {
    let ty = object.get_type_ptr();
    let tag = version_tag(ty);
    if tag != 0
        && let Some(found) = CACHE.with(|cache| cache.find(ty.addr(), tag))
    {
        return found;
    }
    let py = object.py();
    let table_name = pyo3::intern!(py, "__dlpack_c_exchange_api__");
    // `_PyType_Lookup` also assigns the type a version tag if it had none.
    let table = type_lookup(object, table_name)
        .filter(|_| table_speaks_for(object, table_name))
        .and_then(|capsule| table_of(&capsule));
    let torch = torch::classify(object, ty);
    let found = Producer {
        from_py_object: table.and_then(|table| table.managed_tensor_from_py_object_no_sync),
        work_stream: table.and_then(|table| table.current_work_stream),
        torch,
        dlpack_defined: lookup::on_type(object, pyo3::intern!(py, "__dlpack__")) == OnType::Defined,
    };
    let tag = version_tag(ty);
    if tag != 0 {
        CACHE.with(|cache| {
            cache.store(Entry {
                ty: ty.addr(),
                tag,
                producer: found,
            })
        });
    }
    found
}

/// Whether the class that publishes the exchange table is at least as
/// derived as the one that defines `__dlpack__`: a subclass that overrides
/// `__dlpack__` (to export read-only, say) but inherits its base's table
/// must be asked through its `__dlpack__`, which the table knows nothing of.
fn table_speaks_for(
    object: &Bound<'_, PyAny>,
    table_name: &Bound<'_, pyo3::types::PyString>,
) -> bool {
    let py = object.py();
    let dlpack_name = pyo3::intern!(py, "__dlpack__");
    for ty in object.get_type().mro().iter() {
        let Ok(dict) = ty.getattr(pyo3::intern!(py, "__dict__")) else {
            return false;
        };
        if dict.contains(table_name).unwrap_or(false) {
            return true;
        }
        if dict.contains(dlpack_name).unwrap_or(false) {
            return false;
        }
    }
    false
}

/// The major-1 table in an exchange-API capsule (walking `prev_api` from a
/// newer one), or `None` when `capsule` holds none: the one place a table
/// is read out of its capsule, for both directions.
pub(crate) fn table_of(capsule: &Bound<'_, PyAny>) -> Option<&'static DLPackExchangeAPI> {
    let mut api = capsule::pointer_of(capsule, Some(CAPSULE_NAME))?
        .as_ptr()
        .cast::<DLPackExchangeAPI>();
    for _ in 0..16 {
        let table = NonNull::new(api)?;
        // SAFETY: the spec makes the table a static, process-lifetime object
        // whose header (and, for a matching major, whole layout) is readable.
        let table: &'static DLPackExchangeAPI = unsafe { table.as_ref() };
        if table.header.version.major == DLPACK_MAJOR_VERSION {
            return Some(table);
        }
        api = table.header.prev_api.cast();
    }
    None
}

/// Imports `object` through its type's exchange table; `Ok(None)` when the
/// type has none, when the table refuses (then `__dlpack__` gives the
/// producer's own verdict), or when the tensor is on a device other than
/// the CPU and CUDA, or on CUDA and either `cpu_only` (a copy is wanted,
/// which only the producer can make) or the ordering cannot be made here.
#[inline(always)]
pub(crate) fn import(
    object: &Bound<'_, PyAny>,
    producer: Producer,
    cpu_only: bool,
) -> PyResult<Option<Tensor>> {
    let Some(from_py_object) = producer.from_py_object else {
        return Ok(None);
    };
    let mut out: *mut DLManagedTensorVersioned = std::ptr::null_mut();
    // SAFETY: the table's contract: takes a borrowed PyObject*, writes an
    // owned managed tensor to `out` and returns 0, or returns -1 with a
    // Python exception set.
    let rc = unsafe { from_py_object(object.as_ptr().cast(), &mut out) };
    if rc != 0 {
        // torch reports even a sparse layout as a RuntimeError here, where
        // its `__dlpack__` says BufferError: let `__dlpack__` answer.
        drop(PyErr::take(object.py()));
        return Ok(None);
    }
    // SAFETY: on success `out` is an owned managed tensor handed to us.
    let managed = unsafe { Managed::from_raw(out) }.map_err(|e| {
        Error::buffer(
            from_raw_cause(&e),
            format!("cannot import DLPack tensor: {e}"),
        )
    })?;
    let tensor = Tensor::try_from(managed)?;
    let device = tensor.device();
    if !device.is_cpu() && (cpu_only || !cuda::is_cuda(device)) {
        return Ok(None);
    }
    // The table skips torch's own refusals; on a refusal the tensor drops
    // here and torch's deleter runs.
    refuse_torch_states(object, producer.torch, Some(tensor.dtype()))?;
    if !device.is_cpu() && !ordered_on_legacy_stream(object.py(), producer, device)? {
        return Ok(None);
    }
    fast_path::EXCHANGE_API.hit();
    Ok(Some(tensor))
}

/// The importer's exchange-table shortcut (`importer.rs`), for a producer
/// whose type publishes a table and defines `__dlpack__`: the tensor the
/// DLPack stage would import (DLPack is the first protocol, and it asks
/// the table first, exactly as here), without the walk to it (the protocol
/// loop, the capsule and ndarray checks, `__dlpack__` looked up again:
/// about 350 of the 3,850 instructions of `asarray(torch tensor)`,
/// measured). Anything but a tensor (the table refusing, another device, a
/// refusal of torch's states) is `None`: the DLPack stage then checks
/// torch's states and asks `__dlpack__` (not the table again: the producer
/// is asked once), and gives its answer in its own words (a refusal there
/// is weighed against the other protocols), so nothing is decided here but
/// the common case. With `copy` (asarray's `copy=True`) a tensor not on the
/// CPU is handed back, as `from_dlpack(copy=True)` hands it back: the
/// DLPack stage asks its producer for the copy.
#[inline(always)]
pub(crate) fn shortcut(object: &Bound<'_, PyAny>, copy: bool) -> Option<Tensor> {
    let producer = producer(object);
    if !producer.dlpack_defined {
        return None;
    }
    import(object, producer, copy).ok().flatten()
}

/// A DLPack exchange table's `managed_tensor_to_py_object_no_sync`.
pub(crate) type ToPyObject =
    unsafe extern "C" fn(*mut DLManagedTensorVersioned, *mut *mut c_void) -> c_int;

/// `tensor` through a producer's `managed_tensor_to_py_object_no_sync`: the
/// versioned managed tensor's ownership passes to the callee, which calls
/// its deleter (releasing the owner once) when its object is gone, or on
/// failure.
pub(crate) fn through_table<'py>(
    py: Python<'py>,
    to_py_object: ToPyObject,
    tensor: Tensor,
) -> PyResult<Bound<'py, PyAny>> {
    let raw = tensor.into_dlpack()?.into_raw();
    let mut out: *mut c_void = std::ptr::null_mut();
    // SAFETY: the exchange contract: `raw` is an owned versioned managed
    // tensor whose ownership passes to the callee (which calls its deleter
    // itself on failure); on success `out` is a new reference.
    let rc = unsafe { to_py_object(raw, &mut out) };
    if rc != 0 || out.is_null() {
        return Err(PyErr::take(py).unwrap_or_else(|| {
            Error::buffer(
                Cause::NoProtocol,
                "a DLPack exchange table refused a tensor without an exception",
            )
            .into()
        }));
    }
    // SAFETY: a new, non-NULL reference to the created object.
    Ok(unsafe { Bound::from_owned_ptr(py, out.cast()) })
}

/// Makes the legacy default stream wait for the producer's work on
/// `device`: nothing when the table's `current_work_stream` is that stream
/// already (NULL, torch's default stream, or `1`); an event recorded on the
/// producer's stream and waited for otherwise. `Ok(false)` when it cannot
/// be done here (no `current_work_stream`, a failing one, no driver): the
/// import then asks `__dlpack__(stream=1)`, and the producer orders it.
#[inline(never)]
fn ordered_on_legacy_stream(py: Python<'_>, producer: Producer, device: Device) -> PyResult<bool> {
    let Some(work_stream) = producer.work_stream else {
        return Ok(false);
    };
    let mut stream: *mut c_void = std::ptr::null_mut();
    let dl_device = device.to_dlpack();
    // SAFETY: the table's contract: writes the producer's current stream of
    // that device to `stream` and returns 0, or returns -1 with a Python
    // exception set. The handle is never dereferenced.
    let rc = unsafe { work_stream(dl_device.device_type, dl_device.device_id, &mut stream) };
    if rc != 0 {
        drop(PyErr::take(py));
        return Ok(false);
    }
    let producer_stream = Stream::from_work_stream(stream.addr());
    if producer_stream == Stream::LEGACY {
        return Ok(true);
    }
    if driver::available().is_err() {
        return Ok(false);
    }
    py.detach(|| driver::make_wait(device, Stream::LEGACY, producer_stream))?;
    Ok(true)
}

// SAFETY: `tensor_view_no_sync` is not published (HAS_DLTENSOR_VIEW is
// false); managed tensors come from `Tensor::to_dlpack_versioned`, which
// follows DLPack's ownership contract; dlbridge never launches device work,
// and the one stream its CUDA tensors are ready on is the legacy default
// stream (`crate::cuda`), which is what `current_work_stream` says.
unsafe impl DlpackExchangeProducer for PyTensor {
    fn managed_tensor_no_sync(
        &self,
        _py: Python<'_>,
    ) -> PyResult<Managed<DLManagedTensorVersioned>> {
        Ok(self.inner.to_dlpack_versioned()?)
    }

    fn current_work_stream(_py: Python<'_>, device: DLDevice) -> PyResult<*mut c_void> {
        // CUDA: the legacy default stream, `CU_STREAM_LEGACY` (1), where
        // every CUDA tensor dlbridge holds is ready; the CPU (and any other
        // device) has no stream: NULL, as the specification allows.
        Ok(if cuda::is_cuda(Device::from_dlpack(device)) {
            std::ptr::without_provenance_mut(Stream::LEGACY.handle())
        } else {
            std::ptr::null_mut()
        })
    }

    fn allocate(prototype: &DLTensor) -> Result<Managed<DLManagedTensorVersioned>, String> {
        let fail = |e: Error| e.to_string();
        if prototype.device.device_type.0 != crate::Device::CPU.device_type {
            return Err(format!(
                "dlbridge allocates CPU memory only, not on device {}",
                crate::Device::from_dlpack(prototype.device)
            ));
        }
        let dtype = DType::from_dlpack(prototype.dtype).map_err(fail)?;
        let ndim = usize::try_from(prototype.ndim)
            .map_err(|_| format!("negative ndim {}", prototype.ndim))?;
        let shape: Vec<usize> = if ndim == 0 {
            Vec::new()
        } else if prototype.shape.is_null() {
            return Err("prototype has a NULL shape".into());
        } else {
            // SAFETY: a prototype with ndim > 0 points at `ndim` extents.
            unsafe { std::slice::from_raw_parts(prototype.shape, ndim) }
                .iter()
                .map(|&n| usize::try_from(n).map_err(|_| format!("negative extent {n}")))
                .collect::<Result<_, _>>()?
        };
        Tensor::empty(&shape, dtype)
            .and_then(|t| t.to_dlpack_versioned())
            .map_err(fail)
    }

    fn from_managed_tensor_no_sync(
        py: Python<'_>,
        tensor: Managed<DLManagedTensorVersioned>,
    ) -> PyResult<Py<Self>> {
        Py::new(py, PyTensor::new(Tensor::try_from(tensor)?))
    }
}
