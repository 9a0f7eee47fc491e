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

/// A key with no stored token keeps an entry only while its lease is held
/// or waited for.
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

/// A stored key keeps its lease between uses; deleting the token drops the
/// entry at once when the lease is idle, or at the release when it is held.
#[tokio::test]
async fn a_deleted_key_leaves_no_entry_held_or_not() {
    use auth_core::{TokenKey, TokenStore};
    use std::time::Duration;
    let store = MemoryTokenStore::new();
    let token = auth_core::conformance::sample_token("x");
    let idle = TokenKey::parse("p", "idle").unwrap();
    let held = TokenKey::parse("p", "held").unwrap();
    for key in [&idle, &held] {
        store.save(key, &token, None).await.unwrap();
        drop(store.lock(key, Duration::from_secs(1)).await.unwrap());
    }
    // Stored keys: their entries are the tokens', not lease-only ones.
    assert_eq!(store.lock_entries(), 0);
    assert!(store.delete(&idle).await.unwrap());
    let lease = store.lock(&held, Duration::from_secs(1)).await.unwrap();
    assert!(store.delete(&held).await.unwrap());
    assert_eq!(store.lock_entries(), 1, "the held lease keeps its entry");
    assert!(
        store.lock(&held, Duration::from_millis(1)).await.is_err(),
        "deleting the token does not release its lease"
    );
    drop(lease);
    assert_eq!(store.lock_entries(), 0);
    assert!(store.list(None).await.unwrap().is_empty());
    // The key can be created and leased again.
    store.save(&held, &token, None).await.unwrap();
    drop(store.lock(&held, Duration::from_millis(1)).await.unwrap());
}

/// Memory leases cannot be lost, so `load_leased_lease_lost` does not
/// apply; what it checks of `load_leased` (and `save_leased`) is that the
/// lease is checked first: a lease that no longer checks loads nothing,
/// stored token or not, and saves nothing.
#[tokio::test]
async fn leased_calls_refuse_a_lease_that_no_longer_checks() {
    use auth_core::{Error, KeyLock, StoreErrorKind, TokenKey, TokenStore, async_trait};
    use std::time::Duration;

    #[derive(Debug)]
    struct Lost(Box<dyn KeyLock>);

    #[async_trait]
    impl KeyLock for Lost {
        fn key(&self) -> &TokenKey {
            self.0.key()
        }

        async fn check(&self) -> auth_core::Result<()> {
            Err(Error::store(
                StoreErrorKind::LeaseLost,
                Some(self.key().clone()),
                "lost for the test",
            ))
        }
    }

    let store = MemoryTokenStore::new();
    let key = TokenKey::parse("p", "acct").unwrap();
    for stored in [false, true] {
        if stored {
            store
                .save(&key, &auth_core::conformance::sample_token("x"), None)
                .await
                .unwrap();
        }
        let lease = store.lock(&key, Duration::from_secs(1)).await.unwrap();
        assert_eq!(
            store.load_leased(lease.as_ref()).await.unwrap().is_some(),
            stored
        );
        let lost = Lost(lease);
        let err = store
            .load_leased(&lost)
            .await
            .expect_err("a lease that does not check loaded");
        assert_eq!(err.store_kind(), Some(StoreErrorKind::LeaseLost), "{err}");
        // And saves nothing.
        let before = store.load(&key).await.unwrap().map(|v| v.version);
        let err = store
            .save_leased(&lost, &auth_core::conformance::sample_token("y"), before)
            .await
            .expect_err("a lease that does not check saved");
        assert_eq!(err.store_kind(), Some(StoreErrorKind::LeaseLost), "{err}");
        assert_eq!(store.load(&key).await.unwrap().map(|v| v.version), before);
    }
}
