//! Python ints, and sequences of them, read as `i64`: the one reader behind
//! every shape, strides and offset argument (`zeros`, `empty` and
//! `from_buffer`'s `shape` and `offset`, the array interfaces' `shape` and
//! `strides`, a pickle's `shape`).
//!
//! An int outside `i64` is a bad value (`ValueError`; PyO3 alone would
//! raise `OverflowError`), anything else that is not an int the wrong type
//! (`TypeError`). Each caller words its own refusals ([`Refusal`]), which
//! docs/errors.md lists.

use pyo3::prelude::*;
use pyo3::types::{PyInt, PyString, PyTuple};

use crate::error::{Cause, Error};
use crate::layout::MAX_NDIM;
use crate::python::names::shown;

/// Why an int could not be read.
pub(crate) enum NotI64 {
    /// Not an int (nor an object with `__index__`).
    NotInt,
    /// An int outside `i64`.
    OutOfRange,
}

/// `value` as `i64`.
pub(crate) fn int(value: &Bound<'_, PyAny>) -> Result<i64, NotI64> {
    if let Ok(n) = value.extract::<i64>() {
        return Ok(n);
    }
    Err(if value.cast::<PyInt>().is_ok() {
        NotI64::OutOfRange
    } else {
        NotI64::NotInt
    })
}

/// The forms a caller takes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Form {
    /// A tuple of at most [`MAX_NDIM`] ints (the array interfaces' and a
    /// pickle's `shape` and `strides`).
    Tuple,
    /// NumPy's shape argument: an int, a tuple, or any other sequence of
    /// ints but a `str` (the rank is the layout's to check).
    Shape,
}

/// Why a sequence of ints was refused, for the caller to word.
pub(crate) enum Refusal<'a, 'py> {
    /// Not a form the caller takes, or an entry that is not an int.
    WrongType,
    /// More than [`MAX_NDIM`] entries ([`Form::Tuple`]).
    TooMany(usize),
    /// The entry on `axis` is an int outside `i64`.
    OutOfRange {
        axis: usize,
        item: &'a Bound<'py, PyAny>,
    },
}

/// Values on the stack for the usual ranks (`zeros((256, 256))` allocates
/// nothing but its data).
pub(crate) enum Extents<T> {
    Inline([T; INLINE_EXTENTS], usize),
    Heap(Vec<T>),
}

const INLINE_EXTENTS: usize = 8;

impl<T> std::ops::Deref for Extents<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        match self {
            Self::Inline(values, len) => &values[..*len],
            Self::Heap(values) => values,
        }
    }
}

/// As the slice (`[2, 3]`), for messages.
impl<T: std::fmt::Debug> std::fmt::Debug for Extents<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}

/// The ints of `value` in `form`, each passed through `each(axis, n)` (a
/// caller's own check, such as a non-negative extent, in axis order); a
/// refusal is worded by `refuse`. A tuple (read in place) or an int is the
/// common case and allocates nothing up to [`INLINE_EXTENTS`] entries.
pub(crate) fn ints<'py, T: Copy + Default>(
    value: &Bound<'py, PyAny>,
    form: Form,
    mut each: impl FnMut(usize, i64) -> PyResult<T>,
    refuse: impl Fn(Refusal<'_, 'py>) -> PyErr,
) -> PyResult<Extents<T>> {
    let mut read = |axis: usize, item: &Bound<'py, PyAny>| match int(item) {
        Ok(n) => each(axis, n),
        Err(NotI64::NotInt) => Err(refuse(Refusal::WrongType)),
        Err(NotI64::OutOfRange) => Err(refuse(Refusal::OutOfRange { axis, item })),
    };
    if let Ok(tuple) = value.cast::<PyTuple>() {
        let len = tuple.len();
        if form == Form::Tuple && len > MAX_NDIM {
            return Err(refuse(Refusal::TooMany(len)));
        }
        if len <= INLINE_EXTENTS {
            let mut values = [T::default(); INLINE_EXTENTS];
            for (axis, item) in tuple.iter_borrowed().enumerate() {
                values[axis] = read(axis, &item)?;
            }
            return Ok(Extents::Inline(values, len));
        }
        let values = tuple
            .iter_borrowed()
            .enumerate()
            .map(|(axis, item)| read(axis, &item));
        return values.collect::<PyResult<_>>().map(Extents::Heap);
    }
    if form == Form::Tuple || value.cast::<PyString>().is_ok() {
        return Err(refuse(Refusal::WrongType));
    }
    if value.cast::<PyInt>().is_ok() {
        let mut values = [T::default(); INLINE_EXTENTS];
        values[0] = read(0, value)?;
        return Ok(Extents::Inline(values, 1));
    }
    let items: Vec<Bound<'py, PyAny>> = value.extract().map_err(|_| refuse(Refusal::WrongType))?;
    let values = items
        .iter()
        .enumerate()
        .map(|(axis, item)| read(axis, item));
    values.collect::<PyResult<_>>().map(Extents::Heap)
}

/// A shape or strides entry of an interface dict or a pickle (`protocol`
/// names it in messages): a tuple of at most [`MAX_NDIM`] ints that fit in
/// `i64`.
pub(crate) fn int_tuple(
    protocol: &str,
    value: &Bound<'_, PyAny>,
    what: &str,
) -> PyResult<Extents<i64>> {
    ints(
        value,
        Form::Tuple,
        |_, n| Ok(n),
        |refusal| {
            match refusal {
                Refusal::WrongType => Error::type_error(
                    Cause::Layout,
                    format!(
                        "{protocol} {what} must be a tuple of ints, got {}",
                        shown(value)
                    ),
                ),
                Refusal::TooMany(len) => Error::value(
                    Cause::Layout,
                    format!(
                        "{protocol} {what} has {len} entries, more than the maximum of {MAX_NDIM}"
                    ),
                ),
                Refusal::OutOfRange { .. } => Error::value(
                    Cause::Layout,
                    format!(
                        "{protocol} {what} {} has an entry that is not an int in range",
                        shown(value)
                    ),
                ),
            }
            .into()
        },
    )
}

/// A shape argument (`zeros`, `empty`, `from_buffer`), each extent passed
/// through `each(axis, extent)`.
pub(crate) fn shape<T: Copy + Default>(
    shape: &Bound<'_, PyAny>,
    each: impl FnMut(usize, i64) -> PyResult<T>,
) -> PyResult<Extents<T>> {
    ints(shape, Form::Shape, each, |refusal| {
        match refusal {
            Refusal::WrongType | Refusal::TooMany(_) => Error::type_error(
                Cause::Argument,
                format!("shape must be an int or a tuple of ints, got {shape}"),
            ),
            Refusal::OutOfRange { axis, item } => {
                out_of_range(&format!("shape extent on axis {axis}"), item)
            }
        }
        .into()
    })
}

/// The refusal of an int argument outside `i64`.
pub(crate) fn out_of_range(what: &str, value: &Bound<'_, PyAny>) -> Error {
    Error::value(
        Cause::Argument,
        format!("{what} {value} is out of range (it must fit in a signed 64-bit integer)"),
    )
}
