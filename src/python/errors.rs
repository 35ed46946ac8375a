//! The one mapping from the crate's [`Error`] to Python exceptions (the
//! table is in `src/error.rs`): no spoke builds a Python exception for a
//! refusal of its own.

use crate::error::{Error, ErrorKind};

impl From<Error> for pyo3::PyErr {
    fn from(error: Error) -> Self {
        use pyo3::exceptions::{
            PyAttributeError, PyBufferError, PyMemoryError, PyTypeError, PyValueError,
        };
        let (kind, message) = error.into_parts();
        match kind {
            ErrorKind::Type => PyTypeError::new_err(message),
            ErrorKind::Value => PyValueError::new_err(message),
            ErrorKind::Buffer => PyBufferError::new_err(message),
            ErrorKind::Memory => PyMemoryError::new_err(message),
            ErrorKind::Attribute => PyAttributeError::new_err(message),
        }
    }
}

/// The `ImportError` for a framework-native return whose framework cannot be
/// imported (NumPy and PyTorch are optional at run time): it names what was
/// asked and keeps the import's own error as its cause.
pub(crate) fn framework_missing(
    py: pyo3::Python<'_>,
    returned: &str,
    package: &str,
    cause: pyo3::PyErr,
) -> pyo3::PyErr {
    let error = pyo3::exceptions::PyImportError::new_err(format!(
        "returning a {returned} needs {package}, which cannot be imported: {cause}"
    ));
    error.set_cause(py, Some(cause));
    error
}
