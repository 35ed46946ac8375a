//! `__array_struct__` both ways: capsules in (the capsule is the owner),
//! capsules out (a block holding the interface and the tensor object).

use pyo3::ffi;
use pyo3::prelude::*;

use super::{refuse_records, resolve_void};
use crate::error::{Cause, Error};
use crate::owner::Holder;
use crate::protocol::array_interface::{self as core, PyArrayInterface, StructBlock};
use crate::python::capsule;
use crate::python::names::type_name;
use crate::python::owner::PyOwner;
use crate::python::tensor::PyTensor;
use crate::tensor::Tensor;

/// Imports an `__array_struct__` capsule; the capsule becomes the owner.
pub(crate) fn import_struct(
    object: &Bound<'_, PyAny>,
    capsule: &Bound<'_, PyAny>,
) -> PyResult<Tensor> {
    let Some(name) = capsule::name_of(capsule) else {
        return Err(PyErr::from(Error::type_error(
            Cause::Capsule,
            format!(
                "__array_struct__ of {} is a {}, not a capsule",
                type_name(object),
                type_name(capsule)
            ),
        )));
    };
    // Own the capsule before reading anything out of it: every refusal below
    // drops this reference, and the capsule's destructor runs when it should.
    let owner = PyOwner::new(capsule.clone().unbind());
    if let Some(name) = name {
        return Err(Error::value(
            Cause::Capsule,
            format!(
                "__array_struct__ capsule is named {name:?}; a PyArrayInterface capsule has no name"
            ),
        )
        .into());
    }
    let raw = capsule::pointer_under(capsule, None, || {
        Error::value(Cause::Capsule, "__array_struct__ capsule holds NULL").into()
    })?;
    // SAFETY: an unnamed `__array_struct__` capsule holds a PyArrayInterface
    // (the protocol's contract) that lives as long as the capsule, which
    // `owner` keeps alive; it is only read.
    let interface = unsafe { raw.cast::<PyArrayInterface>().as_ref() };
    let descriptor = core::describe_struct(
        interface,
        |descr| {
            // SAFETY: with ARR_HAS_DESCR the descr field is a live object
            // owned by the struct; it is borrowed for this check only.
            let descr = unsafe { Bound::from_borrowed_ptr(object.py(), descr.cast()) };
            refuse_records(&descr)
        },
        |itemsize| resolve_void(object, itemsize),
    )?;
    // SAFETY: the producer keeps `data` valid over the described layout for
    // as long as the capsule lives, and the owner holds the capsule.
    Ok(unsafe { Tensor::from_held(descriptor, Holder::new(owner)) })
}

/// `Tensor.__array_struct__`: a fresh unnamed capsule per call, whose block
/// holds a reference to the `dlbridge.Tensor` (as NumPy's holds the array):
/// the interface points into its frozen tensor's layout arrays.
pub(crate) fn struct_capsule<'py>(tensor: &Bound<'py, PyTensor>) -> PyResult<Bound<'py, PyAny>> {
    let py = tensor.py();
    let keep = tensor.clone().into_any().unbind();
    // SAFETY: a `dlbridge.Tensor` is frozen: its tensor never changes and,
    // inside the object, never moves; `keep` holds the object until the
    // block is freed.
    let raw = unsafe { StructBlock::kept(&tensor.get().inner, keep) }?.into_raw();
    // SAFETY: a NULL name is what the protocol requires; `raw` is the
    // interface's address (the block's), and the capsule owns the block:
    // `free_struct_block` frees it once.
    let capsule =
        unsafe { ffi::PyCapsule_New(raw.cast(), std::ptr::null(), Some(free_struct_block)) };
    if capsule.is_null() {
        // SAFETY: the capsule was not created: the block is still ours alone,
        // taken back once, as the `StructBlock<Kept>` it was made.
        drop(unsafe { StructBlock::<Kept>::from_raw(raw) });
        return Err(PyErr::fetch(py));
    }
    // SAFETY: PyCapsule_New returned a new reference.
    Ok(unsafe { Bound::from_owned_ptr(py, capsule) })
}

/// What an exported block keeps: the `dlbridge.Tensor` object.
type Kept = Py<PyAny>;

/// Destructor of an exported `__array_struct__` capsule: frees the block
/// (and with it its reference to the tensor object). Nothing here can
/// unwind, and the dying capsule is never turned into a new reference.
unsafe extern "C" fn free_struct_block(capsule: *mut ffi::PyObject) {
    // SAFETY: CPython passes the capsule being destroyed, attached.
    let Some(block) = (unsafe { capsule::pointer_in(capsule, None) }) else {
        return;
    };
    // SAFETY: the block came from StructBlock::<Kept>::into_raw in
    // `struct_capsule` and only this destructor, run once per capsule, takes
    // it back.
    let block = unsafe { StructBlock::<Kept>::from_raw(block.cast::<PyArrayInterface>().as_ptr()) };
    // Released here, not by dropping the `Py`: CPython runs this attached,
    // but outside any PyO3 frame, where PyO3 would only queue the decrement
    // for later (the object outlived its last capsule, measured).
    // SAFETY: the GIL is held (a capsule destructor); the reference is the
    // block's own, released once. It may free the tensor object.
    unsafe { ffi::Py_DECREF(block.into_keep().into_ptr()) };
}
