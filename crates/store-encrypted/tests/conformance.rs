//! The whole `TokenStore` conformance suite against `EncryptedStore` over
//! the memory store and over the file store: the wrapper passes every part
//! of the lease through, so it keeps every clause the inner store keeps,
//! and a tampered record is data it cannot decode.

mod support;

use std::sync::Arc;

use auth_core::conformance::{self, Capabilities, Corrupter, LeaseBreaker};
use auth_core::{Expect, Record, TokenKey, TokenStore};
use store_encrypted::EncryptedStore;
use store_file::FileTokenStore;

/// Flips one character of the sealed access token, through the inner store.
struct Tamper(Arc<dyn TokenStore>);

#[auth_core::async_trait]
impl Corrupter for Tamper {
    async fn corrupt(&self, key: &TokenKey) {
        use auth_core::secrecy::{ExposeSecret, SecretString};
        let stored = support::raw(self.0.as_ref(), key).await;
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
            .lock(key, support::WAIT)
            .await
            .expect("lock")
            .save_and_release(&token, Expect::Version(stored.version), Record::Keep)
            .await
            .expect("write the tampered token");
    }

    /// Deletes the tampered record through the inner store, as a person
    /// would after looking at it.
    async fn repair(&self, key: &TokenKey) {
        let lease = self.0.lock(key, support::WAIT).await.expect("lock");
        let row = lease.load().await.expect("load").expect("a row");
        lease.delete(row.version).await.expect("delete");
    }
}

/// Deletes the inner file store's lock file of a held lease, which loses
/// the lease.
struct DeleteLockFile(Arc<FileTokenStore>);

#[auth_core::async_trait]
impl LeaseBreaker for DeleteLockFile {
    async fn break_lease(&self, key: &TokenKey) {
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
async fn passes_over_the_memory_store() {
    let (store, inner) = support::memory(&[("k1", 1)]);
    let tamper = Tamper(inner);
    conformance::run_all(&store, Capabilities::none().with_corrupter(&tamper)).await;
}

async fn over_the_file_store() {
    let (_dir, store, inner) = support::file(&[("k1", 1)]);
    let tamper = Tamper(inner.clone());
    let breaker = DeleteLockFile(inner);
    let caps = Capabilities::none()
        .with_lease_breaker(&breaker)
        .with_corrupter(&tamper);
    conformance::run_all(&store, caps).await;
}

#[tokio::test]
async fn passes_over_the_file_store() {
    over_the_file_store().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_over_the_file_store_on_a_multi_threaded_runtime() {
    over_the_file_store().await;
}

#[tokio::test]
async fn passes_over_a_dyn_store_with_two_keys() {
    let inner: Arc<dyn TokenStore> = Arc::new(store_memory::MemoryTokenStore::new());
    let store: EncryptedStore =
        EncryptedStore::new(Arc::clone(&inner), support::ring(&[("k2", 2), ("k1", 1)]))
            .secret_extras(["user_id"]);
    let tamper = Tamper(inner);
    conformance::run_all(&store, Capabilities::none().with_corrupter(&tamper)).await;
}

#[tokio::test]
async fn two_encrypted_stores_on_one_root_pass_the_shared_clauses() {
    let (_dir, a, inner) = support::file(&[("k1", 1)]);
    let b = EncryptedStore::new(
        Arc::new(FileTokenStore::open(inner.root()).expect("open the root again")),
        support::ring(&[("k1", 1)]),
    );
    let breaker = DeleteLockFile(inner);
    conformance::run_all_shared(&a, &b, Capabilities::none().with_lease_breaker(&breaker)).await;
}

#[tokio::test]
async fn the_inner_stores_lease_ttl_is_passed_through() {
    let (store, _inner) = support::memory(&[("k1", 1)]);
    assert_eq!(store.lease_ttl(), None);
}
