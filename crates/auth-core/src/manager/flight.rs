//! The in-process single flight: one refresh per key at a time, whatever
//! the number of callers. The work that
//! [`TokenManager::shutdown`](super::TokenManager::shutdown) waits for is
//! counted by a `tokio_util` [`TaskTracker`]: a flight's leader holds one of
//! its tokens, and background work is spawned on it.
//!
//! The first caller of a key *leads*: it polls the refresh work itself (no
//! task hop: spawning every refresh cost two thread hand-offs, about 90 µs
//! on loopback). Everyone else *follows*, waiting for the leader's result.
//! A leader dropped mid-refresh hands its unfinished work to a task: a
//! refresh abandoned between the server's answer and the save is how
//! grants get burned.

use futures::future::BoxFuture;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use tokio::sync::Notify;
use tokio_util::task::TaskTracker;
use tracing::warn;

use crate::error::Result;
use crate::id::TokenKey;
use crate::token::TokenSet;

/// What a flight hands its followers.
pub(super) type Outcome = Result<Arc<TokenSet>>;

/// One flight's result, for its followers. Made by the first follower: a
/// flight nobody joins (almost every refresh) allocates none.
#[derive(Default)]
struct Cell {
    /// `None` while running; `Some(None)` when the leader went away
    /// without an outcome.
    state: Mutex<Option<Option<Outcome>>>,
    done: Notify,
}

impl Cell {
    fn settle(&self, outcome: Option<Outcome>) {
        *lock(&self.state) = Some(outcome);
        self.done.notify_waiters();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A flight in the map: its leader's id, and its followers' cell.
type Slot = (u64, Option<Arc<Cell>>);

/// The flights in progress, one per key at most; keyed with `foldhash`.
#[derive(Default)]
pub(super) struct Flights {
    map: Mutex<HashMap<TokenKey, Slot, foldhash::fast::RandomState>>,
    next_id: AtomicU64,
}

/// A follower's view of a flight.
pub(super) struct Receiver(Arc<Cell>);

/// What the leader reports through. Dropped without reporting (the work
/// was dropped unfinished), it closes the flight and tells the followers.
pub(super) struct Sender {
    flights: Arc<Flights>,
    key: TokenKey,
    id: u64,
    reported: bool,
}

impl Drop for Sender {
    fn drop(&mut self) {
        if !self.reported
            && let Some(cell) = self.flights.close(&self.key, self.id)
        {
            cell.settle(None);
        }
    }
}

/// Either the caller leads a new flight, or it follows one.
pub(super) enum Joined {
    /// Lead: run the work and report through the sender.
    Lead(Sender),
    /// Follow: wait for this flight's outcome.
    Follow(Receiver),
}

impl Flights {
    /// Joins `key`'s flight, or opens one for the caller to lead.
    pub(super) fn join(self: &Arc<Self>, key: &TokenKey) -> Joined {
        let mut map = lock(&self.map);
        if let Some((_, cell)) = map.get_mut(key) {
            let cell = cell.get_or_insert_with(Arc::default);
            return Joined::Follow(Receiver(Arc::clone(cell)));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        map.insert(key.clone(), (id, None));
        Joined::Lead(Sender {
            flights: Arc::clone(self),
            key: key.clone(),
            id,
            reported: false,
        })
    }

    /// Removes flight `id` of `key`; its cell, if it has followers.
    fn close(&self, key: &TokenKey, id: u64) -> Option<Arc<Cell>> {
        let mut map = lock(&self.map);
        if map.get(key).is_some_and(|(held, _)| *held == id) {
            return map.remove(key).and_then(|(_, cell)| cell);
        }
        None
    }

    /// Closes the sender's flight with `outcome`. The flight leaves the map
    /// before its followers are told, and only after the cache holds the
    /// result, so a newcomer either joins it or finds the result cached.
    pub(super) fn finish(mut sender: Sender, outcome: &Outcome) {
        sender.reported = true;
        if let Some(cell) = sender.flights.close(&sender.key, sender.id) {
            cell.settle(Some(outcome.clone()));
        }
    }

    /// Waits for a followed flight. `None`: its work was dropped unfinished
    /// (outside a runtime); the caller starts over.
    pub(super) async fn follow(flight: Receiver) -> Option<Outcome> {
        loop {
            // Created before the state is read, so a settle in between
            // still wakes it.
            let settled = flight.0.done.notified();
            if let Some(outcome) = &*lock(&flight.0.state) {
                return outcome.clone();
            }
            settled.await;
        }
    }

    /// Keys with a flight in progress; for tests of bounded memory.
    pub(super) fn len(&self) -> usize {
        lock(&self.map).len()
    }
}

/// Refresh work owned by its leader.
pub(super) type Work = BoxFuture<'static, Outcome>;

/// Polls `work` in place and, if dropped before it finished, spawns what
/// is left.
pub(super) struct FinishOnDrop(Option<Work>);

impl FinishOnDrop {
    /// Runs `work` to completion, here or (if dropped first) in a task.
    pub(super) fn run(work: Work) -> Self {
        Self(Some(work))
    }
}

impl Future for FinishOnDrop {
    type Output = Outcome;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        let work = self.0.as_mut().expect("a finished flight is not polled");
        let outcome = std::task::ready!(work.as_mut().poll(cx));
        self.0 = None;
        Poll::Ready(outcome)
    }
}

impl Drop for FinishOnDrop {
    fn drop(&mut self) {
        let Some(work) = self.0.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn(work)),
            Err(_) => warn!(
                "a refresh was abandoned outside a Tokio runtime and cannot be finished; \
                 its followers will start over"
            ),
        }
    }
}

/// Spawns background work (a save, a guard) that
/// [`shutdown`](super::TokenManager::shutdown) waits for, if there is a
/// runtime.
pub(super) fn spawn_tracked<F>(tasks: &TaskTracker, work: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => drop(tasks.spawn_on(work, &runtime)),
        Err(_) => warn!("background token work needs a Tokio runtime; none is running"),
    }
}
