//! A `TokenManager` per store value, all on one root, behave like managers
//! in separate processes: each has its own single flight, so only the
//! store's lease and compare-and-swap keep them to one refresh.

mod support;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use auth_core::testing::FakeProvider;
use auth_core::{TokenManager, TokenSet, TokenStore};
use store_file::FileTokenStore;
use test_support::tokens;

const MANAGERS: usize = 4;
const CALLERS_PER_MANAGER: usize = 25;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managers_sharing_a_root_refresh_an_expired_token_once() {
    let (_dir, store) = support::temp_store();
    let key = tokens::key("fake", "26FWFL");
    let issued = SystemTime::now() - Duration::from_secs(7200);
    let expired = TokenSet::new("old-access", "Bearer", issued)
        .with_refresh_token("old-refresh")
        .with_expires_in(Duration::from_secs(3600));
    support::create(&store, &key, &expired).await;

    let provider = Arc::new(FakeProvider::new("fake"));
    let managers: Vec<TokenManager> = (0..MANAGERS)
        .map(|_| {
            let own_store = FileTokenStore::open(store.root()).expect("open the root again");
            TokenManager::builder(Arc::new(own_store))
                .provider(provider.clone())
                .build()
        })
        .collect();

    // The first refresh waits at the gate while every caller piles up.
    provider.hold_refreshes();
    let key_ref = &key;
    let calls = managers
        .iter()
        .flat_map(|manager| (0..CALLERS_PER_MANAGER).map(move |_| manager.access_token(key_ref)));
    let all = futures::future::join_all(calls);
    let release = async {
        provider.refresh_started().await;
        // Enough permits for any extra refresh, so a bug fails the count
        // below instead of hanging the test.
        provider.release_refreshes(MANAGERS * CALLERS_PER_MANAGER);
    };
    let (results, ()) = tokio::join!(all, release);

    assert_eq!(
        provider.refresh_calls(),
        1,
        "the managers refreshed more than once"
    );
    assert_eq!(
        provider.seen_refresh_tokens(),
        vec!["old-refresh".to_owned()]
    );
    let secrets: Vec<String> = results
        .into_iter()
        .map(|r| r.expect("access_token").secret().to_owned())
        .collect();
    assert!(
        secrets.iter().all(|s| *s == secrets[0]),
        "callers got different tokens"
    );
    assert_ne!(secrets[0], "old-access");
    let stored = store.load(&key).await.expect("load").expect("there");
    assert_eq!(
        auth_core::secrecy::ExposeSecret::expose_secret(support::token_of(&stored).access_token()),
        secrets[0],
        "the refreshed token was not saved"
    );
}

/// Reading or removing an account that was never stored creates nothing on
/// disk: no provider directory, no lock file.
#[tokio::test]
async fn unknown_accounts_leave_no_files_behind() {
    let (dir, store) = support::temp_store();
    let manager = TokenManager::builder(Arc::new(store.clone()))
        .provider(Arc::new(FakeProvider::new("fake")))
        .build();
    for i in 0..20 {
        let key = tokens::key("fake", &format!("nobody-{i}"));
        let err = manager
            .access_token(&key)
            .await
            .expect_err("nothing stored");
        assert!(err.is_reauthorization_required(), "{err}");
        assert!(!manager.remove(&key).await.expect("remove"));
    }
    let entries: Vec<_> = std::fs::read_dir(store.root())
        .expect("read the root")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(entries.is_empty(), "files were created: {entries:?}");
    drop(dir);
}

/// Removing many accounts leaves the manager's memory bounded: only
/// tombstones within the cache's capacity stay.
#[tokio::test]
async fn removed_accounts_do_not_grow_memory_without_bound() {
    let (_dir, store) = support::temp_store();
    let manager = TokenManager::builder(Arc::new(store.clone()))
        .provider(Arc::new(FakeProvider::new("fake")))
        .cache_capacity(64)
        .build();
    for i in 0..300 {
        let key = tokens::key("fake", &format!("user-{i}"));
        support::create(&store, &key, &tokens::token(i)).await;
        manager.access_token(&key).await.unwrap();
        assert!(manager.remove(&key).await.unwrap());
        assert!(manager.stored(&key).await.unwrap().is_none());
    }
    assert!(
        manager.memory_entries() <= 64,
        "{} entries in memory",
        manager.memory_entries()
    );
}
