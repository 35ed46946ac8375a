//! Buffer protocol spoke, core half (PEP 3118, no Python): what an acquired
//! `Py_buffer` describes, checked into a [`Descriptor`], and `from_buffer`'s
//! reinterpretation of its bytes.
//!
//! The Python half (`src/python/buffer/`) acquires the view, wraps it in its
//! RAII owner *before* anything here reads it, fills [`PyBufferFields`] from
//! it, and exports tensors through `__getbuffer__`.
//!
//! ```
//! use dlbridge::{Cause, DType};
//! use dlbridge::protocol::buffer::{PyBufferFields, describe, reinterpret};
//!
//! // What an exporter of a 2x3 float32 matrix fills in.
//! let mut data = [0f32; 6];
//! let shape = [2isize, 3];
//! let view = PyBufferFields {
//!     buf: data.as_mut_ptr().cast(),
//!     len: 24,
//!     readonly: true,
//!     format: Some(b"f"),
//!     itemsize: 4,
//!     ndim: 2,
//!     shape: Some(&shape),
//!     strides: None,
//!     has_suboffsets: false,
//! };
//! let described = describe(&view).unwrap();
//! assert_eq!(described.layout().strides(), &[12, 4]);
//!
//! // `from_buffer`: the 16 bytes after the first 8, as a (-1, 2) uint16 array.
//! let r = reinterpret(&described, 24, Some(DType::UINT16), Some(&[-1, 2]), 8).unwrap();
//! assert_eq!((r.dtype(), r.layout().shape()), (DType::UINT16, &[4, 2][..]));
//!
//! // An exporter whose shape needs more bytes than it lends: refused.
//! let lying = PyBufferFields { len: 20, ..view };
//! assert_eq!(describe(&lying).unwrap_err().cause(), Cause::Pointer);
//! ```

use std::borrow::Cow;

use crate::descriptor::Source;
use crate::descriptor::{Claims, Descriptor};
use crate::device::Device;
use crate::dtype::DType;
use crate::error::{Cause, Error, Result};
use crate::layout::{Layout, MAX_NDIM};
use crate::protocol::pep3118;

/// PEP 3118's own struct, `Py_buffer`, field by field as the exporter
/// filled it: the protocol's view, read without Python (so the core and
/// Miri can check it), not tensor metadata. [`describe`] checks it and
/// turns it into a [`Descriptor`].
///
/// ```
/// use dlbridge::DType;
/// use dlbridge::protocol::buffer::{PyBufferFields, describe, lent_bytes};
///
/// // A `bytes` object's view: no format (read as "B"), no shape, read-only.
/// let data = *b"abc";
/// let view = PyBufferFields {
///     buf: data.as_ptr().cast_mut(),
///     len: 3,
///     readonly: true,
///     format: None,
///     itemsize: 1,
///     ndim: 1,
///     shape: None,
///     strides: None,
///     has_suboffsets: false,
/// };
/// assert_eq!(lent_bytes(&view).unwrap(), (data.as_ptr().cast_mut(), 3, true));
/// let d = describe(&view).unwrap();
/// assert_eq!((d.dtype(), d.layout().shape()), (DType::UINT8, &[3][..]));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct PyBufferFields<'a> {
    /// `buf`.
    pub buf: *mut u8,
    /// `len`: bytes in the buffer.
    pub len: isize,
    /// `readonly != 0`.
    pub readonly: bool,
    /// `format` as bytes (`None`: NULL, which PEP 3118 reads as `"B"`).
    pub format: Option<&'a [u8]>,
    /// `itemsize`.
    pub itemsize: isize,
    /// `ndim`.
    pub ndim: i32,
    /// `shape` (`None`: NULL).
    pub shape: Option<&'a [isize]>,
    /// `strides` (`None`: NULL, C-contiguous).
    pub strides: Option<&'a [isize]>,
    /// Whether `suboffsets` is non-NULL (PIL-style indirect arrays).
    pub has_suboffsets: bool,
}

/// The bytes a buffer lends: `(buf, len, readonly)`.
///
/// The one check of a view's memory that every buffer import makes (the
/// direct import, `from_buffer`, and an `__array_interface__` whose `data`
/// is a buffer exporter): no suboffsets (whose "data" are row pointers), a
/// non-negative `len`, and a non-NULL `buf` when `len` says there are bytes.
///
/// # Errors
///
/// `Buffer` ([`Cause::Layout`]) for suboffsets; `Value`
/// ([`Cause::Pointer`]) for a negative `len`; `Buffer` ([`Cause::Pointer`])
/// for a NULL `buf` with bytes.
pub fn lent_bytes(view: &PyBufferFields<'_>) -> Result<(*mut u8, usize, bool)> {
    if view.has_suboffsets {
        return Err(Error::buffer(
            Cause::Layout,
            "buffers with suboffsets (PIL-style indirect arrays) are not supported",
        ));
    }
    let len = usize::try_from(view.len).map_err(|_| {
        Error::value(
            Cause::Pointer,
            format!("buffer has a negative len {}", view.len),
        )
    })?;
    if view.buf.is_null() && len > 0 {
        return Err(Error::buffer(
            Cause::Pointer,
            format!("buffer has a NULL data pointer for len {len}"),
        ));
    }
    Ok((view.buf, len, view.readonly))
}

/// Checks a buffer's format, itemsize, ndim, shape and strides, and that
/// the bytes a contiguous layout touches lie inside `len`.
///
/// # Errors
///
/// Those of [`lent_bytes`], and
/// - `Buffer` ([`Cause::DType`] or [`Cause::ByteOrder`]): a format that is
///   not ASCII or that [`pep3118::parse_format`] refuses, or an itemsize
///   that is not the format's;
/// - `Value` ([`Cause::Layout`]): a negative `ndim` or one above
///   [`MAX_NDIM`], or a shape and strides that [`Layout::from_signed`]
///   refuses;
/// - `Buffer` ([`Cause::Layout`]): no shape, and a `len` that is not a
///   whole number of items;
/// - `Buffer` ([`Cause::Pointer`]): a shape whose items need more than
///   `len` bytes;
/// - `Value` ([`Cause::Pointer`]): a span that wraps around the address
///   space.
#[inline(always)]
pub fn describe(view: &PyBufferFields<'_>) -> Result<Descriptor> {
    let (data, len, readonly) = lent_bytes(view)?;
    let format = match view.format {
        None => "B",
        Some(bytes) => std::str::from_utf8(bytes)
            .ok()
            .filter(|f| f.is_ascii())
            .ok_or_else(|| Error::buffer(Cause::DType, "buffer format is not ASCII"))?,
    };
    let dtype = pep3118::parse_format(format)?;
    let itemsize = usize::try_from(view.itemsize).unwrap_or(0);
    if itemsize != dtype.itemsize() {
        return Err(Error::buffer(
            Cause::DType,
            format!(
                "buffer itemsize {} does not match its format {format:?} ({} bytes)",
                view.itemsize,
                dtype.itemsize()
            ),
        ));
    }
    let ndim = usize::try_from(view.ndim).map_err(|_| {
        Error::value(
            Cause::Layout,
            format!("buffer has a negative ndim {}", view.ndim),
        )
    })?;
    if ndim > MAX_NDIM {
        return Err(Error::value(
            Cause::Layout,
            format!("buffer has ndim {ndim}, more than the maximum of {MAX_NDIM}"),
        ));
    }
    let layout = match view.shape {
        // PEP 3118: ndim 0 (shape NULL) is a scalar, one item (NumPy 0-d
        // arrays, ctypes simple types, our own 0-d export).
        None if ndim == 0 => Layout::contiguous(&[], itemsize)?,
        // No shape: the whole buffer as one run of items.
        None => {
            if len % itemsize != 0 {
                return Err(Error::buffer(
                    Cause::Layout,
                    format!("buffer len {len} is not a multiple of its itemsize {itemsize}"),
                ));
            }
            Layout::contiguous(&[len / itemsize], itemsize)?
        }
        Some(shape) => {
            let shape = &shape[..ndim.min(shape.len())];
            let strides = view.strides.map(|s| as_i64(&s[..ndim.min(s.len())]));
            Layout::from_signed(&as_i64(shape), strides.as_deref(), itemsize)?
        }
    };
    // PEP 3118's `len` is the product of the shape times the itemsize; a
    // contiguous layout must also fit in it byte for byte (a strided view's
    // span may reach beyond `len`, which counts only its items).
    if layout.nbytes() > len {
        return Err(Error::buffer(
            Cause::Pointer,
            format!(
                "buffer shape {:?} needs {} bytes but its len is {len}",
                layout.shape(),
                layout.nbytes()
            ),
        ));
    }
    let contiguous = layout.is_c_contiguous() || layout.is_f_contiguous();
    Descriptor::new(Claims {
        what: "buffer",
        base: data,
        offset: 0,
        layout,
        dtype,
        device: Device::CPU,
        readonly,
        source: Source::Buffer,
        len: contiguous.then_some(len),
    })
}

/// `Py_ssize_t` values as `i64`, borrowed where the two are the same type.
fn as_i64(values: &[isize]) -> Cow<'_, [i64]> {
    if size_of::<isize>() == size_of::<i64>() && align_of::<isize>() == align_of::<i64>() {
        // SAFETY: same size and alignment (checked above), and every bit
        // pattern of either is a valid value of the other.
        Cow::Borrowed(unsafe { std::slice::from_raw_parts(values.as_ptr().cast(), values.len()) })
    } else {
        Cow::Owned(values.iter().map(|&v| v as i64).collect())
    }
}

/// `from_buffer`: the bytes of a C-contiguous buffer (described by
/// `described`, `len` bytes long) reinterpreted as `dtype` with `shape`
/// (one `-1` may be inferred), starting `offset` bytes in.
///
/// # Errors
///
/// - `Value` ([`Cause::Layout`]): a buffer that is not C-contiguous, or a
///   shape that [`Layout::from_signed`] refuses (a negative extent other
///   than one `-1`, too many axes, an overflowing size);
/// - `Value` ([`Cause::Argument`]): an offset beyond the buffer; a shape
///   with more than one `-1`; an extent to infer (a `-1`, or the only one
///   when `shape` is `None`) whose other extents are negative or overflow,
///   or whose items do not divide the bytes after the offset; a shape that
///   does not cover exactly those bytes.
pub fn reinterpret(
    described: &Descriptor,
    len: usize,
    dtype: Option<DType>,
    shape: Option<&[i64]>,
    offset: usize,
) -> Result<Descriptor> {
    let layout = described.layout();
    if !layout.is_c_contiguous() {
        return Err(Error::value(
            Cause::Layout,
            format!(
                "from_buffer reinterprets raw bytes and needs a C-contiguous buffer; \
                 this one has shape {:?} and strides {:?}",
                layout.shape(),
                layout.strides()
            ),
        ));
    }
    let dtype = dtype.unwrap_or(described.dtype());
    let itemsize = dtype.itemsize();
    let len = layout.nbytes().min(len);
    if offset > len {
        return Err(Error::value(
            Cause::Argument,
            format!("offset {offset} is beyond the buffer's {len} bytes"),
        ));
    }
    let available = len - offset;
    let shape = resolve_shape(shape, available, itemsize)?;
    let layout = Layout::from_signed(&shape, None, itemsize)?;
    if layout.nbytes() != available {
        return Err(Error::value(
            Cause::Argument,
            format!(
                "shape {shape:?} of {dtype} needs {} bytes, but the buffer has {available} bytes after offset {offset}",
                layout.nbytes()
            ),
        ));
    }
    Descriptor::new(Claims {
        what: "buffer",
        base: described.data_ptr(),
        offset,
        layout,
        dtype,
        device: Device::CPU,
        readonly: described.readonly,
        source: Source::Buffer,
        len: Some(len),
    })
}

fn resolve_shape(shape: Option<&[i64]>, available: usize, itemsize: usize) -> Result<Vec<i64>> {
    let divide = |known: usize, what: &str| {
        let bytes = known.checked_mul(itemsize).filter(|&b| b > 0);
        match bytes {
            Some(bytes) if available.is_multiple_of(bytes) => Ok((available / bytes) as i64),
            _ => Err(Error::value(
                Cause::Argument,
                format!("{available} bytes do not divide into {what} of {itemsize}-byte items"),
            )),
        }
    };
    let Some(shape) = shape else {
        return Ok(vec![divide(1, "whole items")?]);
    };
    let inferred: Vec<usize> = (0..shape.len()).filter(|&i| shape[i] == -1).collect();
    match inferred.as_slice() {
        [] => Ok(shape.to_vec()),
        [axis] => {
            let known = shape
                .iter()
                .filter(|&&n| n != -1)
                .try_fold(1usize, |acc, &n| {
                    usize::try_from(n).ok().and_then(|n| acc.checked_mul(n))
                })
                .ok_or_else(|| {
                    Error::value(
                        Cause::Argument,
                        format!(
                            "invalid shape {shape:?}: extents must be non-negative (one may be -1, \
                             to be inferred) and their product must fit in usize"
                        ),
                    )
                })?;
            let mut resolved = shape.to_vec();
            resolved[*axis] = divide(known, &format!("shape {shape:?}"))?;
            Ok(resolved)
        }
        _ => Err(Error::value(
            Cause::Argument,
            format!("shape {shape:?} may infer (-1) at most one axis"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(buf: *mut u8, len: isize) -> PyBufferFields<'static> {
        PyBufferFields {
            buf,
            len,
            readonly: false,
            format: Some(b"f"),
            itemsize: 4,
            ndim: 1,
            shape: None,
            strides: None,
            has_suboffsets: false,
        }
    }

    #[test]
    fn reinterpret_infers_one_axis() {
        let mut bytes = [0u8; 16];
        let d = describe(&fields(bytes.as_mut_ptr(), 16)).unwrap();
        let r = reinterpret(&d, 16, Some(DType::UINT16), Some(&[-1, 2]), 4).unwrap();
        assert_eq!(r.layout().shape(), &[3, 2]);
        assert!(reinterpret(&d, 16, None, Some(&[-1, -1]), 0).is_err());
        assert!(reinterpret(&d, 16, None, None, 17).is_err());
    }
}
