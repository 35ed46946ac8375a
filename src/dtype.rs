//! Element types: DLPack's `(code, bits, lanes)` triple, its names, and the
//! Rust types that can view it.
//!
//! A [`DType`] *is* a DLPack `DLDataType`; every other protocol maps to and
//! from it in its own spoke (PEP 3118 formats in the buffer spoke, typestrs in
//! the array-interface spoke). Names follow NumPy and `ml_dtypes`
//! (`float32`, `bfloat16`, `float8_e4m3fn`, ...).
//!
//! ```
//! use dlbridge::{DType, Element};
//!
//! // A name, a DLPack triple and a Rust type all meet in one DType.
//! let bf16 = DType::from_name("bfloat16").unwrap();
//! assert_eq!(bf16, <half::bf16 as Element>::DTYPE);
//! assert_eq!(DType::from_dlpack(bf16.to_dlpack()).unwrap(), bf16);
//!
//! // Packed 4-bit elements have no byte address: refused, unless DLPack's
//! // IS_SUBBYTE_TYPE_PADDED flag says each one fills a byte.
//! let fp4 = DType::from_name("float4_e2m1fn").unwrap().to_dlpack();
//! assert!(DType::from_dlpack(fp4).is_err());
//! assert_eq!(DType::from_dlpack_flagged(fp4, true).unwrap().itemsize(), 1);
//! ```

use crate::error::{Cause, Error, Result};
use dlpark::ffi::{DLDataType, DLDataTypeCode};

/// A tensor element type, as DLPack describes it: `(code, bits, lanes)`.
///
/// The fields are private: a `DType` exists only if it passed a validated
/// constructor (the named constants, [`DType::from_dlpack`],
/// [`DType::from_name`], [`DType::int`], [`DType::opaque`]), so every tensor
/// can describe itself to every protocol that has a word for its dtype.
///
/// ```
/// use dlbridge::DType;
///
/// let f = DType::from_name("bfloat16").unwrap();
/// assert_eq!((f.code(), f.bits(), f.lanes(), f.itemsize()), (4, 16, 1, 2));
/// assert_eq!(DType::int(true, 4), Some(DType::INT32));
/// assert!(DType::from_dlpack(DType::FLOAT32.to_dlpack()).is_ok());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DType {
    code: u8,
    bits: u8,
    lanes: u16,
}

/// The byte-order character of this machine in typestrs and PEP 3118
/// formats (`'<'` on little-endian hosts), and the other one.
pub const NATIVE_BYTE_ORDER: char = if cfg!(target_endian = "little") {
    '<'
} else {
    '>'
};

/// The byte-order character dlbridge refuses (`'>'` on little-endian hosts).
pub const SWAPPED_BYTE_ORDER: char = if cfg!(target_endian = "little") {
    '>'
} else {
    '<'
};

/// DLPack's `kDLOpaqueHandle`, which dlbridge uses for opaque bytes.
const OPAQUE_CODE: u8 = 3;

const fn dt(code: u8, bits: u8) -> DType {
    DType {
        code,
        bits,
        lanes: 1,
    }
}

/// Every scalar dtype dlbridge knows, with its name (NumPy / `ml_dtypes` spelling).
const NAMED: &[(DType, &str)] = &[
    (DType::BOOL, "bool"),
    (DType::INT8, "int8"),
    (DType::INT16, "int16"),
    (DType::INT32, "int32"),
    (DType::INT64, "int64"),
    (DType::UINT8, "uint8"),
    (DType::UINT16, "uint16"),
    (DType::UINT32, "uint32"),
    (DType::UINT64, "uint64"),
    (DType::FLOAT16, "float16"),
    (DType::FLOAT32, "float32"),
    (DType::FLOAT64, "float64"),
    (DType::BFLOAT16, "bfloat16"),
    (DType::COMPLEX32, "complex32"),
    (DType::COMPLEX64, "complex64"),
    (DType::COMPLEX128, "complex128"),
    (dt(7, 8), "float8_e3m4"),
    (dt(8, 8), "float8_e4m3"),
    (dt(9, 8), "float8_e4m3b11fnuz"),
    (DType::FLOAT8_E4M3FN, "float8_e4m3fn"),
    (dt(11, 8), "float8_e4m3fnuz"),
    (DType::FLOAT8_E5M2, "float8_e5m2"),
    (dt(13, 8), "float8_e5m2fnuz"),
    (dt(14, 8), "float8_e8m0fnu"),
    (dt(15, 6), "float6_e2m3fn"),
    (dt(16, 6), "float6_e3m2fn"),
    (dt(17, 4), "float4_e2m1fn"),
];

/// Whether `(code, bits)` names a dtype in [`NAMED`] (a match, not a scan:
/// this runs on every import).
fn known_width(code: u8, bits: u8) -> bool {
    match code {
        0 | 1 => matches!(bits, 8 | 16 | 32 | 64),
        2 => matches!(bits, 16 | 32 | 64),
        4 => bits == 16,
        5 => matches!(bits, 32 | 64 | 128),
        6 => bits == 8,
        7..=14 => bits == 8,
        15 | 16 => bits == 6,
        17 => bits == 4,
        // Opaque elements of whole bytes (NumPy's `V<n>`).
        3 => bits != 0 && bits.is_multiple_of(8),
        _ => false,
    }
}

impl DType {
    /// `DLDataTypeCode`: 0 int, 1 uint, 2 float, 3 opaque, 4 bfloat,
    /// 5 complex, 6 bool, 7-17 float8/6/4.
    pub const fn code(self) -> u8 {
        self.code
    }

    /// Bits per lane (a complex counts both halves: complex64 is 64).
    pub const fn bits(self) -> u8 {
        self.bits
    }

    /// Lanes per element (1 for scalars; torch's `float4_e2m1fn_x2` has 2).
    pub const fn lanes(self) -> u16 {
        self.lanes
    }

    /// One lane of this dtype (itself for scalars): `float32` for `float32x4`.
    pub const fn scalar(self) -> Self {
        Self { lanes: 1, ..self }
    }

    /// The signed (`int8`...`int64`) or unsigned integer of `bytes` bytes;
    /// `None` for any other width.
    pub const fn int(signed: bool, bytes: usize) -> Option<Self> {
        let code = if signed { 0 } else { 1 };
        match bytes {
            1 | 2 | 4 | 8 => Some(dt(code, (bytes * 8) as u8)),
            _ => None,
        }
    }

    /// `bool`, stored as one byte (DLPack `(6, 8, 1)`).
    pub const BOOL: Self = dt(6, 8);
    /// `int8`.
    pub const INT8: Self = dt(0, 8);
    /// `int16`.
    pub const INT16: Self = dt(0, 16);
    /// `int32`.
    pub const INT32: Self = dt(0, 32);
    /// `int64`.
    pub const INT64: Self = dt(0, 64);
    /// `uint8`.
    pub const UINT8: Self = dt(1, 8);
    /// `uint16`.
    pub const UINT16: Self = dt(1, 16);
    /// `uint32`.
    pub const UINT32: Self = dt(1, 32);
    /// `uint64`.
    pub const UINT64: Self = dt(1, 64);
    /// IEEE half precision.
    pub const FLOAT16: Self = dt(2, 16);
    /// IEEE single precision.
    pub const FLOAT32: Self = dt(2, 32);
    /// IEEE double precision.
    pub const FLOAT64: Self = dt(2, 64);
    /// Brain floating point.
    pub const BFLOAT16: Self = dt(4, 16);
    /// A pair of `float16` (torch's `complex32`).
    pub const COMPLEX32: Self = dt(5, 32);
    /// A pair of `float32`.
    pub const COMPLEX64: Self = dt(5, 64);
    /// A pair of `float64`.
    pub const COMPLEX128: Self = dt(5, 128);
    /// OCP FP8 E4M3 (finite, NaN only).
    pub const FLOAT8_E4M3FN: Self = dt(10, 8);
    /// OCP FP8 E5M2.
    pub const FLOAT8_E5M2: Self = dt(12, 8);

    /// Checks a DLPack triple and returns it as a `DType`.
    ///
    /// # Errors
    ///
    /// `Buffer` ([`Cause::DType`]) for zero lanes, a `(code, bits)` pair
    /// dlbridge has no dtype for, and elements that do not fill whole bytes
    /// (`bits * lanes` not a multiple of 8: packed sub-byte data cannot be
    /// addressed with byte strides).
    pub fn from_dlpack(dtype: DLDataType) -> Result<Self> {
        Self::from_dlpack_flagged(dtype, false)
    }

    /// Like [`DType::from_dlpack`], for a tensor that may carry DLPack's
    /// `IS_SUBBYTE_TYPE_PADDED` flag: with `padded`, a sub-byte element
    /// (float4, float6) occupies one whole byte, as `ml_dtypes` stores it,
    /// and is accepted; without it, sub-byte elements are packed and refused.
    ///
    /// # Errors
    ///
    /// As [`DType::from_dlpack`], except that with `padded` a single-lane
    /// element narrower than a byte is accepted.
    pub fn from_dlpack_flagged(dtype: DLDataType, padded: bool) -> Result<Self> {
        let candidate = Self {
            code: dtype.code.0,
            bits: dtype.bits,
            lanes: dtype.lanes,
        };
        if candidate.lanes == 0 {
            return Err(Error::buffer(
                Cause::DType,
                format!("DLPack dtype {candidate} has zero lanes"),
            ));
        }
        if !known_width(candidate.code, candidate.bits) {
            return Err(Error::buffer(
                Cause::DType,
                format!(
                    "unsupported DLPack dtype {candidate}: no dtype with this code and bit width"
                ),
            ));
        }
        let bits = u32::from(candidate.bits) * u32::from(candidate.lanes);
        if padded && candidate.lanes == 1 && bits < 8 {
            return Ok(candidate);
        }
        if bits % 8 != 0 {
            return Err(Error::buffer(
                Cause::DType,
                format!(
                    "unsupported DLPack dtype {candidate}: packed sub-byte elements ({bits} bits) \
                     cannot be addressed with byte strides"
                ),
            ));
        }
        Ok(candidate)
    }

    /// The DLPack `DLDataType` for this dtype.
    pub fn to_dlpack(self) -> DLDataType {
        DLDataType {
            code: DLDataTypeCode(self.code),
            bits: self.bits,
            lanes: self.lanes,
        }
    }

    /// `nbytes` opaque bytes per element (NumPy's `V<nbytes>`): DLPack's
    /// opaque-handle code with `bits = 8 * nbytes`. Such elements have no
    /// meaning of their own; [`Tensor::view`](crate::Tensor::view) names
    /// them (`V2` as `bfloat16`).
    ///
    /// # Errors
    ///
    /// `Buffer` ([`Cause::DType`]) for zero bytes or more than 31 (DLPack's
    /// `bits` is a byte).
    pub fn opaque(nbytes: usize) -> Result<Self> {
        // `checked_mul`: a format's repeat count can be any size
        // (`"2305843009213693952x"`), and `nbytes * 8` must not overflow.
        nbytes
            .checked_mul(8)
            .and_then(|bits| u8::try_from(bits).ok())
            .filter(|&bits| bits != 0 && nbytes < 32)
            .map(|bits| Self {
                code: OPAQUE_CODE,
                bits,
                lanes: 1,
            })
            .ok_or_else(|| {
                Error::buffer(
                    Cause::DType,
                    format!(
                        "opaque {nbytes}-byte elements (V{nbytes}) have no DLPack dtype: DLPack's \
                         opaque code holds 1 to 31 bytes"
                    ),
                )
            })
    }

    /// Whether the elements are opaque bytes ([`DType::opaque`]).
    pub fn is_opaque(self) -> bool {
        self.code == OPAQUE_CODE
    }

    /// Looks a dtype up by its name (`"float32"`, `"bfloat16"`, `"float8_e5m2"`,
    /// or `"void16"` for two opaque bytes, as NumPy names `V2`).
    ///
    /// # Errors
    ///
    /// `Type` ([`Cause::DType`]) for a name that is neither a known dtype
    /// nor `void<bits>` with `bits` a multiple of 8 from 8 to 248.
    pub fn from_name(name: &str) -> Result<Self> {
        if let Some(bits) = name.strip_prefix("void")
            && let Ok(bits) = bits.parse::<usize>()
            && bits % 8 == 0
            && let Ok(dtype) = Self::opaque(bits / 8)
        {
            return Ok(dtype);
        }
        NAMED
            .iter()
            .find(|(_, known)| *known == name)
            .map(|(dtype, _)| *dtype)
            .ok_or_else(|| Error::type_error(Cause::DType, format!("unknown dtype name {name:?}")))
    }

    /// The scalar name, e.g. `"float32"`; `None` for a triple with no name.
    fn scalar_name(self) -> Option<&'static str> {
        let scalar = self.scalar();
        NAMED
            .iter()
            .find(|(dtype, _)| *dtype == scalar)
            .map(|(_, name)| *name)
    }

    /// The dtype's name as NumPy / `ml_dtypes` spell it; vector types get a
    /// `_x{lanes}` suffix as PyTorch spells them (`float4_e2m1fn_x2`).
    pub fn name(self) -> String {
        if self.is_opaque() && self.lanes == 1 {
            return format!("void{}", self.bits);
        }
        match (self.scalar_name(), self.lanes) {
            (Some(name), 1) => name.to_owned(),
            (Some(name), lanes) => format!("{name}_x{lanes}"),
            (None, _) => format!("dlpack({},{},{})", self.code, self.bits, self.lanes),
        }
    }

    /// Whether each element is narrower than a byte and stored padded to
    /// one (float4, float6: DLPack's `IS_SUBBYTE_TYPE_PADDED` on export).
    pub fn is_padded_subbyte(self) -> bool {
        usize::from(self.bits) * usize::from(self.lanes) < 8
    }

    /// Bytes per element: `ceil(bits * lanes / 8)`.
    pub fn itemsize(self) -> usize {
        (usize::from(self.bits) * usize::from(self.lanes)).div_ceil(8)
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.scalar_name() {
            Some(_) => f.write_str(&self.name()),
            None if self.is_opaque() && self.lanes == 1 => f.write_str(&self.name()),
            None => write!(
                f,
                "(code={}, bits={}, lanes={})",
                self.code, self.bits, self.lanes
            ),
        }
    }
}

/// A Rust type whose values may be read from (and written to) tensor memory
/// of one [`DType`].
///
/// # Safety
///
/// `DTYPE.itemsize()` must equal `size_of::<Self>()`, and every bit pattern
/// that a producer of `DTYPE` may legitimately store must be a valid `Self`.
/// (`bool` is the one type with invalid bit patterns: dlbridge trusts DLPack
/// producers to store 0 or 1, as NumPy and PyTorch do.)
///
/// ```
/// use dlbridge::{DType, Element, Tensor};
///
/// /// The first element of any tensor whose dtype is `T`'s.
/// fn first<T: Element>(t: &Tensor) -> Option<T> {
///     // SAFETY: nothing writes this memory while the view lives.
///     unsafe { t.as_ndarray::<T>() }.ok()?.iter().next().copied()
/// }
///
/// let t = Tensor::from(vec![7u16, 8]);
/// assert_eq!(u16::DTYPE, DType::UINT16);
/// assert_eq!(first::<u16>(&t), Some(7));
/// assert_eq!(first::<i16>(&t), None); // int16 is another dtype: refused
/// ```
pub unsafe trait Element: Copy + Send + Sync + 'static {
    /// The dtype this Rust type views.
    const DTYPE: DType;
}

macro_rules! element {
    ($($ty:ty => $dtype:expr),* $(,)?) => {$(
        // SAFETY: the size of each type equals its DLPack width (checked by the
        // `element_sizes_match_dtypes` test), and all bit patterns are valid
        // except for `bool`, documented on the trait.
        unsafe impl Element for $ty {
            const DTYPE: DType = $dtype;
        }
    )*};
}

element! {
    bool => DType::BOOL,
    i8 => DType::INT8,
    i16 => DType::INT16,
    i32 => DType::INT32,
    i64 => DType::INT64,
    u8 => DType::UINT8,
    u16 => DType::UINT16,
    u32 => DType::UINT32,
    u64 => DType::UINT64,
    half::f16 => DType::FLOAT16,
    half::bf16 => DType::BFLOAT16,
    f32 => DType::FLOAT32,
    f64 => DType::FLOAT64,
    num_complex::Complex<f32> => DType::COMPLEX64,
    num_complex::Complex<f64> => DType::COMPLEX128,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_widths_are_exactly_the_named_ones() {
        for code in 0..=u8::MAX {
            for bits in 0..=u8::MAX {
                let named = NAMED.iter().any(|(d, _)| d.code == code && d.bits == bits);
                let opaque = code == OPAQUE_CODE && bits != 0 && bits % 8 == 0;
                assert_eq!(known_width(code, bits), named || opaque, "({code}, {bits})");
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for (dtype, name) in NAMED {
            assert_eq!(DType::from_name(name).unwrap(), *dtype);
            assert_eq!(dtype.name(), *name);
        }
        assert!(DType::from_name("float128").is_err());
    }

    #[test]
    fn opaque_bytes_are_named_as_numpy_names_void() {
        let v2 = DType::opaque(2).unwrap();
        assert_eq!((v2.code, v2.bits, v2.lanes, v2.itemsize()), (3, 16, 1, 2));
        assert_eq!(v2.name(), "void16");
        assert_eq!(DType::from_name("void16").unwrap(), v2);
        assert_eq!(DType::from_dlpack(v2.to_dlpack()).unwrap(), v2);
        assert!(DType::opaque(0).is_err() && DType::opaque(32).is_err());
        assert!(DType::from_name("void12").is_err());
    }

    #[test]
    fn huge_opaque_sizes_are_refused_not_overflowed() {
        assert!(DType::opaque(usize::MAX / 8 + 1).is_err());
        assert!(DType::opaque(usize::MAX).is_err());
    }

    #[test]
    fn padded_sub_byte_needs_the_flag() {
        let fp4 = DLDataType {
            code: DLDataTypeCode(17),
            bits: 4,
            lanes: 1,
        };
        assert!(DType::from_dlpack(fp4).is_err());
        let padded = DType::from_dlpack_flagged(fp4, true).unwrap();
        assert!(padded.is_padded_subbyte() && padded.itemsize() == 1);
    }

    #[test]
    fn element_sizes_match_dtypes() {
        fn check<T: Element>() {
            assert_eq!(T::DTYPE.itemsize(), size_of::<T>(), "{}", T::DTYPE);
        }
        check::<bool>();
        check::<i8>();
        check::<i16>();
        check::<i32>();
        check::<i64>();
        check::<u8>();
        check::<u16>();
        check::<u32>();
        check::<u64>();
        check::<half::f16>();
        check::<half::bf16>();
        check::<f32>();
        check::<f64>();
        check::<num_complex::Complex<f32>>();
        check::<num_complex::Complex<f64>>();
    }

    #[test]
    fn dlpack_triples_are_checked() {
        let ok = |code, bits, lanes| {
            DType::from_dlpack(DLDataType {
                code: DLDataTypeCode(code),
                bits,
                lanes,
            })
        };
        assert_eq!(ok(2, 32, 1).unwrap(), DType::FLOAT32);
        assert_eq!(ok(17, 4, 2).unwrap().name(), "float4_e2m1fn_x2");
        assert_eq!(ok(17, 4, 2).unwrap().itemsize(), 1);
        assert!(ok(17, 4, 1).is_err(), "packed fp4 has no byte address");
        assert!(ok(15, 6, 1).is_err());
        assert!(ok(2, 24, 1).is_err());
        assert!(ok(99, 8, 1).is_err());
        assert!(ok(2, 32, 0).is_err());
    }
}
