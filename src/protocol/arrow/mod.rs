//! The Arrow C Data Interface, both ways, with no Python in sight: the
//! structs ([`ffi`]), format strings ([`format`]), schema metadata and the
//! `arrow.fixed_shape_tensor` extension ([`metadata`]), a tensor's export
//! ([`export`]) and a producer's array as a tensor ([`import`]). The
//! PyCapsule interface around them (`__arrow_c_array__`,
//! `__arrow_c_stream__`) is `src/python/arrow/`.

pub(crate) mod export;
pub(crate) mod ffi;
pub(crate) mod format;
pub(crate) mod import;
pub(crate) mod metadata;
pub(crate) mod stream;

#[cfg(test)]
mod tests;

use crate::error::{Cause, Error};

/// A struct of the C Data Interface that breaks its rules (a lying or
/// broken producer, or consumer): `ValueError`, the one message every such
/// check shares, `why` naming the field.
pub(crate) fn malformed(why: impl std::fmt::Display) -> Error {
    Error::value(Cause::Layout, format!("malformed Arrow C data: {why}"))
}

/// A valid Arrow array of type `format` that has no zero-copy tensor:
/// `BufferError`, `why` saying what in the type or the values stops it.
pub(crate) fn no_tensor(format: &str, why: impl std::fmt::Display) -> Error {
    Error::buffer(
        Cause::DType,
        format!("an Arrow array of type {format:?} has no zero-copy tensor: {why}"),
    )
}
