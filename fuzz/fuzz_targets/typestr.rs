#![no_main]
//! Any byte string as an array-interface typestr, and any typekind/itemsize
//! pair: parse or refuse, never panic; whatever parses to a dtype renders
//! back to a typestr that parses to the same dtype.

use dlbridge::protocol::typestr::{Parsed, from_typekind, parse_typestr, typestr_of};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&[u8], u8, u16)| {
    let (text, typekind, itemsize) = input;
    let parsed = std::str::from_utf8(text).ok().map(parse_typestr);
    for result in [parsed, Some(from_typekind(typekind, usize::from(itemsize)))]
        .into_iter()
        .flatten()
    {
        match result {
            Ok(Parsed::DType(dtype)) => {
                assert_eq!(parse_typestr(&typestr_of(dtype)).unwrap(), Parsed::DType(dtype));
            }
            Ok(Parsed::Void(n)) => assert!(n > 0),
            Err(err) => assert!(!err.message().is_empty()),
        }
    }
});
