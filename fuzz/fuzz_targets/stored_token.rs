//! The stored-token decoder: whatever is on disk, decoding never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(token) = serde_json::from_slice::<auth_core::TokenSet>(data) {
        let again = serde_json::to_vec(&token).expect("a decoded token encodes");
        let back: auth_core::TokenSet = serde_json::from_slice(&again).expect("and decodes again");
        assert_eq!(back.scopes(), token.scopes());
    }
});
