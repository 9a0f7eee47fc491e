//! The callback-URL parser: any input is `Ok` or a clear error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        match auth_core::Callback::parse(text) {
            Ok(callback) => {
                let _ = callback.code_or_error();
                let _ = format!("{callback:?}");
            }
            Err(err) => assert!(!err.to_string().is_empty()),
        }
    }
});
