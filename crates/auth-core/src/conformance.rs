//! The [`TokenStore`] conformance suite: one async function per clause of
//! the trait's contract, each named after its clause and taking
//! `&dyn TokenStore`.
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
//! use auth_core::conformance::{self, Capabilities};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let store = MemoryTokenStore::new();
//! conformance::run_all(&store, Capabilities::none()).await;
//! # }
//! ```
//!
//! # What differs between backends
//!
//! Backends differ in two ways the suite must know about, and a
//! [`Capabilities`] value tells it:
//!
//! - **Whether a lease can be lost while its holder lives** (a lease row
//!   that expires, a lock file deleted by hand). Such a store gives a
//!   [`LeaseBreaker`] that makes a held lease lost the way its backend
//!   loses one; the suite then takes the key over through another lease and
//!   checks that every part of the old lease fails with
//!   [`LeaseLost`](StoreErrorKind::LeaseLost) and writes nothing
//!   ([`lease_fences_every_write`]), and that a record under a lost lease
//!   is orphaned ([`record_survives_holder`]). A store whose leases are
//!   lost only with their holder's process gives none, and those parts
//!   pass trivially: its docs should say so.
//! - **Whether it can hold data it cannot decode** (a damaged file, a
//!   garbled row, a tampered ciphertext). Such a store gives a
//!   [`Corrupter`]; [`undecodable_never_overwritten`] then damages a key
//!   and checks that nothing replaces it. A store that cannot gives none.
//!
//! Stores whose instances share state (two file stores on one directory,
//! two database stores on one database) also call [`run_all_shared`] with
//! two instances: it runs the clauses that can span instances with the
//! writer on one and the reader, waiter or usurper on the other.
//!
//! # How it behaves
//!
//! The functions panic with a message naming the clause when the store
//! breaks it, and every failure they expect is checked for its
//! [`StoreErrorKind`]. Each call uses provider ids of its own (prefixed
//! `conformance-` and made unique per call), so the suite can run against a
//! store that holds other data, run twice on one store, or run on two
//! instances at once. What a clause writes it deletes at the end, which
//! leaves tombstones (the contract keeps them, for the sequence): `list`
//! does not show them.
//!
//! Waits are bounded and short: the suite uses real time, so run it on a
//! runtime whose clock is not paused.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;

use crate::error::{Result, StoreErrorKind};
use crate::id::{AccountId, ProviderId, TokenKey};
use crate::store::{Expect, Lease, Record, Sequence, Stored, TokenStore, Version};
use crate::token::TokenSet;

const ACCESS_SECRET: &str = "conformance-access-7f3a9c21e4b8d605";
const REFRESH_SECRET: &str = "conformance-refresh-1b2c3d4e5f6a7b8c";

/// How long the suite waits for a lease it expects to get.
const WAIT: Duration = Duration::from_secs(10);
/// How long the suite waits for a lease it expects to be held by another.
const SHORT: Duration = Duration::from_millis(150);
/// The `limit` the suite passes to `orphaned` when it looks for its keys.
const ORPHAN_LIMIT: usize = 10_000;

/// What the backend under test can do beyond the common contract: see the
/// [module docs](self). Build it with [`none`](Self::none) and the `with_`
/// methods:
///
/// ```ignore
/// let caps = Capabilities::none()
///     .with_lease_breaker(&ExpireLease(store.clone()))
///     .with_corrupter(&Truncate(store.clone()));
/// ```
#[derive(Clone, Copy, Default)]
#[non_exhaustive]
pub struct Capabilities<'a> {
    /// How a held lease is lost while its holder lives; `None` when leases
    /// are lost only with their holder's process.
    pub lease_breaker: Option<&'a dyn LeaseBreaker>,
    /// How the stored data of a key is made undecodable; `None` when the
    /// store cannot hold undecodable data.
    pub corrupter: Option<&'a dyn Corrupter>,
}

impl<'a> Capabilities<'a> {
    /// A store whose leases are lost only with their holder's process and
    /// that cannot hold undecodable data (a process-local memory store).
    pub fn none() -> Self {
        Self::default()
    }

    /// Leases of this store can be lost while their holder lives, the way
    /// `breaker` loses one.
    #[must_use]
    pub fn with_lease_breaker(mut self, breaker: &'a dyn LeaseBreaker) -> Self {
        self.lease_breaker = Some(breaker);
        self
    }

    /// This store can hold data it cannot decode, made the way `corrupter`
    /// makes it.
    #[must_use]
    pub fn with_corrupter(mut self, corrupter: &'a dyn Corrupter) -> Self {
        self.corrupter = Some(corrupter);
        self
    }
}

impl std::fmt::Debug for Capabilities<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capabilities")
            .field("lease_breaker", &self.lease_breaker.is_some())
            .field("corrupter", &self.corrupter.is_some())
            .finish()
    }
}

/// Makes a held lease lost the way the backend can lose one (its row
/// expired, its lock file deleted), for [`lease_fences_every_write`] and
/// [`record_survives_holder`].
#[async_trait]
pub trait LeaseBreaker: Send + Sync {
    /// Makes the lease held on `key` lost: its holder must no longer hold
    /// it, and a `lock` of the key must then succeed at once. It need not
    /// take the lease for anyone itself.
    async fn break_lease(&self, key: &TokenKey);
}

/// Damages the stored data of one key the way the backend can be damaged
/// (a truncated file, a garbled row, a tampered ciphertext), for
/// [`undecodable_never_overwritten`].
#[async_trait]
pub trait Corrupter: Send + Sync {
    /// Makes the stored data of `key` undecodable.
    async fn corrupt(&self, key: &TokenKey);

    /// Removes the damaged data of `key` the way a person would after
    /// looking at it (moving the file aside, deleting the row), so the
    /// suite leaves nothing damaged behind.
    async fn repair(&self, key: &TokenKey);
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

/// A token with nothing but an access token.
fn minimal_token(tag: &str) -> TokenSet {
    TokenSet::new(
        format!("{ACCESS_SECRET}-{tag}"),
        "Bearer",
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_000_000),
    )
}

/// Ids unique to one call of a clause.
struct Ids {
    clause: &'static str,
    run: String,
}

impl Ids {
    fn new(clause: &'static str) -> Self {
        static CALLS: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let call = CALLS.fetch_add(1, Ordering::Relaxed);
        Self {
            clause,
            run: format!("{:x}-{call}", nanos % (1 << 48)),
        }
    }

    fn provider(&self, name: &str) -> ProviderId {
        ProviderId::new(format!("conformance-{name}-{}", self.run)).expect("valid conformance id")
    }

    fn key_in(&self, provider: &str, account: &str) -> TokenKey {
        TokenKey::new(
            self.provider(provider),
            AccountId::new(account).expect("valid conformance account"),
        )
    }

    fn key(&self, account: &str) -> TokenKey {
        self.key_in(self.clause, account)
    }
}

/// Fails unless `result` is the store error `want`.
fn expect_kind<T>(result: Result<T>, want: StoreErrorKind, what: &str) {
    match result {
        Ok(_) => panic!("{what}: succeeded, but it must fail with {want}"),
        Err(err) => assert_eq!(
            err.store_kind(),
            Some(want),
            "{what}: must fail with {want}, failed with: {err}"
        ),
    }
}

/// Fails unless `result` is a store error of one of `kinds`.
fn expect_one_of<T>(result: Result<T>, kinds: &[StoreErrorKind], what: &str) {
    match result {
        Ok(_) => panic!("{what}: succeeded, but it must fail with one of {kinds:?}"),
        Err(err) => assert!(
            err.store_kind().is_some_and(|k| kinds.contains(&k)),
            "{what}: must fail with one of {kinds:?}, failed with: {err}"
        ),
    }
}

/// Fails unless the two tokens are equal in every field, secrets included,
/// without printing a secret.
fn assert_same(got: &TokenSet, want: &TokenSet, what: &str) {
    let got = serde_json::to_value(got).expect("a token serializes");
    let want = serde_json::to_value(want).expect("a token serializes");
    if got != want {
        let fields = |v: &serde_json::Value| -> Vec<(String, String)> {
            v.as_object()
                .map(|o| o.iter().map(|(k, v)| (k.clone(), v.to_string())).collect())
                .unwrap_or_default()
        };
        let (g, w) = (fields(&got), fields(&want));
        let differ: Vec<&str> = w
            .iter()
            .filter(|f| !g.contains(f))
            .map(|(k, _)| k.as_str())
            .chain(
                g.iter()
                    .filter(|f| !w.iter().any(|(k, _)| *k == f.0))
                    .map(|(k, _)| k.as_str()),
            )
            .collect();
        panic!("{what}: the token differs in {differ:?}");
    }
}

/// The token of a row that must hold one.
fn token_of<'s>(stored: &'s Stored, what: &str) -> &'s TokenSet {
    stored
        .token
        .as_ref()
        .unwrap_or_else(|| panic!("{what}: the row holds no token"))
}

async fn lease(store: &dyn TokenStore, key: &TokenKey, what: &str) -> Box<dyn Lease> {
    let lease = store
        .lock(key, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{what}: lock {key}: {e}"));
    assert_eq!(lease.key(), key, "{what}: the lease names another key");
    lease
}

/// The row of `key`, read without a lease; it must exist.
async fn stored(store: &dyn TokenStore, key: &TokenKey, what: &str) -> Stored {
    store
        .load(key)
        .await
        .unwrap_or_else(|e| panic!("{what}: load {key}: {e}"))
        .unwrap_or_else(|| panic!("{what}: {key} has no row"))
}

/// The row of the lease's key, read through the lease; it must exist.
async fn leased(lease: &dyn Lease, what: &str) -> Stored {
    lease
        .load()
        .await
        .unwrap_or_else(|e| panic!("{what}: load through the lease: {e}"))
        .unwrap_or_else(|| panic!("{what}: {} has no row", lease.key()))
}

/// Creates `key` with `token` through a lease of `store` (as a login does)
/// and releases the lease.
async fn create(store: &dyn TokenStore, key: &TokenKey, token: &TokenSet, what: &str) -> Version {
    let lease = lease(store, key, what).await;
    let sequence = lease
        .next_sequence()
        .await
        .unwrap_or_else(|e| panic!("{what}: next_sequence: {e}"));
    lease
        .save_and_release(token, Expect::Login(sequence), Record::Clear)
        .await
        .unwrap_or_else(|e| panic!("{what}: create {key}: {e}"))
}

/// Deletes what the clause wrote (leaving tombstones).
async fn cleanup(store: &dyn TokenStore, keys: &[&TokenKey]) {
    for key in keys {
        let lease = lease(store, key, "cleanup").await;
        if let Some(row) = lease.load().await.expect("cleanup: load")
            && row.token.is_some()
        {
            lease.delete(row.version).await.expect("cleanup: delete");
        }
        lease.release().await.expect("cleanup: release");
    }
}

/// Returns once a dropped lease of `key` is released: a backend may
/// release a dropped lease in the background, so the suite takes the
/// lease (which waits for that) and releases it.
async fn settled(store: &dyn TokenStore, key: &TokenKey, what: &str) {
    lease(store, key, what)
        .await
        .release()
        .await
        .unwrap_or_else(|e| panic!("{what}: release: {e}"));
}

/// Whether `orphaned` lists `key`.
async fn is_orphaned(store: &dyn TokenStore, key: &TokenKey, what: &str) -> bool {
    store
        .orphaned(ORPHAN_LIMIT)
        .await
        .unwrap_or_else(|e| panic!("{what}: orphaned: {e}"))
        .contains(key)
}

/// **round_trip**: a token saved through a lease loads back equal (every
/// field, secrets included) with the version the save returned, through the
/// lease and without it, by `save` and by `save_and_release`.
pub async fn round_trip(store: &dyn TokenStore) {
    round_trip_between(store, store, "round_trip").await;
}

async fn round_trip_between(a: &dyn TokenStore, b: &dyn TokenStore, clause: &str) {
    let ids = Ids::new("round-trip");
    let k = ids.key("alice");
    let full = sample_token("rt").flagged_for_reauthorization("test flag");
    let minimal = minimal_token("rt-min");

    let held = lease(a, &k, clause).await;
    let v1 = held
        .save(&full, Expect::Absent, Record::Clear)
        .await
        .unwrap_or_else(|e| panic!("{clause}: save: {e}"));
    for (row, how) in [
        (leased(held.as_ref(), clause).await, "through the lease"),
        (stored(a, &k, clause).await, "without the lease"),
    ] {
        assert_eq!(row.version, v1, "{clause}: version {how}");
        assert_same(token_of(&row, clause), &full, &format!("{clause} ({how})"));
        assert!(row.in_flight.is_none(), "{clause}: a record appeared");
    }
    held.release()
        .await
        .unwrap_or_else(|e| panic!("{clause}: release: {e}"));

    let row = stored(b, &k, clause).await;
    assert_eq!(row.version, v1, "{clause}: version on the other instance");
    assert_same(token_of(&row, clause), &full, clause);

    let held = lease(b, &k, clause).await;
    assert_eq!(leased(held.as_ref(), clause).await.version, v1);
    let v2 = held
        .save_and_release(&minimal, Expect::Version(v1), Record::Clear)
        .await
        .unwrap_or_else(|e| panic!("{clause}: save_and_release: {e}"));
    let row = stored(a, &k, clause).await;
    assert_eq!(row.version, v2, "{clause}: version after save_and_release");
    let token = token_of(&row, clause);
    assert_same(token, &minimal, &format!("{clause} (minimal token)"));
    assert!(
        token.refresh_token().is_none() && token.expires_at().is_none(),
        "{clause}: fields appeared in a minimal token"
    );
    cleanup(a, &[&k]).await;
}

/// **missing_key**: `load` of a key never written returns `Ok(None)`,
/// through a lease too, and a lease alone writes nothing.
pub async fn missing_key(store: &dyn TokenStore) {
    let clause = "missing_key";
    let ids = Ids::new("missing");
    let k = ids.key("nobody");
    let loaded = store
        .load(&k)
        .await
        .unwrap_or_else(|e| panic!("{clause}: load: {e}"));
    assert!(loaded.is_none(), "{clause}: a key never written has a row");
    let held = lease(store, &k, clause).await;
    let loaded = held
        .load()
        .await
        .unwrap_or_else(|e| panic!("{clause}: load through the lease: {e}"));
    assert!(loaded.is_none(), "{clause}: a key never written has a row");
    held.release()
        .await
        .unwrap_or_else(|e| panic!("{clause}: release: {e}"));
    let loaded = store
        .load(&k)
        .await
        .unwrap_or_else(|e| panic!("{clause}: load: {e}"));
    assert!(loaded.is_none(), "{clause}: taking a lease wrote a row");
    let listed = store
        .list(Some(&k.provider))
        .await
        .unwrap_or_else(|e| panic!("{clause}: list: {e}"));
    assert!(listed.is_empty(), "{clause}: list shows {listed:?}");
    assert!(
        !is_orphaned(store, &k, clause).await,
        "{clause}: a key never written is orphaned"
    );
}

/// **fenced_create**: `save` with [`Expect::Absent`] succeeds only if no
/// row exists (a token or a tombstone); otherwise it fails with `Conflict`
/// and changes nothing.
pub async fn fenced_create(store: &dyn TokenStore) {
    let clause = "fenced_create";
    let ids = Ids::new("fenced-create");
    let k = ids.key("alice");
    let first = sample_token("first");
    let second = sample_token("second");

    let held = lease(store, &k, clause).await;
    let v1 = held
        .save(&first, Expect::Absent, Record::Clear)
        .await
        .unwrap_or_else(|e| panic!("{clause}: create: {e}"));
    for record in [Record::Clear, Record::Keep] {
        expect_kind(
            held.save(&second, Expect::Absent, record).await,
            StoreErrorKind::Conflict,
            &format!("{clause}: a second create ({record:?})"),
        );
    }
    let row = leased(held.as_ref(), clause).await;
    assert_eq!(
        row.version, v1,
        "{clause}: a failed create changed the version"
    );
    assert_same(token_of(&row, clause), &first, clause);

    let tomb = held
        .delete(v1)
        .await
        .unwrap_or_else(|e| panic!("{clause}: delete: {e}"));
    expect_kind(
        held.save(&second, Expect::Absent, Record::Clear).await,
        StoreErrorKind::Conflict,
        &format!("{clause}: a create over a tombstone"),
    );
    let row = leased(held.as_ref(), clause).await;
    assert_eq!(row.version, tomb, "{clause}: the tombstone changed");
    assert!(
        row.token.is_none(),
        "{clause}: a create over a tombstone wrote"
    );
    held.release()
        .await
        .unwrap_or_else(|e| panic!("{clause}: release: {e}"));

    // The same through save_and_release, which releases even when it fails.
    let k2 = ids.key("bob");
    lease(store, &k2, clause)
        .await
        .save_and_release(&first, Expect::Absent, Record::Clear)
        .await
        .unwrap_or_else(|e| panic!("{clause}: create by save_and_release: {e}"));
    expect_kind(
        lease(store, &k2, clause)
            .await
            .save_and_release(&second, Expect::Absent, Record::Clear)
            .await,
        StoreErrorKind::Conflict,
        &format!("{clause}: a second create by save_and_release"),
    );
    assert_same(
        token_of(&stored(store, &k2, clause).await, clause),
        &first,
        clause,
    );
    cleanup(store, &[&k2]).await;
}

/// **cas_conflict**: `save` with [`Expect::Version`] succeeds only at that
/// exact version; older or newer versions, and a missing key, fail with
/// `Conflict` and change nothing. `mark_in_flight` and `delete` check their
/// version the same way.
pub async fn cas_conflict(store: &dyn TokenStore) {
    cas_conflict_between(store, store, "cas_conflict").await;
}

async fn cas_conflict_between(a: &dyn TokenStore, b: &dyn TokenStore, clause: &str) {
    let ids = Ids::new("cas-conflict");
    let k = ids.key("alice");
    let v1 = create(a, &k, &sample_token("v1"), clause).await;
    let second = sample_token("v2");
    let held = lease(b, &k, clause).await;
    let v2 = held
        .save(&second, Expect::Version(v1), Record::Clear)
        .await
        .unwrap_or_else(|e| panic!("{clause}: update: {e}"));
    let stale = sample_token("stale");
    let newer = Version(v2.0.saturating_add(1_000_000));
    for (expected, which) in [(v1, "an older"), (newer, "a newer")] {
        for record in [Record::Clear, Record::Keep] {
            expect_kind(
                held.save(&stale, Expect::Version(expected), record).await,
                StoreErrorKind::Conflict,
                &format!("{clause}: save at {which} version ({record:?})"),
            );
        }
        expect_kind(
            held.mark_in_flight(expected).await,
            StoreErrorKind::Conflict,
            &format!("{clause}: mark_in_flight at {which} version"),
        );
        expect_kind(
            held.delete(expected).await,
            StoreErrorKind::Conflict,
            &format!("{clause}: delete at {which} version"),
        );
    }
    let row = leased(held.as_ref(), clause).await;
    assert_eq!(
        row.version, v2,
        "{clause}: a failed write changed the version"
    );
    assert_same(token_of(&row, clause), &second, clause);
    assert!(
        row.in_flight.is_none(),
        "{clause}: a failed mark wrote a record"
    );
    held.release()
        .await
        .unwrap_or_else(|e| panic!("{clause}: release: {e}"));

    let ghost = ids.key("ghost");
    let held = lease(a, &ghost, clause).await;
    expect_kind(
        held.save(&stale, Expect::Version(v1), Record::Clear).await,
        StoreErrorKind::Conflict,
        &format!("{clause}: an update of a missing key"),
    );
    expect_kind(
        held.mark_in_flight(v1).await,
        StoreErrorKind::Conflict,
        &format!("{clause}: mark_in_flight of a missing key"),
    );
    expect_kind(
        held.delete(v1).await,
        StoreErrorKind::Conflict,
        &format!("{clause}: delete of a missing key"),
    );
    drop(held);
    assert!(
        b.load(&ghost)
            .await
            .unwrap_or_else(|e| panic!("{clause}: load: {e}"))
            .is_none(),
        "{clause}: a failed write to a missing key wrote a row"
    );
    cleanup(a, &[&k]).await;
}

/// **versions_grow**: every write (save, mark, delete) returns a version
/// greater than the one it replaced, also across a delete, and the row
/// loads at that version; `next_sequence` changes no version.
pub async fn versions_grow(store: &dyn TokenStore) {
    versions_grow_between(store, store, "versions_grow").await;
}

async fn versions_grow_between(a: &dyn TokenStore, b: &dyn TokenStore, clause: &str) {
    let ids = Ids::new("versions-grow");
    let k = ids.key("alice");
    let held = lease(a, &k, clause).await;
    let first = held
        .next_sequence()
        .await
        .unwrap_or_else(|e| panic!("{clause}: next_sequence: {e}"));
    let mut last = held
        .save(&sample_token("0"), Expect::Login(first), Record::Clear)
        .await
        .unwrap_or_else(|e| panic!("{clause}: create: {e}"));
    let step = |what: &'static str, got: Result<Version>, last: Version| -> Version {
        let got = got.unwrap_or_else(|e| panic!("{clause}: {what}: {e}"));
        assert!(
            got > last,
            "{clause}: {what} returned {got}, not above {last}"
        );
        got
    };
    for round in 0..3 {
        last = step("mark", held.mark_in_flight(last).await, last);
        let token = sample_token(&format!("keep-{round}"));
        last = step(
            "save keeping the record",
            held.save(&token, Expect::Version(last), Record::Keep).await,
            last,
        );
        let token = sample_token(&format!("clear-{round}"));
        last = step(
            "save clearing the record",
            held.save(&token, Expect::Version(last), Record::Clear)
                .await,
            last,
        );
        assert_eq!(leased(held.as_ref(), clause).await.version, last);
        held.next_sequence()
            .await
            .unwrap_or_else(|e| panic!("{clause}: next_sequence: {e}"));
        assert_eq!(
            leased(held.as_ref(), clause).await.version,
            last,
            "{clause}: next_sequence changed the version"
        );
        last = step("delete", held.delete(last).await, last);
        let sequence = held
            .next_sequence()
            .await
            .unwrap_or_else(|e| panic!("{clause}: next_sequence: {e}"));
        let token = sample_token(&format!("again-{round}"));
        last = step(
            "a login after a delete",
            held.save(&token, Expect::Login(sequence), Record::Clear)
                .await,
            last,
        );
    }
    held.release()
        .await
        .unwrap_or_else(|e| panic!("{clause}: release: {e}"));
    // The other instance goes on from there.
    let held = lease(b, &k, clause).await;
    assert_eq!(leased(held.as_ref(), clause).await.version, last);
    let tomb = step("delete", held.delete(last).await, last);
    let sequence = held
        .next_sequence()
        .await
        .unwrap_or_else(|e| panic!("{clause}: next_sequence: {e}"));
    let again = step(
        "a login after a delete",
        held.save_and_release(&sample_token("b"), Expect::Login(sequence), Record::Clear)
            .await,
        tomb,
    );
    assert_eq!(stored(a, &k, clause).await.version, again);
    cleanup(a, &[&k]).await;
}

/// **lease_exclusive**: while one [`Lease`] on a key is alive, `lock` on the
/// same key waits (and gets it only after the release); leases on other
/// keys do not.
pub async fn lease_exclusive(store: &dyn TokenStore) {
    lease_exclusive_between(store, store, "lease_exclusive").await;
}

async fn lease_exclusive_between(a: &dyn TokenStore, b: &dyn TokenStore, clause: &str) {
    let ids = Ids::new("lease-exclusive");
    let k = ids.key("alice");
    let other = ids.key("bob");
    let held = lease(a, &k, clause).await;
    expect_kind(
        b.lock(&k, SHORT).await,
        StoreErrorKind::LockTimeout,
        &format!("{clause}: a second lease on a held key"),
    );
    let beside = b
        .lock(&other, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{clause}: a lease on another key was refused: {e}"));

    let released = Arc::new(AtomicBool::new(false));
    let waiter = {
        let released = Arc::clone(&released);
        let k = k.clone();
        async move {
            let lease = b.lock(&k, WAIT).await;
            (lease, released.load(Ordering::SeqCst))
        }
    };
    let mut waiter = Box::pin(waiter);
    let early = tokio::time::timeout(SHORT, &mut waiter).await;
    assert!(
        early.is_err(),
        "{clause}: a lease on a held key did not wait"
    );
    released.store(true, Ordering::SeqCst);
    drop(held);
    let (got, after_release) = waiter.await;
    got.unwrap_or_else(|e| panic!("{clause}: the waiter never got the lease: {e}"));
    assert!(
        after_release,
        "{clause}: the waiter got the lease before its release"
    );
    drop(beside);
}

/// **lease_released**: dropping or releasing a lease lets the next waiter
/// in, `save_and_release` releases whether or not its save succeeds, and a
/// `lock` future dropped while it waits leaves nothing held.
pub async fn lease_released(store: &dyn TokenStore) {
    lease_released_between(store, store, "lease_released").await;
}

async fn lease_released_between(a: &dyn TokenStore, b: &dyn TokenStore, clause: &str) {
    let ids = Ids::new("lease-released");
    let k = ids.key("alice");

    // Dropped while another waits.
    let held = lease(a, &k, clause).await;
    let waiter = b.lock(&k, WAIT);
    let release = async move {
        tokio::task::yield_now().await;
        drop(held);
    };
    let (got, ()) = tokio::join!(waiter, release);
    let got = got.unwrap_or_else(|e| panic!("{clause}: the waiter of a dropped lease: {e}"));

    // Released, then taken at once.
    got.release()
        .await
        .unwrap_or_else(|e| panic!("{clause}: release: {e}"));
    let again = a
        .lock(&k, SHORT)
        .await
        .unwrap_or_else(|e| panic!("{clause}: a released lease is still held: {e}"));

    // save_and_release, succeeding and failing.
    let v1 = again
        .save_and_release(&sample_token("1"), Expect::Absent, Record::Clear)
        .await
        .unwrap_or_else(|e| panic!("{clause}: save_and_release: {e}"));
    let again = b
        .lock(&k, SHORT)
        .await
        .unwrap_or_else(|e| panic!("{clause}: a lease is still held after save_and_release: {e}"));
    expect_kind(
        again
            .save_and_release(
                &sample_token("2"),
                Expect::Version(Version(v1.0 + 1_000)),
                Record::Clear,
            )
            .await,
        StoreErrorKind::Conflict,
        &format!("{clause}: save_and_release at a wrong version"),
    );
    let again = a
        .lock(&k, SHORT)
        .await
        .unwrap_or_else(|e| panic!("{clause}: a failed save_and_release kept the lease: {e}"));

    // A cancelled waiter.
    let cancelled = tokio::time::timeout(SHORT, b.lock(&k, WAIT)).await;
    assert!(cancelled.is_err(), "{clause}: a waiter got a held lease");
    drop(again);
    let last = b
        .lock(&k, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{clause}: the key stayed held after a cancelled wait: {e}"));
    drop(last);
    cleanup(a, &[&k]).await;
}

/// **lock_timeout**: a `lock` that cannot be had within `wait` fails with
/// `LockTimeout`, in bounded time, with a message that says what failed.
pub async fn lock_timeout(store: &dyn TokenStore) {
    let clause = "lock_timeout";
    let ids = Ids::new("lock-timeout");
    let k = ids.key("alice");
    let held = lease(store, &k, clause).await;
    let wait = Duration::from_millis(200);
    let started = Instant::now();
    let result = store.lock(&k, wait).await;
    let took = started.elapsed();
    let err = match result {
        Ok(_) => panic!("{clause}: got a held lease"),
        Err(err) => err,
    };
    assert_eq!(
        err.store_kind(),
        Some(StoreErrorKind::LockTimeout),
        "{clause}: {err}"
    );
    assert!(
        took < wait + Duration::from_secs(5),
        "{clause}: waiting {wait:?} took {took:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("lock") || message.contains("lease"),
        "{clause}: the message does not say what failed: {message}"
    );
    drop(held);
}

/// **lease_fences_every_write**: after a takeover, every part of the old
/// lease (`load`, `mark_in_flight`, `save`, `save_and_release`, `delete`,
/// `next_sequence`) fails with `LeaseLost` and writes nothing, with a token
/// stored and without one; dropping or releasing the lost lease frees
/// nothing of the new holder's.
///
/// Without a [`LeaseBreaker`] (leases are lost only with their holder's
/// process) it checks only that every part works through a live lease.
pub async fn lease_fences_every_write(store: &dyn TokenStore, breaker: Option<&dyn LeaseBreaker>) {
    lease_fences_between(store, store, breaker, "lease_fences_every_write").await;
}

async fn lease_fences_between(
    a: &dyn TokenStore,
    b: &dyn TokenStore,
    breaker: Option<&dyn LeaseBreaker>,
    clause: &str,
) {
    let ids = Ids::new("lease-fences");
    let k = ids.key("alice");
    let t1 = sample_token("1");
    let held = lease(a, &k, clause).await;
    let sequence = held
        .next_sequence()
        .await
        .unwrap_or_else(|e| panic!("{clause}: next_sequence: {e}"));
    let v1 = held
        .save(&t1, Expect::Login(sequence), Record::Clear)
        .await
        .unwrap_or_else(|e| panic!("{clause}: save: {e}"));
    let v2 = held
        .mark_in_flight(v1)
        .await
        .unwrap_or_else(|e| panic!("{clause}: mark_in_flight: {e}"));
    let v1 = held
        .save(&t1, Expect::Version(v2), Record::Clear)
        .await
        .unwrap_or_else(|e| panic!("{clause}: save: {e}"));
    held.release()
        .await
        .unwrap_or_else(|e| panic!("{clause}: release: {e}"));
    let Some(breaker) = breaker else {
        cleanup(a, &[&k]).await;
        return;
    };

    // A token stored.
    let old = lease(a, &k, clause).await;
    assert_eq!(leased(old.as_ref(), clause).await.version, v1);
    breaker.break_lease(&k).await;
    let new = b
        .lock(&k, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{clause}: the takeover after a lost lease: {e}"));
    let lost = |what: &str| format!("{clause}: {what} through a lost lease");
    let t2 = sample_token("2");
    expect_kind(old.load().await, StoreErrorKind::LeaseLost, &lost("load"));
    expect_kind(
        old.mark_in_flight(v1).await,
        StoreErrorKind::LeaseLost,
        &lost("mark_in_flight"),
    );
    for record in [Record::Clear, Record::Keep] {
        expect_kind(
            old.save(&t2, Expect::Version(v1), record).await,
            StoreErrorKind::LeaseLost,
            &lost(&format!("save ({record:?})")),
        );
    }
    expect_kind(
        old.save(&t2, Expect::Login(Sequence(u64::MAX / 2)), Record::Clear)
            .await,
        StoreErrorKind::LeaseLost,
        &lost("a login's save"),
    );
    expect_kind(
        old.delete(v1).await,
        StoreErrorKind::LeaseLost,
        &lost("delete"),
    );
    expect_kind(
        old.next_sequence().await,
        StoreErrorKind::LeaseLost,
        &lost("next_sequence"),
    );
    expect_kind(
        old.save_and_release(&t2, Expect::Version(v1), Record::Clear)
            .await,
        StoreErrorKind::LeaseLost,
        &lost("save_and_release"),
    );
    let row = leased(new.as_ref(), clause).await;
    assert_eq!(row.version, v1, "{clause}: a lost lease wrote");
    assert_same(token_of(&row, clause), &t1, clause);
    assert!(
        row.in_flight.is_none(),
        "{clause}: a lost lease wrote a record"
    );
    expect_kind(
        a.lock(&k, SHORT).await,
        StoreErrorKind::LockTimeout,
        &format!("{clause}: the new holder's lease after the old one was released"),
    );
    let v2 = new
        .mark_in_flight(v1)
        .await
        .unwrap_or_else(|e| panic!("{clause}: the new holder's mark: {e}"));
    new.save_and_release(&t2, Expect::Version(v2), Record::Clear)
        .await
        .unwrap_or_else(|e| panic!("{clause}: the new holder's save: {e}"));

    // Nothing stored: a fenced create through a lost lease.
    let k2 = ids.key("bob");
    let old = lease(a, &k2, clause).await;
    assert!(
        old.load()
            .await
            .unwrap_or_else(|e| panic!("{clause}: load: {e}"))
            .is_none()
    );
    breaker.break_lease(&k2).await;
    let new = b
        .lock(&k2, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{clause}: the takeover after a lost lease: {e}"));
    expect_kind(
        old.save(&t2, Expect::Absent, Record::Clear).await,
        StoreErrorKind::LeaseLost,
        &lost("a create"),
    );
    expect_kind(
        old.next_sequence().await,
        StoreErrorKind::LeaseLost,
        &lost("next_sequence of a missing key"),
    );
    expect_kind(
        old.load().await,
        StoreErrorKind::LeaseLost,
        &lost("load of a missing key"),
    );
    // Whether releasing a lost lease reports an error is the store's choice;
    // it must not free the new holder's lease.
    let _ = old.release().await;
    assert!(
        new.load()
            .await
            .unwrap_or_else(|e| panic!("{clause}: the new holder's load: {e}"))
            .is_none(),
        "{clause}: a create through a lost lease wrote"
    );
    expect_kind(
        a.lock(&k2, SHORT).await,
        StoreErrorKind::LockTimeout,
        &format!("{clause}: the new holder's lease after the old one was released"),
    );
    drop(new);
    cleanup(a, &[&k]).await;
}

/// **record_round_trip**: `mark_in_flight` sets a record with `since` on the
/// store's clock (no later than the row's `read_at`), changing nothing else;
/// marking again keeps `since`; `Record::Keep` keeps the record and its
/// `since`; `Record::Clear`, a login and a delete clear it.
pub async fn record_round_trip(store: &dyn TokenStore) {
    record_round_trip_between(store, store, "record_round_trip").await;
}

async fn record_round_trip_between(a: &dyn TokenStore, b: &dyn TokenStore, clause: &str) {
    let ids = Ids::new("record-round-trip");
    let k = ids.key("alice");
    let t1 = sample_token("1");
    let v1 = create(a, &k, &t1, clause).await;
    let held = lease(a, &k, clause).await;
    let v2 = held
        .mark_in_flight(v1)
        .await
        .unwrap_or_else(|e| panic!("{clause}: mark_in_flight: {e}"));
    let row = leased(held.as_ref(), clause).await;
    assert_eq!(row.version, v2, "{clause}: the mark's version");
    assert_same(
        token_of(&row, clause),
        &t1,
        &format!("{clause} (the mark changed the token)"),
    );
    let since = row
        .in_flight
        .unwrap_or_else(|| panic!("{clause}: the mark wrote no record"))
        .since;
    assert!(
        since <= row.read_at,
        "{clause}: the record is stamped after the read ({since:?} > {:?}): not on the store's clock",
        row.read_at
    );
    assert!(row.in_flight_age().is_some());
    let other = stored(b, &k, clause).await;
    assert_eq!(
        other.in_flight.map(|r| r.since),
        Some(since),
        "{clause}: a read without the lease does not see the record"
    );

    let v3 = held
        .mark_in_flight(v2)
        .await
        .unwrap_or_else(|e| panic!("{clause}: a second mark: {e}"));
    let row = leased(held.as_ref(), clause).await;
    assert_eq!(row.version, v3);
    assert_eq!(
        row.in_flight.map(|r| r.since),
        Some(since),
        "{clause}: a second mark moved the record's since"
    );

    let cooled = t1.clone().flagged_for_reauthorization("kept");
    let v4 = held
        .save(&cooled, Expect::Version(v3), Record::Keep)
        .await
        .unwrap_or_else(|e| panic!("{clause}: save keeping the record: {e}"));
    let row = leased(held.as_ref(), clause).await;
    assert_eq!(row.version, v4);
    assert_same(token_of(&row, clause), &cooled, clause);
    assert_eq!(
        row.in_flight.map(|r| r.since),
        Some(since),
        "{clause}: Record::Keep did not keep the record"
    );

    let t2 = sample_token("2");
    let v5 = held
        .save(&t2, Expect::Version(v4), Record::Clear)
        .await
        .unwrap_or_else(|e| panic!("{clause}: save clearing the record: {e}"));
    let row = leased(held.as_ref(), clause).await;
    assert_eq!(row.version, v5);
    assert!(
        row.in_flight.is_none(),
        "{clause}: Record::Clear kept the record"
    );
    assert!(row.in_flight_age().is_none());

    // Keep over a row without a record writes none.
    let v6 = held
        .save(&t2, Expect::Version(v5), Record::Keep)
        .await
        .unwrap_or_else(|e| panic!("{clause}: save keeping no record: {e}"));
    assert!(
        leased(held.as_ref(), clause).await.in_flight.is_none(),
        "{clause}: Record::Keep wrote a record"
    );

    // A login clears it.
    held.mark_in_flight(v6)
        .await
        .unwrap_or_else(|e| panic!("{clause}: mark_in_flight: {e}"));
    let sequence = held
        .next_sequence()
        .await
        .unwrap_or_else(|e| panic!("{clause}: next_sequence: {e}"));
    let v8 = held
        .save(&sample_token("3"), Expect::Login(sequence), Record::Clear)
        .await
        .unwrap_or_else(|e| panic!("{clause}: a login's save: {e}"));
    assert!(
        leased(held.as_ref(), clause).await.in_flight.is_none(),
        "{clause}: a login kept the record"
    );

    // A delete clears it.
    let v9 = held
        .mark_in_flight(v8)
        .await
        .unwrap_or_else(|e| panic!("{clause}: mark_in_flight: {e}"));
    let tomb = held
        .delete(v9)
        .await
        .unwrap_or_else(|e| panic!("{clause}: delete: {e}"));
    let row = leased(held.as_ref(), clause).await;
    assert_eq!(row.version, tomb);
    assert!(
        row.in_flight.is_none(),
        "{clause}: a delete kept the record"
    );
    held.release()
        .await
        .unwrap_or_else(|e| panic!("{clause}: release: {e}"));

    // save_and_release keeps or clears it the same way.
    let k2 = ids.key("bob");
    let v1 = create(b, &k2, &t1, clause).await;
    let held = lease(b, &k2, clause).await;
    let v2 = held
        .mark_in_flight(v1)
        .await
        .unwrap_or_else(|e| panic!("{clause}: mark_in_flight: {e}"));
    let v3 = held
        .save_and_release(&t1, Expect::Version(v2), Record::Keep)
        .await
        .unwrap_or_else(|e| panic!("{clause}: save_and_release keeping the record: {e}"));
    assert!(
        stored(a, &k2, clause).await.in_flight.is_some(),
        "{clause}: save_and_release with Record::Keep dropped the record"
    );
    lease(a, &k2, clause)
        .await
        .save_and_release(&t2, Expect::Version(v3), Record::Clear)
        .await
        .unwrap_or_else(|e| panic!("{clause}: save_and_release clearing the record: {e}"));
    assert!(
        stored(b, &k2, clause).await.in_flight.is_none(),
        "{clause}: save_and_release with Record::Clear kept the record"
    );
    cleanup(a, &[&k2]).await;
}

/// **record_survives_holder**: a record whose holder dropped or released
/// its lease without clearing it stays, and the key is listed by
/// `orphaned` once the lease is free (or lost, with a [`LeaseBreaker`]);
/// never while a live lease holds it, and never once cleared. `orphaned`
/// keeps to its `limit`.
pub async fn record_survives_holder(store: &dyn TokenStore, breaker: Option<&dyn LeaseBreaker>) {
    record_survives_between(store, store, breaker, "record_survives_holder").await;
}

async fn record_survives_between(
    a: &dyn TokenStore,
    b: &dyn TokenStore,
    breaker: Option<&dyn LeaseBreaker>,
    clause: &str,
) {
    let ids = Ids::new("record-survives");
    let k = ids.key("alice");
    let t1 = sample_token("1");
    let v1 = create(a, &k, &t1, clause).await;
    assert!(
        !is_orphaned(b, &k, clause).await,
        "{clause}: a key without a record is orphaned"
    );
    let held = lease(a, &k, clause).await;
    let v2 = held
        .mark_in_flight(v1)
        .await
        .unwrap_or_else(|e| panic!("{clause}: mark_in_flight: {e}"));
    assert!(
        !is_orphaned(b, &k, clause).await,
        "{clause}: a record is orphaned while its live lease holds it"
    );
    drop(held);
    settled(b, &k, clause).await;
    let row = stored(b, &k, clause).await;
    assert_eq!(row.version, v2, "{clause}: dropping the lease wrote");
    assert!(
        row.in_flight.is_some(),
        "{clause}: the record went with its holder"
    );
    assert!(
        is_orphaned(b, &k, clause).await,
        "{clause}: a record whose holder dropped its lease is not orphaned"
    );

    // Taken over: not orphaned while held; released without clearing:
    // orphaned again.
    let held = lease(b, &k, clause).await;
    assert!(
        !is_orphaned(a, &k, clause).await,
        "{clause}: a record is orphaned while a live lease holds it"
    );
    assert!(leased(held.as_ref(), clause).await.in_flight.is_some());
    held.release()
        .await
        .unwrap_or_else(|e| panic!("{clause}: release: {e}"));
    assert!(
        is_orphaned(a, &k, clause).await,
        "{clause}: a record whose holder released its lease is not orphaned"
    );

    // Cleared: never orphaned again.
    lease(a, &k, clause)
        .await
        .save_and_release(&sample_token("2"), Expect::Version(v2), Record::Clear)
        .await
        .unwrap_or_else(|e| panic!("{clause}: save clearing the record: {e}"));
    assert!(
        !is_orphaned(b, &k, clause).await,
        "{clause}: a cleared record is still orphaned"
    );

    // The limit.
    let many: Vec<TokenKey> = (0..3).map(|i| ids.key(&format!("many-{i}"))).collect();
    for key in &many {
        let v = create(a, key, &t1, clause).await;
        let held = lease(a, key, clause).await;
        held.mark_in_flight(v)
            .await
            .unwrap_or_else(|e| panic!("{clause}: mark_in_flight: {e}"));
        drop(held);
        settled(a, key, clause).await;
    }
    let all = b
        .orphaned(ORPHAN_LIMIT)
        .await
        .unwrap_or_else(|e| panic!("{clause}: orphaned: {e}"));
    for key in &many {
        assert!(all.contains(key), "{clause}: {key} is not orphaned");
    }
    for limit in [0, 1, 2] {
        let some = b
            .orphaned(limit)
            .await
            .unwrap_or_else(|e| panic!("{clause}: orphaned({limit}): {e}"));
        assert_eq!(
            some.len(),
            limit,
            "{clause}: orphaned({limit}) with at least 3 orphans"
        );
    }

    // A lease lost while its holder lives leaves its record orphaned.
    let mut keys: Vec<&TokenKey> = many.iter().chain([&k]).collect();
    let lost = ids.key("lost");
    if let Some(breaker) = breaker {
        let v = create(a, &lost, &t1, clause).await;
        let held = lease(a, &lost, clause).await;
        held.mark_in_flight(v)
            .await
            .unwrap_or_else(|e| panic!("{clause}: mark_in_flight: {e}"));
        breaker.break_lease(&lost).await;
        assert!(
            is_orphaned(b, &lost, clause).await,
            "{clause}: a record under a lost lease is not orphaned"
        );
        drop(held);
        keys.push(&lost);
    }
    cleanup(a, &keys).await;
    for key in keys {
        assert!(
            !is_orphaned(b, key, clause).await,
            "{clause}: a tombstone is orphaned"
        );
    }
}

/// **tombstone**: `delete` leaves a row without a token, at a greater
/// version, with no record; `list` and `orphaned` skip it; a login
/// sequenced before the delete fails with `Conflict`, one sequenced after
/// succeeds.
pub async fn tombstone(store: &dyn TokenStore) {
    tombstone_between(store, store, "tombstone").await;
}

async fn tombstone_between(a: &dyn TokenStore, b: &dyn TokenStore, clause: &str) {
    let ids = Ids::new("tombstone");
    let k = ids.key("alice");
    let held = lease(a, &k, clause).await;
    let s1 = held
        .next_sequence()
        .await
        .unwrap_or_else(|e| panic!("{clause}: next_sequence: {e}"));
    let v1 = held
        .save(&sample_token("1"), Expect::Login(s1), Record::Clear)
        .await
        .unwrap_or_else(|e| panic!("{clause}: login: {e}"));
    let before = held
        .next_sequence()
        .await
        .unwrap_or_else(|e| panic!("{clause}: next_sequence: {e}"));
    let v2 = held
        .mark_in_flight(v1)
        .await
        .unwrap_or_else(|e| panic!("{clause}: mark_in_flight: {e}"));
    let tomb = held
        .delete(v2)
        .await
        .unwrap_or_else(|e| panic!("{clause}: delete: {e}"));
    assert!(
        tomb > v2,
        "{clause}: the tombstone's version {tomb} is not above {v2}"
    );
    let row = leased(held.as_ref(), clause).await;
    assert_eq!(row.version, tomb);
    assert!(
        row.token.is_none() && row.is_empty(),
        "{clause}: the token is still there"
    );
    assert!(
        row.in_flight.is_none(),
        "{clause}: the tombstone holds a record"
    );
    assert!(
        row.grant >= before,
        "{clause}: the tombstone's grant {} is below the sequence {before} handed out before it",
        row.grant
    );
    held.release()
        .await
        .unwrap_or_else(|e| panic!("{clause}: release: {e}"));

    let row = stored(b, &k, clause).await;
    assert!(
        row.token.is_none(),
        "{clause}: the other instance sees a token"
    );
    for listed in [b.list(Some(&k.provider)).await, b.list(None).await] {
        let listed = listed.unwrap_or_else(|e| panic!("{clause}: list: {e}"));
        assert!(!listed.contains(&k), "{clause}: list shows a tombstone");
    }
    assert!(
        !is_orphaned(b, &k, clause).await,
        "{clause}: a tombstone is orphaned"
    );

    let held = lease(b, &k, clause).await;
    for (sequence, which) in [
        (before, "handed out before the delete"),
        (s1, "of the deleted grant"),
    ] {
        expect_kind(
            held.save(
                &sample_token("late"),
                Expect::Login(sequence),
                Record::Clear,
            )
            .await,
            StoreErrorKind::Conflict,
            &format!("{clause}: a login sequenced {which}"),
        );
    }
    assert_eq!(
        leased(held.as_ref(), clause).await.version,
        tomb,
        "{clause}: a refused login wrote"
    );
    let after = held
        .next_sequence()
        .await
        .unwrap_or_else(|e| panic!("{clause}: next_sequence: {e}"));
    assert!(after > before, "{clause}: sequence {after} after {before}");
    let t3 = sample_token("3");
    let v3 = held
        .save_and_release(&t3, Expect::Login(after), Record::Clear)
        .await
        .unwrap_or_else(|e| panic!("{clause}: a login sequenced after the delete: {e}"));
    let row = stored(a, &k, clause).await;
    assert_eq!(row.version, v3);
    assert_eq!(row.grant, after, "{clause}: the login's grant");
    assert_same(token_of(&row, clause), &t3, clause);
    let listed = a
        .list(Some(&k.provider))
        .await
        .unwrap_or_else(|e| panic!("{clause}: list: {e}"));
    assert_eq!(
        listed,
        vec![k.clone()],
        "{clause}: the new login is not listed"
    );
    cleanup(a, &[&k]).await;
}

/// **sequence**: `next_sequence` grows across calls, leases, deletes and
/// instances, and changes neither the version nor the record;
/// `Expect::Login(s)` succeeds only over a grant lower than `s`, and sets
/// the grant to `s`.
pub async fn sequence(store: &dyn TokenStore) {
    sequence_between(store, store, "sequence").await;
}

async fn next_sequence(lease: &dyn Lease, clause: &str) -> Sequence {
    lease
        .next_sequence()
        .await
        .unwrap_or_else(|e| panic!("{clause}: next_sequence: {e}"))
}

async fn sequence_between(a: &dyn TokenStore, b: &dyn TokenStore, clause: &str) {
    let ids = Ids::new("sequence");
    let k = ids.key("alice");
    let held = lease(a, &k, clause).await;
    let s1 = next_sequence(held.as_ref(), clause).await;
    let s2 = next_sequence(held.as_ref(), clause).await;
    assert!(s2 > s1, "{clause}: {s2} after {s1} in one lease");
    held.release()
        .await
        .unwrap_or_else(|e| panic!("{clause}: release: {e}"));
    let listed = a
        .list(Some(&k.provider))
        .await
        .unwrap_or_else(|e| panic!("{clause}: list: {e}"));
    assert!(
        listed.is_empty(),
        "{clause}: handing out sequences listed the key"
    );

    let held = lease(b, &k, clause).await;
    let s3 = next_sequence(held.as_ref(), clause).await;
    assert!(s3 > s2, "{clause}: {s3} after {s2} across leases");
    let t = sample_token("1");
    let v1 = held
        .save(&t, Expect::Login(s3), Record::Clear)
        .await
        .unwrap_or_else(|e| panic!("{clause}: a login: {e}"));
    assert_eq!(
        leased(held.as_ref(), clause).await.grant,
        s3,
        "{clause}: the login's grant"
    );
    let v2 = held
        .mark_in_flight(v1)
        .await
        .unwrap_or_else(|e| panic!("{clause}: mark_in_flight: {e}"));
    let marked = leased(held.as_ref(), clause).await;
    let s4 = next_sequence(held.as_ref(), clause).await;
    assert!(s4 > s3, "{clause}: {s4} is not above the stored grant {s3}");
    let row = leased(held.as_ref(), clause).await;
    assert_eq!(
        row.version, v2,
        "{clause}: next_sequence changed the version"
    );
    assert_eq!(
        row.in_flight.map(|r| r.since),
        marked.in_flight.map(|r| r.since),
        "{clause}: next_sequence changed the record"
    );
    for (sequence, which) in [(s3, "equal to"), (s2, "below")] {
        expect_kind(
            held.save(&t, Expect::Login(sequence), Record::Clear).await,
            StoreErrorKind::Conflict,
            &format!("{clause}: a login {which} the grant"),
        );
    }
    let v3 = held
        .save(&t, Expect::Login(s4), Record::Clear)
        .await
        .unwrap_or_else(|e| panic!("{clause}: a login above the grant: {e}"));
    let row = leased(held.as_ref(), clause).await;
    assert_eq!(row.version, v3);
    assert_eq!(row.grant, s4, "{clause}: the login's grant");
    // Any other write keeps the grant.
    let v4 = held
        .save(&t, Expect::Version(v3), Record::Clear)
        .await
        .unwrap_or_else(|e| panic!("{clause}: save: {e}"));
    assert_eq!(
        leased(held.as_ref(), clause).await.grant,
        s4,
        "{clause}: a save at a version changed the grant"
    );
    held.delete(v4)
        .await
        .unwrap_or_else(|e| panic!("{clause}: delete: {e}"));
    let s5 = next_sequence(held.as_ref(), clause).await;
    assert!(s5 > s4, "{clause}: {s5} after {s4} across a delete");
    held.release()
        .await
        .unwrap_or_else(|e| panic!("{clause}: release: {e}"));
    let held = lease(a, &k, clause).await;
    let s6 = next_sequence(held.as_ref(), clause).await;
    assert!(s6 > s5, "{clause}: {s6} after {s5} across instances");
    drop(held);
}

/// **list_filtered**: `list(None)` returns every key holding a token;
/// `list(Some(p))` only provider `p`'s; neither shows tombstones or keys
/// that only handed out sequence numbers.
pub async fn list_filtered(store: &dyn TokenStore) {
    let clause = "list_filtered";
    let ids = Ids::new("list");
    let a1 = ids.key_in("list-a", "one");
    let a2 = ids.key_in("list-a", "two");
    let b1 = ids.key_in("list-b", "one");
    for k in [&a1, &a2, &b1] {
        create(store, k, &sample_token("l"), clause).await;
    }
    let gone = ids.key_in("list-a", "gone");
    create(store, &gone, &sample_token("g"), clause).await;
    cleanup(store, &[&gone]).await;
    let numbered = ids.key_in("list-a", "numbered");
    lease(store, &numbered, clause)
        .await
        .next_sequence()
        .await
        .unwrap_or_else(|e| panic!("{clause}: next_sequence: {e}"));

    let mut only_a = store
        .list(Some(&a1.provider))
        .await
        .unwrap_or_else(|e| panic!("{clause}: list: {e}"));
    only_a.sort();
    let mut want = vec![a1.clone(), a2.clone()];
    want.sort();
    assert_eq!(only_a, want, "{clause}: provider filter");
    let all = store
        .list(None)
        .await
        .unwrap_or_else(|e| panic!("{clause}: list(None): {e}"));
    for k in [&a1, &a2, &b1] {
        assert!(all.contains(k), "{clause}: {k} missing from list(None)");
    }
    for k in [&gone, &numbered] {
        assert!(
            !all.contains(k),
            "{clause}: {k} holds no token but is listed"
        );
    }
    let none = ids.provider("list-none");
    let listed = store
        .list(Some(&none))
        .await
        .unwrap_or_else(|e| panic!("{clause}: list: {e}"));
    assert!(
        listed.is_empty(),
        "{clause}: an unknown provider lists {listed:?}"
    );
    cleanup(store, &[&a1, &a2, &b1]).await;
}

/// **keys_isolated**: keys that differ in provider, account, or only in
/// letter case never see each other's rows, records or tombstones.
pub async fn keys_isolated(store: &dyn TokenStore) {
    let clause = "keys_isolated";
    let ids = Ids::new("isolated");
    let keys = [
        ids.key_in("isolated", "alice"),
        ids.key_in("isolated", "Alice"),
        ids.key_in("isolated", "ALICE"),
        ids.key_in("isolated-2", "alice"),
        ids.key_in("Isolated", "alice"),
        ids.key_in("isolated", "alice.json"),
        ids.key_in("isolated", ".."),
        ids.key_in("isolated", "a b%2F"),
    ];
    let mut versions = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        versions.push(create(store, k, &sample_token(&i.to_string()), clause).await);
    }
    // A record on the first, a tombstone on the second.
    let held = lease(store, &keys[0], clause).await;
    held.mark_in_flight(versions[0])
        .await
        .unwrap_or_else(|e| panic!("{clause}: mark_in_flight: {e}"));
    drop(held);
    let held = lease(store, &keys[1], clause).await;
    held.delete(versions[1])
        .await
        .unwrap_or_else(|e| panic!("{clause}: delete: {e}"));
    drop(held);
    for (i, k) in keys.iter().enumerate() {
        let row = stored(store, k, clause).await;
        assert_eq!(
            row.in_flight.is_some(),
            i == 0,
            "{clause}: the record of {k}"
        );
        if i == 1 {
            assert!(row.token.is_none(), "{clause}: {k} was deleted");
        } else {
            assert_same(
                token_of(&row, clause),
                &sample_token(&i.to_string()),
                &format!("{clause} ({k})"),
            );
        }
    }
    let refs: Vec<&TokenKey> = keys.iter().collect();
    cleanup(store, &refs).await;
}

/// **hostile_ids**: ids with quotes, `%`, `_`, dots, SQL and the longest
/// length allowed are stored apart and round trip through every operation.
/// Ids with `/`, `\`, control characters or more than
/// [`MAX_ID_LEN`](crate::MAX_ID_LEN) bytes never reach a store: [`TokenKey`]
/// refuses them, which this clause checks too.
pub async fn hostile_ids(store: &dyn TokenStore) {
    let clause = "hostile_ids";
    for bad in [
        "a/b",
        "..\\x",
        "/",
        "nul\0",
        &"x".repeat(crate::MAX_ID_LEN + 1),
    ] {
        assert!(
            TokenKey::parse("p", bad).is_err() && TokenKey::parse(bad, "a").is_err(),
            "{clause}: {bad:?} was accepted as an id"
        );
    }
    let ids = Ids::new("hostile");
    let provider = ids.provider("hostile");
    let accounts = [
        "o'brien",
        "\"quoted\"",
        "100%",
        "a_b",
        "a%b",
        "..",
        ".",
        "-rf",
        "semi;colon",
        "space name",
        "Ünïcödé-名前",
        "CaseSensitive",
        "casesensitive",
        "x'; DROP TABLE tokens; --",
    ];
    let long = "L".repeat(crate::MAX_ID_LEN);
    let keys: Vec<TokenKey> = accounts
        .iter()
        .copied()
        .chain([long.as_str()])
        .map(|a| TokenKey::new(provider.clone(), AccountId::new(a).expect("account id")))
        .collect();
    for (i, k) in keys.iter().enumerate() {
        let v = create(store, k, &sample_token(&format!("h{i}")), clause).await;
        let held = lease(store, k, clause).await;
        held.mark_in_flight(v)
            .await
            .unwrap_or_else(|e| panic!("{clause}: mark {k}: {e}"));
        drop(held);
        settled(store, k, clause).await;
    }
    let orphans = store
        .orphaned(ORPHAN_LIMIT)
        .await
        .unwrap_or_else(|e| panic!("{clause}: orphaned: {e}"));
    for (i, k) in keys.iter().enumerate() {
        let row = stored(store, k, clause).await;
        assert_same(
            token_of(&row, clause),
            &sample_token(&format!("h{i}")),
            &format!("{clause} ({k})"),
        );
        assert!(row.in_flight.is_some(), "{clause}: the record of {k}");
        assert!(orphans.contains(k), "{clause}: {k} is not orphaned");
    }
    let mut listed = store
        .list(Some(&provider))
        .await
        .unwrap_or_else(|e| panic!("{clause}: list: {e}"));
    listed.sort();
    let mut want = keys.clone();
    want.sort();
    assert_eq!(listed, want, "{clause}: list differs");
    let refs: Vec<&TokenKey> = keys.iter().collect();
    cleanup(store, &refs).await;
    let listed = store
        .list(Some(&provider))
        .await
        .unwrap_or_else(|e| panic!("{clause}: list: {e}"));
    assert!(
        listed.is_empty(),
        "{clause}: keys left after delete: {listed:?}"
    );
}

/// **concurrent_writers**: of two instances racing for one key, exactly one
/// holds the lease at a time and no update is lost; a write through one
/// that read before the other wrote fails with `Conflict`; with a
/// [`LeaseBreaker`], a write through a lease the other took over fails with
/// `LeaseLost`.
pub async fn concurrent_writers(store: &dyn TokenStore, breaker: Option<&dyn LeaseBreaker>) {
    concurrent_writers_between(store, store, breaker, "concurrent_writers").await;
}

fn count_of(token: &TokenSet) -> u64 {
    token
        .extras()
        .get("count")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0)
}

/// Takes the lease `rounds` times, each time adding one to the stored
/// count, and checks that nobody else holds the lease meanwhile.
async fn racer(
    store: &dyn TokenStore,
    k: &TokenKey,
    inside: &AtomicBool,
    who: &str,
    rounds: u64,
    clause: &str,
) {
    for _ in 0..rounds {
        let held = lease(store, k, clause).await;
        assert!(
            !inside.swap(true, Ordering::SeqCst),
            "{clause}: two instances hold the lease at once"
        );
        let row = leased(held.as_ref(), clause).await;
        let count = count_of(token_of(&row, clause));
        let next = sample_token(who).with_extra("count", serde_json::json!(count + 1));
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
        held.save(&next, Expect::Version(row.version), Record::Clear)
            .await
            .unwrap_or_else(|e| panic!("{clause}: a save under a held lease: {e}"));
        inside.store(false, Ordering::SeqCst);
        held.release()
            .await
            .unwrap_or_else(|e| panic!("{clause}: release: {e}"));
    }
}

async fn concurrent_writers_between(
    a: &dyn TokenStore,
    b: &dyn TokenStore,
    breaker: Option<&dyn LeaseBreaker>,
    clause: &str,
) {
    const ROUNDS: u64 = 8;
    let ids = Ids::new("concurrent-writers");
    let k = ids.key("alice");
    create(a, &k, &sample_token("0"), clause).await;
    let inside = AtomicBool::new(false);
    tokio::join!(
        racer(a, &k, &inside, "a", ROUNDS, clause),
        racer(b, &k, &inside, "b", ROUNDS, clause)
    );
    let row = stored(a, &k, clause).await;
    assert_eq!(
        count_of(token_of(&row, clause)),
        2 * ROUNDS,
        "{clause}: updates were lost"
    );

    // A write based on an old read fails.
    let seen = stored(a, &k, clause).await;
    lease(a, &k, clause)
        .await
        .save_and_release(
            &sample_token("a"),
            Expect::Version(seen.version),
            Record::Clear,
        )
        .await
        .unwrap_or_else(|e| panic!("{clause}: save: {e}"));
    let held = lease(b, &k, clause).await;
    expect_kind(
        held.save(
            &sample_token("b"),
            Expect::Version(seen.version),
            Record::Clear,
        )
        .await,
        StoreErrorKind::Conflict,
        &format!("{clause}: a save based on a read before the other's write"),
    );
    expect_kind(
        held.mark_in_flight(seen.version).await,
        StoreErrorKind::Conflict,
        &format!("{clause}: a mark based on a read before the other's write"),
    );
    drop(held);

    if let Some(breaker) = breaker {
        let old = lease(a, &k, clause).await;
        let row = leased(old.as_ref(), clause).await;
        breaker.break_lease(&k).await;
        let new = lease(b, &k, clause).await;
        expect_kind(
            old.save(
                &sample_token("a"),
                Expect::Version(row.version),
                Record::Clear,
            )
            .await,
            StoreErrorKind::LeaseLost,
            &format!("{clause}: a save through a lease the other took over"),
        );
        new.save_and_release(
            &sample_token("b"),
            Expect::Version(row.version),
            Record::Clear,
        )
        .await
        .unwrap_or_else(|e| panic!("{clause}: the new holder's save: {e}"));
        drop(old);
    }
    cleanup(a, &[&k]).await;
}

/// **undecodable_never_overwritten**: data the store cannot decode makes
/// `load` fail with `Corrupt`, with and without a lease, and no write
/// replaces it: a write at the stored version, a mark and a
/// `save_and_release` fail with `Corrupt`; a write that expects something
/// else fails with `Corrupt` or `Conflict`.
///
/// Without a [`Corrupter`] (the store cannot hold undecodable data) it
/// passes trivially.
pub async fn undecodable_never_overwritten(
    store: &dyn TokenStore,
    corrupter: Option<&dyn Corrupter>,
) {
    let clause = "undecodable_never_overwritten";
    let Some(corrupter) = corrupter else {
        return;
    };
    let ids = Ids::new("undecodable");
    let k = ids.key("alice");
    let v1 = create(store, &k, &sample_token("good"), clause).await;
    corrupter.corrupt(&k).await;
    expect_kind(
        store.load(&k).await,
        StoreErrorKind::Corrupt,
        &format!("{clause}: load of damaged data"),
    );
    let held = lease(store, &k, clause).await;
    expect_kind(
        held.load().await,
        StoreErrorKind::Corrupt,
        &format!("{clause}: load of damaged data through a lease"),
    );
    let over = sample_token("over");
    for record in [Record::Clear, Record::Keep] {
        expect_kind(
            held.save(&over, Expect::Version(v1), record).await,
            StoreErrorKind::Corrupt,
            &format!("{clause}: save at the stored version ({record:?})"),
        );
    }
    expect_kind(
        held.mark_in_flight(v1).await,
        StoreErrorKind::Corrupt,
        &format!("{clause}: mark_in_flight of damaged data"),
    );
    let either = [StoreErrorKind::Corrupt, StoreErrorKind::Conflict];
    for (expected, what) in [
        (Expect::Absent, "a create"),
        (
            Expect::Version(Version(v1.0 + 1)),
            "save at another version",
        ),
        (Expect::Login(Sequence(u64::MAX / 2)), "a login"),
    ] {
        expect_one_of(
            held.save(&over, expected, Record::Clear).await,
            &either,
            &format!("{clause}: {what} over damaged data"),
        );
    }
    expect_one_of(
        held.delete(v1).await,
        &either,
        &format!("{clause}: delete of damaged data"),
    );
    expect_kind(
        held.save_and_release(&over, Expect::Version(v1), Record::Clear)
            .await,
        StoreErrorKind::Corrupt,
        &format!("{clause}: save_and_release over damaged data"),
    );
    expect_kind(
        store.load(&k).await,
        StoreErrorKind::Corrupt,
        &format!("{clause}: the damaged data was replaced; load"),
    );
    corrupter.repair(&k).await;
    cleanup(store, &[&k]).await;
}

/// **debug_hides_secrets**: the store's, the lease's and a row's `Debug`
/// show no token.
pub async fn debug_hides_secrets(store: &dyn TokenStore) {
    let clause = "debug_hides_secrets";
    let ids = Ids::new("debug");
    let k = ids.key("alice");
    create(store, &k, &sample_token("dbg"), clause).await;
    let held = lease(store, &k, clause).await;
    let row = leased(held.as_ref(), clause).await;
    let text = format!("{store:?} {held:?} {row:?}");
    assert!(!text.contains(ACCESS_SECRET), "{clause}: {text}");
    assert!(!text.contains(REFRESH_SECRET), "{clause}: {text}");
    drop(held);
    cleanup(store, &[&k]).await;
}

fn require_breaker(store: &dyn TokenStore, caps: Capabilities<'_>) {
    if let Some(ttl) = store.lease_ttl() {
        assert!(
            caps.lease_breaker.is_some(),
            "the store's leases expire (lease_ttl {ttl:?}), so they can be lost while their \
             holder lives: pass a LeaseBreaker in the Capabilities (one that expires a held \
             lease) so that the fencing clauses are tested"
        );
    }
}

/// Runs every clause on one store, in contract order. `caps` says what the
/// backend can do beyond the common contract (see the [module docs](self)).
///
/// A store whose leases expire ([`lease_ttl`](TokenStore::lease_ttl) is
/// `Some`) can lose a lease while its holder lives, so it must give a
/// [`LeaseBreaker`]: without one this panics rather than pass the fencing
/// clauses trivially.
pub async fn run_all(store: &dyn TokenStore, caps: Capabilities<'_>) {
    require_breaker(store, caps);
    round_trip(store).await;
    missing_key(store).await;
    fenced_create(store).await;
    cas_conflict(store).await;
    versions_grow(store).await;
    lease_exclusive(store).await;
    lease_released(store).await;
    lock_timeout(store).await;
    lease_fences_every_write(store, caps.lease_breaker).await;
    record_round_trip(store).await;
    record_survives_holder(store, caps.lease_breaker).await;
    tombstone(store).await;
    sequence(store).await;
    list_filtered(store).await;
    keys_isolated(store).await;
    hostile_ids(store).await;
    concurrent_writers(store, caps.lease_breaker).await;
    undecodable_never_overwritten(store, caps.corrupter).await;
    debug_hides_secrets(store).await;
}

/// Runs the clauses that can span two instances sharing state, with the
/// writer on one and the reader, waiter or usurper on the other, both ways
/// round: a save through one loads through the other, a lease through one
/// excludes the other, versions and sequences keep growing across them,
/// records written through one are orphaned and cleared through the other,
/// and a takeover through one fences the other.
pub async fn run_all_shared(a: &dyn TokenStore, b: &dyn TokenStore, caps: Capabilities<'_>) {
    require_breaker(a, caps);
    for (x, y, name) in [(a, b, "shared (a, b)"), (b, a, "shared (b, a)")] {
        round_trip_between(x, y, &format!("{name} round_trip")).await;
        cas_conflict_between(x, y, &format!("{name} cas_conflict")).await;
        versions_grow_between(x, y, &format!("{name} versions_grow")).await;
        lease_exclusive_between(x, y, &format!("{name} lease_exclusive")).await;
        lease_released_between(x, y, &format!("{name} lease_released")).await;
        lease_fences_between(
            x,
            y,
            caps.lease_breaker,
            &format!("{name} lease_fences_every_write"),
        )
        .await;
        record_round_trip_between(x, y, &format!("{name} record_round_trip")).await;
        record_survives_between(
            x,
            y,
            caps.lease_breaker,
            &format!("{name} record_survives_holder"),
        )
        .await;
        tombstone_between(x, y, &format!("{name} tombstone")).await;
        sequence_between(x, y, &format!("{name} sequence")).await;
        concurrent_writers_between(
            x,
            y,
            caps.lease_breaker,
            &format!("{name} concurrent_writers"),
        )
        .await;
    }
}
