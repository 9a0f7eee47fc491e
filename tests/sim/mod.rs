//! The seeded fault simulation of the refresh protocol: many
//! [`TokenManager`](auth_core::TokenManager)s standing for processes, each
//! with its own clock and a `Refresher`, one model store whose leases
//! expire and fence like Postgres's, and a strict server that rotates
//! single-use refresh tokens and supersedes an older grant on new consent;
//! all on a `current_thread` Tokio runtime with the clock paused, so one
//! seed always gives the same run.
//!
//! - `chaos`: the seeded RNG every choice comes from, and the fault rates;
//! - `life`: which process is alive, paused or dead, and when;
//! - `store`: the model store and each process's faulty view of it;
//! - `server`: the authorization server model and each process's provider;
//! - `checker`: names the cause of every burned grant and checks the end
//!   state against the server;
//! - `world`: processes, accounts, random operations;
//! - `rig`: a small fixed world for the named regression tests.
//!
//! It never uses real time, sockets or threads: a run is a pure function
//! of its seed.

#![allow(dead_code)]

pub(crate) mod chaos;
pub(crate) mod checker;
pub(crate) mod life;
pub(crate) mod rig;
pub(crate) mod server;
pub(crate) mod store;
pub(crate) mod world;

use std::cell::Cell;
use std::time::{Duration, SystemTime};

use auth_core::Clock;
use tokio::time::Instant;

/// The true date at the start of every run.
const BASE: Duration = Duration::from_secs(1_800_000_000);

thread_local! {
    /// The paused clock's reading when this thread's run began.
    static ORIGIN: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Marks the start of a run on this thread (inside its runtime).
pub(crate) fn start_time() {
    ORIGIN.with(|o| o.set(Some(Instant::now())));
}

/// The true wall time at paused-clock instant `t`: what the store and the
/// server read.
pub(crate) fn wall(t: Instant) -> SystemTime {
    let origin = ORIGIN.with(Cell::get).unwrap_or(t);
    SystemTime::UNIX_EPOCH + BASE + t.saturating_duration_since(origin)
}

/// A process's wall clock: the true time plus its own error, which may be
/// minutes either way. Token expiry on that host follows it.
#[derive(Debug)]
pub(crate) struct SimClock {
    /// Milliseconds this clock runs ahead (negative: behind).
    offset_ms: i64,
}

impl SimClock {
    /// A clock that is `offset_ms` off the true time.
    pub(crate) fn new(offset_ms: i64) -> Self {
        Self { offset_ms }
    }
}

impl Clock for SimClock {
    fn now(&self) -> SystemTime {
        let t = wall(Instant::now());
        let off = Duration::from_millis(self.offset_ms.unsigned_abs());
        if self.offset_ms >= 0 {
            t + off
        } else {
            t - off
        }
    }
}

/// A current-thread runtime with the clock paused: time moves only when
/// every task waits on a timer, and then jumps.
pub(crate) fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime")
}
