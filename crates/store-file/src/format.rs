//! What a token file holds, and how it is read back.
//!
//! ```json
//! {
//!   "schema": 1,
//!   "version": 1764000000123456,
//!   "provider": "fitbit",
//!   "account": "26FWFL",
//!   "token": { "format": 1, "access_token": "…", … }
//! }
//! ```
//!
//! `token` is [`TokenSet`]'s own versioned serde form. The real ids are kept
//! inside so that `list` can recover ids whose file names are hashes, and so
//! that a file moved by hand is noticed.
//!
//! Decoding must never panic on any input, and its error messages must
//! never quote the file's content (it holds secrets): they say where and
//! what, and details from serde go through [`auth_core::redact`].

use auth_core::{AccountId, ProviderId, TOKEN_FORMAT_VERSION, TokenKey, TokenSet};
use serde::{Deserialize, Serialize};

/// The file schema this crate writes and reads.
pub(crate) const SCHEMA: u64 = 1;

/// The largest token file read; anything bigger is not one of ours.
pub(crate) const MAX_FILE_LEN: u64 = 1 << 20;

#[derive(Serialize)]
struct RecordRef<'a> {
    schema: u64,
    version: u64,
    provider: &'a str,
    account: &'a str,
    token: &'a TokenSet,
}

#[derive(Deserialize)]
struct RecordV1 {
    version: u64,
    provider: String,
    account: String,
    token: serde_json::Value,
}

/// A decoded token file.
#[derive(Debug)]
pub(crate) struct Record {
    /// The key the file says it holds.
    pub(crate) key: TokenKey,
    /// The version, for compare-and-swap.
    pub(crate) version: u64,
    /// The token.
    pub(crate) token: TokenSet,
}

/// Why a file could not be decoded. The message names no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DecodeError {
    /// The file was written by a newer version of this library: its
    /// `field` is `found`, and this version reads up to `supported`.
    Newer {
        /// `schema`, or `token format`.
        field: &'static str,
        /// The number in the file.
        found: u64,
        /// The largest number this version reads.
        supported: u64,
    },
    /// Anything else: empty, truncated, not JSON, wrong shape.
    Invalid(String),
}

impl DecodeError {
    fn invalid(what: impl Into<String>) -> Self {
        Self::Invalid(what.into())
    }

    /// Cleans serde's text, which can quote a value it did not expect.
    fn from_serde(context: &str, err: &impl std::fmt::Display) -> Self {
        Self::Invalid(format!(
            "{context}: {}",
            auth_core::redact::redact(&err.to_string(), &[])
        ))
    }
}

/// The bytes of a token file for `token` at `version`.
pub(crate) fn encode(key: &TokenKey, version: u64, token: &TokenSet) -> Vec<u8> {
    let record = RecordRef {
        schema: SCHEMA,
        version,
        provider: key.provider.as_str(),
        account: key.account.as_str(),
        token,
    };
    let mut bytes =
        serde_json::to_vec_pretty(&record).expect("a token record always serializes to JSON");
    bytes.push(b'\n');
    bytes
}

/// Reads just the version of a token file, for a file [`decode`] refuses;
/// `None` when even that is unreadable.
pub(crate) fn salvage_version(bytes: &[u8]) -> Option<u64> {
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    value.get("version")?.as_u64()
}

/// Decodes a token file.
pub(crate) fn decode(bytes: &[u8]) -> Result<Record, DecodeError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(DecodeError::invalid("the file is empty"));
    }
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        if e.is_eof() {
            DecodeError::invalid(format!(
                "the file is truncated (it ends at line {}, column {})",
                e.line(),
                e.column()
            ))
        } else {
            DecodeError::from_serde("the file is not valid JSON", &e)
        }
    })?;
    let schema = value
        .get("schema")
        .ok_or_else(|| {
            DecodeError::invalid("the file has no \"schema\" field; it is not a token file")
        })?
        .as_u64()
        .ok_or_else(|| DecodeError::invalid("the \"schema\" field is not a whole number"))?;
    match schema {
        SCHEMA => {}
        newer if newer > SCHEMA => {
            return Err(DecodeError::Newer {
                field: "schema",
                found: newer,
                supported: SCHEMA,
            });
        }
        other => return Err(DecodeError::invalid(format!("unknown schema {other}"))),
    }
    let record = RecordV1::deserialize(value)
        .map_err(|e| DecodeError::from_serde("the file has the wrong shape", &e))?;
    let provider = ProviderId::new(&record.provider)
        .map_err(|_| DecodeError::invalid("the \"provider\" field is not a valid provider id"))?;
    let account = AccountId::new(&record.account)
        .map_err(|_| DecodeError::invalid("the \"account\" field is not a valid account id"))?;
    let token_format = record
        .token
        .get("format")
        .and_then(serde_json::Value::as_u64);
    if let Some(found) = token_format.filter(|f| *f > u64::from(TOKEN_FORMAT_VERSION)) {
        return Err(DecodeError::Newer {
            field: "token format",
            found,
            supported: u64::from(TOKEN_FORMAT_VERSION),
        });
    }
    let token = TokenSet::deserialize(record.token)
        .map_err(|e| DecodeError::from_serde("the token is invalid", &e))?;
    Ok(Record {
        key: TokenKey::new(provider, account),
        version: record.version,
        token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use auth_core::secrecy::ExposeSecret;
    use proptest::prelude::*;
    use std::time::{Duration, SystemTime};

    const SECRET: &str = "secret-access-0123456789abcdef0123456789";

    fn key() -> TokenKey {
        TokenKey::parse("fitbit", "26FWFL").unwrap()
    }

    fn token() -> TokenSet {
        TokenSet::new(
            SECRET,
            "Bearer",
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_000_000),
        )
        .with_refresh_token("refresh-0123456789abcdef0123456789")
        .with_scopes(["sleep"])
    }

    fn invalid_message(bytes: &[u8]) -> String {
        match decode(bytes) {
            Err(DecodeError::Invalid(message)) => message,
            other => panic!("expected an invalid file, got {other:?}"),
        }
    }

    #[test]
    fn round_trips() {
        let bytes = encode(&key(), 42, &token());
        let record = decode(&bytes).unwrap();
        assert_eq!(record.key, key());
        assert_eq!(record.version, 42);
        assert_eq!(record.token.access_token().expose_secret(), SECRET);
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.contains("\"schema\": 1"), "{text}");
        assert!(text.contains("\"account\": \"26FWFL\""), "{text}");
        assert!(text.contains("\"format\": 1"), "{text}");
    }

    #[test]
    fn says_what_is_wrong() {
        let good = encode(&key(), 1, &token());
        assert!(invalid_message(b"").contains("empty"));
        assert!(invalid_message(b" \n").contains("empty"));
        assert!(invalid_message(&good[..good.len() / 2]).contains("truncated"));
        assert!(invalid_message(b"\x00\xffgarbage").contains("not valid JSON"));
        assert!(invalid_message(b"{\"token\": {}}").contains("no \"schema\""));
        assert!(invalid_message(b"{\"schema\": 0}").contains("unknown schema 0"));
        assert!(invalid_message(b"{\"schema\": 1, \"version\": 1}").contains("wrong shape"));
    }

    #[test]
    fn refuses_a_newer_schema() {
        let mut value: serde_json::Value =
            serde_json::from_slice(&encode(&key(), 1, &token())).unwrap();
        value["schema"] = serde_json::json!(2);
        let bytes = serde_json::to_vec(&value).unwrap();
        let newer = DecodeError::Newer {
            field: "schema",
            found: 2,
            supported: 1,
        };
        assert_eq!(decode(&bytes).unwrap_err(), newer);
        assert_eq!(salvage_version(&bytes), Some(1));
    }

    #[test]
    fn refuses_a_newer_token_format_and_never_quotes_secrets() {
        let mut value: serde_json::Value =
            serde_json::from_slice(&encode(&key(), 1, &token())).unwrap();
        value["token"]["format"] = serde_json::json!(9);
        let newer = DecodeError::Newer {
            field: "token format",
            found: 9,
            supported: 1,
        };
        assert_eq!(
            decode(&serde_json::to_vec(&value).unwrap()).unwrap_err(),
            newer
        );

        // A secret where serde expects another type would be quoted by serde.
        for (outer, inner) in [("version", ""), ("token", "scopes"), ("token", "format")] {
            let mut value: serde_json::Value =
                serde_json::from_slice(&encode(&key(), 1, &token())).unwrap();
            if inner.is_empty() {
                value[outer] = serde_json::json!(SECRET);
            } else {
                value[outer][inner] = serde_json::json!(SECRET);
            }
            let message = invalid_message(&serde_json::to_vec(&value).unwrap());
            assert!(!message.contains(SECRET), "{message}");
        }
    }

    #[test]
    fn refuses_invalid_ids() {
        let mut value: serde_json::Value =
            serde_json::from_slice(&encode(&key(), 1, &token())).unwrap();
        value["account"] = serde_json::json!("a/b");
        assert!(invalid_message(&serde_json::to_vec(&value).unwrap()).contains("account"));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&bytes);
            let _ = salvage_version(&bytes);
        }

        #[test]
        fn every_truncation_is_refused(cut in 0usize..10_000) {
            let good = encode(&key(), 7, &token());
            let cut = cut % good.len();
            // Cutting only the final newline leaves a complete record.
            prop_assume!(cut < good.len() - 1);
            prop_assert!(decode(&good[..cut]).is_err());
        }
    }
}
