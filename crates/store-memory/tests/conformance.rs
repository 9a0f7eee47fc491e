//! The whole `TokenStore` conformance suite against `MemoryTokenStore`,
//! and what is particular to it.
//!
//! This is all a store written outside this repository needs too: enable
//! `auth-core`'s `conformance` feature and call `run_all`.

use std::time::Duration;

use auth_core::conformance::{Capabilities, sample_token};
use auth_core::{Expect, Record, StoreErrorKind, TokenKey, TokenStore};
use store_memory::MemoryTokenStore;

const WAIT: Duration = Duration::from_secs(1);

#[tokio::test]
async fn passes_the_whole_conformance_suite() {
    auth_core::conformance::run_all(&MemoryTokenStore::new(), Capabilities::none()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_on_a_multi_threaded_runtime() {
    auth_core::conformance::run_all(&MemoryTokenStore::new(), Capabilities::none()).await;
}

#[tokio::test]
async fn clones_pass_the_shared_clauses() {
    let a = MemoryTokenStore::new();
    auth_core::conformance::run_all_shared(&a, &a.clone(), Capabilities::none()).await;
}

#[tokio::test]
async fn leases_cannot_be_lost_while_held() {
    assert_eq!(MemoryTokenStore::new().lease_ttl(), None);
}

#[tokio::test]
async fn clones_share_state() {
    let a = MemoryTokenStore::new();
    let b = a.clone();
    let key = TokenKey::parse("p", "acct").unwrap();
    let lease = a.lock(&key, WAIT).await.unwrap();
    let v = lease
        .save_and_release(&sample_token("x"), Expect::Absent, Record::Clear)
        .await
        .unwrap();
    assert_eq!(b.load(&key).await.unwrap().unwrap().version, v);
    let lease = b.lock(&key, WAIT).await.unwrap();
    lease.delete(v).await.unwrap();
    drop(lease);
    assert!(a.load(&key).await.unwrap().unwrap().token.is_none());
}

/// A key with nothing stored keeps an entry only while its lease is held
/// or waited for.
#[tokio::test]
async fn the_lock_map_shrinks_after_use() {
    let store = MemoryTokenStore::new();
    for i in 0..100 {
        let key = TokenKey::parse("p", &format!("k{i}")).unwrap();
        let held = store.lock(&key, WAIT).await.unwrap();
        // A waiter that times out, and one that is cancelled.
        let err = store
            .lock(&key, Duration::from_millis(1))
            .await
            .unwrap_err();
        assert_eq!(err.store_kind(), Some(StoreErrorKind::LockTimeout));
        drop(
            tokio::time::timeout(
                Duration::from_millis(1),
                store.lock(&key, Duration::from_secs(5)),
            )
            .await,
        );
        drop(held);
    }
    assert_eq!(store.lock_entries(), 0);
}

/// A key that handed out a login sequence keeps its entry (sequences grow
/// across deletes), and its tombstone stays after a delete.
#[tokio::test]
async fn sequences_and_tombstones_outlive_the_lease() {
    let store = MemoryTokenStore::new();
    let key = TokenKey::parse("p", "acct").unwrap();
    let lease = store.lock(&key, WAIT).await.unwrap();
    let s1 = lease.next_sequence().await.unwrap();
    drop(lease);
    assert_eq!(
        store.lock_entries(),
        0,
        "an entry with a sequence is not a lease-only one"
    );
    let lease = store.lock(&key, WAIT).await.unwrap();
    let s2 = lease.next_sequence().await.unwrap();
    assert!(s2 > s1);
    let v = lease
        .save(&sample_token("x"), Expect::Login(s2), Record::Clear)
        .await
        .unwrap();
    lease.delete(v).await.unwrap();
    drop(lease);
    let row = store.load(&key).await.unwrap().unwrap();
    assert!(row.token.is_none());
    assert!(row.grant >= s2);
    assert!(store.list(None).await.unwrap().is_empty());
}
