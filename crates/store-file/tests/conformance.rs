//! The whole `TokenStore` conformance suite against `FileTokenStore`, on
//! both tokio runtimes, and again on a second store sharing the same root.

mod support;

use auth_core::conformance::{Corrupter, LeaseBreaker};
use auth_core::{TokenKey, TokenStore, async_trait};
use store_file::FileTokenStore;

#[tokio::test]
async fn passes_the_whole_conformance_suite() {
    let (_dir, store) = support::temp_store();
    auth_core::conformance::run_all(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_on_a_multi_threaded_runtime() {
    let (_dir, store) = support::temp_store();
    auth_core::conformance::run_all(&store).await;
}

#[tokio::test]
async fn passes_again_on_a_root_that_was_used_before() {
    let (_dir, store) = support::temp_store();
    auth_core::conformance::run_all(&store).await;
    let reopened = FileTokenStore::open(store.root()).expect("reopen");
    auth_core::conformance::run_all(&reopened).await;
    // The suite cleans up after itself: only lock files stay behind.
    assert!(reopened.list(None).await.expect("list").is_empty());
}

#[tokio::test]
async fn two_stores_on_one_root_pass_the_shared_clauses() {
    let (_dir, a) = support::temp_store();
    let b = FileTokenStore::open(a.root()).expect("second store on the same root");
    auth_core::conformance::run_all_shared(&a, &b).await;
}

/// Truncates a token file to half its length.
struct Truncate(FileTokenStore);

#[async_trait]
impl Corrupter for Truncate {
    async fn corrupt(&self, key: &TokenKey) {
        let path = self.0.token_path(key);
        let bytes = std::fs::read(&path).expect("read the token file");
        std::fs::write(&path, &bytes[..bytes.len() / 2]).expect("truncate the token file");
    }
}

/// Deletes a held lease's lock file (`rm *.lock`), which loses the lease.
struct DeleteLockFile(FileTokenStore);

#[async_trait]
impl LeaseBreaker for DeleteLockFile {
    async fn break_lease(&self, key: &TokenKey) {
        std::fs::remove_file(support::lease_path(&self.0, key)).expect("delete the lock file");
    }
}

#[tokio::test]
async fn a_lease_whose_lock_file_was_deleted_loads_nothing() {
    let (_dir, store) = support::temp_store();
    auth_core::conformance::load_leased_lease_lost(&store, &DeleteLockFile(store.clone())).await;
}

#[tokio::test]
async fn a_damaged_file_is_never_overwritten() {
    let (_dir, store) = support::temp_store();
    auth_core::conformance::undecodable_never_overwritten(&store, &Truncate(store.clone())).await;
}
