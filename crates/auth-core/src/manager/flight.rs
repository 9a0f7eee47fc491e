//! The in-process single flight: one refresh per key at a time, whatever
//! the number of callers, and the task tracking that lets
//! [`TokenManager::shutdown`](super::TokenManager::shutdown) wait for them.
//!
//! The first caller of a key *leads*: it polls the refresh work itself (no
//! task hop: spawning every refresh cost two thread hand-offs, about 90 µs on
//! loopback). Everyone else *follows*, waiting for the leader's result in
//! the flight's [`Cell`]. A leader dropped mid-refresh hands its unfinished work
//! to a spawned task: a refresh abandoned between the server rotating the
//! refresh token and the new pair being saved is how grants get burned.

use std::future::Future;
use std::hash::BuildHasher as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use hashbrown::HashTable;
use hashbrown::hash_table::Entry;
use tokio::sync::Notify;
use tracing::warn;

use crate::error::Result;
use crate::id::TokenKey;
use crate::token::TokenSet;

/// What a flight hands its followers.
pub(super) type Outcome = Result<Arc<TokenSet>>;

/// One flight's result, for its followers: a lock and a [`Notify`], which
/// cost a fraction of a `watch` channel (whose sender wakes eight shards of
/// waiters on every send and again when dropped). Made by the first
/// follower: a flight nobody joins (almost every refresh) allocates none.
struct Cell {
    state: Mutex<State>,
    done: Notify,
}

enum State {
    Running,
    Done(Outcome),
    /// The leader went away without an outcome.
    Abandoned,
}

impl Cell {
    fn new() -> Self {
        Self {
            state: Mutex::new(State::Running),
            done: Notify::new(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Settles the flight and wakes the followers.
    fn settle(&self, state: State) {
        *self.state() = state;
        self.done.notify_waiters();
    }
}

/// A flight in the map: which leader's it is, and its followers' cell, if
/// anyone follows.
struct Slot {
    id: u64,
    cell: Option<Arc<Cell>>,
}

/// A follower's view of a flight.
pub(super) struct Receiver(Arc<Cell>);

/// What the leader reports its result through. Dropped without reporting
/// (the work was dropped unfinished), it closes the flight and tells the
/// followers so.
pub(super) struct Sender {
    flights: Arc<Flights>,
    key: TokenKey,
    /// The key's hash, computed once when the flight opened.
    hash: u64,
    id: u64,
    reported: bool,
}

impl Drop for Sender {
    fn drop(&mut self) {
        if !self.reported
            && let Some(cell) = self.flights.close(&self.key, self.hash, self.id)
        {
            cell.settle(State::Abandoned);
        }
    }
}

/// A table rather than a map, so that a flight hashes its key once, when
/// it opens, and closes with the same hash (a map hashes on every call:
/// four times a flight). Keyed with `foldhash`, seeded per process, like the
/// cache: SipHash made hashing the key most of what a lookup cost.
type Map = HashTable<(TokenKey, Slot)>;

/// The flights in progress, one per key at most.
#[derive(Default)]
pub(super) struct Flights {
    map: Mutex<Map>,
    hasher: foldhash::fast::RandomState,
    next_id: AtomicU64,
}

/// Either the caller leads a new flight (and must call `finish`), or it
/// follows an existing one.
pub(super) enum Joined {
    /// Lead: run the work and report through the sender.
    Lead(Sender),
    /// Follow: wait for this flight's outcome.
    Follow(Receiver),
}

impl Flights {
    fn map(&self) -> std::sync::MutexGuard<'_, Map> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Joins `key`'s flight, or opens one for the caller to lead.
    pub(super) fn join(self: &Arc<Self>, key: &TokenKey) -> Joined {
        let hash = self.hasher.hash_one(key);
        let mut map = self.map();
        let id = match map.entry(hash, |(k, _)| k == key, |(k, _)| self.hasher.hash_one(k)) {
            Entry::Occupied(mut flight) => {
                let cell = flight
                    .get_mut()
                    .1
                    .cell
                    .get_or_insert_with(|| Arc::new(Cell::new()));
                return Joined::Follow(Receiver(Arc::clone(cell)));
            }
            Entry::Vacant(slot) => {
                let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                slot.insert((key.clone(), Slot { id, cell: None }));
                id
            }
        };
        Joined::Lead(Sender {
            flights: Arc::clone(self),
            key: key.clone(),
            hash,
            id,
            reported: false,
        })
    }

    /// Removes flight `id` of `key` from the map; its cell, if it has
    /// followers.
    fn close(&self, key: &TokenKey, hash: u64, id: u64) -> Option<Arc<Cell>> {
        let mut map = self.map();
        match map.find_entry(hash, |(k, flight)| k == key && flight.id == id) {
            Ok(flight) => flight.remove().0.1.cell,
            Err(_) => None,
        }
    }

    /// Closes the sender's flight with `outcome`. The flight leaves the map
    /// before its followers are told, and only after the cache holds the
    /// result, so a newcomer either joins it or finds the result cached.
    pub(super) fn finish(mut sender: Sender, outcome: &Outcome) {
        sender.reported = true;
        if let Some(cell) = sender.flights.close(&sender.key, sender.hash, sender.id) {
            cell.settle(State::Done(outcome.clone()));
        }
    }

    /// Waits for a followed flight. `None` means its work was dropped
    /// unfinished (its leader went away outside a runtime; the flight is
    /// closed already): the caller should start over.
    pub(super) async fn follow(flight: Receiver) -> Option<Outcome> {
        loop {
            // Created before the state is read, so that a settle in between
            // still wakes it.
            let settled = flight.0.done.notified();
            match &*flight.0.state() {
                State::Running => {}
                State::Done(outcome) => return Some(outcome.clone()),
                State::Abandoned => return None,
            }
            settled.await;
        }
    }

    /// Keys with a flight in progress; for tests of bounded memory.
    pub(super) fn len(&self) -> usize {
        self.map().len()
    }
}

/// Refresh work owned by its leader.
pub(super) type Work = BoxFuture<'static, Outcome>;

/// Drives unfinished work to completion in a task when its leader goes
/// away: a future that polls the work in place and, if dropped before the
/// work finished, spawns what is left. (A future of its own rather than an
/// `async fn`, so that it adds no state machine to every poll of a
/// flight.)
pub(super) struct FinishOnDrop {
    work: Option<Work>,
}

impl FinishOnDrop {
    /// Runs `work` to completion, here or (if this future is dropped first)
    /// in a spawned task.
    pub(super) fn run(work: Work) -> Self {
        Self { work: Some(work) }
    }
}

impl Future for FinishOnDrop {
    type Output = Outcome;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        let work = self
            .work
            .as_mut()
            .expect("a finished flight is not polled again");
        let outcome = std::task::ready!(work.as_mut().poll(cx));
        self.work = None;
        Poll::Ready(outcome)
    }
}

impl Drop for FinishOnDrop {
    fn drop(&mut self) {
        let Some(work) = self.work.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(work);
            }
            Err(_) => warn!(
                "a refresh was abandoned outside a Tokio runtime and cannot be finished; \
                 its followers will start over"
            ),
        }
    }
}

/// Counts the manager's work in progress (flights, background saves), so
/// that shutdown can wait for it.
#[derive(Default)]
pub(super) struct Tasks {
    running: AtomicUsize,
    /// Callers in [`wait_idle`](Self::wait_idle). The last unit of work
    /// wakes them only when there are any: every refresh finishes the
    /// manager's only unit of work, and waking nobody still took
    /// [`Notify`]'s lock.
    waiting: AtomicUsize,
    idle: Notify,
}

/// One caller of [`Tasks::wait_idle`], counted while it waits.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One unit of tracked work; dropping it marks the work done.
pub(super) struct Busy(Arc<Tasks>);

impl Tasks {
    /// Marks one unit of work as started.
    pub(super) fn start(self: &Arc<Self>) -> Busy {
        self.running.fetch_add(1, Ordering::SeqCst);
        Busy(Arc::clone(self))
    }

    /// Units of work in progress.
    pub(super) fn running(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }

    /// Waits until no work is in progress, or `timeout` passes. Returns
    /// whether everything finished.
    pub(super) async fn wait_idle(&self, timeout: Duration) -> bool {
        // Counted before `running` is read: either the last unit of work
        // sees this waiter and wakes it, or this waiter sees it done (both
        // sides use sequentially consistent operations).
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let _waiting = Waiting(&self.waiting);
        let wait = async {
            loop {
                let idle = self.idle.notified();
                if self.running() == 0 {
                    return;
                }
                idle.await;
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok()
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        if self.0.running.fetch_sub(1, Ordering::SeqCst) == 1
            && self.0.waiting.load(Ordering::SeqCst) > 0
        {
            self.0.idle.notify_waiters();
        }
    }
}

/// Spawns tracked background work, if there is a runtime.
pub(super) fn spawn_tracked<F>(tasks: &Arc<Tasks>, work: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    let busy = tasks.start();
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn(async move {
                // Catch a panic so the count still goes down.
                let _ = std::panic::AssertUnwindSafe(work).catch_unwind().await;
                drop(busy);
            });
        }
        Err(_) => warn!("background token work needs a Tokio runtime; none is running"),
    }
}
