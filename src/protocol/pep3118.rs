//! PEP 3118 format strings <-> [`DType`], with no Python in sight.
//!
//! dlbridge parses formats itself because PyO3's `PyBuffer` reads `'>f'` as
//! native on little-endian machines (and returns byte-swapped garbage) and
//! knows no complex, bool or half. Accepted: one optional byte-order prefix
//! (`@ = < > !`), an optional repeat count of 1, and one of
//! `? b B h H i I l L q Q n N e f d` or `Zf Zd Ze`. `@` (or no prefix) means
//! native sizes; `= < > !` mean the struct module's standard sizes (`l` is 4
//! bytes there, `n`/`N` do not exist). Non-native byte order, structs,
//! padding, pointers, strings and anything else are refused with a
//! `BufferError` that names the format.
//!
//! ```
//! use dlbridge::DType;
//! use dlbridge::protocol::pep3118::{format_of, parse_format};
//!
//! assert_eq!(parse_format("Zd").unwrap(), DType::COMPLEX128);
//! assert_eq!(parse_format("=l").unwrap(), DType::INT32); // standard size: 4 bytes
//! // What a tensor exports with parses back to its dtype.
//! let format = format_of(DType::FLOAT16).unwrap().to_str().unwrap();
//! assert_eq!(parse_format(format).unwrap(), DType::FLOAT16);
//! // bfloat16 has no PEP 3118 code.
//! assert_eq!(format_of(DType::BFLOAT16), None);
//! ```

use crate::dtype::{DType, NATIVE_BYTE_ORDER, SWAPPED_BYTE_ORDER};
use crate::error::{Cause, Error, Result};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Sizes {
    Native,
    Standard,
}

fn refuse(cause: Cause, format: &str, why: &str) -> Error {
    Error::buffer(
        cause,
        format!("unsupported PEP 3118 format {format:?}: {why}"),
    )
}

/// Parses a PEP 3118 format string into a dtype.
///
/// ```
/// use dlbridge::{Cause, DType, ErrorKind};
/// use dlbridge::protocol::pep3118::parse_format;
///
/// assert_eq!(parse_format("f").unwrap(), DType::FLOAT32);
/// assert_eq!(parse_format("2x").unwrap(), DType::opaque(2).unwrap()); // NumPy's V2
/// let err = parse_format("!f").unwrap_err(); // network (big-endian) order
/// assert_eq!((err.kind(), err.cause()), (ErrorKind::Buffer, Cause::ByteOrder));
/// assert_eq!(parse_format("T{i:x:}").unwrap_err().cause(), Cause::DType);
/// ```
///
/// # Errors
///
/// Always `Buffer`, with a message naming the format: [`Cause::ByteOrder`]
/// for non-native byte order (`!`, or the swapped one of `<` and `>`);
/// [`Cause::DType`] for anything else not accepted (see the module docs):
/// a struct, a repeat count other than 1, an unknown or missing type code,
/// `n`/`N` with standard sizes, or `<n>x` opaque bytes outside 1 to 31.
pub fn parse_format(format: &str) -> Result<DType> {
    let mut rest = format;
    let mut sizes = Sizes::Native;
    if let Some(prefix) = rest.chars().next() {
        match prefix {
            '@' => rest = &rest[1..],
            '=' => {
                sizes = Sizes::Standard;
                rest = &rest[1..];
            }
            NATIVE_BYTE_ORDER => {
                sizes = Sizes::Standard;
                rest = &rest[1..];
            }
            SWAPPED_BYTE_ORDER | '!' => {
                return Err(refuse(Cause::ByteOrder, format, "non-native byte order"));
            }
            _ => {}
        }
    }
    // `x` is a pad byte; `<n>x`, opaque bytes, is how NumPy exports `V<n>`.
    if let Some(count) = rest.strip_suffix('x')
        && count.bytes().all(|b| b.is_ascii_digit())
    {
        let nbytes = if count.is_empty() {
            1
        } else {
            count.parse::<usize>().map_err(|_| {
                refuse(
                    Cause::DType,
                    format,
                    "the repeat count does not fit in usize",
                )
            })?
        };
        return DType::opaque(nbytes).map_err(|e| refuse(e.cause(), format, e.message()));
    }
    if let Some(count) = rest.strip_prefix('1') {
        rest = count;
    }
    if rest.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(refuse(
            Cause::DType,
            format,
            "a repeat count other than 1 describes a sub-array",
        ));
    }
    let (long, size_t) = match sizes {
        Sizes::Native => (size_of::<std::ffi::c_long>(), Some(size_of::<usize>())),
        Sizes::Standard => (4, None),
    };
    let int = |signed: bool, bytes: usize| {
        DType::int(signed, bytes)
            .ok_or_else(|| refuse(Cause::DType, format, &format!("no {bytes}-byte integer")))
    };
    Ok(match rest {
        "?" => DType::BOOL,
        "b" => DType::INT8,
        "B" => DType::UINT8,
        "h" => DType::INT16,
        "H" => DType::UINT16,
        "i" => DType::INT32,
        "I" => DType::UINT32,
        "l" => int(true, long)?,
        "L" => int(false, long)?,
        "q" => DType::INT64,
        "Q" => DType::UINT64,
        "n" | "N" => match size_t {
            Some(bytes) => int(rest == "n", bytes)?,
            None => {
                return Err(refuse(
                    Cause::DType,
                    format,
                    "'n'/'N' have no standard size",
                ));
            }
        },
        "e" => DType::FLOAT16,
        "f" => DType::FLOAT32,
        "d" => DType::FLOAT64,
        "Ze" => DType::COMPLEX32,
        "Zf" => DType::COMPLEX64,
        "Zd" => DType::COMPLEX128,
        "" => return Err(refuse(Cause::DType, format, "no type code")),
        _ => {
            return Err(refuse(
                Cause::DType,
                format,
                "not a single native numeric type",
            ));
        }
    })
}

/// The format a dtype exports with, as NumPy writes it (`q`/`Q` for 64-bit
/// integers, portable across platforms), or `None` for dtypes PEP 3118 has
/// no code for (bfloat16, float8, opaque bytes, vectors), which the buffer
/// export refuses to format (a consumer would read padding, not values).
pub fn format_of(dtype: DType) -> Option<&'static std::ffi::CStr> {
    Some(match dtype {
        DType::BOOL => c"?",
        DType::INT8 => c"b",
        DType::UINT8 => c"B",
        DType::INT16 => c"h",
        DType::UINT16 => c"H",
        DType::INT32 => c"i",
        DType::UINT32 => c"I",
        DType::INT64 => c"q",
        DType::UINT64 => c"Q",
        DType::FLOAT16 => c"e",
        DType::FLOAT32 => c"f",
        DType::FLOAT64 => c"d",
        DType::COMPLEX64 => c"Zf",
        DType::COMPLEX128 => c"Zd",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn native_and_standard_sizes() {
        assert_eq!(parse_format("l").unwrap(), DType::INT64);
        assert_eq!(parse_format("<l").unwrap(), DType::INT32);
        assert_eq!(parse_format("=L").unwrap(), DType::UINT32);
        assert_eq!(parse_format("@N").unwrap(), DType::UINT64);
        assert_eq!(parse_format("<q").unwrap(), DType::INT64);
        assert_eq!(parse_format("=d").unwrap(), DType::FLOAT64);
        assert_eq!(parse_format("1f").unwrap(), DType::FLOAT32);
        assert_eq!(parse_format("Zd").unwrap(), DType::COMPLEX128);
        assert_eq!(parse_format("?").unwrap(), DType::BOOL);
        assert_eq!(parse_format("e").unwrap(), DType::FLOAT16);
    }

    #[test]
    fn pad_bytes_are_opaque_elements() {
        assert_eq!(parse_format("2x").unwrap(), DType::opaque(2).unwrap());
        assert_eq!(parse_format("x").unwrap(), DType::opaque(1).unwrap());
        assert_eq!(parse_format("31x").unwrap().itemsize(), 31);
    }

    #[test]
    fn refusals_name_the_format() {
        for bad in [
            ">f", "!i", "T{i:x:}", "32x", "3s", "P", "O", "g", "Zg", "<n", "", "ff", "2f", "^i",
            "&f", "w",
        ] {
            let err = parse_format(bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Buffer, "{bad}");
            assert!(err.message().contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn every_exportable_format_parses_back() {
        for dtype in [
            DType::BOOL,
            DType::INT8,
            DType::UINT8,
            DType::INT16,
            DType::UINT16,
            DType::INT32,
            DType::UINT32,
            DType::INT64,
            DType::UINT64,
            DType::FLOAT16,
            DType::FLOAT32,
            DType::FLOAT64,
            DType::COMPLEX64,
            DType::COMPLEX128,
        ] {
            let format = format_of(dtype).unwrap().to_str().unwrap();
            assert_eq!(parse_format(format).unwrap(), dtype);
        }
        assert!(format_of(DType::BFLOAT16).is_none());
    }
}
