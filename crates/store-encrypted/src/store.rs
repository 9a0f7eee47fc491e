//! [`EncryptedStore`]: the [`TokenStore`] contract on top of another store,
//! with the secrets of every token sealed on the way in and opened on the
//! way out.
//!
//! It must never write to the inner store while reading, never overwrite a
//! record it cannot open, and never hand the inner store a plaintext secret.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use auth_core::secrecy::{ExposeSecret as _, SecretString};
use auth_core::{
    Error, Expect, Lease, ProviderId, Record, Result, Sequence, Stored, TokenKey, TokenSet,
    TokenStore, Version,
};
use serde_json::Value;
use tracing::warn;
use zeroize::Zeroizing;

use crate::envelope::{self, ACCESS_FIELD, FORMAT, REFRESH_FIELD};
use crate::error;
use crate::key::KeyRing;

/// The name of the extra that marks a stored token as encrypted. It holds
/// `{"format": "tk1", "record": <random id of the save>, "key": <key id>,
/// "extras": [<sealed extras>]}`, in clear. Tokens saved through an
/// [`EncryptedLease`] may not use this name.
pub const MARKER: &str = "token_keeper_encryption";

/// A [`TokenStore`] that wraps another and keeps the secrets of every
/// token encrypted in it.
///
/// See the [crate documentation](crate) for what is encrypted, the
/// envelope, what it detects and what it cannot, and key rotation. Clones
/// are cheap and share the inner store and the keys.
pub struct EncryptedStore<S: ?Sized = dyn TokenStore> {
    inner: Arc<S>,
    codec: Arc<Codec>,
}

/// What seals and opens tokens: the keys and the policies. Shared by a store
/// and its leases.
#[derive(Clone)]
struct Codec {
    keys: Arc<KeyRing>,
    accept_plaintext: bool,
    secret_extras: Arc<BTreeSet<String>>,
}

impl<S: ?Sized> Clone for EncryptedStore<S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            codec: Arc::clone(&self.codec),
        }
    }
}

impl<S: ?Sized + fmt::Debug> fmt::Debug for EncryptedStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptedStore")
            .field("inner", &self.inner)
            .field("keys", &self.codec.keys)
            .field("accept_plaintext", &self.codec.accept_plaintext)
            .field("secret_extras", &self.codec.secret_extras)
            .finish_non_exhaustive()
    }
}

/// A held lease of an [`EncryptedStore`]: the inner store's lease, with
/// every part passed through to it, secrets sealed on the way in and opened
/// on the way out.
///
/// It never writes over a record it cannot open: before a write it opens
/// the record it would replace, unless it has already opened (or itself
/// written) that exact version through this lease, in which case the inner
/// store's compare-and-swap on that version is the proof, and no extra
/// read is made.
pub struct EncryptedLease {
    inner: Box<dyn Lease>,
    codec: Arc<Codec>,
    /// The version of the key's row last known to open: loaded and opened,
    /// or written through this lease.
    trusted: Mutex<Option<Version>>,
}

impl fmt::Debug for EncryptedLease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptedLease")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl EncryptedLease {
    /// The inner store's lease.
    pub fn inner(&self) -> &dyn Lease {
        self.inner.as_ref()
    }

    fn trust(&self, version: Version) {
        *self.trusted.lock().unwrap_or_else(PoisonError::into_inner) = Some(version);
    }

    fn trusted(&self) -> Option<Version> {
        *self.trusted.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Fails unless the row a write expecting `expected` would replace opens
    /// (or there is none, or it is a tombstone): a tampered record, or one
    /// sealed with a key this ring lacks, is never replaced.
    async fn refuse_unreadable(&self, expected: Expect) -> Result<()> {
        match expected {
            // The inner store refuses a create over any row.
            Expect::Absent => return Ok(()),
            Expect::Version(v) if self.trusted() == Some(v) => return Ok(()),
            Expect::Version(_) | Expect::Login(_) => {}
        }
        if let Some(row) = self.inner.load().await? {
            if let Some(token) = row.token {
                self.codec.open(self.inner.key(), token)?;
            }
            self.trust(row.version);
        }
        Ok(())
    }

    /// The inner lease's write of `token` sealed, after the check.
    async fn sealed_save(&self, token: &TokenSet, expected: Expect) -> Result<TokenSet> {
        let sealed = self.codec.seal(self.inner.key(), token)?;
        self.refuse_unreadable(expected).await?;
        Ok(sealed)
    }
}

#[async_trait]
impl Lease for EncryptedLease {
    fn key(&self) -> &TokenKey {
        self.inner.key()
    }

    async fn load(&self) -> Result<Option<Stored>> {
        let stored = self.inner.load().await?;
        let opened = self.codec.open_stored(self.inner.key(), stored)?;
        if let Some(row) = &opened {
            self.trust(row.version);
        }
        Ok(opened)
    }

    async fn mark_in_flight(&self, expected: Version) -> Result<Version> {
        self.refuse_unreadable(Expect::Version(expected)).await?;
        let version = self.inner.mark_in_flight(expected).await?;
        // The mark changes no token: what opened at `expected` opens now.
        self.trust(version);
        Ok(version)
    }

    async fn save(&self, token: &TokenSet, expected: Expect, record: Record) -> Result<Version> {
        let sealed = self.sealed_save(token, expected).await?;
        let version = self.inner.save(&sealed, expected, record).await?;
        self.trust(version);
        Ok(version)
    }

    async fn save_and_release(
        self: Box<Self>,
        token: &TokenSet,
        expected: Expect,
        record: Record,
    ) -> Result<Version> {
        match self.sealed_save(token, expected).await {
            Ok(sealed) => self.inner.save_and_release(&sealed, expected, record).await,
            Err(err) => {
                // Released whether or not the save succeeds.
                let _ = self.inner.release().await;
                Err(err)
            }
        }
    }

    async fn delete(&self, expected: Version) -> Result<Version> {
        self.refuse_unreadable(Expect::Version(expected)).await?;
        let version = self.inner.delete(expected).await?;
        self.trust(version);
        Ok(version)
    }

    async fn next_sequence(&self) -> Result<Sequence> {
        self.inner.next_sequence().await
    }

    async fn release(self: Box<Self>) -> Result<()> {
        self.inner.release().await
    }
}

/// What [`EncryptedStore::rekey`] did.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct RekeyReport {
    /// Encrypted tokens sealed again with the primary key.
    pub reencrypted: usize,
    /// Plaintext tokens now encrypted.
    pub plaintext_encrypted: usize,
    /// Plaintext tokens still in the store: refused because plain text is
    /// not accepted, or whose rewrite failed.
    pub plaintext_remaining: usize,
    /// Tokens already sealed with the primary key, left as they were.
    pub unchanged: usize,
    /// Tokens that could not be rewritten, with why (tampered records, lock
    /// timeouts); they were left as they were.
    pub failed: Vec<(TokenKey, Error)>,
}

/// A stored token, opened.
struct Opened {
    token: TokenSet,
    /// Whether anything in it was stored in clear.
    plaintext: bool,
    /// The key that sealed it, when encrypted.
    key_id: Option<String>,
}

/// The marker of an encrypted record.
struct Marker {
    record: String,
    key_id: String,
    extras: Vec<String>,
}

impl Marker {
    fn parse(key: &TokenKey, value: &Value) -> Result<Self> {
        let format = value.get("format").and_then(Value::as_str);
        match format {
            Some(FORMAT) => {}
            Some(other) if other.starts_with("tk") => {
                return Err(error::tampered(
                    key,
                    format!(
                        "it is in encryption format {other:?}, which this version does not know; \
                         if a newer version wrote it, upgrade"
                    ),
                ));
            }
            _ => return Err(error::tampered(key, "its encryption marker is damaged")),
        }
        let record = value.get("record").and_then(Value::as_str);
        let key_id = value.get("key").and_then(Value::as_str);
        let extras = match value.get("extras") {
            None => Some(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect(),
            Some(_) => None,
        };
        match (record, key_id, extras) {
            (Some(record), Some(key_id), Some(extras)) if !record.is_empty() => Ok(Self {
                record: record.to_owned(),
                key_id: key_id.to_owned(),
                extras,
            }),
            _ => Err(error::tampered(key, "its encryption marker is damaged")),
        }
    }
}

impl Codec {
    /// `token` with its secrets sealed for `key`, in a fresh save.
    fn seal(&self, key: &TokenKey, token: &TokenSet) -> Result<TokenSet> {
        if token.extras().contains_key(MARKER) {
            return Err(error::reserved_extra(key, MARKER));
        }
        let record = envelope::new_record_id();
        let sealer = self.keys.primary();
        let seal = |field: &str, plaintext: &[u8]| {
            SecretString::from(envelope::seal(sealer, key, field, &record, plaintext))
        };
        let access = seal(
            ACCESS_FIELD,
            token.access_token().expose_secret().as_bytes(),
        );
        let refresh = token
            .refresh_token()
            .map(|t| seal(REFRESH_FIELD, t.expose_secret().as_bytes()));
        let mut sealed = token
            .clone()
            .with_access_secret(access)
            .with_refresh_secret(refresh);
        let mut sealed_extras = Vec::new();
        for name in self.secret_extras.iter() {
            let Some(value) = token.extras().get(name) else {
                continue;
            };
            let text = Zeroizing::new(value.to_string());
            let envelope = envelope::seal(
                sealer,
                key,
                &envelope::field_name_extra(name),
                &record,
                text.as_bytes(),
            );
            sealed = sealed.with_extra(name.clone(), Value::String(envelope));
            sealed_extras.push(Value::String(name.clone()));
        }
        let mut marker = serde_json::Map::new();
        marker.insert("format".into(), FORMAT.into());
        marker.insert("record".into(), record.clone().into());
        marker.insert("key".into(), sealer.id.clone().into());
        if !sealed_extras.is_empty() {
            marker.insert("extras".into(), Value::Array(sealed_extras));
        }
        Ok(sealed.with_extra(MARKER, Value::Object(marker)))
    }

    /// Opens a stored token of `key`, plaintext included; the caller
    /// decides what plaintext means ([`Opened::plaintext`]).
    fn open(&self, key: &TokenKey, stored: TokenSet) -> Result<Opened> {
        let Some(marker) = stored.extras().get(MARKER) else {
            return Ok(Opened {
                token: stored,
                plaintext: true,
                key_id: None,
            });
        };
        let marker = Marker::parse(key, marker)?;
        let open = |field: &str, envelope: &str| {
            envelope::open(
                &self.keys,
                key,
                field,
                &marker.record,
                &marker.key_id,
                envelope,
            )
            .map_err(|e| error::open_failed(key, field, &self.keys, e))
        };
        let as_text = |field: &str, bytes: Zeroizing<Vec<u8>>| {
            String::from_utf8(bytes.to_vec())
                .map(SecretString::from)
                .map_err(|_| error::tampered(key, format!("the stored {field} is not text")))
        };
        let access = as_text(
            ACCESS_FIELD,
            open(ACCESS_FIELD, stored.access_token().expose_secret())?,
        )?;
        let refresh = stored
            .refresh_token()
            .map(|t| as_text(REFRESH_FIELD, open(REFRESH_FIELD, t.expose_secret())?))
            .transpose()?;
        let mut token = stored
            .clone()
            .without_extra(MARKER)
            .with_access_secret(access)
            .with_refresh_secret(refresh);
        for name in &marker.extras {
            let field = envelope::field_name_extra(name);
            let Some(envelope) = stored.extra_str(name) else {
                return Err(error::tampered(
                    key,
                    format!("the sealed {field} is missing or not a string"),
                ));
            };
            let text = open(&field, envelope)?;
            let value: Value = serde_json::from_slice(&text)
                .map_err(|_| error::tampered(key, format!("the stored {field} is not JSON")))?;
            token = token.with_extra(name.clone(), value);
        }
        let plaintext_extras = self
            .secret_extras
            .iter()
            .any(|name| stored.extras().contains_key(name) && !marker.extras.contains(name));
        Ok(Opened {
            token,
            plaintext: plaintext_extras,
            key_id: Some(marker.key_id),
        })
    }

    /// Opens what the inner store loaded, as `load` returns it: plaintext
    /// is refused unless accepted, and then warned about.
    fn open_stored(&self, key: &TokenKey, stored: Option<Stored>) -> Result<Option<Stored>> {
        let Some(mut stored) = stored else {
            return Ok(None);
        };
        let Some(token) = stored.token.take() else {
            return Ok(Some(stored));
        };
        let opened = self.open(key, token)?;
        if opened.plaintext {
            if !self.accept_plaintext {
                return Err(error::plaintext_refused(key));
            }
            warn!(
                provider = %key.provider,
                account = %key.account,
                "the token of {key} is stored in plain text; it will be encrypted on its next \
                 save (or run a rekey to encrypt every token now)"
            );
        }
        stored.token = Some(opened.token);
        Ok(Some(stored))
    }

    /// `Some(plaintext)` when the token needs sealing with the primary key.
    fn classify(&self, key: &TokenKey, stored: TokenSet) -> Result<Option<bool>> {
        let opened = self.open(key, stored)?;
        Ok(
            (opened.plaintext || opened.key_id.as_deref() != Some(self.keys.primary_id()))
                .then_some(opened.plaintext),
        )
    }
}

impl<S: TokenStore + ?Sized> EncryptedStore<S> {
    /// Wraps `inner`, sealing with the primary key of `keys`. Plaintext
    /// records are accepted (see [`accept_plaintext`](Self::accept_plaintext))
    /// and no extra is secret.
    pub fn new(inner: Arc<S>, keys: KeyRing) -> Self {
        Self {
            inner,
            codec: Arc::new(Codec {
                keys: Arc::new(keys),
                accept_plaintext: true,
                secret_extras: Arc::new(BTreeSet::new()),
            }),
        }
    }

    /// Whether tokens stored in plain text (before encryption was turned on)
    /// are read, with a warning each time, and encrypted on their next save.
    /// On by default, for the migration; turn it off once
    /// [`rekey`](Self::rekey) reports no plaintext left, so that a record
    /// replaced by a plaintext one is refused.
    #[must_use]
    pub fn accept_plaintext(mut self, accept: bool) -> Self {
        Arc::make_mut(&mut self.codec).accept_plaintext = accept;
        self
    }

    /// Extras that hold a secret and must be sealed too (for a custom
    /// provider that must keep, say, an `id_token`). Any JSON value is
    /// sealed as its JSON text. Extras are otherwise stored in clear.
    #[must_use]
    pub fn secret_extras<I, N>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = N>,
        N: Into<String>,
    {
        Arc::make_mut(&mut self.codec).secret_extras =
            Arc::new(names.into_iter().map(Into::into).collect());
        self
    }

    /// The wrapped store.
    pub fn inner(&self) -> &Arc<S> {
        &self.inner
    }

    /// The keys.
    pub fn key_ring(&self) -> &KeyRing {
        &self.codec.keys
    }

    /// [`lock`](TokenStore::lock), as the concrete lease.
    ///
    /// # Errors
    ///
    /// The inner store's, from its `lock`.
    pub async fn lease(&self, key: &TokenKey, wait: Duration) -> Result<EncryptedLease> {
        Ok(EncryptedLease {
            inner: self.inner.lock(key, wait).await?,
            codec: Arc::clone(&self.codec),
            trusted: Mutex::new(None),
        })
    }

    /// Seals every stored token with the primary key, each under its key's
    /// lease (waiting at most `lock_wait` for it), so it is safe while other
    /// processes refresh. Each rewrite keeps the key's write-ahead record as
    /// it is ([`Record::Keep`]): a refresh in flight stays in flight.
    ///
    /// It first opens every token without writing: if one names a key that
    /// is missing or wrong, it returns that
    /// [`Error::Configuration`] and has changed nothing. Then, for each
    /// token that is in plain text (when plain text is accepted) or sealed
    /// with another key than the primary, it takes the lease, loads the
    /// token again and saves it sealed with the primary key. Tokens already
    /// sealed with the primary key are left as they are. A token that fails
    /// (tampered, lease not had in time) is left as it is and listed in
    /// [`RekeyReport::failed`]; the others go on.
    ///
    /// # Errors
    ///
    /// [`Error::Configuration`] when a token needs a key the ring lacks or
    /// has wrong; the inner store's errors from `list`.
    pub async fn rekey(&self, lock_wait: Duration) -> Result<RekeyReport> {
        let mut report = RekeyReport::default();
        let mut keys = self.inner.list(None).await?;
        keys.sort();
        let mut todo = Vec::new();
        for key in keys {
            let Some(token) = self.inner.load(&key).await?.and_then(|s| s.token) else {
                continue;
            };
            match self.codec.classify(&key, token) {
                Ok(Some(true)) if !self.codec.accept_plaintext => {
                    report.plaintext_remaining += 1;
                }
                Ok(Some(plaintext)) => todo.push((key, plaintext)),
                Ok(None) => report.unchanged += 1,
                Err(e @ Error::Configuration { .. }) => return Err(e),
                Err(e) => report.failed.push((key, e)),
            }
        }
        for (key, was_plaintext) in todo {
            match self.rekey_one(&key, lock_wait).await {
                Ok(Some(true)) => report.plaintext_encrypted += 1,
                Ok(Some(false)) => report.reencrypted += 1,
                Ok(None) => report.unchanged += 1,
                Err(e) => {
                    if was_plaintext {
                        report.plaintext_remaining += 1;
                    }
                    report.failed.push((key, e));
                }
            }
        }
        Ok(report)
    }

    /// Seals one token again under its lease; `Some(was_plaintext)` when it
    /// was rewritten, `None` when someone else already did.
    async fn rekey_one(&self, key: &TokenKey, lock_wait: Duration) -> Result<Option<bool>> {
        let lease = self.lease(key, lock_wait).await?;
        // Read under the lease, fenced by the inner store.
        let Some(row) = lease.inner().load().await? else {
            return Ok(None);
        };
        let Some(token) = row.token else {
            return Ok(None);
        };
        let opened = self.codec.open(key, token)?;
        let needed =
            opened.plaintext || opened.key_id.as_deref() != Some(self.codec.keys.primary_id());
        if !needed || (opened.plaintext && !self.codec.accept_plaintext) {
            return Ok(None);
        }
        lease.trust(row.version);
        Box::new(lease)
            .save_and_release(&opened.token, Expect::Version(row.version), Record::Keep)
            .await?;
        Ok(Some(opened.plaintext))
    }
}

#[async_trait]
impl<S: TokenStore + ?Sized> TokenStore for EncryptedStore<S> {
    async fn load(&self, key: &TokenKey) -> Result<Option<Stored>> {
        let stored = self.inner.load(key).await?;
        self.codec.open_stored(key, stored)
    }

    async fn list(&self, provider: Option<&ProviderId>) -> Result<Vec<TokenKey>> {
        self.inner.list(provider).await
    }

    async fn lock(&self, key: &TokenKey, wait: Duration) -> Result<Box<dyn Lease>> {
        Ok(Box::new(self.lease(key, wait).await?))
    }

    async fn orphaned(&self, limit: usize) -> Result<Vec<TokenKey>> {
        self.inner.orphaned(limit).await
    }

    fn lease_ttl(&self) -> Option<Duration> {
        self.inner.lease_ttl()
    }
}
