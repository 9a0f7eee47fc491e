//! Connections for the store's statements: the pool, and one connection
//! kept back from it between statements.
//!
//! sqlx checks every connection handed back to a pool with a ping (a round
//! trip, from a spawned task) before anyone else may have it. The store
//! sends one short statement per operation, so those pings doubled the
//! round trips the database served, and the task hand-offs cost the client
//! as much CPU again. So the connection of a statement that ran to its end
//! is parked here for the next statement instead of going back: nothing is
//! left unread on it, so it needs no check.
//!
//! This module must never park a connection that may be mid-statement (a
//! cancelled or failed statement's connection goes back to the pool, whose
//! ping drains it or closes it), and never keep one from the pool for long:
//! a parked connection goes back after [`LINGER`] unused, at once when the
//! pool is closed, and when the store is dropped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection as _, PgConnection, PgPool, Postgres};
use tokio::time::Instant;

/// How long a parked connection may go unused before it goes back to the
/// pool. Short, so that an app sharing the pool is never a connection short
/// for longer than this; long enough to span the gaps between the
/// statements of a busy store.
pub(crate) const LINGER: Duration = Duration::from_millis(50);

/// The pool, and the connection parked between statements.
#[derive(Debug)]
pub(crate) struct Connections {
    pool: PgPool,
    parked: Arc<Parked>,
}

#[derive(Debug, Default)]
struct Parked {
    slot: Mutex<Option<Idle>>,
    /// Whether a task watches the slot, to hand an unused connection back
    /// after [`LINGER`], or at once when the pool closes.
    watched: AtomicBool,
}

#[derive(Debug)]
struct Idle {
    /// Always `Some` until dropped.
    conn: Option<PoolConnection<Postgres>>,
    since: Instant,
}

impl Drop for Idle {
    fn drop(&mut self) {
        // sqlx hands a connection back to its pool from a task, which needs
        // a runtime; a store dropped after its runtime closes it here.
        if tokio::runtime::Handle::try_current().is_err()
            && let Some(conn) = self.conn.take()
        {
            drop(conn.detach());
        }
    }
}

impl Parked {
    fn slot(&self) -> MutexGuard<'_, Option<Idle>> {
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn take(&self) -> Option<Idle> {
        self.slot().take()
    }
}

impl Connections {
    pub(crate) fn new(pool: PgPool) -> Self {
        Self {
            pool,
            parked: Arc::default(),
        }
    }

    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// A connection for one statement: the parked one, or one from the pool.
    pub(crate) async fn checkout(&self) -> Result<Checkout<'_>, sqlx::Error> {
        let parked = self.parked.take().and_then(|mut idle| idle.conn.take());
        let conn = match parked {
            Some(conn) if !self.pool.is_closed() => conn,
            // Nothing runs once the pool is closed: the parked connection
            // goes back to be closed, and `acquire` fails.
            _ => match self.pool.acquire().await {
                Ok(conn) => conn,
                Err(sqlx::Error::PoolTimedOut) => {
                    return Err(diagnose(&self.pool.connect_options()).await);
                }
                Err(err) => return Err(err),
            },
        };
        Ok(Checkout {
            owner: self,
            conn: Some(conn),
        })
    }

    /// Hands the parked connection back to the pool (before closing it).
    pub(crate) fn unpark(&self) {
        drop(self.parked.take());
    }

    fn park(&self, conn: PoolConnection<Postgres>) {
        let mut slot = self.parked.slot();
        // A closed pool waits for its connections to come back.
        if slot.is_some() || self.pool.is_closed() {
            drop(slot);
            drop(conn);
            return;
        }
        *slot = Some(Idle {
            conn: Some(conn),
            since: Instant::now(),
        });
        drop(slot);
        if !self.parked.watched.swap(true, Ordering::AcqRel) {
            self.watch();
        }
    }

    /// Starts the task that hands the parked connection back once it has
    /// gone unused for [`LINGER`], or at once when the pool closes. It stops
    /// when it finds the slot empty; the next park starts another.
    fn watch(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime to run the watcher: keep nothing back.
            self.parked.watched.store(false, Ordering::Release);
            self.unpark();
            return;
        };
        let parked = Arc::clone(&self.parked);
        let pool = self.pool.clone();
        runtime.spawn(async move {
            let closed = pool.close_event();
            tokio::pin!(closed);
            let mut deadline = Instant::now() + LINGER;
            loop {
                let closing = tokio::select! {
                    () = &mut closed => true,
                    () = tokio::time::sleep_until(deadline) => false,
                };
                let mut slot = parked.slot();
                match slot.as_ref() {
                    Some(idle) if !closing && idle.since.elapsed() < LINGER => {
                        deadline = idle.since + LINGER;
                    }
                    // Unused for LINGER, the pool closing, or the connection
                    // in use (parked again, it gets a new watcher).
                    _ => {
                        let idle = slot.take();
                        parked.watched.store(false, Ordering::Release);
                        drop(slot);
                        drop(idle);
                        return;
                    }
                }
            }
        });
    }
}

/// How long [`diagnose`] waits for the server to answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Finds out why the pool timed out. sqlx retries a refused connection
/// until the acquire timeout and then reports only "pool timed out", which
/// hides the root cause; so connect once more, directly, and return what
/// that meets ("connection refused", a DNS failure, a failed login, no
/// answer within [`PROBE_TIMEOUT`]). If that connection succeeds, the pool
/// really was busy, and the timeout is the answer.
pub(crate) async fn diagnose(options: &PgConnectOptions) -> sqlx::Error {
    match tokio::time::timeout(PROBE_TIMEOUT, PgConnection::connect_with(options)).await {
        Ok(Ok(conn)) => {
            drop(conn.close().await);
            sqlx::Error::PoolTimedOut
        }
        Ok(Err(err)) => err,
        Err(_) => sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!(
                "no answer from the server within {}s",
                PROBE_TIMEOUT.as_secs()
            ),
        )),
    }
}

/// A connection taken for one statement. [`finish`](Self::finish) parks it
/// if the statement succeeded; dropped unfinished (the statement failed or
/// was cancelled mid-way), it goes back to the pool, which checks it.
pub(crate) struct Checkout<'a> {
    owner: &'a Connections,
    conn: Option<PoolConnection<Postgres>>,
}

impl Checkout<'_> {
    /// The connection, to run one statement on.
    pub(crate) fn conn(&mut self) -> &mut PgConnection {
        self.conn.as_mut().expect("present until finished")
    }

    /// Passes the statement's result through, parking the connection if it
    /// succeeded.
    pub(crate) fn finish<T>(mut self, result: Result<T, sqlx::Error>) -> Result<T, sqlx::Error> {
        if result.is_ok()
            && let Some(conn) = self.conn.take()
        {
            self.owner.park(conn);
        }
        result
    }
}

/// Runs one statement on a connection from [`Connections::checkout`],
/// parking the connection if the statement succeeds:
/// `on_conn!(conns, c => query.fetch_optional(c)).await`.
macro_rules! on_conn {
    ($conns:expr, $c:ident => $statement:expr) => {
        async {
            let mut checkout = $conns.checkout().await?;
            let $c = checkout.conn();
            let result = $statement.await;
            checkout.finish(result)
        }
    };
}
pub(crate) use on_conn;
