//! The in-process single flight: one refresh per key at a time. The first
//! caller of a key *leads*, polling the work itself (a task per refresh
//! cost two thread hand-offs, about 90 µs on loopback); the others *follow*
//! and take its answer when it fits their goal. A leader dropped
//! mid-refresh hands the rest to a task, which `shutdown` waits for: a
//! refresh abandoned between the server's answer and the save burns grants.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use futures::FutureExt;
use futures::future::BoxFuture;
use secrecy::ExposeSecret;
use tokio::sync::Notify;
use tracing::warn;

use super::Inner;
use super::decision::Goal;
use super::driver::KeyMap;
use crate::error::{Error, Result};
use crate::id::TokenKey;
use crate::token::TokenSet;

/// What a flight hands its followers.
pub(super) type Outcome = Result<Arc<TokenSet>>;

/// How often a follower may start over when an answer does not fit its goal.
const MAX_ROUNDS: usize = 4;

impl Inner {
    /// Joins the key's flight, or leads a new one, until an answer fits
    /// `goal`.
    pub(super) async fn fly(self: &Arc<Self>, key: &TokenKey, goal: Goal) -> Outcome {
        if matches!(goal, Goal::Takeover { .. }) {
            // A takeover leads its own flight: behind a caller's flight it
            // would wait as long as that caller waits for the lease, and
            // the replay could miss the window.
            let _busy = self.tasks.token();
            return self.drive_caught(key, &goal).await;
        }
        let mut last = None;
        for _ in 0..MAX_ROUNDS {
            let cell = match self.flights.join(key) {
                Ok(mut lead) => {
                    let (inner, key, goal) = (Arc::clone(self), key.clone(), goal.clone());
                    let busy = self.tasks.token();
                    let work = async move {
                        let outcome = inner.drive_caught(&key, &goal).await;
                        lead.close(Some(&outcome));
                        drop(busy);
                        outcome
                    };
                    return FinishOnDrop(Some(work.boxed())).await;
                }
                Err(cell) => cell,
            };
            let Some(outcome) = cell.wait().await else {
                continue;
            };
            // A fresh-goal flight's answer is the answer; a rejected token
            // or another goal's transient error is not.
            let fits = match (&goal, &outcome) {
                (Goal::Replace(_), Ok(t)) => {
                    goal.rejected() != Some(t.access_token().expose_secret())
                }
                (Goal::Fresh, Err(e)) => !e.is_transient() || last.is_some(),
                _ => true,
            };
            if fits {
                return outcome;
            }
            last = Some(outcome);
        }
        last.unwrap_or_else(|| {
            Err(Error::transient(format!(
                "the refresh of {key} kept being superseded; try again"
            )))
        })
    }

    /// [`drive`](Self::drive), with a panic (a bug in the provider or the
    /// store) turned into a transient error.
    async fn drive_caught(self: &Arc<Self>, key: &TokenKey, goal: &Goal) -> Outcome {
        AssertUnwindSafe(self.drive(key, goal))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| {
                Err(Error::transient(format!(
                    "the refresh of {key} panicked (a bug in its provider or store)"
                )))
            })
    }
}

/// The flights in progress, one per key at most.
#[derive(Default)]
pub(super) struct Flights {
    map: KeyMap<Slot>,
    next_id: AtomicU64,
}

/// A flight: its leader's id, and its followers' cell, made by the first
/// follower (most flights have none, and allocate none).
type Slot = (u64, Option<Arc<Cell>>);

impl Flights {
    /// Opens `key`'s flight for the caller to lead, or gives the running
    /// flight's cell to follow.
    fn join(self: &Arc<Self>, key: &TokenKey) -> std::result::Result<Lead, Arc<Cell>> {
        let mut map = self.map.lock();
        if let Some((_, cell)) = map.get_mut(key) {
            return Err(Arc::clone(cell.get_or_insert_with(Arc::default)));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        map.insert(key.clone(), (id, None));
        Ok(Lead {
            flights: Arc::clone(self),
            key: key.clone(),
            id,
            closed: false,
        })
    }

    /// Keys with a flight in progress; for tests of bounded memory.
    pub(super) fn len(&self) -> usize {
        self.map.lock().len()
    }
}

/// A leader's hold on its flight. Dropped unclosed (the work was dropped
/// outside a runtime), it closes it without an answer: followers start over.
struct Lead {
    flights: Arc<Flights>,
    key: TokenKey,
    id: u64,
    closed: bool,
}

impl Lead {
    /// Closes the flight with `outcome`, once. It leaves the map before its
    /// followers are told and after the cache holds the result, so a
    /// newcomer either joins it or finds the result cached.
    fn close(&mut self, outcome: Option<&Outcome>) {
        if std::mem::replace(&mut self.closed, true) {
            return;
        }
        let mut map = self.flights.map.lock();
        if map.get(&self.key).is_none_or(|(held, _)| *held != self.id) {
            return;
        }
        let followers = map.remove(&self.key).and_then(|(_, cell)| cell);
        drop(map);
        if let Some(cell) = followers {
            cell.settle(outcome.cloned());
        }
    }
}

impl Drop for Lead {
    fn drop(&mut self) {
        self.close(None);
    }
}

/// One flight's answer for its followers: `None` if the leader went away
/// without one. (A `tokio::sync::watch` wakes in an order of its own, and
/// the simulation must replay a seed exactly.)
#[derive(Default)]
struct Cell {
    answer: OnceLock<Option<Outcome>>,
    done: Notify,
}

impl Cell {
    fn settle(&self, outcome: Option<Outcome>) {
        let _ = self.answer.set(outcome);
        self.done.notify_waiters();
    }

    /// The flight's answer; `None` if it has none (the caller starts over).
    async fn wait(&self) -> Option<Outcome> {
        loop {
            // Made before the answer is read, so that a settle in between
            // still wakes it.
            let settled = self.done.notified();
            if let Some(outcome) = self.answer.get() {
                return outcome.clone();
            }
            settled.await;
        }
    }
}

/// A leader's work, polled in place; if dropped before it finished, what
/// is left runs in a task.
struct FinishOnDrop(Option<BoxFuture<'static, Outcome>>);

impl Future for FinishOnDrop {
    type Output = Outcome;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        let work = self.0.as_mut().expect("a finished flight is not polled");
        let outcome = std::task::ready!(work.poll_unpin(cx));
        self.0 = None;
        Poll::Ready(outcome)
    }
}

impl Drop for FinishOnDrop {
    fn drop(&mut self) {
        if let Some(work) = self.0.take() {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => drop(runtime.spawn(work)),
                Err(_) => warn!(
                    "a refresh was abandoned outside a Tokio runtime and cannot be finished; \
                     its followers will start over"
                ),
            }
        }
    }
}
