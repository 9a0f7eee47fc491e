//! Opaque random strings for codes and tokens, from the thread's CSPRNG.
//! Their shapes imitate the real ones (Google's `ya29.` access tokens, `1//`
//! refresh tokens and `4/0A` codes that contain a slash) so clients meet the
//! same encoding questions; nothing may ever parse them.

use rand::Rng as _;

const HEX: &[u8] = b"0123456789abcdef";
const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const URL_SAFE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn random(len: usize, alphabet: &[u8]) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(alphabet[rng.random_range(0..alphabet.len())]))
        .collect()
}

/// A legacy Fitbit access token.
pub(crate) fn fitbit_access() -> String {
    random(96, ALNUM)
}

/// A legacy Fitbit refresh token (64 hex digits, like the real ones).
pub(crate) fn fitbit_refresh() -> String {
    random(64, HEX)
}

/// A legacy Fitbit authorization code.
pub(crate) fn fitbit_code() -> String {
    random(40, HEX)
}

/// A Google access token.
pub(crate) fn google_access() -> String {
    format!("ya29.{}", random(120, URL_SAFE))
}

/// A Google refresh token.
pub(crate) fn google_refresh() -> String {
    format!("1//{}", random(96, URL_SAFE))
}

/// A Google authorization code (contains a `/`, so it must be URL-decoded).
pub(crate) fn google_code() -> String {
    format!("4/0A{}", random(72, URL_SAFE))
}

/// A Google device code.
pub(crate) fn google_device_code() -> String {
    format!("AH-1Ng{}", random(80, URL_SAFE))
}

/// A Google user code, as shown to the person: `XXXX-XXXX`, consonants
/// only, so it cannot spell a word.
pub(crate) fn google_user_code() -> String {
    const LETTERS: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";
    format!("{}-{}", random(4, LETTERS), random(4, LETTERS))
}

/// An access token of a catalogue profile.
pub(crate) fn opaque_access() -> String {
    format!("at-{}", random(64, URL_SAFE))
}

/// A refresh token of a catalogue profile.
pub(crate) fn opaque_refresh() -> String {
    format!("rt-{}", random(64, URL_SAFE))
}

/// An authorization code of a catalogue profile.
pub(crate) fn opaque_code() -> String {
    format!("code-{}", random(40, URL_SAFE))
}

/// A device code of a catalogue profile.
pub(crate) fn opaque_device_code() -> String {
    format!("dc-{}", random(48, URL_SAFE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_and_distinct() {
        for make in [
            fitbit_access,
            fitbit_refresh,
            fitbit_code,
            google_access,
            google_refresh,
            google_code,
            opaque_access,
            opaque_refresh,
            opaque_code,
            opaque_device_code,
        ] {
            let (a, b) = (make(), make());
            assert!(a.len() >= 40, "{a}");
            assert_ne!(a, b);
        }
    }
}
