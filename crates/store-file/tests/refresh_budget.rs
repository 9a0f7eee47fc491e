//! A refresh on the file store is at most two atomic replaces of the
//! account file: the write-ahead mark, and the save that clears it.

mod support;

use auth_core::{Expect, Record, TokenStore};
use support::WAIT;
use test_support::tokens;

#[tokio::test]
async fn a_refresh_is_two_atomic_replaces() {
    let (_dir, store) = support::temp_store();
    let key = tokens::key("fitbit", "alice");
    support::create(&store, &key, &tokens::token(1)).await;

    let before = store.account_file_replaces();
    let lease = store.lock(&key, WAIT).await.expect("lock");
    let row = lease.load().await.expect("load").expect("a token");
    let marked = lease.mark_in_flight(row.version).await.expect("mark");
    let saved = lease
        .save_and_release(&tokens::token(2), Expect::Version(marked), Record::Clear)
        .await
        .expect("save");
    assert_eq!(
        store.account_file_replaces() - before,
        2,
        "a refresh (lease, load, mark, save and clear, release)"
    );
    let stored = store.load(&key).await.expect("load").expect("a token");
    assert_eq!(stored.version, saved);
    assert!(stored.in_flight.is_none());
    assert_eq!(tokens::generation_of(support::token_of(&stored)), 2);
}

#[tokio::test]
async fn a_refresh_without_a_record_is_one_atomic_replace() {
    // Providers whose refresh tokens do not rotate write no record.
    let (_dir, store) = support::temp_store();
    let key = tokens::key("google-health", "alice");
    let v1 = support::create(&store, &key, &tokens::token(1)).await;
    let before = store.account_file_replaces();
    store
        .lock(&key, WAIT)
        .await
        .expect("lock")
        .save_and_release(&tokens::token(2), Expect::Version(v1), Record::Clear)
        .await
        .expect("save");
    assert_eq!(store.account_file_replaces() - before, 1);
}

#[tokio::test]
async fn reads_and_the_orphan_scan_replace_nothing() {
    let (_dir, store) = support::temp_store();
    let key = tokens::key("fitbit", "alice");
    let v1 = support::create(&store, &key, &tokens::token(1)).await;
    let lease = store.lock(&key, WAIT).await.expect("lock");
    lease.mark_in_flight(v1).await.expect("mark");
    drop(lease);
    let before = store.account_file_replaces();
    store.load(&key).await.expect("load");
    store.list(None).await.expect("list");
    assert_eq!(
        store.orphaned(10).await.expect("orphaned"),
        vec![key.clone()]
    );
    let lease = store.lock(&key, WAIT).await.expect("lock");
    lease.load().await.expect("load through the lease");
    drop(lease);
    assert_eq!(store.account_file_replaces(), before);
}

/// A manager on a file store, with a strict single-use provider whose
/// replay window is `window` (`None`: not rotating at all), and an
/// expired token of `key` stored.
async fn manager_with_expired_token(
    store: &store_file::FileTokenStore,
    key: &auth_core::TokenKey,
    rules: Option<Option<std::time::Duration>>,
) -> (
    std::sync::Arc<auth_core::testing::FakeProvider>,
    auth_core::TokenManager,
) {
    use std::time::{Duration, SystemTime};
    let provider = match rules {
        Some(window) => auth_core::testing::FakeProvider::new("fake").strict(window),
        None => auth_core::testing::FakeProvider::new("fake")
            .with_refresh_rules(auth_core::RefreshRules::NOT_ROTATING),
    };
    let provider = std::sync::Arc::new(provider);
    let issued = provider.issue();
    let expired = issued.with_expires_at(Some(SystemTime::now() - Duration::from_secs(60)));
    support::create(store, key, &expired).await;
    let manager = auth_core::TokenManager::builder(std::sync::Arc::new(store.clone()))
        .provider(provider.clone())
        .build();
    (provider, manager)
}

#[tokio::test]
async fn a_refresh_through_the_manager_is_at_most_two_atomic_replaces() {
    for (window, what) in [
        (
            Some(std::time::Duration::from_secs(120)),
            "with a replay window",
        ),
        (None, "without a replay window"),
    ] {
        let (_dir, store) = support::temp_store();
        let key = tokens::key("fake", "alice");
        let (provider, manager) = manager_with_expired_token(&store, &key, Some(window)).await;
        let before = store.account_file_replaces();
        let token = manager.access_token(&key).await.expect("access_token");
        assert_eq!(provider.refresh_calls(), 1, "{what}");
        assert_eq!(
            store.account_file_replaces() - before,
            2,
            "{what}: a rotating refresh is the mark and the save"
        );
        let stored = store.load(&key).await.expect("load").expect("a row");
        assert!(stored.in_flight.is_none(), "{what}: the record was left");
        let saved = support::token_of(&stored);
        assert_eq!(
            auth_core::secrecy::ExposeSecret::expose_secret(saved.access_token()),
            token.secret(),
            "{what}"
        );
        assert_eq!(
            saved
                .refresh_token()
                .map(|t| auth_core::secrecy::ExposeSecret::expose_secret(t).to_owned()),
            provider.current_refresh_token(),
            "{what}: the rotated refresh token was not saved"
        );
        assert_eq!(provider.burns(), 0, "{what}");
    }
}

#[tokio::test]
async fn a_refresh_that_does_not_rotate_through_the_manager_is_one_atomic_replace() {
    let (_dir, store) = support::temp_store();
    let key = tokens::key("fake", "alice");
    let (provider, manager) = manager_with_expired_token(&store, &key, None).await;
    let before = store.account_file_replaces();
    manager.access_token(&key).await.expect("access_token");
    assert_eq!(provider.refresh_calls(), 1);
    assert_eq!(
        store.account_file_replaces() - before,
        1,
        "a refresh that writes no record is the save alone"
    );
}
