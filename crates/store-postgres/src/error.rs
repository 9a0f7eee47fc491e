//! The store's failures, as [`auth_core::Error`] values that say what
//! failed, against which database (`host:port/db`), for which key, and what
//! to do next.
//!
//! No message here may contain a token or the database password: they name
//! the endpoint, versions and SQLSTATE codes only. Server messages (which
//! can quote a user name, never a password) are passed through.

use std::fmt;
use std::time::Duration;

use auth_core::{Error, StoreErrorKind, TokenKey};
use sqlx::postgres::PgConnectOptions;

/// Where the store's database is, for messages: `host:port/db`, or the
/// socket directory for a Unix-socket connection. It never holds the
/// password or the user name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint(String);

impl Endpoint {
    pub(crate) fn of(options: &PgConnectOptions) -> Self {
        let db = options.get_database().unwrap_or("(default database)");
        let place = match options.get_socket() {
            Some(dir) => format!("{}:{}", dir.display(), options.get_port()),
            None => format!("{}:{}", options.get_host(), options.get_port()),
        };
        Self(format!("{place}/{db}"))
    }

    /// An endpoint for a pool handed in by the caller.
    pub(crate) fn of_pool(pool: &sqlx::PgPool) -> Self {
        Self::of(&pool.connect_options())
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// SQLSTATE codes that mean the database cannot serve now but may soon:
/// class 08 (connection exception), 53 (insufficient resources), 57P01-57P03
/// (shutdown, crash recovery, not yet accepting connections), 57014 (a
/// statement timeout), 40001/40P01 (serialization failure, deadlock).
fn is_transient_code(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("53")
        || matches!(
            code,
            "57P01" | "57P02" | "57P03" | "57014" | "40001" | "40P01"
        )
}

/// SQLSTATE codes that mean the setup is wrong: class 28 (failed login),
/// 3D000 (no such database), 3F000 (no such schema), 42501 (permission
/// denied), 42P01 (no such table: migrations were not run).
fn is_configuration_code(code: &str) -> bool {
    code.starts_with("28") || matches!(code, "3D000" | "3F000" | "42501" | "42P01")
}

/// What an I/O error while talking to the server means, in words: the root
/// cause first ("connection refused"), then what to check.
fn io_hint(kind: std::io::ErrorKind) -> &'static str {
    use std::io::ErrorKind as K;
    match kind {
        K::ConnectionRefused => {
            "connection refused: nothing accepts connections at that address; check that \
             PostgreSQL is running and listens there, and the host and port in the store URL; \
             the stored tokens are intact, try again"
        }
        K::TimedOut | K::WouldBlock => {
            "connecting timed out: the server did not answer (a host that is down, or a \
             firewall that drops the packets?); the stored tokens are intact, try again"
        }
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof => {
            "the connection was cut (the server restarting or shutting down?); the stored \
             tokens are intact, try again"
        }
        K::NotFound => {
            "the address could not be found (a host name that does not resolve, or a socket \
             directory without a server?); check the host in the store URL"
        }
        _ => {
            "check that the server is running and reachable from this host; the stored tokens \
             are intact, try again"
        }
    }
}

/// Maps a sqlx error met while trying to `what` into the workspace error.
pub(crate) fn from_sqlx(
    endpoint: &Endpoint,
    key: Option<&TokenKey>,
    what: &str,
    err: sqlx::Error,
) -> Error {
    let at = format!("PostgreSQL token store at {endpoint}");
    let (kind, hint) = match &err {
        // What rustls reports when it refuses the server's certificate.
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => (
            None,
            "the server's TLS certificate was refused: check the store URL's sslmode and \
             sslrootcert (the CA that signed the server's certificate), and that the host name \
             is one the certificate names",
        ),
        sqlx::Error::Io(io) => (Some(StoreErrorKind::Unavailable), io_hint(io.kind())),
        // Only when a connection to the server could be made meanwhile
        // (see `conn::diagnose`): otherwise the error is the one connecting
        // met.
        sqlx::Error::PoolTimedOut => (
            Some(StoreErrorKind::Unavailable),
            "the server accepts connections, but every connection of the store's pool stayed \
             busy for the whole acquire timeout: raise the pool size (max_connections) or the \
             acquire timeout, or lower the load; the stored tokens are intact, try again",
        ),
        sqlx::Error::WorkerCrashed => (
            Some(StoreErrorKind::Unavailable),
            "check that the server is running and reachable from this host; the stored tokens \
             are intact, try again",
        ),
        sqlx::Error::PoolClosed => (
            Some(StoreErrorKind::Unavailable),
            "the store's connection pool was closed; open the store again",
        ),
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            if is_transient_code(&code) {
                (
                    Some(StoreErrorKind::Unavailable),
                    "the database is restarting or overloaded; the stored tokens are intact, try \
                     again",
                )
            } else if is_configuration_code(&code) {
                (
                    None,
                    "check the user name, password, database, schema and table in the store URL \
                     or options, and that the user may use them (run the migrations if the \
                     tables are missing)",
                )
            } else {
                (
                    Some(StoreErrorKind::Other),
                    "run with RUST_LOG=store_postgres=debug and report it",
                )
            }
        }
        sqlx::Error::Tls(_) | sqlx::Error::Configuration(_) => (
            None,
            "check the store URL and its TLS settings (sslmode, sslrootcert)",
        ),
        _ => (
            Some(StoreErrorKind::Other),
            "run with RUST_LOG=store_postgres=debug and report it",
        ),
    };
    let message = format!("{at}: could not {what}: {err}; {hint}");
    match kind {
        Some(kind) => Error::store(kind, key.cloned(), message).with_source(err),
        None => Error::configuration(message).with_source(err),
    }
}

/// A compare-and-swap that found something else than `expected`: another
/// version, a tombstone, no row, or a newer grant.
pub(crate) fn conflict(endpoint: &Endpoint, key: &TokenKey, expected: &str, found: &str) -> Error {
    Error::store(
        StoreErrorKind::Conflict,
        Some(key.clone()),
        format!(
            "PostgreSQL token store at {endpoint}: expected {expected}, found {found}; nothing \
             was written. Reload the token and try again"
        ),
    )
}

/// A lease that could not be had within the wait.
pub(crate) fn lock_timeout(endpoint: &Endpoint, key: &TokenKey, wait: Duration) -> Error {
    Error::store(
        StoreErrorKind::LockTimeout,
        Some(key.clone()),
        format!(
            "PostgreSQL token store at {endpoint}: could not take the key lock (lease) within \
             {}: another process or host holds it (a refresh in progress?). Try again; a \
             holder that died frees it when its lease expires",
            auth_core::human_duration(wait)
        ),
    )
}

/// A fenced write or a check by a holder whose lease is gone.
pub(crate) fn lease_lost(endpoint: &Endpoint, key: &TokenKey, what: &str) -> Error {
    Error::store(
        StoreErrorKind::LeaseLost,
        Some(key.clone()),
        format!(
            "PostgreSQL token store at {endpoint}: {what} refused: this process's lease on the \
             key expired or was taken over (it was cut off from the database for longer than \
             the lease TTL); nothing was written. Reload the token and try again"
        ),
    )
}

/// Stored data this code cannot decode.
pub(crate) fn corrupt(endpoint: &Endpoint, key: &TokenKey, table: &str, reason: &str) -> Error {
    Error::store(
        StoreErrorKind::Corrupt,
        Some(key.clone()),
        format!(
            "PostgreSQL token store at {endpoint}: the row of {key} in {table} cannot be read: \
             {reason}. It was left untouched: inspect it, then delete the key (or fix the row) \
             and authorize the account again"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_names_host_port_and_database_only() {
        let options: PgConnectOptions = "postgres://app:hunter2-secret@db.example:6543/tokens"
            .parse()
            .unwrap();
        let endpoint = Endpoint::of(&options);
        assert_eq!(endpoint.to_string(), "db.example:6543/tokens");
        assert!(!format!("{endpoint:?}").contains("hunter2"));
    }

    #[test]
    fn refused_connections_are_transient_and_name_the_endpoint() {
        let endpoint = Endpoint("db:5432/app".into());
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let err = from_sqlx(&endpoint, None, "connect", sqlx::Error::Io(io));
        assert_eq!(err.store_kind(), Some(StoreErrorKind::Unavailable));
        assert!(err.is_transient());
        assert!(err.to_string().contains("db:5432/app"), "{err}");
        assert!(err.to_string().contains("connection refused"), "{err}");
        let err = from_sqlx(&endpoint, None, "connect", sqlx::Error::PoolTimedOut);
        assert_eq!(err.store_kind(), Some(StoreErrorKind::Unavailable));
        assert!(err.to_string().contains("busy"), "{err}");
    }

    #[test]
    fn a_lock_timeout_says_the_wait_in_words() {
        let endpoint = Endpoint("db:5432/app".into());
        let key = TokenKey::parse("p", "a").unwrap();
        let err = lock_timeout(&endpoint, &key, Duration::from_millis(14_942));
        assert!(err.to_string().contains("within 15s:"), "{err}");
        assert!(!err.to_string().contains("ms"), "{err}");
    }

    #[test]
    fn sqlstate_classes() {
        assert!(is_transient_code("57P01"));
        assert!(is_transient_code("08006"));
        assert!(!is_transient_code("23505"));
        assert!(is_configuration_code("28P01"));
        assert!(is_configuration_code("3D000"));
        assert!(!is_configuration_code("57P01"));
    }
}
