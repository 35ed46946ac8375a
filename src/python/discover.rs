//! `asarray`'s discovery: which spoke takes an object, in one table.
//!
//! The order is the contract's (`docs/architecture.md`): DLPack, the buffer
//! protocol, the array interface (`__array_struct__`, then
//! `__array_interface__`), the CUDA array interface, the Arrow PyCapsule
//! interface (`__arrow_c_array__`, then `__arrow_c_stream__`). A spoke that does not speak to the object says
//! so (`Ok(None)`) without raising; one that refuses with `BufferError`
//! passes the object on to the next; any other error is the answer.
//!
//! `asarray` (not [`import_any`], which Rust extensions' arguments use) has
//! one more, last resort: an object that speaks none of them but offers
//! `__array__` ([`super::array_dunder`]). It is not asked when another
//! protocol spoke and refused: that refusal carries the producer's meaning
//! (a torch tensor that requires grad, a CUDA array), which `__array__`
//! would drop with a copy.
//!
//! Arrow comes after the protocols dlbridge took before it: they carry
//! strides and writability, which Arrow cannot (its arrays are immutable
//! and contiguous), so an object that speaks both (a dlbridge tensor, a
//! primitive pyarrow array) keeps them. It comes before `__array__`, which
//! copies through NumPy and flattens what Arrow nests (a FixedSizeList
//! column is an object array there). Two rules let Arrow answer for what
//! the others refuse: pyarrow's `__dlpack__` refuses lists, booleans and
//! nulls with `TypeError` (not the Array API's `BufferError`), which is
//! read as a refusal from an object that also speaks Arrow; and an Arrow
//! refusal alone does not stop `__array__` (nulls are dlbridge's refusal,
//! not the producer's: its own `__array__` answers for them, as NumPy does,
//! with a copy, which `copy=False` forbids).

use pyo3::exceptions::{PyBufferError, PyTypeError};
use pyo3::intern;
use pyo3::prelude::*;

use crate::error::{Cause, Error};

use super::array_dunder;
use super::known_types::{self, KnownType};
use super::lookup::{self, OnType};
use crate::python::{array_interface, arrow, buffer, cuda_array_interface, dlpack};
use crate::tensor::Tensor;

/// One protocol's importer: `Ok(None)` when the object does not speak it.
type Importer = fn(&Bound<'_, PyAny>) -> PyResult<Option<Tensor>>;

/// `asarray`'s order: the protocol's name (for messages) and its importer.
///
/// The CUDA array interface comes after the host protocols: it is asked only
/// of objects that speak none of them, so host imports never pay for its
/// lookup (a struct-only object's import took 80 ns longer with it second).
/// No producer offers device memory through a host protocol, and an object
/// that exports a buffer is host memory whatever else it says.
const PROTOCOLS: [(&str, Importer); 5] = [
    ("DLPack", dlpack_importer),
    ("buffer protocol", buffer_importer),
    ("array interface", array_interface::try_import),
    (CUDA_ARRAY_INTERFACE, cuda_array_interface_importer),
    (ARROW, arrow::try_import),
];

/// The Arrow PyCapsule interface's name in [`PROTOCOLS`]: its refusal
/// alone leaves `__array__` to answer (see the module documentation).
const ARROW: &str = "Arrow PyCapsule interface";

fn dlpack_importer(obj: &Bound<'_, PyAny>) -> PyResult<Option<Tensor>> {
    let speaks = dlpack::is_dlpack_capsule(obj)
        || lookup::on_type(obj, pyo3::intern!(obj.py(), "__dlpack__")) == OnType::Defined;
    if !speaks {
        return Ok(None);
    }
    // A producer that also speaks Arrow (pyarrow) refuses with TypeError
    // what its Arrow export carries: a refusal, and no legacy retry.
    let speaks_arrow = |obj: &Bound<'_, PyAny>| arrow::speaks_arrow(obj);
    match dlpack::import_object_retrying(obj, None, None, false, |o| !speaks_arrow(o)) {
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

/// The CUDA array interface's name in [`PROTOCOLS`]: it is not asked once
/// another protocol has refused (see [`discover`]).
const CUDA_ARRAY_INTERFACE: &str = "CUDA array interface";

/// An object that exports a buffer is host memory: the CUDA array interface
/// is not looked up for it (a lookup that misses costs an exception).
fn cuda_array_interface_importer(obj: &Bound<'_, PyAny>) -> PyResult<Option<Tensor>> {
    if buffer::has_buffer(obj) {
        return Ok(None);
    }
    cuda_array_interface::try_import(obj)
}

fn buffer_importer(obj: &Bound<'_, PyAny>) -> PyResult<Option<Tensor>> {
    if !buffer::has_buffer(obj) {
        return Ok(None);
    }
    buffer::import(obj).map(Some)
}

/// Tries [`PROTOCOLS`] in order: the tensor of the first that takes `obj`,
/// or `None` with each protocol's `BufferError` refusal pushed onto
/// `refusals` (none when no protocol spoke to it at all). The tensor comes
/// back as an `Option` (no bigger than the tensor), not inside a nested
/// `Result`: every import moves it, and a larger carrier made those moves
/// `memcpy` calls.
///
/// `views_first` (asarray's) asks a stream-only Arrow producer for a
/// zero-copy `__array__` before its stream (see [`zero_copy_array`]).
#[inline(always)]
fn discover(
    obj: &Bound<'_, PyAny>,
    refusals: &mut Vec<String>,
    views_first: bool,
) -> PyResult<Option<Tensor>> {
    let py = obj.py();
    for (name, importer) in PROTOCOLS {
        // A refusal carries the producer's meaning (a torch tensor's
        // negative bit, which its CUDA array interface drops): not bypassed.
        if name == CUDA_ARRAY_INTERFACE && !refusals.is_empty() {
            continue;
        }
        if name == ARROW
            && views_first
            && refusals.is_empty()
            && let Some(tensor) = zero_copy_array(obj)?
        {
            return Ok(Some(tensor));
        }
        match importer(obj) {
            Ok(Some(tensor)) => return Ok(Some(tensor)),
            Ok(None) => {}
            Err(err) if err.is_instance_of::<PyBufferError>(py) => {
                refusals.push(format!("{name}: {err}"))
            }
            Err(err) => return Err(err),
        }
    }
    Ok(None)
}

/// Imports `obj` through the first protocol that takes it, zero-copy.
pub(crate) fn import_any(obj: &Bound<'_, PyAny>) -> PyResult<Tensor> {
    let mut refusals = Vec::new();
    if let Some(tensor) = discover(obj, &mut refusals, false)? {
        return Ok(tensor);
    }
    Err(nothing_took(
        &obj.get_type().name()?.to_string(),
        &refusals,
        PROTOCOL_LIST,
    ))
}

/// `asarray`'s import: the protocols, then `__array__` for an object that
/// speaks none of them. `copy` is asarray's (see
/// [`array_dunder::call`]).
pub(crate) fn import_for_asarray(obj: &Bound<'_, PyAny>, copy: Option<bool>) -> PyResult<Tensor> {
    let mut refusals = Vec::new();
    if let Some(tensor) = discover(obj, &mut refusals, true)? {
        return Ok(tensor);
    }
    let type_name = obj.get_type().name()?.to_string();
    if refusals.iter().all(|refusal| refusal.starts_with(ARROW))
        && let Some(method) = lookup::protocol_attribute(obj, intern!(obj.py(), "__array__"))?
    {
        let array = array_dunder::call(obj, &method, copy)?;
        // Whatever `__array__` returned (an ndarray: NumPy requires one) goes
        // through the protocols, never through `__array__` again.
        if let Some(tensor) = discover(&array, &mut refusals, false)? {
            return Ok(tensor);
        }
        return Err(nothing_took(
            &format!(
                "{} (what {type_name}.__array__ returned)",
                array.get_type().name()?
            ),
            &refusals,
            PROTOCOL_LIST,
        ));
    }
    Err(nothing_took(
        &type_name,
        &refusals,
        &format!("{PROTOCOL_LIST}, __array__"),
    ))
}

/// A stream-only Arrow producer's own zero-copy view, if it has one:
/// `__array__(copy=False)`, imported through the protocols. A pandas or
/// polars `Series` offers `__arrow_c_stream__` beside `__array__`, and its
/// stream costs a table built per call (pandas: 140 µs against 11 µs for
/// its array); a producer that cannot give a view (a pyarrow
/// `ChunkedArray` always copies, so it is not asked, by identity: its
/// refusal costs more than its stream; a `FixedSizeList` column elsewhere
/// would be an object array) says so, or gives what no protocol takes, and
/// its stream is asked as before. Only for objects without `__arrow_c_array__`: an
/// Arrow array is read from its own buffers.
fn zero_copy_array(obj: &Bound<'_, PyAny>) -> PyResult<Option<Tensor>> {
    let py = obj.py();
    // SAFETY: `obj` is live; its type pointer is valid.
    let ty = unsafe { pyo3::ffi::Py_TYPE(obj.as_ptr()) };
    if known_types::is(py, ty, KnownType::ChunkedArray)
        || lookup::on_type(obj, intern!(py, "__arrow_c_stream__")) != OnType::Defined
        || lookup::on_type(obj, intern!(py, "__arrow_c_array__")) == OnType::Defined
        || lookup::on_type(obj, intern!(py, "__array__")) != OnType::Defined
    {
        return Ok(None);
    }
    let Some(method) = lookup::protocol_attribute(obj, intern!(py, "__array__"))? else {
        return Ok(None);
    };
    // Any refusal here (a copy it cannot avoid, NumPy 1's signature) only
    // means "no view": the stream answers.
    let Ok(array) = array_dunder::call(obj, &method, Some(false)) else {
        return Ok(None);
    };
    discover(&array, &mut Vec::new(), false)
}

/// The protocols [`discover`] tries, for messages.
const PROTOCOL_LIST: &str = "DLPack, the buffer protocol, __array_struct__, __array_interface__, \
     __cuda_array_interface__, __arrow_c_array__, __arrow_c_stream__";

/// The error when no protocol took an object: a `TypeError` when none spoke
/// to it, the `BufferError` of every refusal otherwise.
fn nothing_took(type_name: &str, refusals: &[String], protocols: &str) -> PyErr {
    if refusals.is_empty() {
        PyErr::from(Error::type_error(
            Cause::NoProtocol,
            format!("{type_name} speaks no array protocol dlbridge understands ({protocols})"),
        ))
    } else {
        PyErr::from(Error::buffer(
            Cause::NoProtocol,
            format!(
                "no protocol could import {type_name}: {}",
                refusals.join("; ")
            ),
        ))
    }
}
