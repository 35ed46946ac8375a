//! The crate's one error type and its one mapping to Python exceptions.
//!
//! Every refusal is classified by what went wrong, and the class decides the
//! Python exception (see `docs/architecture.md`, "Errors"):
//!
//! | [`ErrorKind`] | Python | meaning |
//! | --- | --- | --- |
//! | `Type` | `TypeError` | the object speaks no protocol; an argument of the wrong type |
//! | `Value` | `ValueError` | a malformed descriptor or argument value |
//! | `Buffer` | `BufferError` | a valid array that cannot go where it was asked |
//! | `Memory` | `MemoryError` | an allocation the system cannot satisfy (as NumPy) |

use std::fmt;

/// Which Python exception an [`Error`] becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// `TypeError`: no protocol, or an argument of the wrong type.
    Type,
    /// `ValueError`: a malformed descriptor (bad shape, strides, ndim, typestr, ...).
    Value,
    /// `BufferError`: a valid array that cannot be exported or viewed as asked.
    Buffer,
    /// `MemoryError`: the allocator could not satisfy a request.
    Memory,
}

/// A refusal with a message that names the offending value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

/// `Result` with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A `TypeError`-class refusal.
    pub fn type_error(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Type,
            message: message.into(),
        }
    }

    /// A `ValueError`-class refusal (malformed input).
    pub fn value(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Value,
            message: message.into(),
        }
    }

    /// A `BufferError`-class refusal (valid input that cannot go where asked).
    pub fn buffer(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Buffer,
            message: message.into(),
        }
    }

    /// A `MemoryError`-class refusal (an allocation that failed).
    pub fn memory(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Memory,
            message: message.into(),
        }
    }

    /// The exception class this error maps to.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The human-readable message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The class and the message, taken apart.
    pub fn into_parts(self) -> (ErrorKind, String) {
        (self.kind, self.message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}
