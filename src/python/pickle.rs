//! Pickling: `Tensor.__reduce_ex__` and its module-level reconstructor
//! `dlbridge._native._rebuild_tensor`.
//!
//! The tensor travels as its bytes plus a description: the DLPack dtype
//! triple `(code, bits, lanes)` (so bfloat16, float8, float4 and vector
//! dtypes survive, not only NumPy's), the shape, the memory order (`"C"` or
//! `"F"`) and the readonly flag. Protocol 5 hands the bytes over as a
//! `pickle.PickleBuffer` over the tensor's own memory, which the pickler
//! writes in band or gives to `buffer_callback` out of band without a copy
//! (PEP 574); older protocols get `bytes` (readonly tensors) or `bytearray`
//! (writable ones), one copy.
//!
//! A C- or Fortran-contiguous tensor is sent as it lies in memory; any other
//! layout (a slice with steps, negative strides, broadcast zeros) is made
//! C-contiguous once, so only the elements travel, never the gaps between
//! them. The rebuilt tensor has the canonical strides of its order (a
//! size-1 axis's stride, which addresses nothing, may differ).
//!
//! Unpickling builds the tensor over the buffer it is given, without a
//! copy: readonly when the pickle said so or when the buffer is readonly
//! (in-band protocol 5 gives `bytes` or `bytearray`, out of band whatever
//! the transport gives: Ray's object store hands out readonly memory). The
//! reconstructor is public by necessity (pickle names it), so it checks its
//! arguments as hostile input: a pickle is data from elsewhere.

use std::ffi::c_char;

use dlpark::ffi::{DLDataType, DLDataTypeCode};
use pyo3::ffi;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyByteArray, PyBytes, PyInt, PyString, PyTuple};

use crate::descriptor::{Claims, Descriptor, Source};
use crate::device::Device;
use crate::dtype::DType;
use crate::error::{Cause, Error};
use crate::layout::Layout;
use crate::owner::Holder;
use crate::python::buffer::fields;
use crate::python::ints::int_tuple;
use crate::python::names::shown;
use crate::python::owner::PyBufferView;
use crate::python::tensor::PyTensor;
use crate::tensor::Tensor;

/// `Tensor.__reduce_ex__(protocol)`: `(_rebuild_tensor, (data, code, bits,
/// lanes, shape, order, readonly))`.
pub(crate) fn reduce_ex<'py>(
    tensor: &Bound<'py, PyTensor>,
    protocol: i64,
) -> PyResult<Bound<'py, PyTuple>> {
    let py = tensor.py();
    let inner = &tensor.get().inner;
    inner.device().ensure_cpu("pickling")?;
    let layout = inner.layout();
    let (order, contiguous) = if layout.is_c_contiguous() {
        ("C", inner.clone())
    } else if layout.is_f_contiguous() {
        ("F", inner.clone())
    } else {
        // The one copy a strided tensor costs: only its elements travel.
        {
            let copy = inner.copy()?;
            (
                "C",
                if inner.readonly() {
                    copy.to_readonly()
                } else {
                    copy
                },
            )
        }
    };
    let bytes = Py::new(py, PyTensor::new(byte_view(&contiguous)?))?.into_bound(py);
    let data = if protocol >= 5 {
        py.import(intern!(py, "pickle"))?
            .getattr(intern!(py, "PickleBuffer"))?
            .call1((bytes,))?
    } else if contiguous.readonly() {
        py.get_type::<PyBytes>().call1((bytes,))?
    } else {
        PyByteArray::from(bytes.as_any())?.into_any()
    };
    let dtype = inner.dtype();
    let rebuild = py
        .import(intern!(py, "dlbridge._native"))?
        .getattr(intern!(py, "_rebuild_tensor"))?;
    let args = (
        data,
        dtype.code(),
        dtype.bits(),
        dtype.lanes(),
        PyTuple::new(py, inner.shape())?,
        order,
        inner.readonly(),
    );
    PyTuple::new(py, [rebuild, args.into_pyobject(py)?.into_any()])
}

/// The bytes of a contiguous tensor as a one-dimensional `uint8` tensor over
/// the same memory and owner: the plainest buffer for any transport to take
/// (no format to parse, no strides, `PickleBuffer.raw()` works).
fn byte_view(tensor: &Tensor) -> PyResult<Tensor> {
    let layout = tensor.layout();
    let (low, _) = layout.span();
    let bytes = Layout::contiguous(&[layout.nbytes()], 1)?;
    let descriptor = Descriptor::new(Claims {
        what: "tensor bytes",
        base: tensor.data_ptr().wrapping_offset(low),
        offset: 0,
        layout: bytes,
        dtype: DType::UINT8,
        device: Device::CPU,
        readonly: tensor.readonly(),
        source: tensor.source(),
        len: None,
    })?;
    // SAFETY: `tensor` is contiguous, so its elements fill exactly `nbytes`
    // bytes from the lowest one (`low` bytes from its first logical
    // element); the owner that keeps them alive is shared, and sharing it
    // is what a clone does (a Rust-owned block stays reachable only through
    // tensors that hold its owner).
    Ok(unsafe { Tensor::from_held(descriptor, tensor.owner().clone()) })
}

/// An int argument of the reconstructor in `[0, max]`.
fn small_int(value: &Bound<'_, PyAny>, what: &str, max: u32) -> PyResult<u32> {
    if value.cast::<PyInt>().is_err() || value.cast::<PyBool>().is_ok() {
        return Err(Error::type_error(
            Cause::Argument,
            format!(
                "pickled tensor: {what} must be an int, got {}",
                shown(value)
            ),
        )
        .into());
    }
    value
        .extract::<u32>()
        .ok()
        .filter(|&n| n <= max)
        .ok_or_else(|| {
            Error::value(
                Cause::DType,
                format!("pickled tensor: {what} {value} is outside [0, {max}]"),
            )
            .into()
        })
}

/// The layout of `order` (`"C"` or `"F"`) for `shape`; `Layout` checks
/// every extent (non-negative, within `isize`, the element count and bytes
/// in `isize`).
fn layout_arg(shape: &[i64], order: &Bound<'_, PyAny>, itemsize: usize) -> PyResult<Layout> {
    let Ok(order) = order.cast::<PyString>() else {
        return Err(Error::type_error(
            Cause::Argument,
            format!(
                "pickled tensor: order must be \"C\" or \"F\", got {}",
                shown(order)
            ),
        )
        .into());
    };
    let c = Layout::from_signed(shape, None, itemsize)?;
    match order.to_str()? {
        "C" => Ok(c),
        // With no elements, or one axis, both orders are the same layout.
        "F" if c.size() == 0 || shape.len() <= 1 => Ok(c),
        "F" => {
            // Every extent is at least 1 and the C layout bounded their
            // product, so no Fortran stride overflows.
            let mut strides = Vec::with_capacity(shape.len());
            let mut stride = itemsize as i64;
            for &extent in shape {
                strides.push(stride);
                stride = stride.saturating_mul(extent);
            }
            Ok(Layout::from_signed(shape, Some(&strides), itemsize)?)
        }
        other => Err(Error::value(
            Cause::Argument,
            format!("pickled tensor: order must be \"C\" or \"F\", got {other:?}"),
        )
        .into()),
    }
}

/// `_rebuild_tensor(data, code, bits, lanes, shape, order, readonly)`: the
/// tensor a pickle describes, over `data`'s memory (no copy). `data` is any
/// contiguous buffer of exactly the tensor's bytes; the tensor is readonly
/// if `readonly` is true or the buffer is readonly.
#[pyfunction]
#[pyo3(signature = (data, code, bits, lanes, shape, order, readonly, /))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn _rebuild_tensor(
    data: &Bound<'_, PyAny>,
    code: &Bound<'_, PyAny>,
    bits: &Bound<'_, PyAny>,
    lanes: &Bound<'_, PyAny>,
    shape: &Bound<'_, PyAny>,
    order: &Bound<'_, PyAny>,
    readonly: &Bound<'_, PyAny>,
) -> PyResult<PyTensor> {
    let triple = DLDataType {
        code: DLDataTypeCode(small_int(code, "dtype code", u8::MAX.into())? as u8),
        bits: small_int(bits, "dtype bits", u8::MAX.into())? as u8,
        lanes: small_int(lanes, "dtype lanes", u16::MAX.into())? as u16,
    };
    // Padded: a sub-byte element in a tensor always fills a byte of its own.
    let dtype = DType::from_dlpack_flagged(triple, true).map_err(|err| {
        Error::value(
            Cause::DType,
            format!("pickled tensor has an invalid dtype: {}", err.message()),
        )
    })?;
    let shape = int_tuple("pickled tensor", shape, "shape")?;
    let layout = layout_arg(&shape, order, dtype.itemsize())?;
    let Ok(readonly) = readonly.cast::<PyBool>() else {
        return Err(Error::type_error(
            Cause::Argument,
            format!(
                "pickled tensor: readonly must be a bool, got {}",
                shown(readonly)
            ),
        )
        .into());
    };
    // Strides are accepted from the exporter and contiguity checked here:
    // asked for contiguous memory, NumPy refuses a strided array with
    // `ValueError` and a memoryview with `BufferError`, each in its own
    // words; the reconstructor answers one way for both.
    // SAFETY: a live object's type is read; PyObject_CheckBuffer only reads it.
    if unsafe { ffi::PyObject_CheckBuffer(data.as_ptr()) } == 0 {
        return Err(Error::type_error(
            Cause::Argument,
            format!(
                "pickled tensor: its data must support the buffer protocol, got {}",
                shown(data)
            ),
        )
        .into());
    }
    let owner = PyBufferView::acquire(data, ffi::PyBUF_STRIDES).map_err(|err| {
        Error::value(
            Cause::Layout,
            format!(
                "pickled tensor: its data {} is not a readable buffer: {err}",
                shown(data)
            ),
        )
    })?;
    let view = fields(owner.raw());
    let (buf, len, buffer_readonly) = crate::protocol::buffer::lent_bytes(&view)?;
    let raw: *const ffi::Py_buffer = owner.raw();
    // SAFETY: `raw` is the filled view `owner` holds; the check only reads it.
    // An exporter may ignore PyBUF_ANY_CONTIGUOUS, so its answer is checked.
    let contiguous = unsafe { ffi::PyBuffer_IsContiguous(raw, b'A' as c_char) } != 0;
    if !contiguous {
        return Err(Error::value(
            Cause::Layout,
            format!(
                "pickled tensor: its data {} is not a contiguous buffer",
                shown(data)
            ),
        )
        .into());
    }
    if len != layout.nbytes() {
        return Err(Error::value(
            Cause::Argument,
            format!(
                "pickled tensor of shape {shape:?} and dtype {dtype} needs {} bytes, but its data \
                 has {len}",
                layout.nbytes()
            ),
        )
        .into());
    }
    let descriptor = Descriptor::new(Claims {
        what: "pickled tensor data",
        base: buf,
        offset: 0,
        layout,
        dtype,
        device: Device::CPU,
        readonly: readonly.is_true() || buffer_readonly,
        source: Source::Buffer,
        len: Some(len),
    })?;
    // SAFETY: the exporter keeps `len` contiguous bytes at `buf` valid (and
    // writable unless it said readonly, which makes the tensor readonly)
    // until the view is released, which happens when the owner drops; the
    // descriptor checked that the layout fits in those bytes.
    Ok(PyTensor::new(unsafe {
        Tensor::from_held(descriptor, Holder::new(owner))
    }))
}
