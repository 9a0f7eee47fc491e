//! The life of each simulated process: alive, paused or dead, and a log of
//! when, for the checker.
//!
//! Every store and server call a process makes passes its [`Life::gate`]
//! on the way in and on the way out. A paused process waits there until
//! its pause ends; a dead one waits forever, so nothing it started ever
//! reaches the store or the server again, and nothing it does is undone:
//! its leases stay held until they expire (or, on a store whose leases die
//! with their process, are freed at once), exactly as after a `SIGKILL`.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use auth_core::AccountId;
use tokio::sync::Notify;
use tokio::time::Instant;

/// One process's state.
#[derive(Debug, Clone, Default)]
pub(crate) struct ProcLife {
    /// When it died, if it did.
    pub(crate) died: Option<Instant>,
    /// Its pauses, start and end (the end may lie in the future).
    pub(crate) pauses: Vec<(Instant, Instant)>,
    /// When it started.
    pub(crate) born: Option<Instant>,
}

impl ProcLife {
    /// Whether it is alive and running (not paused) at `t`.
    pub(crate) fn running_at(&self, t: Instant) -> bool {
        self.born.is_some_and(|b| b <= t)
            && self.died.is_none_or(|d| t < d)
            && !self.pauses.iter().any(|&(a, b)| a <= t && t < b)
    }

    /// Whether it was paused or dead at some moment in `[from, to]`.
    pub(crate) fn stopped_within(&self, from: Instant, to: Instant) -> bool {
        self.died.is_some_and(|d| d <= to) || self.pauses.iter().any(|&(a, b)| a <= to && from < b)
    }
}

/// What else a death ends (a store whose leases die with their process).
pub(crate) type OnDeath = Box<dyn Fn(usize) + Send + Sync>;

/// Every process's life.
#[derive(Default)]
pub(crate) struct Life {
    procs: Mutex<Vec<ProcLife>>,
    /// Woken at every death.
    deaths: Notify,
    /// Woken when every pause is ended early (the end of a run): a paused
    /// process must then run at once, as the checker's record of its life
    /// says.
    woken: Notify,
    on_death: Mutex<Vec<OnDeath>>,
    /// The run's trace: what happened, in order, per account (`None`: a
    /// process event).
    journal: Mutex<Vec<(Option<AccountId>, String)>>,
}

impl std::fmt::Debug for Life {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Life")
            .field("procs", &self.lock().len())
            .finish()
    }
}

impl Life {
    fn lock(&self) -> MutexGuard<'_, Vec<ProcLife>> {
        self.procs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A new process, running from now; returns its number.
    pub(crate) fn add(&self) -> usize {
        let mut procs = self.lock();
        procs.push(ProcLife {
            born: Some(Instant::now()),
            ..ProcLife::default()
        });
        procs.len() - 1
    }

    /// Adds a line to the trace, stamped with the time since the start.
    pub(crate) fn note(&self, account: Option<&AccountId>, line: String) {
        let at = super::server::stamp(Instant::now());
        self.journal
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((account.cloned(), format!("@{at} {line}")));
    }

    /// The trace lines of `account` and of the processes.
    pub(crate) fn journal(&self, account: Option<&AccountId>) -> Vec<String> {
        self.journal
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(a, _)| a.is_none() || a.as_ref() == account)
            .map(|(_, l)| l.clone())
            .collect()
    }

    /// A digest of the whole trace, every account's lines in order: two
    /// runs of one seed that interleave differently anywhere differ here.
    pub(crate) fn digest(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::hash::DefaultHasher::new();
        self.journal
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .hash(&mut hasher);
        hasher.finish()
    }

    /// The last `n` lines of the whole trace.
    pub(crate) fn tail(&self, n: usize) -> Vec<String> {
        let journal = self.journal.lock().unwrap_or_else(PoisonError::into_inner);
        journal
            .iter()
            .skip(journal.len().saturating_sub(n))
            .map(|(a, l)| format!("[{}] {l}", a.as_ref().map_or("-", |a| a.as_str())))
            .collect()
    }

    /// Runs `f` with the number of every process that dies from now on.
    pub(crate) fn on_death(&self, f: OnDeath) {
        self.on_death
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(f);
    }

    /// Kills `proc` now. Returns `false` if it was dead already.
    pub(crate) fn kill(&self, proc: usize) -> bool {
        let mut procs = self.lock();
        if procs[proc].died.is_some() {
            return false;
        }
        procs[proc].died = Some(Instant::now());
        drop(procs);
        for f in self
            .on_death
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            f(proc);
        }
        self.deaths.notify_waiters();
        true
    }

    /// Returns once `proc` is dead: whoever was waiting on it inside that
    /// process (a caller, a login) is gone with it.
    pub(crate) async fn died(&self, proc: usize) {
        loop {
            let death = self.deaths.notified();
            tokio::pin!(death);
            death.as_mut().enable();
            if self.is_dead(proc) {
                return;
            }
            death.await;
        }
    }

    /// Pauses `proc` for `d` from now (a pause already running is
    /// lengthened, never shortened).
    pub(crate) fn pause(&self, proc: usize, d: Duration) {
        let now = Instant::now();
        let mut procs = self.lock();
        let p = &mut procs[proc];
        if let Some(last) = p.pauses.last_mut()
            && last.1 > now
        {
            last.1 = last.1.max(now + d);
            return;
        }
        p.pauses.push((now, now + d));
    }

    /// Ends every pause now (the end of a run).
    pub(crate) fn wake_all(&self) {
        let now = Instant::now();
        for p in self.lock().iter_mut() {
            if let Some(last) = p.pauses.last_mut()
                && last.1 > now
            {
                last.1 = now;
            }
        }
        self.woken.notify_waiters();
    }

    pub(crate) fn is_dead(&self, proc: usize) -> bool {
        self.lock()[proc].died.is_some()
    }

    /// Whether `proc` is alive and not paused now.
    pub(crate) fn is_running(&self, proc: usize) -> bool {
        self.lock()[proc].running_at(Instant::now())
    }

    /// A copy of every process's life, for the checker.
    pub(crate) fn snapshot(&self) -> Vec<ProcLife> {
        self.lock().clone()
    }

    /// Waits while `proc` is paused; forever once it is dead.
    pub(crate) async fn gate(&self, proc: usize) {
        loop {
            let woken = self.woken.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let until = {
                let procs = self.lock();
                let p = &procs[proc];
                if p.died.is_some() {
                    None
                } else {
                    let now = Instant::now();
                    match p.pauses.last() {
                        Some(&(_, end)) if end > now => Some(end),
                        _ => return,
                    }
                }
            };
            match until {
                Some(end) => {
                    tokio::select! {
                        biased;
                        () = woken => {}
                        () = tokio::time::sleep_until(end) => {}
                    }
                }
                None => std::future::pending::<()>().await,
            }
        }
    }
}
