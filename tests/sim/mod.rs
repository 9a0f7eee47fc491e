//! The seeded fault simulation of the refresh protocol (issue 11): many
//! [`TokenManager`](auth_core::TokenManager)s standing for processes, one
//! shared store behind a fault-injecting wrapper, and a strict single-use
//! server model, all on a `current_thread` Tokio runtime with the clock
//! paused, so that one seed always gives the same run.
//!
//! - `chaos`: the seeded RNG every choice comes from, and the fault rates;
//! - `server`: the authorization server model and the per-process provider;
//! - `store`: the fault-injecting store wrapper;
//! - `world`: processes, accounts, random operations and the checks (a)–(e).
//!
//! It must never use real time, sockets or threads: a run is a pure
//! function of its seed.

#![allow(dead_code)]

pub(crate) mod chaos;
pub(crate) mod rig;
pub(crate) mod server;
pub(crate) mod store;
pub(crate) mod world;

use std::time::{Duration, SystemTime};

use auth_core::Clock;

/// A wall clock that follows Tokio's (paused) clock from a fixed base, so
/// token expiry moves with `tokio::time::advance` and auto-advance.
#[derive(Debug)]
pub(crate) struct SimClock {
    base: SystemTime,
    start: tokio::time::Instant,
}

impl SimClock {
    /// A clock reading a fixed date now. Call inside the runtime.
    pub(crate) fn new() -> Self {
        Self {
            base: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            start: tokio::time::Instant::now(),
        }
    }
}

impl Clock for SimClock {
    fn now(&self) -> SystemTime {
        self.base + self.start.elapsed()
    }
}

/// Silences the panics the simulation injects on purpose (the manager
/// catches them); any other panic still prints.
pub(crate) fn quiet_injected_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let injected = info
                .payload()
                .downcast_ref::<&str>()
                .is_some_and(|s| s.starts_with(server::INJECTED_PANIC));
            if !injected {
                previous(info);
            }
        }));
    });
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
