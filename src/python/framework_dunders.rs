//! The producer's side of framework consumers' own dunders: what
//! `np.asarray` (`__array__`), `jnp.asarray` (`__jax_array__`) and pandas
//! (`__iter__`) call on a `dlbridge.Tensor` beyond the exchange protocols,
//! each through the tensor's zero-copy NumPy view (`Tensor.numpy()`,
//! [`to_numpy`]). The consumer's side of `__array__` (asarray calling a
//! producer's) is `super::array_dunder`.
//!
//! **NumPy.** `Tensor.__array__(dtype, copy)` with NumPy 2's signature: the
//! zero-copy view, or a copy when asked or to cast.
//!
//! **JAX.** `jnp.asarray`/`jnp.array` (JAX 0.10.2) take, in order: a JAX
//! array; `__jax_array__()`; `__cuda_array_interface__`; then they infer the
//! dtype of anything else from its `.dtype` (a `numpy.dtype`) or
//! `np.result_type(x)`, which NumPy 2 refuses for an object whose `.dtype`
//! is a string ("Could not convert ... to a NumPy dtype (via `.dtype` value
//! 'float32')"): neither DLPack nor `__array__` is ever reached.
//! `Tensor.dtype` is a `str` by contract, so the tensor answers
//! `__jax_array__` (not deprecated in 0.10.2 for explicit conversion; only
//! abstractification under `jit` refuses it) with `jnp.asarray` of its
//! zero-copy NumPy view: exactly what JAX does with the equivalent
//! `numpy.ndarray`, bfloat16 and float8 included (through `ml_dtypes`).
//! That is a copy: JAX's CPU client copies every ndarray it is given
//! (measured), which keeps its arrays immutable while the tensor's memory is
//! written. The zero-copy route stays `jnp.from_dlpack(t)`, where the user
//! accepts that sharing.
//!
//! **pandas.** `pd.Series(x)` calls `__array__` only on a "list-like"
//! object, which pandas tests as `__iter__` being present; without it a
//! tensor was a scalar, stored in an object Series of length 1. Iteration
//! is NumPy's over the first axis (scalars for 1-D, zero-copy sub-arrays
//! that keep the tensor alive for N-D); a 0-d tensor is not iterable, as
//! in NumPy.

use pyo3::intern;
use pyo3::prelude::*;

use crate::dtype::DType;
use crate::error::{Cause, Error};
use crate::protocol::typestr;
use crate::python::names;
use crate::python::tensor::PyTensor;

/// `Tensor.__jax_array__()`: `jnp.asarray(t.numpy())`; see the module
/// documentation.
pub(crate) fn jax_array<'py>(tensor: &Bound<'py, PyTensor>) -> PyResult<Bound<'py, PyAny>> {
    let py = tensor.py();
    let array = to_numpy(tensor, "__jax_array__")?;
    py.import(intern!(py, "jax.numpy"))?
        .call_method1(intern!(py, "asarray"), (array,))
}

/// `iter(t)`: NumPy's iteration over the first axis of the zero-copy view.
pub(crate) fn iterate<'py>(tensor: &Bound<'py, PyTensor>) -> PyResult<Bound<'py, PyAny>> {
    if tensor.get().inner.ndim() == 0 {
        return Err(Error::type_error(Cause::Layout, "iteration over a 0-d tensor").into());
    }
    Ok(to_numpy(tensor, "iter()")?.try_iter()?.into_any())
}
/// A zero-copy `numpy.ndarray` of `tensor`, with the values' own dtype.
///
/// Dtypes a typestr names (NumPy's kinds, opaque bytes as `V<n>`) go
/// through `numpy.asarray` (the buffer protocol or `__array_struct__`; the
/// array's base keeps the tensor alive). The others reach NumPy as values,
/// never as padding: a vector dtype as a trailing axis of its lanes
/// (`float32x4` as `(..., 4)` float32), bfloat16 and float8/6/4 as a `V<n>`
/// array viewed as the `ml_dtypes` dtype of the same name (a `BufferError`
/// without ml_dtypes: NumPy has no such dtype of its own).
pub(crate) fn to_numpy<'py>(
    tensor: &Bound<'py, PyTensor>,
    caller: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let py = tensor.py();
    let inner = &tensor.get().inner;
    inner.device().ensure_cpu(caller)?;
    let numpy = py.import(intern!(py, "numpy"))?;
    let dtype = inner.dtype();
    if typestr::names(dtype) {
        return numpy.call_method1(intern!(py, "asarray"), (tensor,));
    }
    if dtype.lanes() != 1 {
        let lanes = Bound::new(py, PyTensor::new(inner.lanes_as_axis()?))?;
        return to_numpy(&lanes, caller);
    }
    let Some(scalar_type) = ml_dtypes_type(py, dtype)? else {
        return Err(Error::buffer(
            Cause::DType,
            format!(
                "{caller}: NumPy has no dtype {dtype} of its own; install ml_dtypes (a version \
                 that has {dtype}) to read its values, or read its bytes with \
                 t.view(\"void{}\")",
                dtype.bits().max(8)
            ),
        )
        .into());
    };
    let bytes = Bound::new(
        py,
        PyTensor::new(inner.view(DType::opaque(dtype.itemsize())?)?),
    )?;
    numpy
        .call_method1(intern!(py, "asarray"), (bytes,))?
        .call_method1(intern!(py, "view"), (scalar_type,))
}

/// `ml_dtypes`' scalar type named as `dtype` is, if ml_dtypes is installed
/// and has it.
fn ml_dtypes_type<'py>(py: Python<'py>, dtype: DType) -> PyResult<Option<Bound<'py, PyAny>>> {
    let Ok(ml_dtypes) = py.import(intern!(py, "ml_dtypes")) else {
        return Ok(None);
    };
    ml_dtypes.getattr_opt(dtype.name().as_str())
}

/// `Tensor.__array__(dtype, copy)`, with NumPy's meaning of `copy`: `None`
/// copies only to cast, `True` always gives a new array, `False` never
/// copies (a `ValueError`, NumPy's answer, where only a copy could give the
/// array: another device, another dtype). The dtype is compared by NumPy,
/// which is imported by then.
pub(crate) fn array<'py>(
    tensor: &Bound<'py, PyTensor>,
    dtype: Option<&Bound<'py, PyAny>>,
    copy: Option<bool>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = tensor.py();
    let inner = &tensor.get().inner;
    if copy == Some(false) && !inner.device().is_cpu() {
        return Err(Error::value(
            Cause::Copy,
            format!(
                "Tensor.__array__(copy=False): the tensor is on device {}, and a NumPy array \
                 needs CPU memory",
                inner.device()
            ),
        )
        .into());
    }
    let array = to_numpy(tensor, "__array__")?;
    if let Some(dtype) = dtype {
        let wanted = py
            .import(intern!(py, "numpy"))?
            .getattr(intern!(py, "dtype"))?
            .call1((dtype,))?;
        let have = array.getattr(intern!(py, "dtype"))?;
        if !have.eq(&wanted)? {
            if copy == Some(false) {
                return Err(Error::value(
                    Cause::Copy,
                    format!(
                        "Tensor.__array__(copy=False): dtype {} is not the tensor's {}, and a \
                         cast is a copy",
                        names::text(&wanted),
                        names::text(&have)
                    ),
                )
                .into());
            }
            return array.call_method1(intern!(py, "astype"), (wanted,));
        }
    }
    if copy == Some(true) {
        return array.call_method0(intern!(py, "copy"));
    }
    Ok(array)
}
