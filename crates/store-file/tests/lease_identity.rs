//! Leases whose lock file is deleted or replaced while held, and lease
//! waits that must not tie up threads.

mod support;

use std::time::Duration;

use auth_core::{Expect, Record, StoreErrorKind, TokenKey, TokenStore};
use support::lease_path;
use test_support::tokens;

#[tokio::test]
async fn a_deleted_lock_file_is_noticed_before_the_next_write() {
    let (_dir, store) = support::temp_store();
    let key = tokens::key("fitbit", "alice");
    let version = support::create(&store, &key, &tokens::token(1)).await;
    let lease = store.lock(&key, Duration::from_secs(1)).await.unwrap();
    lease.load().await.expect("a fresh lease loads");

    // `rm *.lock` while the lease is held: a second holder can now lock a
    // new file of the same name.
    std::fs::remove_file(lease_path(&store, &key)).unwrap();
    let second = store
        .lock(&key, Duration::from_secs(1))
        .await
        .expect("the new lock file is free");

    let err = lease.load().await.expect_err("the orphaned lease loads");
    assert_eq!(err.store_kind(), Some(StoreErrorKind::LeaseLost), "{err}");
    assert!(err.to_string().contains("deleted or replaced"), "{err}");
    let err = lease
        .save(&tokens::token(2), Expect::Version(version), Record::Clear)
        .await
        .expect_err("a save through the orphaned lease");
    assert_eq!(err.store_kind(), Some(StoreErrorKind::LeaseLost), "{err}");
    let err = lease
        .mark_in_flight(version)
        .await
        .expect_err("a mark through the orphaned lease");
    assert_eq!(err.store_kind(), Some(StoreErrorKind::LeaseLost), "{err}");
    assert_eq!(
        store.load(&key).await.unwrap().unwrap().version,
        version,
        "nothing was written"
    );
    // The real holder writes.
    second
        .save(&tokens::token(2), Expect::Version(version), Record::Clear)
        .await
        .expect("the new holder saves");
}

#[tokio::test]
async fn a_removed_provider_directory_is_noticed() {
    let (_dir, store) = support::temp_store();
    let key = tokens::key("fitbit", "bob");
    let version = support::create(&store, &key, &tokens::token(1)).await;
    let lease = store.lock(&key, Duration::from_secs(1)).await.unwrap();
    let dir = store.token_path(&key).parent().unwrap().to_owned();
    std::fs::remove_dir_all(&dir).unwrap();
    let err = lease
        .load()
        .await
        .expect_err("the lease outlived its directory");
    assert_eq!(err.store_kind(), Some(StoreErrorKind::LeaseLost), "{err}");
    let err = lease
        .save(&tokens::token(2), Expect::Version(version), Record::Clear)
        .await
        .expect_err("a save through a lease whose directory is gone");
    assert_eq!(err.store_kind(), Some(StoreErrorKind::LeaseLost), "{err}");
    assert!(!dir.exists(), "a lost lease wrote");
}

#[tokio::test]
async fn a_replaced_lock_file_is_noticed() {
    let (_dir, store) = support::temp_store();
    let key = tokens::key("fitbit", "carol");
    let lease = store.lock(&key, Duration::from_secs(1)).await.unwrap();
    let path = lease_path(&store, &key);
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, b"").unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    let err = lease
        .next_sequence()
        .await
        .expect_err("the lease's file was replaced");
    assert_eq!(err.store_kind(), Some(StoreErrorKind::LeaseLost), "{err}");
    assert!(
        store.load(&key).await.unwrap().is_none(),
        "a lost lease wrote"
    );
}

/// A thousand keys wait for leases at once, on a runtime with one blocking
/// thread: loads and saves of other keys still go through, because waiting
/// ties up no thread.
#[test]
fn a_thousand_lease_waiters_leave_loads_and_saves_free() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (_dir, store) = support::temp_store();
        let keys: Vec<TokenKey> = (0..1000)
            .map(|i| tokens::key("busy", &format!("k{i}")))
            .collect();
        let mut held = Vec::new();
        for key in &keys {
            held.push(store.lock(key, Duration::from_secs(1)).await.unwrap());
        }
        let waiters: Vec<_> = keys
            .iter()
            .map(|key| {
                let store = store.clone();
                let key = key.clone();
                tokio::spawn(async move { store.lock(&key, Duration::from_secs(60)).await })
            })
            .collect();
        // With the single blocking thread tied up by any waiter, these
        // would not finish before the waiters' 60 s; they finish at once.
        let other = tokens::key("free", "alice");
        let done = tokio::time::timeout(Duration::from_secs(20), async {
            let v = support::create(&store, &other, &tokens::token(1)).await;
            assert_eq!(store.load(&other).await.unwrap().unwrap().version, v);
        })
        .await;
        assert!(
            done.is_ok(),
            "a load and a save waited behind lease waiters"
        );
        for waiter in &waiters {
            assert!(!waiter.is_finished(), "a waiter got a held lease");
        }
        drop(held);
        for waiter in waiters {
            waiter.await.unwrap().expect("every waiter gets its lease");
        }
    });
}
