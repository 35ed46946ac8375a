#![no_main]
//! Any byte string as a PEP 3118 format: parse or refuse, never panic, and
//! whatever parses must describe a whole-byte element.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(format) = std::str::from_utf8(data)
        && let Ok(dtype) = dlbridge::protocol::pep3118::parse_format(format)
    {
        assert!(dtype.itemsize() > 0);
        if let Some(canonical) = dlbridge::protocol::pep3118::format_of(dtype) {
            let again = dlbridge::protocol::pep3118::parse_format(canonical.to_str().unwrap()).unwrap();
            assert_eq!(again, dtype);
        }
    }
});
