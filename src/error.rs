//! The crate's one error type and its one mapping to Python exceptions.
//!
//! Every refusal says two things: *why* it was refused, a [`Cause`] that
//! Rust callers match on, and *which Python exception* it becomes, an
//! [`ErrorKind`] (see `docs/architecture.md`, "Errors"):
//!
//! | [`ErrorKind`] | Python | meaning |
//! | --- | --- | --- |
//! | `Type` | `TypeError` | the object speaks no protocol; an argument of the wrong type |
//! | `Value` | `ValueError` | a malformed descriptor or argument value |
//! | `Buffer` | `BufferError` | a valid array that cannot go where it was asked |
//! | `Memory` | `MemoryError` | an allocation the system cannot satisfy (as NumPy) |
//! | `Attribute` | `AttributeError` | a protocol attribute the object cannot offer, so that consumers move on |
//!
//! The two are independent: a [`Cause::DType`] is a `ValueError` for a
//! malformed typestr and a `BufferError` for a valid dtype DLPack cannot
//! express. So every constructor is named for the kind (the Python
//! exception, which the mapping in `src/python/errors.rs` reads and nothing
//! else decides) and takes the cause as its first argument: a site states
//! both, and no cause is ever guessed from a message.
//!
//! ```
//! use dlbridge::{Cause, ErrorKind, Layout};
//!
//! let err = Layout::from_signed(&[2, -3], None, 4).unwrap_err();
//! assert_eq!(err.kind(), ErrorKind::Value);
//! let why = match err.cause() {
//!     Cause::Layout => "a malformed shape",
//!     Cause::Pointer | Cause::DType => "the memory or its element type",
//!     _ => "something else",
//! };
//! assert_eq!(why, "a malformed shape");
//! assert_eq!(err.message(), "shape has a negative extent -3 on axis 1");
//! ```

use std::fmt;

/// Which Python exception an [`Error`] becomes.
///
/// ```
/// use dlbridge::{ErrorKind, Tensor};
///
/// let t = Tensor::from(vec![1.0f32, 2.0]);
/// // SAFETY: nothing writes this memory while the view lives.
/// let err = unsafe { t.as_ndarray::<f64>() }.unwrap_err(); // float32 memory, viewed as f64
/// let exception = match err.kind() {
///     ErrorKind::Type => "TypeError",
///     ErrorKind::Value => "ValueError",
///     ErrorKind::Buffer => "BufferError",
///     ErrorKind::Memory => "MemoryError",
///     ErrorKind::Attribute => "AttributeError",
///     _ => "Exception", // the enum may grow (it is `#[non_exhaustive]`)
/// };
/// assert_eq!(exception, "TypeError");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// `TypeError`: no protocol, or an argument of the wrong type.
    Type,
    /// `ValueError`: a malformed descriptor (bad shape, strides, ndim, typestr, ...).
    Value,
    /// `BufferError`: a valid array that cannot be exported or viewed as asked.
    Buffer,
    /// `MemoryError`: the allocator could not satisfy a request.
    Memory,
    /// `AttributeError`: a protocol attribute this object cannot offer (a
    /// CPU tensor's `__cuda_array_interface__`), which tells a consumer that
    /// probes with `hasattr` to move on to another protocol.
    Attribute,
}

/// Why a conversion was refused: one variant per cause, for Rust callers to
/// match on (the message names the offending value; the cause says what
/// kind of thing it was). New causes may be added, so a `match` needs a
/// wildcard arm.
///
/// ```
/// use dlbridge::{Cause, Tensor};
///
/// let mut t = Tensor::from(vec![1i32, 2]);
/// let alias = t.clone(); // a second view of the same memory
/// let err = t.as_ndarray_mut::<i32>().unwrap_err();
/// match err.cause() {
///     // Another view is alive: let it go, and the exclusive view is granted.
///     Cause::Aliasing => drop(alias),
///     other => panic!("unexpected refusal {other:?}: {err}"),
/// }
/// t.as_ndarray_mut::<i32>().unwrap()[[0]] = 10;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Cause {
    /// A bad argument to a dlbridge function or method, of the wrong type or
    /// value (a shape, offset, device, `max_version`, `stream` or keyword
    /// that the call cannot take, or `from_buffer`'s shape and offset that
    /// do not fit the buffer).
    Argument,
    /// The object speaks none of the protocols asked for, or the one it
    /// speaks gave nothing (its exporter raised, every protocol refused).
    NoProtocol,
    /// The protocol's carrier is unusable: a capsule already consumed,
    /// misnamed, holding NULL or not a capsule at all; an
    /// `__array_interface__` that is not a dict, lacks a required key, or
    /// whose `data` is not a `(pointer, readonly)` pair; a `PyArrayInterface`
    /// whose first field is not 2.
    Capsule,
    /// A protocol version dlbridge cannot read (an incompatible DLPack major
    /// version, an `__array_interface__` version other than 3).
    Version,
    /// A malformed or inexpressible layout: a negative, overflowing or
    /// mismatched shape or strides, ndim beyond the maximum, a NULL shape,
    /// a stride that is not a whole number of items, a rank or contiguity
    /// other than the one asked for, indirect (suboffset) buffers.
    Layout,
    /// The memory the data pointer addresses: NULL with elements to address
    /// (or a NULL managed tensor), misaligned for the element type, an
    /// offset or span wrapping the address space or reaching outside the
    /// known length, a malformed length or offset.
    Pointer,
    /// The element type: unknown or malformed, not expressible by the target
    /// protocol (datetimes, strings, extended precision, packed sub-byte,
    /// structured records), an itemsize that disagrees with the dtype, a
    /// typed view of another dtype, or bytes that are no valid values of it
    /// (a `bool` view of bytes other than 0 and 1).
    DType,
    /// Data or a dtype argument in non-native byte order.
    ByteOrder,
    /// A write to readonly memory was asked for (a mutable view, a writable
    /// buffer), or readonly memory would go where read-only cannot be said
    /// (legacy DLPack).
    Readonly,
    /// The memory is on a device the conversion cannot reach, or a producer
    /// returned a device other than the one asked for.
    Device,
    /// State of the producer's own that the import cannot carry: torch's
    /// conjugate and negative bits and `requires_grad`, an array's mask.
    ProducerState,
    /// `copy=False` where only a copy could answer.
    Copy,
    /// An allocation the system cannot satisfy, or one too large to ask for.
    Allocation,
    /// A mutable view whose exclusivity cannot be proved: memory a producer
    /// may still reach, other views or exports of it, or strides under which
    /// two indices reach one element; or a tracked borrow (`ReadonlyTensor`,
    /// `ReadwriteTensor`) of memory that overlaps a conflicting one held.
    Aliasing,
    /// A CUDA stream: a value the protocol disallows (`0`, a negative
    /// handle), or a synchronisation that could not be made (no CUDA driver
    /// to load, a driver call that failed).
    Stream,
}

/// A refusal with a message that names the offending value.
///
/// ```
/// use dlbridge::{Cause, DType, Error, ErrorKind};
///
/// let err = DType::from_name("float128").unwrap_err();
/// assert_eq!((err.kind(), err.cause()), (ErrorKind::Type, Cause::DType));
/// assert_eq!(err.to_string(), "unknown dtype name \"float128\"");
///
/// // A layer above dlbridge states both the kind and the cause of its own refusals.
/// let mine = Error::buffer(Cause::Device, "this kernel needs host memory");
/// assert_eq!(mine.cause(), Cause::Device);
/// assert_eq!(mine.into_parts(), (ErrorKind::Buffer, "this kernel needs host memory".to_owned()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    cause: Cause,
    message: String,
}

/// `Result` with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    fn new(kind: ErrorKind, cause: Cause, message: impl Into<String>) -> Self {
        Self {
            kind,
            cause,
            message: message.into(),
        }
    }

    /// A `TypeError`-class refusal.
    pub fn type_error(cause: Cause, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Type, cause, message)
    }

    /// A `ValueError`-class refusal (malformed input).
    pub fn value(cause: Cause, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Value, cause, message)
    }

    /// A `BufferError`-class refusal (valid input that cannot go where asked).
    pub fn buffer(cause: Cause, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Buffer, cause, message)
    }

    /// A `MemoryError`-class refusal (an allocation that failed).
    pub fn memory(cause: Cause, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Memory, cause, message)
    }

    /// An `AttributeError`-class refusal (an attribute the object cannot
    /// offer; consumers that probe with `hasattr` move on).
    pub fn attribute(cause: Cause, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Attribute, cause, message)
    }

    /// The exception class this error maps to.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Why it was refused.
    pub fn cause(&self) -> Cause {
        self.cause
    }

    /// The human-readable message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The class and the message, taken apart (what the Python mapping reads).
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
