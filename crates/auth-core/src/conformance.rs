//! The [`TokenStore`] conformance suite: one function per clause of the
//! trait's contract, each named after its clause and taking `&dyn TokenStore`.
//!
//! Every store in this workspace runs it, and so should yours. Enable the
//! `conformance` feature in your dev-dependencies and call [`run_all`]:
//!
//! ```toml
//! [dev-dependencies]
//! auth-core = { version = "0.1", features = ["conformance"] }
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
//! The functions panic with a message naming the clause when the store
//! breaks it. They use their own provider ids (prefixed `conformance-`), so
//! they can run against a store that holds other data, but they leave their
//! keys behind only when they fail.

use std::time::{Duration, Instant, SystemTime};

use secrecy::ExposeSecret;

use crate::error::StoreErrorKind;
use crate::id::{ProviderId, TokenKey};
use crate::store::TokenStore;
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

/// Runs every clause, in contract order.
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
}
