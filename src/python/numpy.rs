//! `Tensor.numpy()`: a zero-copy `numpy.ndarray`, with `ml_dtypes`' dtype
//! for the elements NumPy itself has no name for.

use pyo3::intern;
use pyo3::prelude::*;

use super::tensor::PyTensor;

/// `numpy.asarray(tensor)` (the buffer protocol: zero-copy, the array's base
/// keeps the tensor alive), then, for opaque bytes, a `V<n>` view, and for bfloat16 and float8 elements, which
/// cross as opaque bytes, a view with the `ml_dtypes` dtype of the same name
/// when that package is installed.
pub(crate) fn to_numpy<'py>(tensor: &Bound<'py, PyTensor>) -> PyResult<Bound<'py, PyAny>> {
    let py = tensor.py();
    let inner = &tensor.get().inner;
    inner.device().ensure_cpu("numpy()")?;
    let numpy = py.import(intern!(py, "numpy"))?;
    let array = numpy.call_method1(intern!(py, "asarray"), (tensor,))?;
    let dtype = inner.dtype();
    if dtype.is_opaque() {
        // NumPy reads the buffer's `"2x"` as a record of padding; say `V2`.
        return array.call_method1(intern!(py, "view"), (format!("V{}", dtype.itemsize()),));
    }
    if crate::protocol::pep3118::format_of(dtype).is_some() || dtype.lanes != 1 {
        return Ok(array);
    }
    let Ok(ml_dtypes) = py.import(intern!(py, "ml_dtypes")) else {
        return Ok(array);
    };
    match ml_dtypes.getattr_opt(dtype.name().as_str())? {
        Some(scalar_type) => array.call_method1(intern!(py, "view"), (scalar_type,)),
        None => Ok(array),
    }
}
