//! The whole `TokenStore` conformance suite against `MemoryTokenStore`.
//!
//! This is all a store written outside this repository needs too: enable
//! `auth-core`'s `conformance` feature and call `run_all`.

use store_memory::MemoryTokenStore;

#[tokio::test]
async fn passes_the_whole_conformance_suite() {
    auth_core::conformance::run_all(&MemoryTokenStore::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_on_a_multi_threaded_runtime() {
    auth_core::conformance::run_all(&MemoryTokenStore::new()).await;
}

#[tokio::test]
async fn clones_pass_the_shared_clauses() {
    let a = MemoryTokenStore::new();
    auth_core::conformance::run_all_shared(&a, &a.clone()).await;
}

#[tokio::test]
async fn clones_share_state() {
    use auth_core::{TokenKey, TokenStore};
    let a = MemoryTokenStore::new();
    let b = a.clone();
    let key = TokenKey::parse("p", "acct").unwrap();
    a.save(&key, &auth_core::conformance::sample_token("x"), None)
        .await
        .unwrap();
    assert!(b.load(&key).await.unwrap().is_some());
    assert!(b.delete(&key).await.unwrap());
    assert!(a.load(&key).await.unwrap().is_none());
}

/// The lock map holds only keys that are held or waited for.
#[tokio::test]
async fn the_lock_map_shrinks_after_use() {
    use auth_core::{TokenKey, TokenStore};
    use std::time::Duration;
    let store = MemoryTokenStore::new();
    for i in 0..100 {
        let key = TokenKey::parse("p", &format!("k{i}")).unwrap();
        let held = store.lock(&key, Duration::from_secs(1)).await.unwrap();
        // A waiter that times out, and one that is cancelled.
        assert!(store.lock(&key, Duration::from_millis(1)).await.is_err());
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
