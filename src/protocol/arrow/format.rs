//! Arrow format strings (the C Data Interface's `format`), read as far as a
//! tensor needs: the primitive types DLPack stores as Arrow does, and the
//! FixedSizeList (`+w:<size>`) that nests them. Every other type is named,
//! so a refusal can say why it has no tensor.

use crate::dtype::DType;

/// What a format string says, for an import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// One native-endian element after another.
    Primitive(DType),
    /// `+w:<size>`: `size` child values per slot.
    FixedSizeList(usize),
    /// A type with no tensor of its own, and why.
    NoTensor(&'static str),
}

/// The Arrow format of a primitive dtype Arrow stores as a tensor does.
/// `bool` is not one (Arrow's booleans are bits, a tensor's are bytes).
pub(crate) fn primitive_format(dtype: DType) -> Option<&'static str> {
    Some(match dtype {
        DType::INT8 => "c",
        DType::UINT8 => "C",
        DType::INT16 => "s",
        DType::UINT16 => "S",
        DType::INT32 => "i",
        DType::UINT32 => "I",
        DType::INT64 => "l",
        DType::UINT64 => "L",
        DType::FLOAT16 => "e",
        DType::FLOAT32 => "f",
        DType::FLOAT64 => "g",
        _ => return None,
    })
}

/// Reads a format string; `None` when it is not one the specification
/// defines (a malformed `+w:` size included).
pub(crate) fn parse_format(format: &str) -> Option<Format> {
    let primitive = |dtype| Some(Format::Primitive(dtype));
    match format {
        "c" => primitive(DType::INT8),
        "C" => primitive(DType::UINT8),
        "s" => primitive(DType::INT16),
        "S" => primitive(DType::UINT16),
        "i" => primitive(DType::INT32),
        "I" => primitive(DType::UINT32),
        "l" => primitive(DType::INT64),
        "L" => primitive(DType::UINT64),
        "e" => primitive(DType::FLOAT16),
        "f" => primitive(DType::FLOAT32),
        "g" => primitive(DType::FLOAT64),
        "n" => Some(Format::NoTensor("the null type holds no values")),
        "b" => Some(Format::NoTensor(
            "Arrow's booleans are bit-packed, and DLPack's bool has a byte per element",
        )),
        "u" | "U" | "vu" => Some(Format::NoTensor(
            "strings are variable-length, and a tensor's elements have one size",
        )),
        "z" | "Z" | "vz" => Some(Format::NoTensor(
            "binary values are variable-length, and a tensor's elements have one size",
        )),
        "+l" | "+L" | "+vl" | "+vL" => Some(Format::NoTensor(
            "list slots are variable-length (a FixedSizeList, +w:<n>, has a tensor)",
        )),
        "+s" => Some(Format::NoTensor(
            "a struct is a record of columns (import one column)",
        )),
        "+m" => Some(Format::NoTensor("a map has variable-length slots")),
        "+r" => Some(Format::NoTensor("a run-end encoded array is compressed")),
        _ => parse_parametrised(format),
    }
}

fn parse_parametrised(format: &str) -> Option<Format> {
    if let Some(size) = format.strip_prefix("+w:") {
        // Digits only: `usize::from_str` would take a leading '+'.
        if size.is_empty() || !size.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let size: i32 = size.parse().ok()?;
        return Some(Format::FixedSizeList(size as usize));
    }
    let why = match format.as_bytes() {
        [b'w', b':', ..] => "fixed-size binary has no DLPack dtype",
        [b'd', b':', ..] => "decimals have no DLPack dtype",
        [b't', b'd' | b't' | b's' | b'D' | b'i', ..] => {
            "temporal types (dates, times, timestamps, durations, intervals) have no DLPack \
             dtype (cast to int64 for their counts)"
        }
        [b'+', b'u', b'd' | b's', b':', ..] => "a union holds values of several types",
        _ => return None,
    };
    Some(Format::NoTensor(why))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primitives_round_trip() {
        for dtype in [
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
        ] {
            let format = primitive_format(dtype).unwrap();
            assert_eq!(parse_format(format), Some(Format::Primitive(dtype)));
        }
        assert_eq!(primitive_format(DType::BOOL), None);
    }

    #[test]
    fn fixed_size_lists_and_their_lies() {
        assert_eq!(parse_format("+w:3"), Some(Format::FixedSizeList(3)));
        assert_eq!(parse_format("+w:0"), Some(Format::FixedSizeList(0)));
        for lie in ["+w:", "+w:-1", "+w:+3", "+w:3x", "+w:2147483648", "+w: 3"] {
            assert_eq!(parse_format(lie), None, "{lie}");
        }
    }

    #[test]
    fn other_types_say_why() {
        for format in [
            "b", "u", "vz", "+l", "+s", "d:10,2", "tss:UTC", "tdD", "w:16", "+ud:0,1",
        ] {
            assert!(
                matches!(parse_format(format), Some(Format::NoTensor(_))),
                "{format}"
            );
        }
        for unknown in ["", "x", "ff", "i\u{0}", "tx"] {
            assert_eq!(parse_format(unknown), None, "{unknown:?}");
        }
    }
}
