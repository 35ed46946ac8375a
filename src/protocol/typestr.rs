//! Array-interface type strings (`"<f4"`, `"|b1"`, `"<V2"`) and
//! `PyArrayInterface` type kinds <-> [`DType`], with no Python in sight.
//!
//! A typestr is a byte-order character (`<` little, `>` big, `|` not
//! applicable, `=` native), a kind character and an itemsize in bytes. The
//! kinds dlbridge can carry are `b` (bool, 1 byte), `i`/`u` (1, 2, 4, 8),
//! `f` (2, 4, 8) and `c` (8, 16); `V` is opaque bytes, whose meaning the
//! caller may know from elsewhere (NumPy shows `ml_dtypes`' bfloat16 as
//! `<V2`). `m M O S U a` are valid NumPy kinds with no DLPack counterpart
//! (`BufferError`: the array is fine, it just cannot come along); anything
//! else is malformed (`ValueError`). Like NumPy, a missing byte-order
//! character means native.
//!
//! ```
//! use dlbridge::DType;
//! use dlbridge::protocol::typestr::{Parsed, parse_typestr, typestr_of};
//!
//! // Every dtype a typestr can carry round-trips.
//! let typestr = typestr_of(DType::COMPLEX64); // "<c8" on little-endian hosts
//! assert_eq!(parse_typestr(&typestr).unwrap(), Parsed::DType(DType::COMPLEX64));
//! // bfloat16 travels as opaque bytes, which the caller may name.
//! assert_eq!(typestr_of(DType::BFLOAT16), "|V2");
//! assert_eq!(parse_typestr("|V2").unwrap(), Parsed::Void(2));
//! ```

use crate::dtype::{DType, NATIVE_BYTE_ORDER, SWAPPED_BYTE_ORDER};
use crate::error::{Cause, Error, Result};

/// What a typestr (or a `typekind`/`itemsize` pair) describes.
///
/// ```
/// use dlbridge::DType;
/// use dlbridge::protocol::typestr::{Parsed, parse_typestr};
///
/// let dtype = match parse_typestr("<V4").unwrap() {
///     Parsed::DType(dtype) => dtype,
///     // Opaque bytes: named from elsewhere (the exporting object's dtype),
///     // or kept opaque.
///     Parsed::Void(nbytes) => DType::opaque(nbytes).unwrap(),
/// };
/// assert_eq!(dtype.name(), "void32");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// A dtype dlbridge knows.
    DType(DType),
    /// `V<n>`: `n` opaque bytes per element.
    Void(usize),
}

/// Parses an `__array_interface__` typestr.
///
/// ```
/// use dlbridge::{DType, ErrorKind};
/// use dlbridge::protocol::typestr::{Parsed, parse_typestr};
///
/// assert_eq!(parse_typestr("=f8").unwrap(), Parsed::DType(DType::FLOAT64));
/// // A valid NumPy dtype that DLPack has no word for, and a malformed typestr.
/// assert_eq!(parse_typestr("<M8[ns]").unwrap_err().kind(), ErrorKind::Buffer);
/// assert_eq!(parse_typestr("=f3").unwrap_err().kind(), ErrorKind::Value);
/// ```
///
/// # Errors
///
/// All with a message naming the typestr:
/// - `Value` ([`Cause::DType`]): a malformed typestr (no kind, an unknown
///   kind, an itemsize that is not a decimal number, does not fit in
///   `usize` or names no type of its kind: `<f3`, `|b2`, `|V0`);
/// - `Buffer` ([`Cause::ByteOrder`]): non-native byte order on an element
///   wider than a byte (opaque `V` elements excepted);
/// - `Buffer` ([`Cause::DType`]): a NumPy kind with no DLPack dtype
///   (datetimes `M`, timedeltas `m`, objects `O`, strings `S a U`) or
///   extended precision (`f` of 10, 12 or 16 bytes, `c` of 20, 24 or 32).
pub fn parse_typestr(typestr: &str) -> Result<Parsed> {
    let mut chars = typestr.chars();
    let (order, kind) = match chars.next() {
        Some(order @ ('<' | '>' | '|' | '=')) => (order, chars.next()),
        other => ('=', other),
    };
    let Some(kind) = kind else {
        return Err(malformed(typestr, "no type kind"));
    };
    let digits = chars.as_str();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        // `<M8[ns]` and friends carry a unit: refuse by kind first, it is the better message.
        kind_refusal(typestr, kind)?;
        return Err(malformed(typestr, "the itemsize must be a decimal number"));
    }
    let itemsize: usize = digits
        .parse()
        .map_err(|_| malformed(typestr, "the itemsize does not fit in usize"))?;
    if order == SWAPPED_BYTE_ORDER && itemsize > 1 && kind != 'V' {
        return Err(Error::buffer(
            Cause::ByteOrder,
            format!("unsupported typestr {typestr:?}: non-native byte order"),
        ));
    }
    from_kind(typestr, kind, itemsize)
}

/// The dtype of a `PyArrayInterface`'s `typekind` and `itemsize`.
///
/// ```
/// use dlbridge::DType;
/// use dlbridge::protocol::typestr::{Parsed, from_typekind};
///
/// assert_eq!(from_typekind(b'u', 2).unwrap(), Parsed::DType(DType::UINT16));
/// assert!(from_typekind(b'O', 8).is_err()); // Python objects
/// ```
///
/// # Errors
///
/// Those of [`parse_typestr`] but byte order, which a type kind does not
/// carry.
pub fn from_typekind(typekind: u8, itemsize: usize) -> Result<Parsed> {
    let kind = char::from(typekind);
    from_kind(&format!("{kind}{itemsize}"), kind, itemsize)
}

fn malformed(typestr: &str, why: &str) -> Error {
    Error::value(
        Cause::DType,
        format!("malformed typestr {typestr:?}: {why}"),
    )
}

/// Refuses the NumPy kinds that name no DLPack dtype, and unknown kinds.
fn kind_refusal(typestr: &str, kind: char) -> Result<()> {
    let what = match kind {
        'b' | 'i' | 'u' | 'f' | 'c' | 'V' => return Ok(()),
        'm' => "timedelta64",
        'M' => "datetime64",
        'O' => "Python objects",
        'S' | 'a' => "byte strings",
        'U' => "unicode strings",
        _ => return Err(malformed(typestr, &format!("unknown type kind {kind:?}"))),
    };
    Err(Error::buffer(
        Cause::DType,
        format!("unsupported typestr {typestr:?}: {what} have no DLPack dtype"),
    ))
}

fn from_kind(typestr: &str, kind: char, itemsize: usize) -> Result<Parsed> {
    kind_refusal(typestr, kind)?;
    let dtype = match (kind, itemsize) {
        ('V', n) if n > 0 => return Ok(Parsed::Void(n)),
        // NumPy has no 1-byte float, but `ml_dtypes`' float8_e5m2 reports
        // kind `f` (typestr `<f1`): opaque bytes the object's dtype may name.
        ('f', 1) => return Ok(Parsed::Void(1)),
        ('b', 1) => DType::BOOL,
        ('i', 1) => DType::INT8,
        ('i', 2) => DType::INT16,
        ('i', 4) => DType::INT32,
        ('i', 8) => DType::INT64,
        ('u', 1) => DType::UINT8,
        ('u', 2) => DType::UINT16,
        ('u', 4) => DType::UINT32,
        ('u', 8) => DType::UINT64,
        ('f', 2) => DType::FLOAT16,
        ('f', 4) => DType::FLOAT32,
        ('f', 8) => DType::FLOAT64,
        ('c', 8) => DType::COMPLEX64,
        ('c', 16) => DType::COMPLEX128,
        ('f', 10 | 12 | 16) | ('c', 20 | 24 | 32) => {
            return Err(Error::buffer(
                Cause::DType,
                format!("unsupported typestr {typestr:?}: extended precision has no DLPack dtype"),
            ));
        }
        _ => {
            return Err(malformed(
                typestr,
                &format!("no {kind:?} type has an itemsize of {itemsize}"),
            ));
        }
    };
    Ok(Parsed::DType(dtype))
}

/// The `PyArrayInterface.typekind` of a dtype: `V` for those NumPy has no
/// kind for (bfloat16, float8, ...), which travel as opaque bytes.
pub fn typekind_of(dtype: DType) -> u8 {
    match dtype {
        DType::BOOL => b'b',
        DType::INT8 | DType::INT16 | DType::INT32 | DType::INT64 => b'i',
        DType::UINT8 | DType::UINT16 | DType::UINT32 | DType::UINT64 => b'u',
        DType::FLOAT16 | DType::FLOAT32 | DType::FLOAT64 => b'f',
        DType::COMPLEX64 | DType::COMPLEX128 => b'c',
        _ => b'V',
    }
}

/// Whether a typestr names `dtype` faithfully: NumPy's own kinds, and
/// opaque bytes (`|V2` is what they are). bfloat16, float8/6/4 and vector
/// dtypes have no typestr of their own; as `|V<n>` NumPy would read them
/// as bytes, never as values.
pub fn names(dtype: DType) -> bool {
    dtype.lanes() == 1 && (typekind_of(dtype) != b'V' || dtype.is_opaque())
}

/// Refuses a dtype a typestr cannot name ([`names`]) from an interface
/// export, with `AttributeError`, so that NumPy's coercion (buffer,
/// `__array_struct__`, `__array_interface__`, then `__array__`) moves on to
/// `__array__`, which can give the `ml_dtypes` dtype.
///
/// # Errors
///
/// `Attribute` ([`Cause::DType`]) for such a dtype; `protocol` names the
/// attribute in the message.
pub fn ensure_named(dtype: DType, protocol: &str) -> Result<()> {
    if names(dtype) {
        return Ok(());
    }
    Err(Error::attribute(
        Cause::DType,
        format!(
            "a tensor of dtype {dtype} has no {protocol}: a typestr cannot name {dtype} \
             (NumPy would read |V{} bytes, not values); np.asarray(t) reads it through \
             __array__, t.view(...) reinterprets its bytes",
            dtype.itemsize()
        ),
    ))
}

/// The typestr a dtype exports with, in native byte order as NumPy writes
/// it (`|` for one-byte kinds and opaque bytes).
pub fn typestr_of(dtype: DType) -> String {
    let kind = char::from(typekind_of(dtype));
    let itemsize = dtype.itemsize();
    let order = if itemsize == 1 || kind == 'V' {
        '|'
    } else {
        NATIVE_BYTE_ORDER
    };
    format!("{order}{kind}{itemsize}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    const CARRIED: [DType; 14] = [
        DType::BOOL,
        DType::INT8,
        DType::INT16,
        DType::INT32,
        DType::INT64,
        DType::UINT8,
        DType::UINT16,
        DType::UINT32,
        DType::UINT64,
        DType::FLOAT16,
        DType::FLOAT32,
        DType::FLOAT64,
        DType::COMPLEX64,
        DType::COMPLEX128,
    ];

    #[test]
    fn every_carried_dtype_round_trips() {
        for dtype in CARRIED {
            let typestr = typestr_of(dtype);
            assert_eq!(parse_typestr(&typestr).unwrap(), Parsed::DType(dtype));
            let kind = typekind_of(dtype);
            assert_eq!(
                from_typekind(kind, dtype.itemsize()).unwrap(),
                Parsed::DType(dtype)
            );
        }
        assert_eq!(typestr_of(DType::FLOAT32), "<f4");
        assert_eq!(typestr_of(DType::BOOL), "|b1");
        assert_eq!(typestr_of(DType::BFLOAT16), "|V2");
        assert_eq!(parse_typestr("|V2").unwrap(), Parsed::Void(2));
    }

    #[test]
    fn numpy_spellings() {
        assert_eq!(parse_typestr("f8").unwrap(), Parsed::DType(DType::FLOAT64));
        assert_eq!(parse_typestr("=i4").unwrap(), Parsed::DType(DType::INT32));
        assert_eq!(parse_typestr(">u1").unwrap(), Parsed::DType(DType::UINT8));
        assert_eq!(parse_typestr("<V2").unwrap(), Parsed::Void(2));
        assert_eq!(parse_typestr(">V2").unwrap(), Parsed::Void(2));
        assert_eq!(parse_typestr("<f1").unwrap(), Parsed::Void(1));
        assert_eq!(from_typekind(b'f', 1).unwrap(), Parsed::Void(1));
    }

    #[test]
    fn refusals_are_classified_and_name_the_typestr() {
        for (bad, kind) in [
            (">f4", ErrorKind::Buffer),
            ("<M8[s]", ErrorKind::Buffer),
            ("<m8", ErrorKind::Buffer),
            ("|O8", ErrorKind::Buffer),
            ("|S3", ErrorKind::Buffer),
            ("<U2", ErrorKind::Buffer),
            ("<f16", ErrorKind::Buffer),
            ("<f3", ErrorKind::Value),
            ("<u16", ErrorKind::Value),
            ("|b2", ErrorKind::Value),
            ("<t8", ErrorKind::Value),
            ("|V0", ErrorKind::Value),
            ("<", ErrorKind::Value),
            ("", ErrorKind::Value),
            ("<f", ErrorKind::Value),
            ("<f-4", ErrorKind::Value),
            ("<f99999999999999999999999", ErrorKind::Value),
        ] {
            let err = parse_typestr(bad).unwrap_err();
            assert_eq!(err.kind(), kind, "{bad}: {err}");
            assert!(err.message().contains(&format!("{bad:?}")), "{err}");
        }
    }
}
