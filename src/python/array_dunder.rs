//! `__array__` as `asarray`'s last resort (the consumer side; the producer
//! side is `Tensor.__array__` in `super::framework_dunders`).
//!
//! The method is called as NumPy 2 calls it, and its result (an ndarray) is
//! imported through the protocols like any other array, zero-copy: a
//! producer that returns a view of its own memory shares it.
//!
//! | `asarray(obj, copy=)` | the call | |
//! | --- | --- | --- |
//! | `None` | `__array__()` | whatever it returns, copy or view |
//! | `True` | `__array__()` | then copied on dlbridge's side, as `from_dlpack` does, so a producer that returns its own memory cannot leave the result shared |
//! | `False` | `__array__(copy=False)` | NumPy 2's promise never to copy: trusted |
//!
//! With `copy=False`, dlbridge can only know that `__array__` copied when
//! the producer says so, which NumPy 2's signature lets it do: a `ValueError`
//! it raises ("cannot avoid a copy") becomes dlbridge's `ValueError` naming
//! the type, chained to it. A producer with NumPy 1's signature
//! (`__array__(self, dtype=None)`, no `copy`) can promise nothing, so it is
//! refused as NumPy 2 refuses it (NumPy's test: the `TypeError` says
//! `__array__() got an unexpected keyword argument 'copy'`); any other
//! error is the producer's own and propagates. A fresh array returned
//! despite `copy=False` cannot be told from the producer's own memory, and
//! is not looked for.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::error::{Cause, Error};

/// NumPy's own test for a producer whose `__array__` takes no `copy`.
const NO_COPY_KEYWORD: &str = "__array__() got an unexpected keyword argument 'copy'";

/// Calls `obj`'s `__array__` (`method`, already looked up) for
/// `asarray(obj, copy=copy)`; see the module documentation.
pub(crate) fn call<'py>(
    obj: &Bound<'py, PyAny>,
    method: &Bound<'py, PyAny>,
    copy: Option<bool>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = obj.py();
    if copy != Some(false) {
        return method.call0();
    }
    let kwargs = PyDict::new(py);
    kwargs.set_item(intern!(py, "copy"), false)?;
    let err = match method.call((), Some(&kwargs)) {
        Ok(array) => return Ok(array),
        Err(err) => err,
    };
    let type_name = obj.get_type().name()?;
    if err.is_instance_of::<PyTypeError>(py)
        && err
            .value(py)
            .str()
            .is_ok_and(|text| text.to_string().contains(NO_COPY_KEYWORD))
    {
        let refusal = PyErr::from(Error::value(
            Cause::Copy,
            format!(
                "asarray(copy=False): {type_name}.__array__ takes no copy argument, so it \
                 cannot promise not to copy (NumPy 2's __array__(dtype=None, copy=None) can)"
            ),
        ));
        refusal.set_cause(py, Some(err));
        return Err(refusal);
    }
    if err.is_instance_of::<PyValueError>(py) {
        let refusal = PyErr::from(Error::value(
            Cause::Copy,
            format!("asarray(copy=False): {type_name}.__array__ cannot avoid a copy ({err})"),
        ));
        refusal.set_cause(py, Some(err));
        return Err(refusal);
    }
    Err(err)
}
