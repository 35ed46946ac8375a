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
//! with one C call and no capsule. A tensor on another device is handed
//! back (its deleter runs) and imported through `__dlpack__` instead,
//! because the exchange API never synchronises streams.
//!
//! torch's table is less strict than its own `__dlpack__` (measured on
//! torch 2.15): it hands over tensors with the conjugate or negative bit set (the
//! memory holds the un-conjugated or negated values) and tensors that
//! require grad (a writable leaf behind autograd), all without a flag. So
//! every DLPack import of a torch tensor, through the table or through
//! `__dlpack__`, first asks torch itself, through `TensorBase`'s own C
//! descriptors (no attribute lookup), and refuses those states with the fix
//! in the message. A table that fails is not the last word either: the
//! import falls back to `__dlpack__`, whose refusal (`BufferError` for a
//! sparse layout, say) is the producer's considered one.
//!
//! Producer: `dlbridge.Tensor` publishes its own table through dlpark's
//! `install_exchange_api`, so consumers such as PyTorch can skip the capsule.

use std::cell::Cell;
use std::ffi::{CStr, c_uint, c_void};
use std::ptr::NonNull;

use dlpark::Managed;
use dlpark::ffi::{
    DLDevice, DLManagedTensorVersioned, DLPACK_MAJOR_VERSION, DLPackExchangeAPI, DLTensor,
};
use dlpark::python::DlpackExchangeProducer;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use crate::dtype::DType;
use crate::error::Error;
use crate::python::fast_path;
use crate::python::lookup::type_lookup;
use crate::python::tensor::PyTensor;
use crate::tensor::Tensor;

const CAPSULE_NAME: &CStr = c"dlpack_exchange_api";
/// Types remembered per thread; beyond this, the oldest entry is replaced.
const CACHE_SLOTS: usize = 16;

type FromPyObject =
    unsafe extern "C" fn(*mut c_void, *mut *mut DLManagedTensorVersioned) -> std::ffi::c_int;

/// What an import needs to know of a producer's type.
#[derive(Clone, Copy)]
pub(crate) struct Producer {
    /// The table's `managed_tensor_from_py_object_no_sync`, if the type
    /// publishes a compatible (major 1) table.
    from_py_object: Option<FromPyObject>,
    /// Whether (and how) the type is a torch tensor type.
    torch: Torch,
}

/// How a producer type relates to torch.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Torch {
    /// Not a torch tensor type.
    No,
    /// `torch.Tensor`, or a subclass keeping torch's own
    /// `__torch_function__`: its state is read directly.
    Direct,
    /// A subclass with its own `__torch_function__` (`ReadOnlyTensorWrapper`
    /// refuses everything but DLPack): its state is read with subclass
    /// dispatch disabled, as torch's `__dlpack__` reads it.
    Dispatching,
}

/// One cache entry: a type's address and version tag (0: empty).
#[derive(Clone, Copy)]
struct Entry {
    ty: usize,
    tag: c_uint,
    producer: Producer,
}

const EMPTY: Entry = Entry {
    ty: 0,
    tag: 0,
    producer: Producer {
        from_py_object: None,
        torch: Torch::No,
    },
};

/// A small per-thread cache: no lock, no atomics, no references held.
struct Cache {
    entries: [Cell<Entry>; CACHE_SLOTS],
    next: Cell<usize>,
}

thread_local! {
    static CACHE: Cache = const {
        Cache {
            entries: [const { Cell::new(EMPTY) }; CACHE_SLOTS],
            next: Cell::new(0),
        }
    };
}

impl Cache {
    fn find(&self, ty: usize, tag: c_uint) -> Option<Producer> {
        self.entries.iter().find_map(|entry| {
            let entry = entry.get();
            (entry.ty == ty && entry.tag == tag).then_some(entry.producer)
        })
    }

    fn store(&self, entry: Entry) {
        let slot = self.next.get();
        self.entries[slot].set(entry);
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
    let from_py_object = type_lookup(object, table_name)
        .filter(|_| table_speaks_for(object, table_name))
        .and_then(|capsule| table_of(&capsule))
        .and_then(|table| table.managed_tensor_from_py_object_no_sync);
    let torch = match TorchGuard::get(py, ty) {
        None => Torch::No,
        Some(guard) => {
            let own = type_lookup(object, pyo3::intern!(py, "__torch_function__"));
            let torchs = |f: &Option<Py<PyAny>>| {
                f.as_ref()
                    .zip(own.as_ref())
                    .is_some_and(|(f, own)| f.as_ptr() == own.as_ptr())
            };
            if own.is_none()
                || torchs(&guard.default_torch_function)
                || torchs(&guard.disabled_torch_function)
            {
                Torch::Direct
            } else {
                Torch::Dispatching
            }
        }
    };
    let found = Producer {
        from_py_object,
        torch,
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
    // SAFETY: IsValid only inspects the object; it checks the type and name.
    if unsafe { ffi::PyCapsule_IsValid(capsule.as_ptr(), CAPSULE_NAME.as_ptr()) } != 1 {
        return None;
    }
    // SAFETY: validated above as a capsule with this name.
    let mut api = unsafe { ffi::PyCapsule_GetPointer(capsule.as_ptr(), CAPSULE_NAME.as_ptr()) }
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

/// `torch._C.TensorBase` and the C descriptors of the states an import
/// must refuse. Found once per process, from the first torch tensor type
/// seen (torch is never imported by dlbridge). The descriptors belong to
/// torch's static base type, so holding them keeps no user type alive.
struct TorchGuard {
    base: Py<pyo3::types::PyType>,
    /// `torch.Tensor.__dict__["__torch_function__"]` (torch's default).
    default_torch_function: Option<Py<PyAny>>,
    /// `torch._C._disabled_torch_function_impl` (`nn.Parameter`'s).
    disabled_torch_function: Option<Py<PyAny>>,
    /// `torch._C.DisableTorchFunctionSubclass`, a context manager.
    disable_subclass_dispatch: Option<Py<PyAny>>,
    /// `TensorBase.requires_grad` (a getset descriptor).
    requires_grad: Flag,
    /// `TensorBase.is_conj` (a `METH_NOARGS` method descriptor).
    is_conj: Flag,
    /// `TensorBase.is_neg` (a `METH_NOARGS` method descriptor).
    is_neg: Flag,
}

static TORCH: PyOnceLock<TorchGuard> = PyOnceLock::new();

const TENSOR_BASE: &CStr = c"torch._C.TensorBase";

impl TorchGuard {
    /// The guard, if `ty` is a torch tensor type.
    fn get(py: Python<'_>, ty: *mut ffi::PyTypeObject) -> Option<&'static Self> {
        if let Some(guard) = TORCH.get(py) {
            // SAFETY: both are live type objects.
            let sub = unsafe { ffi::PyType_IsSubtype(ty, guard.base.as_ptr().cast()) };
            return (sub != 0).then_some(guard);
        }
        let base = tensor_base(py, ty)?;
        let descriptor = |name: &str| {
            base.getattr(pyo3::types::PyString::new(py, name))
                .ok()
                .and_then(Flag::of)
        };
        let c = py.import("torch._C").ok();
        let from_c = |name: &str| {
            c.as_ref()
                .and_then(|c| c.getattr(name).ok())
                .map(Bound::unbind)
        };
        let default_torch_function = py
            .import("torch")
            .and_then(|torch| {
                torch
                    .getattr("Tensor")?
                    .getattr("__dict__")?
                    .get_item("__torch_function__")
            })
            .ok()
            .map(Bound::unbind);
        let guard = TorchGuard {
            default_torch_function,
            disabled_torch_function: from_c("_disabled_torch_function_impl"),
            disable_subclass_dispatch: from_c("DisableTorchFunctionSubclass"),
            requires_grad: descriptor("requires_grad")?,
            is_conj: descriptor("is_conj")?,
            is_neg: descriptor("is_neg")?,
            base: base.unbind(),
        };
        Some(TORCH.get_or_init(py, || guard))
    }
}

/// `torch._C.TensorBase` if it is in `ty`'s MRO (found by its name: the MRO
/// of a torch tensor type always ends in it, then `object`).
fn tensor_base(
    py: Python<'_>,
    ty: *mut ffi::PyTypeObject,
) -> Option<Bound<'_, pyo3::types::PyType>> {
    // SAFETY: `ty` is a live type; its MRO is a tuple it owns (or NULL
    // while the type is being built, never for the type of a live object).
    let mro = unsafe { (*ty).tp_mro };
    if mro.is_null() {
        return None;
    }
    // SAFETY: a borrowed reference to the type's live MRO tuple.
    let mro = unsafe { Bound::from_borrowed_ptr(py, mro) };
    let mro = mro.cast::<pyo3::types::PyTuple>().ok()?;
    mro.iter().find_map(|base| {
        let base = base.cast_into::<pyo3::types::PyType>().ok()?;
        // SAFETY: a live type object's `tp_name` is a NUL-terminated string.
        let name = unsafe { CStr::from_ptr((*base.as_type_ptr()).tp_name) };
        (name == TENSOR_BASE).then_some(base)
    })
}

/// Refuses a torch tensor whose memory does not mean what the tensor
/// means, or that autograd guards, with the fix in the message: torch's
/// `__dlpack__` refuses `requires_grad` and the conjugate bit; the negative
/// bit it exports silently, with its sign lost (torch 2.15).
///
/// `dtype` is the element type when the tensor is already in hand (the
/// exchange path): `is_conj()` and `is_neg()` each release and retake the
/// GIL inside torch (about 690 instructions apiece, against 245 for the
/// `requires_grad` getter), so they are asked only where the bit can be
/// set: the conjugate bit on complex tensors (torch's `conj()` of a real
/// tensor is the tensor itself), the negative bit on anything but `bool`
/// (torch has no negation for it). `None` (before `__dlpack__`) asks all.
pub(crate) fn refuse_torch_states(
    object: &Bound<'_, PyAny>,
    producer: Producer,
    dtype: Option<DType>,
) -> PyResult<()> {
    let py = object.py();
    let Some(guard) = TORCH.get(py) else {
        return Ok(());
    };
    let asks = Asks {
        conj: dtype.is_none_or(|d| d.code() == COMPLEX_CODE),
        neg: dtype.is_none_or(|d| d != DType::BOOL),
    };
    match producer.torch {
        Torch::No => Ok(()),
        Torch::Direct => guard.refuse(object, asks),
        Torch::Dispatching => {
            let Some(disable) = &guard.disable_subclass_dispatch else {
                return guard.refuse(object, asks);
            };
            let context = disable.bind(py).call0()?;
            context.call_method0(pyo3::intern!(py, "__enter__"))?;
            let verdict = guard.refuse(object, asks);
            let none = py.None();
            context.call_method1(pyo3::intern!(py, "__exit__"), (&none, &none, &none))?;
            verdict
        }
    }
}

/// DLPack's complex type code.
const COMPLEX_CODE: u8 = 5;

/// Which view bits a tensor of a given dtype can carry.
#[derive(Clone, Copy)]
struct Asks {
    conj: bool,
    neg: bool,
}

impl TorchGuard {
    fn refuse(&self, object: &Bound<'_, PyAny>, asks: Asks) -> PyResult<()> {
        let guard = self;
        if guard.requires_grad.read(object)? {
            return Err(Error::buffer(
                "cannot import a torch.Tensor that requires grad: writes through the import \
             would bypass autograd; use tensor.detach()",
            )
            .into());
        }
        if asks.conj && guard.is_conj.read(object)? {
            return Err(Error::buffer(
                "cannot import a torch.Tensor with the conjugate bit set: its memory holds the \
             un-conjugated values; use tensor.resolve_conj()",
            )
            .into());
        }
        if asks.neg && guard.is_neg.read(object)? {
            return Err(Error::buffer(
                "cannot import a torch.Tensor with the negative bit set: its memory holds the \
             negated values; use tensor.resolve_neg()",
            )
            .into());
        }
        Ok(())
    }
}

/// One boolean state of a torch tensor, read through torch's own C function
/// taken from its descriptor: calling it directly skips the descriptor's
/// argument and type checks and the attribute lookup (a third of the cost
/// of the three checks, measured), and is what the descriptor itself would
/// call for an instance of `TensorBase`, which every guarded object is.
enum Flag {
    /// A getset descriptor's getter and its closure (an address).
    Getter {
        get: ffi::getter,
        closure: usize,
        _descriptor: Py<PyAny>,
    },
    /// A `METH_NOARGS` method's C function.
    NoArgs {
        meth: ffi::PyCFunction,
        _descriptor: Py<PyAny>,
    },
}

impl Flag {
    /// The C function behind `descriptor`, if it is a plain getset
    /// descriptor or a `METH_NOARGS` method descriptor.
    fn of(descriptor: Bound<'_, PyAny>) -> Option<Self> {
        let ptr = descriptor.as_ptr();
        // SAFETY: the type checks come first; each struct is then read as
        // the exact type CPython defines it with, and the definitions it
        // points to (`PyGetSetDef`, `PyMethodDef`) live as long as torch's
        // static type, which the descriptor (kept here) keeps alive anyway.
        unsafe {
            let ty = ffi::Py_TYPE(ptr);
            if ty == &raw mut ffi::PyGetSetDescr_Type {
                let def = (*ptr.cast::<ffi::PyGetSetDescrObject>()).d_getset;
                let get = def.as_ref()?.get?;
                return Some(Self::Getter {
                    get,
                    closure: (*def).closure.expose_provenance(),
                    _descriptor: descriptor.unbind(),
                });
            }
            if ty == &raw mut ffi::PyMethodDescr_Type {
                let def = (*ptr.cast::<ffi::PyMethodDescrObject>())
                    .d_method
                    .as_ref()?;
                if def.ml_flags != ffi::METH_NOARGS {
                    return None;
                }
                return Some(Self::NoArgs {
                    meth: def.ml_meth.PyCFunction,
                    _descriptor: descriptor.unbind(),
                });
            }
        }
        None
    }

    /// Whether the state is set (`True`) on `object`, a `TensorBase`.
    fn read(&self, object: &Bound<'_, PyAny>) -> PyResult<bool> {
        let py = object.py();
        // SAFETY: `object` is an instance of the type the descriptor belongs
        // to (checked by `TorchGuard::get`), the GIL is held, and both
        // calling conventions return a new reference or NULL with an
        // exception set.
        let result = unsafe {
            let raw = match self {
                Self::Getter { get, closure, .. } => get(
                    object.as_ptr(),
                    std::ptr::with_exposed_provenance_mut(*closure),
                ),
                Self::NoArgs { meth, .. } => meth(object.as_ptr(), std::ptr::null_mut()),
            };
            Bound::from_owned_ptr_or_err(py, raw)?
        };
        Ok(result.as_ptr() == true_ptr())
    }
}

fn true_ptr() -> *mut ffi::PyObject {
    // SAFETY: `Py_True` returns the address of the immortal `True` singleton.
    unsafe { ffi::Py_True() }
}

/// Imports `object` through its type's exchange table; `Ok(None)` when the
/// type has none, when the table refuses (then `__dlpack__` gives the
/// producer's own verdict) or when the tensor is not on the CPU.
pub(crate) fn import(object: &Bound<'_, PyAny>, producer: Producer) -> PyResult<Option<Tensor>> {
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
    let managed = unsafe { Managed::from_raw(out) }
        .map_err(|e| Error::buffer(format!("cannot import DLPack tensor: {e}")))?;
    let tensor = Tensor::try_from(managed)?;
    if !tensor.device().is_cpu() {
        return Ok(None);
    }
    // The table skips torch's own refusals; on a refusal the tensor drops
    // here and torch's deleter runs.
    refuse_torch_states(object, producer, Some(tensor.dtype()))?;
    fast_path::EXCHANGE_API.hit();
    Ok(Some(tensor))
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
