//! The driver: performs what the [decision](super::decision) asks and
//! feeds the results back. Everything here is I/O (the store, the
//! provider, timers, tasks); every choice is the decision's. A refresh:
//! [`drive`](Inner::drive) → [`refresh`](Inner::refresh) →
//! [`persist`](Inner::persist), or [`flag`](Inner::flag) or
//! [`stop`](Inner::stop); a pair not saved at once goes to
//! [`keep_saving`](Inner::keep_saving), a record that may be a live
//! holder's to [`guard`](Inner::guard).

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use foldhash::fast::RandomState;
use futures::FutureExt;
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use super::decision::{
    self, AfterFailure, Goal, Known, Next, Origin, Tenure, Unsaved, Verdict, on_row,
};
use super::flight::Outcome;
use super::{Inner, TokenEvent};
use crate::error::StoreErrorKind::{self, Conflict, LeaseLost, LockTimeout};
use crate::error::{Error, Result, human_duration};
use crate::id::TokenKey;
use crate::provider::TokenProvider;
use crate::store::{Expect, Lease, Record, Sequence, Stored, Version};
use crate::telemetry;
use crate::token::TokenSet;

/// What a renewed lease must outlive a request by.
pub(super) const MARGIN: Duration = Duration::from_secs(2);
/// The first and the longest pause between saves of an unsaved pair after
/// store errors (a lost lease is taken back at once).
const SAVE_BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(5));
/// The longest wait for the lease by a takeover or an unsaved pair's save:
/// waiting longer, a replay may miss the window (they come back instead).
const RECORD_LOCK_WAIT: Duration = Duration::from_secs(1);
/// How often the late-replay guard reads the record it watches.
const GUARD_POLL: Duration = Duration::from_secs(1);
/// How long the guard watches a record unchanged before it replays: longer
/// than a live holder's longest pause between saves of its unsaved pair
/// (the back-off cap and its wait for the lease), with a margin.
const GUARD_WATCH: Duration = SAVE_BACKOFF
    .1
    .saturating_add(RECORD_LOCK_WAIT)
    .saturating_add(MARGIN);
/// A wait for the lease this long means it was busy: the guard's takeover
/// then watches again (see [`Inner::drive`]).
const LEASE_BUSY: Duration = Duration::from_millis(100);
/// How many times the guard tries its takeover when the store fails before
/// anything is sent, and the pause between tries.
const GUARD_TRIES: (usize, Duration) = (8, Duration::from_millis(250));

/// The driver's one piece of tuning (BENCHMARKS.md §3): `refresh`, `mint`
/// and the failure paths are boxed where awaited, so no allocation of a
/// refresh outgrows glibc's per-thread cache (1,032 bytes; one 2.7 KB box
/// merged free chunks first): 1.137× → 1.115×, 1.146× → 1.139× a raw one.
fn boxed<F: Future>(work: F) -> Pin<Box<F>> {
    Box::pin(work)
}

impl Inner {
    /// One flight: find or make a token that fits `goal`.
    pub(super) async fn drive(self: &Arc<Self>, key: &TokenKey, goal: &Goal) -> Outcome {
        let provider = Arc::clone(self.provider(&key.provider)?);
        if let Some(unsaved) = self.unsaved.get(key) {
            return decision::interim(key, &unsaved, goal, self.now());
        }
        if matches!(goal, Goal::Fresh) {
            let row = self.store.load(key).await?;
            match on_row(&self.known(key, goal, &*provider, row.as_ref(), false)) {
                Next::Serve(token) => return Ok(self.cached(key, token, row.as_ref())),
                Next::Fail(err) => return Err(err),
                _ => {}
            }
        }
        if self.closing.load(Ordering::SeqCst) {
            return Err(Error::not_sent(format!(
                "the token manager is shutting down; {key} was not refreshed"
            )));
        }
        let wait = match goal {
            Goal::Takeover { .. } => RECORD_LOCK_WAIT.min(self.config.lock_wait),
            _ => self.config.lock_wait,
        };
        let started = Instant::now();
        let lease = self.store.lock(key, wait).await;
        let waited = started.elapsed();
        telemetry::lease_wait(&key.provider, waited);
        if waited >= LEASE_BUSY / 2 {
            let (waited_ms, taken) = (waited.as_millis(), lease.is_ok());
            info!(%key, waited_ms, taken, "waited for the key's lease");
        }
        let lease = match lease {
            Ok(lease) => lease,
            Err(err) if err.store_kind() == Some(StoreErrorKind::LockTimeout) => {
                // Never refresh without the lease; but a caller who may have
                // a still-valid stored token gets it (cached, as any row).
                let row = self.store.load(key).await.ok().flatten();
                let Some(token) = row.as_ref().and_then(|r| r.token.as_ref()) else {
                    return Err(err);
                };
                let token = decision::meanwhile(goal, self.now(), token, err)?;
                warn!(%key, "the key's lease was busy for the whole wait; serving the stored token, which is still valid");
                return Ok(self.cached(key, token, row.as_ref()));
            }
            Err(err) => return Err(err),
        };
        // The guard watched the record unchanged, but if the lease was busy
        // when it came to replay, a live holder may have been kept from
        // saving by the same busy lease (a third process paused holding
        // it): watch again rather than replay.
        let unwatched = Goal::Takeover { observed: None };
        let goal = match goal {
            Goal::Takeover { observed: Some(_) } if waited >= LEASE_BUSY => &unwatched,
            goal => goal,
        };
        let row = lease.load().await?;
        // The cache keeps up with the newest stored version even when this
        // flight goes on: nothing older is left for `force_refresh`.
        if let Some((token, version)) = row
            .as_ref()
            .and_then(|r| Some((r.token.as_ref()?, r.version)))
        {
            self.cache.put_stored(key, token, version);
        }
        let next = on_row(&self.known(key, goal, &*provider, row.as_ref(), true));
        match next {
            Next::Serve(token) => Ok(self.cached(key, token, row.as_ref())),
            Next::Fail(err) => Err(err),
            Next::Lease => unreachable!("the row was read under the lease"),
            Next::Refresh { record } => {
                let row = row.as_ref().expect("a refresh has a row");
                boxed(self.refresh(key, goal, &provider, lease, row, record)).await
            }
            Next::Replay => {
                let row = row.as_ref().expect("a replay has a row");
                info!(%key, age = ?row.in_flight_age(), "a refresh was left in flight; replaying it");
                boxed(self.refresh(key, goal, &provider, lease, row, true)).await
            }
            Next::Guard(version) => {
                drop(lease);
                self.guard(key, version);
                let token = row.and_then(|r| r.token).expect("a record has a token");
                let err = decision::in_flight_error(key);
                decision::meanwhile(goal, self.now(), &token, err)
            }
            Next::Mint => boxed(self.mint(key, goal, &provider, lease, row)).await,
        }
    }

    fn known<'a>(
        &self,
        key: &'a TokenKey,
        goal: &'a Goal,
        provider: &dyn TokenProvider,
        row: Option<&'a Stored>,
        leased: bool,
    ) -> Known<'a> {
        Known {
            key,
            goal,
            now: row
                .and_then(|r| Some((r.token.as_ref()?, r.version)))
                .map_or_else(|| self.now(), |(t, v)| self.token_now(key, t, Some(v))),
            skew: self.config.skew,
            rules: provider.refresh_rules(),
            can_mint: provider.can_mint(),
            row,
            leased,
        }
    }

    /// Caches a token served from `row`, and returns it.
    fn cached(&self, key: &TokenKey, token: Arc<TokenSet>, row: Option<&Stored>) -> Arc<TokenSet> {
        if let Some(row) = row {
            self.cache.put(key, Arc::clone(&token), row.version);
        }
        token
    }

    /// One refresh under the lease: the write-ahead record, then attempts
    /// with the same refresh token, each after a renewal of the lease.
    async fn refresh(
        self: &Arc<Self>,
        key: &TokenKey,
        goal: &Goal,
        provider: &Arc<dyn TokenProvider>,
        lease: Box<dyn Lease>,
        row: &Stored,
        record: bool,
    ) -> Outcome {
        let rules = provider.refresh_rules();
        let token = row.token.clone().expect("a refresh has a token");
        let observed = matches!(goal, Goal::Takeover { observed: Some(v) } if *v == row.version);
        let mut tenure = Tenure {
            attempts: 0,
            unknown: row.in_flight.is_some(),
            record: record || row.in_flight.is_some(),
            takeover: matches!(goal, Goal::Takeover { .. }),
        };
        let (mut version, read_at) = (row.version, row.read_at);
        // When the lease was last renewed, at the latest: measured before
        // each renewal is asked for, since the process may pause after
        // the store renewed it and before the answer is read.
        let mut renewed_at = Instant::now();
        if tenure.record {
            // Write-ahead: if this fails or its outcome is unknown, nothing
            // is sent (a record that landed anyway is harmless). A replay
            // marks the record it found too (its first stamp is kept): the
            // new version tells a guard watching it elsewhere that a live
            // process is finishing it.
            version = lease.mark_in_flight(version).await.map_err(|e| {
                warn!(%key, error = %e, "the write-ahead record could not be written; nothing was sent");
                e.for_key(key)
            })?;
        }
        let started = Instant::now();
        let deadline = started + self.config.refresh_deadline;
        loop {
            if tenure.attempts > 0 {
                // Renew the lease and re-read the record before a retry.
                renewed_at = Instant::now();
                let renewed = lease.load().await?;
                match decision::on_renewal(
                    renewed.as_ref(),
                    version,
                    tenure.record,
                    rules,
                    observed,
                ) {
                    None => {}
                    Some(Next::Guard(v)) => {
                        drop(lease);
                        self.guard(key, v);
                        return Err(decision::in_flight_error(key));
                    }
                    Some(_) => {
                        return Err(Error::not_sent(format!(
                            "the stored token of {key} changed under the lease before a retry"
                        )));
                    }
                }
            }
            let now = Instant::now();
            let limit = decision::attempt_timeout(
                self.config.attempt_timeout,
                deadline.saturating_duration_since(now),
                self.store.lease_ttl(),
                now.saturating_duration_since(renewed_at),
                MARGIN,
            );
            if limit.is_zero() {
                // Paused since the renewal until the lease may have lapsed:
                // another process may hold it now. The record stays for
                // whoever holds it, or for the orphan poll.
                warn!(%key, "the lease may have lapsed since its renewal; nothing was sent");
                return Err(decision::in_flight_error(key));
            }
            tenure.attempts += 1;
            let attempt_began = now.saturating_duration_since(started);
            let stopwatch = telemetry::Stopwatch::start();
            let call = AssertUnwindSafe(provider.refresh(&token)).catch_unwind();
            let answer = match tokio::time::timeout(limit, call).await {
                Ok(Ok(answer)) => answer,
                Ok(Err(_)) => Err(Error::transient("the provider panicked during the request")),
                Err(_) => Err(Error::transient(format!(
                    "the provider did not answer within {}",
                    human_duration(limit)
                ))),
            };
            let class = answer.as_ref().map_or_else(Error::class, |_| "ok");
            telemetry::refresh(&key.provider, class, stopwatch.elapsed());
            let err = match answer {
                Ok(fresh) => {
                    let merged = token.merge_refreshed(fresh);
                    let unsaved = Unsaved {
                        token: Arc::new(merged),
                        origin: Origin::Refresh {
                            from: version,
                            previous: Arc::new(token),
                        },
                        serve_new: !(rules.rotates() && rules.first_use_ends_window()),
                    };
                    let expect = Expect::Version(version);
                    return self.persist(key, goal, (lease, expect), unsaved).await;
                }
                Err(err) => err,
            };
            let left = deadline.saturating_duration_since(Instant::now());
            match decision::after_failure(&mut tenure, &err, &self.config.retry, rules, left) {
                AfterFailure::Retry(delay) => {
                    debug!(%key, ?delay, error = %err, "the outcome is unknown or refused; retrying the same request");
                    tokio::time::sleep(delay).await;
                }
                AfterFailure::Flag => {
                    return Err(boxed(self.flag(key, lease, token, version, err)).await);
                }
                AfterFailure::Stop { cool, record } => {
                    let cooled = cool.then(|| {
                        decision::cool_down(
                            &token,
                            read_at,
                            started.elapsed(),
                            attempt_began,
                            &self.config.cooldown,
                            &err,
                            tenure.unknown,
                            rules,
                        )
                    });
                    let stop = self.stop(key, goal, lease, (token, version), cooled, record, err);
                    return boxed(stop).await;
                }
            }
        }
    }

    /// Ends a refresh without a definite outcome: writes the cooldown or
    /// clears the record, and serves a still-valid token to who may have it.
    #[allow(clippy::too_many_arguments)]
    async fn stop(
        &self,
        key: &TokenKey,
        goal: &Goal,
        lease: Box<dyn Lease>,
        (token, version): (TokenSet, Version),
        cooled: Option<(TokenSet, Duration)>,
        record: Record,
        err: Error,
    ) -> Outcome {
        let cool = cooled.is_some();
        let (written, pause) = cooled.unwrap_or((token, Duration::ZERO));
        if cool || record == Record::Clear {
            match lease
                .save_and_release(&written, Expect::Version(version), record)
                .await
            {
                Ok(v) => self.cache.put(key, Arc::new(written.clone()), v),
                Err(e) => warn!(%key, error = %e, "could not record the refresh's failure"),
            }
        }
        if !cool {
            warn!(%key, class = err.class(), error = %err, "refresh failed; the stored token is kept");
            return Err(err.for_key(key));
        }
        let serve = matches!(goal, Goal::Fresh) && written.is_fresh(self.now(), Duration::ZERO);
        self.emit(TokenEvent::RefreshFailed {
            key: key.clone(),
            reason: err.to_string(),
            retry_at: self.now() + pause,
            served_stale: serve,
        });
        warn!(%key, error = %err, retry_in = %human_duration(pause), served_stale = serve, "refresh failed");
        if serve {
            return Ok(Arc::new(written));
        }
        let after = err.retry_after().unwrap_or_default().max(pause);
        Err(err.for_key(key).retry_in(after))
    }

    /// Flags the stored token after `invalid_grant`, clearing the record
    /// in the same write.
    async fn flag(
        &self,
        key: &TokenKey,
        lease: Box<dyn Lease>,
        token: TokenSet,
        version: Version,
        err: Error,
    ) -> Error {
        let reason = match &err {
            Error::ReauthorizationRequired { reason, .. } => reason.clone(),
            other => other.to_string(),
        };
        let flagged = token.flagged_for_reauthorization(reason.clone());
        match lease
            .save_and_release(&flagged, Expect::Version(version), Record::Clear)
            .await
        {
            Ok(v) => self.cache.put(key, Arc::new(flagged), v),
            Err(e) => {
                warn!(%key, error = %e, "could not flag the token; the next refresh will ask the server again");
                self.cache.forget(key);
            }
        }
        warn!(%key, %reason, "reauthorization required");
        telemetry::reauthorization(&key.provider);
        self.emit(TokenEvent::ReauthorizationRequired {
            key: key.clone(),
            reason,
        });
        err.for_key(key)
    }

    /// Mints a token with the provider's own grant, under the lease. No
    /// record: nothing is spent.
    async fn mint(
        self: &Arc<Self>,
        key: &TokenKey,
        goal: &Goal,
        provider: &Arc<dyn TokenProvider>,
        lease: Box<dyn Lease>,
        row: Option<Stored>,
    ) -> Outcome {
        let limit = self
            .config
            .attempt_timeout
            .min(self.config.refresh_deadline);
        let token = tokio::time::timeout(limit, provider.mint(key))
            .await
            .map_err(|_| Error::transient(format!("minting a token for {key} timed out")))?
            .map_err(|e| e.for_key(key))?;
        let from = row.map(|r| r.version);
        let unsaved = Unsaved {
            token: Arc::new(token),
            origin: Origin::Mint { from },
            serve_new: true,
        };
        let expect = from.map_or(Expect::Absent, Expect::Version);
        self.persist(key, goal, (lease, expect), unsaved).await
    }

    /// Saves a pair from the provider over the row `expect`ed, clearing the
    /// record, before anyone sees it; if that fails, a task saves it, and
    /// the caller gets the interim answer.
    async fn persist(
        self: &Arc<Self>,
        key: &TokenKey,
        goal: &Goal,
        (lease, expect): (Box<dyn Lease>, Expect),
        unsaved: Unsaved,
    ) -> Outcome {
        let (arrived, now) = (Instant::now(), self.now());
        let saved = lease
            .save_and_release(&unsaved.token, expect, Record::Clear)
            .await;
        // The pair's clock offset is noted before the pair can be seen:
        // cached once saved, or handed out by `interim` meanwhile.
        let version = saved.as_ref().ok().copied();
        self.note_received(key, &unsaved.token, version, arrived, now);
        match saved {
            Ok(version) => {
                self.cache.put(key, Arc::clone(&unsaved.token), version);
                self.announce(key, &unsaved);
                Ok(Arc::clone(&unsaved.token))
            }
            Err(err) => {
                warn!(%key, error = %err, "saving the new token failed; keeping it in memory and saving it again");
                let interim = decision::interim(key, &unsaved, goal, self.now());
                self.keep_saving(key, Arc::new(unsaved));
                interim
            }
        }
    }

    fn announce(&self, key: &TokenKey, unsaved: &Unsaved) {
        match unsaved.origin {
            Origin::Login(_) => self.emit(TokenEvent::Authorized { key: key.clone() }),
            _ => {
                info!(%key, "token refreshed and saved");
                self.emit(TokenEvent::Refreshed {
                    key: key.clone(),
                    expires_at: unsaved.token.expires_at(),
                });
            }
        }
    }

    /// Keeps `unsaved` in memory and saves it in a task that lives as long
    /// as the process, taking the lease back the moment it is free (backing
    /// off only on store errors). The record stays in flight meanwhile.
    pub(super) fn keep_saving(self: &Arc<Self>, key: &TokenKey, unsaved: Arc<Unsaved>) {
        self.unsaved.keep(key, Arc::clone(&unsaved));
        let (inner, key) = (Arc::clone(self), key.clone());
        self.spawn_tracked(async move {
            let mut backoff = SAVE_BACKOFF.0;
            let mut failures = 0u32;
            // A login's sequence, once taken, is kept for every try: a new
            // one would order it after a revoke or remove that came later.
            let mut sequence = None;
            while inner.unsaved.holds(&key, &unsaved) {
                let Err(err) = inner.save_once(&key, &unsaved, &mut sequence).await else {
                    return;
                };
                if matches!(err.store_kind(), Some(LeaseLost | Conflict | LockTimeout)) {
                    debug!(%key, error = %err, "saving the unsaved token again at once");
                    continue;
                }
                failures += 1;
                if failures == 10 {
                    error!(%key, error = %err, "a new token still cannot be saved; it is kept in memory and saved as soon as the store allows, but it is lost if this process stops");
                    let reason = err.to_string();
                    inner.emit(TokenEvent::SaveFailed {
                        key: key.clone(),
                        reason,
                    });
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(SAVE_BACKOFF.1);
            }
        });
    }

    /// One save of an unsaved token under a fresh lease, by
    /// [`decision::verdict`]; a login takes its `sequence` the first time.
    async fn save_once(
        &self,
        key: &TokenKey,
        unsaved: &Arc<Unsaved>,
        sequence: &mut Option<Sequence>,
    ) -> Result<()> {
        let wait = RECORD_LOCK_WAIT.min(self.config.lock_wait);
        let lease = self.store.lock(key, wait).await?;
        let origin = match unsaved.origin {
            Origin::Login(None) => {
                if sequence.is_none() {
                    self.emit(TokenEvent::LoginRace { key: key.clone() });
                    *sequence = Some(lease.next_sequence().await?);
                }
                Origin::Login(*sequence)
            }
            ref origin => origin.clone(),
        };
        let row = lease.load().await?;
        match decision::verdict(&origin, row.as_ref()) {
            Verdict::Overwrite(expect) => {
                let version = lease
                    .save_and_release(&unsaved.token, expect, Record::Clear)
                    .await?;
                self.cache.put(key, Arc::clone(&unsaved.token), version);
                self.unsaved.settle(key, unsaved);
                info!(%key, "the token kept in memory is saved now");
                self.announce(key, unsaved);
            }
            Verdict::KeepStored => {
                warn!(%key, "the store holds a newer grant (or a tombstone) than the unsaved token; keeping the stored one");
                self.unsaved.settle(key, unsaved);
                // The cache follows the store: it may still hold the token
                // from before the unsaved one, which a caller given the
                // unsaved one must never get back from `force_refresh`.
                match row {
                    Some(Stored {
                        token: Some(token),
                        version,
                        ..
                    }) => self.cache.put(key, Arc::new(token), version),
                    Some(tombstone) => self.cache.bury(key, Some(tombstone.version)),
                    None => self.cache.bury(key, None),
                }
            }
        }
        Ok(())
    }

    /// The late-replay guard: watches the record at `version` for
    /// [`GUARD_WATCH`] with the store reachable (starting again after the
    /// store was unavailable, when a live holder could not save either),
    /// then replays only if it is unchanged. One guard per key at a time.
    pub(super) fn guard(self: &Arc<Self>, key: &TokenKey, version: Version) {
        if self.guards.lock().insert(key.clone(), ()).is_some() {
            return;
        }
        let (inner, key) = (Arc::clone(self), key.clone());
        self.spawn_tracked(async move {
            let mut quiet_since = Instant::now();
            let unchanged = loop {
                tokio::time::sleep(GUARD_POLL).await;
                match inner.store.load(&key).await {
                    Err(e) if e.store_kind() == Some(StoreErrorKind::Unavailable) => {
                        quiet_since = Instant::now();
                    }
                    // Another failed read (a corrupt row, a timeout of this
                    // read alone) says nothing about the holder: the next
                    // poll reads again.
                    Err(_) => {}
                    Ok(Some(r)) if r.version == version && r.in_flight.is_some() => {
                        if quiet_since.elapsed() >= GUARD_WATCH {
                            break true;
                        }
                    }
                    Ok(_) => break false,
                }
                if inner.closing.load(Ordering::SeqCst) {
                    break false;
                }
            };
            inner.guards.lock().remove(&key);
            if unchanged {
                info!(%key, "a late refresh record stayed unchanged; replaying it");
                // A store that failed before anything was sent (the lease
                // busy, a read or the mark failed) does not cost another
                // whole watch: the takeover is tried again at once, and
                // checks the record's version again under the lease.
                let observed = Some(version);
                for _ in 0..GUARD_TRIES.0 {
                    match inner.fly(&key, Goal::Takeover { observed }).await {
                        Err(e) if e.store_kind().is_some() => {
                            tokio::time::sleep(GUARD_TRIES.1).await;
                        }
                        _ => break,
                    }
                }
            }
        });
    }
}

/// A per-key map behind a mutex, for the manager's bookkeeping.
pub(super) struct KeyMap<V>(Mutex<HashMap<TokenKey, V, RandomState>>);

impl<V> Default for KeyMap<V> {
    fn default() -> Self {
        Self(Mutex::default())
    }
}

impl<V> KeyMap<V> {
    pub(super) fn lock(&self) -> MutexGuard<'_, HashMap<TokenKey, V, RandomState>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Tokens this process holds but has not saved yet.
pub(super) type UnsavedMap = KeyMap<Arc<Unsaved>>;

impl UnsavedMap {
    pub(super) fn get(&self, key: &TokenKey) -> Option<Arc<Unsaved>> {
        self.lock().get(key).cloned()
    }

    /// Keeps `unsaved`, replacing an older one (whose task then stops).
    pub(super) fn keep(&self, key: &TokenKey, unsaved: Arc<Unsaved>) {
        self.lock().insert(key.clone(), unsaved);
    }

    /// Whether `unsaved` is still the one kept for `key`.
    fn holds(&self, key: &TokenKey, unsaved: &Arc<Unsaved>) -> bool {
        self.lock()
            .get(key)
            .is_some_and(|u| Arc::ptr_eq(u, unsaved))
    }

    /// Drops `key`'s entry if it is still `unsaved`.
    pub(super) fn settle(&self, key: &TokenKey, unsaved: &Arc<Unsaved>) {
        let mut map = self.lock();
        if map.get(key).is_some_and(|u| Arc::ptr_eq(u, unsaved)) {
            map.remove(key);
        }
    }

    /// Drops `key`'s entry, whatever it is (a revoke or remove finished, or
    /// a login saved).
    pub(super) fn abandon(&self, key: &TokenKey) {
        self.lock().remove(key);
    }

    pub(super) fn keys(&self) -> Vec<TokenKey> {
        let mut keys: Vec<_> = self.lock().keys().cloned().collect();
        keys.sort();
        keys
    }
}

/// Keys whose late-replay guard is running.
pub(super) type Guards = KeyMap<()>;
