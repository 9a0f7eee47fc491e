//! Key leases: one row per held key in the leases table, owned by a random
//! id, expiring on the database's clock, extended by the store's heartbeat
//! (the heartbeat module) while held.
//!
//! This module must never hold a transaction or a connection while a lease
//! is held: each step (take, extend, check, release) is one autocommitted
//! statement on a pooled connection. And it must never leave a row behind
//! that nobody will release: a `lock` future dropped mid-statement, and a
//! lease dropped without [`PgLease::release`], hand the release to a task.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use auth_core::{KeyLock, Result, TokenKey};
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::conn::on_conn;
use crate::error;
use crate::store::Shared;

/// A lease on one key, from [`PostgresTokenStore::lock`]: the key's row in
/// the leases table, with this lease's random owner id, kept alive by the
/// store's heartbeat until it is dropped or released.
///
/// Dropping it releases it from a spawned task (drop cannot wait for the
/// database); [`release`](Self::release) does it now. If neither can run
/// (no runtime, the host died, the network is cut), the row expires
/// [`lease_ttl`](crate::PostgresStoreBuilder::lease_ttl) after its last
/// heartbeat, on the database's clock.
///
/// [`PostgresTokenStore::lock`]: auth_core::TokenStore::lock
pub struct PgLease {
    key: TokenKey,
    owner: i64,
    shared: Arc<Shared>,
    lost: Arc<AtomicBool>,
    released: bool,
}

impl std::fmt::Debug for PgLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgLease")
            .field("key", &self.key)
            .field("owner", &self.owner)
            .field("endpoint", &self.shared.endpoint)
            .field("lost", &self.lost.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl PgLease {
    /// This lease's owner id: the fencing token its writes carry.
    pub fn owner(&self) -> i64 {
        self.owner
    }

    /// Releases the lease now and waits for the database to confirm it.
    ///
    /// # Errors
    ///
    /// [`Unavailable`](auth_core::StoreErrorKind::Unavailable) when the
    /// database cannot be reached; the lease then expires on its own.
    pub async fn release(mut self) -> Result<()> {
        self.stop_heartbeat();
        self.released = true;
        release_row(&self.shared, &self.key, self.owner).await
    }

    /// Whether the heartbeat found the lease gone (then no statement can
    /// find it held).
    pub(crate) fn known_lost(&self) -> bool {
        self.lost.load(Ordering::Acquire)
    }

    /// Whether the row is still ours, as the fence sees it.
    pub(crate) async fn held(&self) -> Result<bool> {
        let row: Option<i32> = on_conn!(self.shared.conns, c => {
            sqlx::query_scalar(&self.shared.sql.lease_check)
                .bind(self.key.provider.as_str())
                .bind(self.key.account.as_str())
                .bind(self.owner)
                .fetch_optional(c)
        })
        .await
        .map_err(|e| {
            error::from_sqlx(&self.shared.endpoint, Some(&self.key), "check the lease", e)
        })?;
        Ok(row.is_some())
    }

    fn stop_heartbeat(&self) {
        self.shared.heartbeats.forget(self.owner);
    }
}

impl Drop for PgLease {
    fn drop(&mut self) {
        self.stop_heartbeat();
        if !self.released {
            spawn_release(&self.shared, &self.key, self.owner);
        }
    }
}

#[async_trait]
impl KeyLock for PgLease {
    fn key(&self) -> &TokenKey {
        &self.key
    }

    async fn check(&self) -> Result<()> {
        if !self.known_lost() && self.held().await? {
            Ok(())
        } else {
            Err(error::lease_lost(
                &self.shared.endpoint,
                &self.key,
                "the lease check",
            ))
        }
    }
}

async fn release_row(shared: &Shared, key: &TokenKey, owner: i64) -> Result<()> {
    on_conn!(shared.conns, c => {
        sqlx::query(&shared.sql.lease_release)
            .bind(key.provider.as_str())
            .bind(key.account.as_str())
            .bind(owner)
            .execute(c)
    })
    .await
    .map_err(|e| error::from_sqlx(&shared.endpoint, Some(key), "release the lease", e))?;
    Ok(())
}

/// Deletes the row of `owner` from a task, if there is a runtime to run it;
/// otherwise the row expires.
fn spawn_release(shared: &Arc<Shared>, key: &TokenKey, owner: i64) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        debug!(%key, "lease dropped outside a runtime; it frees when it expires");
        return;
    };
    let (shared, key) = (Arc::clone(shared), key.clone());
    shared.releases.started();
    runtime.spawn(async move {
        if let Err(err) = release_row(&shared, &key, owner).await {
            warn!(%key, error = %err, "could not release a lease; it frees when it expires");
        }
        shared.releases.finished();
    });
}

/// Releases a row this process may have taken, if dropped before
/// [`disarm`](Self::disarm): a `lock` cancelled while its insert was in
/// flight cannot know whether it won, so it releases just in case (the
/// owner id is unique to this attempt, so it can only delete its own row).
struct Unclaimed<'a> {
    shared: &'a Arc<Shared>,
    key: &'a TokenKey,
    owner: i64,
    armed: bool,
}

impl Unclaimed<'_> {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for Unclaimed<'_> {
    fn drop(&mut self) {
        if self.armed {
            spawn_release(self.shared, self.key, self.owner);
        }
    }
}

/// Takes the lease on `key`, polling until `wait` runs out.
pub(crate) async fn acquire(
    shared: &Arc<Shared>,
    key: &TokenKey,
    wait: Duration,
) -> Result<PgLease> {
    let owner: i64 = rand::random();
    let deadline = Instant::now() + wait;
    let ttl_ms = i64::try_from(shared.lease_ttl.as_millis()).unwrap_or(i64::MAX);
    let mut pause = Duration::from_millis(5).min(shared.poll_interval);
    loop {
        let attempt = Unclaimed {
            shared,
            key,
            owner,
            armed: true,
        };
        let sent = Instant::now();
        let won: Option<i64> = on_conn!(shared.conns, c => {
            sqlx::query_scalar(&shared.sql.lease_acquire)
                .bind(key.provider.as_str())
                .bind(key.account.as_str())
                .bind(owner)
                .bind(ttl_ms)
                .fetch_optional(c)
        })
        .await
        .map_err(|e| error::from_sqlx(&shared.endpoint, Some(key), "take the lease", e))?;
        attempt.disarm();
        if won.is_some() {
            let lost = Arc::new(AtomicBool::new(false));
            shared
                .heartbeats
                .hold(shared, key.clone(), owner, Arc::clone(&lost), sent);
            return Ok(PgLease {
                key: key.clone(),
                owner,
                shared: Arc::clone(shared),
                lost,
                released: false,
            });
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(error::lock_timeout(&shared.endpoint, key, wait));
        }
        // Jitter keeps many waiters from polling in step.
        let jitter = 0.75 + rand::random::<f64>() / 2.0;
        tokio::time::sleep(pause.mul_f64(jitter).min(deadline - now)).await;
        pause = (pause * 2).min(shared.poll_interval);
    }
}

/// Counts lease releases handed to tasks, so that
/// [`PostgresTokenStore::close`](crate::PostgresTokenStore::close) can wait
/// for them before a short-lived program exits.
#[derive(Debug, Default)]
pub(crate) struct Releases {
    pending: std::sync::atomic::AtomicUsize,
    idle: tokio::sync::Notify,
}

impl Releases {
    fn started(&self) {
        self.pending.fetch_add(1, Ordering::AcqRel);
    }

    fn finished(&self) {
        if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle.notify_waiters();
        }
    }

    /// Returns when no release is in flight.
    pub(crate) async fn idle(&self) {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.pending.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}
