//! Keys and recognizable tokens: [`token`] makes a token whose every field
//! says which generation it is, and [`generation_of`] reads the generation
//! back after checking that every field agrees, so a token pieced together
//! from two saves fails the test.

use std::time::{Duration, SystemTime};

use auth_core::secrecy::ExposeSecret;
use auth_core::{TokenKey, TokenSet};

/// A key from two ids, which must be valid.
pub fn key(provider: &str, account: &str) -> TokenKey {
    TokenKey::parse(provider, account).expect("valid test key")
}

/// A token whose every field says which `generation` it is, so that a mix
/// of two tokens is visible.
pub fn token(generation: u64) -> TokenSet {
    let issued = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_000_000 + generation);
    // Long enough that a stored token is more than one small write.
    let padding = format!("{generation:020}").repeat(100);
    TokenSet::new(format!("access-{generation}-{padding}"), "Bearer", issued)
        .with_refresh_token(format!("refresh-{generation}-{padding}"))
        .with_expires_in(Duration::from_secs(3600))
        .with_scopes([format!("scope-{generation}")])
        .with_extra("generation", serde_json::json!(generation))
}

/// The generation of a token made by [`token`], after checking that every
/// field agrees on it.
pub fn generation_of(token: &TokenSet) -> u64 {
    let generation = token
        .extras()
        .get("generation")
        .and_then(serde_json::Value::as_u64)
        .expect("the token has a generation");
    let want = self::token(generation);
    assert_eq!(
        token.access_token().expose_secret(),
        want.access_token().expose_secret(),
        "access token of another generation"
    );
    assert_eq!(
        token.refresh_token().map(|t| t.expose_secret().to_owned()),
        want.refresh_token().map(|t| t.expose_secret().to_owned()),
        "refresh token of another generation"
    );
    assert_eq!(
        token.issued_at(),
        want.issued_at(),
        "issued_at of another generation"
    );
    assert_eq!(
        token.expires_at(),
        want.expires_at(),
        "expires_at of another generation"
    );
    assert_eq!(
        token.scopes(),
        want.scopes(),
        "scopes of another generation"
    );
    generation
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_says_its_generation() {
        assert_eq!(generation_of(&token(7)), 7);
    }

    #[test]
    #[should_panic(expected = "refresh token of another generation")]
    fn a_mix_of_two_generations_is_caught() {
        let two = token(2);
        let mixed = token(1).with_refresh_token(
            two.refresh_token()
                .expect("a refresh token")
                .expose_secret(),
        );
        let _ = generation_of(&mixed);
    }
}
