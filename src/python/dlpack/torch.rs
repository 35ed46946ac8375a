//! torch tensors: the states a DLPack import must refuse, read through
//! torch's own C functions.
//!
//! torch's C exchange table is less strict than its own `__dlpack__`
//! (measured on torch 2.15): it hands over tensors with the conjugate or
//! negative bit set (the memory holds the un-conjugated or negated values)
//! and tensors that require grad (a writable leaf behind autograd), all
//! without a flag; its `__dlpack__` refuses conj and `requires_grad` but
//! exports the negative bit silently. So every DLPack import of a torch
//! tensor, through the table or through `__dlpack__`, asks torch itself,
//! through `TensorBase`'s own C descriptors (no attribute lookup), and
//! refuses those states with the fix in the message. torch is never
//! imported by dlbridge: its base type is recognised by identity, as the
//! `TensorBase` of the loaded `torch._C` module (`known_types`).

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use crate::dtype::DType;
use crate::error::{Cause, Error};
use crate::python::known_types::{self, KnownType};
use crate::python::lookup::type_lookup;

/// How a producer type relates to torch.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Torch {
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

/// How `object`'s type (`ty`) relates to torch.
pub(crate) fn classify(object: &Bound<'_, PyAny>, ty: *mut ffi::PyTypeObject) -> Torch {
    let py = object.py();
    let Some(guard) = TorchGuard::get(py, ty) else {
        return Torch::No;
    };
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

impl TorchGuard {
    /// The guard, if `ty` is a torch tensor type.
    fn get(py: Python<'_>, ty: *mut ffi::PyTypeObject) -> Option<&'static Self> {
        if let Some(guard) = TORCH.get(py) {
            // SAFETY: both are live type objects.
            let sub = unsafe { ffi::PyType_IsSubtype(ty, guard.base.as_ptr().cast()) };
            return (sub != 0).then_some(guard);
        }
        let base = tensor_base(py, ty)?;
        // A state this torch cannot have (no such attribute) is never asked;
        // one whose descriptor is not the plain C kind is still asked,
        // through Python: a check may be slow, never silently skipped.
        let descriptor = |name: &str| {
            Some(match base.getattr(pyo3::types::PyString::new(py, name)) {
                Err(_) => Flag::Absent,
                Ok(descriptor) => Flag::of(&descriptor).unwrap_or(Flag::Python {
                    callable: descriptor.is_callable(),
                    descriptor: descriptor.unbind(),
                }),
            })
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

/// `torch._C.TensorBase` if it is in `ty`'s MRO: the type object of the
/// loaded `torch._C` module, by identity (see `known_types`).
fn tensor_base(
    py: Python<'_>,
    ty: *mut ffi::PyTypeObject,
) -> Option<Bound<'_, pyo3::types::PyType>> {
    let (kind, base) = known_types::find_in_mro(py, ty)?;
    if kind != KnownType::TorchTensorBase {
        return None;
    }
    // SAFETY: `base` is an entry of a live type's MRO (a live type object),
    // borrowed for as long as `ty` lives; a new reference is taken.
    let base = unsafe { Bound::from_borrowed_ptr(py, base.cast()) };
    base.cast_into::<pyo3::types::PyType>().ok()
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
    torch: Torch,
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
    match torch {
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
                Cause::ProducerState,
                "cannot import a torch.Tensor that requires grad: writes through the import \
                 would bypass autograd; use tensor.detach()",
            )
            .into());
        }
        if asks.conj && guard.is_conj.read(object)? {
            return Err(Error::buffer(
                Cause::ProducerState,
                "cannot import a torch.Tensor with the conjugate bit set: its memory holds the \
                 un-conjugated values; use tensor.resolve_conj()",
            )
            .into());
        }
        if asks.neg && guard.is_neg.read(object)? {
            return Err(Error::buffer(
                Cause::ProducerState,
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
    /// A descriptor of another kind, asked through Python: called with the
    /// tensor if it is callable (a method), else `__get__` (a property).
    Python {
        descriptor: Py<PyAny>,
        callable: bool,
    },
    /// This torch has no such state: nothing to ask.
    Absent,
}

impl Flag {
    /// The C function behind `descriptor`, if it is a plain getset
    /// descriptor or a `METH_NOARGS` method descriptor.
    fn of(descriptor: &Bound<'_, PyAny>) -> Option<Self> {
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
                    _descriptor: descriptor.clone().unbind(),
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
                    _descriptor: descriptor.clone().unbind(),
                });
            }
        }
        None
    }

    /// Whether the state is set (`True`) on `object`, a `TensorBase`.
    fn read(&self, object: &Bound<'_, PyAny>) -> PyResult<bool> {
        let py = object.py();
        match self {
            Self::Absent => return Ok(false),
            Self::Python {
                descriptor,
                callable,
            } => {
                let descriptor = descriptor.bind(py);
                let value = if *callable {
                    descriptor.call1((object,))?
                } else {
                    descriptor
                        .call_method1(pyo3::intern!(py, "__get__"), (object, object.get_type()))?
                };
                return value.is_truthy();
            }
            Self::Getter { .. } | Self::NoArgs { .. } => {}
        }
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
                Self::Python { .. } | Self::Absent => unreachable!("answered above"),
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
