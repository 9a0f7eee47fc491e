//! Helpers shared by the integration tests: stores in schemas of their
//! own on the shared cluster, SQL that breaks leases and rows, and a
//! freezable proxy. The cluster, the recognizable tokens, child processes
//! and captured logs come from `test_support`.

#![allow(dead_code)] // Each test binary uses its own subset.

pub(crate) mod proxy;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use auth_core::conformance::{Corrupter, LeaseBreaker};
use auth_core::{Expect, Record, TokenKey, TokenSet, TokenStore, async_trait};
use store_postgres::{PostgresStoreBuilder, PostgresTokenStore};
use test_support::postgres;

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
        .connect(postgres::shared().url())
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
        .connect(postgres::shared().url())
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
/// with no heartbeat: how a Postgres lease is lost.
pub(crate) async fn expire_lease(store: &PostgresTokenStore, key: &TokenKey) {
    let expired = sqlx::query(&format!(
        "UPDATE {} SET expires_at = now() - interval '1 second' \
         WHERE provider = $1 AND account = $2",
        quoted(store, "_leases")
    ))
    .bind(key.provider.as_str())
    .bind(key.account.as_str())
    .execute(store.pool())
    .await
    .expect("expire the lease row");
    assert_eq!(
        expired.rows_affected(),
        1,
        "no lease row of {key} to expire"
    );
}

/// Expires the lease row of a key through SQL, as if its TTL had passed
/// with no heartbeat: how a Postgres lease is lost, for the conformance
/// suite.
pub(crate) struct ExpireLease(pub(crate) PostgresTokenStore);

#[async_trait]
impl LeaseBreaker for ExpireLease {
    async fn break_lease(&self, key: &TokenKey) {
        expire_lease(&self.0, key).await;
    }
}

/// Garbles a row's data in place, through SQL, the way a bad manual edit
/// or a buggy migration would; repairs by deleting the row, as a person
/// would after looking at it.
pub(crate) struct Garble(pub(crate) PostgresTokenStore);

#[async_trait]
impl Corrupter for Garble {
    async fn corrupt(&self, key: &TokenKey) {
        let garbled = sqlx::query(&format!(
            "UPDATE {} SET data = '{{\"format\": 1, \"garbled\": true}}'::jsonb \
             WHERE provider = $1 AND account = $2",
            quoted(&self.0, "")
        ))
        .bind(key.provider.as_str())
        .bind(key.account.as_str())
        .execute(self.0.pool())
        .await
        .expect("garble the row");
        assert_eq!(garbled.rows_affected(), 1, "no row of {key} to garble");
    }

    async fn repair(&self, key: &TokenKey) {
        sqlx::query(&format!(
            "DELETE FROM {} WHERE provider = $1 AND account = $2",
            quoted(&self.0, "")
        ))
        .bind(key.provider.as_str())
        .bind(key.account.as_str())
        .execute(self.0.pool())
        .await
        .expect("delete the garbled row");
    }
}

/// A table of `store` (`suffix` "" for the tokens, "_leases", "_meta"),
/// quoted for SQL.
pub(crate) fn quoted(store: &PostgresTokenStore, suffix: &str) -> String {
    let tables = store.tables();
    let (schema, table) = tables.split_once('.').expect("schema.table");
    format!("\"{schema}\".\"{table}{suffix}\"")
}

/// The schema of `store`'s tables.
pub(crate) fn schema_of(store: &PostgresTokenStore) -> String {
    let tables = store.tables();
    tables.split_once('.').expect("schema.table").0.to_owned()
}

/// A store on the tables of `store` whose connections go through a new
/// [`proxy::FreezableProxy`] (to freeze, or to count statements), with
/// the default lease TTL unless `ttl` says otherwise.
pub(crate) async fn through_proxy(
    store: &PostgresTokenStore,
    ttl: Option<Duration>,
) -> (PostgresTokenStore, proxy::FreezableProxy) {
    let target: std::net::SocketAddr = ([127, 0, 0, 1], postgres::shared().port()).into();
    let proxy = proxy::FreezableProxy::start(target).await;
    let options: store_postgres::PgConnectOptions = postgres::shared().url().parse().expect("url");
    let via = builder(&schema_of(store))
        .lease_ttl(ttl.unwrap_or(PostgresTokenStore::DEFAULT_LEASE_TTL))
        .connect_with(options.port(proxy.port()))
        .await
        .expect("connect through the proxy");
    (via, proxy)
}

/// Saves `token` under a new lease over whatever is stored (a create, or a
/// compare-and-swap on the version loaded), releasing the lease; returns
/// the new version.
pub(crate) async fn put(
    store: &PostgresTokenStore,
    key: &TokenKey,
    token: &TokenSet,
) -> auth_core::Version {
    let lease = store
        .lock(key, Duration::from_secs(10))
        .await
        .expect("lock to put");
    let expect = match lease.load().await.expect("load to put") {
        Some(stored) => Expect::Version(stored.version),
        None => Expect::Absent,
    };
    lease
        .save_and_release(token, expect, Record::Clear)
        .await
        .expect("put")
}

/// The token stored for `key`, which must be there.
pub(crate) async fn stored_token(store: &PostgresTokenStore, key: &TokenKey) -> TokenSet {
    store
        .load(key)
        .await
        .expect("load")
        .expect("a row")
        .token
        .expect("a token")
}
