//! The [`TokenStore`] conformance suite: one function per clause of the
//! trait's contract, each named after its clause and taking `&dyn TokenStore`.
//!
//! Every store in this workspace runs it, and so should yours. Enable the
//! `conformance` feature in your dev-dependencies and call [`run_all`]
//! (the package is `token-keeper-auth-core`; its library is `auth_core`):
//!
//! ```toml
//! [dev-dependencies]
//! token-keeper-auth-core = { version = "0.1", features = ["conformance"] }
//! ```
//!
//! ```
//! # use store_memory::MemoryTokenStore;
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let store = MemoryTokenStore::new();
//! auth_core::conformance::run_all(&store).await;
//! # }
//! ```
//!
//! Stores whose instances share state (two file stores on one directory,
//! two database stores on one database) also call [`run_all_shared`] with
//! two instances, stores that can hold undecodable data call
//! [`undecodable_never_overwritten`] with a [`Corrupter`], and stores whose
//! leases can be lost call [`lease_fences_every_write`] with a
//! [`LeaseBreaker`].
//!
//! The functions panic with a message naming the clause when the store
//! breaks it. They use their own provider ids (prefixed `conformance-`), so
//! they can run against a store that holds other data, but they leave their
//! keys behind only when they fail.

use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use secrecy::ExposeSecret;

use crate::error::StoreErrorKind;
use crate::id::{ProviderId, TokenKey};
use crate::store::{Expect, Lease, Record, Stored, TokenStore, Version};
use crate::token::TokenSet;

const ACCESS_SECRET: &str = "conformance-access-7f3a9c21e4b8d605";
const REFRESH_SECRET: &str = "conformance-refresh-1b2c3d4e5f6a7b8c";

fn key(provider: &str, account: &str) -> TokenKey {
    TokenKey::parse(&format!("conformance-{provider}"), account).expect("valid conformance key")
}

/// A token whose every field is set, for round trips.
pub fn sample_token(tag: &str) -> TokenSet {
    let issued = SystemTime::UNIX_EPOCH + Duration::from_millis(1_764_000_000_123);
    TokenSet::new(format!("{ACCESS_SECRET}-{tag}"), "Bearer", issued)
        .with_refresh_token(format!("{REFRESH_SECRET}-{tag}"))
        .with_expires_in(Duration::from_secs(28_800))
        .with_scopes(["activity", "sleep"])
        .with_extra("user_id", serde_json::json!("26FWFL"))
}

fn assert_same(got: &TokenSet, want: &TokenSet, clause: &str) {
    assert_eq!(
        got.access_token().expose_secret(),
        want.access_token().expose_secret(),
        "{clause}: access token differs"
    );
    assert_eq!(
        got.refresh_token().map(|t| t.expose_secret().to_owned()),
        want.refresh_token().map(|t| t.expose_secret().to_owned()),
        "{clause}: refresh token differs"
    );
    assert_eq!(
        got.token_type(),
        want.token_type(),
        "{clause}: token type differs"
    );
    assert_eq!(
        got.expires_at(),
        want.expires_at(),
        "{clause}: expires_at differs"
    );
    assert_eq!(
        got.issued_at(),
        want.issued_at(),
        "{clause}: issued_at differs"
    );
    assert_eq!(got.scopes(), want.scopes(), "{clause}: scopes differ");
    assert_eq!(got.extras(), want.extras(), "{clause}: extras differ");
    assert_eq!(
        got.reauthorization_required(),
        want.reauthorization_required(),
        "{clause}: reauthorization flag differs"
    );
}

const WAIT: Duration = Duration::from_secs(5);

async fn lease(store: &dyn TokenStore, k: &TokenKey, clause: &str) -> Box<dyn Lease> {
    store
        .lock(k, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{clause}: lock: {e}"))
}

/// Saves `token` over whatever `k` holds (a fenced create, or a save at the
/// stored version), clearing any record.
async fn put(store: &dyn TokenStore, k: &TokenKey, token: &TokenSet, clause: &str) -> Version {
    let lease = lease(store, k, clause).await;
    let expect = match lease
        .load()
        .await
        .unwrap_or_else(|e| panic!("{clause}: load: {e}"))
    {
        Some(row) => Expect::Version(row.version),
        None => Expect::Absent,
    };
    lease
        .save_and_release(token, expect, Record::Clear)
        .await
        .unwrap_or_else(|e| panic!("{clause}: save: {e}"))
}

async fn row(store: &dyn TokenStore, k: &TokenKey, clause: &str) -> Option<Stored> {
    store
        .load(k)
        .await
        .unwrap_or_else(|e| panic!("{clause}: load: {e}"))
}

async fn cleanup(store: &dyn TokenStore, keys: &[&TokenKey]) {
    for k in keys {
        let lease = lease(store, k, "cleanup").await;
        if let Some(row) = lease.load().await.expect("cleanup load")
            && row.token.is_some()
        {
            lease.delete(row.version).await.expect("cleanup delete");
        }
    }
}

fn assert_kind(result: crate::Result<impl std::fmt::Debug>, kind: StoreErrorKind, clause: &str) {
    match result {
        Err(e) => assert_eq!(e.store_kind(), Some(kind), "{clause}: {e}"),
        Ok(v) => panic!("{clause}: succeeded ({v:?}) where {kind} was expected"),
    }
}

/// **round_trip**: a token saved through a lease loads back equal with the
/// version the save returned, through `load` and `Lease::load`.
pub async fn round_trip(store: &dyn TokenStore) {
    let clause = "round_trip";
    let k = key("round-trip", "alice");
    let token = sample_token("rt");
    let version = put(store, &k, &token, clause).await;
    let got = row(store, &k, clause).await.expect("round_trip: missing");
    assert_eq!(got.version, version, "{clause}: version");
    assert_same(
        got.token.as_ref().expect("round_trip: no token"),
        &token,
        clause,
    );
    assert!(got.in_flight.is_none(), "{clause}: a record appeared");
    let lease = lease(store, &k, clause).await;
    let leased = lease
        .load()
        .await
        .expect("round_trip: leased load")
        .expect("missing");
    assert_eq!(leased.version, version, "{clause}: leased version");
    drop(lease);
    cleanup(store, &[&k]).await;
}

/// **missing_key**: `load` of a key never written returns `Ok(None)`.
pub async fn missing_key(store: &dyn TokenStore) {
    let k = key("missing", "nobody");
    assert!(row(store, &k, "missing_key").await.is_none(), "missing_key");
}

/// **fenced_create** and **cas_conflict**: `Expect::Absent` only over no
/// row, `Expect::Version` only at that exact version; a refused save
/// changes nothing.
pub async fn fenced_create_and_cas(store: &dyn TokenStore) {
    let clause = "fenced_create";
    let k = key("cas", "alice");
    let lease = lease(store, &k, clause).await;
    let v1 = lease
        .save(&sample_token("1"), Expect::Absent, Record::Clear)
        .await
        .expect("fenced_create: create");
    assert_kind(
        lease
            .save(&sample_token("x"), Expect::Absent, Record::Clear)
            .await,
        StoreErrorKind::Conflict,
        clause,
    );
    let clause = "cas_conflict";
    for wrong in [Version(v1.0.saturating_sub(1)), Version(v1.0 + 1)] {
        assert_kind(
            lease
                .save(&sample_token("x"), Expect::Version(wrong), Record::Clear)
                .await,
            StoreErrorKind::Conflict,
            clause,
        );
    }
    let v2 = lease
        .save(&sample_token("2"), Expect::Version(v1), Record::Clear)
        .await
        .expect("cas_conflict: save at the stored version");
    assert!(v2 > v1, "versions_grow: {v2} after {v1}");
    drop(lease);
    let got = row(store, &k, clause).await.expect("cas: missing");
    assert_same(
        got.token.as_ref().expect("token"),
        &sample_token("2"),
        clause,
    );
    cleanup(store, &[&k]).await;
}

/// **record_round_trip**: a mark sets a record on the store's clock that
/// `Record::Keep` keeps (with its `since`) and `Record::Clear` clears.
pub async fn record_round_trip(store: &dyn TokenStore) {
    let clause = "record_round_trip";
    let k = key("record", "alice");
    let v1 = put(store, &k, &sample_token("1"), clause).await;
    let lease = lease(store, &k, clause).await;
    let v2 = lease
        .mark_in_flight(v1)
        .await
        .expect("record_round_trip: mark");
    assert!(v2 > v1, "versions_grow: a mark kept the version");
    assert_kind(
        lease.mark_in_flight(v1).await,
        StoreErrorKind::Conflict,
        clause,
    );
    let marked = lease.load().await.expect("load").expect("row");
    let since = marked
        .in_flight
        .expect("record_round_trip: no record after the mark")
        .since;
    let v3 = lease
        .save(&sample_token("1"), Expect::Version(v2), Record::Keep)
        .await
        .expect("record_round_trip: keep");
    let kept = lease.load().await.expect("load").expect("row");
    assert_eq!(
        kept.in_flight.map(|r| r.since),
        Some(since),
        "{clause}: Keep lost the record"
    );
    let v4 = lease
        .mark_in_flight(v3)
        .await
        .expect("record_round_trip: mark again");
    let again = lease.load().await.expect("load").expect("row");
    assert_eq!(
        again.in_flight.map(|r| r.since),
        Some(since),
        "{clause}: a second mark moved `since`"
    );
    lease
        .save(&sample_token("2"), Expect::Version(v4), Record::Clear)
        .await
        .expect("record_round_trip: clear");
    drop(lease);
    assert!(
        row(store, &k, clause)
            .await
            .expect("row")
            .in_flight
            .is_none(),
        "{clause}: Clear kept the record"
    );
    cleanup(store, &[&k]).await;
}

/// **record_survives_holder**: a record whose holder dropped its lease
/// stays, and the key is orphaned once the lease is free, never while it
/// is held.
pub async fn record_survives_holder(store: &dyn TokenStore) {
    let clause = "record_survives_holder";
    let k = key("orphan", "alice");
    let v1 = put(store, &k, &sample_token("1"), clause).await;
    let lease = lease(store, &k, clause).await;
    lease
        .mark_in_flight(v1)
        .await
        .expect("record_survives_holder: mark");
    let listed = store.orphaned(1000).await.expect("orphaned");
    assert!(
        !listed.contains(&k),
        "{clause}: orphaned while its lease is held"
    );
    drop(lease);
    // A lease dropped is released without waiting; take and release it
    // once more so that the release has landed.
    lease_of(store, &k, clause).await;
    assert!(
        row(store, &k, clause)
            .await
            .expect("row")
            .in_flight
            .is_some(),
        "{clause}: the record is gone"
    );
    let listed = store.orphaned(1000).await.expect("orphaned");
    assert!(
        listed.contains(&k),
        "{clause}: not listed as orphaned once the lease is free"
    );
    cleanup(store, &[&k]).await;
    let listed = store.orphaned(1000).await.expect("orphaned");
    assert!(
        !listed.contains(&k),
        "tombstone: a tombstone is listed as orphaned"
    );
}

async fn lease_of(store: &dyn TokenStore, k: &TokenKey, clause: &str) {
    lease(store, k, clause)
        .await
        .release()
        .await
        .unwrap_or_else(|e| panic!("{clause}: release: {e}"));
}

/// **tombstone** and **sequence**: a delete leaves a row without a token
/// that `list` skips; a login sequenced before it is refused, one after it
/// accepted; sequences grow across calls, leases and deletes.
pub async fn tombstone_and_sequence(store: &dyn TokenStore) {
    let clause = "tombstone";
    let k = key("tombstone", "alice");
    let lease = lease(store, &k, clause).await;
    let s1 = lease.next_sequence().await.expect("sequence");
    let s2 = lease.next_sequence().await.expect("sequence");
    assert!(s2 > s1, "sequence: {s2} after {s1}");
    let v1 = lease
        .save(&sample_token("1"), Expect::Login(s2), Record::Clear)
        .await
        .expect("sequence: a login over nothing");
    assert_kind(
        lease
            .save(&sample_token("x"), Expect::Login(s1), Record::Clear)
            .await,
        StoreErrorKind::Conflict,
        "sequence",
    );
    let gone = lease.delete(v1).await.expect("tombstone: delete");
    assert!(gone > v1, "versions_grow: a delete kept the version");
    drop(lease);
    let stone = row(store, &k, clause)
        .await
        .expect("tombstone: the row is gone");
    assert!(
        stone.token.is_none(),
        "{clause}: the token survived the delete"
    );
    let listed = store.list(None).await.expect("list");
    assert!(!listed.contains(&k), "{clause}: a tombstone is listed");
    let lease = lease_again(store, &k).await;
    let s3 = lease.next_sequence().await.expect("sequence");
    assert!(s3 > s2, "sequence: {s3} after a delete is not above {s2}");
    lease
        .save(&sample_token("2"), Expect::Login(s3), Record::Clear)
        .await
        .expect("tombstone: a login sequenced after the delete");
    drop(lease);
    cleanup(store, &[&k]).await;
}

async fn lease_again(store: &dyn TokenStore, k: &TokenKey) -> Box<dyn Lease> {
    lease(store, k, "tombstone").await
}

/// **list_filtered**: `list(None)` lists every key with a token,
/// `list(Some(p))` only provider `p`'s.
pub async fn list_filtered(store: &dyn TokenStore) {
    let clause = "list_filtered";
    let a = key("list-a", "alice");
    let b = key("list-b", "bob");
    put(store, &a, &sample_token("a"), clause).await;
    put(store, &b, &sample_token("b"), clause).await;
    let all = store.list(None).await.expect("list");
    assert!(
        all.contains(&a) && all.contains(&b),
        "{clause}: list(None) misses a key"
    );
    let only = store
        .list(Some(&ProviderId::new("conformance-list-a").expect("id")))
        .await
        .expect("list");
    assert!(
        only.contains(&a) && !only.contains(&b),
        "{clause}: list(Some) is not filtered"
    );
    cleanup(store, &[&a, &b]).await;
}

/// **keys_isolated** and **hostile_ids**: keys differing in provider,
/// account or case, and hostile ids, never see each other's rows.
pub async fn keys_isolated(store: &dyn TokenStore) {
    let clause = "keys_isolated";
    let long = "x".repeat(crate::id::MAX_ID_LEN);
    let ids = [
        "alice",
        "Alice",
        "o'brien\"",
        "100%_",
        "..etc",
        "a.b.c",
        long.as_str(),
    ];
    let keys: Vec<_> = ids.iter().map(|id| key("isolated", id)).collect();
    for (i, k) in keys.iter().enumerate() {
        put(store, k, &sample_token(&i.to_string()), clause).await;
    }
    for (i, k) in keys.iter().enumerate() {
        let got = row(store, k, clause).await.expect("missing");
        assert_same(
            got.token.as_ref().expect("token"),
            &sample_token(&i.to_string()),
            clause,
        );
    }
    let refs: Vec<_> = keys.iter().collect();
    cleanup(store, &refs).await;
}

/// **lease_exclusive**, **lease_released** and **lock_timeout**.
pub async fn leases(store: &dyn TokenStore) {
    let clause = "lease_exclusive";
    let k = key("lease", "alice");
    let held = lease(store, &k, clause).await;
    let started = Instant::now();
    assert_kind(
        store.lock(&k, Duration::from_millis(50)).await,
        StoreErrorKind::LockTimeout,
        "lock_timeout",
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "lock_timeout: unbounded wait"
    );
    let other = key("lease", "bob");
    drop(lease(store, &other, "lease_exclusive: another key").await);
    drop(held);
    drop(lease(store, &k, "lease_released").await);
    let cancelled = tokio::time::timeout(Duration::from_millis(10), async {
        let held = lease(store, &k, clause).await;
        let _never = store.lock(&k, WAIT).await;
        drop(held);
    })
    .await;
    assert!(cancelled.is_err(), "{clause}: a second lease was granted");
    drop(lease(store, &k, "lease_released: after a cancelled waiter").await);
}

/// **debug_hides_secrets**: the store's and a lease's `Debug` show no
/// token.
pub async fn debug_hides_secrets(store: &dyn TokenStore) {
    let k = key("debug", "alice");
    put(store, &k, &sample_token("d"), "debug_hides_secrets").await;
    let lease = lease(store, &k, "debug_hides_secrets").await;
    for shown in [format!("{store:?}"), format!("{lease:?}")] {
        assert!(
            !shown.contains(ACCESS_SECRET) && !shown.contains(REFRESH_SECRET),
            "debug_hides_secrets: {shown}"
        );
    }
    drop(lease);
    cleanup(store, &[&k]).await;
}

/// Makes a held lease lost the way the backend can lose one (its row
/// expired, its lock file replaced), for [`lease_fences_every_write`].
#[async_trait]
pub trait LeaseBreaker: Send + Sync {
    /// Makes the lease held on `key` lost, and lets another holder take it.
    async fn break_lease(&self, key: &TokenKey);
}

/// **lease_fences_every_write**: through a lost lease, every call fails
/// with `LeaseLost` and writes nothing.
pub async fn lease_fences_every_write(store: &dyn TokenStore, breaker: &dyn LeaseBreaker) {
    let clause = "lease_fences_every_write";
    let k = key("fenced", "alice");
    let v1 = put(store, &k, &sample_token("1"), clause).await;
    let lost = lease(store, &k, clause).await;
    breaker.break_lease(&k).await;
    assert_kind(lost.load().await, StoreErrorKind::LeaseLost, clause);
    assert_kind(
        lost.mark_in_flight(v1).await,
        StoreErrorKind::LeaseLost,
        clause,
    );
    assert_kind(
        lost.save(&sample_token("x"), Expect::Version(v1), Record::Clear)
            .await,
        StoreErrorKind::LeaseLost,
        clause,
    );
    assert_kind(lost.delete(v1).await, StoreErrorKind::LeaseLost, clause);
    assert_kind(
        lost.next_sequence().await,
        StoreErrorKind::LeaseLost,
        clause,
    );
    assert_kind(
        lost.save_and_release(&sample_token("x"), Expect::Version(v1), Record::Clear)
            .await,
        StoreErrorKind::LeaseLost,
        clause,
    );
    let got = row(store, &k, clause).await.expect("row");
    assert_eq!(
        got.version, v1,
        "{clause}: a write through a lost lease landed"
    );
    cleanup(store, &[&k]).await;
}

/// Damages the stored data of one key the way the backend can be damaged,
/// for [`undecodable_never_overwritten`].
#[async_trait]
pub trait Corrupter: Send + Sync {
    /// Makes the stored data of `key` undecodable.
    async fn corrupt(&self, key: &TokenKey);
}

/// **undecodable_never_overwritten**: damaged data makes `load` fail with
/// `Corrupt`, and no save replaces it.
pub async fn undecodable_never_overwritten(store: &dyn TokenStore, corrupter: &dyn Corrupter) {
    let clause = "undecodable_never_overwritten";
    let k = key("undecodable", "alice");
    let v1 = put(store, &k, &sample_token("good"), clause).await;
    corrupter.corrupt(&k).await;
    assert_kind(store.load(&k).await, StoreErrorKind::Corrupt, clause);
    let lease = lease(store, &k, clause).await;
    for expect in [Expect::Absent, Expect::Version(v1)] {
        assert!(
            lease
                .save(&sample_token("over"), expect, Record::Clear)
                .await
                .is_err(),
            "{clause}: a save replaced damaged data"
        );
    }
    drop(lease);
    assert_kind(store.load(&k).await, StoreErrorKind::Corrupt, clause);
}

/// **concurrent_writers**, between two instances sharing state: one lease
/// at a time, and a save through one is seen by the other.
pub async fn run_all_shared(a: &dyn TokenStore, b: &dyn TokenStore) {
    let clause = "concurrent_writers";
    let k = key("shared", "alice");
    let held = lease(a, &k, clause).await;
    assert_kind(
        b.lock(&k, Duration::from_millis(50)).await,
        StoreErrorKind::LockTimeout,
        clause,
    );
    let v1 = held
        .save_and_release(&sample_token("a"), Expect::Absent, Record::Clear)
        .await
        .expect("concurrent_writers: save");
    let got = row(b, &k, clause)
        .await
        .expect("concurrent_writers: not seen by the other");
    assert_eq!(got.version, v1, "{clause}: stale version");
    cleanup(b, &[&k]).await;
}

/// Runs every clause that needs no access to the backend's raw data.
pub async fn run_all(store: &dyn TokenStore) {
    round_trip(store).await;
    missing_key(store).await;
    fenced_create_and_cas(store).await;
    record_round_trip(store).await;
    record_survives_holder(store).await;
    tombstone_and_sequence(store).await;
    list_filtered(store).await;
    keys_isolated(store).await;
    leases(store).await;
    debug_hides_secrets(store).await;
}
