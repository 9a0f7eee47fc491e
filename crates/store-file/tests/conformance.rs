//! The whole `TokenStore` conformance suite against `FileTokenStore`, on
//! both tokio runtimes, and again on a second store sharing the same root.

mod support;

use auth_core::TokenStore;
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
