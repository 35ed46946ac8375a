//! `dlbridge._native._testing`: the test suite's hooks, not API.
//!
//! A submodule of its own, so the hooks are in no public namespace: not in
//! `dlbridge`, not in `_native`'s names or `__all__`, not in the stub. The
//! tests reach them as `dlbridge._native._testing.<name>`.

use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::cuda::driver;
use crate::python::fast_path;

/// `{"ndarray_fields": n, "exchange_api": n, "lent_arguments": n,
/// "builtin_buffer": n, "chunked_array_stream": n}`: imports taken through each fast path since the
/// module was loaded (the suite asserts that the fast paths are taken).
#[pyfunction(name = "fast_path_counts")]
fn fast_path_counts(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let counts = PyDict::new(py);
    for (name, count) in fast_path::fast_path_counts() {
        counts.set_item(name, count)?;
    }
    Ok(counts)
}

/// Loads the CUDA driver from `path` (`None`: the system's) the next time
/// one is needed; tests point it at a double or at nothing.
#[pyfunction(name = "cuda_driver")]
#[pyo3(signature = (path))]
fn cuda_driver(path: Option<std::path::PathBuf>) {
    // SAFETY: a test hook for Python code, which can load and call any
    // library itself (`ctypes.CDLL`): the path is trusted as `ctypes`
    // trusts it, to be the driver or a double with its prototypes.
    unsafe { driver::use_library(path.as_deref()) };
}

/// Sets `_native._testing` (an attribute only: `__all__` does not name it).
pub(crate) fn add_to(native: &Bound<'_, PyModule>) -> PyResult<()> {
    let testing = PyModule::new(native.py(), "_testing")?;
    testing.add_function(wrap_pyfunction!(fast_path_counts, &testing)?)?;
    testing.add_function(wrap_pyfunction!(cuda_driver, &testing)?)?;
    native.setattr("_testing", testing)
}
