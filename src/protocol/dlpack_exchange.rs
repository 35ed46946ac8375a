//! DLPack 1.3 C exchange API (`__dlpack_c_exchange_api__`): both sides.
//!
//! Consumer: the table lives on the producer's *type*, so it is looked up
//! once per type and cached in lock-free slots (each holds a strong
//! reference to its type, so a cached address can never be reused by another
//! type; a mutex around every lookup was a third of the import's time). A CPU tensor
//! then comes across with one C call and no capsule. A tensor on another
//! device is handed back (its deleter runs) and imported through
//! `__dlpack__` instead, because the exchange API never synchronises streams.
//!
//! Producer: `dlbridge.Tensor` publishes its own table through dlpark's
//! `install_exchange_api`, so consumers such as PyTorch can skip the capsule.

use std::ffi::{CStr, c_void};
use std::ptr::NonNull;
use std::sync::Mutex;
use std::sync::atomic::{AtomicPtr, Ordering};

use dlpark::Managed;
use dlpark::ffi::{
    DLDevice, DLManagedTensorVersioned, DLPACK_MAJOR_VERSION, DLPackExchangeAPI, DLTensor,
};
use dlpark::python::DlpackExchangeProducer;
use pyo3::prelude::*;
use pyo3::types::PyType;

use crate::dtype::DType;
use crate::error::Error;
use crate::python::tensor::PyTensor;
use crate::tensor::Tensor;

const CAPSULE_NAME: &CStr = c"dlpack_exchange_api";
/// Types remembered; beyond this, lookups are simply not cached.
const CACHE_SLOTS: usize = 32;

type FromPyObject =
    unsafe extern "C" fn(*mut c_void, *mut *mut DLManagedTensorVersioned) -> std::ffi::c_int;

/// One remembered type: its address and its table's import function
/// (NULL when the type publishes no usable table).
///
/// Readers take no lock: a slot's function is stored before its type, with
/// release ordering, so a reader that sees the type (acquire) sees the
/// function written for it. Slots are written once and never reused, and
/// each remembered type is kept alive by a leaked strong reference, so an
/// address can never come to mean another type.
struct Slot {
    ty: AtomicPtr<pyo3::ffi::PyTypeObject>,
    from_py_object: AtomicPtr<()>,
}

static SLOTS: [Slot; CACHE_SLOTS] = [const {
    Slot {
        ty: AtomicPtr::new(std::ptr::null_mut()),
        from_py_object: AtomicPtr::new(std::ptr::null_mut()),
    }
}; CACHE_SLOTS];
/// Serialises writers only (first sight of a type).
static FILLING: Mutex<()> = Mutex::new(());

fn decode(value: *mut ()) -> Option<FromPyObject> {
    (!value.is_null()).then(|| {
        // SAFETY: a non-NULL value was stored by `remember` from a valid
        // `FromPyObject` function pointer.
        unsafe { std::mem::transmute::<*mut (), FromPyObject>(value) }
    })
}

fn find(ty: *mut pyo3::ffi::PyTypeObject) -> Option<Option<FromPyObject>> {
    for slot in &SLOTS {
        let seen = slot.ty.load(Ordering::Acquire);
        if seen.is_null() {
            return None;
        }
        if seen == ty {
            return Some(decode(slot.from_py_object.load(Ordering::Relaxed)));
        }
    }
    None
}

/// The producer's `managed_tensor_from_py_object_no_sync`, if its type
/// publishes a compatible (major 1) exchange table.
fn lookup(object: &Bound<'_, PyAny>) -> PyResult<Option<FromPyObject>> {
    let ty = object.get_type();
    if let Some(found) = find(ty.as_type_ptr()) {
        return Ok(found);
    }
    let found = match ty.getattr_opt(pyo3::intern!(object.py(), "__dlpack_c_exchange_api__"))? {
        None => None,
        Some(capsule) => table_of(&capsule),
    };
    remember(ty, found);
    Ok(found)
}

/// Stores `found` for `ty` in the first free slot (none left: not cached).
fn remember(ty: Bound<'_, PyType>, found: Option<FromPyObject>) {
    let _writer = FILLING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let ptr = ty.as_type_ptr();
    for slot in &SLOTS {
        let seen = slot.ty.load(Ordering::Acquire);
        if seen == ptr {
            return;
        }
        if seen.is_null() {
            slot.from_py_object.store(
                found.map_or(std::ptr::null_mut(), |f| f as *mut ()),
                Ordering::Relaxed,
            );
            // The type stays alive for as long as its address is remembered.
            std::mem::forget(ty.unbind());
            slot.ty.store(ptr, Ordering::Release);
            return;
        }
    }
}

/// Reads a table out of its capsule, walking `prev_api` to a major-1 table.
fn table_of(capsule: &Bound<'_, PyAny>) -> Option<FromPyObject> {
    // SAFETY: IsValid only inspects the object; it checks the type and name.
    if unsafe { pyo3::ffi::PyCapsule_IsValid(capsule.as_ptr(), CAPSULE_NAME.as_ptr()) } != 1 {
        return None;
    }
    // SAFETY: validated above as a capsule with this name.
    let mut api =
        unsafe { pyo3::ffi::PyCapsule_GetPointer(capsule.as_ptr(), CAPSULE_NAME.as_ptr()) }
            .cast::<DLPackExchangeAPI>();
    for _ in 0..16 {
        let table = NonNull::new(api)?;
        // SAFETY: the spec makes the table a static, process-lifetime object
        // whose header (and, for a matching major, whole layout) is readable.
        let table = unsafe { table.as_ref() };
        if table.header.version.major == DLPACK_MAJOR_VERSION {
            return table.managed_tensor_from_py_object_no_sync;
        }
        api = table.header.prev_api.cast();
    }
    None
}

/// Imports `object` through its type's exchange table; `Ok(None)` when the
/// type has none or the tensor is not on the CPU (then use `__dlpack__`).
pub(crate) fn import(object: &Bound<'_, PyAny>) -> PyResult<Option<Tensor>> {
    let Some(from_py_object) = lookup(object)? else {
        return Ok(None);
    };
    let mut out: *mut DLManagedTensorVersioned = std::ptr::null_mut();
    // SAFETY: the table's contract: takes a borrowed PyObject*, writes an
    // owned managed tensor to `out` and returns 0, or returns -1 with a
    // Python exception set.
    let rc = unsafe { from_py_object(object.as_ptr().cast(), &mut out) };
    if rc != 0 {
        return Err(PyErr::take(object.py()).unwrap_or_else(|| {
            Error::buffer("DLPack exchange API failed without setting an exception").into()
        }));
    }
    // SAFETY: on success `out` is an owned managed tensor handed to us.
    let managed = unsafe { Managed::from_raw(out) }
        .map_err(|e| Error::buffer(format!("cannot import DLPack tensor: {e}")))?;
    let tensor = Tensor::try_from(managed)?;
    Ok(tensor.device().is_cpu().then_some(tensor))
}

// SAFETY: `tensor_view_no_sync` is not published (HAS_DLTENSOR_VIEW is
// false); managed tensors come from `Tensor::to_dlpack_versioned`, which
// follows DLPack's ownership contract; dlbridge never launches device work,
// so it has no work stream (NULL) on any device.
unsafe impl DlpackExchangeProducer for PyTensor {
    fn managed_tensor_no_sync(
        &self,
        _py: Python<'_>,
    ) -> PyResult<Managed<DLManagedTensorVersioned>> {
        Ok(self.inner.to_dlpack_versioned()?)
    }

    fn current_work_stream(_py: Python<'_>, _device: DLDevice) -> PyResult<*mut c_void> {
        Ok(std::ptr::null_mut())
    }

    fn allocate(prototype: &DLTensor) -> Result<Managed<DLManagedTensorVersioned>, String> {
        let fail = |e: Error| e.to_string();
        if prototype.device.device_type.0 != crate::Device::CPU.device_type {
            return Err("dlbridge allocates CPU memory only".into());
        }
        let dtype = DType::from_dlpack(prototype.dtype).map_err(fail)?;
        let ndim = usize::try_from(prototype.ndim).map_err(|_| "negative ndim".to_string())?;
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
