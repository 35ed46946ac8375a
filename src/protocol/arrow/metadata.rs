//! An `ArrowSchema`'s `metadata` (the C Data Interface's binary key-value
//! encoding), its extension type (`ARROW:extension:name`), and the
//! canonical `arrow.fixed_shape_tensor` extension's JSON parameters.

use std::ffi::c_char;

use super::malformed;
use crate::error::Result;

/// The key naming a field's extension type.
pub(crate) const EXTENSION_NAME: &[u8] = b"ARROW:extension:name";
/// The key holding an extension type's serialised parameters.
pub(crate) const EXTENSION_METADATA: &[u8] = b"ARROW:extension:metadata";
/// Arrow's canonical tensor extension type.
pub(crate) const FIXED_SHAPE_TENSOR: &[u8] = b"arrow.fixed_shape_tensor";

/// Most bytes of metadata read from a producer (its encoding states its own
/// lengths, so a lying one could send a read anywhere: the lengths are
/// checked against this before anything is read).
const MAX_METADATA_BYTES: usize = 1 << 20;

/// Key-value pairs, in the producer's order.
pub(crate) type Metadata = Vec<(Vec<u8>, Vec<u8>)>;

/// Reads the metadata at `ptr` (NULL: none).
///
/// # Safety
///
/// `ptr` is NULL or points to the C Data Interface's metadata encoding (an
/// `int32` count, then per pair an `int32` length and the key's bytes, an
/// `int32` length and the value's bytes, native-endian), readable for as
/// many bytes as it states, for the call.
///
/// # Errors
///
/// `Value` ([`Cause::Layout`]): a negative count or length, or more than
/// 1 MiB in all.
pub(crate) unsafe fn read(ptr: *const c_char) -> Result<Metadata> {
    let mut pairs = Vec::new();
    if ptr.is_null() {
        return Ok(pairs);
    }
    let mut at = 0usize;
    let base = ptr.cast::<u8>();
    // SAFETY: the caller's contract: the encoding's first field.
    let count = unsafe { read_len(base, &mut at)? };
    for _ in 0..count {
        // SAFETY: as above, field after field the encoding states.
        let (key, value) = unsafe {
            let key = read_bytes(base, &mut at)?;
            (key, read_bytes(base, &mut at)?)
        };
        pairs.push((key, value));
    }
    Ok(pairs)
}

/// Reads an `int32` length at `base + *at`, refusing a negative one or one
/// that would take the whole past [`MAX_METADATA_BYTES`].
unsafe fn read_len(base: *const u8, at: &mut usize) -> Result<usize> {
    let too_long = || {
        malformed(format!(
            "ArrowSchema metadata is longer than its {MAX_METADATA_BYTES}-byte limit"
        ))
    };
    if *at + 4 > MAX_METADATA_BYTES {
        return Err(too_long());
    }
    // SAFETY: the caller's contract covers the four bytes at `at` (a length
    // the encoding states), within MAX_METADATA_BYTES of `base`.
    let len = unsafe { base.add(*at).cast::<i32>().read_unaligned() };
    *at += 4;
    let fits = usize::try_from(len)
        .ok()
        .filter(|&n| n <= MAX_METADATA_BYTES - *at);
    fits.ok_or_else(|| {
        malformed(format!(
            "ArrowSchema metadata states a length of {len}, which is negative or more than \
                 its {MAX_METADATA_BYTES}-byte limit"
        ))
    })
}

unsafe fn read_bytes(base: *const u8, at: &mut usize) -> Result<Vec<u8>> {
    // SAFETY: the caller's contract: a length, then that many bytes.
    let len = unsafe { read_len(base, at)? };
    // SAFETY: as above; `len` was bounded by `read_len`.
    let bytes = unsafe { std::slice::from_raw_parts(base.add(*at), len) }.to_vec();
    *at += len;
    Ok(bytes)
}

/// The C Data Interface's encoding of `pairs` (what [`read`] reads).
pub(crate) fn encode(pairs: &Metadata) -> Vec<u8> {
    let mut out = Vec::new();
    let len = |n: usize, out: &mut Vec<u8>| out.extend_from_slice(&(n as i32).to_ne_bytes());
    len(pairs.len(), &mut out);
    for (key, value) in pairs {
        len(key.len(), &mut out);
        out.extend_from_slice(key);
        len(value.len(), &mut out);
        out.extend_from_slice(value);
    }
    out
}

/// The value of `key`, if present.
pub(crate) fn get<'a>(pairs: &'a Metadata, key: &[u8]) -> Option<&'a [u8]> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_slice())
}

/// `arrow.fixed_shape_tensor`'s parameters: the physical (row-major) shape
/// of every element, and the permutation that gives the logical order
/// (logical axis `i` is physical axis `permutation[i]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FixedShapeTensor {
    pub(crate) shape: Vec<usize>,
    pub(crate) permutation: Option<Vec<usize>>,
}

impl FixedShapeTensor {
    /// The permutation, unless it is absent or the identity.
    pub(crate) fn non_identity_permutation(&self) -> Option<&[usize]> {
        self.permutation
            .as_deref()
            .filter(|p| p.iter().enumerate().any(|(i, &axis)| axis != i))
    }
}

/// Reads `arrow.fixed_shape_tensor`'s JSON parameters (`shape`, optional
/// `permutation` and `dim_names`).
///
/// # Errors
///
/// `Value` ([`Cause::Layout`]): not a JSON object, no `shape`, a shape
/// entry that is not a non-negative integer, a `permutation` that is not
/// one of the shape's axes, `dim_names` of another length.
pub(crate) fn parse_fixed_shape_tensor(json: &[u8]) -> Result<FixedShapeTensor> {
    let bad = |why: &str| {
        malformed(format!(
            "arrow.fixed_shape_tensor metadata {:?} is malformed: {why}",
            String::from_utf8_lossy(json)
        ))
    };
    let Some(Json::Object(fields)) = Parser::new(json).document() else {
        return Err(bad("not a JSON object"));
    };
    let field = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v);
    let ints = |value: &Json| match value {
        Json::Array(items) => items
            .iter()
            .map(|item| match item {
                Json::Int(n) => usize::try_from(*n)
                    .ok()
                    .filter(|&n| n <= isize::MAX as usize),
                _ => None,
            })
            .collect::<Option<Vec<usize>>>(),
        _ => None,
    };
    let shape = field("shape")
        .ok_or_else(|| bad("no \"shape\""))
        .and_then(|v| ints(v).ok_or_else(|| bad("\"shape\" is not a list of extents")))?;
    if shape.len() > crate::MAX_NDIM {
        return Err(bad("\"shape\" has more axes than a tensor can"));
    }
    let permutation = match field("permutation") {
        None | Some(Json::Null) => None,
        Some(value) => {
            let p = ints(value).ok_or_else(|| bad("\"permutation\" is not a list of axes"))?;
            let mut seen = vec![false; shape.len()];
            let valid = p.len() == shape.len()
                && p.iter()
                    .all(|&axis| axis < seen.len() && !std::mem::replace(&mut seen[axis], true));
            if !valid {
                return Err(bad(
                    "\"permutation\" is not a permutation of the shape's axes",
                ));
            }
            Some(p)
        }
    };
    match field("dim_names") {
        None | Some(Json::Null) => {}
        Some(Json::Array(names))
            if names.len() == shape.len() && names.iter().all(|n| matches!(n, Json::String)) => {}
        Some(_) => return Err(bad("\"dim_names\" is not a list of one name per axis")),
    }
    Ok(FixedShapeTensor { shape, permutation })
}

/// A JSON value, as far as the extension's parameters need: strings are
/// checked but not kept, numbers are kept when they are integers.
enum Json {
    Null,
    Other,
    Int(i128),
    String,
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

/// A small recursive-descent JSON reader (no escapes kept, depth-limited).
struct Parser<'a> {
    bytes: &'a [u8],
    at: usize,
    depth: usize,
}

impl<'a> Parser<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            at: 0,
            depth: 0,
        }
    }

    /// The whole input as one value, or `None`.
    fn document(mut self) -> Option<Json> {
        let value = self.value()?;
        self.skip_space();
        (self.at == self.bytes.len()).then_some(value)
    }

    fn skip_space(&mut self) {
        while matches!(self.bytes.get(self.at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> bool {
        self.skip_space();
        let hit = self.bytes.get(self.at) == Some(&byte);
        self.at += usize::from(hit);
        hit
    }

    fn value(&mut self) -> Option<Json> {
        self.skip_space();
        self.depth += 1;
        if self.depth > 32 {
            return None;
        }
        let value = match *self.bytes.get(self.at)? {
            b'{' => self.object(),
            b'[' => self.array(),
            b'"' => self.string().map(|_| Json::String),
            b'n' => self.word(b"null").then_some(Json::Null),
            b't' => self.word(b"true").then_some(Json::Other),
            b'f' => self.word(b"false").then_some(Json::Other),
            _ => self.number(),
        };
        self.depth -= 1;
        value
    }

    fn word(&mut self, word: &[u8]) -> bool {
        let hit = self.bytes[self.at..].starts_with(word);
        self.at += if hit { word.len() } else { 0 };
        hit
    }

    fn number(&mut self) -> Option<Json> {
        let start = self.at;
        while matches!(
            self.bytes.get(self.at),
            Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
        ) {
            self.at += 1;
        }
        let text = std::str::from_utf8(&self.bytes[start..self.at]).ok()?;
        if let Ok(n) = text.parse::<i128>() {
            return Some(Json::Int(n));
        }
        text.parse::<f64>().ok().map(|_| Json::Other)
    }

    fn string(&mut self) -> Option<String> {
        self.at += 1; // the opening quote
        let mut out = Vec::new();
        loop {
            match *self.bytes.get(self.at)? {
                b'"' => {
                    self.at += 1;
                    return String::from_utf8(out).ok();
                }
                b'\\' => {
                    let escaped = *self.bytes.get(self.at + 1)?;
                    self.at += 2;
                    match escaped {
                        b'u' => {
                            let hex = self.bytes.get(self.at..self.at + 4)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return None;
                            }
                            self.at += 4;
                            out.push(b'?');
                        }
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => out.push(escaped),
                        _ => return None,
                    }
                }
                byte if byte < 0x20 => return None,
                byte => {
                    out.push(byte);
                    self.at += 1;
                }
            }
        }
    }

    fn array(&mut self) -> Option<Json> {
        self.at += 1;
        let mut items = Vec::new();
        if self.eat(b']') {
            return Some(Json::Array(items));
        }
        loop {
            items.push(self.value()?);
            if self.eat(b']') {
                return Some(Json::Array(items));
            }
            if !self.eat(b',') {
                return None;
            }
        }
    }

    fn object(&mut self) -> Option<Json> {
        self.at += 1;
        let mut fields = Vec::new();
        if self.eat(b'}') {
            return Some(Json::Object(fields));
        }
        loop {
            self.skip_space();
            if self.bytes.get(self.at) != Some(&b'"') {
                return None;
            }
            let key = self.string()?;
            if !self.eat(b':') {
                return None;
            }
            fields.push((key, self.value()?));
            if self.eat(b'}') {
                return Some(Json::Object(fields));
            }
            if !self.eat(b',') {
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Cause;

    #[test]
    fn metadata_round_trips() {
        let pairs: Metadata = vec![
            (EXTENSION_NAME.to_vec(), FIXED_SHAPE_TENSOR.to_vec()),
            (b"k".to_vec(), Vec::new()),
        ];
        let encoded = encode(&pairs);
        // SAFETY: `encoded` is a valid encoding, alive for the call.
        let read_back = unsafe { read(encoded.as_ptr().cast()) }.unwrap();
        assert_eq!(read_back, pairs);
        assert_eq!(get(&read_back, EXTENSION_NAME), Some(FIXED_SHAPE_TENSOR));
        // SAFETY: NULL is "no metadata".
        assert!(unsafe { read(std::ptr::null()) }.unwrap().is_empty());
    }

    #[test]
    fn lying_lengths_are_refused_before_reading() {
        for lie in [-1i32, i32::MAX] {
            let mut encoded = 1i32.to_ne_bytes().to_vec();
            encoded.extend_from_slice(&lie.to_ne_bytes());
            // SAFETY: the eight bytes the refusal reads before stopping.
            let err = unsafe { read(encoded.as_ptr().cast()) }.unwrap_err();
            assert_eq!(err.cause(), Cause::Layout, "{lie}");
        }
    }

    #[test]
    fn fixed_shape_tensor_parameters() {
        let parsed = parse_fixed_shape_tensor(br#"{"shape":[2,3]}"#).unwrap();
        assert_eq!((parsed.shape, parsed.permutation), (vec![2, 3], None));
        let permuted = parse_fixed_shape_tensor(
            br#" { "shape" : [100, 200, 500], "permutation": [2, 0, 1], "dim_names": ["C", "H", "W\u00e9"] } "#,
        )
        .unwrap();
        assert_eq!(permuted.non_identity_permutation(), Some(&[2, 0, 1][..]));
        let identity = parse_fixed_shape_tensor(br#"{"shape":[1,2],"permutation":[0,1]}"#).unwrap();
        assert_eq!(identity.non_identity_permutation(), None);
    }

    #[test]
    fn malformed_fixed_shape_tensor_parameters_are_refused() {
        for bad in [
            &b""[..],
            b"[]",
            b"{}",
            br#"{"shape":[-1]}"#,
            br#"{"shape":[1.5]}"#,
            br#"{"shape":[2,3],"permutation":[0,0]}"#,
            br#"{"shape":[2,3],"permutation":[0,2]}"#,
            br#"{"shape":[2,3],"permutation":[0]}"#,
            br#"{"shape":[2,3],"dim_names":["a"]}"#,
            br#"{"shape":[2,3]} x"#,
            br#"{"shape":[2,3]"#,
            br#"{"shape":[99999999999999999999999]}"#,
            &[b'['; 64],
        ] {
            assert!(
                parse_fixed_shape_tensor(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
