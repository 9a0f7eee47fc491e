//! [`PostgresTokenStore`]: the [`TokenStore`] contract on the tables and
//! statements of the schema module; the writes are the lease's (the lease
//! module).
//!
//! Each operation is one autocommitted statement on a pooled connection,
//! addressed by the primary key (or, for `orphaned`, by a partial index of
//! the rows with a refresh in flight), so its cost does not grow with the
//! table. No statement ever carries a value in its text: ids and tokens are
//! bound parameters.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use auth_core::{
    Error, InFlight, Lease, ProviderId, Result, Sequence, Stored, TokenKey, TokenSet, TokenStore,
    Version,
};
use sqlx::PgPool;
use tracing::warn;

use crate::conn::{Connections, on_conn};
use crate::error::{self, Endpoint};
use crate::lease;
use crate::schema::{Names, Statements};

/// What every clone of a store and every lease share.
pub(crate) struct Shared {
    pub(crate) conns: Connections,
    pub(crate) endpoint: Endpoint,
    pub(crate) names: Names,
    pub(crate) sql: Statements,
    pub(crate) lease_ttl: Duration,
    pub(crate) heartbeat: Duration,
    pub(crate) poll_interval: Duration,
    pub(crate) heartbeats: crate::heartbeat::Heartbeats,
}

/// A row's columns as the statements return them: all NULL but `read_at`
/// when there is no row. Times are microseconds since the Unix epoch.
pub(crate) struct RowCols {
    pub(crate) version: Option<i64>,
    pub(crate) data: Option<String>,
    pub(crate) grant: Option<i64>,
    pub(crate) since: Option<i64>,
    pub(crate) read_at: i64,
}

fn time_of(micros: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_micros(u64::try_from(micros).unwrap_or(0))
}

impl Shared {
    /// Decodes a row's data. NULL data is no token (a tombstone).
    pub(crate) fn decode(&self, key: &TokenKey, data: Option<String>) -> Result<Option<TokenSet>> {
        let Some(data) = data else {
            return Ok(None);
        };
        let table = self.names.display();
        serde_json::from_str(&data).map(Some).map_err(|e| {
            // serde's text can quote a value; keep only what is safe.
            let reason = auth_core::redact::redact(&e.to_string(), &[]);
            error::corrupt(
                &self.endpoint,
                key,
                &table,
                &format!("its data is not a token this version reads ({reason})"),
            )
        })
    }

    /// A row as [`Stored`], or `None` when there is no row.
    pub(crate) fn stored(&self, key: &TokenKey, row: RowCols) -> Result<Option<Stored>> {
        let Some(version) = row.version else {
            return Ok(None);
        };
        Ok(Some(Stored {
            version: Version(version as u64),
            token: self.decode(key, row.data)?,
            grant: Sequence(row.grant.unwrap_or(0) as u64),
            in_flight: row.since.map(|since| InFlight {
                since: time_of(since),
            }),
            read_at: time_of(row.read_at),
        }))
    }
}

/// Tokens in PostgreSQL, shared by every process and host that opens the
/// same tables.
///
/// Open it with [`connect`](Self::connect), [`builder`](Self::builder) or
/// [`from_pool`](Self::from_pool). See the [crate documentation](crate) for
/// the tables, the lease and its fence, connection use and the guarantees.
/// Clones are cheap and share the pool.
#[derive(Clone)]
pub struct PostgresTokenStore {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for PostgresTokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = &self.shared;
        f.debug_struct("PostgresTokenStore")
            .field("endpoint", &s.endpoint.to_string())
            .field("tables", &s.names.display())
            .field("lease_ttl", &s.lease_ttl)
            .field("pool_size", &s.conns.pool().size())
            .finish_non_exhaustive()
    }
}

impl PostgresTokenStore {
    pub(crate) fn from_shared(shared: Shared) -> Self {
        Self {
            shared: Arc::new(shared),
        }
    }

    /// The pool this store uses, for sizing and for sharing with the app.
    pub fn pool(&self) -> &PgPool {
        self.shared.conns.pool()
    }

    /// Where the database is, as `host:port/db` (never the password).
    pub fn endpoint(&self) -> String {
        self.shared.endpoint.to_string()
    }

    /// The tables, as `schema.table` (the leases table is
    /// `schema.table_leases`, the metadata `schema.table_meta`).
    pub fn tables(&self) -> String {
        self.shared.names.display()
    }

    /// Waits (at most the lease TTL) for the releases of dropped leases to
    /// reach the database, then closes the pool. Call it before a
    /// short-lived program exits, so the next run does not wait for this
    /// run's leases to expire. The store (and its clones) cannot be used
    /// afterwards: operations fail as
    /// [`Unavailable`](auth_core::StoreErrorKind::Unavailable).
    pub async fn close(&self) {
        let _ = tokio::time::timeout(self.shared.lease_ttl, lease::RELEASES.idle()).await;
        self.shared.conns.unpark();
        self.shared.conns.pool().close().await;
    }

    fn fail(&self, key: Option<&TokenKey>, what: &str) -> impl FnOnce(sqlx::Error) -> Error {
        let endpoint = self.shared.endpoint.clone();
        let (key, what) = (key.cloned(), what.to_owned());
        move |e| error::from_sqlx(&endpoint, key.as_ref(), &what, e)
    }
}

#[async_trait]
impl TokenStore for PostgresTokenStore {
    async fn load(&self, key: &TokenKey) -> Result<Option<Stored>> {
        let row: Option<(i64, Option<String>, i64, Option<i64>, i64)> =
            on_conn!(self.shared.conns, c => {
                sqlx::query_as(&self.shared.sql.load)
                    .bind(key.provider.as_str())
                    .bind(key.account.as_str())
                    .fetch_optional(c)
            })
            .await
            .map_err(self.fail(Some(key), "load the token"))?;
        let Some((version, data, grant, since, read_at)) = row else {
            return Ok(None);
        };
        self.shared.stored(
            key,
            crate::store::RowCols {
                version: Some(version),
                data,
                grant: Some(grant),
                since,
                read_at,
            },
        )
    }

    async fn list(&self, provider: Option<&ProviderId>) -> Result<Vec<TokenKey>> {
        let query = match provider {
            Some(p) => sqlx::query_as(&self.shared.sql.list_provider).bind(p.as_str()),
            None => sqlx::query_as(&self.shared.sql.list_all),
        };
        let rows: Vec<(String, String)> = on_conn!(self.shared.conns, c => query.fetch_all(c))
            .await
            .map_err(self.fail(None, "list the tokens"))?;
        Ok(self.keys(rows))
    }

    /// Takes the lease and reads the row in one statement (see
    /// [`PgLease`](crate::PgLease)'s `load`).
    async fn lock(&self, key: &TokenKey, wait: Duration) -> Result<Box<dyn Lease>> {
        Ok(Box::new(lease::acquire(&self.shared, key, wait).await?))
    }

    /// One statement on the partial index of rows with a record, oldest
    /// record first. It first waits (at most the lease TTL) for the
    /// releases of leases this process dropped to reach the database, so
    /// that a lease dropped before the call counts as free.
    async fn orphaned(&self, limit: usize) -> Result<Vec<TokenKey>> {
        let _ = tokio::time::timeout(self.shared.lease_ttl, lease::RELEASES.idle()).await;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows: Vec<(String, String)> = on_conn!(self.shared.conns, c => {
            sqlx::query_as(&self.shared.sql.orphaned).bind(limit).fetch_all(c)
        })
        .await
        .map_err(self.fail(None, "list the orphaned refreshes"))?;
        Ok(self.keys(rows))
    }

    fn lease_ttl(&self) -> Option<Duration> {
        Some(self.shared.lease_ttl)
    }
}

impl PostgresTokenStore {
    fn keys(&self, rows: Vec<(String, String)>) -> Vec<TokenKey> {
        rows.into_iter()
            .filter_map(|(p, a)| match TokenKey::parse(&p, &a) {
                Ok(key) => Some(key),
                Err(err) => {
                    warn!(table = %self.shared.names.display(), error = %err, "skipping a row whose ids are not valid (written by hand?)");
                    None
                }
            })
            .collect()
    }
}
