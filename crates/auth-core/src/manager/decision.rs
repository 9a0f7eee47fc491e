//! The refresh decision: from what is known to the next action. It does no
//! I/O and reads no clock; the [driver](super::driver) performs each action
//! and asks again with what it learned (as quinn drives quinn-proto).
//!
//! What is known: the caller's [`Goal`]; the key's row as last read, with
//! its write-ahead record and its age on the **store's** clock; a pair held
//! unsaved; the provider's [`RefreshRules`]; this host's time (only for a
//! token's own expiry, never against the store); and the attempts made
//! under one lease ([`Tenure`]). The rules, and the fault each one closes:
//! - **Write-ahead.** A rotating refresh token is sent only after a fenced
//!   record "refresh of version v in flight"; if that write fails, nothing
//!   is sent ([`Next::Refresh`]).
//! - **Only a definite outcome clears the record**: the new pair, or the
//!   flag after `invalid_grant`. Attempts that were not processed (nothing
//!   sent, a 429, an error answer) clear it only if none under the same
//!   record had an unknown outcome; a record found at takeover counts as
//!   unknown ([`after_failure`]).
//! - **The lease outlives every request.** Each retry and replay follows a
//!   fenced renewal that re-reads the record ([`on_renewal`]); the first
//!   send's is the write-ahead itself. Each attempt ends before the lease
//!   would ([`attempt_timeout`]).
//! - **Takeover.** A record found under the lease is replayed first,
//!   whatever expiry, skew or cooldown say, while younger than the
//!   provider's window, at most every window/8 ([`Next::Replay`]).
//! - **The late-replay guard.** A record a window old (or any, without a
//!   window) may be a live holder's still saving its pair: watch it first,
//!   replay only if it stays unchanged ([`Next::Guard`]).
//! - **Serving.** A token with a record is never "fresh, nothing to do";
//!   meanwhile a still-valid token is served, or a transient error given
//!   ([`meanwhile`], [`interim`]). An unsaved pair's new access token is not
//!   served while its first use would end the server's replay window.
//! - **Cooldown.** Its end is on the store's clock; while an outcome is
//!   unknown under a window, no wait passes a quarter of it ([`cool_down`]).

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
    /// Any valid token but this rejected one: refresh only if it is still
    /// the current one.
    Replace(Arc<TokenSet>),
    /// Finish a refresh left in flight (the orphan poll, the guard): act
    /// only on a record.
    Takeover {
        /// The record version the late-replay guard watched unchanged.
        observed: Option<Version>,
    },
}

impl Goal {
    /// The rejected access token of a [`Goal::Replace`].
    pub(crate) fn rejected(&self) -> Option<&str> {
        match self {
            Goal::Replace(t) => Some(t.access_token().expose_secret()),
            _ => None,
        }
    }

    /// Whether `token` answers this goal without a refresh.
    pub(crate) fn satisfied_by(&self, token: &TokenSet, now: SystemTime, skew: Duration) -> bool {
        token.reauthorization_required().is_none()
            && match self {
                Goal::Fresh => fresh_beyond_skew(token, now, skew),
                Goal::Replace(_) => usable(token, now, self.rejected()),
                // A takeover acts only on a record.
                Goal::Takeover { .. } => true,
            }
    }
}

/// A token this process holds but could not save yet. Its save task owns
/// it; callers get [`interim`].
#[derive(Debug)]
pub(crate) struct Unsaved {
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

/// What is known when a row has just been read (`leased`: under the key's
/// lease). `now` is only for the token's own expiry.
pub(crate) struct Known<'a> {
    pub(crate) key: &'a TokenKey,
    pub(crate) goal: &'a Goal,
    pub(crate) now: SystemTime,
    pub(crate) skew: Duration,
    pub(crate) rules: RefreshRules,
    pub(crate) can_mint: bool,
    pub(crate) row: Option<&'a Stored>,
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
    let Some((row, token)) = k.row.and_then(|r| Some((r, r.token.as_ref()?))) else {
        let mint = k.can_mint && !matches!(k.goal, Goal::Takeover { .. });
        return match (mint, k.leased) {
            (true, true) => Next::Mint,
            (true, false) => Next::Lease,
            (false, _) => Next::Fail(no_token(k.key)),
        };
    };
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
            // replays (never more than a quarter of it, see `cool_down`).
            Some(w) if !late => cooling.is_some_and(|c| remaining(c, row) <= w / 4),
            _ => cooling.is_some(),
        };
        if paced {
            // The error says when the pacing ends, so that a takeover can
            // come back then rather than at its next poll.
            let left = cooling.map_or(Duration::ZERO, |c| remaining(c, row));
            let err = in_flight_error(k.key).retry_in(left.max(PACED_RETRY_MIN));
            return meanwhile(k.goal, k.now, token, err).map_or_else(Next::Fail, Next::Serve);
        }
        let observed = matches!(k.goal, Goal::Takeover { observed: Some(v) } if *v == row.version);
        return if late && !observed {
            Next::Guard(row.version)
        } else {
            Next::Replay
        };
    }
    if k.goal.satisfied_by(token, k.now, k.skew) {
        return Next::Serve(Arc::new(token.clone()));
    }
    if let Some(cooldown) = cooling {
        let err = cooldown_error(k.key, cooldown, remaining(cooldown, row));
        return meanwhile(k.goal, k.now, token, err).map_or_else(Next::Fail, Next::Serve);
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

/// The check before a retry or replay: `None` (send) if the renewed row is
/// the one refreshed from, still with its record if one was written.
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

/// Whether a failed attempt may have been processed by the server: a
/// timeout, a lost answer, a 5xx, a 200 that could not be parsed, a panic.
/// Not when nothing was sent, on a 429, or on another error answer.
pub(crate) fn outcome_unknown(err: &Error) -> bool {
    match err {
        Error::Transient { sent, status, .. } => *sent != Sent::No && *status != Some(429),
        Error::Protocol { .. } | Error::Store { .. } => true,
        _ => false,
    }
}

/// The attempts sent under one lease, from one record (written or found);
/// `unknown`: whether one may have been processed (a record found at
/// takeover counts). A `takeover` makes one attempt: the orphan poll comes
/// back for it, paced, so an outage is not a storm of replays.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tenure {
    pub(crate) attempts: u32,
    pub(crate) unknown: bool,
    pub(crate) record: bool,
    pub(crate) takeover: bool,
}

/// What to do after a failed attempt.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AfterFailure {
    /// Renew, then send the same refresh token again after this pause.
    Retry(Duration),
    /// Flag the token (`invalid_grant`), clearing the record.
    Flag,
    /// Stop: write the cooldown (transient errors), and keep or clear the
    /// record.
    Stop { cool: bool, record: Record },
}

/// Decides after a failed attempt, `time_left` before the deadline.
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
    tenure.unknown |= outcome_unknown(err);
    if matches!(err, Error::Transient { .. })
        && !tenure.takeover
        && let Some(mut delay) = retry.delay_after(tenure.attempts, err.retry_after())
    {
        if let (true, Some(w)) = (tenure.unknown, rules.replay_window()) {
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

/// The token with a cooldown after a failed refresh, and the pause. The end
/// is on the store's clock: the row's `read_at` plus the time `spent` since.
/// While an outcome is unknown under a window, the next replay comes
/// window/8 after the failed attempt began (so a slow answer does not push
/// it back), and at most a quarter of the window after the read.
#[allow(clippy::too_many_arguments)]
pub(crate) fn cool_down(
    token: &TokenSet,
    read_at: SystemTime,
    spent: Duration,
    attempt_began: Duration,
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
    let mut wait = spent + pause;
    if let (true, Some(w)) = (unknown && rules.rotates(), rules.replay_window()) {
        wait = (attempt_began + w / 8).min(w / 4);
        pause = wait.saturating_sub(spent);
    }
    let until = read_at + wait;
    let cooling = token
        .clone()
        .with_refresh_cooldown(Some(RefreshCooldown::new(until, failures)));
    (cooling, pause)
}

/// The longest one attempt may take: the attempt timeout, within the time
/// left, ending a [`lease_margin`] before the lease renewed `since_renewal`
/// ago. Zero means send nothing: the lease may have lapsed (the process
/// paused), and another process may hold it and be sending.
pub(crate) fn attempt_timeout(
    configured: Duration,
    time_left: Duration,
    lease_ttl: Option<Duration>,
    since_renewal: Duration,
    margin: Duration,
) -> Duration {
    let by_lease = lease_ttl.map_or(configured, |ttl| {
        (ttl - lease_margin(ttl, margin)).saturating_sub(since_renewal)
    });
    configured.min(time_left).min(by_lease)
}

/// What a renewed lease of `ttl` must outlive a request by: `margin`, at
/// most half the TTL. Against a shorter lease (2 s against 0.9 s) every
/// request would time out as it starts, perhaps after it left: every
/// outcome unknown, and a record never finished.
pub(crate) fn lease_margin(ttl: Duration, margin: Duration) -> Duration {
    margin.min(ttl / 2)
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

/// Decides what an unsaved token's save does with `row` (a login's
/// sequence is known by now).
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
/// transient error. Never the rejected token, nor a token older than it.
pub(crate) fn interim(
    key: &TokenKey,
    unsaved: &Unsaved,
    goal: &Goal,
    now: SystemTime,
) -> Result<Arc<TokenSet>, Error> {
    let rejected = goal.rejected();
    if unsaved.serve_new && usable(&unsaved.token, now, rejected) {
        return Ok(Arc::clone(&unsaved.token));
    }
    // The previous token is older than the unsaved one: never the answer
    // to a caller who rejected the unsaved one.
    let rejected_unsaved = rejected == Some(unsaved.token.access_token().expose_secret());
    if let Origin::Refresh { previous, .. } = &unsaved.origin
        && !rejected_unsaved
        && usable(previous, now, rejected)
    {
        return Ok(Arc::clone(previous));
    }
    Err(Error::transient(format!(
        "a new token for {key} was issued but is not saved yet; it is kept in memory and its \
         save is being retried, and it cannot be handed out before it is saved without risking \
         the grant"
    ))
    .retry_in(Duration::from_secs(5)))
}

/// What a caller gets while a refresh of `token` cannot be finished now
/// (paced, cooling down, or watched by the late-replay guard): the token
/// if still valid and theirs to have, else `err`.
pub(crate) fn meanwhile(
    goal: &Goal,
    now: SystemTime,
    token: &TokenSet,
    err: Error,
) -> Result<Arc<TokenSet>, Error> {
    let theirs = matches!(goal, Goal::Fresh) && usable(token, now, None);
    theirs.then(|| Arc::new(token.clone())).ok_or(err)
}

/// The shortest retry a paced replay asks for.
const PACED_RETRY_MIN: Duration = Duration::from_millis(100);

/// The error while an earlier refresh of `key` cannot be finished now:
/// this call sent nothing (the earlier one did).
pub(crate) fn in_flight_error(key: &TokenKey) -> Error {
    Error::not_sent(format!(
        "an earlier refresh of {key} was sent and its outcome is not known yet; it is being \
         finished (this call sent nothing)"
    ))
    .retry_in(Duration::from_secs(2))
}

fn cooldown_error(key: &TokenKey, c: &RefreshCooldown, left: Duration) -> Error {
    Error::not_sent(format!(
        "refreshes of {key} failed {} time(s) in a row, so the next try waits {}; nothing was \
         sent (run `authctl clear-flag` for the account to try at once)",
        c.failures,
        human_duration(left)
    ))
    .retry_in(left)
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

#[cfg(test)]
mod tests {
    //! Case by case; then one test per shortest counterexample that an
    //! exhaustive model check of weaker designs found (2-3 processes, one
    //! store, a single-use server, up to two faults): each test names the
    //! hole, tells its trace in words, and asserts the decision that closes
    //! it at the step where the weaker design went wrong.

    use super::*;
    use crate::store::InFlight;

    const W: Duration = Duration::from_secs(120);

    fn t0() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    fn key() -> TokenKey {
        TokenKey::parse("fitbit", "26FWFL").unwrap()
    }

    /// A token issued at `t0` living an hour, with refresh token `rt`.
    fn token(rt: &str) -> TokenSet {
        TokenSet::new(format!("at-{rt}"), "Bearer", t0())
            .with_refresh_token(rt)
            .with_expires_in(Duration::from_secs(3600))
    }

    /// A row at version 7, read at `t0 + read`, with a record `age` old.
    fn row(token: TokenSet, read: u64, age: Option<u64>) -> Stored {
        let read_at = t0() + Duration::from_secs(read);
        Stored {
            version: Version(7),
            token: Some(token),
            grant: Sequence(1),
            in_flight: age.map(|a| InFlight {
                since: read_at - Duration::from_secs(a),
            }),
            read_at,
        }
    }

    fn fitbit() -> RefreshRules {
        RefreshRules::rotating_with_window(W, true)
    }

    /// Decides with the host's clock at `t0 + at`.
    fn decide(
        goal: &Goal,
        row: Option<&Stored>,
        rules: RefreshRules,
        at: u64,
        leased: bool,
    ) -> Next {
        let key = key();
        on_row(&Known {
            key: &key,
            goal,
            now: t0() + Duration::from_secs(at),
            skew: Duration::from_secs(300),
            rules,
            can_mint: false,
            row,
            leased,
        })
    }

    fn served(next: &Next) -> String {
        match next {
            Next::Serve(t) => t.access_token().expose_secret().to_owned(),
            other => panic!("expected a served token, got {other:?}"),
        }
    }

    // ---- Case by case ----------------------------------------------------

    #[test]
    fn a_fresh_row_without_a_record_is_served() {
        let r = row(token("a"), 60, None);
        assert_eq!(
            served(&decide(&Goal::Fresh, Some(&r), fitbit(), 60, false)),
            "at-a"
        );
    }

    #[test]
    fn a_due_row_needs_the_lease_then_a_refresh_with_a_record() {
        let r = row(token("a"), 3500, None);
        assert!(matches!(
            decide(&Goal::Fresh, Some(&r), fitbit(), 3500, false),
            Next::Lease
        ));
        assert!(matches!(
            decide(&Goal::Fresh, Some(&r), fitbit(), 3500, true),
            Next::Refresh { record: true }
        ));
    }

    #[test]
    fn providers_that_do_not_rotate_write_no_record() {
        let r = row(token("a"), 3500, None);
        assert!(matches!(
            decide(
                &Goal::Fresh,
                Some(&r),
                RefreshRules::NOT_ROTATING,
                3500,
                true
            ),
            Next::Refresh { record: false }
        ));
    }

    #[test]
    fn nothing_stored_or_a_tombstone_asks_for_a_login() {
        let mut stone = row(token("a"), 0, None);
        stone.token = None;
        for r in [None, Some(&stone)] {
            match decide(&Goal::Fresh, r, fitbit(), 0, true) {
                Next::Fail(e) => assert!(e.is_reauthorization_required(), "{e}"),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn a_flagged_token_fails_without_a_request() {
        let r = row(
            token("a").flagged_for_reauthorization("invalid_grant"),
            0,
            None,
        );
        match decide(&Goal::Fresh, Some(&r), fitbit(), 0, true) {
            Next::Fail(e) => assert!(e.is_reauthorization_required()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_cooldown_on_the_stores_clock_serves_the_valid_token_and_names_clear_flag() {
        // The cooldown ends 60 s after the store's read; this host's clock
        // is ten minutes fast, which changes nothing.
        let read = 3400;
        let cooling = token("a").with_refresh_cooldown(Some(RefreshCooldown::new(
            t0() + Duration::from_secs(read + 60),
            2,
        )));
        let r = row(cooling, read, None);
        assert_eq!(
            served(&decide(&Goal::Fresh, Some(&r), fitbit(), read, true)),
            "at-a"
        );
        let rejected = Goal::Replace(Arc::new(token("a")));
        match decide(&rejected, Some(&r), fitbit(), read + 600, true) {
            Next::Fail(e) => {
                let text = e.to_string();
                assert!(text.contains("authctl clear-flag"), "{text}");
                assert!(
                    text.contains("waits 1m;") || text.contains("waits 1m "),
                    "{text}"
                );
                assert_eq!(e.sent(), Some(Sent::No));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_rejected_token_is_replaced_even_when_fresh() {
        let r = row(token("a"), 60, None);
        let goal = Goal::Replace(Arc::new(token("a")));
        assert!(matches!(
            decide(&goal, Some(&r), fitbit(), 60, true),
            Next::Refresh { .. }
        ));
        let newer = row(token("b"), 60, None);
        assert_eq!(
            served(&decide(&goal, Some(&newer), fitbit(), 60, true)),
            "at-b"
        );
    }

    #[test]
    fn a_token_with_a_record_is_never_served_as_fresh_by_a_reload() {
        // Valid for another 50 minutes, but a refresh of it is in flight.
        let r = row(token("a"), 600, Some(5));
        assert!(matches!(
            decide(&Goal::Fresh, Some(&r), fitbit(), 600, false),
            Next::Lease
        ));
        assert!(matches!(
            decide(&Goal::Fresh, Some(&r), fitbit(), 600, true),
            Next::Replay
        ));
    }

    #[test]
    fn a_takeover_without_a_record_sends_nothing() {
        let r = row(token("a"), 3500, None);
        let goal = Goal::Takeover { observed: None };
        assert_eq!(
            served(&decide(&goal, Some(&r), fitbit(), 3500, true)),
            "at-a"
        );
    }

    #[test]
    fn replays_inside_the_window_are_paced_at_window_over_8() {
        // A replay failed 10 s ago and paced the next one (window/8 = 15 s).
        let read = 3500;
        let paced = token("a").with_refresh_cooldown(Some(RefreshCooldown::new(
            t0() + Duration::from_secs(read + 5),
            1,
        )));
        let r = row(paced.clone(), read, Some(20));
        assert_eq!(
            served(&decide(&Goal::Fresh, Some(&r), fitbit(), read, true)),
            "at-a"
        );
        match decide(
            &Goal::Takeover { observed: None },
            Some(&r),
            fitbit(),
            read,
            true,
        ) {
            Next::Fail(e) => {
                assert!(e.is_transient());
                assert_eq!(
                    e.retry_after(),
                    Some(Duration::from_secs(5)),
                    "the takeover is told when the pacing ends"
                );
            }
            other => panic!("{other:?}"),
        }
        // A long cooldown from before is ignored inside the window.
        let long = token("a").with_refresh_cooldown(Some(RefreshCooldown::new(
            t0() + Duration::from_secs(read + 240),
            5,
        )));
        let r = row(long, read, Some(20));
        assert!(matches!(
            decide(&Goal::Fresh, Some(&r), fitbit(), read, true),
            Next::Replay
        ));
    }

    #[test]
    fn an_unsaved_refresh_serves_the_old_token_while_first_use_ends_the_window() {
        let unsaved = Unsaved {
            token: Arc::new(token("new")),
            origin: Origin::Refresh {
                from: Version(7),
                previous: Arc::new(token("old")),
            },
            serve_new: false,
        };
        let now = t0() + Duration::from_secs(60);
        let got = interim(&key(), &unsaved, &Goal::Fresh, now).unwrap();
        assert_eq!(got.access_token().expose_secret(), "at-old");
        // Expired old token: a transient error, never the new one.
        let later = t0() + Duration::from_secs(4000);
        let err = interim(&key(), &unsaved, &Goal::Fresh, later).unwrap_err();
        assert!(err.is_transient());
    }

    #[test]
    fn a_definite_failure_clears_the_record_only_with_no_unknown_attempt_before() {
        let retry = RetryPolicy::none();
        let refused = Error::not_sent("connection refused");
        let mut fresh = Tenure {
            attempts: 1,
            unknown: false,
            record: true,
            takeover: false,
        };
        assert_eq!(
            after_failure(
                &mut fresh,
                &refused,
                &retry,
                fitbit(),
                Duration::from_secs(20)
            ),
            AfterFailure::Stop {
                cool: true,
                record: Record::Clear
            }
        );
        let server_says_no = Error::configuration("invalid_client");
        let mut fresh = Tenure {
            attempts: 1,
            unknown: false,
            record: true,
            takeover: false,
        };
        assert_eq!(
            after_failure(
                &mut fresh,
                &server_says_no,
                &retry,
                fitbit(),
                Duration::from_secs(20)
            ),
            AfterFailure::Stop {
                cool: false,
                record: Record::Clear
            }
        );
        let unparseable = Error::protocol(Some(200), "not JSON", "");
        let mut fresh = Tenure {
            attempts: 1,
            unknown: false,
            record: true,
            takeover: false,
        };
        assert_eq!(
            after_failure(
                &mut fresh,
                &unparseable,
                &retry,
                fitbit(),
                Duration::from_secs(20)
            ),
            AfterFailure::Stop {
                cool: true,
                record: Record::Keep
            }
        );
    }

    #[test]
    fn a_takeover_makes_one_attempt() {
        let mut t = Tenure {
            attempts: 1,
            unknown: true,
            record: true,
            takeover: true,
        };
        let lost = Error::transient("reset");
        assert_eq!(
            after_failure(
                &mut t,
                &lost,
                &RetryPolicy::default(),
                fitbit(),
                Duration::from_secs(20)
            ),
            AfterFailure::Stop {
                cool: true,
                record: Record::Keep
            }
        );
    }

    #[test]
    fn invalid_grant_flags() {
        let mut t = Tenure {
            attempts: 1,
            unknown: true,
            record: true,
            takeover: false,
        };
        let e = Error::reauthorization_required(None, "invalid_grant");
        assert_eq!(
            after_failure(
                &mut t,
                &e,
                &RetryPolicy::default(),
                fitbit(),
                Duration::from_secs(20)
            ),
            AfterFailure::Flag
        );
    }

    #[test]
    fn a_slow_answer_gets_a_retry_inside_the_default_deadline() {
        // The attempt timed out after the whole attempt timeout.
        let deadline = super::super::DEFAULT_REFRESH_DEADLINE;
        let timeout = super::super::DEFAULT_ATTEMPT_TIMEOUT;
        let left = deadline - timeout;
        let mut t = Tenure {
            attempts: 1,
            unknown: false,
            record: true,
            takeover: false,
        };
        let slow = Error::transient("timed out");
        assert!(matches!(
            after_failure(&mut t, &slow, &RetryPolicy::default(), fitbit(), left),
            AfterFailure::Retry(_)
        ));
        assert!(t.unknown, "a timeout is an unknown outcome");
        // And the second attempt gets a whole attempt timeout too.
        assert_eq!(
            attempt_timeout(timeout, left, None, Duration::ZERO, Duration::from_secs(2)),
            timeout
        );
    }

    /// A process renewed its lease, then paused (SIGSTOP, a long GC, a
    /// laptop lid) until the lease had run out. Another process may hold
    /// the lease now and be replaying: what is left since the renewal is
    /// nothing, so nothing is sent.
    #[test]
    fn a_lease_used_up_by_a_pause_after_its_renewal_sends_nothing() {
        let ttl = Some(Duration::from_secs(15));
        let margin = Duration::from_secs(2);
        let (configured, left) = (Duration::from_secs(8), Duration::from_secs(20));
        assert_eq!(
            attempt_timeout(configured, left, ttl, Duration::from_secs(1), margin),
            Duration::from_secs(8)
        );
        assert_eq!(
            attempt_timeout(configured, left, ttl, Duration::from_secs(10), margin),
            Duration::from_secs(3),
            "cut to what is left of the lease"
        );
        assert!(attempt_timeout(configured, left, ttl, Duration::from_secs(40), margin).is_zero());
        // A store without expiring leases (a lock file) has nothing to run
        // out.
        assert_eq!(
            attempt_timeout(configured, left, None, Duration::from_secs(40), margin),
            configured
        );
    }

    /// A replay whose answer was slow: the next replay is paced from the
    /// start of the failed one, not from its end, so a 20 s timeout does
    /// not push the next replay past the window.
    #[test]
    fn replays_are_paced_from_the_start_of_the_failed_one() {
        let slow = Error::transient("timed out");
        let (cooling, pause) = cool_down(
            &token("a"),
            t0(),
            Duration::from_secs(20),
            Duration::from_secs(2),
            &CooldownPolicy::default(),
            &slow,
            true,
            fitbit(),
        );
        let until = cooling.refresh_cooldown().unwrap().until;
        assert_eq!(until, t0() + Duration::from_secs(2) + W / 8);
        assert_eq!(pause, Duration::ZERO, "the pacing has passed already");
    }

    /// A caller rejected the unsaved pair's new access token (the
    /// resource server refused it): it gets neither that token nor the
    /// older one, which force_refresh would hand back as if it were newer.
    #[test]
    fn a_caller_who_rejected_the_unsaved_token_is_not_given_an_older_one() {
        let unsaved = Unsaved {
            token: Arc::new(token("new")),
            origin: Origin::Refresh {
                from: Version(7),
                previous: Arc::new(token("old")),
            },
            serve_new: true,
        };
        let now = t0() + Duration::from_secs(60);
        let rejected = Goal::Replace(Arc::new(token("new")));
        let err = interim(&key(), &unsaved, &rejected, now).unwrap_err();
        assert!(err.is_transient(), "{err}");
        let got = interim(&key(), &unsaved, &Goal::Fresh, now).unwrap();
        assert_eq!(got.access_token().expose_secret(), "at-new");
    }

    #[test]
    fn an_attempt_never_outlives_its_lease() {
        let ttl = Some(Duration::from_secs(5));
        assert_eq!(
            attempt_timeout(
                Duration::from_secs(8),
                Duration::from_secs(20),
                ttl,
                Duration::ZERO,
                Duration::from_secs(2)
            ),
            Duration::from_secs(3)
        );
    }

    #[test]
    fn the_cooldown_after_an_unknown_outcome_stays_inside_a_quarter_of_the_window() {
        // Four failures in a row would wait 15 s x 2^3 = 2 minutes; a
        // Retry-After asks for 10 minutes. Neither may pass W/4.
        let earlier = token("a").with_refresh_cooldown(Some(RefreshCooldown::new(t0(), 3)));
        let mut busy = Error::transient("busy");
        if let Error::Transient { retry_after, .. } = &mut busy {
            *retry_after = Some(Duration::from_secs(600));
        }
        let (cooling, pause) = cool_down(
            &earlier,
            t0(),
            Duration::from_secs(3),
            Duration::ZERO,
            &CooldownPolicy::default(),
            &busy,
            true,
            fitbit(),
        );
        assert!(pause <= W / 4, "{pause:?}");
        let until = cooling.refresh_cooldown().unwrap().until;
        assert_eq!(
            until,
            t0() + Duration::from_secs(3) + pause,
            "on the store's clock"
        );
        // Without an unknown outcome the ordinary cooldown applies.
        let (_, pause) = cool_down(
            &earlier,
            t0(),
            Duration::ZERO,
            Duration::ZERO,
            &CooldownPolicy::default(),
            &busy,
            false,
            fitbit(),
        );
        assert_eq!(pause, Duration::from_secs(600));
    }

    #[test]
    fn retries_while_unknown_wait_at_most_a_quarter_of_the_window() {
        let mut t = Tenure {
            attempts: 1,
            unknown: true,
            record: true,
            takeover: false,
        };
        let mut busy = Error::transient("busy");
        if let Error::Transient { retry_after, .. } = &mut busy {
            *retry_after = Some(Duration::from_secs(29));
        }
        let short = RefreshRules::rotating_with_window(Duration::from_secs(40), false);
        assert_eq!(
            after_failure(
                &mut t,
                &busy,
                &RetryPolicy::default(),
                short,
                Duration::from_secs(20)
            ),
            AfterFailure::Retry(Duration::from_secs(10))
        );
    }

    #[test]
    fn an_unsaved_refresh_overwrites_any_row_still_carrying_the_sent_token() {
        let unsaved = Unsaved {
            token: Arc::new(token("b")),
            origin: Origin::Refresh {
                from: Version(3),
                previous: Arc::new(token("a")),
            },
            serve_new: false,
        };
        // Version moved (a cooldown, a record) but the token is the one sent.
        let r = row(token("a"), 0, Some(1));
        assert_eq!(
            verdict(&unsaved.origin, Some(&r)),
            Verdict::Overwrite(Expect::Version(Version(7)))
        );
        // A newer pair, a login, or a tombstone: not ours to replace.
        let r = row(token("c"), 0, None);
        assert_eq!(verdict(&unsaved.origin, Some(&r)), Verdict::KeepStored);
        let mut stone = row(token("a"), 0, None);
        stone.token = None;
        assert_eq!(verdict(&unsaved.origin, Some(&stone)), Verdict::KeepStored);
    }

    #[test]
    fn logins_are_ordered_by_the_stores_sequence_not_by_clocks() {
        // A's clock is 90 s fast: its older login carries a later grant
        // time. The sequence decides: B's newer login (sequence 5) stays.
        let stored_b = Stored {
            grant: Sequence(5),
            ..row(token("b"), 0, None)
        };
        let older_a = Origin::Login(Some(Sequence(4)));
        assert_eq!(verdict(&older_a, Some(&stored_b)), Verdict::KeepStored);
        let newer = Origin::Login(Some(Sequence(6)));
        assert_eq!(
            verdict(&newer, Some(&stored_b)),
            Verdict::Overwrite(Expect::Login(Sequence(6)))
        );
    }

    // ---- The shortest counterexamples of weaker designs ---------------------

    /// A late takeover: the holder crashed right after sending; the next
    /// process took over after the window had closed and replayed: burn.
    /// A record a window old is watched first, not replayed.
    #[test]
    fn trace_late_takeover_watches_before_replaying() {
        let r = row(token("a"), 3500, Some(W.as_secs()));
        assert!(matches!(
            decide(&Goal::Fresh, Some(&r), fitbit(), 3500, true),
            Next::Guard(Version(7))
        ));
        // Only once the guard watched this very version unchanged.
        let watched = Goal::Takeover {
            observed: Some(Version(7)),
        };
        assert!(matches!(
            decide(&watched, Some(&r), fitbit(), 3500, true),
            Next::Replay
        ));
        let stale = Goal::Takeover {
            observed: Some(Version(6)),
        };
        assert!(matches!(
            decide(&stale, Some(&r), fitbit(), 3500, true),
            Next::Guard(_)
        ));
    }

    /// A late retry: a takeover's replay lost its answer and its retry
    /// came after the window closed: burn. The renewal before the retry
    /// sees the record a window old and hands over to the guard.
    #[test]
    fn trace_retry_after_the_window_goes_to_the_guard() {
        let r = row(token("a"), 3500, Some(W.as_secs() + 1));
        assert!(matches!(
            on_renewal(Some(&r), Version(7), true, fitbit(), false),
            Some(Next::Guard(_))
        ));
        let young = row(token("a"), 3500, Some(30));
        assert!(on_renewal(Some(&young), Version(7), true, fitbit(), false).is_none());
    }

    /// A retry without a lease: a retry sent after
    /// the lease expired. Every retry is preceded by a renewal; one that
    /// finds the row changed (or none) sends nothing.
    #[test]
    fn trace_retry_without_a_lease_sends_nothing() {
        let moved = Stored {
            version: Version(8),
            ..row(token("b"), 0, None)
        };
        assert!(matches!(
            on_renewal(Some(&moved), Version(7), true, fitbit(), false),
            Some(Next::Lease)
        ));
        let cleared = row(token("a"), 0, None);
        assert!(matches!(
            on_renewal(Some(&cleared), Version(7), true, fitbit(), false),
            Some(Next::Lease)
        ));
        assert!(matches!(
            on_renewal(None, Version(7), true, fitbit(), false),
            Some(Next::Lease)
        ));
    }

    /// A request outliving its lease: it ran past its lease, and another process
    /// refreshed the next token while it was outstanding. No attempt may
    /// outlast the renewed lease.
    #[test]
    fn trace_request_outliving_its_lease_is_cut_to_fit() {
        for ttl in [3u64, 5, 10, 30] {
            let ttl = Duration::from_secs(ttl);
            let limit = attempt_timeout(
                Duration::from_secs(8),
                Duration::from_secs(20),
                Some(ttl),
                Duration::ZERO,
                Duration::from_secs(2),
            );
            let margin = Duration::from_secs(2).min(ttl / 2);
            assert!(limit + margin <= ttl, "{limit:?} for {ttl:?}");
            assert!(
                limit >= (ttl / 2).min(Duration::from_secs(8)),
                "{limit:?} for {ttl:?}"
            );
        }
    }

    /// Regression (the Postgres kill storm): a lease TTL of 0.9 s against
    /// the 2 s margin cut every attempt to zero, so each request timed out
    /// as it started, every outcome was unknown, and a record left in
    /// flight was never finished (callers got "in flight, try again in 2s"
    /// for a minute, and a late replay burned the grant). The margin is at
    /// most half the TTL, and a 400 ms attempt fits whole.
    #[test]
    fn a_lease_shorter_than_the_margin_still_leaves_time_to_send() {
        let ttl = Duration::from_millis(900);
        let margin = Duration::from_secs(2);
        assert_eq!(lease_margin(ttl, margin), Duration::from_millis(450));
        let limit = attempt_timeout(
            Duration::from_millis(400),
            Duration::from_secs(20),
            Some(ttl),
            Duration::ZERO,
            margin,
        );
        assert_eq!(limit, Duration::from_millis(400));
        let limit = attempt_timeout(
            Duration::from_secs(8),
            Duration::from_secs(20),
            Some(ttl),
            Duration::ZERO,
            margin,
        );
        assert_eq!(limit, Duration::from_millis(450));
        assert!(limit + lease_margin(ttl, margin) <= ttl);
    }

    /// A stuck record: an orphaned record nobody
    /// resolves without traffic. The Refresher's takeover replays it.
    #[test]
    fn trace_orphan_is_taken_over_without_traffic() {
        let r = row(token("a"), 60, Some(10));
        let goal = Goal::Takeover { observed: None };
        assert!(matches!(
            decide(&goal, Some(&r), fitbit(), 60, true),
            Next::Replay
        ));
    }

    /// A record cleared too early: a 429 (or a refused connection)
    /// after an earlier lost answer cleared the record; the next process
    /// refreshed from the spent token. It keeps the record.
    #[test]
    fn trace_429_after_a_lost_answer_keeps_the_record() {
        let mut tenure = Tenure {
            attempts: 1,
            unknown: false,
            record: true,
            takeover: false,
        };
        let retry = RetryPolicy::default();
        let lost = Error::transient("connection reset after sending");
        assert!(matches!(
            after_failure(
                &mut tenure,
                &lost,
                &retry,
                fitbit(),
                Duration::from_secs(20)
            ),
            AfterFailure::Retry(_)
        ));
        tenure.attempts = 2;
        let mut limited = Error::transient("slow down");
        if let Error::Transient { status, .. } = &mut limited {
            *status = Some(429);
        }
        let stop = after_failure(
            &mut tenure,
            &limited,
            &RetryPolicy::new(2, Duration::ZERO),
            fitbit(),
            Duration::from_secs(20),
        );
        assert_eq!(
            stop,
            AfterFailure::Stop {
                cool: true,
                record: Record::Keep
            }
        );
        // A record found at takeover counts as unknown too.
        let mut takeover = Tenure {
            attempts: 1,
            unknown: true,
            record: true,
            takeover: false,
        };
        let refused = Error::not_sent("connection refused");
        assert_eq!(
            after_failure(
                &mut takeover,
                &refused,
                &RetryPolicy::none(),
                fitbit(),
                Duration::from_secs(20)
            ),
            AfterFailure::Stop {
                cool: true,
                record: Record::Keep
            }
        );
    }

    /// An aged record: a store outage aged the record past the window
    /// while its live holder kept the pair; the next process replayed at
    /// once: burn. It watches first, and the holder's save lands.
    #[test]
    fn trace_outage_aged_record_is_watched() {
        let r = row(token("a"), 5000, Some(W.as_secs() + 3));
        assert!(matches!(
            decide(&Goal::Fresh, Some(&r), fitbit(), 5000, true),
            Next::Guard(_)
        ));
        // Meanwhile the still-valid token is served to a caller who may
        // have it: the guard's interim.
        let now = t0() + Duration::from_secs(60);
        let err = || in_flight_error(&key());
        let got = meanwhile(&Goal::Fresh, now, r.token.as_ref().unwrap(), err()).unwrap();
        assert_eq!(got.access_token().expose_secret(), "at-a");
        let takeover = Goal::Takeover { observed: None };
        assert!(meanwhile(&takeover, now, r.token.as_ref().unwrap(), err()).is_err());
    }

    /// No window: without a window, any replay
    /// of a record is guarded, however young the record.
    #[test]
    fn trace_without_a_window_every_replay_is_guarded() {
        let r = row(token("a"), 60, Some(0));
        assert!(matches!(
            decide(&Goal::Fresh, Some(&r), RefreshRules::ROTATING, 60, true),
            Next::Guard(_)
        ));
    }

    /// A pair given up: the holder of an unsaved pair backed off
    /// after losing its lease, and a later record of the next pair was
    /// replayed late. The pair's verdict still overwrites the row it came
    /// from after any number of conflicts (the save task takes the lease
    /// back at once), and drops it only for a newer pair.
    #[test]
    fn trace_unsaved_pair_is_saved_over_its_own_row() {
        let unsaved = Origin::Refresh {
            from: Version(7),
            previous: Arc::new(token("a")),
        };
        let r = row(token("a"), 0, Some(3));
        assert_eq!(
            verdict(&unsaved, Some(&r)),
            Verdict::Overwrite(Expect::Version(Version(7)))
        );
    }
}
