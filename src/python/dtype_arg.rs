//! dtype arguments (`zeros`, `empty`, `from_buffer(dtype=)`, `Tensor.view`):
//! every spelling NumPy accepts for a dtype dlbridge carries, read without
//! importing NumPy.
//!
//! | spelling | examples | read as |
//! | --- | --- | --- |
//! | dlbridge's names | `"float32"`, `"bfloat16"`, `"void16"` | [`DType::from_name`] |
//! | NumPy's aliases | `"float"`, `"int"`, `"double"`, `"intc"`, `"longlong"` | the C type's width on this platform |
//! | char codes | `"d"`, `"f"`, `"l"`, `"q"`, `"?"`, `"<d"`, `"=i"` | the C type's width on this platform |
//! | typestrs | `"i4"`, `"<f8"`, `"=f4"`, `"\|u1"`, `"c8"`, `"b1"`, `"V2"` | [`parse_typestr`] |
//! | Python types | `float`, `int`, `bool`, `complex` | by identity with the builtins, as NumPy |
//! | NumPy scalar types | `np.float64`, `np.longlong`, `np.intc`, `ml_dtypes.bfloat16` | `numpy.dtype(t)`, numpy being imported already |
//! | dtype objects | `np.dtype("f4")` | its `name`, once its `byteorder` is native and it has no fields |
//! | `torch.dtype` | `torch.float32` | its `str` |
//!
//! What no DLPack dtype can carry is refused as the rest of dlbridge refuses
//! it (`docs/errors.md`): a name or char code dlbridge has no dtype for
//! (`"float128"`, `"longdouble"`, `"g"`, `"object"`, `str`) is a `TypeError`
//! "unknown dtype name"; a typestr of a kind with no DLPack dtype (`"U3"`,
//! `"O8"`, `"M8[ns]"`, `"f16"`) is the typestr parser's `BufferError`; a
//! non-native byte order (`">f4"`, `">d"`, `np.dtype(">f4")`) a
//! `BufferError`, whatever the spelling; so is a structured NumPy dtype
//! (`np.dtype("f4,i4")`, named `void64` as if it were opaque bytes).

use std::ffi::{c_int, c_long, c_longlong, c_short};
use std::mem::size_of;

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyComplex, PyDict, PyFloat, PyInt, PyString, PyType};

use super::names;
use crate::dtype::{DType, SWAPPED_BYTE_ORDER};
use crate::error::{Cause, Error, ErrorKind};
use crate::protocol::pep3118;
use crate::protocol::typestr::{Parsed, parse_typestr};

/// The integer dtype of a C type's width (`DType::int` knows 1, 2, 4, 8).
const fn int_of(signed: bool, bytes: usize) -> DType {
    match DType::int(signed, bytes) {
        Some(dtype) => dtype,
        None => panic!("a C integer type of an unexpected width"),
    }
}

const SHORT: (DType, DType) = (
    int_of(true, size_of::<c_short>()),
    int_of(false, size_of::<c_short>()),
);
const INT: (DType, DType) = (
    int_of(true, size_of::<c_int>()),
    int_of(false, size_of::<c_int>()),
);
const LONG: (DType, DType) = (
    int_of(true, size_of::<c_long>()),
    int_of(false, size_of::<c_long>()),
);
const LONGLONG: (DType, DType) = (
    int_of(true, size_of::<c_longlong>()),
    int_of(false, size_of::<c_longlong>()),
);
/// `intp`/`uintp` (`Py_ssize_t`, `size_t`): NumPy 2's default integer.
const INTP: (DType, DType) = (
    int_of(true, size_of::<isize>()),
    int_of(false, size_of::<usize>()),
);

/// NumPy's names for dtypes that dlbridge names otherwise (`np.sctypeDict`'s
/// string keys, less the sized names dlbridge shares and those with no
/// DLPack dtype).
fn numpy_alias(name: &str) -> Option<DType> {
    Some(match name {
        "bool_" => DType::BOOL,
        "byte" => DType::INT8,
        "ubyte" => DType::UINT8,
        "short" => SHORT.0,
        "ushort" => SHORT.1,
        "intc" => INT.0,
        "uintc" => INT.1,
        "long" => LONG.0,
        "ulong" => LONG.1,
        "longlong" => LONGLONG.0,
        "ulonglong" => LONGLONG.1,
        "int" | "int_" | "intp" => INTP.0,
        "uint" | "uintp" => INTP.1,
        "half" => DType::FLOAT16,
        "single" => DType::FLOAT32,
        "double" | "float" => DType::FLOAT64,
        "csingle" => DType::COMPLEX64,
        "cdouble" | "complex" => DType::COMPLEX128,
        _ => return None,
    })
}

/// NumPy's one-character type codes (`np.typecodes["All"]`) that name a
/// dtype dlbridge carries. Most are PEP 3118's own codes (native sizes), so
/// they are read by the buffer spoke's format parser; only NumPy's complex
/// and pointer-sized codes are spelled differently there.
fn char_code(code: char) -> Option<DType> {
    match code {
        'F' => Some(DType::COMPLEX64),
        'D' => Some(DType::COMPLEX128),
        'p' => Some(INTP.0),
        'P' => Some(INTP.1),
        // `x` is PEP 3118's pad byte, not a NumPy type code.
        'x' => None,
        _ => pep3118::parse_format(code.encode_utf8(&mut [0; 4])).ok(),
    }
}

/// A dtype argument in non-native byte order (the name of a NumPy dtype
/// drops its byte order: `np.dtype(">f4").name` is `"float32"`).
fn non_native(dtype: &Bound<'_, PyAny>) -> PyErr {
    let order = SWAPPED_BYTE_ORDER.to_string();
    Error::buffer(
        Cause::ByteOrder,
        format!(
            "dtype argument {} has non-native byte order ({order:?}); dlbridge carries \
             native byte order only (convert with .newbyteorder(\"=\") or astype first)",
            names::shown(dtype)
        ),
    )
    .into()
}

/// Parses a dtype argument (the table in the module documentation).
pub(crate) fn parse_dtype(dtype: &Bound<'_, PyAny>) -> PyResult<DType> {
    if let Ok(text) = dtype.cast::<PyString>() {
        return from_str(dtype, text.to_str()?);
    }
    if let Ok(ty) = dtype.cast::<PyType>() {
        return from_type(ty);
    }
    if let Ok(Some(name)) = dtype.getattr_opt("name")
        && let Ok(name) = name.extract::<String>()
    {
        return from_dtype_object(dtype, &name);
    }
    // `torch.float32` has no name; its `str` is `torch.float32`.
    let text = dtype.str()?.to_string();
    Ok(DType::from_name(
        text.strip_prefix("torch.").unwrap_or(&text),
    )?)
}

/// A dtype object (NumPy's, or anything with a `name`): its name, once its
/// `byteorder` (if it has one) is known to be native.
fn from_dtype_object(dtype: &Bound<'_, PyAny>, name: &str) -> PyResult<DType> {
    if let Ok(Some(order)) = dtype.getattr_opt("byteorder")
        && let Ok(order) = order.extract::<String>()
        && order.chars().eq([SWAPPED_BYTE_ORDER])
    {
        return Err(non_native(dtype));
    }
    // A structured NumPy dtype is named `void<bits>` like plain opaque bytes:
    // taking it by name would drop its fields.
    let set = |attribute: &str| {
        dtype
            .getattr_opt(attribute)
            .is_ok_and(|value| value.is_some_and(|value| !value.is_none()))
    };
    if set("names") || set("subdtype") {
        return Err(Error::buffer(
            Cause::DType,
            format!(
                "dtype argument {} has fields or a subarray, and DLPack has no structured \
                 dtype (V<itemsize> names the same bytes as opaque)",
                names::shown(dtype)
            ),
        )
        .into());
    }
    Ok(DType::from_name(name)?)
}

/// A Python type: the builtins by identity (as `np.dtype(float)` is
/// float64), a NumPy scalar type through `numpy.dtype` (NumPy is imported
/// already, or the type could not exist), anything else by its class name.
fn from_type(ty: &Bound<'_, PyType>) -> PyResult<DType> {
    let py = ty.py();
    // `bool` before `int`: identity, not subclassing, so the order only reads well.
    if ty.is(py.get_type::<PyBool>()) {
        return Ok(DType::BOOL);
    }
    if ty.is(py.get_type::<PyInt>()) {
        return Ok(INTP.0);
    }
    if ty.is(py.get_type::<PyFloat>()) {
        return Ok(DType::FLOAT64);
    }
    if ty.is(py.get_type::<PyComplex>()) {
        return Ok(DType::COMPLEX128);
    }
    if let Some(numpy) = imported_numpy(py)? {
        let generic = numpy.getattr(intern!(py, "generic"))?;
        if ty.is_subclass(&generic)? {
            let dtype = numpy.getattr(intern!(py, "dtype"))?.call1((ty,))?;
            let name = dtype.getattr(intern!(py, "name"))?.extract::<String>()?;
            return from_dtype_object(&dtype, &name);
        }
    }
    Ok(DType::from_name(&ty.name()?.to_string())?)
}

/// `sys.modules["numpy"]`, without importing it.
fn imported_numpy(py: Python<'_>) -> PyResult<Option<Bound<'_, PyAny>>> {
    let modules = py
        .import(intern!(py, "sys"))?
        .getattr(intern!(py, "modules"))?;
    let modules = modules.cast_into::<PyDict>()?;
    modules.get_item(intern!(py, "numpy"))
}

/// A string: a dlbridge name, a NumPy alias, a char code or a typestr, each
/// with an optional byte-order character where NumPy takes one.
fn from_str(dtype: &Bound<'_, PyAny>, text: &str) -> PyResult<DType> {
    let unknown = match DType::from_name(text) {
        Ok(found) => return Ok(found),
        Err(unknown) => unknown,
    };
    if let Some(found) = numpy_alias(text) {
        return Ok(found);
    }
    let (order, rest) = match text.chars().next() {
        Some(order @ ('<' | '>' | '=' | '|')) => (Some(order), &text[1..]),
        _ => (None, text),
    };
    let swapped = order == Some(SWAPPED_BYTE_ORDER);
    let mut chars = rest.chars();
    let found = match (chars.next(), chars.next()) {
        (Some(code), None) => match char_code(code) {
            Some(found) => Some(found),
            None => from_typestr(text, rest, swapped)?,
        },
        (Some(kind), Some(digit)) if kind.is_ascii_alphabetic() && digit.is_ascii_digit() => {
            from_typestr(text, rest, swapped)?
        }
        _ => None,
    };
    match found {
        // What NumPy would not understand either: the name's own refusal.
        None => Err(unknown.into()),
        Some(found) if swapped && found.itemsize() > 1 && !found.is_opaque() => {
            Err(non_native(dtype))
        }
        Some(found) => Ok(found),
    }
}

/// A typestr-shaped argument (`"i4"`, `"<f8"`, `"U3"`, `"M8[ns]"`, or a
/// char code dlbridge has no dtype for): `None` where NumPy would not
/// understand it (a malformed typestr, `"f1"`), the parser's `BufferError`
/// for a kind no DLPack dtype carries. A swapped typestr is parsed without
/// its byte order, so the caller can tell `">i1"` (fine) from `">f4"`.
fn from_typestr(text: &str, rest: &str, swapped: bool) -> PyResult<Option<DType>> {
    match parse_typestr(if swapped { rest } else { text }) {
        Ok(Parsed::DType(found)) => Ok(Some(found)),
        Ok(Parsed::Void(n)) if rest.starts_with('V') => Ok(Some(DType::opaque(n)?)),
        Ok(Parsed::Void(_)) => Ok(None),
        Err(err) if err.kind() == ErrorKind::Value => Ok(None),
        // Named as given: `">U3"` is refused for its byte order or its kind.
        Err(err) if swapped => Err(parse_typestr(text).err().unwrap_or(err).into()),
        Err(err) => Err(err.into()),
    }
}
