//! The whole `TokenStore` conformance suite against `PostgresTokenStore`,
//! on both tokio runtimes, again on tables used before, and between two
//! stores with separate pools on the same tables (two hosts). Postgres
//! leases can be lost while their holder lives (they expire), and rows can
//! hold data the store cannot decode, so the suite runs with both.

mod support;

use auth_core::TokenStore;
use auth_core::conformance::Capabilities;
use store_postgres::PostgresTokenStore;
use support::{ExpireLease, Garble};

async fn run_all(store: &PostgresTokenStore) {
    let (breaker, garble) = (ExpireLease(store.clone()), Garble(store.clone()));
    let caps = Capabilities::none()
        .with_lease_breaker(&breaker)
        .with_corrupter(&garble);
    auth_core::conformance::run_all(store, caps).await;
}

#[tokio::test]
async fn passes_the_whole_conformance_suite() {
    let store = support::store("conformance").await;
    run_all(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_on_a_multi_threaded_runtime() {
    let store = support::store("conformance_mt").await;
    run_all(&store).await;
}

#[tokio::test]
async fn passes_on_tables_that_were_used_before() {
    let store = support::store("conformance_again").await;
    run_all(&store).await;
    let again = support::same_tables(&store).await;
    run_all(&again).await;
    assert!(again.list(None).await.expect("list").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_with_separate_pools_pass_the_shared_clauses() {
    let a = support::store("shared_clauses").await;
    let b = support::same_tables(&a).await;
    assert_ne!(
        format!("{:p}", a.pool()),
        format!("{:p}", b.pool()),
        "the two stores share a pool"
    );
    let (breaker_a, garble_a) = (ExpireLease(a.clone()), Garble(a.clone()));
    let caps = Capabilities::none()
        .with_lease_breaker(&breaker_a)
        .with_corrupter(&garble_a);
    auth_core::conformance::run_all_shared(&a, &b, caps).await;
    let (breaker_b, garble_b) = (ExpireLease(b.clone()), Garble(b.clone()));
    let caps = Capabilities::none()
        .with_lease_breaker(&breaker_b)
        .with_corrupter(&garble_b);
    auth_core::conformance::run_all_shared(&b, &a, caps).await;
}
