//! The wrapper passes every part of the store and of its leases through to
//! the inner store: a refresh makes the same inner calls with encryption as
//! without it (no extra round trip), the write-ahead record, tombstones and
//! sequences are the inner store's, and a rekey keeps a refresh in flight.

mod support;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use auth_core::{
    Expect, Lease, ProviderId, Record, Result, Sequence, Stored, TokenKey, TokenSet, TokenStore,
    Version, async_trait,
};
use store_encrypted::EncryptedStore;
use store_memory::MemoryTokenStore;
use support::{WAIT, token};
use test_support::tokens::key;

type Calls = Arc<Mutex<Vec<String>>>;

fn note(calls: &Calls, call: impl Into<String>) {
    calls
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(call.into());
}

fn take(calls: &Calls) -> Vec<String> {
    std::mem::take(&mut *calls.lock().unwrap_or_else(PoisonError::into_inner))
}

/// A memory store that writes down every call it and its leases get.
#[derive(Debug, Clone, Default)]
struct Recording {
    inner: MemoryTokenStore,
    calls: Calls,
}

#[derive(Debug)]
struct RecordingLease {
    inner: Box<dyn Lease>,
    calls: Calls,
}

#[async_trait]
impl TokenStore for Recording {
    async fn load(&self, key: &TokenKey) -> Result<Option<Stored>> {
        note(&self.calls, "load");
        self.inner.load(key).await
    }

    async fn list(&self, provider: Option<&ProviderId>) -> Result<Vec<TokenKey>> {
        note(&self.calls, "list");
        self.inner.list(provider).await
    }

    async fn lock(&self, key: &TokenKey, wait: Duration) -> Result<Box<dyn Lease>> {
        note(&self.calls, "lock");
        Ok(Box::new(RecordingLease {
            inner: self.inner.lock(key, wait).await?,
            calls: Arc::clone(&self.calls),
        }))
    }

    async fn orphaned(&self, limit: usize) -> Result<Vec<TokenKey>> {
        note(&self.calls, "orphaned");
        self.inner.orphaned(limit).await
    }

    fn lease_ttl(&self) -> Option<Duration> {
        Some(Duration::from_secs(7))
    }
}

#[async_trait]
impl Lease for RecordingLease {
    fn key(&self) -> &TokenKey {
        self.inner.key()
    }

    async fn load(&self) -> Result<Option<Stored>> {
        note(&self.calls, "lease.load");
        self.inner.load().await
    }

    async fn mark_in_flight(&self, expected: Version) -> Result<Version> {
        note(&self.calls, "lease.mark_in_flight");
        self.inner.mark_in_flight(expected).await
    }

    async fn save(&self, token: &TokenSet, expected: Expect, record: Record) -> Result<Version> {
        note(&self.calls, format!("lease.save({record:?})"));
        self.inner.save(token, expected, record).await
    }

    async fn save_and_release(
        self: Box<Self>,
        token: &TokenSet,
        expected: Expect,
        record: Record,
    ) -> Result<Version> {
        note(&self.calls, format!("lease.save_and_release({record:?})"));
        self.inner.save_and_release(token, expected, record).await
    }

    async fn delete(&self, expected: Version) -> Result<Version> {
        note(&self.calls, "lease.delete");
        self.inner.delete(expected).await
    }

    async fn next_sequence(&self) -> Result<Sequence> {
        note(&self.calls, "lease.next_sequence");
        self.inner.next_sequence().await
    }

    async fn release(self: Box<Self>) -> Result<()> {
        note(&self.calls, "lease.release");
        self.inner.release().await
    }
}

/// A refresh as the manager makes it: lease, load, mark, save clearing the
/// record and releasing.
async fn refresh(store: &dyn TokenStore, k: &TokenKey, n: u32) {
    let lease = store.lock(k, WAIT).await.expect("lock");
    let row = lease.load().await.expect("load").expect("a row");
    let marked = lease.mark_in_flight(row.version).await.expect("mark");
    lease
        .save_and_release(&token(n), Expect::Version(marked), Record::Clear)
        .await
        .expect("save");
}

/// A login: lease, sequence number, save, release.
async fn login(store: &dyn TokenStore, k: &TokenKey, n: u32) {
    let lease = store.lock(k, WAIT).await.expect("lock");
    let sequence = lease.next_sequence().await.expect("sequence");
    lease
        .save(&token(n), Expect::Login(sequence), Record::Clear)
        .await
        .expect("login");
    lease.release().await.expect("release");
}

#[tokio::test]
async fn a_refresh_makes_the_same_inner_calls_with_encryption_as_without() {
    let bare = Recording::default();
    let calls = Arc::clone(&bare.calls);
    let sealed = EncryptedStore::new(Arc::new(bare.clone()), support::ring(&[("k1", 1)]));
    let (a, b) = (key("fitbit", "bare"), key("fitbit", "sealed"));
    login(&bare, &a, 1).await;
    login(&sealed, &b, 1).await;
    take(&calls);

    refresh(&bare, &a, 2).await;
    let without = take(&calls);
    refresh(&sealed, &b, 2).await;
    let with = take(&calls);
    assert_eq!(
        without,
        [
            "lock",
            "lease.load",
            "lease.mark_in_flight",
            "lease.save_and_release(Clear)"
        ]
    );
    assert_eq!(
        with, without,
        "encryption changed the inner calls of a refresh"
    );
    let stored = sealed.load(&b).await.expect("load").expect("a row");
    assert_eq!(
        auth_core::secrecy::ExposeSecret::expose_secret(
            stored.token.as_ref().expect("a token").access_token()
        ),
        support::access(2)
    );
}

#[tokio::test]
async fn every_part_reaches_the_inner_store() {
    let bare = Recording::default();
    let calls = Arc::clone(&bare.calls);
    let store = EncryptedStore::new(Arc::new(bare), support::ring(&[("k1", 1)]));
    let k = key("fitbit", "alice");
    login(&store, &k, 1).await;
    let lease = store.lock(&k, WAIT).await.expect("lock");
    let row = lease.load().await.expect("load").expect("a row");
    let v = lease.mark_in_flight(row.version).await.expect("mark");
    let v = lease
        .save(&token(2), Expect::Version(v), Record::Keep)
        .await
        .expect("keep");
    drop(lease);
    assert_eq!(store.orphaned(10).await.expect("orphaned"), vec![k.clone()]);
    let lease = store.lock(&k, WAIT).await.expect("lock");
    let tombstone = lease.delete(v).await.expect("delete");
    lease.release().await.expect("release");
    assert!(store.list(None).await.expect("list").is_empty());
    let row = store.load(&k).await.expect("load").expect("a tombstone");
    assert!(row.token.is_none() && row.version == tombstone);
    assert_eq!(store.lease_ttl(), Some(Duration::from_secs(7)));
    let calls = take(&calls);
    for part in [
        "lock",
        "lease.next_sequence",
        "lease.save(Clear)",
        "lease.release",
        "lease.load",
        "lease.mark_in_flight",
        "lease.save(Keep)",
        "orphaned",
        "lease.delete",
        "list",
        "load",
    ] {
        assert!(
            calls.iter().any(|c| c == part),
            "{part} never reached the inner store: {calls:?}"
        );
    }
}

#[tokio::test]
async fn rekey_keeps_a_refresh_in_flight() {
    let inner = Arc::new(MemoryTokenStore::new());
    let old = EncryptedStore::new(Arc::clone(&inner), support::ring(&[("k1", 1)]));
    let k = key("fitbit", "alice");
    login(&old, &k, 1).await;
    let lease = old.lock(&k, WAIT).await.expect("lock");
    let row = lease.load().await.expect("load").expect("a row");
    lease.mark_in_flight(row.version).await.expect("mark");
    drop(lease);
    let before = inner.load(&k).await.expect("load").expect("a row");
    let since = before.in_flight.expect("a record").since;

    let both = EncryptedStore::new(Arc::clone(&inner), support::ring(&[("k2", 2), ("k1", 1)]));
    let report = both.rekey(WAIT).await.expect("rekey");
    assert_eq!(report.reencrypted, 1, "{report:?}");
    let after = inner.load(&k).await.expect("load").expect("a row");
    assert!(after.version > before.version, "the rekey did not write");
    assert_eq!(
        after.in_flight.map(|r| r.since),
        Some(since),
        "the rekey dropped or moved the refresh in flight"
    );
    assert_eq!(
        after.token.expect("a token").extras()[store_encrypted::MARKER]["key"],
        "k2"
    );
    assert_eq!(both.orphaned(10).await.expect("orphaned"), vec![k]);
}
