//! Arbitrary input to every parser that reads what others wrote: `Ok` or a
//! clear error, never a panic.

use auth_core::{Callback, TokenSet};
use auth_fitbit::{parse_braces_scopes, parse_fitbit_error};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn callback_parser_never_panics(input in ".*") {
        if let Err(err) = Callback::parse(&input) {
            prop_assert!(!err.to_string().is_empty());
        }
    }

    #[test]
    fn callback_parser_handles_url_shaped_input(
        code in "[ -~]{0,40}",
        state in "[ -~]{0,40}",
        extra in "[a-z_]{1,10}",
        fragment in "[ -~]{0,10}",
    ) {
        let mut url = url::Url::parse("http://127.0.0.1:9/cb").unwrap();
        url.query_pairs_mut().append_pair("code", &code).append_pair("state", &state).append_pair(&extra, "x");
        let text = format!("{url}#{fragment}");
        match Callback::parse(&text) {
            Ok(cb) => {
                prop_assert_eq!(cb.state(), Some(state.as_str()));
            }
            Err(err) => {
                // Only a repeated parameter may be refused here.
                prop_assert!(err.to_string().contains("repeats"), "{}", err);
            }
        }
    }

    #[test]
    fn fitbit_error_body_parser_never_panics(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_fitbit_error(&body);
    }

    #[test]
    fn fitbit_error_body_parser_on_json_shapes(error_type in "[a-z_]{0,20}", message in ".{0,60}") {
        let body = serde_json::json!({"errors": [{"errorType": error_type, "message": message}], "success": false});
        let parsed = parse_fitbit_error(body.to_string().as_bytes());
        prop_assert!(parsed.is_some());
    }

    #[test]
    fn braces_scope_parser_never_panics(input in ".*") {
        for scope in parse_braces_scopes(&input) {
            prop_assert!(!scope.name.is_empty());
        }
    }

    #[test]
    fn braces_scope_parser_reads_generated_lists(
        pairs in proptest::collection::vec(("[A-Z_]{1,12}", "(READ|READ_WRITE|WRITE)"), 0..8)
    ) {
        let raw = format!(
            "{{{}}}",
            pairs.iter().map(|(s, a)| format!("{s}={a}")).collect::<Vec<_>>().join(", ")
        );
        let parsed = parse_braces_scopes(&raw);
        prop_assert_eq!(parsed.len(), pairs.len());
        for (scope, (name, access)) in parsed.iter().zip(&pairs) {
            prop_assert_eq!(&scope.name, &name.to_ascii_lowercase());
            prop_assert_eq!(scope.access.as_deref(), Some(access.as_str()));
        }
    }

    #[test]
    fn stored_token_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = serde_json::from_slice::<TokenSet>(&bytes);
    }

    #[test]
    fn stored_token_decoder_on_near_valid_json(
        format in 0u32..4,
        access in ".{0,20}",
        issued in ".{0,30}",
        expires in proptest::option::of(".{0,30}"),
    ) {
        let mut value = serde_json::json!({"format": format, "access_token": access, "token_type": "Bearer", "issued_at": issued});
        if let Some(expires) = expires {
            value["expires_at"] = serde_json::json!(expires);
        }
        if let Err(err) = serde_json::from_value::<TokenSet>(value) {
            let text = err.to_string();
            prop_assert!(!text.is_empty());
            if !access.is_empty() && access.len() > 3 {
                prop_assert!(!text.contains(&access), "the error echoes the token: {}", text);
            }
        }
    }
}
