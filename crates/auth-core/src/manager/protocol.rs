//! The refresh protocol, top to bottom. One function per step of the
//! protocol in ARCHITECTURE.md ("The refresh protocol"); every other module of the manager serves this
//! one.
//!
//! 1. [`fast path`](super::TokenManager::access_token): a cached token fresh
//!    beyond the skew (in `mod.rs`, since it must stay tiny).
//! 2. [`fly`](Inner::fly): the in-process single flight.
//! 3. [`ensure`](Inner::ensure): one flight. [`peek`](Inner::peek) reads
//!    the store without the lease; [`take_lease`](Inner::take_lease) takes
//!    the key's lease (across processes), or
//!    [`after_lock_timeout`](Inner::after_lock_timeout) serves what is still
//!    valid; [`reload`](Inner::reload) reads again under the lease, saving
//!    an older unsaved pair first; [`judge`](Inner::judge) decides.
//! 4. [`refresh`](Inner::refresh): one refresh at the provider,
//!    [`call_provider`](Inner::call_provider) retrying an unknown outcome
//!    with the *same* refresh token within a deadline, then
//!    [`persist`](Inner::persist) with compare-and-swap before anyone sees
//!    the new pair.
//! 5. [`flag`](Inner::flag): `invalid_grant` flags the stored token (kept,
//!    never deleted).
//! 6. [`persist`](Inner::persist) and
//!    [`save_in_background`](Inner::save_in_background): a pair that could
//!    not be saved stays in memory and its save is retried under the lease.
//! 7. [`cool_down`](Inner::cool_down): a transient failure records a
//!    cooldown with the token (every process honours it) and serves the
//!    still-valid token.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use futures::FutureExt;
use futures::future::BoxFuture;
use secrecy::ExposeSecret;
use tracing::{debug, error, info, warn};

use super::flight::{FinishOnDrop, Flights, Joined, Outcome, Sender, Work, spawn_tracked};
use super::unsaved::{Origin, Unsaved, Verdict};
use super::{Inner, TokenEvent};
use crate::error::{Error, Result, StoreErrorKind};
use crate::id::TokenKey;
use crate::provider::TokenProvider;
use crate::store::{KeyLock, Version, Versioned};
use crate::telemetry;
use crate::token::{RefreshCooldown, TokenSet};

/// What a caller wants from a flight.
#[derive(Clone)]
pub(super) enum Goal {
    /// A token fresh beyond the skew (or, during a cooldown, still valid).
    Fresh,
    /// Any valid token other than this rejected one: refresh only if the
    /// rejected token is still the current one.
    Replace(Arc<TokenSet>),
}

impl Goal {
    /// The rejected access token, for [`Goal::Replace`].
    pub(super) fn rejected(&self) -> Option<&str> {
        match self {
            Goal::Fresh => None,
            Goal::Replace(rejected) => Some(rejected.access_token().expose_secret()),
        }
    }

    /// Whether `token` is an answer to this goal without any refresh.
    pub(super) fn satisfied_by(&self, token: &TokenSet, now: SystemTime, skew: Duration) -> bool {
        if token.reauthorization_required().is_some() {
            return false;
        }
        match self {
            Goal::Fresh => super::cache::fresh_beyond_skew(token, now, skew),
            Goal::Replace(_) => {
                Some(token.access_token().expose_secret()) != self.rejected()
                    && token.is_fresh(now, Duration::ZERO)
            }
        }
    }
}

/// A stored token as the protocol carries it: shared from the start, so
/// that it moves between the steps as a pointer (the flight's future stays
/// small) and is cached, or kept as the pair to fall back on, without a
/// copy.
type Current = Versioned<Arc<TokenSet>>;

/// [`Current`] from what the store returned.
fn shared(stored: Versioned<TokenSet>) -> Current {
    Versioned {
        value: Arc::new(stored.value),
        version: stored.version,
    }
}

/// What [`Inner::judge`] decided about a stored token.
enum Judged {
    /// The answer, with no refresh.
    Done(Result<Arc<TokenSet>>),
    /// Refresh from this stored pair (under the lease).
    Refresh(Current),
    /// Mint a token with the provider's grant (under the lease); the stored
    /// version it replaces, if any.
    Mint,
}

/// What [`Inner::try_save`] did.
pub(super) enum Saved {
    /// Our token is stored.
    Ours(Arc<TokenSet>),
    /// The store holds a newer token that is not ours to replace; ours was
    /// dropped.
    Theirs(Option<Versioned<TokenSet>>),
}

/// How many times a follower may start over when a flight's answer does
/// not fit its goal.
const MAX_ROUNDS: usize = 4;
/// How many compare-and-swap saves one save of an unsaved token tries
/// before it reports that the stored token kept changing under the lease.
const SAVE_ATTEMPTS: usize = 3;
/// The first and the longest pause between background save attempts.
const SAVE_BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(5));
/// A lease wait at least this long is logged at info level (shorter ones at
/// debug): it means another caller or process held the key.
const LEASE_WAIT_NOTICE: Duration = Duration::from_millis(50);

impl Inner {
    // ---- Step 2: the single flight ----------------------------------------

    /// Joins the key's flight, or leads a new one, until an answer fits
    /// `goal`.
    pub(super) async fn fly(self: &Arc<Self>, key: &TokenKey, goal: Goal) -> Outcome {
        let mut last = None;
        for _ in 0..MAX_ROUNDS {
            match self.flights.join(key) {
                Joined::Lead(sender) => {
                    let work = self.flight_work(key.clone(), goal.clone(), sender);
                    return FinishOnDrop::run(work).await;
                }
                Joined::Follow(flight) => {
                    let Some(outcome) = Flights::follow(flight).await else {
                        continue;
                    };
                    let fits = match (&goal, &outcome) {
                        // A fresh-goal flight's answer is the answer, stale
                        // serving included; another goal's error may not be
                        // (it never serves the old token): fly our own once.
                        (Goal::Fresh, Ok(_)) => true,
                        (Goal::Fresh, Err(e)) => !e.is_transient() || last.is_some(),
                        (Goal::Replace(_), Ok(token)) => {
                            Some(token.access_token().expose_secret()) != goal.rejected()
                        }
                        (Goal::Replace(_), Err(_)) => true,
                    };
                    if fits {
                        return outcome;
                    }
                    last = Some(outcome);
                }
            }
        }
        last.unwrap_or_else(|| {
            Err(Error::transient(format!(
                "the refresh of {key} kept being superseded; try again"
            )))
        })
    }

    /// The work of one flight: [`ensure`](Self::ensure), then telling the
    /// followers. A panic becomes a transient error instead of wedging the
    /// key.
    fn flight_work(self: &Arc<Self>, key: TokenKey, goal: Goal, sender: Sender) -> Work {
        let inner = Arc::clone(self);
        let busy = self.tasks.start();
        async move {
            let outcome = AssertUnwindSafe(inner.ensure(&key, &goal))
                .catch_unwind()
                .await
                .unwrap_or_else(|_| {
                    Err(Error::transient(format!(
                        "the refresh of {key} panicked (a bug in its provider or store); try again"
                    )))
                });
            Flights::finish(sender, &outcome);
            drop(busy);
            outcome
        }
        .boxed()
    }

    // ---- Step 3: one flight -------------------------------------------------

    /// One flight: find or make a token that fits `goal`.
    async fn ensure(self: &Arc<Self>, key: &TokenKey, goal: &Goal) -> Outcome {
        let provider = Arc::clone(self.provider(&key.provider)?);
        match self.unsaved.get(key) {
            // A newer pair is in memory and being saved: no I/O until then.
            Some(unsaved) if unsaved.saving.load(Ordering::SeqCst) => {
                return unsaved.interim(key, self.now(), goal.rejected());
            }
            Some(_) => {}
            // A rejected token is almost always still the stored one: go
            // straight for the lease, which reloads anyway.
            None if matches!(goal, Goal::Replace(_)) => {}
            None => {
                if let Some(done) = self.peek(key, goal, provider.as_ref()).await? {
                    return done;
                }
            }
        }
        if self.closing.load(Ordering::SeqCst) {
            return Err(shutting_down(key));
        }
        let lease = match self.take_lease(key).await {
            Ok(lease) => lease,
            Err(err) if err.store_kind() == Some(StoreErrorKind::LockTimeout) => {
                // Cold paths are boxed, so that they do not make every
                // flight's future bigger (see `refresh`).
                return Box::pin(self.after_lock_timeout(key, goal, err)).await;
            }
            Err(err) => return Err(err),
        };
        let current = match self.reload(key, lease, goal).await? {
            Ok((lease, current)) => (lease, current),
            Err(interim) => return interim,
        };
        let (lease, current) = current;
        let current = match self.judge(key, goal, current, provider.as_ref()) {
            Judged::Done(answer) => return answer,
            Judged::Mint => return Box::pin(self.mint(key, &provider, lease, goal)).await,
            Judged::Refresh(current) => current,
        };
        self.refresh(key, goal, &provider, lease, current).await
    }

    /// Reads the store without the lease. Most cache misses end here: the
    /// process just started, or another one refreshed. `None`: the lease is
    /// needed.
    async fn peek(
        &self,
        key: &TokenKey,
        goal: &Goal,
        provider: &dyn TokenProvider,
    ) -> Result<Option<Outcome>> {
        let stored = self.store.load(key).await?.map(shared);
        Ok(match self.judge(key, goal, stored, provider) {
            Judged::Done(answer) => Some(answer),
            Judged::Refresh(_) | Judged::Mint => None,
        })
    }

    /// Takes the key's lease, across processes where the store can, and
    /// reports how long that took (log and `metrics`).
    async fn take_lease(&self, key: &TokenKey) -> Result<Box<dyn KeyLock>> {
        let mut lock = self.store.lock(key, self.lock_wait);
        // A lease the store grants on the first poll, as a free in-memory
        // one is, waited for nothing: the clock is read only when there is
        // a wait to time.
        let (lease, waited) = match (&mut lock).now_or_never() {
            Some(lease) => (lease, Duration::ZERO),
            None => {
                let started = tokio::time::Instant::now();
                let lease = lock.await;
                (lease, started.elapsed())
            }
        };
        telemetry::lease_wait(&key.provider, waited);
        log_lease_wait(key, waited, lease.is_ok());
        lease
    }

    /// The lease could not be had in time: someone else is refreshing or
    /// saving. Reload, and serve what the store holds if it is still valid;
    /// never refresh without the lease.
    async fn after_lock_timeout(&self, key: &TokenKey, goal: &Goal, err: Error) -> Outcome {
        let now = self.now();
        // This process holds a newer token than the store: the store's is
        // not the answer (it may be an older grant's).
        if let Some(unsaved) = self.unsaved.get(key) {
            return unsaved.interim(key, now, goal.rejected());
        }
        if let Ok(Some(stored)) = self.store.load(key).await {
            let token = &stored.value;
            let valid = token.reauthorization_required().is_none()
                && (goal.satisfied_by(token, now, self.skew)
                    || (matches!(goal, Goal::Fresh) && token.is_fresh(now, Duration::ZERO)));
            if valid {
                warn!(%key, "the key's lease was busy for the whole wait; serving the stored token, which is still valid");
                let token = Arc::new(stored.value);
                self.cache.put(key, Arc::clone(&token), stored.version);
                return Ok(token);
            }
        }
        warn!(%key, "the key's lease was busy for the whole wait and no valid token is stored");
        Err(err)
    }

    /// Reads the token under the lease, checking in the same step (one
    /// statement where the store can: `load_leased`) that the lease is
    /// really ours. An unsaved newer pair is saved first; if that fails
    /// again, the interim answer is returned instead (`Err` of the outer
    /// result is a hard failure, `Ok(Err(_))` an answer).
    #[allow(clippy::type_complexity)]
    async fn reload(
        self: &Arc<Self>,
        key: &TokenKey,
        mut lease: Box<dyn KeyLock>,
        goal: &Goal,
    ) -> Result<Result<(Box<dyn KeyLock>, Option<Current>), Outcome>> {
        if let Some(unsaved) = self.unsaved.get(key) {
            // Rare (an earlier save failed), so boxed, like the other cold
            // steps: its state and code stay out of every flight.
            match Box::pin(self.save_unsaved_first(key, lease, goal, unsaved)).await? {
                Ok(held) => lease = held,
                Err(interim) => return Ok(Err(interim)),
            }
        }
        let current = self.store.load_leased(lease.as_ref()).await?.map(shared);
        // The cache keeps up with the newest stored version even when this
        // flight goes on to refresh: an answer served from this token (an
        // interim one, a stale one) must never leave an older token in the
        // cache for `force_refresh` to hand back.
        if let Some(current) = &current {
            self.cache.put_stored(key, &current.value, current.version);
        }
        Ok(Ok((lease, current)))
    }

    /// Saves this process's unsaved newer pair of `key` under the lease,
    /// before the lease's holder reads the store: the lease back when it is
    /// saved; otherwise the interim answer, the save retried in the
    /// background with the lease.
    async fn save_unsaved_first(
        self: &Arc<Self>,
        key: &TokenKey,
        lease: Box<dyn KeyLock>,
        goal: &Goal,
        unsaved: Arc<Unsaved>,
    ) -> Result<Result<Box<dyn KeyLock>, Outcome>> {
        lease.check().await?;
        match self.try_save(key, lease.as_ref(), &unsaved).await {
            Ok(_) => Ok(Ok(lease)),
            Err(err) => {
                warn!(%key, error = %err, "the unsaved token still cannot be saved");
                let interim = unsaved.interim(key, self.now(), goal.rejected());
                self.keep_saving(key, Some(lease), unsaved);
                Ok(Err(interim))
            }
        }
    }

    /// Decides what to do with what the store holds.
    fn judge(
        &self,
        key: &TokenKey,
        goal: &Goal,
        stored: Option<Current>,
        provider: &dyn TokenProvider,
    ) -> Judged {
        let now = self.now();
        let Some(stored) = stored else {
            if provider.can_mint() {
                return Judged::Mint;
            }
            return Judged::Done(Err(Error::reauthorization_required(
                Some(key.clone()),
                "no token is stored for this account",
            )));
        };
        let token = &stored.value;
        if let Some(reason) = token.reauthorization_required() {
            let err = Error::reauthorization_required(Some(key.clone()), reason);
            self.cache.put(key, stored.value, stored.version);
            return Judged::Done(Err(err));
        }
        if goal.satisfied_by(token, now, self.skew) {
            let token = stored.value;
            self.cache.put(key, Arc::clone(&token), stored.version);
            return Judged::Done(Ok(token));
        }
        if let Some(cooldown) = token.refresh_cooldown().filter(|c| c.is_active(now)) {
            if matches!(goal, Goal::Fresh) && token.is_fresh(now, Duration::ZERO) {
                debug!(%key, "refresh cooling down; serving the still-valid token");
                let token = stored.value;
                self.cache.put(key, Arc::clone(&token), stored.version);
                return Judged::Done(Ok(token));
            }
            let wait = cooldown.until.duration_since(now).unwrap_or_default();
            return Judged::Done(Err(Error::Transient {
                message: format!(
                    "refreshes of {key} failed {} time(s) in a row, so the next try waits until \
                     {}",
                    cooldown.failures,
                    humantime::format_rfc3339_seconds(cooldown.until)
                ),
                status: None,
                retry_after: Some(wait),
                source: None,
            }));
        }
        if token.refresh_token().is_none() {
            if provider.can_mint() {
                return Judged::Mint;
            }
            return Judged::Done(Err(Error::reauthorization_required(
                Some(key.clone()),
                "the access token expired and the grant has no refresh token",
            )));
        }
        Judged::Refresh(stored)
    }

    // ---- Step 4: refresh at the provider, then save -----------------------

    /// One refresh, under the lease, and the save of its result.
    async fn refresh(
        self: &Arc<Self>,
        key: &TokenKey,
        goal: &Goal,
        provider: &Arc<dyn TokenProvider>,
        lease: Box<dyn KeyLock>,
        current: Current,
    ) -> Outcome {
        debug!(%key, "refreshing");
        let stopwatch = telemetry::Stopwatch::start();
        let answer = self
            .call_provider(key, lease.as_ref(), || provider.refresh(&current.value))
            .await;
        let class = answer.as_ref().map_or_else(Error::class, |_| "ok");
        telemetry::refresh(&key.provider, class, stopwatch.elapsed());
        match answer {
            Ok(fresh) => {
                let merged = Arc::new(current.value.merge_refreshed(fresh));
                let unsaved = Unsaved::new(
                    merged,
                    Origin::Refresh {
                        from: current.version,
                        previous: current.value,
                    },
                    !provider.use_ends_replay_window(),
                );
                self.persist(key, lease, unsaved, goal).await
            }
            Err(err) if err.is_reauthorization_required() => {
                Err(Box::pin(self.flag(key, lease.as_ref(), current, err)).await)
            }
            Err(err) if err.store_kind() == Some(StoreErrorKind::LeaseLost) => {
                Err(lost_before_send(key, err))
            }
            Err(err) if err.is_transient() => {
                Box::pin(self.cool_down(key, goal, lease.as_ref(), current, err)).await
            }
            Err(err) => Err(refresh_refused(key, err)),
        }
    }

    /// Mints a token with the provider's own grant (client credentials),
    /// under the lease, and saves it.
    async fn mint(
        self: &Arc<Self>,
        key: &TokenKey,
        provider: &Arc<dyn TokenProvider>,
        lease: Box<dyn KeyLock>,
        goal: &Goal,
    ) -> Outcome {
        debug!(%key, "minting a token");
        let token = self
            .call_provider(key, lease.as_ref(), || provider.mint(key))
            .await
            .map_err(|e| e.for_key(key))?;
        let unsaved = Unsaved::new(Arc::new(token.into_new_grant()), Origin::Grant, true);
        self.persist(key, lease, unsaved, goal).await
    }

    /// Calls the provider with retries: an outcome the client cannot know
    /// (a lost answer, a timeout, a 5xx, a 429, a panic) is retried with the
    /// same request, because Fitbit answers an identical refresh with the
    /// same new pair. Every attempt, waits included, fits in the refresh
    /// deadline, which is shorter than the lease wait of other callers.
    ///
    /// The lease is known to be held before every send: after a lost lease,
    /// nothing is sent. The first send follows the leased load of
    /// [`reload`](Self::reload), which checked the lease in the same step,
    /// with no await in between (only [`judge`](Self::judge), which does no
    /// I/O), so it is not checked again: that saves a store round trip on
    /// every refresh (a query for Postgres, a `stat` for the file store).
    /// Every retry, after a pause, checks it first.
    async fn call_provider<'a, F>(
        &self,
        key: &TokenKey,
        lease: &dyn KeyLock,
        mut op: F,
    ) -> Result<TokenSet>
    where
        F: FnMut() -> BoxFuture<'a, Result<TokenSet>>,
    {
        let deadline = tokio::time::Instant::now() + self.refresh_deadline;
        let mut attempt = 1;
        loop {
            if attempt > 1 {
                lease.check().await.map_err(|e| e.for_key(key))?;
            }
            let answer = match tokio::time::timeout_at(
                deadline,
                AssertUnwindSafe(op()).catch_unwind(),
            )
            .await
            {
                Err(_) => Err(self.past_deadline()),
                Ok(Err(_)) => Err(provider_panicked()),
                Ok(Ok(answer)) => answer,
            };
            let err = match answer {
                Err(err) if err.is_transient() => err,
                other => return other,
            };
            let delay = self.retry_delay(key, attempt, deadline, err)?;
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// The error of a provider call that outlived the refresh deadline.
    #[cold]
    fn past_deadline(&self) -> Error {
        Error::transient(format!(
            "the provider did not answer within the refresh deadline of {}; the outcome is unknown",
            humantime::format_duration(self.refresh_deadline)
        ))
    }

    /// After attempt `attempt` of [`call_provider`](Self::call_provider)
    /// failed with the transient `err`: the pause before the next attempt,
    /// or `err` when no retry fits. (Out of the usual path; and the retry's
    /// pause keeps only the delay alive: a smaller future for every
    /// refresh.)
    #[cold]
    #[inline(never)]
    fn retry_delay(
        &self,
        key: &TokenKey,
        attempt: u32,
        deadline: tokio::time::Instant,
        err: Error,
    ) -> Result<Duration> {
        let Some(delay) = self.retry.delay_after(attempt, err.retry_after()) else {
            warn!(%key, attempt, error = %err, "refresh failed; no retry left");
            return Err(err);
        };
        if tokio::time::Instant::now() + delay >= deadline {
            warn!(%key, attempt, error = %err, "refresh failed; the next retry would pass the refresh deadline");
            return Err(err);
        }
        debug!(%key, attempt, ?delay, error = %err, "transient failure; retrying with the same request");
        Ok(delay)
    }

    /// Saves a new token under the lease before anyone sees it. If the save
    /// fails, the token stays in memory (shared only then: a save that
    /// works, almost every one, allocates nothing for it), a background
    /// task keeps trying (still under the lease), and the caller gets the
    /// interim answer.
    async fn persist(
        self: &Arc<Self>,
        key: &TokenKey,
        lease: Box<dyn KeyLock>,
        unsaved: Unsaved,
        goal: &Goal,
    ) -> Outcome {
        match self.try_save(key, lease.as_ref(), &unsaved).await {
            Ok(Saved::Ours(token)) => {
                self.announce_saved(key, &unsaved);
                Ok(token)
            }
            Ok(Saved::Theirs(stored)) => match stored {
                Some(stored) if goal.satisfied_by(&stored.value, self.now(), Duration::ZERO) => {
                    Ok(Arc::new(stored.value))
                }
                _ => Err(Error::transient(format!(
                    "another writer replaced the token of {key} during its refresh; try again"
                ))),
            },
            Err(err) => {
                warn!(%key, error = %err, "saving the new token failed; keeping it in memory and retrying the save");
                let interim = unsaved.interim(key, self.now(), goal.rejected());
                self.keep_saving(key, Some(lease), Arc::new(unsaved));
                interim
            }
        }
    }

    /// One save of an unsaved token, with the compare-and-swap rules of
    /// [`Unsaved::verdict`] on a conflict.
    pub(super) async fn try_save(
        &self,
        key: &TokenKey,
        lease: &dyn KeyLock,
        unsaved: &Unsaved,
    ) -> Result<Saved> {
        // The usual case, a refresh: one compare-and-swap against the
        // version it refreshed from. Everything else (a login, a conflict)
        // is out of line, so that it adds nothing to every flight.
        if let Origin::Refresh { from, .. } = &unsaved.origin {
            match self
                .store
                .save_leased(lease, &unsaved.token, Some(*from))
                .await
            {
                Ok(version) => return Ok(self.saved(key, unsaved, version)),
                Err(err) if err.store_kind() == Some(StoreErrorKind::Conflict) => {
                    return Box::pin(self.save_after_reading(
                        key,
                        lease,
                        unsaved,
                        SAVE_ATTEMPTS - 1,
                    ))
                    .await;
                }
                Err(err) => return Err(err.for_key(key)),
            }
        }
        Box::pin(self.save_after_reading(key, lease, unsaved, SAVE_ATTEMPTS)).await
    }

    /// Reads the stored token, decides with [`Unsaved::verdict`] whether to
    /// overwrite it, and saves against its version; again after each
    /// conflict, for at most `attempts` saves. A corrupt stored token makes
    /// `load` fail, and the error stands: overwriting it would destroy what
    /// a person may need to look at.
    async fn save_after_reading(
        &self,
        key: &TokenKey,
        lease: &dyn KeyLock,
        unsaved: &Unsaved,
        mut attempts: usize,
    ) -> Result<Saved> {
        loop {
            let stored = self.store.load(key).await?;
            let expected = match unsaved.verdict(stored.as_ref()) {
                Verdict::Overwrite(version) => version,
                Verdict::KeepStored => return Ok(self.keep_stored(key, unsaved, stored)),
            };
            if attempts == 0 {
                return Err(Error::store(
                    StoreErrorKind::Conflict,
                    Some(key.clone()),
                    "the stored token kept changing under the lease (a writer that does not take \
                     the lease?); the new token is kept in memory",
                ));
            }
            attempts -= 1;
            match self
                .store
                .save_leased(lease, &unsaved.token, expected)
                .await
            {
                Ok(version) => return Ok(self.saved(key, unsaved, version)),
                Err(err) if err.store_kind() == Some(StoreErrorKind::Conflict) => {}
                Err(err) => return Err(err.for_key(key)),
            }
        }
    }

    /// Our token is stored at `version`: the cache holds it, and it is no
    /// longer unsaved.
    fn saved(&self, key: &TokenKey, unsaved: &Unsaved, version: Version) -> Saved {
        self.cache.put(key, Arc::clone(&unsaved.token), version);
        self.unsaved.settle(key, unsaved);
        Saved::Ours(Arc::clone(&unsaved.token))
    }

    /// Drops an unsaved token in favour of a newer stored one.
    fn keep_stored(
        &self,
        key: &TokenKey,
        unsaved: &Unsaved,
        stored: Option<Versioned<TokenSet>>,
    ) -> Saved {
        warn!(%key, "another writer stored a newer token (a new login?) than the one this process holds unsaved; keeping the stored token");
        self.unsaved.settle(key, unsaved);
        if let Some(stored) = &stored {
            self.cache
                .put(key, Arc::new(stored.value.clone()), stored.version);
        }
        Saved::Theirs(stored)
    }

    /// Tells subscribers that a token was saved.
    fn announce_saved(&self, key: &TokenKey, unsaved: &Unsaved) {
        if matches!(unsaved.origin, Origin::Refresh { .. }) {
            info!(%key, "token refreshed and saved");
            self.emit(TokenEvent::Refreshed {
                key: key.clone(),
                expires_at: unsaved.token.expires_at(),
            });
        }
    }

    /// Keeps `unsaved` in memory and retries its save in the background
    /// (taking the lease first if `lease` is `None`). A lost lease stops the
    /// task; the next flight of the key, with a fresh lease, saves it.
    pub(super) fn keep_saving(
        self: &Arc<Self>,
        key: &TokenKey,
        lease: Option<Box<dyn KeyLock>>,
        unsaved: Arc<Unsaved>,
    ) {
        self.unsaved.keep(key, Arc::clone(&unsaved));
        unsaved.saving.store(true, Ordering::SeqCst);
        let inner = Arc::clone(self);
        let key = key.clone();
        spawn_tracked(&self.tasks, async move {
            inner.save_in_background(&key, lease, &unsaved).await;
            unsaved.saving.store(false, Ordering::SeqCst);
        });
    }

    /// Retries the save of `unsaved` with backoff for `save_retry_for`.
    async fn save_in_background(
        &self,
        key: &TokenKey,
        mut lease: Option<Box<dyn KeyLock>>,
        unsaved: &Arc<Unsaved>,
    ) {
        let deadline = tokio::time::Instant::now() + self.save_retry_for;
        let mut backoff = SAVE_BACKOFF.0;
        let mut last = String::new();
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(SAVE_BACKOFF.1);
            if unsaved.abandoned.load(Ordering::SeqCst) {
                debug!(%key, "the account was removed; the unsaved token is dropped");
                return;
            }
            if lease.is_none() {
                match self.store.lock(key, self.lock_wait).await {
                    Ok(held) => lease = Some(held),
                    Err(err) => {
                        last = err.to_string();
                        continue;
                    }
                }
            }
            let held = lease.as_deref().expect("the lease is held here");
            match self.try_save(key, held, unsaved).await {
                Ok(Saved::Ours(_)) => {
                    info!(%key, "the token kept in memory is saved now");
                    self.announce_saved(key, unsaved);
                    return;
                }
                Ok(Saved::Theirs(_)) => return,
                Err(err) if err.store_kind() == Some(StoreErrorKind::LeaseLost) => {
                    error!(%key, error = %err, "the lease was lost while a new token was unsaved; the next call retries the save under a new lease");
                    self.emit(TokenEvent::SaveFailed {
                        key: key.clone(),
                        reason: err.to_string(),
                    });
                    return;
                }
                Err(err) => last = err.to_string(),
            }
        }
        error!(
            %key,
            error = %last,
            "could not save a new token for {}; it is kept in memory and the next call for the account tries again, but it is lost if this process stops",
            humantime::format_duration(self.save_retry_for)
        );
        self.emit(TokenEvent::SaveFailed {
            key: key.clone(),
            reason: last,
        });
    }

    // ---- Step 5: a refused grant --------------------------------------------

    /// Flags the stored token as needing reauthorization, keeping it.
    async fn flag(
        &self,
        key: &TokenKey,
        lease: &dyn KeyLock,
        current: Current,
        err: Error,
    ) -> Error {
        let reason = match &err {
            Error::ReauthorizationRequired { reason, .. } => reason.clone(),
            other => other.to_string(),
        };
        let flagged = TokenSet::clone(&current.value).flagged_for_reauthorization(reason.clone());
        match self
            .store
            .save_leased(lease, &flagged, Some(current.version))
            .await
        {
            Ok(version) => self.cache.put(key, Arc::new(flagged), version),
            Err(save_err) => {
                warn!(%key, error = %save_err, "could not flag the token; the next refresh will ask the server again");
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

    // ---- Step 7: a transient failure ----------------------------------------

    /// Records a growing cooldown with the stored token, so every process
    /// waits before the next try, and serves the token if it is still valid
    /// (for [`Goal::Fresh`]; a rejected token is never served back).
    async fn cool_down(
        &self,
        key: &TokenKey,
        goal: &Goal,
        lease: &dyn KeyLock,
        current: Current,
        err: Error,
    ) -> Outcome {
        let now = self.now();
        let failures = current
            .value
            .refresh_cooldown()
            .map_or(0, |c| c.failures)
            .saturating_add(1);
        let pause = self
            .cooldown
            .delay(failures)
            .max(err.retry_after().unwrap_or_default());
        let until = now + pause;
        let cooling = Arc::new(
            TokenSet::clone(&current.value)
                .with_refresh_cooldown(Some(RefreshCooldown::new(until, failures))),
        );
        match self
            .store
            .save_leased(lease, &cooling, Some(current.version))
            .await
        {
            Ok(version) => self.cache.put(key, Arc::clone(&cooling), version),
            Err(save_err) => {
                warn!(%key, error = %save_err, "could not record the refresh cooldown");
            }
        }
        let serve = matches!(goal, Goal::Fresh) && cooling.is_fresh(now, Duration::ZERO);
        self.emit(TokenEvent::RefreshFailed {
            key: key.clone(),
            reason: err.to_string(),
            retry_at: until,
            served_stale: serve,
        });
        if serve {
            warn!(%key, error = %err, "refresh failed; serving the still-valid token until {}", humantime::format_rfc3339_seconds(until));
            return Ok(cooling);
        }
        warn!(%key, error = %err, "refresh failed; next try after {}", humantime::format_rfc3339_seconds(until));
        Err(with_retry_after(err.for_key(key), pause))
    }
}

/// Logs how long the key's lease took: at info level when someone held it
/// for a noticeable time, at debug level otherwise. (Out of line: the
/// fields' formatting code stays out of every flight's path.)
#[inline(never)]
fn log_lease_wait(key: &TokenKey, waited: Duration, taken: bool) {
    let waited_ms = u64::try_from(waited.as_millis()).unwrap_or(u64::MAX);
    if waited >= LEASE_WAIT_NOTICE {
        info!(%key, waited_ms, taken, "waited for the key's lease");
    } else {
        debug!(%key, waited_ms, taken, "took the key's lease");
    }
}

/// A refresh not started because the manager is shutting down.
#[cold]
fn shutting_down(key: &TokenKey) -> Error {
    Error::transient(format!(
        "the token manager is shutting down; {key} was not refreshed"
    ))
}

/// The lease was gone before a request went out: nothing was sent, so
/// nothing to cool down from; the caller tries again.
#[cold]
fn lost_before_send(key: &TokenKey, err: Error) -> Error {
    warn!(%key, error = %err, "the lease was lost before the refresh was sent");
    err
}

/// A refresh that failed for good (not transient, not a refused grant).
#[cold]
fn refresh_refused(key: &TokenKey, err: Error) -> Error {
    warn!(%key, class = err.class(), error = %err, "refresh failed; the stored token is kept");
    err.for_key(key)
}

/// The error of a provider call that panicked.
#[cold]
fn provider_panicked() -> Error {
    Error::transient(
        "the provider panicked during the request (a bug in the provider); the outcome is unknown",
    )
}

/// Sets the `retry_after` of a transient error to at least `pause`.
fn with_retry_after(mut err: Error, pause: Duration) -> Error {
    if let Error::Transient { retry_after, .. } = &mut err {
        *retry_after = Some(retry_after.unwrap_or_default().max(pause));
    }
    err
}

/// The stored version of a key, for tombstones; ignores errors (a corrupt
/// token's version is unknown).
pub(super) async fn version_of(inner: &Inner, key: &TokenKey) -> Option<Version> {
    inner
        .store
        .load(key)
        .await
        .ok()
        .flatten()
        .map(|v| v.version)
}
