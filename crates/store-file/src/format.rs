//! What an account file holds, and how it is read back.
//!
//! ```json
//! {
//!   "schema": 2,
//!   "version": 1764000000123456,
//!   "provider": "fitbit",
//!   "account": "26FWFL",
//!   "grant": 1764000000100000,
//!   "sequence": 1764000000100000,
//!   "in_flight": { "since_us": 1764000000120000 },
//!   "token": { "format": 1, "access_token": "…", … }
//! }
//! ```
//!
//! - `version`: the row's version for compare-and-swap; `0` when the file
//!   holds no row yet, only the sequence counter (a login took a number and
//!   has not saved).
//! - `grant`: the login sequence of the stored grant (for a tombstone, the
//!   highest sequence handed out when it was written).
//! - `sequence`: the highest login sequence number handed out for the key.
//! - `in_flight`: the write-ahead record of a refresh, with when it was
//!   first written, in microseconds since the Unix epoch on this host's
//!   clock; `null` when there is none.
//! - `token`: [`TokenSet`]'s own versioned serde form, or `null` for a
//!   tombstone (a revoked or removed grant) and for a counter-only file.
//!
//! The real ids are kept inside so that `list` can recover ids whose file
//! names are hashes, and so that a file moved by hand is noticed.
//!
//! # Schemas
//!
//! Schema 2 added `grant`, `sequence`, `in_flight` and the `null` token.
//! Schema 1 files (`{"schema": 1, "version", "provider", "account",
//! "token"}`) are still read, as a row with grant 0, no record and no
//! sequence handed out, and the next write of the key turns them into
//! schema 2. A reader that only knows schema 1 refuses a schema 2 file with
//! its "written by a newer version of this library; upgrade" error, and
//! never writes over it.
//!
//! Decoding must never panic on any input, and its error messages must
//! never quote the file's content (it holds secrets): they say where and
//! what, and details from serde go through [`auth_core::redact`].

use auth_core::{AccountId, ProviderId, TOKEN_FORMAT_VERSION, TokenKey, TokenSet};
use serde::{Deserialize, Serialize};

/// The file schema this crate writes.
pub(crate) const SCHEMA: u64 = 2;
/// The oldest file schema this crate still reads.
const OLDEST_SCHEMA: u64 = 1;

/// The largest account file read; anything bigger is not one of ours.
pub(crate) const MAX_FILE_LEN: u64 = 1 << 20;

/// One key's account file, decoded or about to be written.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    /// The key the file says it holds.
    pub(crate) key: TokenKey,
    /// The row's version; 0 when the file only keeps the sequence counter.
    pub(crate) version: u64,
    /// The login sequence of the stored grant.
    pub(crate) grant: u64,
    /// The highest login sequence number handed out.
    pub(crate) sequence: u64,
    /// When the refresh in flight was recorded, in microseconds since the
    /// Unix epoch; `None` when there is none.
    pub(crate) in_flight_us: Option<u64>,
    /// The token; `None` for a tombstone or a counter-only file.
    pub(crate) token: Option<TokenSet>,
}

impl Row {
    /// A file with no row yet, for `key`.
    pub(crate) fn empty(key: TokenKey) -> Self {
        Self {
            key,
            version: 0,
            grant: 0,
            sequence: 0,
            in_flight_us: None,
            token: None,
        }
    }

    /// Whether the file holds a row (a token or a tombstone), not only the
    /// sequence counter.
    pub(crate) fn is_row(&self) -> bool {
        self.version != 0
    }
}

#[derive(Serialize)]
struct RowRef<'a> {
    schema: u64,
    version: u64,
    provider: &'a str,
    account: &'a str,
    grant: u64,
    sequence: u64,
    in_flight: Option<InFlightV2>,
    token: Option<&'a TokenSet>,
}

#[derive(Serialize, Deserialize, Clone, Copy)]
struct InFlightV2 {
    since_us: u64,
}

#[derive(Deserialize)]
struct RowV1 {
    version: u64,
    provider: String,
    account: String,
    token: serde_json::Value,
}

#[derive(Deserialize)]
struct RowV2 {
    version: u64,
    provider: String,
    account: String,
    grant: u64,
    sequence: u64,
    in_flight: Option<InFlightV2>,
    token: Option<serde_json::Value>,
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

/// The bytes of an account file holding `row`.
pub(crate) fn encode(row: &Row) -> Vec<u8> {
    let value = RowRef {
        schema: SCHEMA,
        version: row.version,
        provider: row.key.provider.as_str(),
        account: row.key.account.as_str(),
        grant: row.grant,
        sequence: row.sequence,
        in_flight: row.in_flight_us.map(|since_us| InFlightV2 { since_us }),
        token: row.token.as_ref(),
    };
    let mut bytes =
        serde_json::to_vec_pretty(&value).expect("an account file always serializes to JSON");
    bytes.push(b'\n');
    bytes
}

/// Decodes an account file.
pub(crate) fn decode(bytes: &[u8]) -> Result<Row, DecodeError> {
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
    let shape = |e: serde_json::Error| DecodeError::from_serde("the file has the wrong shape", &e);
    let (version, provider, account, grant, sequence, in_flight, token) = match schema {
        SCHEMA => {
            let row = RowV2::deserialize(value).map_err(shape)?;
            (
                row.version,
                row.provider,
                row.account,
                row.grant,
                row.sequence,
                row.in_flight,
                row.token,
            )
        }
        OLDEST_SCHEMA => {
            let row = RowV1::deserialize(value).map_err(shape)?;
            if row.version == 0 {
                return Err(DecodeError::invalid("a schema 1 file at version 0"));
            }
            (
                row.version,
                row.provider,
                row.account,
                0,
                0,
                None,
                Some(row.token),
            )
        }
        newer if newer > SCHEMA => {
            return Err(DecodeError::Newer {
                field: "schema",
                found: newer,
                supported: SCHEMA,
            });
        }
        other => return Err(DecodeError::invalid(format!("unknown schema {other}"))),
    };
    let provider = ProviderId::new(&provider)
        .map_err(|_| DecodeError::invalid("the \"provider\" field is not a valid provider id"))?;
    let account = AccountId::new(&account)
        .map_err(|_| DecodeError::invalid("the \"account\" field is not a valid account id"))?;
    if version == 0 && (token.is_some() || in_flight.is_some()) {
        return Err(DecodeError::invalid(
            "the file holds a token or a record at version 0",
        ));
    }
    let token = token.map(decode_token).transpose()?;
    Ok(Row {
        key: TokenKey::new(provider, account),
        version,
        grant,
        sequence,
        in_flight_us: in_flight.map(|r| r.since_us),
        token,
    })
}

fn decode_token(token: serde_json::Value) -> Result<TokenSet, DecodeError> {
    let token_format = token.get("format").and_then(serde_json::Value::as_u64);
    if let Some(found) = token_format.filter(|f| *f > u64::from(TOKEN_FORMAT_VERSION)) {
        return Err(DecodeError::Newer {
            field: "token format",
            found,
            supported: u64::from(TOKEN_FORMAT_VERSION),
        });
    }
    TokenSet::deserialize(token).map_err(|e| DecodeError::from_serde("the token is invalid", &e))
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

    fn row() -> Row {
        Row {
            version: 42,
            grant: 7,
            sequence: 9,
            in_flight_us: Some(1_764_000_000_123_456),
            token: Some(token()),
            ..Row::empty(key())
        }
    }

    fn invalid_message(bytes: &[u8]) -> String {
        match decode(bytes) {
            Err(DecodeError::Invalid(message)) => message,
            other => panic!("expected an invalid file, got {other:?}"),
        }
    }

    #[test]
    fn round_trips() {
        let bytes = encode(&row());
        let back = decode(&bytes).unwrap();
        assert_eq!(back.key, key());
        assert_eq!(
            (back.version, back.grant, back.sequence, back.in_flight_us),
            (42, 7, 9, Some(1_764_000_000_123_456))
        );
        assert_eq!(back.token.unwrap().access_token().expose_secret(), SECRET);
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.contains("\"schema\": 2"), "{text}");
        assert!(text.contains("\"account\": \"26FWFL\""), "{text}");
        assert!(text.contains("\"format\": 1"), "{text}");
        assert!(text.contains("\"since_us\": 1764000000123456"), "{text}");
    }

    #[test]
    fn tombstones_and_counters_round_trip() {
        let tombstone = Row {
            token: None,
            in_flight_us: None,
            ..row()
        };
        let back = decode(&encode(&tombstone)).unwrap();
        assert!(back.token.is_none() && back.is_row());
        let counter = Row {
            sequence: 3,
            ..Row::empty(key())
        };
        let back = decode(&encode(&counter)).unwrap();
        assert!(!back.is_row());
        assert_eq!(back.sequence, 3);
        assert!(back.token.is_none());
    }

    #[test]
    fn reads_schema_1_as_a_row_without_a_record() {
        let v1 = serde_json::json!({
            "schema": 1,
            "version": 5,
            "provider": "fitbit",
            "account": "26FWFL",
            "token": serde_json::to_value(token()).unwrap(),
        });
        let back = decode(&serde_json::to_vec(&v1).unwrap()).unwrap();
        assert_eq!((back.version, back.grant, back.sequence), (5, 0, 0));
        assert!(back.in_flight_us.is_none());
        assert_eq!(back.token.unwrap().access_token().expose_secret(), SECRET);
    }

    #[test]
    fn says_what_is_wrong() {
        let good = encode(&row());
        assert!(invalid_message(b"").contains("empty"));
        assert!(invalid_message(b" \n").contains("empty"));
        assert!(invalid_message(&good[..good.len() / 2]).contains("truncated"));
        assert!(invalid_message(b"\x00\xffgarbage").contains("not valid JSON"));
        assert!(invalid_message(b"{\"token\": {}}").contains("no \"schema\""));
        assert!(invalid_message(b"{\"schema\": 0}").contains("unknown schema 0"));
        assert!(invalid_message(b"{\"schema\": 1, \"version\": 1}").contains("wrong shape"));
        assert!(invalid_message(b"{\"schema\": 2, \"version\": 1}").contains("wrong shape"));
        let mut zero: serde_json::Value = serde_json::from_slice(&good).unwrap();
        zero["version"] = serde_json::json!(0);
        assert!(invalid_message(&serde_json::to_vec(&zero).unwrap()).contains("version 0"));
    }

    #[test]
    fn refuses_a_newer_schema() {
        let mut value: serde_json::Value = serde_json::from_slice(&encode(&row())).unwrap();
        value["schema"] = serde_json::json!(3);
        let bytes = serde_json::to_vec(&value).unwrap();
        let newer = DecodeError::Newer {
            field: "schema",
            found: 3,
            supported: 2,
        };
        assert_eq!(decode(&bytes).unwrap_err(), newer);
    }

    #[test]
    fn refuses_a_newer_token_format_and_never_quotes_secrets() {
        let mut value: serde_json::Value = serde_json::from_slice(&encode(&row())).unwrap();
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
        for (outer, inner) in [
            ("version", ""),
            ("grant", ""),
            ("in_flight", ""),
            ("token", "scopes"),
            ("token", "format"),
        ] {
            let mut value: serde_json::Value = serde_json::from_slice(&encode(&row())).unwrap();
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
        let mut value: serde_json::Value = serde_json::from_slice(&encode(&row())).unwrap();
        value["account"] = serde_json::json!("a/b");
        assert!(invalid_message(&serde_json::to_vec(&value).unwrap()).contains("account"));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn every_truncation_is_refused(cut in 0usize..10_000) {
            let good = encode(&row());
            let cut = cut % good.len();
            // Cutting only the final newline leaves a complete file.
            prop_assume!(cut < good.len() - 1);
            prop_assert!(decode(&good[..cut]).is_err());
        }
    }
}
