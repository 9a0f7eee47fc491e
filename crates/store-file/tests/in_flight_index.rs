//! The in-flight index beside the account files: a marker for each record,
//! written before the record and removed after it, so that the orphan scan
//! never misses a record and never reads an account file without one.

mod support;

use std::time::Duration;

use auth_core::{Expect, Record, TokenStore};
use store_file::FileTokenStore;
use support::WAIT;
use test_support::tokens;

/// A store with `key` saved and a refresh of it marked in flight (the lease
/// released, so the record is an orphan).
async fn marked(store: &FileTokenStore, key: &auth_core::TokenKey) -> auth_core::Version {
    let v1 = support::create(store, key, &tokens::token(1)).await;
    let lease = store.lock(key, WAIT).await.expect("lock");
    let v2 = lease.mark_in_flight(v1).await.expect("mark");
    drop(lease);
    v2
}

#[tokio::test]
async fn a_mark_writes_a_marker_that_keep_keeps_and_clear_login_and_delete_remove() {
    let (_dir, store) = support::temp_store();
    let key = tokens::key("fitbit", "alice");
    let marker = support::marker_path(&store, &key);

    let v = marked(&store, &key).await;
    assert!(marker.exists(), "a mark wrote no marker");
    let lease = store.lock(&key, WAIT).await.expect("lock");
    let v = lease
        .save(&tokens::token(1), Expect::Version(v), Record::Keep)
        .await
        .expect("keep");
    assert!(marker.exists(), "Record::Keep removed the marker");
    let v = lease
        .save(&tokens::token(2), Expect::Version(v), Record::Clear)
        .await
        .expect("clear");
    assert!(!marker.exists(), "Record::Clear left the marker");

    lease.mark_in_flight(v).await.expect("mark");
    assert!(marker.exists());
    let sequence = lease.next_sequence().await.expect("sequence");
    assert!(marker.exists(), "a sequence number removed the marker");
    let v = lease
        .save(&tokens::token(3), Expect::Login(sequence), Record::Keep)
        .await
        .expect("login");
    assert!(!marker.exists(), "a login left the marker");
    assert!(store.load(&key).await.unwrap().unwrap().in_flight.is_none());

    let v = lease.mark_in_flight(v).await.expect("mark");
    lease.delete(v).await.expect("delete");
    assert!(!marker.exists(), "a delete left the marker");
}

#[tokio::test]
async fn a_stale_marker_is_removed_by_the_scan_but_never_under_a_held_lease() {
    let (_dir, store) = support::temp_store();
    let key = tokens::key("fitbit", "alice");
    support::create(&store, &key, &tokens::token(1)).await;
    let marker = support::marker_path(&store, &key);
    // What a crash between a clear and the marker's removal leaves.
    std::fs::create_dir_all(marker.parent().unwrap()).unwrap();
    std::fs::write(&marker, b"").unwrap();

    // Held: a mark may be half-way (marker written, record not yet), so the
    // scan leaves it.
    let lease = store.lock(&key, WAIT).await.expect("lock");
    assert!(store.orphaned(10).await.expect("orphaned").is_empty());
    assert!(
        marker.exists(),
        "the scan removed a marker under a held lease"
    );
    drop(lease);

    assert!(store.orphaned(10).await.expect("orphaned").is_empty());
    assert!(!marker.exists(), "the scan left a stale marker");
}

#[tokio::test]
async fn a_marker_of_a_vanished_key_is_removed() {
    let (_dir, store) = support::temp_store();
    let key = tokens::key("fitbit", "alice");
    marked(&store, &key).await;
    let marker = support::marker_path(&store, &key);
    std::fs::remove_dir_all(store.token_path(&key).parent().unwrap()).unwrap();
    assert!(store.orphaned(10).await.expect("orphaned").is_empty());
    assert!(!marker.exists());
}

#[tokio::test]
async fn a_lost_marker_comes_back_with_the_next_write_that_keeps_the_record() {
    let (_dir, store) = support::temp_store();
    let key = tokens::key("fitbit", "alice");
    let v = marked(&store, &key).await;
    // Someone removed the index by hand: the scan cannot see the record.
    std::fs::remove_dir_all(store.root().join(".in-flight")).unwrap();
    assert!(store.orphaned(10).await.expect("orphaned").is_empty());
    // A cooldown (or any write keeping the record) writes it again.
    store
        .lock(&key, WAIT)
        .await
        .expect("lock")
        .save_and_release(&tokens::token(1), Expect::Version(v), Record::Keep)
        .await
        .expect("keep");
    assert!(support::marker_path(&store, &key).exists());
    assert_eq!(store.orphaned(10).await.expect("orphaned"), vec![key]);
}

#[tokio::test]
async fn the_scan_reads_no_account_file_without_a_marker() {
    let (guard, logs) = test_support::logs::capture(tracing::Level::WARN);
    let (_dir, store) = support::temp_store();
    // Damaged files of keys without a record: reading any of them would log
    // a warning.
    for i in 0..50 {
        let key = tokens::key("fitbit", &format!("quiet-{i}"));
        support::create(&store, &key, &tokens::token(i)).await;
        std::fs::write(store.token_path(&key), b"{ damaged").unwrap();
    }
    let orphan = tokens::key("fitbit", "orphan");
    marked(&store, &orphan).await;
    logs.clear();
    assert_eq!(store.orphaned(100).await.expect("orphaned"), vec![orphan]);
    assert!(
        logs.text().is_empty(),
        "the scan looked at other files: {}",
        logs.text()
    );
    drop(guard);
}

#[tokio::test]
async fn a_marker_is_never_taken_for_a_provider() {
    let (_dir, store) = support::temp_store();
    let key = tokens::key("fitbit", "alice");
    marked(&store, &key).await;
    assert_eq!(store.list(None).await.expect("list"), vec![key.clone()]);
    let lease = store
        .lock(&key, Duration::from_secs(1))
        .await
        .expect("lock");
    let row = lease.load().await.expect("load").expect("there");
    assert!(row.in_flight.is_some());
}
