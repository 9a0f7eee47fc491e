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
//! [`undecodable_never_overwritten`] with a [`Corrupter`] that damages a
//! key's stored data the way their backend can be damaged, and stores whose
//! leases can be lost call [`load_leased_lease_lost`] with a
//! [`LeaseBreaker`] that makes a held lease lost the way their backend can
//! lose one.
//!
//! The functions panic with a message naming the clause when the store
//! breaks it. They use their own provider ids (prefixed `conformance-`), so
//! they can run against a store that holds other data, but they leave their
//! keys behind only when they fail.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use secrecy::ExposeSecret;

use crate::error::StoreErrorKind;
use crate::id::{ProviderId, TokenKey};
use crate::store::TokenStore;
use crate::store::Version;
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

async fn cleanup(store: &dyn TokenStore, keys: &[&TokenKey]) {
    for k in keys {
        store.delete(k).await.expect("cleanup delete");
    }
}

/// A saved token loads back equal, with the version `save` returned.
pub async fn round_trip(store: &dyn TokenStore) {
    let k = key("round-trip", "alice");
    let token = sample_token("rt").flagged_for_reauthorization("test flag");
    let version = store
        .save(&k, &token, None)
        .await
        .expect("round_trip: save");
    let loaded = store
        .load(&k)
        .await
        .expect("round_trip: load")
        .expect("round_trip: saved token is missing");
    assert_eq!(loaded.version, version, "round_trip: version differs");
    assert_same(&loaded.value, &token, "round_trip");
    cleanup(store, &[&k]).await;
}

/// Loading a key never saved gives `None`.
pub async fn missing_key(store: &dyn TokenStore) {
    let k = key("missing", "nobody");
    let loaded = store.load(&k).await.expect("missing_key: load");
    assert!(
        loaded.is_none(),
        "missing_key: got a token for a key never saved"
    );
}

/// `save` with `expected = None` only creates.
pub async fn create_only(store: &dyn TokenStore) {
    let k = key("create-only", "alice");
    let first = sample_token("first");
    store
        .save(&k, &first, None)
        .await
        .expect("create_only: first save");
    let err = store
        .save(&k, &sample_token("second"), None)
        .await
        .expect_err("create_only: a second create-only save succeeded");
    assert_eq!(
        err.store_kind(),
        Some(StoreErrorKind::Conflict),
        "create_only: {err}"
    );
    let loaded = store
        .load(&k)
        .await
        .expect("create_only: load")
        .expect("create_only: token gone");
    assert_same(
        &loaded.value,
        &first,
        "create_only (failed save changed the token)",
    );
    cleanup(store, &[&k]).await;
}

/// `save` with a stale expected version fails with `Conflict` and changes nothing.
pub async fn cas_conflict(store: &dyn TokenStore) {
    let k = key("cas-conflict", "alice");
    let v1 = store
        .save(&k, &sample_token("v1"), None)
        .await
        .expect("cas_conflict: create");
    let second = sample_token("v2");
    store
        .save(&k, &second, Some(v1))
        .await
        .expect("cas_conflict: update");
    let err = store
        .save(&k, &sample_token("stale"), Some(v1))
        .await
        .expect_err("cas_conflict: a save with a stale version succeeded");
    assert_eq!(
        err.store_kind(),
        Some(StoreErrorKind::Conflict),
        "cas_conflict: {err}"
    );
    let loaded = store
        .load(&k)
        .await
        .expect("cas_conflict: load")
        .expect("cas_conflict: token gone");
    assert_same(
        &loaded.value,
        &second,
        "cas_conflict (failed save changed the token)",
    );
    let ghost = key("cas-conflict", "ghost");
    let err = store
        .save(&ghost, &sample_token("ghost"), Some(v1))
        .await
        .expect_err("cas_conflict: an update of a missing key succeeded");
    assert_eq!(
        err.store_kind(),
        Some(StoreErrorKind::Conflict),
        "cas_conflict: {err}"
    );
    assert!(
        store
            .load(&ghost)
            .await
            .expect("cas_conflict: load ghost")
            .is_none()
    );
    cleanup(store, &[&k]).await;
}

/// A successful overwrite returns a greater version.
pub async fn overwrite_bumps_version(store: &dyn TokenStore) {
    let k = key("overwrite", "alice");
    let mut version = store
        .save(&k, &sample_token("0"), None)
        .await
        .expect("overwrite: create");
    for i in 1..5 {
        let next = store
            .save(&k, &sample_token(&i.to_string()), Some(version))
            .await
            .expect("overwrite_bumps_version: save");
        assert!(
            next > version,
            "overwrite_bumps_version: {next} is not greater than {version}"
        );
        version = next;
    }
    let loaded = store
        .load(&k)
        .await
        .expect("overwrite: load")
        .expect("overwrite: gone");
    assert_eq!(
        loaded.version, version,
        "overwrite_bumps_version: loaded version"
    );
    assert_same(&loaded.value, &sample_token("4"), "overwrite_bumps_version");
    cleanup(store, &[&k]).await;
}

/// A key deleted and created again never reuses a version.
pub async fn versions_survive_delete(store: &dyn TokenStore) {
    let k = key("versions-survive-delete", "alice");
    let mut highest = store
        .save(&k, &sample_token("0"), None)
        .await
        .expect("versions_survive_delete: create");
    highest = store
        .save(&k, &sample_token("1"), Some(highest))
        .await
        .expect("versions_survive_delete: update");
    for round in 0..3 {
        assert!(
            store
                .delete(&k)
                .await
                .expect("versions_survive_delete: delete")
        );
        let again = store
            .save(&k, &sample_token(&format!("again-{round}")), None)
            .await
            .expect("versions_survive_delete: re-create");
        assert!(
            again > highest,
            "versions_survive_delete: {again} after {highest}"
        );
        let err = store
            .save(&k, &sample_token("stale"), Some(highest))
            .await
            .expect_err("versions_survive_delete: a stale version won");
        assert_eq!(
            err.store_kind(),
            Some(StoreErrorKind::Conflict),
            "versions_survive_delete: {err}"
        );
        highest = again;
    }
    cleanup(store, &[&k]).await;
}

/// `delete` removes the key and says so.
pub async fn delete(store: &dyn TokenStore) {
    let k = key("delete", "alice");
    store
        .save(&k, &sample_token("d"), None)
        .await
        .expect("delete: save");
    assert!(
        store.delete(&k).await.expect("delete: delete"),
        "delete: returned false"
    );
    assert!(
        store.load(&k).await.expect("delete: load").is_none(),
        "delete: token still there"
    );
    assert!(
        !store
            .list(Some(&k.provider))
            .await
            .expect("delete: list")
            .contains(&k),
        "delete: key still listed"
    );
    store
        .save(&k, &sample_token("again"), None)
        .await
        .expect("delete: a deleted key can be created again");
    cleanup(store, &[&k]).await;
}

/// `delete` of an absent key returns `false`.
pub async fn delete_missing(store: &dyn TokenStore) {
    let k = key("delete-missing", "nobody");
    assert!(
        !store.delete(&k).await.expect("delete_missing: delete"),
        "delete_missing: returned true"
    );
}

/// `list` returns all keys, or one provider's.
pub async fn list_filtered(store: &dyn TokenStore) {
    let a1 = key("list-a", "one");
    let a2 = key("list-a", "two");
    let b1 = key("list-b", "one");
    for k in [&a1, &a2, &b1] {
        store
            .save(k, &sample_token("l"), None)
            .await
            .expect("list_filtered: save");
    }
    let mut only_a = store
        .list(Some(&a1.provider))
        .await
        .expect("list_filtered: list a");
    only_a.sort();
    assert_eq!(
        only_a,
        vec![a1.clone(), a2.clone()],
        "list_filtered: provider filter"
    );
    let all = store.list(None).await.expect("list_filtered: list all");
    for k in [&a1, &a2, &b1] {
        assert!(
            all.contains(k),
            "list_filtered: {k} missing from list(None)"
        );
    }
    let none = ProviderId::new("conformance-list-none").expect("valid id");
    assert!(
        store
            .list(Some(&none))
            .await
            .expect("list_filtered: list empty")
            .is_empty()
    );
    cleanup(store, &[&a1, &a2, &b1]).await;
}

/// Keys differing in provider, account or only in case stay apart.
pub async fn keys_isolated(store: &dyn TokenStore) {
    let keys = [
        key("isolated", "alice"),
        key("isolated", "Alice"),
        key("isolated", "ALICE"),
        key("isolated-2", "alice"),
        key("Isolated", "alice"),
        key("isolated", "alice.json"),
        key("isolated", ".."),
        key("isolated", "a b%2F"),
    ];
    for (i, k) in keys.iter().enumerate() {
        store
            .save(k, &sample_token(&i.to_string()), None)
            .await
            .expect("keys_isolated: save");
    }
    for (i, k) in keys.iter().enumerate() {
        let loaded = store
            .load(k)
            .await
            .expect("keys_isolated: load")
            .expect("keys_isolated: missing");
        assert_same(
            &loaded.value,
            &sample_token(&i.to_string()),
            &format!("keys_isolated ({k})"),
        );
    }
    let refs: Vec<&TokenKey> = keys.iter().collect();
    cleanup(store, &refs).await;
}

/// While a lock is held, the same key cannot be locked; other keys can.
pub async fn lock_exclusive(store: &dyn TokenStore) {
    let k = key("lock-exclusive", "alice");
    let other = key("lock-exclusive", "bob");
    let held = store
        .lock(&k, Duration::from_secs(5))
        .await
        .expect("lock_exclusive: first lock");
    assert_eq!(held.key(), &k, "lock_exclusive: lock names another key");
    let err = store
        .lock(&k, Duration::from_millis(100))
        .await
        .expect_err("lock_exclusive: the same key was locked twice");
    assert_eq!(
        err.store_kind(),
        Some(StoreErrorKind::LockTimeout),
        "lock_exclusive: {err}"
    );
    let _other = store
        .lock(&other, Duration::from_millis(100))
        .await
        .expect("lock_exclusive: a lock on another key was refused");
    drop(held);
}

/// Dropping a lock lets a waiter in.
pub async fn lock_released_on_drop(store: &dyn TokenStore) {
    let k = key("lock-drop", "alice");
    let held = store
        .lock(&k, Duration::from_secs(5))
        .await
        .expect("lock_released_on_drop: first lock");
    let waiter = store.lock(&k, Duration::from_secs(10));
    let release = async move {
        tokio::task::yield_now().await;
        drop(held);
    };
    let (got, ()) = tokio::join!(waiter, release);
    got.expect("lock_released_on_drop: the waiter never got the lock");
    drop(
        store
            .lock(&k, Duration::from_secs(1))
            .await
            .expect("lock_released_on_drop: relock"),
    );
}

/// A lock that cannot be had fails with `LockTimeout` in bounded time.
pub async fn lock_timeout(store: &dyn TokenStore) {
    let k = key("lock-timeout", "alice");
    let _held = store
        .lock(&k, Duration::from_secs(5))
        .await
        .expect("lock_timeout: first lock");
    let wait = Duration::from_millis(200);
    let started = Instant::now();
    let err = store
        .lock(&k, wait)
        .await
        .expect_err("lock_timeout: got a held lock");
    let took = started.elapsed();
    assert_eq!(
        err.store_kind(),
        Some(StoreErrorKind::LockTimeout),
        "lock_timeout: {err}"
    );
    assert!(
        took < wait + Duration::from_secs(5),
        "lock_timeout: waiting {wait:?} took {took:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("lock"),
        "lock_timeout: the message does not say what failed: {message}"
    );
}

/// Of many concurrent saves with the same expected version, exactly one wins.
pub async fn concurrent_cas(store: &dyn TokenStore) {
    let k = key("concurrent-cas", "alice");
    let v1 = store
        .save(&k, &sample_token("base"), None)
        .await
        .expect("concurrent_cas: create");
    let tokens: Vec<TokenSet> = (0..16)
        .map(|i| sample_token(&format!("racer-{i}")))
        .collect();
    let results =
        futures::future::join_all(tokens.iter().map(|t| store.save(&k, t, Some(v1)))).await;
    let winners: Vec<usize> = results
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.is_ok().then_some(i))
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "concurrent_cas: {} saves won",
        winners.len()
    );
    for r in results.iter().filter(|r| r.is_err()) {
        let err = r.as_ref().expect_err("filtered");
        assert_eq!(
            err.store_kind(),
            Some(StoreErrorKind::Conflict),
            "concurrent_cas: {err}"
        );
    }
    let loaded = store
        .load(&k)
        .await
        .expect("concurrent_cas: load")
        .expect("concurrent_cas: gone");
    assert_same(
        &loaded.value,
        &tokens[winners[0]],
        "concurrent_cas (stored token is not the winner's)",
    );
    cleanup(store, &[&k]).await;
}

/// The store's `Debug` shows no secret, even with tokens stored.
pub async fn debug_hides_secrets(store: &dyn TokenStore) {
    let k = key("debug", "alice");
    store
        .save(&k, &sample_token("dbg"), None)
        .await
        .expect("debug_hides_secrets: save");
    let _ = store.load(&k).await.expect("debug_hides_secrets: load");
    let text = format!("{store:?}");
    assert!(!text.contains(ACCESS_SECRET), "debug_hides_secrets: {text}");
    assert!(
        !text.contains(REFRESH_SECRET),
        "debug_hides_secrets: {text}"
    );
    cleanup(store, &[&k]).await;
}

/// A token with nothing but an access token round trips.
pub async fn minimal_round_trip(store: &dyn TokenStore) {
    let k = key("minimal", "alice");
    let token = TokenSet::new(
        format!("{ACCESS_SECRET}-min"),
        "Bearer",
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_000_000),
    );
    let version = store
        .save(&k, &token, None)
        .await
        .expect("minimal_round_trip: save");
    let loaded = store
        .load(&k)
        .await
        .expect("minimal_round_trip: load")
        .expect("minimal_round_trip: saved token is missing");
    assert_eq!(
        loaded.version, version,
        "minimal_round_trip: version differs"
    );
    assert_same(&loaded.value, &token, "minimal_round_trip");
    assert!(
        loaded.value.refresh_token().is_none() && loaded.value.expires_at().is_none(),
        "minimal_round_trip: fields appeared"
    );
    cleanup(store, &[&k]).await;
}

/// CAS with an expected version newer than the stored one is a conflict.
pub async fn cas_expected_newer(store: &dyn TokenStore) {
    let k = key("cas-newer", "alice");
    let v1 = store
        .save(&k, &sample_token("a"), None)
        .await
        .expect("cas_expected_newer: create");
    let err = store
        .save(&k, &sample_token("b"), Some(Version(v1.0 + 1_000_000)))
        .await
        .expect_err("cas_expected_newer: a save with a newer expected version succeeded");
    assert_eq!(
        err.store_kind(),
        Some(StoreErrorKind::Conflict),
        "cas_expected_newer: {err}"
    );
    let loaded = store
        .load(&k)
        .await
        .expect("cas_expected_newer: load")
        .expect("cas_expected_newer: gone");
    assert_eq!(loaded.version, v1, "cas_expected_newer: version changed");
    assert_same(&loaded.value, &sample_token("a"), "cas_expected_newer");
    cleanup(store, &[&k]).await;
}

/// Ids that are awkward for files, SQL and URLs are stored apart and round
/// trip through every operation. (Ids with `/`, `\`, control characters or
/// more than [`MAX_ID_LEN`](crate::MAX_ID_LEN) bytes never reach a store:
/// [`TokenKey`] refuses them.)
pub async fn hostile_ids(store: &dyn TokenStore) {
    let provider = ProviderId::new("conformance-hostile").expect("provider id");
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
    let mut keys: Vec<TokenKey> = accounts
        .iter()
        .map(|a| {
            TokenKey::new(
                provider.clone(),
                crate::AccountId::new(a).expect("account id"),
            )
        })
        .collect();
    keys.push(TokenKey::new(
        provider.clone(),
        crate::AccountId::new(&long).expect("long account id"),
    ));
    for (i, k) in keys.iter().enumerate() {
        let _lease = store
            .lock(k, Duration::from_secs(5))
            .await
            .unwrap_or_else(|e| panic!("hostile_ids: lock {k}: {e}"));
        store
            .save(k, &sample_token(&format!("h{i}")), None)
            .await
            .unwrap_or_else(|e| panic!("hostile_ids: save {k}: {e}"));
    }
    for (i, k) in keys.iter().enumerate() {
        let loaded = store
            .load(k)
            .await
            .unwrap_or_else(|e| panic!("hostile_ids: load {k}: {e}"))
            .unwrap_or_else(|| panic!("hostile_ids: {k} is missing"));
        assert_same(
            &loaded.value,
            &sample_token(&format!("h{i}")),
            "hostile_ids",
        );
    }
    let mut listed = store
        .list(Some(&provider))
        .await
        .expect("hostile_ids: list");
    listed.sort();
    let mut want = keys.clone();
    want.sort();
    assert_eq!(listed, want, "hostile_ids: list differs");
    for k in &keys {
        assert!(
            store.delete(k).await.expect("hostile_ids: delete"),
            "hostile_ids: delete of {k} found nothing"
        );
    }
    assert!(
        store
            .list(Some(&provider))
            .await
            .expect("hostile_ids: list")
            .is_empty(),
        "hostile_ids: keys left after delete"
    );
}

/// A `lock` on a held key really waits, and gets the lock only after the
/// holder releases it.
pub async fn lock_waits(store: &dyn TokenStore) {
    lock_waits_between(store, store, "lock_waits").await;
}

async fn lock_waits_between(a: &dyn TokenStore, b: &dyn TokenStore, clause: &str) {
    let k = key("lock-waits", "alice");
    let held = a
        .lock(&k, Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("{clause}: first lock: {e}"));
    let released = Arc::new(AtomicBool::new(false));
    let waiter = {
        let released = Arc::clone(&released);
        let k = k.clone();
        async move {
            let lease = b.lock(&k, Duration::from_secs(30)).await;
            (lease, released.load(Ordering::SeqCst))
        }
    };
    let mut waiter = Box::pin(waiter);
    // The waiter must still be waiting after a while: it did not get a
    // held lock.
    let early = tokio::time::timeout(Duration::from_millis(150), &mut waiter).await;
    assert!(
        early.is_err(),
        "{clause}: a second lock on a held key did not wait"
    );
    released.store(true, Ordering::SeqCst);
    drop(held);
    let (lease, after_release) = waiter.await;
    lease.unwrap_or_else(|e| panic!("{clause}: the waiter never got the lock: {e}"));
    assert!(
        after_release,
        "{clause}: the waiter got the lock before the release"
    );
}

/// A waiter that is cancelled (its future dropped) leaves nothing held.
pub async fn cancelled_waiter_leaves_unlocked(store: &dyn TokenStore) {
    let k = key("lock-cancel", "alice");
    let held = store
        .lock(&k, Duration::from_secs(5))
        .await
        .expect("cancelled_waiter_leaves_unlocked: first lock");
    let cancelled = tokio::time::timeout(
        Duration::from_millis(100),
        store.lock(&k, Duration::from_secs(30)),
    )
    .await;
    assert!(
        cancelled.is_err(),
        "cancelled_waiter_leaves_unlocked: the waiter got a held lock"
    );
    drop(held);
    let again = store
        .lock(&k, Duration::from_secs(5))
        .await
        .expect("cancelled_waiter_leaves_unlocked: the key stayed locked after a cancelled wait");
    drop(again);
}

/// `save` and `save_leased` work while the caller holds the key's lease.
pub async fn save_under_lease(store: &dyn TokenStore) {
    let k = key("save-under-lease", "alice");
    let lease = store
        .lock(&k, Duration::from_secs(5))
        .await
        .expect("save_under_lease: lock");
    let v1 = store
        .save(&k, &sample_token("1"), None)
        .await
        .expect("save_under_lease: save while holding the lease");
    let v2 = store
        .save_leased(lease.as_ref(), &sample_token("2"), Some(v1))
        .await
        .expect("save_under_lease: save_leased");
    assert!(v2 > v1, "save_under_lease: version did not grow");
    lease
        .check()
        .await
        .expect("lease_check: a held lease does not check");
    drop(lease);
    cleanup(store, &[&k]).await;
}

/// A held lease checks.
pub async fn lease_check(store: &dyn TokenStore) {
    let k = key("lease-check", "alice");
    let lease = store
        .lock(&k, Duration::from_secs(5))
        .await
        .expect("lease_check: lock");
    assert_eq!(lease.key(), &k, "lease_check: the lease names another key");
    lease
        .check()
        .await
        .expect("lease_check: a held lease does not check");
}

/// `load` under the lease sees the latest save.
pub async fn load_under_lease_sees_latest(store: &dyn TokenStore) {
    load_latest_between(store, store, "load_under_lease_sees_latest", false).await;
}

/// `load_leased` through a held lease sees the latest save, and `None` for
/// a key with no token.
pub async fn load_leased_sees_latest(store: &dyn TokenStore) {
    let clause = "load_leased_sees_latest";
    let k = key("load-leased", "alice");
    let lease = store
        .lock(&k, Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("{clause}: lock: {e}"));
    let nothing = store
        .load_leased(lease.as_ref())
        .await
        .unwrap_or_else(|e| panic!("{clause}: load_leased of a key with no token: {e}"));
    assert!(
        nothing.is_none(),
        "{clause}: a key with no token loaded a token"
    );
    drop(lease);
    load_latest_between(store, store, clause, true).await;
}

/// Makes a held lease lost the way the backend can lose one (its row
/// expired, its lock file deleted), for [`load_leased_lease_lost`].
#[async_trait]
pub trait LeaseBreaker: Send + Sync {
    /// Makes the lease held on `key` lost: its holder must no longer hold
    /// it. It need not take the lease for anyone else.
    async fn break_lease(&self, key: &TokenKey);
}

/// `load_leased` through a lease that is no longer held fails with
/// `LeaseLost`, with a token stored and without one.
pub async fn load_leased_lease_lost(store: &dyn TokenStore, breaker: &dyn LeaseBreaker) {
    let clause = "load_leased_lease_lost";
    let k = key("load-leased-lost", "alice");
    for stored in [true, false] {
        let what = if stored { "a stored token" } else { "no token" };
        if stored {
            store
                .save(&k, &sample_token("lost"), None)
                .await
                .unwrap_or_else(|e| panic!("{clause}: save: {e}"));
        }
        let lease = store
            .lock(&k, Duration::from_secs(5))
            .await
            .unwrap_or_else(|e| panic!("{clause}: lock: {e}"));
        let held = store
            .load_leased(lease.as_ref())
            .await
            .unwrap_or_else(|e| panic!("{clause}: load_leased through a held lease: {e}"));
        assert_eq!(held.is_some(), stored, "{clause}: {what}: wrong answer");
        breaker.break_lease(&k).await;
        let err = store.load_leased(lease.as_ref()).await.expect_err(&format!(
            "{clause}: load_leased through a lost lease succeeded ({what})"
        ));
        assert_eq!(
            err.store_kind(),
            Some(StoreErrorKind::LeaseLost),
            "{clause}: {what}: {err}"
        );
        drop(lease);
        if stored {
            cleanup(store, &[&k]).await;
        }
    }
    // Nothing is left held.
    let again = store
        .lock(&k, Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("{clause}: lock after a lost lease: {e}"));
    drop(again);
}

async fn load_latest_between(a: &dyn TokenStore, b: &dyn TokenStore, clause: &str, leased: bool) {
    let k = key(
        if leased {
            "load-leased-latest"
        } else {
            "load-latest"
        },
        "alice",
    );
    let mut expected = None;
    for i in 0..5 {
        let writer = if i % 2 == 0 { a } else { b };
        let reader = if i % 2 == 0 { b } else { a };
        let lease = writer
            .lock(&k, Duration::from_secs(5))
            .await
            .unwrap_or_else(|e| panic!("{clause}: lock: {e}"));
        let token = sample_token(&format!("latest-{i}"));
        let version = writer
            .save_leased(lease.as_ref(), &token, expected)
            .await
            .unwrap_or_else(|e| panic!("{clause}: save {i}: {e}"));
        drop(lease);
        let lease = reader
            .lock(&k, Duration::from_secs(5))
            .await
            .unwrap_or_else(|e| panic!("{clause}: lock: {e}"));
        let loaded = if leased {
            reader.load_leased(lease.as_ref()).await
        } else {
            reader.load(&k).await
        };
        let loaded = loaded
            .unwrap_or_else(|e| panic!("{clause}: load: {e}"))
            .unwrap_or_else(|| panic!("{clause}: the saved token is missing"));
        drop(lease);
        assert_eq!(
            loaded.version, version,
            "{clause}: stale version after save {i}"
        );
        assert_same(&loaded.value, &token, clause);
        expected = Some(version);
    }
    cleanup(a, &[&k]).await;
}

/// Damages the stored data of one key the way the backend can be damaged
/// (a truncated file, a garbled row, a tampered ciphertext), for
/// [`undecodable_never_overwritten`].
#[async_trait]
pub trait Corrupter: Send + Sync {
    /// Makes the stored data of `key` undecodable.
    async fn corrupt(&self, key: &TokenKey);
}

/// Undecodable data makes `load` fail with `Corrupt`, and no `save`
/// replaces it.
pub async fn undecodable_never_overwritten(store: &dyn TokenStore, corrupter: &dyn Corrupter) {
    let k = key("undecodable", "alice");
    let v1 = store
        .save(&k, &sample_token("good"), None)
        .await
        .expect("undecodable_never_overwritten: save");
    corrupter.corrupt(&k).await;
    let err = store
        .load(&k)
        .await
        .expect_err("undecodable_never_overwritten: damaged data loaded");
    assert_eq!(
        err.store_kind(),
        Some(StoreErrorKind::Corrupt),
        "undecodable_never_overwritten: {err}"
    );
    for expected in [None, Some(v1), Some(Version(v1.0 + 1))] {
        store
            .save(&k, &sample_token("over"), expected)
            .await
            .expect_err("undecodable_never_overwritten: a save replaced damaged data");
    }
    let err = store
        .load(&k)
        .await
        .expect_err("undecodable_never_overwritten: the damaged data was replaced");
    assert_eq!(
        err.store_kind(),
        Some(StoreErrorKind::Corrupt),
        "undecodable_never_overwritten: {err}"
    );
    store
        .delete(&k)
        .await
        .expect("undecodable_never_overwritten: delete of damaged data");
}

/// Runs the clauses that span two instances sharing state: a lock through
/// one excludes the other (and really waits), a save through one is seen by
/// the other under the lease (by `load` and `load_leased`), CAS decides
/// between them, and versions keep
/// growing across a delete through one and a create through the other.
pub async fn run_all_shared(a: &dyn TokenStore, b: &dyn TokenStore) {
    lock_waits_between(a, b, "shared lock_waits").await;
    load_latest_between(a, b, "shared load_under_lease_sees_latest", false).await;
    load_latest_between(a, b, "shared load_leased_sees_latest", true).await;

    let k = key("shared-cas", "alice");
    let v1 = a
        .save(&k, &sample_token("base"), None)
        .await
        .expect("shared concurrent_cas: create");
    b.save(&k, &sample_token("dup"), None)
        .await
        .expect_err("shared create_only: created twice through two instances");
    let ta = sample_token("from-a");
    let tb = sample_token("from-b");
    let (ra, rb) = tokio::join!(a.save(&k, &ta, Some(v1)), b.save(&k, &tb, Some(v1)));
    assert!(
        ra.is_ok() != rb.is_ok(),
        "shared concurrent_cas: {} of 2 saves won",
        usize::from(ra.is_ok()) + usize::from(rb.is_ok())
    );
    let winner = if ra.is_ok() { &ta } else { &tb };
    let loaded = b
        .load(&k)
        .await
        .expect("shared concurrent_cas: load")
        .expect("shared concurrent_cas: gone");
    assert_same(&loaded.value, winner, "shared concurrent_cas");
    assert!(a.delete(&k).await.expect("shared delete"), "shared delete");
    assert!(
        b.load(&k).await.expect("shared delete: load").is_none(),
        "shared delete: the other instance still sees the token"
    );
    let v3 = b
        .save(&k, &sample_token("again"), None)
        .await
        .expect("shared versions_survive_delete: re-create");
    assert!(
        v3 > loaded.version,
        "shared versions_survive_delete: {v3} is not above {}",
        loaded.version
    );
    cleanup(a, &[&k]).await;
}

/// Runs every clause that needs no access to the backend's raw data, in
/// contract order.
pub async fn run_all(store: &dyn TokenStore) {
    round_trip(store).await;
    missing_key(store).await;
    create_only(store).await;
    cas_conflict(store).await;
    overwrite_bumps_version(store).await;
    versions_survive_delete(store).await;
    delete(store).await;
    delete_missing(store).await;
    list_filtered(store).await;
    keys_isolated(store).await;
    lock_exclusive(store).await;
    lock_released_on_drop(store).await;
    lock_timeout(store).await;
    concurrent_cas(store).await;
    debug_hides_secrets(store).await;
    minimal_round_trip(store).await;
    cas_expected_newer(store).await;
    hostile_ids(store).await;
    lock_waits(store).await;
    cancelled_waiter_leaves_unlocked(store).await;
    save_under_lease(store).await;
    load_under_lease_sees_latest(store).await;
    lease_check(store).await;
    load_leased_sees_latest(store).await;
}
