//! The whole `TokenStore` conformance suite against `PostgresTokenStore`,
//! on both tokio runtimes, and between two stores with separate pools on
//! the same tables (two hosts).

mod support;

use std::time::Duration;

use auth_core::conformance::Corrupter;
use auth_core::{StoreErrorKind, TokenKey, TokenStore, async_trait};
use store_postgres::PostgresTokenStore;

#[tokio::test]
async fn passes_the_whole_conformance_suite() {
    let store = support::store("conformance").await;
    auth_core::conformance::run_all(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_on_a_multi_threaded_runtime() {
    let store = support::store("conformance_mt").await;
    auth_core::conformance::run_all(&store).await;
}

#[tokio::test]
async fn passes_on_tables_that_were_used_before() {
    let store = support::store("conformance_again").await;
    auth_core::conformance::run_all(&store).await;
    let again = support::same_tables(&store).await;
    auth_core::conformance::run_all(&again).await;
    assert!(again.list(None).await.expect("list").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_with_separate_pools_share_leases_and_versions() {
    let a = support::store("two_hosts").await;
    let b = support::same_tables(&a).await;
    let key = support::key("two-hosts", "Alice");

    let held = a
        .lock(&key, Duration::from_secs(5))
        .await
        .expect("lock via a");
    let err = b
        .lock(&key, Duration::from_millis(200))
        .await
        .expect_err("b took a lease a holds");
    assert_eq!(err.store_kind(), Some(StoreErrorKind::LockTimeout), "{err}");

    let v1 = a
        .save(&key, &support::token(1), None)
        .await
        .expect("save via a");
    let seen = b
        .load(&key)
        .await
        .expect("load via b")
        .expect("b sees a's save");
    assert_eq!(seen.version, v1);
    let err = b
        .save(&key, &support::token(2), None)
        .await
        .expect_err("b created over a's token");
    assert_eq!(err.store_kind(), Some(StoreErrorKind::Conflict), "{err}");

    drop(held);
    let lease = b
        .lock(&key, Duration::from_secs(10))
        .await
        .expect("b after a released");
    let v2 = b
        .save_leased(lease.as_ref(), &support::token(2), Some(v1))
        .await
        .expect("fenced save via b");
    assert!(v2 > v1);
    let loaded = a.load(&key).await.expect("load via a").expect("there");
    assert_eq!(support::generation_of(&loaded.value), 2);
    drop(lease);
    assert!(a.delete(&key).await.expect("delete"));
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
    auth_core::conformance::run_all_shared(&a, &b).await;
    auth_core::conformance::run_all_shared(&b, &a).await;
}

/// Garbles a row's data in place, through SQL, the way a bad manual edit
/// or a buggy migration would.
struct Garble(PostgresTokenStore);

#[async_trait]
impl Corrupter for Garble {
    async fn corrupt(&self, key: &TokenKey) {
        let tables = self.0.tables();
        let (schema, table) = tables.split_once('.').expect("schema.table");
        sqlx::query(&format!(
            "UPDATE \"{schema}\".\"{table}\" SET data = '{{\"format\": 1, \"garbled\": true}}'::jsonb \
             WHERE provider = $1 AND account = $2"
        ))
        .bind(key.provider.as_str())
        .bind(key.account.as_str())
        .execute(self.0.pool())
        .await
        .expect("garble the row");
    }
}

#[tokio::test]
async fn a_lease_whose_row_expired_loads_nothing() {
    let store = support::store("lease_lost").await;
    auth_core::conformance::load_leased_lease_lost(&store, &support::ExpireLease(store.clone()))
        .await;
}

#[tokio::test]
async fn a_damaged_row_is_never_overwritten() {
    let store = support::store("damaged").await;
    auth_core::conformance::undecodable_never_overwritten(&store, &Garble(store.clone())).await;
}
