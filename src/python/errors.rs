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
