//! The whole `TokenStore` conformance suite against `FileTokenStore`, on
//! both tokio runtimes, on a root used before, and again on a second store
//! sharing the same root. A lease is lost while its holder lives only when
//! someone deletes its lock file, and a file can be damaged: the suite gets
//! both capabilities.

mod support;

use auth_core::conformance::{self, Capabilities, Corrupter, LeaseBreaker};
use auth_core::{TokenKey, TokenStore, async_trait};
use store_file::FileTokenStore;

/// Truncates an account file to half its length.
struct Truncate(FileTokenStore);

#[async_trait]
impl Corrupter for Truncate {
    async fn corrupt(&self, key: &TokenKey) {
        let path = self.0.token_path(key);
        let bytes = std::fs::read(&path).expect("read the token file");
        std::fs::write(&path, &bytes[..bytes.len() / 2]).expect("truncate the token file");
    }

    /// Moves the damaged file aside, as its error message says to.
    async fn repair(&self, key: &TokenKey) {
        let path = self.0.token_path(key);
        std::fs::rename(&path, path.with_extension("json.damaged")).expect("move the file aside");
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

async fn run_all(store: &FileTokenStore) {
    let breaker = DeleteLockFile(store.clone());
    let corrupter = Truncate(store.clone());
    let caps = Capabilities::none()
        .with_lease_breaker(&breaker)
        .with_corrupter(&corrupter);
    conformance::run_all(store, caps).await;
}

#[tokio::test]
async fn passes_the_whole_conformance_suite() {
    let (_dir, store) = support::temp_store();
    run_all(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_on_a_multi_threaded_runtime() {
    let (_dir, store) = support::temp_store();
    run_all(&store).await;
}

#[tokio::test]
async fn passes_again_on_a_root_that_was_used_before() {
    let (_dir, store) = support::temp_store();
    run_all(&store).await;
    let reopened = FileTokenStore::open(store.root()).expect("reopen");
    run_all(&reopened).await;
    // The suite cleans up after itself: only tombstones and lock files stay
    // behind, and no refresh is left in flight.
    assert!(reopened.list(None).await.expect("list").is_empty());
    assert!(reopened.orphaned(100).await.expect("orphaned").is_empty());
}

#[tokio::test]
async fn two_stores_on_one_root_pass_the_shared_clauses() {
    let (_dir, a) = support::temp_store();
    let b = FileTokenStore::open(a.root()).expect("second store on the same root");
    let breaker = DeleteLockFile(a.clone());
    let caps = Capabilities::none().with_lease_breaker(&breaker);
    conformance::run_all_shared(&a, &b, caps).await;
}

#[test]
fn leases_never_expire() {
    let (_dir, store) = support::temp_store();
    assert_eq!(store.lease_ttl(), None);
}
