//! The envelope: one sealed secret as a self-describing string, and the
//! marker that says a stored token is encrypted.
//!
//! ```text
//! tk1.<key id>.<key check value>.<base64url(nonce ‖ ciphertext ‖ tag)>
//! ```
//!
//! The associated data binds each envelope to its place: the format, the
//! provider, the account, the field and the record id of the save, each
//! prefixed with its length as four big-endian bytes, so that no two
//! different places can produce the same bytes.
//!
//! This module must never put a plaintext, a key, or an envelope's payload
//! into an error: [`OpenError`] carries key ids (already checked to be
//! plain ids) and fixed descriptions only.

use auth_core::TokenKey;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::XNonce;
use chacha20poly1305::aead::rand_core::RngCore as _;
use chacha20poly1305::aead::{Aead as _, OsRng, Payload};
use subtle_free::ct_eq;
use zeroize::Zeroizing;

use crate::key::{KCV_LEN, Key, KeyRing, is_valid_key_id};

/// The envelope format, first part of every envelope and of the associated
/// data.
pub(crate) const FORMAT: &str = "tk1";
/// XChaCha20's nonce, in bytes.
const NONCE_LEN: usize = 24;
/// Poly1305's tag, in bytes.
const TAG_LEN: usize = 16;
/// The random record id of a save, in bytes.
const RECORD_ID_LEN: usize = 16;

/// A new random record id, base64url without padding.
pub(crate) fn new_record_id() -> String {
    let mut id = [0u8; RECORD_ID_LEN];
    OsRng.fill_bytes(&mut id);
    URL_SAFE_NO_PAD.encode(id)
}

/// Where a secret sits in a token: part of the associated data.
pub(crate) fn field_name_extra(name: &str) -> String {
    format!("extras.{name}")
}

/// The field name of the access token.
pub(crate) const ACCESS_FIELD: &str = "access_token";
/// The field name of the refresh token.
pub(crate) const REFRESH_FIELD: &str = "refresh_token";

fn associated_data(key: &TokenKey, field: &str, record: &str) -> Vec<u8> {
    let parts = [
        FORMAT,
        key.provider.as_str(),
        key.account.as_str(),
        field,
        record,
    ];
    let mut aad = Vec::with_capacity(parts.iter().map(|p| p.len() + 4).sum());
    for part in parts {
        let len = u32::try_from(part.len()).expect("ids and fields are short");
        aad.extend_from_slice(&len.to_be_bytes());
        aad.extend_from_slice(part.as_bytes());
    }
    aad
}

/// Seals `plaintext` for `field` of `key` in the save `record`, with `sealer`
/// and a fresh random nonce.
pub(crate) fn seal(
    sealer: &Key,
    key: &TokenKey,
    field: &str,
    record: &str,
    plaintext: &[u8],
) -> String {
    let mut nonce = [0u8; NONCE_LEN];
    OsRng.fill_bytes(&mut nonce);
    let aad = associated_data(key, field, record);
    let ciphertext = sealer
        .cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        .expect("XChaCha20-Poly1305 encrypts any message under 256 GiB");
    let mut payload = Vec::with_capacity(NONCE_LEN + ciphertext.len());
    payload.extend_from_slice(&nonce);
    payload.extend_from_slice(&ciphertext);
    format!(
        "{FORMAT}.{}.{}.{}",
        sealer.id,
        sealer.kcv_text,
        URL_SAFE_NO_PAD.encode(payload)
    )
}

/// Why an envelope did not open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OpenError {
    /// Not an envelope of a format we know, or cut short: tampering or
    /// damage. The text says which part, never its content.
    Malformed(&'static str),
    /// The envelope names another key than its record's marker: tampering.
    KeyMismatch,
    /// The envelope's key id is not in the ring: a configuration problem.
    UnknownKey(String),
    /// The key with that id is not the key that sealed it (check value
    /// differs): a configuration problem.
    WrongKey(String),
    /// The key is right but the data does not authenticate: tampering, or
    /// an envelope moved to another account, field or save.
    Tampered,
}

/// Opens an envelope sealed for `field` of `key` in the save `record`, whose
/// marker names the key `record_key_id`.
pub(crate) fn open(
    ring: &KeyRing,
    key: &TokenKey,
    field: &str,
    record: &str,
    record_key_id: &str,
    envelope: &str,
) -> Result<Zeroizing<Vec<u8>>, OpenError> {
    let mut parts = envelope.split('.');
    let (Some(format), Some(kid), Some(kcv), Some(payload), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(OpenError::Malformed(
            "it does not have the four parts of an envelope",
        ));
    };
    if format != FORMAT {
        return Err(OpenError::Malformed("its format is not tk1"));
    }
    if !is_valid_key_id(kid) {
        return Err(OpenError::Malformed("its key id is not a valid key id"));
    }
    let kcv = URL_SAFE_NO_PAD
        .decode(kcv)
        .ok()
        .filter(|k| k.len() == KCV_LEN)
        .ok_or(OpenError::Malformed("its key check value is damaged"))?;
    let payload = URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .filter(|p| p.len() >= NONCE_LEN + TAG_LEN)
        .ok_or(OpenError::Malformed(
            "its ciphertext is damaged or cut short",
        ))?;
    if kid != record_key_id {
        return Err(OpenError::KeyMismatch);
    }
    let opener = ring
        .get(kid)
        .ok_or_else(|| OpenError::UnknownKey(kid.to_owned()))?;
    if !ct_eq(&kcv, &opener.kcv) {
        return Err(OpenError::WrongKey(kid.to_owned()));
    }
    let (nonce, ciphertext) = payload.split_at(NONCE_LEN);
    let aad = associated_data(key, field, record);
    opener
        .cipher
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: &aad,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| OpenError::Tampered)
}

/// A constant-time comparison, without another dependency: the check value
/// is public, but comparing it in constant time costs nothing.
mod subtle_free {
    pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zeroize::Zeroizing;

    fn ring(entries: &[(&str, u8)]) -> KeyRing {
        KeyRing::new(
            entries
                .iter()
                .map(|(id, b)| ((*id).to_owned(), Zeroizing::new([*b; 32]))),
            "test",
        )
        .unwrap()
    }

    fn key(account: &str) -> TokenKey {
        TokenKey::parse("fitbit", account).unwrap()
    }

    #[test]
    fn round_trips_and_binds_its_place() {
        let r = ring(&[("k1", 1)]);
        let e = seal(r.primary(), &key("a"), ACCESS_FIELD, "rec", b"secret");
        assert!(e.starts_with("tk1.k1.") && !e.contains("secret"));
        let open_at = |account: &str, field: &str, record: &str| {
            open(&r, &key(account), field, record, "k1", &e)
        };
        assert_eq!(
            open_at("a", ACCESS_FIELD, "rec").unwrap().as_slice(),
            b"secret"
        );
        assert_eq!(open_at("b", ACCESS_FIELD, "rec"), Err(OpenError::Tampered));
        assert_eq!(open_at("a", REFRESH_FIELD, "rec"), Err(OpenError::Tampered));
        assert_eq!(open_at("a", ACCESS_FIELD, "rec2"), Err(OpenError::Tampered));
    }

    #[test]
    fn the_length_prefix_keeps_places_apart() {
        let a = associated_data(&TokenKey::parse("ab", "c").unwrap(), "f", "r");
        let b = associated_data(&TokenKey::parse("a", "bc").unwrap(), "f", "r");
        assert_ne!(a, b);
    }

    #[test]
    fn nonces_are_fresh() {
        let r = ring(&[("k1", 1)]);
        let a = seal(r.primary(), &key("a"), ACCESS_FIELD, "rec", b"same");
        let b = seal(r.primary(), &key("a"), ACCESS_FIELD, "rec", b"same");
        assert_ne!(a, b);
    }

    #[test]
    fn tells_a_wrong_key_from_tampering() {
        let sealed_by = ring(&[("k1", 1)]);
        let e = seal(sealed_by.primary(), &key("a"), ACCESS_FIELD, "rec", b"x");
        let other = ring(&[("k1", 2)]);
        assert_eq!(
            open(&other, &key("a"), ACCESS_FIELD, "rec", "k1", &e),
            Err(OpenError::WrongKey("k1".into()))
        );
        let missing = ring(&[("k2", 1)]);
        assert_eq!(
            open(&missing, &key("a"), ACCESS_FIELD, "rec", "k1", &e),
            Err(OpenError::UnknownKey("k1".into()))
        );
        assert_eq!(
            open(&sealed_by, &key("a"), ACCESS_FIELD, "rec", "k2", &e),
            Err(OpenError::KeyMismatch)
        );
        for cut in [e.len() - 1, e.len() - 30, 12, 6, 0] {
            assert!(open(&sealed_by, &key("a"), ACCESS_FIELD, "rec", "k1", &e[..cut]).is_err());
        }
    }
}
