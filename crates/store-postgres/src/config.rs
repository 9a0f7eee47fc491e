//! [`PostgresStoreBuilder`]: names, lease timing, pool sizing and
//! migrations, and the three ways to connect (URL, options, pool).
//!
//! This module must never put the database password into an error, a log
//! line or a `Debug` string: connect options are kept only inside the pool.

use std::time::Duration;

use auth_core::{Error, Result};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::error::Endpoint;
use crate::ident::{Ident, MAX_SCHEMA_LEN, MAX_TABLE_LEN};
use crate::schema::{self, Names, Statements};
use crate::store::{PostgresTokenStore, Shared};

/// Settings for a [`PostgresTokenStore`], then one of
/// [`connect`](Self::connect), [`connect_with`](Self::connect_with) or
/// [`from_pool`](Self::from_pool).
///
/// ```no_run
/// # async fn run() -> auth_core::Result<()> {
/// use std::time::Duration;
/// use store_postgres::PostgresTokenStore;
///
/// let store = PostgresTokenStore::builder()
///     .schema("auth")
///     .table("oauth_tokens")
///     .lease_ttl(Duration::from_secs(10))
///     .max_connections(20)
///     .connect("postgres://app@db.internal/app?sslmode=verify-full&sslrootcert=/etc/ssl/db-ca.pem")
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PostgresStoreBuilder {
    schema: String,
    table: String,
    lease_ttl: Duration,
    heartbeat: Option<Duration>,
    poll_interval: Duration,
    migrate: bool,
    max_connections: u32,
    acquire_timeout: Duration,
}

impl std::fmt::Debug for PostgresStoreBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStoreBuilder")
            .field("schema", &self.schema)
            .field("table", &self.table)
            .field("lease_ttl", &self.lease_ttl)
            .field("migrate", &self.migrate)
            .field("max_connections", &self.max_connections)
            .finish_non_exhaustive()
    }
}

impl Default for PostgresStoreBuilder {
    fn default() -> Self {
        Self {
            schema: PostgresTokenStore::DEFAULT_SCHEMA.to_owned(),
            table: PostgresTokenStore::DEFAULT_TABLE.to_owned(),
            lease_ttl: PostgresTokenStore::DEFAULT_LEASE_TTL,
            heartbeat: None,
            poll_interval: PostgresTokenStore::DEFAULT_POLL_INTERVAL,
            migrate: true,
            max_connections: PostgresTokenStore::DEFAULT_MAX_CONNECTIONS,
            acquire_timeout: PostgresTokenStore::DEFAULT_ACQUIRE_TIMEOUT,
        }
    }
}

impl PostgresTokenStore {
    /// The default schema.
    pub const DEFAULT_SCHEMA: &'static str = "public";
    /// The default table name.
    pub const DEFAULT_TABLE: &'static str = "token_keeper_tokens";
    /// The default lease TTL: a dead or cut-off holder's lease frees at most
    /// this long after its last heartbeat.
    pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(10);
    /// The default longest pause between two tries of a waiting `lock`.
    pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(100);
    /// The default pool size of a pool this crate creates.
    pub const DEFAULT_MAX_CONNECTIONS: u32 = 10;
    /// How long an operation waits for a pooled connection (or for the
    /// database to accept one) by default before it fails as
    /// [`Unavailable`](auth_core::StoreErrorKind::Unavailable).
    pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

    /// Settings, starting from the defaults.
    pub fn builder() -> PostgresStoreBuilder {
        PostgresStoreBuilder::default()
    }

    /// Connects with the default settings to the database at `url`
    /// (`postgres://user:password@host:port/db?sslmode=…`), creating or
    /// migrating the tables. See [`PostgresStoreBuilder::connect`].
    ///
    /// # Errors
    ///
    /// As [`PostgresStoreBuilder::connect`].
    pub async fn connect(url: &str) -> Result<Self> {
        Self::builder().connect(url).await
    }

    /// Uses an existing pool with the default settings. See
    /// [`PostgresStoreBuilder::from_pool`].
    ///
    /// # Errors
    ///
    /// As [`PostgresStoreBuilder::from_pool`].
    pub async fn from_pool(pool: PgPool) -> Result<Self> {
        Self::builder().from_pool(pool).await
    }
}

impl PostgresStoreBuilder {
    /// The schema of the tables (default `public`). Created if missing when
    /// migrations run. ASCII letters, digits and `_` only.
    #[must_use]
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// The tokens table (default `token_keeper_tokens`); the leases and
    /// metadata tables take its name plus `_leases` and `_meta`. ASCII
    /// letters, digits and `_`, at most 48 bytes.
    #[must_use]
    pub fn table(mut self, table: impl Into<String>) -> Self {
        self.table = table.into();
        self
    }

    /// How long a lease lives without a heartbeat (default 10 s, at least
    /// 100 ms): the bound on how long a dead or cut-off holder keeps a key.
    /// The heartbeat extends it every third of this.
    #[must_use]
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl.max(Duration::from_millis(100));
        self
    }

    /// The longest pause between two tries of a waiting `lock` (default
    /// 100 ms). Waits start at 5 ms and double up to this, with jitter.
    #[must_use]
    pub fn lock_poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// Whether to create and migrate the tables on connect (default
    /// `true`). With `false`, the tables must exist (a deploy job made
    /// them), and the store only checks that it can read them.
    #[must_use]
    pub fn migrate(mut self, migrate: bool) -> Self {
        self.migrate = migrate;
        self
    }

    /// The pool size when this crate creates the pool (default 10). See the
    /// crate docs on sizing: every in-flight store operation uses one
    /// connection for one statement; a held lease uses none between its
    /// heartbeats.
    #[must_use]
    pub fn max_connections(mut self, max: u32) -> Self {
        self.max_connections = max.max(1);
        self
    }

    /// How long an operation waits for a connection when this crate creates
    /// the pool (default 5 s), including connecting to a database that
    /// refuses connections; past it the operation fails as
    /// [`Unavailable`](auth_core::StoreErrorKind::Unavailable).
    #[must_use]
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// Connects to the database at `url`: `postgres://` or
    /// `postgresql://`, with libpq's parameters (`sslmode=verify-full`,
    /// `sslrootcert=/path/ca.pem`, `application_name`, …).
    ///
    /// # Errors
    ///
    /// [`Error::Configuration`] for a malformed URL, bad names, a failed
    /// login, a missing database or tables needing a newer reader;
    /// [`Unavailable`](auth_core::StoreErrorKind::Unavailable) when the
    /// database cannot be reached. Messages name `host:port/db`, never the
    /// password.
    pub async fn connect(self, url: &str) -> Result<PostgresTokenStore> {
        let options = parse_url(url)?;
        self.connect_with(options).await
    }

    /// Connects with ready-made options.
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect).
    pub async fn connect_with(self, options: PgConnectOptions) -> Result<PostgresTokenStore> {
        let endpoint = Endpoint::of(&options);
        let pool = PgPoolOptions::new()
            .max_connections(self.max_connections)
            .acquire_timeout(self.acquire_timeout)
            // A ping before every statement would double the round trips; a
            // dead connection fails its statement once (Unavailable) and is
            // dropped from the pool.
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await;
        let pool = match pool {
            Ok(pool) => pool,
            Err(sqlx::Error::PoolTimedOut) => {
                let cause = crate::conn::diagnose(&options).await;
                return Err(crate::error::from_sqlx(&endpoint, None, "connect", cause));
            }
            Err(e) => return Err(crate::error::from_sqlx(&endpoint, None, "connect", e)),
        };
        self.finish(pool, endpoint).await
    }

    /// Uses an existing pool, shared with the app. Its size and timeouts
    /// are the app's; see the crate docs on sizing.
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect), but for the URL.
    pub async fn from_pool(self, pool: PgPool) -> Result<PostgresTokenStore> {
        let endpoint = Endpoint::of_pool(&pool);
        self.finish(pool, endpoint).await
    }

    async fn finish(self, pool: PgPool, endpoint: Endpoint) -> Result<PostgresTokenStore> {
        let names = Names {
            schema: Ident::new("schema", &self.schema, MAX_SCHEMA_LEN)?,
            table: Ident::new("table", &self.table, MAX_TABLE_LEN)?,
        };
        if self.migrate {
            schema::migrate(&pool, &endpoint, &names).await?;
        }
        schema::check_reader_version(&pool, &endpoint, &names).await?;
        Ok(PostgresTokenStore::from_shared(Shared {
            sql: Statements::new(&names),
            conns: crate::conn::Connections::new(pool),
            endpoint,
            names,
            lease_ttl: self.lease_ttl,
            heartbeat: self.heartbeat.unwrap_or(self.lease_ttl / 3),
            poll_interval: self.poll_interval,
            heartbeats: crate::heartbeat::Heartbeats::default(),
        }))
    }
}

/// Parses a store URL without ever echoing it (it may hold a password).
pub(crate) fn parse_url(url: &str) -> Result<PgConnectOptions> {
    let scheme_ok = url.starts_with("postgres://") || url.starts_with("postgresql://");
    if !scheme_ok {
        return Err(Error::configuration(
            "the PostgreSQL store URL must start with postgres:// or postgresql:// \
             (for example postgres://user@host:5432/db)",
        ));
    }
    url.parse::<PgConnectOptions>().map_err(|e| {
        let password = url::Url::parse(url)
            .ok()
            .and_then(|u| u.password().map(str::to_owned));
        let secrets: Vec<&str> = password.iter().map(String::as_str).collect();
        Error::configuration(format!(
            "the PostgreSQL store URL is not valid: {}; check it against \
             postgres://user:password@host:port/db?sslmode=verify-full",
            auth_core::redact::redact(&e.to_string(), &secrets)
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_url_is_a_configuration_error_without_the_password() {
        for bad in [
            "mysql://u:hunter2pw@h/db",
            "postgres://u:hunter2pw@h:notaport/db",
            "postgres://u:hunter2pw@h/db?sslmode=sometimes",
        ] {
            let err = parse_url(bad).expect_err(bad);
            assert!(matches!(err, Error::Configuration { .. }), "{err}");
            assert!(!err.to_string().contains("hunter2pw"), "{err}");
            assert!(!format!("{err:?}").contains("hunter2pw"), "{err:?}");
        }
    }

    #[test]
    fn builder_debug_shows_settings() {
        let text = format!("{:?}", PostgresTokenStore::builder().table("t"));
        assert!(
            text.contains("\"t\"") && text.contains("lease_ttl"),
            "{text}"
        );
    }
}
