//! The `dlbridge._native` extension module.

pub(crate) mod arg;
pub(crate) mod array_dunder;
pub(crate) mod array_interface;
pub(crate) mod arrow;
pub mod borrow;
pub(crate) mod buffer;
pub(crate) mod capsule;
pub(crate) mod convert;
pub(crate) mod cuda_array_interface;
pub(crate) mod device_arg;
pub(crate) mod discover;
pub(crate) mod dlpack;
pub(crate) mod dtype_arg;
pub(crate) mod errors;
pub(crate) mod fast_path;
pub(crate) mod framework;
pub(crate) mod framework_dunders;
pub(crate) mod home;
pub(crate) mod importer;
pub(crate) mod ints;
pub(crate) mod known_types;
pub(crate) mod lookup;
pub(crate) mod names;
pub(crate) mod owner;
pub(crate) mod pickle;
pub(crate) mod tensor;
mod tensor_methods;
mod testing;

use pyo3::prelude::*;

use crate::descriptor::Source;
use crate::dtype::DType;
use crate::error::{Cause, Error};
use crate::python::dlpack as dlpack_python;
use crate::tensor::Tensor;
use dtype_arg::parse_dtype;
use importer::Imported;
use tensor::PyTensor;

/// The extents of `zeros`/`empty`: a shape with no negative extent.
fn extents(shape: &Bound<'_, PyAny>) -> PyResult<ints::Extents<usize>> {
    ints::shape(shape, |axis, value| {
        usize::try_from(value).map_err(|_| negative_extent(axis, value))
    })
}

fn negative_extent(axis: usize, extent: i64) -> PyErr {
    Error::value(
        Cause::Argument,
        format!("shape has a negative extent {extent} on axis {axis}"),
    )
    .into()
}

/// asarray's `copy=True` of what a stage took. dlbridge copies CPU memory
/// (`Tensor::copy`, which refuses any other); a DLPack tensor on another
/// device is its producer's copy already: with `copy=True` the exchange
/// table hands such a tensor back and the DLPack stage asks the producer's
/// `__dlpack__(copy=True)`, as `from_dlpack` does (a capsule, which cannot
/// be asked, is refused there).
fn copied(tensor: Tensor) -> PyResult<Tensor> {
    Ok(
        if !tensor.device().is_cpu() && tensor.source() == Source::Dlpack {
            tensor
        } else {
            tensor.copy()?
        },
    )
}

/// Any array-like as a Tensor, zero-copy unless `copy=True`: DLPack, the
/// buffer protocol, `__array_struct__`, `__array_interface__`,
/// `__cuda_array_interface__`, and, for an object that speaks none of them, `__array__` (called as NumPy 2 calls
/// it; with `copy=False`, a producer that cannot promise no copy is a
/// ValueError).
#[pyfunction]
#[pyo3(signature = (obj, *, copy=None))]
fn asarray(obj: &Bound<'_, PyAny>, copy: Option<bool>) -> PyResult<Py<PyAny>> {
    if copy == Some(true) {
        return asarray_copied(obj);
    }
    let py = obj.py();
    // The tensor goes from the stage that took it straight into the new
    // object: the importer inlines its shortcuts (an exact ndarray, a
    // builtin buffer exporter, an exchange table) here, and `accept` at
    // each, so it is not carried up through returns (184 bytes moved at
    // each; `asarray(ndarray)` 134 -> 12x ns). `copy=True` has its own
    // instance (`asarray_copied`): here `copy` is known not to be `True`,
    // which the inlined stages fold away (a run-time `copy` passed on to the
    // exchange table cost `asarray(torch tensor)` 23 instructions).
    importer::import(
        obj,
        importer::Options::asarray(copy),
        #[inline(always)]
        |imported: Imported<'_, '_>| match imported {
            Imported::Home(_) => Ok(obj.clone().unbind()),
            imported => Ok(Py::new(py, PyTensor::new(imported.into_tensor()))?.into_any()),
        },
    )
}

/// `asarray(obj, copy=True)`.
#[inline(never)]
fn asarray_copied(obj: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
    let py = obj.py();
    importer::import(
        obj,
        importer::Options::asarray(Some(true)),
        |imported: Imported<'_, '_>| {
            let tensor = match imported {
                Imported::Home(tensor) => tensor.get().inner.copy()?,
                imported => copied(imported.into_tensor())?,
            };
            Ok(Py::new(py, PyTensor::new(tensor))?.into_any())
        },
    )
}

/// A DLPack producer (or capsule) as a Tensor. A legacy (unversioned)
/// capsule cannot say whether its memory may be written, so it imports
/// read-only unless `legacy_writable=True` vouches for the producer. The
/// object is positional-only, as the Array API spells `from_dlpack(x, /)`.
/// `device` takes what users hold (`"cuda:0"`, a `torch.device`, a tuple,
/// anything with `__dlpack_device__`: `device_arg.rs`); another device than
/// the tensor's, and `copy=True` of memory dlbridge cannot copy, are asked
/// of the producer, as the Array API has it.
#[pyfunction]
#[pyo3(signature = (obj, /, *, device=None, copy=None, legacy_writable=false))]
fn from_dlpack(
    obj: &Bound<'_, PyAny>,
    device: Option<&Bound<'_, PyAny>>,
    copy: Option<bool>,
    legacy_writable: bool,
) -> PyResult<PyTensor> {
    let device = device
        .map(|d| device_arg::parse(d, "device"))
        .transpose()?
        .flatten();
    Ok(PyTensor::new(dlpack_python::import_object(
        obj,
        device,
        copy,
        legacy_writable,
    )?))
}

/// A PEP 3118 exporter as a Tensor; `dtype`/`shape`/`offset` reinterpret
/// the raw bytes of a C-contiguous buffer, like `np.frombuffer`.
#[pyfunction]
#[pyo3(signature = (obj, *, dtype=None, shape=None, offset=None))]
fn from_buffer(
    obj: &Bound<'_, PyAny>,
    dtype: Option<&Bound<'_, PyAny>>,
    shape: Option<&Bound<'_, PyAny>>,
    offset: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyTensor> {
    let dtype = dtype
        .filter(|d| !d.is_none())
        .map(parse_dtype)
        .transpose()?;
    let shape = shape
        .filter(|s| !s.is_none())
        .map(|shape| ints::shape(shape, |_, extent| Ok(extent)))
        .transpose()?;
    let offset = match offset {
        None => 0,
        Some(value) => ints::int(value).map_err(|refusal| match refusal {
            ints::NotI64::OutOfRange => ints::out_of_range("offset", value),
            ints::NotI64::NotInt => Error::type_error(
                Cause::Argument,
                format!("offset must be an int, got {}", names::shown(value)),
            ),
        })?,
    };
    let offset = usize::try_from(offset).map_err(|_| {
        Error::value(
            Cause::Argument,
            format!("offset must be non-negative, got {offset}"),
        )
    })?;
    Ok(PyTensor::new(buffer::from_buffer(
        obj,
        dtype,
        shape.as_deref(),
        offset,
    )?))
}

/// An `__array_struct__` or `__array_interface__` exporter as a Tensor
/// (the struct first), zero-copy.
#[pyfunction]
fn from_array_interface(obj: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
    Ok(PyTensor::new(array_interface::import(obj)?))
}

/// A `__cuda_array_interface__` exporter as a CUDA Tensor, zero-copy. Its
/// `stream` is synchronised on first (a CUDA driver is needed for that)
/// unless `sync=False`: then ordering the producer's work before any use
/// is the caller's.
#[pyfunction]
#[pyo3(signature = (obj, *, sync=true))]
fn from_cuda_array_interface(obj: &Bound<'_, PyAny>, sync: bool) -> PyResult<PyTensor> {
    Ok(PyTensor::new(cuda_array_interface::import(obj, sync)?))
}

/// Rust-owned zero-filled memory.
#[pyfunction]
#[pyo3(signature = (shape, dtype=None))]
fn zeros(shape: &Bound<'_, PyAny>, dtype: Option<&Bound<'_, PyAny>>) -> PyResult<PyTensor> {
    let dtype = dtype
        .map(parse_dtype)
        .transpose()?
        .unwrap_or(DType::FLOAT32);
    Ok(PyTensor::new(Tensor::zeros(&extents(shape)?, dtype)?))
}

/// Rust-owned uninitialised memory.
#[pyfunction]
#[pyo3(signature = (shape, dtype=None))]
fn empty(shape: &Bound<'_, PyAny>, dtype: Option<&Bound<'_, PyAny>>) -> PyResult<PyTensor> {
    let dtype = dtype
        .map(parse_dtype)
        .transpose()?
        .unwrap_or(DType::FLOAT32);
    Ok(PyTensor::new(Tensor::empty(&extents(shape)?, dtype)?))
}

/// Rust-owned data buffers not yet freed: an exact snapshot, even while
/// other threads make and free them (`crate::live_buffers`).
#[pyfunction]
fn live_buffers() -> usize {
    crate::owner::live_buffers()
}

// Declared GIL-using: dlbridge has not been tested on a free-threaded
// interpreter (none can be had from the package registries here), and its
// per-thread caches and counters assume the GIL serialises imports.
#[pymodule(gil_used = true)]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    home::mark_home_binary();
    m.add_class::<PyTensor>()?;
    dlpack::dunder::install(&m.py().get_type::<PyTensor>())?;
    dlpark::python::install_exchange_api::<PyTensor>(m.py())?;
    m.add_function(wrap_pyfunction!(asarray, m)?)?;
    m.add_function(wrap_pyfunction!(from_dlpack, m)?)?;
    m.add_function(wrap_pyfunction!(from_buffer, m)?)?;
    m.add_function(wrap_pyfunction!(from_array_interface, m)?)?;
    m.add_function(wrap_pyfunction!(from_cuda_array_interface, m)?)?;
    m.add_function(wrap_pyfunction!(zeros, m)?)?;
    m.add_function(wrap_pyfunction!(empty, m)?)?;
    m.add_function(wrap_pyfunction!(live_buffers, m)?)?;
    m.add_function(wrap_pyfunction!(pickle::_rebuild_tensor, m)?)?;
    testing::add_to(m)?;
    Ok(())
}
