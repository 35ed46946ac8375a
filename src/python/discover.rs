//! The protocol stages of the one importer: each protocol's importer as
//! [`super::importer::STAGES`] calls it, with the rules that decide what
//! its refusal means.
//!
//! The order is that table's (and `docs/architecture.md`'s): after the
//! shortcuts, DLPack, the buffer protocol, the array interface
//! (`__array_struct__`, then `__array_interface__`), the CUDA array
//! interface, the Arrow PyCapsule interface (`__arrow_c_array__`, then
//! `__arrow_c_stream__`), and, for `asarray` only, `__array__`. A stage
//! that does not speak to the object says so (`Ok(None)`) without raising;
//! one that refuses with `BufferError` passes the object on to the next;
//! any other error is the answer.
//!
//! `__array__` is not asked when another protocol spoke and refused: that
//! refusal carries the producer's meaning (a torch tensor that requires
//! grad, a CUDA array), which `__array__` would drop with a copy.
//!
//! Arrow comes after the protocols dlbridge took before it: they carry
//! strides and writability, which Arrow cannot (its arrays are immutable
//! and contiguous), so an object that speaks both (a dlbridge tensor, a
//! primitive pyarrow array) keeps them. It comes before `__array__`, which
//! copies through NumPy and flattens what Arrow nests (a FixedSizeList
//! column is an object array there). Two rules let Arrow answer for what
//! the others refuse: pyarrow's `__dlpack__` refuses lists, booleans and
//! nulls with `TypeError` (not the Array API's `BufferError`), which is
//! read as a refusal from an object that also speaks Arrow ([`dlpack`]);
//! and an Arrow refusal alone does not stop `__array__` (nulls are
//! dlbridge's refusal, not the producer's: its own `__array__` answers for
//! them, as NumPy does, with a copy, which `copy=False` forbids).
//!
//! The CUDA array interface comes after the host protocols: it is asked
//! only of objects that speak none of them, so host imports never pay for
//! its lookup (a struct-only object's import took 80 ns longer with it
//! second). No producer offers device memory through a host protocol, and
//! an object that exports a buffer is host memory whatever else it says.

use pyo3::exceptions::{PyBufferError, PyTypeError};
use pyo3::prelude::*;

use super::lookup::{self, OnType};
use crate::python::{arrow, buffer, cuda_array_interface, dlpack as dlpack_protocol};
use crate::tensor::Tensor;

/// DLPack: a capsule, or an object whose type defines `__dlpack__`. With
/// `copy` (asarray's `copy=True`), a producer whose tensor is not on the
/// CPU is asked for a copy (`__dlpack__(copy=True)`), as `from_dlpack`
/// asks it: dlbridge copies CPU memory only, and that copy is asarray's to
/// make (`Asker::ImporterStage`).
pub(crate) fn dlpack(obj: &Bound<'_, PyAny>, copy: bool) -> PyResult<Option<Tensor>> {
    let speaks = dlpack_protocol::is_dlpack_capsule(obj)
        || lookup::on_type(obj, pyo3::intern!(obj.py(), "__dlpack__")) == OnType::Defined;
    if !speaks {
        return Ok(None);
    }
    // A producer that also speaks Arrow (pyarrow) refuses with TypeError
    // what its Arrow export carries: a refusal, and no legacy retry.
    let speaks_arrow = |obj: &Bound<'_, PyAny>| arrow::speaks_arrow(obj);
    match dlpack_protocol::import_object_retrying(
        obj,
        None,
        copy.then_some(true),
        false,
        |o| !speaks_arrow(o),
        dlpack_protocol::Asker::ImporterStage,
    ) {
        Err(err) if err.is_instance_of::<PyTypeError>(obj.py()) && speaks_arrow(obj) => {
            Err(PyBufferError::new_err(format!(
                "__dlpack__ refused with {}: {} (the Arrow export is asked instead)",
                err.get_type(obj.py()).name()?,
                err.value(obj.py())
            )))
        }
        result => result.map(Some),
    }
}

/// The buffer protocol, for an object that exports buffers.
pub(crate) fn buffer_protocol(obj: &Bound<'_, PyAny>) -> PyResult<Option<Tensor>> {
    if !buffer::has_buffer(obj) {
        return Ok(None);
    }
    buffer::import(obj).map(Some)
}

/// The CUDA array interface. An object that exports a buffer is host
/// memory: the interface is not looked up for it (a lookup that misses
/// costs an exception).
pub(crate) fn cuda_array_interface(obj: &Bound<'_, PyAny>) -> PyResult<Option<Tensor>> {
    if buffer::has_buffer(obj) {
        return Ok(None);
    }
    cuda_array_interface::try_import(obj)
}
