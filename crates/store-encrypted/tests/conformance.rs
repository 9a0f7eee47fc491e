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

#[tokio::test]
async fn two_encrypted_stores_on_one_root_pass_the_shared_clauses() {
    let (_dir, a, inner) = support::file(&[("k1", 1)]);
    let b = EncryptedStore::new(
        Arc::new(store_file::FileTokenStore::open(inner.root()).expect("open the root again")),
        support::ring(&[("k1", 1)]),
    );
    auth_core::conformance::run_all_shared(&a, &b).await;
}

/// Flips one character of the sealed access token, through the inner store.
struct Tamper(Arc<store_file::FileTokenStore>);

#[auth_core::async_trait]
impl auth_core::conformance::Corrupter for Tamper {
    async fn corrupt(&self, key: &auth_core::TokenKey) {
        use auth_core::secrecy::{ExposeSecret, SecretString};
        let stored = self.0.load(key).await.expect("load").expect("stored");
        let sealed = stored.value.access_token().expose_secret().to_owned();
        let mut bytes = sealed.into_bytes();
        let last = bytes.len() - 1;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).expect("ASCII envelope");
        let token = stored
            .value
            .clone()
            .with_access_secret(SecretString::from(tampered));
        self.0
            .save(key, &token, Some(stored.version))
            .await
            .expect("write the tampered token");
    }
}

/// Deletes the inner file store's lock file of a held lease, which loses
/// the lease.
struct DeleteLockFile(Arc<store_file::FileTokenStore>);

#[auth_core::async_trait]
impl auth_core::conformance::LeaseBreaker for DeleteLockFile {
    async fn break_lease(&self, key: &auth_core::TokenKey) {
        let token = self.0.token_path(key);
        let name = token
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".json"))
            .expect("token files end in .json");
        std::fs::remove_file(token.with_file_name(format!("{name}.lock")))
            .expect("delete the lock file");
    }
}

#[tokio::test]
async fn a_lost_inner_lease_loads_nothing() {
    let (_dir, store, inner) = support::file(&[("k1", 1)]);
    auth_core::conformance::load_leased_lease_lost(&store, &DeleteLockFile(inner)).await;
}

#[tokio::test]
async fn a_tampered_record_is_never_overwritten() {
    let (_dir, store, inner) = support::file(&[("k1", 1)]);
    auth_core::conformance::undecodable_never_overwritten(&store, &Tamper(inner)).await;
}
