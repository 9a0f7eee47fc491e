//! Fitbit's introspection scope format, `{ACTIVITY=READ_WRITE, …}`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        for scope in auth_fitbit::parse_braces_scopes(text) {
            assert!(!scope.name.is_empty());
        }
    }
});
