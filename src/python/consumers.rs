//! What framework consumers need of a tensor beyond the protocols:
//! `__jax_array__` for `jnp.asarray(t)` and `__iter__` for pandas.
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

use crate::error::{Cause, Error};
use crate::python::tensor::{PyTensor, to_numpy};

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
