//! The refresh decision: from what is known to the next action. It does no
//! I/O and reads no clock: the driver (`driver.rs`) performs each action
//! and asks again with what it learned, the way quinn-proto's `Connection`
//! is driven by quinn.
//!
//! What is known: the caller's [`Goal`]; the key's row as last read, with
//! its write-ahead record and its age on the **store's** clock; a pair this
//! process holds unsaved; the provider's [`RefreshRules`]; this host's
//! time (used only for a token's own expiry, never against the store); and,
//! within one lease, the attempts made so far ([`Tenure`]).
//!
//! The rules it keeps, and the fault each one closes:
//! - **Write-ahead.** A rotating refresh token is sent only after a fenced
//!   record "refresh of version v in flight"; if that write fails, nothing
//!   is sent ([`Next::Refresh`] with `record`).
//! - **Only a definite outcome clears the record**: the new pair, or the
//!   flag after `invalid_grant`. An attempt that was not processed (nothing
//!   sent, a 429, an error answer) clears it only if no earlier attempt
//!   under the same record had an unknown outcome; a record found at
//!   takeover counts as unknown ([`Tenure::unknown`]).
//! - **F1.** Every retry and replay is preceded by a fenced renewal that
//!   re-reads the record ([`on_renewal`]); the first send's renewal is the
//!   write-ahead itself. Each attempt ends before the lease would
//!   ([`attempt_timeout`]).
//! - **Takeover.** A record found under the lease is replayed first,
//!   whatever expiry, skew or cooldown say, while it is younger than the
//!   provider's window, at most every window/8 ([`Next::Replay`]).
//! - **F4, the late-replay guard.** A record a window old (or any record,
//!   for a provider without a window) may belong to a live holder still
//!   saving its pair: watch it first ([`Next::Guard`]), replay only after
//!   it stayed unchanged.
//! - **Serving.** A token with a record is never "fresh, nothing to do";
//!   meanwhile a still-valid token is served or a transient error given
//!   ([`interim`]). An unsaved pair's new access token is not served while
//!   its first use would end the server's replay window.
//! - **Cooldown.** Its end is on the store's clock; while an outcome is
//!   unknown and the provider has a window, no wait passes a quarter of it.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use secrecy::ExposeSecret;

use super::retry::{CooldownPolicy, RetryPolicy};
use crate::error::{Error, Sent, human_duration};
use crate::id::TokenKey;
use crate::provider::RefreshRules;
use crate::store::{Expect, Record, Sequence, Stored, Version};
use crate::token::{RefreshCooldown, TokenSet};

/// What a caller wants from a flight.
#[derive(Clone, Debug)]
pub(crate) enum Goal {
    /// A token fresh beyond the skew (or, during a cooldown or while a
    /// refresh is being finished, still valid).
    Fresh,
    /// Any valid token other than this rejected one: refresh only if the
    /// rejected token is still the current one.
    Replace(Arc<TokenSet>),
    /// Finish a refresh left in flight (the Refresher's orphan poll, the
    /// guard's replay): act only on a record. `observed`: the record
    /// version the late-replay guard watched unchanged.
    Takeover {
        /// The version the guard watched, if it ran.
        observed: Option<Version>,
    },
}

impl Goal {
    fn rejected(&self) -> Option<&str> {
        match self {
            Goal::Replace(t) => Some(t.access_token().expose_secret()),
            _ => None,
        }
    }

    /// Whether `token` answers this goal without a refresh.
    pub(crate) fn satisfied_by(&self, token: &TokenSet, now: SystemTime, skew: Duration) -> bool {
        if token.reauthorization_required().is_some() {
            return false;
        }
        match self {
            Goal::Fresh => fresh_beyond_skew(token, now, skew),
            Goal::Replace(_) => usable(token, now, self.rejected()),
            Goal::Takeover { .. } => token.is_fresh(now, Duration::ZERO),
        }
    }
}

/// A pair this process holds but could not save yet (a refresh's new pair,
/// or a login's token). Its save task owns it; callers get [`interim`].
#[derive(Debug)]
pub(crate) struct Unsaved {
    /// The new token.
    pub(crate) token: Arc<TokenSet>,
    /// Where it came from, which decides what it may overwrite.
    pub(crate) origin: Origin,
    /// Whether its new access token may be used before it is saved.
    pub(crate) serve_new: bool,
}

/// Where an unsaved token came from.
#[derive(Debug, Clone)]
pub(crate) enum Origin {
    /// A refresh of `previous`, stored at `from`.
    Refresh {
        from: Version,
        previous: Arc<TokenSet>,
    },
    /// A login, sequenced by the store; `None` until the sequence is taken
    /// (the lease could not be had when the login finished).
    Login(Option<Sequence>),
    /// A minted token (client credentials): replaces what `from` held.
    Mint { from: Option<Version> },
}

/// What is known when a row has just been read.
pub(crate) struct Known<'a> {
    pub(crate) key: &'a TokenKey,
    pub(crate) goal: &'a Goal,
    /// This host's clock: only for the token's own expiry.
    pub(crate) now: SystemTime,
    pub(crate) skew: Duration,
    pub(crate) rules: RefreshRules,
    pub(crate) can_mint: bool,
    /// The row, or `None` when nothing was ever stored.
    pub(crate) row: Option<&'a Stored>,
    /// Whether the row was read under the key's lease.
    pub(crate) leased: bool,
}

/// What to do next with a row.
#[derive(Debug)]
pub(crate) enum Next {
    /// Answer with this token (and cache it).
    Serve(Arc<TokenSet>),
    /// Answer with this error.
    Fail(Error),
    /// Take the lease and read again.
    Lease,
    /// Refresh from the stored pair: write the record first when `record`.
    Refresh { record: bool },
    /// Replay the stored refresh token: a record was found.
    Replay,
    /// The record may be a live holder's: release the lease, watch the
    /// record at this version, replay only if it stays unchanged.
    Guard(Version),
    /// Get a token with the provider's own grant.
    Mint,
}

/// Decides what to do with a row just read.
pub(crate) fn on_row(k: &Known<'_>) -> Next {
    let Some(row) = k.row.filter(|r| r.token.is_some()) else {
        if matches!(k.goal, Goal::Takeover { .. }) {
            return Next::Fail(no_token(k.key));
        }
        return if k.can_mint && k.leased {
            Next::Mint
        } else if k.can_mint {
            Next::Lease
        } else {
            Next::Fail(no_token(k.key))
        };
    };
    let token = row.token.as_ref().expect("filtered above");
    if let Some(reason) = token.reauthorization_required() {
        return Next::Fail(Error::reauthorization_required(Some(k.key.clone()), reason));
    }
    let cooling = token.refresh_cooldown().filter(|c| c.until > row.read_at);
    if let (Some(age), true) = (row.in_flight_age(), k.rules.rotates()) {
        if !k.leased {
            return Next::Lease;
        }
        let late = k.rules.replay_window().is_none_or(|w| age >= w);
        let paced = match k.rules.replay_window() {
            // In the window the cooldown is ignored, except the pacing of
            // replays (a cooldown of at most window/8, see `cool_down`).
            Some(w) if !late => cooling.is_some_and(|c| remaining(c, row) <= w / 8),
            _ => cooling.is_some(),
        };
        if paced {
            return serve_or_fail(k, token, in_flight_error(k.key, Sent::Unknown));
        }
        let observed = matches!(k.goal, Goal::Takeover { observed: Some(v) } if *v == row.version);
        return if late && !observed {
            Next::Guard(row.version)
        } else {
            Next::Replay
        };
    }
    if matches!(k.goal, Goal::Takeover { .. }) || k.goal.satisfied_by(token, k.now, k.skew) {
        return Next::Serve(Arc::new(token.clone()));
    }
    if let Some(cooldown) = cooling {
        return serve_or_fail(
            k,
            token,
            cooldown_error(k.key, cooldown, remaining(cooldown, row)),
        );
    }
    if !k.leased {
        return Next::Lease;
    }
    if token.refresh_token().is_none() {
        return if k.can_mint {
            Next::Mint
        } else {
            Next::Fail(Error::reauthorization_required(
                Some(k.key.clone()),
                "the access token expired and the grant has no refresh token",
            ))
        };
    }
    Next::Refresh {
        record: k.rules.rotates(),
    }
}

/// The F1 check before a retry or replay: the renewed row must be the one
/// refreshed from (`version`), still with its record when one was written.
/// `None`: send. Otherwise what to do instead of sending.
pub(crate) fn on_renewal(
    row: Option<&Stored>,
    version: Version,
    record: bool,
    rules: RefreshRules,
    observed: bool,
) -> Option<Next> {
    let Some(row) = row.filter(|r| r.version == version && (!record || r.in_flight.is_some()))
    else {
        return Some(Next::Lease);
    };
    let late = row
        .in_flight_age()
        .is_some_and(|age| rules.replay_window().is_some_and(|w| age >= w));
    (late && !observed).then_some(Next::Guard(row.version))
}

/// How one attempt ended, as far as the grant is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Processed {
    /// Not processed: nothing was sent, a 429, or an error answer.
    No,
    /// It may have been: a timeout, a lost answer, a 5xx, a 200 that
    /// could not be parsed, a panic.
    Unknown,
}

/// Classifies a failed attempt.
pub(crate) fn processed(err: &Error) -> Processed {
    match err {
        Error::Transient { sent: Sent::No, .. } => Processed::No,
        Error::Transient {
            status: Some(429), ..
        } => Processed::No,
        Error::Transient { .. } | Error::Protocol { .. } | Error::Store { .. } => {
            Processed::Unknown
        }
        _ => Processed::No,
    }
}

/// The attempts made under one lease, from one record.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tenure {
    /// Attempts sent so far.
    pub(crate) attempts: u32,
    /// Whether an attempt under this record may have been processed (a
    /// record found at takeover counts).
    pub(crate) unknown: bool,
    /// Whether a record was written or found.
    pub(crate) record: bool,
}

/// What to do after a failed attempt.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AfterFailure {
    /// Renew, then send the same refresh token again after this pause.
    Retry(Duration),
    /// Flag the token (`invalid_grant`), clearing the record.
    Flag,
    /// Stop: write the cooldown (transient errors) and do this with the
    /// record.
    Stop { cool: bool, record: Record },
}

/// Decides after a failed attempt. `time_left`: until the refresh
/// deadline.
pub(crate) fn after_failure(
    tenure: &mut Tenure,
    err: &Error,
    retry: &RetryPolicy,
    rules: RefreshRules,
    time_left: Duration,
) -> AfterFailure {
    if err.is_reauthorization_required() {
        return AfterFailure::Flag;
    }
    tenure.unknown |= processed(err) == Processed::Unknown;
    if matches!(err, Error::Transient { .. })
        && let Some(mut delay) = retry.delay_after(tenure.attempts, err.retry_after())
    {
        if tenure.unknown
            && let Some(w) = rules.replay_window()
        {
            delay = delay.min(w / 4);
        }
        if delay < time_left {
            return AfterFailure::Retry(delay);
        }
    }
    // The record stays unless every attempt under it was not processed.
    let record = if tenure.record && !tenure.unknown {
        Record::Clear
    } else {
        Record::Keep
    };
    AfterFailure::Stop {
        cool: err.is_transient() || matches!(err, Error::Protocol { .. }),
        record,
    }
}

/// The token with a cooldown after a failed refresh, and the pause. The
/// end is on the store's clock: `read_at` of the row refreshed from plus
/// the time spent since (`spent`, measured here). While an outcome is
/// unknown under a window, the pause is window/8: the pacing of replays,
/// well inside a quarter of the window.
pub(crate) fn cool_down(
    token: &TokenSet,
    read_at: SystemTime,
    spent: Duration,
    policy: &CooldownPolicy,
    err: &Error,
    unknown: bool,
    rules: RefreshRules,
) -> (TokenSet, Duration) {
    let failures = token
        .refresh_cooldown()
        .map_or(0, |c| c.failures)
        .saturating_add(1);
    let mut pause = policy
        .delay(failures)
        .max(err.retry_after().unwrap_or_default());
    if unknown
        && rules.rotates()
        && let Some(w) = rules.replay_window()
    {
        pause = w / 8;
    }
    let until = read_at + spent + pause;
    let cooling = token
        .clone()
        .with_refresh_cooldown(Some(RefreshCooldown::new(until, failures)));
    (cooling, pause)
}

/// The longest a single attempt may take: the manager's attempt timeout,
/// within the time left, and short enough that a renewed lease outlives it
/// by `margin` (F1).
pub(crate) fn attempt_timeout(
    configured: Duration,
    time_left: Duration,
    lease_ttl: Option<Duration>,
    margin: Duration,
) -> Duration {
    let by_lease = lease_ttl.map_or(configured, |ttl| ttl.saturating_sub(margin));
    configured.min(time_left).min(by_lease)
}

/// What an unsaved token's save does with the row found under the lease.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Save over it, expecting this.
    Overwrite(Expect),
    /// The row holds something newer that is not ours to replace (a newer
    /// login, a tombstone, a pair refreshed from ours): drop ours.
    KeepStored,
}

/// Decides what an unsaved token's save does with `row`. A login's
/// sequence must be known by now.
pub(crate) fn verdict(origin: &Origin, row: Option<&Stored>) -> Verdict {
    match (origin, row) {
        (Origin::Login(Some(seq)), None) => Verdict::Overwrite(Expect::Login(*seq)),
        (Origin::Login(Some(seq)), Some(row)) if row.grant < *seq => {
            Verdict::Overwrite(Expect::Login(*seq))
        }
        (Origin::Mint { .. }, None) => Verdict::Overwrite(Expect::Absent),
        (Origin::Mint { from }, Some(row)) if row.token.is_some() || from.is_none() => {
            Verdict::Overwrite(Expect::Version(row.version))
        }
        (Origin::Refresh { from, previous }, Some(row)) => {
            let Some(stored) = &row.token else {
                return Verdict::KeepStored;
            };
            // Ours to overwrite: the row refreshed from, or any row still
            // carrying the refresh token that was sent (a cooldown, a
            // record written since), or a flag.
            let sent = previous.refresh_token().map(ExposeSecret::expose_secret);
            let carries_sent = stored
                .refresh_token()
                .is_some_and(|t| Some(t.expose_secret()) == sent);
            if row.version == *from || carries_sent || stored.reauthorization_required().is_some() {
                Verdict::Overwrite(Expect::Version(row.version))
            } else {
                Verdict::KeepStored
            }
        }
        _ => Verdict::KeepStored,
    }
}

/// What a caller gets while `unsaved` is being saved: its new access token
/// if that may be used, else the previous one while valid, else a
/// transient error. Never the rejected token.
pub(crate) fn interim(
    key: &TokenKey,
    unsaved: &Unsaved,
    goal: &Goal,
    now: SystemTime,
) -> Result<Arc<TokenSet>, Error> {
    if unsaved.serve_new && usable(&unsaved.token, now, goal.rejected()) {
        return Ok(Arc::clone(&unsaved.token));
    }
    if let Origin::Refresh { previous, .. } = &unsaved.origin
        && usable(previous, now, goal.rejected())
    {
        return Ok(Arc::clone(previous));
    }
    Err(Error::Transient {
        message: format!(
            "a new token for {key} was issued but is not saved yet; it is kept in memory and \
             its save is being retried, and it cannot be handed out before it is saved without \
             risking the grant"
        ),
        sent: Sent::Unknown,
        status: None,
        retry_after: Some(Duration::from_secs(5)),
        source: None,
    })
}

/// The still-valid `token` for a caller who may have it (not a rejected
/// one, not for a takeover), else `err`.
pub(crate) fn serve_or_fail(k: &Known<'_>, token: &TokenSet, err: Error) -> Next {
    if matches!(k.goal, Goal::Fresh) && usable(token, k.now, None) {
        Next::Serve(Arc::new(token.clone()))
    } else {
        Next::Fail(err)
    }
}

/// The error while a refresh of `key` is in flight and cannot be finished
/// now.
pub(crate) fn in_flight_error(key: &TokenKey, sent: Sent) -> Error {
    Error::Transient {
        message: format!(
            "a refresh of {key} is in flight and is being finished; its outcome is unknown"
        ),
        sent,
        status: None,
        retry_after: Some(Duration::from_secs(2)),
        source: None,
    }
}

fn cooldown_error(key: &TokenKey, c: &RefreshCooldown, left: Duration) -> Error {
    Error::Transient {
        message: format!(
            "refreshes of {key} failed {} time(s) in a row, so the next try waits {}; nothing was \
             sent (run `authctl clear-flag` for the account to try at once)",
            c.failures,
            human_duration(left)
        ),
        sent: Sent::No,
        status: None,
        retry_after: Some(left),
        source: None,
    }
}

fn remaining(c: &RefreshCooldown, row: &Stored) -> Duration {
    c.until.duration_since(row.read_at).unwrap_or_default()
}

fn no_token(key: &TokenKey) -> Error {
    Error::reauthorization_required(Some(key.clone()), "no token is stored for this account")
}

fn usable(token: &TokenSet, now: SystemTime, rejected: Option<&str>) -> bool {
    token.reauthorization_required().is_none()
        && token.is_fresh(now, Duration::ZERO)
        && rejected.is_none_or(|r| r != token.access_token().expose_secret())
}

/// Whether `token` is fresh beyond the skew, where the skew is at most
/// three quarters of the token's lifetime: a token living less than the
/// skew would otherwise be "expiring" from birth.
pub(crate) fn fresh_beyond_skew(token: &TokenSet, now: SystemTime, skew: Duration) -> bool {
    let lifetime = token
        .expires_at()
        .and_then(|e| e.duration_since(token.issued_at()).ok());
    let skew = lifetime.map_or(skew, |l| skew.min(l / 4 * 3));
    token.is_fresh(now, skew)
}
