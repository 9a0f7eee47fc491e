//! The Fitbit error-body parser (classic, Google-shaped and RFC 6749 bodies).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(error) = auth_fitbit::parse_fitbit_error(data) {
        let _ = error.description.map(|d| auth_core::redact::redact(&d, &[]));
    }
});
