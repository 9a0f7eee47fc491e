//! The model store: the [`TokenStore`] / [`Lease`] contract kept the way a
//! Postgres store keeps it, in memory, on the store's own (virtual) clock.
//!
//! - A lease expires `ttl` after it was taken or last renewed (a fenced
//!   `load` or `mark_in_flight` renews it), measured on the store's clock;
//!   an expired lease can be taken over, and every write through it then
//!   fails with `LeaseLost` and writes nothing: each write checks the lease
//!   and writes in one step. With `ttl = None` the store behaves like a file
//!   store's `flock`: a lease is held until released or its process dies.
//! - A row holds the token or a tombstone, a version, the login sequence of
//!   its grant and the write-ahead record; sequences are kept apart from the
//!   rows, so handing one out changes nothing a reader sees.
//!
//! Each process sees the store through a [`ProcStore`], which injects the
//! faults of a real one: errors before the statement (nothing happened),
//! an answer lost after a write committed (the outcome is unknown to the
//! caller), outages, lock timeouts, and the process pausing or dying at
//! every await: before a statement, and after it took effect but before
//! the process heard back.
//!
//! It checks the parts of the contract only a store can see (a write that
//! keeps the record must keep the refresh token) and logs lease spans and
//! outages for the checker.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use auth_core::secrecy::ExposeSecret;
use auth_core::{
    Error, Expect, InFlight, Lease, ProviderId, Record, Result, Sequence, StoreErrorKind, Stored,
    TokenKey, TokenSet, TokenStore, Version, async_trait,
};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::chaos::Chaos;
use super::life::Life;
use super::wall;

/// One key's row.
#[derive(Debug, Clone)]
struct Row {
    version: u64,
    token: Option<TokenSet>,
    grant: Sequence,
    in_flight: Option<SystemTime>,
}

/// Who holds a key's lease, and until when.
#[derive(Debug, Clone, Copy)]
struct Held {
    id: u64,
    proc: usize,
    /// `None`: until released or the process dies.
    expires: Option<Instant>,
}

/// A time span in which one lease was held (its end moves while it is
/// renewed), for the checker.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Span {
    pub(crate) id: u64,
    pub(crate) proc: usize,
    pub(crate) start: Instant,
    pub(crate) end: Instant,
}

#[derive(Debug, Default)]
struct State {
    rows: HashMap<TokenKey, Row>,
    sequences: HashMap<TokenKey, u64>,
    held: HashMap<TokenKey, Held>,
    next_id: u64,
    /// Lease spans per key.
    spans: HashMap<TokenKey, Vec<Span>>,
    /// Outages: the store answers nothing in `[start, end)`.
    outages: Vec<(Instant, Instant)>,
    /// What only the store can see the manager break.
    breaches: Vec<(TokenKey, String)>,
    /// Writes that committed but whose answer was lost.
    unknown_commits: u64,
    /// Marks that failed: nothing was sent after them.
    failed_marks: Vec<(TokenKey, Instant)>,
    /// Saves that failed, by key and process.
    failed_saves: Vec<(TokenKey, usize, Instant)>,
    /// When each record was first stamped (a mark of a row without one).
    stamps: Vec<(TokenKey, Instant)>,
}

/// A far-away instant: the end of a span that has not ended.
fn forever() -> Instant {
    Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600)
}

/// The store all simulated processes share.
#[derive(Debug)]
pub(crate) struct ModelStore {
    state: Mutex<State>,
    /// Woken whenever a lease is released.
    freed: Notify,
    ttl: Option<Duration>,
    life: Arc<Life>,
}

impl ModelStore {
    pub(crate) fn new(ttl: Option<Duration>, life: Arc<Life>) -> Arc<Self> {
        let store = Arc::new(Self {
            state: Mutex::default(),
            freed: Notify::new(),
            ttl,
            life: Arc::clone(&life),
        });
        let weak = Arc::downgrade(&store);
        life.on_death(Box::new(move |proc| {
            if let Some(store) = weak.upgrade() {
                store.process_died(proc);
            }
        }));
        store
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The lease TTL (`None`: leases live as long as their process).
    pub(crate) fn ttl(&self) -> Option<Duration> {
        self.ttl
    }

    /// Stores `token` directly, as the scenario's first logins: no lease,
    /// no faults.
    pub(crate) fn seed(&self, key: &TokenKey, token: TokenSet, grant: u64) {
        let mut s = self.lock();
        s.sequences.insert(key.clone(), grant);
        s.rows.insert(
            key.clone(),
            Row {
                version: 1,
                token: Some(token),
                grant: Sequence(grant),
                in_flight: None,
            },
        );
    }

    /// Leases held or expired-but-not-taken-over now (for the checks).
    pub(crate) fn lock_entries(&self) -> usize {
        self.lock().held.len()
    }

    /// The row of `key` now, read without faults (for the checks).
    pub(crate) fn peek(&self, key: &TokenKey) -> Option<Stored> {
        let s = self.lock();
        s.rows.get(key).map(|r| stored(r, wall(Instant::now())))
    }

    /// A process died: a store whose leases die with their process frees
    /// them now; one whose leases expire leaves them to expire.
    pub(crate) fn process_died(&self, proc: usize) {
        if self.ttl.is_some() {
            return;
        }
        let now = Instant::now();
        let mut s = self.lock();
        let keys: Vec<TokenKey> = s
            .held
            .iter()
            .filter(|(_, h)| h.proc == proc)
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            if let Some(h) = s.held.remove(&key) {
                end_span(&mut s, &key, h.id, now);
            }
        }
        drop(s);
        self.freed.notify_waiters();
    }

    /// Starts an outage of `d` from now.
    pub(crate) fn outage(&self, d: Duration) {
        let now = Instant::now();
        self.lock().outages.push((now, now + d));
    }

    /// Ends every outage now.
    pub(crate) fn end_outages(&self) {
        let now = Instant::now();
        for o in &mut self.lock().outages {
            if o.1 > now {
                o.1 = now.max(o.0);
            }
        }
    }

    fn down(&self, now: Instant) -> bool {
        self.lock()
            .outages
            .iter()
            .any(|&(a, b)| a <= now && now < b)
    }

    /// The lease spans of `key` so far.
    pub(crate) fn spans(&self, key: &TokenKey) -> Vec<Span> {
        self.lock().spans.get(key).cloned().unwrap_or_default()
    }

    /// The outages so far.
    pub(crate) fn outages(&self) -> Vec<(Instant, Instant)> {
        self.lock().outages.clone()
    }

    /// When marks of `key` failed.
    pub(crate) fn failed_marks(&self, key: &TokenKey) -> Vec<Instant> {
        let s = self.lock();
        s.failed_marks
            .iter()
            .filter(|(k, _)| k == key)
            .map(|&(_, t)| t)
            .collect()
    }

    /// How many saves of `key` by `proc` failed in `[from, to]`.
    pub(crate) fn failed_saves(
        &self,
        key: &TokenKey,
        proc: usize,
        from: Instant,
        to: Instant,
    ) -> usize {
        self.lock()
            .failed_saves
            .iter()
            .filter(|(k, p, t)| k == key && *p == proc && from <= *t && *t <= to)
            .count()
    }

    /// The first stamp of the last record of `key` written at or before
    /// `at`.
    pub(crate) fn record_since(&self, key: &TokenKey, at: Instant) -> Option<Instant> {
        let s = self.lock();
        s.stamps
            .iter()
            .filter(|(k, t)| k == key && *t <= at)
            .map(|&(_, t)| t)
            .next_back()
    }

    /// Contract breaches only the store can see.
    pub(crate) fn breaches(&self) -> Vec<(TokenKey, String)> {
        self.lock().breaches.clone()
    }

    /// Writes that committed while their answer was lost.
    pub(crate) fn unknown_commits(&self) -> u64 {
        self.lock().unknown_commits
    }

    /// Whether lease `id` on `key` is held now.
    fn valid(s: &State, key: &TokenKey, id: u64, now: Instant) -> bool {
        s.held
            .get(key)
            .is_some_and(|h| h.id == id && h.expires.is_none_or(|e| now < e))
    }

    /// Extends lease `id` to a full TTL from now.
    fn renew(&self, s: &mut State, key: &TokenKey, id: u64, now: Instant) {
        let Some(ttl) = self.ttl else { return };
        if let Some(h) = s.held.get_mut(key)
            && h.id == id
        {
            h.expires = Some(now + ttl);
            if let Some(span) = s
                .spans
                .get_mut(key)
                .and_then(|v| v.iter_mut().rev().find(|sp| sp.id == id))
            {
                span.end = now + ttl;
            }
        }
    }

    /// Takes the lease of `key` for `proc` if it is free or expired.
    fn try_take(&self, key: &TokenKey, proc: usize, now: Instant) -> Result<u64, Instant> {
        let mut s = self.lock();
        if let Some(h) = s.held.get(key) {
            match h.expires {
                Some(e) if e <= now => {}
                Some(e) => return Err(e),
                None => return Err(forever()),
            }
        }
        s.next_id += 1;
        let id = s.next_id;
        let expires = self.ttl.map(|t| now + t);
        s.held.insert(key.clone(), Held { id, proc, expires });
        s.spans.entry(key.clone()).or_default().push(Span {
            id,
            proc,
            start: now,
            end: expires.unwrap_or_else(forever),
        });
        Ok(id)
    }

    /// Frees lease `id` if it is still the holder.
    fn free(&self, key: &TokenKey, id: u64) {
        let now = Instant::now();
        let mut s = self.lock();
        if s.held.get(key).is_some_and(|h| h.id == id) {
            s.held.remove(key);
            end_span(&mut s, key, id, now);
        }
        drop(s);
        self.freed.notify_waiters();
    }
}

fn end_span(s: &mut State, key: &TokenKey, id: u64, now: Instant) {
    if let Some(span) = s
        .spans
        .get_mut(key)
        .and_then(|v| v.iter_mut().rev().find(|sp| sp.id == id))
    {
        span.end = span.end.min(now);
    }
}

fn stored(r: &Row, read_at: SystemTime) -> Stored {
    Stored {
        version: Version(r.version),
        token: r.token.clone(),
        grant: r.grant,
        in_flight: r.in_flight.map(|since| InFlight { since }),
        read_at,
    }
}

fn refresh_of(t: &TokenSet) -> Option<String> {
    t.refresh_token().map(|r| r.expose_secret().to_owned())
}

fn err(kind: StoreErrorKind, key: &TokenKey, what: &str) -> Error {
    Error::store(kind, Some(key.clone()), format!("model store: {what}"))
}

/// What a fault point decided.
enum Fate {
    /// Carry on.
    Go,
    /// Fail with this error, having done nothing.
    Fail(Error),
}

/// The store as one process sees it, with faults.
#[derive(Debug, Clone)]
pub(crate) struct ProcStore {
    store: Arc<ModelStore>,
    chaos: Arc<Chaos>,
    proc: usize,
}

impl ProcStore {
    pub(crate) fn new(store: Arc<ModelStore>, chaos: Arc<Chaos>, proc: usize) -> Self {
        Self { store, chaos, proc }
    }

    fn life(&self) -> &Life {
        &self.store.life
    }

    /// The process may pause or die here, at an await point.
    async fn await_point(&self) {
        let rates = self.chaos.rates();
        if self.chaos.fires("die_at_await", rates.die_at_await) {
            self.die("at an await point (store)");
        } else if !self.life().is_dead(self.proc)
            && self.chaos.fires("pause_at_await", rates.pause_at_await)
        {
            let d = self.chaos.pause_length(self.store.ttl);
            self.life().pause(self.proc, d);
            self.life().note(
                None,
                format!(
                    "process {} paused for {d:?} at an await point (store)",
                    self.proc
                ),
            );
        }
        self.life().gate(self.proc).await;
    }

    fn die(&self, at: &str) {
        if self.life().kill(self.proc) {
            self.life()
                .note(None, format!("process {} died {at}", self.proc));
        }
    }

    /// Faults before a statement reaches the store.
    /// `write`: `None` for a read, `Some(true)` for a save of a token (what
    /// a full disk refuses in these tests), `Some(false)` for other writes.
    fn before(&self, key: &TokenKey, write: Option<bool>) -> Fate {
        let is_save = write;
        let write = write.is_some();
        let rates = self.chaos.rates();
        if self.store.down(Instant::now()) {
            return Fate::Fail(err(
                StoreErrorKind::Unavailable,
                key,
                "connection refused (the store is down)",
            ));
        }
        if is_save == Some(true) && self.chaos.disk_full(wall(Instant::now())) {
            return Fate::Fail(err(StoreErrorKind::Io, key, "No space left on device"));
        }
        let p = if write {
            rates.store_write_fail
        } else {
            rates.store_read_fail
        };
        if self.chaos.fires(
            if write {
                "store_write_fail"
            } else {
                "store_read_fail"
            },
            p,
        ) {
            return Fate::Fail(err(
                StoreErrorKind::Io,
                key,
                "I/O error before the statement ran",
            ));
        }
        Fate::Go
    }

    /// Runs one statement `f` with the faults around it: the process may
    /// pause or die before it and after it took effect; a write's answer
    /// may be lost after it committed.
    async fn statement<T>(
        &self,
        key: &TokenKey,
        write: Option<&str>,
        f: impl FnOnce(&ModelStore, &mut State, Instant) -> Result<T>,
    ) -> Result<T> {
        self.await_point().await;
        let kind = write.map(|w| w.starts_with("save"));
        let mark = write == Some("mark in flight");
        let save = kind == Some(true);
        let proc = self.proc;
        let mark_failed = |store: &ModelStore| {
            let now = Instant::now();
            if mark {
                store.lock().failed_marks.push((key.clone(), now));
            }
            if save {
                store.lock().failed_saves.push((key.clone(), proc, now));
            }
        };
        if let Fate::Fail(e) = self.before(key, kind) {
            mark_failed(&self.store);
            if let Some(what) = write {
                self.life().note(
                    Some(&key.account),
                    format!("process {} {what}: failed before it ran", self.proc),
                );
            }
            return Err(e);
        }
        let result = {
            let now = Instant::now();
            let mut s = self.store.lock();
            f(&self.store, &mut s, now)
        };
        if result.is_err() {
            mark_failed(&self.store);
        }
        if let Some(what) = write {
            let outcome = match &result {
                Ok(_) => "done".to_owned(),
                Err(e) => format!(
                    "refused ({})",
                    e.store_kind().map_or("?".into(), |k| k.to_string())
                ),
            };
            self.life().note(
                Some(&key.account),
                format!("process {} {what}: {outcome}", self.proc),
            );
        }
        let write = write.is_some();
        let rates = self.chaos.rates();
        if self
            .chaos
            .fires("die_after_statement", rates.die_after_statement)
        {
            // It took effect; the process never hears.
            self.die("after a store statement took effect");
        }
        if write
            && result.is_ok()
            && self
                .chaos
                .fires("store_answer_lost", rates.store_answer_lost)
        {
            mark_failed(&self.store);
            self.store.lock().unknown_commits += 1;
            self.life().gate(self.proc).await;
            return Err(err(
                StoreErrorKind::Unavailable,
                key,
                "the connection broke after the statement was sent (it may have committed)",
            ));
        }
        self.await_point().await;
        result
    }
}

#[async_trait]
impl TokenStore for ProcStore {
    async fn load(&self, key: &TokenKey) -> Result<Option<Stored>> {
        self.statement(key, None, |_, s, now| {
            Ok(s.rows.get(key).map(|r| stored(r, wall(now))))
        })
        .await
    }

    async fn list(&self, provider: Option<&ProviderId>) -> Result<Vec<TokenKey>> {
        let any = TokenKey::parse(super::server::PROVIDER, "list").expect("a valid key");
        self.statement(&any, None, |_, s, _| {
            let mut keys: Vec<TokenKey> = s
                .rows
                .iter()
                .filter(|(k, r)| r.token.is_some() && provider.is_none_or(|p| &k.provider == p))
                .map(|(k, _)| k.clone())
                .collect();
            keys.sort();
            Ok(keys)
        })
        .await
    }

    async fn lock(&self, key: &TokenKey, wait: Duration) -> Result<Box<dyn Lease>> {
        self.await_point().await;
        if let Fate::Fail(e) = self.before(key, Some(false)) {
            return Err(e);
        }
        let rates = self.chaos.rates();
        if self.chaos.fires("lock_timeout", rates.lock_timeout) {
            tokio::time::sleep(wait).await;
            return Err(err(StoreErrorKind::LockTimeout, key, "lock wait timed out"));
        }
        let deadline = Instant::now() + wait;
        let id = loop {
            let freed = self.store.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if self.life().is_dead(self.proc) {
                // A dead process takes no lease: its wait ended with it.
                self.life().gate(self.proc).await;
            }
            match self.store.try_take(key, self.proc, Instant::now()) {
                Ok(id) => break id,
                Err(expires) => {
                    if Instant::now() >= deadline {
                        return Err(err(
                            StoreErrorKind::LockTimeout,
                            key,
                            "another holder kept the lease for the whole wait",
                        ));
                    }
                    tokio::select! {
                    biased;
                                    () = freed => {}
                                    () = tokio::time::sleep_until(expires.min(deadline)) => {}
                                }
                }
            }
        };
        let lease = ModelLease {
            store: self.clone(),
            key: key.clone(),
            id,
        };
        self.life().note(
            Some(&key.account),
            format!("process {} took the lease", self.proc),
        );
        if self
            .chaos
            .fires("die_after_statement", rates.die_after_statement)
        {
            self.die("right after taking a lease");
        }
        self.await_point().await;
        Ok(Box::new(lease))
    }

    async fn orphaned(&self, limit: usize) -> Result<Vec<TokenKey>> {
        let any = TokenKey::parse(super::server::PROVIDER, "orphaned").expect("a valid key");
        self.statement(&any, None, |_, s, now| {
            let mut keys: Vec<TokenKey> = s
                .rows
                .iter()
                .filter(|(k, r)| {
                    r.token.is_some()
                        && r.in_flight.is_some()
                        && s.held
                            .get(*k)
                            .is_none_or(|h| h.expires.is_some_and(|e| e <= now))
                })
                .map(|(k, _)| k.clone())
                .collect();
            keys.sort();
            keys.truncate(limit);
            Ok(keys)
        })
        .await
    }

    fn lease_ttl(&self) -> Option<Duration> {
        self.store.ttl
    }
}

/// A lease on one key of the model store.
#[derive(Debug)]
pub(crate) struct ModelLease {
    store: ProcStore,
    key: TokenKey,
    id: u64,
}

impl ModelLease {
    /// Fails with `LeaseLost` unless this lease holds the key now.
    fn fenced(&self, s: &State, now: Instant) -> Result<()> {
        if ModelStore::valid(s, &self.key, self.id, now) {
            Ok(())
        } else {
            Err(err(
                StoreErrorKind::LeaseLost,
                &self.key,
                "the lease expired or was taken over",
            ))
        }
    }

    fn conflict(&self, what: &str) -> Error {
        err(StoreErrorKind::Conflict, &self.key, what)
    }

    async fn do_save(&self, token: &TokenSet, expected: Expect, record: Record) -> Result<Version> {
        let key = self.key.clone();
        let what = format!(
            "save {} ({expected:?}, record {record:?})",
            refresh_of(token).unwrap_or_default()
        );
        self.store
            .statement(&self.key, Some(&what), |_, s, now| {
                self.fenced(s, now)?;
                let row = s.rows.get(&key).cloned();
                let grant = match (expected, &row) {
                    (Expect::Absent, None) => Sequence(0),
                    (Expect::Absent, Some(_)) => return Err(self.conflict("a row exists")),
                    (Expect::Version(v), Some(r)) if r.version == v.0 => r.grant,
                    (Expect::Version(_), _) => return Err(self.conflict("the row moved on")),
                    (Expect::Login(seq), None) => seq,
                    (Expect::Login(seq), Some(r)) if r.grant < seq => seq,
                    (Expect::Login(_), Some(_)) => {
                        return Err(
                            self.conflict("a login sequenced later (or a tombstone) is stored")
                        );
                    }
                };
                let in_flight = match (record, matches!(expected, Expect::Login(_))) {
                    (Record::Clear, _) | (_, true) => None,
                    (Record::Keep, false) => row.as_ref().and_then(|r| r.in_flight),
                };
                if record == Record::Keep
                    && let Some(old) = row.as_ref().and_then(|r| r.token.as_ref())
                    && old.refresh_token().is_some()
                    && refresh_of(old) != refresh_of(token)
                {
                    s.breaches.push((
                        key.clone(),
                        "a write that keeps the record changed the refresh token".into(),
                    ));
                }
                let version = row.as_ref().map_or(1, |r| r.version + 1);
                if let Expect::Login(seq) = expected {
                    let hi = s.sequences.entry(key.clone()).or_default();
                    *hi = (*hi).max(seq.0);
                }
                s.rows.insert(
                    key.clone(),
                    Row {
                        version,
                        token: Some(token.clone()),
                        grant,
                        in_flight,
                    },
                );
                Ok(Version(version))
            })
            .await
    }
}

#[async_trait]
impl Lease for ModelLease {
    fn key(&self) -> &TokenKey {
        &self.key
    }

    async fn load(&self) -> Result<Option<Stored>> {
        self.store
            .statement(&self.key, None, |store, s, now| {
                self.fenced(s, now)?;
                store.renew(s, &self.key, self.id, now);
                Ok(s.rows.get(&self.key).map(|r| stored(r, wall(now))))
            })
            .await
    }

    async fn mark_in_flight(&self, expected: Version) -> Result<Version> {
        self.store
            .statement(&self.key, Some("mark in flight"), |store, s, now| {
                self.fenced(s, now)?;
                let Some(row) = s.rows.get_mut(&self.key) else {
                    return Err(self.conflict("nothing stored"));
                };
                if row.version != expected.0 || row.token.is_none() {
                    return Err(self.conflict("the row moved on"));
                }
                row.version += 1;
                if row.in_flight.is_none() {
                    s.stamps.push((self.key.clone(), now));
                }
                let row = s.rows.get_mut(&self.key).expect("checked above");
                row.in_flight = Some(row.in_flight.unwrap_or(wall(now)));
                let v = row.version;
                store.renew(s, &self.key, self.id, now);
                Ok(Version(v))
            })
            .await
    }

    async fn save(&self, token: &TokenSet, expected: Expect, record: Record) -> Result<Version> {
        self.do_save(token, expected, record).await
    }

    async fn save_and_release(
        self: Box<Self>,
        token: &TokenSet,
        expected: Expect,
        record: Record,
    ) -> Result<Version> {
        // One statement: the release goes with the save, whatever it did.
        let result = self.do_save(token, expected, record).await;
        if !self.store.life().is_dead(self.store.proc) {
            self.store.store.free(&self.key, self.id);
        }
        result
    }

    async fn delete(&self, expected: Version) -> Result<Version> {
        self.store
            .statement(&self.key, Some("delete"), |_, s, now| {
                self.fenced(s, now)?;
                let hi = s.sequences.get(&self.key).copied().unwrap_or(0);
                let Some(row) = s.rows.get_mut(&self.key) else {
                    return Err(self.conflict("nothing stored"));
                };
                if row.version != expected.0 {
                    return Err(self.conflict("the row moved on"));
                }
                row.version += 1;
                row.token = None;
                row.in_flight = None;
                row.grant = Sequence(hi.max(row.grant.0));
                Ok(Version(row.version))
            })
            .await
    }

    async fn next_sequence(&self) -> Result<Sequence> {
        self.store
            .statement(&self.key, Some("next sequence"), |_, s, now| {
                self.fenced(s, now)?;
                let grant = s.rows.get(&self.key).map_or(0, |r| r.grant.0);
                let hi = s.sequences.entry(self.key.clone()).or_default();
                *hi = (*hi).max(grant) + 1;
                Ok(Sequence(*hi))
            })
            .await
    }

    async fn release(self: Box<Self>) -> Result<()> {
        self.store.await_point().await;
        self.store.store.free(&self.key, self.id);
        Ok(())
    }
}

impl Drop for ModelLease {
    fn drop(&mut self) {
        // A dead process does nothing, not even this.
        if !self.store.life().is_dead(self.store.proc) {
            self.store.store.free(&self.key, self.id);
        }
    }
}
