//! The frameworks' base types, recognised by identity, never by name.
//!
//! dlbridge imports none of NumPy, torch or JAX to recognise their arrays,
//! yet it must never mistake another type for theirs: a torch tensor is
//! read through torch's own C functions, so a pure-Python class that
//! merely *names* itself `torch._C.TensorBase` and is taken for torch's
//! base makes those functions run on a foreign object (a crash), or,
//! remembered as the base, hides every real torch tensor from the checks
//! that refuse a lost sign or a writable `requires_grad` tensor.
//!
//! So a type's `tp_name` only nominates it: `"torch._C.TensorBase"` names
//! the attribute `TensorBase` of the module `torch._C`, and the type is
//! torch's only if it *is* that attribute of the module already in
//! `sys.modules` (no import: if torch is not loaded, no torch tensor
//! exists). Once found, the type's address is remembered (with a strong
//! reference, so the address is never reused) and compared from then on.

use std::ffi::CStr;
use std::sync::atomic::{AtomicPtr, Ordering};

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

/// A framework base type dlbridge recognises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KnownType {
    /// `numpy.ndarray`.
    NdArray,
    /// `torch._C.TensorBase` (`_TensorBase` before torch 2.2), the base of
    /// every torch tensor type.
    TorchTensorBase,
    /// `jax.Array`'s implementation type in jaxlib.
    JaxArray,
    /// `pyarrow.ChunkedArray`, whose `__array__` always copies.
    ChunkedArray,
}

const KINDS: [KnownType; 4] = [
    KnownType::NdArray,
    KnownType::TorchTensorBase,
    KnownType::JaxArray,
    KnownType::ChunkedArray,
];

/// The resolved address of each kind (null until seen), in `KINDS` order.
static RESOLVED: [AtomicPtr<ffi::PyTypeObject>; 4] = [
    AtomicPtr::new(std::ptr::null_mut()),
    AtomicPtr::new(std::ptr::null_mut()),
    AtomicPtr::new(std::ptr::null_mut()),
    AtomicPtr::new(std::ptr::null_mut()),
];

impl KnownType {
    /// The `tp_name`s that nominate a type for this kind: `module.attr`.
    fn names(self) -> &'static [&'static CStr] {
        match self {
            Self::NdArray => &[c"numpy.ndarray"],
            Self::TorchTensorBase => &[c"torch._C.TensorBase", c"torch._C._TensorBase"],
            Self::JaxArray => &[c"jaxlib._jax.Array", c"jaxlib.xla_extension.Array"],
            Self::ChunkedArray => &[c"pyarrow.lib.ChunkedArray"],
        }
    }

    fn slot(self) -> &'static AtomicPtr<ffi::PyTypeObject> {
        &RESOLVED[self as usize]
    }

    /// Whether `ty` is this kind's type (resolving it on first sight).
    /// Inlined: once resolved, an atomic load and a compare.
    #[inline]
    fn is(self, py: Python<'_>, ty: *mut ffi::PyTypeObject) -> bool {
        let known = self.slot().load(Ordering::Acquire);
        if !known.is_null() {
            return ty == known;
        }
        self.resolve(py, ty)
    }

    /// `is` before this kind's type is known: resolves it if `ty` is it.
    fn resolve(self, py: Python<'_>, ty: *mut ffi::PyTypeObject) -> bool {
        // SAFETY: `ty` is a live type object; `tp_name` is a NUL-terminated
        // string it owns.
        let name = unsafe { CStr::from_ptr((*ty).tp_name) };
        if !self.names().contains(&name) || !is_module_attribute(py, ty, name) {
            return false;
        }
        // SAFETY: `ty` is a live type; the new strong reference is never
        // released, so the address stays this type's for the process.
        unsafe { ffi::Py_IncRef(ty.cast()) };
        self.slot().store(ty, Ordering::Release);
        true
    }
}

/// Whether `ty` is exactly `kind`'s type.
pub(crate) fn is(py: Python<'_>, ty: *mut ffi::PyTypeObject, kind: KnownType) -> bool {
    kind.is(py, ty)
}

/// The known kind `ty` itself is, if any.
#[inline]
pub(crate) fn kind_of(py: Python<'_>, ty: *mut ffi::PyTypeObject) -> Option<KnownType> {
    KINDS.into_iter().find(|kind| kind.is(py, ty))
}

/// The first type in `ty`'s MRO that is a known kind, with that kind.
#[inline]
pub(crate) fn find_in_mro(
    py: Python<'_>,
    ty: *mut ffi::PyTypeObject,
) -> Option<(KnownType, *mut ffi::PyTypeObject)> {
    // The type itself heads its MRO: an exact framework type (the usual
    // argument) is answered inline, without walking the tuple.
    if let Some(kind) = kind_of(py, ty) {
        return Some((kind, ty));
    }
    find_in_bases(py, ty)
}

/// `find_in_mro` past the type itself: its bases, in MRO order.
fn find_in_bases(
    py: Python<'_>,
    ty: *mut ffi::PyTypeObject,
) -> Option<(KnownType, *mut ffi::PyTypeObject)> {
    // SAFETY: `ty` is a live type; its MRO is a tuple it owns (NULL only
    // while the type is being built, never for the type of a live object).
    let mro = unsafe { (*ty).tp_mro };
    if mro.is_null() {
        return None;
    }
    // SAFETY: a borrowed reference to the type's live MRO tuple.
    let mro = unsafe { Bound::from_borrowed_ptr(py, mro) };
    let mro = mro.cast::<PyTuple>().ok()?;
    mro.iter().find_map(|base| {
        let base = base.as_ptr().cast::<ffi::PyTypeObject>();
        kind_of(py, base).map(|kind| (kind, base))
    })
}

/// Whether `ty` is `sys.modules[module].attr`, where `name` is
/// `"module.attr"`. Nothing is imported; a missing module or attribute is
/// "no".
pub(crate) fn is_module_attribute(py: Python<'_>, ty: *mut ffi::PyTypeObject, name: &CStr) -> bool {
    let Ok(name) = name.to_str() else {
        return false;
    };
    let Some((module, attr)) = name.rsplit_once('.') else {
        return false;
    };
    let Ok(Some(module)) = py
        .import("sys")
        .and_then(|sys| sys.getattr("modules"))
        .and_then(|modules| modules.get_item(module).map(Some).or(Ok(None)))
    else {
        return false;
    };
    module
        .getattr(attr)
        .is_ok_and(|found| found.as_ptr().cast::<ffi::PyTypeObject>() == ty)
}
