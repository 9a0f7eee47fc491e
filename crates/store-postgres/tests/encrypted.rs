//! The conformance suite on `EncryptedStore` over `PostgresTokenStore`,
//! alone and between two hosts: the wrapper hands the Postgres lease
//! through, so its writes stay fenced.

mod support;

use std::sync::Arc;

use auth_core::conformance::Capabilities;
use store_encrypted::{EncryptedStore, KeyRing};
use store_postgres::PostgresTokenStore;
use support::{ExpireLease, Garble};

fn encrypted(store: PostgresTokenStore, keys: &str) -> EncryptedStore<PostgresTokenStore> {
    EncryptedStore::new(
        Arc::new(store),
        KeyRing::parse(keys, "the test key").expect("key ring"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_postgres_store_passes_the_suite_alone_and_shared() {
    let keys = KeyRing::generate_entry();
    let a = support::store("encrypted").await;
    let b = support::same_tables(&a).await;
    // The wrapper passes every part of the lease through: an expired
    // Postgres lease fences the encrypted store's writes too, and a row
    // garbled underneath is reported, never overwritten.
    let (breaker, garble) = (ExpireLease(a.clone()), Garble(a.clone()));
    let caps = Capabilities::none()
        .with_lease_breaker(&breaker)
        .with_corrupter(&garble);
    let (a, b) = (encrypted(a, &keys), encrypted(b, &keys));
    auth_core::conformance::run_all(&a, caps).await;
    auth_core::conformance::run_all_shared(&a, &b, caps).await;
}
