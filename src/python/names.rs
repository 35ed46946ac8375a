//! How Python objects are named in error messages: never an error of its own.

use pyo3::prelude::*;

/// The object's type name (`"object"` if even that fails).
pub(crate) fn type_name(object: &Bound<'_, PyAny>) -> String {
    object
        .get_type()
        .name()
        .map_or_else(|_| "object".to_owned(), |n| n.to_string())
}

/// The object's `repr` (`"?"` if it raises).
pub(crate) fn shown(object: &Bound<'_, PyAny>) -> String {
    object
        .repr()
        .map_or_else(|_| "?".to_owned(), |r| r.to_string())
}

/// The object's `str` (`"?"` if it raises).
pub(crate) fn text(object: &Bound<'_, PyAny>) -> String {
    object
        .str()
        .map_or_else(|_| "?".to_owned(), |s| s.to_string())
}
