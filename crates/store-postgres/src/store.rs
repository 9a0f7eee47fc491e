//! [`PostgresTokenStore`]: the [`TokenStore`] contract on the tables and
//! statements of the schema module and the leases of the lease module.
//!
//! Each operation is one autocommitted statement on a pooled connection
//! (a failed compare-and-swap adds one read to say why), addressed by the
//! primary key, so its cost does not grow with the table. No statement
//! ever carries a value in its text: ids and tokens are bound parameters.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use auth_core::{
    Error, KeyLock, ProviderId, Result, TokenKey, TokenSet, TokenStore, Version, Versioned,
};
use sqlx::PgPool;
use tracing::warn;

use crate::conn::{Connections, on_conn};
use crate::error::{self, Endpoint};
use crate::lease::{self, PgLease};
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
    pub(crate) releases: lease::Releases,
    pub(crate) heartbeats: crate::heartbeat::Heartbeats,
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

/// A row as it is, read when a fast compare-and-swap wrote nothing.
struct Row {
    version: i64,
    deleted: bool,
    data: Option<String>,
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

    /// The lease TTL: how long after its last heartbeat a lease whose
    /// holder died or was cut off frees.
    pub fn lease_ttl(&self) -> Duration {
        self.shared.lease_ttl
    }

    /// Waits (at most the lease TTL) for the releases of dropped leases to
    /// reach the database, then closes the pool. Call it before a
    /// short-lived program exits, so the next run does not wait for this
    /// run's leases to expire. The store (and its clones) cannot be used
    /// afterwards: operations fail as
    /// [`Unavailable`](auth_core::StoreErrorKind::Unavailable).
    pub async fn close(&self) {
        let _ = tokio::time::timeout(self.shared.lease_ttl, self.shared.releases.idle()).await;
        self.shared.conns.unpark();
        self.shared.conns.pool().close().await;
    }

    fn fail(&self, key: Option<&TokenKey>, what: &str) -> impl FnOnce(sqlx::Error) -> Error {
        let endpoint = self.shared.endpoint.clone();
        let (key, what) = (key.cloned(), what.to_owned());
        move |e| error::from_sqlx(&endpoint, key.as_ref(), &what, e)
    }

    fn decode(&self, key: &TokenKey, data: Option<String>) -> Result<TokenSet> {
        let table = self.shared.names.display();
        let data = data.ok_or_else(|| {
            error::corrupt(&self.shared.endpoint, key, &table, "its data is NULL")
        })?;
        serde_json::from_str(&data).map_err(|e| {
            // serde's text can quote a value; keep only what is safe.
            let reason = auth_core::redact::redact(&e.to_string(), &[]);
            error::corrupt(
                &self.shared.endpoint,
                key,
                &table,
                &format!("its data is not a token this version reads ({reason})"),
            )
        })
    }

    async fn row(&self, key: &TokenKey) -> Result<Option<Row>> {
        let row: Option<(i64, bool, Option<String>)> = on_conn!(self.shared.conns, c => {
            sqlx::query_as(&self.shared.sql.row)
                .bind(key.provider.as_str())
                .bind(key.account.as_str())
                .fetch_optional(c)
        })
        .await
        .map_err(self.fail(Some(key), "read the token's row"))?;
        Ok(row.map(|(version, deleted, data)| Row {
            version,
            deleted,
            data,
        }))
    }

    /// One compare-and-swap statement; `None` when it wrote nothing.
    async fn write(
        &self,
        key: &TokenKey,
        data: &str,
        expected: Option<i64>,
        owner: Option<i64>,
        read: Option<&str>,
    ) -> Result<Option<Version>> {
        let sql = &self.shared.sql;
        let statement = match (expected, owner, read) {
            (None, None, _) => &sql.create,
            (None, Some(_), _) => &sql.create_fenced,
            (Some(_), None, None) => &sql.update,
            (Some(_), Some(_), None) => &sql.update_fenced,
            (Some(_), None, Some(_)) => &sql.update_exact,
            (Some(_), Some(_), Some(_)) => &sql.update_exact_fenced,
        };
        let mut statement = sqlx::query_scalar::<_, i64>(statement)
            .bind(key.provider.as_str())
            .bind(key.account.as_str())
            .bind(data);
        if let Some(expected) = expected {
            statement = statement.bind(expected);
        }
        if let Some(owner) = owner {
            statement = statement.bind(owner);
        }
        if let Some(read) = read {
            statement = statement.bind(read);
        }
        let version = on_conn!(self.shared.conns, c => statement.fetch_optional(c))
            .await
            .map_err(self.fail(Some(key), "save the token"))?;
        Ok(version.map(|v| Version(v as u64)))
    }

    /// A compare-and-swap save, fenced by `lease` when given.
    ///
    /// The fast path is one statement, which replaces only data a store
    /// wrote and nobody touched since. When it writes nothing, the row is
    /// read to say why: a lost lease, another version, or data this code
    /// cannot decode (never overwritten). Data edited by hand that still
    /// decodes is replaced by a second statement that checks it is exactly
    /// the data just read.
    async fn save_with(
        &self,
        key: &TokenKey,
        token: &TokenSet,
        expected: Option<Version>,
        lease: Option<&PgLease>,
    ) -> Result<Version> {
        let data = serde_json::to_string(token).expect("a token set always serializes to JSON");
        let owner = lease.map(PgLease::owner);
        let conflict = |current: Option<Version>| {
            error::conflict(&self.shared.endpoint, key, expected, current)
        };
        let expected_db = match expected.map(|v| i64::try_from(v.0)) {
            None => None,
            Some(Ok(v)) => Some(v),
            // No stored version is that large.
            Some(Err(_)) => return Err(conflict(self.load(key).await?.map(|v| v.version))),
        };
        if let Some(version) = self.write(key, &data, expected_db, owner, None).await? {
            return Ok(version);
        }
        if let Some(lease) = lease
            && !lease.held().await?
        {
            return Err(error::lease_lost(
                &self.shared.endpoint,
                key,
                "the fenced save",
            ));
        }
        let row = match self.row(key).await? {
            Some(row) if !row.deleted => row,
            _ => return Err(conflict(None)),
        };
        // Decoding first means damaged data is reported, whatever the
        // caller expected.
        self.decode(key, row.data.clone())?;
        let current = Version(row.version as u64);
        if expected_db != Some(row.version) {
            return Err(conflict(Some(current)));
        }
        let read = row.data.as_deref();
        match self.write(key, &data, expected_db, owner, read).await? {
            Some(version) => Ok(version),
            None => Err(conflict(self.load(key).await?.map(|v| v.version))),
        }
    }

    fn own_lease<'a>(&self, lease: &'a dyn KeyLock) -> Result<&'a PgLease> {
        (lease as &dyn std::any::Any)
            .downcast_ref::<PgLease>()
            .ok_or_else(|| {
                Error::invalid_input(format!(
                    "a fenced read or write of the PostgreSQL token store at {} was given a \
                     lease from another kind of store ({lease:?}); take the lease with this \
                     store's lock",
                    self.shared.endpoint
                ))
            })
    }
}

#[async_trait]
impl TokenStore for PostgresTokenStore {
    async fn load(&self, key: &TokenKey) -> Result<Option<Versioned<TokenSet>>> {
        let row: Option<(i64, Option<String>)> = on_conn!(self.shared.conns, c => {
            sqlx::query_as(&self.shared.sql.load)
                .bind(key.provider.as_str())
                .bind(key.account.as_str())
                .fetch_optional(c)
        })
        .await
        .map_err(self.fail(Some(key), "load the token"))?;
        row.map(|(version, data)| {
            Ok(Versioned {
                value: self.decode(key, data)?,
                version: Version(version as u64),
            })
        })
        .transpose()
    }

    async fn save(
        &self,
        key: &TokenKey,
        token: &TokenSet,
        expected: Option<Version>,
    ) -> Result<Version> {
        self.save_with(key, token, expected, None).await
    }

    async fn delete(&self, key: &TokenKey) -> Result<bool> {
        let version: Option<i64> = on_conn!(self.shared.conns, c => {
            sqlx::query_scalar(&self.shared.sql.delete)
                .bind(key.provider.as_str())
                .bind(key.account.as_str())
                .fetch_optional(c)
        })
        .await
        .map_err(self.fail(Some(key), "delete the token"))?;
        Ok(version.is_some())
    }

    async fn list(&self, provider: Option<&ProviderId>) -> Result<Vec<TokenKey>> {
        let query = match provider {
            Some(p) => sqlx::query_as(&self.shared.sql.list_provider).bind(p.as_str()),
            None => sqlx::query_as(&self.shared.sql.list_all),
        };
        let rows: Vec<(String, String)> = on_conn!(self.shared.conns, c => query.fetch_all(c))
            .await
            .map_err(self.fail(None, "list the tokens"))?;
        Ok(rows
            .into_iter()
            .filter_map(|(p, a)| match TokenKey::parse(&p, &a) {
                Ok(key) => Some(key),
                Err(err) => {
                    warn!(table = %self.shared.names.display(), error = %err, "skipping a row whose ids are not valid (written by hand?)");
                    None
                }
            })
            .collect())
    }

    async fn lock(&self, key: &TokenKey, wait: Duration) -> Result<Box<dyn KeyLock>> {
        Ok(Box::new(lease::acquire(&self.shared, key, wait).await?))
    }

    async fn save_leased(
        &self,
        lease: &dyn KeyLock,
        token: &TokenSet,
        expected: Option<Version>,
    ) -> Result<Version> {
        let lease = self.own_lease(lease)?;
        self.save_with(lease.key(), token, expected, Some(lease))
            .await
    }

    /// One statement, so one snapshot: the lease row and the token row are
    /// read together. It runs after the statement that took the lease had
    /// committed, and that statement waited for the row lock of any fenced
    /// write of the previous holder, so the token read is the newest one
    /// (see the crate docs, "The lease").
    async fn load_leased(&self, lease: &dyn KeyLock) -> Result<Option<Versioned<TokenSet>>> {
        let lease = self.own_lease(lease)?;
        let key = lease.key();
        let lost = || error::lease_lost(&self.shared.endpoint, key, "the fenced load");
        if lease.known_lost() {
            return Err(lost());
        }
        let (held, version, data): (bool, Option<i64>, Option<String>) =
            on_conn!(self.shared.conns, c => {
                sqlx::query_as(&self.shared.sql.load_leased)
                    .bind(key.provider.as_str())
                    .bind(key.account.as_str())
                    .bind(lease.owner())
                    .fetch_one(c)
            })
            .await
            .map_err(self.fail(Some(key), "load the token"))?;
        if !held {
            return Err(lost());
        }
        version
            .map(|version| {
                Ok(Versioned {
                    value: self.decode(key, data)?,
                    version: Version(version as u64),
                })
            })
            .transpose()
    }

    async fn delete_leased(&self, lease: &dyn KeyLock) -> Result<bool> {
        let lease = self.own_lease(lease)?;
        let key = lease.key();
        let version: Option<i64> = on_conn!(self.shared.conns, c => {
            sqlx::query_scalar(&self.shared.sql.delete_fenced)
                .bind(key.provider.as_str())
                .bind(key.account.as_str())
                .bind(lease.owner())
                .fetch_optional(c)
        })
        .await
        .map_err(self.fail(Some(key), "delete the token"))?;
        match version {
            Some(_) => Ok(true),
            None if !lease.held().await? => Err(error::lease_lost(
                &self.shared.endpoint,
                key,
                "the fenced delete",
            )),
            None => Ok(false),
        }
    }
}
