//! The whole `TokenStore` conformance suite against `EncryptedStore` over
//! the memory store and over the file store.

mod support;

use std::sync::Arc;

use auth_core::TokenStore;
use store_encrypted::EncryptedStore;

#[tokio::test]
async fn passes_over_the_memory_store() {
    let (store, _inner) = support::memory(&[("k1", 1)]);
    auth_core::conformance::run_all(&store).await;
}

#[tokio::test]
async fn passes_over_the_file_store() {
    let (_dir, store, _inner) = support::file(&[("k1", 1)]);
    auth_core::conformance::run_all(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_over_the_file_store_on_a_multi_threaded_runtime() {
    let (_dir, store, _inner) = support::file(&[("k1", 1)]);
    auth_core::conformance::run_all(&store).await;
}

#[tokio::test]
async fn passes_over_a_dyn_store_with_two_keys() {
    let inner: Arc<dyn TokenStore> = Arc::new(store_memory::MemoryTokenStore::new());
    let store: EncryptedStore = EncryptedStore::new(inner, support::ring(&[("k2", 2), ("k1", 1)]))
        .secret_extras(["user_id"]);
    auth_core::conformance::run_all(&store).await;
}
