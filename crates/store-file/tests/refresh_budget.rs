//! A refresh on the file store is at most two atomic replaces of the
//! account file: the write-ahead mark, and the save that clears it.

mod support;

use auth_core::{Expect, Record, TokenStore};
use support::WAIT;

#[tokio::test]
async fn a_refresh_is_two_atomic_replaces() {
    let (_dir, store) = support::temp_store();
    let key = support::key("fitbit", "alice");
    support::create(&store, &key, &support::token(1)).await;

    let before = store.account_file_replaces();
    let lease = store.lock(&key, WAIT).await.expect("lock");
    let row = lease.load().await.expect("load").expect("a token");
    let marked = lease.mark_in_flight(row.version).await.expect("mark");
    let saved = lease
        .save_and_release(&support::token(2), Expect::Version(marked), Record::Clear)
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
    assert_eq!(support::generation_of(support::token_of(&stored)), 2);
}

#[tokio::test]
async fn a_refresh_without_a_record_is_one_atomic_replace() {
    // Providers whose refresh tokens do not rotate write no record.
    let (_dir, store) = support::temp_store();
    let key = support::key("google-health", "alice");
    let v1 = support::create(&store, &key, &support::token(1)).await;
    let before = store.account_file_replaces();
    store
        .lock(&key, WAIT)
        .await
        .expect("lock")
        .save_and_release(&support::token(2), Expect::Version(v1), Record::Clear)
        .await
        .expect("save");
    assert_eq!(store.account_file_replaces() - before, 1);
}

#[tokio::test]
async fn reads_and_the_orphan_scan_replace_nothing() {
    let (_dir, store) = support::temp_store();
    let key = support::key("fitbit", "alice");
    let v1 = support::create(&store, &key, &support::token(1)).await;
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
