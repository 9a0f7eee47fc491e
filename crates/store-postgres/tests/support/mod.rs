//! Helpers shared by the integration tests: the database, stores in
//! schemas of their own, recognizable tokens, child processes and a
//! freezable proxy.

#![allow(dead_code)] // Each test binary uses its own subset.

pub(crate) mod child;
pub(crate) mod cluster;
pub(crate) mod logs;
pub(crate) mod proxy;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use auth_core::conformance::LeaseBreaker;
use auth_core::{TokenKey, TokenSet, async_trait};
use store_postgres::{PostgresStoreBuilder, PostgresTokenStore};

/// A schema name no other test (or test binary) uses.
pub(crate) fn unique_schema(tag: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let tag: String = tag
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(30)
        .collect();
    format!(
        "t_{tag}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A store in a fresh schema of the shared cluster, with its own pool.
pub(crate) async fn store(tag: &str) -> PostgresTokenStore {
    let schema = unique_schema(tag);
    builder(&schema)
        .connect(cluster::shared().url())
        .await
        .expect("connect to the test database")
}

/// A second store on the same tables as `store`, with its own pool: another
/// "host".
pub(crate) async fn same_tables(store: &PostgresTokenStore) -> PostgresTokenStore {
    let (schema, _) = store
        .tables()
        .split_once('.')
        .map(|(s, t)| (s.to_owned(), t.to_owned()))
        .expect("schema.table");
    builder(&schema)
        .connect(cluster::shared().url())
        .await
        .expect("connect again")
}

/// The settings the tests use: a short lease so that lease expiry is quick
/// to see.
pub(crate) fn builder(schema: &str) -> PostgresStoreBuilder {
    PostgresTokenStore::builder()
        .schema(schema)
        .lease_ttl(Duration::from_secs(2))
        .max_connections(4)
}

/// Expires the lease row of a key through SQL, as if its TTL had passed
/// with no heartbeat: how a Postgres lease is lost, for the conformance
/// suite.
pub(crate) struct ExpireLease(pub(crate) PostgresTokenStore);

#[async_trait]
impl LeaseBreaker for ExpireLease {
    async fn break_lease(&self, key: &TokenKey) {
        let tables = self.0.tables();
        let (schema, table) = tables.split_once('.').expect("schema.table");
        let expired = sqlx::query(&format!(
            "UPDATE \"{schema}\".\"{table}_leases\" SET expires_at = now() - interval '1 second' \
             WHERE provider = $1 AND account = $2"
        ))
        .bind(key.provider.as_str())
        .bind(key.account.as_str())
        .execute(self.0.pool())
        .await
        .expect("expire the lease row");
        assert_eq!(
            expired.rows_affected(),
            1,
            "no lease row of {key} to expire"
        );
    }
}

/// A key from two ids, which must be valid.
pub(crate) fn key(provider: &str, account: &str) -> TokenKey {
    TokenKey::parse(provider, account).expect("valid test key")
}

/// A token that says which `generation` it is.
pub(crate) fn token(generation: u64) -> TokenSet {
    let issued = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_000_000 + generation);
    TokenSet::new(format!("access-{generation}"), "Bearer", issued)
        .with_refresh_token(format!("refresh-{generation}"))
        .with_expires_in(Duration::from_secs(3600))
        .with_extra("generation", serde_json::json!(generation))
}

/// The generation of a token made by [`token`].
pub(crate) fn generation_of(token: &TokenSet) -> u64 {
    token
        .extras()
        .get("generation")
        .and_then(serde_json::Value::as_u64)
        .expect("the token has a generation")
}
