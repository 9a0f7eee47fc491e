//! The heartbeat: one task per store extends every lease held through it,
//! in one statement, while any lease is held.
//!
//! A task per lease cost two thread hand-offs on every lease (the spawn,
//! and the abort at release) for leases that mostly never need an
//! extension: a refresh usually ends well within a third of the TTL. Here
//! taking and releasing a lease only adds and removes a map entry; the task
//! runs while leases are held, wakes every half heartbeat, and extends the
//! leases that are at least that old, so that no lease goes longer than a
//! heartbeat without one, as before.
//!
//! This module must never extend a lease after its holder released it or
//! after it was found lost, and must mark a lease lost (so that every
//! call through the lease answers `LeaseLost` at once, without a round
//! trip) when its row is gone or no extension has reached the database for
//! a whole TTL. The fence decides either way; this only answers sooner.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use auth_core::TokenKey;
use tokio::time::Instant;
use tracing::warn;

use crate::conn::on_conn;
use crate::error;
use crate::store::Shared;

/// The leases held through one store (and its clones).
#[derive(Debug, Default)]
pub(crate) struct Heartbeats {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// By owner id.
    held: HashMap<i64, Held>,
    /// Whether the task runs; it stops when no lease is held.
    running: bool,
}

#[derive(Debug)]
struct Held {
    key: TokenKey,
    lost: Arc<AtomicBool>,
    /// When the statement that last took or extended it was sent.
    extended_at: Instant,
}

impl Heartbeats {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps the lease of `owner` on `key` alive from now on; `taken_at` is
    /// when the statement that took it was sent.
    pub(crate) fn hold(
        &self,
        shared: &Arc<Shared>,
        key: TokenKey,
        owner: i64,
        lost: Arc<AtomicBool>,
        taken_at: Instant,
    ) {
        let mut state = self.state();
        state.held.insert(
            owner,
            Held {
                key,
                lost,
                extended_at: taken_at,
            },
        );
        let start = !std::mem::replace(&mut state.running, true);
        drop(state);
        if start {
            tokio::spawn(run(Arc::clone(shared)));
        }
    }

    /// Stops extending the lease of `owner` (released, or dropped).
    pub(crate) fn forget(&self, owner: i64) {
        self.state().held.remove(&owner);
    }
}

/// The heartbeat task of one store: runs while leases are held.
async fn run(shared: Arc<Shared>) {
    let tick = (shared.heartbeat / 2).max(Duration::from_millis(1));
    let ttl = shared.lease_ttl;
    loop {
        tokio::time::sleep(tick).await;
        let due: Vec<(i64, TokenKey)> = {
            let mut state = shared.heartbeats.state();
            if state.held.is_empty() {
                state.running = false;
                return;
            }
            state
                .held
                .iter()
                .filter(|(_, held)| held.extended_at.elapsed() >= tick)
                .map(|(owner, held)| (*owner, held.key.clone()))
                .collect()
        };
        let mut lost = Vec::new();
        if !due.is_empty() {
            let sent = Instant::now();
            // A heartbeat that takes longer than the TTL is no heartbeat.
            let extended = tokio::time::timeout(ttl, extend(&shared, &due)).await;
            let mut state = shared.heartbeats.state();
            match extended {
                Ok(Ok(extended)) => {
                    for (owner, _) in &due {
                        if extended.contains(owner) {
                            if let Some(held) = state.held.get_mut(owner) {
                                held.extended_at = sent;
                            }
                        } else if let Some(held) = state.held.remove(owner) {
                            held.lost.store(true, Ordering::Release);
                            lost.push((
                                held.key,
                                "it expired or was taken over before its heartbeat",
                            ));
                        }
                    }
                }
                Ok(Err(err)) => {
                    warn!(leases = due.len(), error = %err, "lease heartbeat failed");
                }
                Err(_) => warn!(leases = due.len(), "lease heartbeat timed out"),
            }
        }
        {
            let mut state = shared.heartbeats.state();
            state.held.retain(|_, held| {
                let silent = held.extended_at.elapsed() >= ttl;
                if silent {
                    held.lost.store(true, Ordering::Release);
                    lost.push((
                        held.key.clone(),
                        "no heartbeat reached the database for a whole TTL",
                    ));
                }
                !silent
            });
        }
        for (key, why) in lost {
            warn!(%key, "lease lost: {why}");
        }
    }
}

/// Extends the leases `due` in one statement; returns the owners whose
/// rows were still theirs and unexpired, and so were extended.
async fn extend(shared: &Shared, due: &[(i64, TokenKey)]) -> auth_core::Result<HashSet<i64>> {
    let ttl_ms = i64::try_from(shared.lease_ttl.as_millis()).unwrap_or(i64::MAX);
    let providers: Vec<&str> = due.iter().map(|(_, key)| key.provider.as_str()).collect();
    let accounts: Vec<&str> = due.iter().map(|(_, key)| key.account.as_str()).collect();
    let owners: Vec<i64> = due.iter().map(|(owner, _)| *owner).collect();
    let extended: Vec<i64> = on_conn!(shared.conns, c => {
        sqlx::query_scalar(&shared.sql.lease_extend)
            .bind(providers)
            .bind(accounts)
            .bind(owners)
            .bind(ttl_ms)
            .fetch_all(c)
    })
    .await
    .map_err(|e| error::from_sqlx(&shared.endpoint, None, "extend the leases", e))?;
    Ok(extended.into_iter().collect())
}
