//! The checker: names the cause of every burned grant, every lost pair and
//! every stale revocation, and checks each account's end state against the
//! server.
//!
//! Only these losses are allowed (counted and reported):
//!
//! - [`Cause::NoWindowLost`]: the server has no replay window, and the new
//!   pair was lost: its answer never arrived, or every process it reached
//!   died or paused before saving it, or its saves kept failing (twice or
//!   more) until another process, having watched the record unchanged,
//!   replayed. Nothing can recover it: without a window, a holder whose
//!   writes fail cannot be told from a dead one.
//! - [`Cause::NoReplayInTime`]: the server has a window, and at no moment
//!   between the rotation and the window's end could any process have
//!   replayed: for no stretch of [`opportunity`] was the lease free
//!   (or held by a running process) with the store and the provider up
//!   and a process running (none alive, all paused, the store or the
//!   provider down), or every replay tried in time was defeated (refused,
//!   an error answer, a lost or late answer, a 429, a failed mark) or
//!   made (its pair then lost with its holder), each one starting the
//!   chance again. A record older than the window (from
//!   its first stamp) is watched by the late-replay guard before it is
//!   replayed, so its chance must be [`GUARD`] longer.
//! - [`Cause::LoginRace`]: two logins of one account raced where the
//!   account comes from the response, so the login sequence was taken
//!   after the exchange, and the older grant was stored.
//! - [`Cause::Superseded`]: a new login superseded the stored grant, and
//!   that login's pair was lost (its answer never arrived, or its process
//!   died).
//! - [`Cause::PausedBeforeSend`]: the sender passed its last check, then
//!   paused until its lease had expired, then sent a token another process
//!   had already spent. No client rule can close that gap (only a server
//!   that checked a fencing token could); it is counted apart so that it
//!   stays visible.
//!
//! Everything else is a violation.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use auth_core::secrecy::ExposeSecret;
use auth_core::{AccountId, TokenKey};
use tokio::time::Instant;

use super::life::ProcLife;
use super::server::{Arrival, Death, Model};
use super::store::{ModelStore, Span};

/// How long a process needs to react to a refresh left in flight: the
/// Refresher's orphan poll (every 2 s), the takeover's wait for the lease
/// (up to 1 s) and its statements, and one more poll for a transient store
/// failure on the way.
pub(crate) const REACTION: Duration = Duration::from_secs(5);

/// How long a chance to replay must last under a window of `window`: the
/// reaction, after the protocol's pacing of replays inside a window (one
/// every window/8, counted from the start of the failed one).
pub(crate) fn opportunity(window: Option<Duration>) -> Duration {
    window.map_or(REACTION, |w| w / 8 + REACTION)
}

/// What the late-replay guard adds before a replay of a record older than
/// the window (counted from the record's first stamp, which comes before
/// the rotation): its watch (the save back-off cap, the wait for the
/// lease and a margin: 8 s) and one poll.
pub(crate) const GUARD: Duration = Duration::from_secs(9);

/// Why a pair was lost or a grant burned, when that is allowed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Cause {
    NoWindowLost(&'static str),
    NoReplayInTime(&'static str),
    LoginRace,
    Superseded(&'static str),
    PausedBeforeSend,
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoWindowLost(how) => write!(f, "no window, the new pair was lost ({how})"),
            Self::NoReplayInTime(why) => {
                write!(f, "no process could replay inside the window ({why})")
            }
            Self::LoginRace => f.write_str("the login race (account from the response)"),
            Self::Superseded(how) => {
                write!(f, "superseded by a new login whose pair was lost ({how})")
            }
            Self::PausedBeforeSend => f.write_str(
                "the sender paused between its check and the send until its lease expired",
            ),
        }
    }
}

/// What the checker found.
#[derive(Debug, Default)]
pub(crate) struct Findings {
    /// Allowed losses, by cause.
    pub(crate) allowed: BTreeMap<String, u64>,
    /// Broken rules, with the account concerned.
    pub(crate) violations: Vec<(Option<AccountId>, String)>,
}

impl Findings {
    pub(crate) fn allow(&mut self, what: impl Into<String>) {
        *self.allowed.entry(what.into()).or_default() += 1;
    }

    pub(crate) fn violate(&mut self, account: Option<&AccountId>, what: String) {
        self.violations.push((account.cloned(), what));
    }
}

/// Everything the checker reads.
pub(crate) struct Evidence<'a> {
    pub(crate) model: &'a Model,
    pub(crate) store: &'a ModelStore,
    pub(crate) lives: &'a [ProcLife],
    pub(crate) now: Instant,
}

impl Evidence<'_> {
    fn key(&self, g: usize) -> TokenKey {
        TokenKey::new(
            auth_core::ProviderId::new(super::server::PROVIDER).expect("a valid id"),
            self.model.grants[g].account.clone(),
        )
    }

    /// Why pair `i + 1` of grant `g` (the answer to a send of refresh
    /// token `i`) may have been lost by `at`, if that is allowed; `Err`
    /// says why not.
    pub(crate) fn loss(&self, g: usize, i: usize, at: Instant) -> Result<Cause, String> {
        let next = &self.model.grants[g].pairs[i + 1];
        let delivered: Vec<(usize, Instant)> = next
            .delivered
            .iter()
            .copied()
            .filter(|&(_, t)| t <= at)
            .collect();
        match self.model.window_end(g, i) {
            None => {
                if delivered.is_empty() {
                    return Ok(Cause::NoWindowLost("its answer never arrived"));
                }
                let mut how = "its holder died";
                for &(p, t) in &delivered {
                    let life = &self.lives[p];
                    if life.died.is_some_and(|d| d <= at) {
                        continue;
                    }
                    if life.stopped_within(t, at) {
                        how = "its holder paused";
                        continue;
                    }
                    if self.store.failed_saves(&self.key(g), p, t, at) >= 2 {
                        // Its holder ran, but its saves kept failing: with
                        // no window, nobody can tell it from a dead one.
                        how = "its holder's saves kept failing";
                        continue;
                    }
                    return Err(format!(
                        "pair #{} reached process {p}, which kept running until then",
                        i + 1
                    ));
                }
                Ok(Cause::NoWindowLost(how))
            }
            Some(end) => {
                let from = next.issued;
                let to = end.min(at);
                // Every replay made uses up the chance it came in: if its
                // pair was lost too (its holder died or paused before
                // saving), the next chance starts after it.
                let replays: Vec<Instant> = self
                    .model
                    .sends
                    .iter()
                    .filter(|s| {
                        s.grant == Some(g) && s.index == i && s.arrival == Arrival::InWindow
                    })
                    .map(|s| s.at)
                    .collect();
                match self.chance_to_replay(&self.key(g), from, to, &replays) {
                    None => Ok(Cause::NoReplayInTime(if delivered.is_empty() {
                        "answer lost"
                    } else {
                        "holders died or paused"
                    })),
                    Some((a, b)) => Err(format!(
                        "a process could have replayed from {:?} to {:?} after the rotation (window until {:?})",
                        a - from,
                        b - from,
                        end - from
                    )),
                }
            }
        }
    }

    /// The first stretch of at least [`opportunity`] inside `[from, to)`
    /// in which the store and the provider were up, no replay was
    /// defeated, and the key's lease was held by a running process, or
    /// free while some process ran. A replay of a record older than the
    /// window needs [`GUARD`] more.
    pub(crate) fn chance_to_replay(
        &self,
        key: &TokenKey,
        from: Instant,
        to: Instant,
        replays: &[Instant],
    ) -> Option<(Instant, Instant)> {
        if to <= from {
            return None;
        }
        let spans = self.store.spans(key);
        let mut outages = self.store.outages();
        outages.extend(self.model.outages.iter().copied());
        // A defeated replay restarts the chance; a 429 also bars its wait.
        let mut defeats: Vec<(Instant, Instant)> = self
            .model
            .defeats
            .iter()
            .filter(|(a, _, _)| a == &key.account)
            .map(|&(_, s, e)| (s, e))
            .collect();
        defeats.extend(self.store.failed_marks(key).into_iter().map(|t| (t, t)));
        defeats.extend(replays.iter().map(|&t| (t, t)));
        outages.extend(defeats.iter().copied().filter(|(s, e)| e > s));
        let window = self.model.rules.window;
        let late_from = window
            .zip(self.store.record_since(key, from))
            .map(|(w, since)| since + w);
        let needed = |start: Instant| {
            let mut need = opportunity(window);
            if late_from.is_some_and(|l| start + need > l) {
                need += GUARD;
            }
            need
        };
        let mut cuts = vec![from, to];
        let mut add = |t: Instant| {
            if from < t && t < to {
                cuts.push(t);
            }
        };
        for s in &spans {
            add(s.start);
            add(s.end);
        }
        for &(a, b) in &outages {
            add(a);
            add(b);
        }
        for &(a, _) in &defeats {
            add(a);
        }
        for l in self.lives {
            if let Some(b) = l.born {
                add(b);
            }
            if let Some(d) = l.died {
                add(d);
            }
            for &(a, b) in &l.pauses {
                add(a);
                add(b);
            }
        }
        cuts.sort();
        cuts.dedup();
        let mut run: Option<Instant> = None;
        for w in cuts.windows(2) {
            let (a, b) = (w[0], w[1]);
            let good = self.good_at(a, &spans, &outages);
            let defeated = defeats.iter().any(|&(s, _)| s == a);
            match (good, run) {
                (true, None) => run = Some(a),
                (true, Some(_)) if defeated => run = Some(a),
                (false, Some(_)) => run = None,
                _ => {}
            }
            if let Some(start) = run
                && b - start >= needed(start)
            {
                return Some((start, b));
            }
        }
        None
    }

    fn good_at(&self, t: Instant, spans: &[Span], outages: &[(Instant, Instant)]) -> bool {
        if outages.iter().any(|&(a, b)| a <= t && t < b) {
            return false;
        }
        match spans.iter().find(|s| s.start <= t && t < s.end) {
            Some(s) => self.lives[s.proc].running_at(t),
            None => self.lives.iter().any(|l| l.running_at(t)),
        }
    }

    /// Whether `proc` sent at `at` after its lease on `key` had lapsed
    /// while it was paused: its last lease taken before `at` ended by
    /// then, and the process was paused at some moment of it. (A lease
    /// that lapsed while its holder ran is no excuse: the holder renews it
    /// before every send.)
    pub(crate) fn paused_past_lease(&self, key: &TokenKey, proc: usize, at: Instant) -> bool {
        let spans = self.store.spans(key);
        let Some(span) = spans.iter().rev().find(|s| s.proc == proc && s.start <= at) else {
            return false;
        };
        span.end <= at && self.lives[proc].stopped_within(span.start, at)
    }
}

/// Checks every send, every stale revocation and every account's end
/// state.
pub(crate) fn check(ev: &Evidence<'_>, accounts: &[TokenKey], findings: &mut Findings) {
    let m = ev.model;
    for (n, send) in m.sends.iter().enumerate() {
        let Some(g) = send.grant else {
            findings.violate(
                None,
                format!(
                    "send {n} by process {} carried a refresh token never issued",
                    send.proc
                ),
            );
            continue;
        };
        let account = m.grants[g].account.clone();
        if send.arrival != Arrival::Spent {
            continue;
        }
        let key = ev.key(g);
        let i = send.index;
        if ev.paused_past_lease(&key, send.proc, send.at) {
            findings.allow(format!("burn: {}", Cause::PausedBeforeSend));
            continue;
        }
        if send.behind > 1 {
            findings.violate(
                Some(&account),
                format!(
                    "process {} burned g{g} by sending #{i}, {} pairs behind the newest (older than what was stored)",
                    send.proc, send.behind
                ),
            );
            continue;
        }
        match ev.loss(g, i, send.at) {
            Ok(cause) => findings.allow(format!("burn: {cause}")),
            Err(why) => findings.violate(
                Some(&account),
                format!(
                    "process {} burned g{g} by sending spent #{i}: {why}",
                    send.proc
                ),
            ),
        }
    }
    for &(proc, g, i, at) in &m.stale_revokes {
        let account = m.grants[g].account.clone();
        if m.grants[g].pairs.len() == i + 2 {
            match ev.loss(g, i, at) {
                Ok(cause) => findings.allow(format!("revoke named a spent token: {cause}")),
                Err(why) => findings.violate(
                    Some(&account),
                    format!("process {proc} revoked spent g{g}#{i}, so the grant lives on: {why}"),
                ),
            }
        } else {
            findings.violate(
                Some(&account),
                format!(
                    "process {proc} revoked g{g}#{i}, several pairs old, so the grant lives on"
                ),
            );
        }
    }
    for key in accounts {
        end_state(ev, key, findings);
    }
    for (key, breach) in ev.store.breaches() {
        findings.violate(Some(&key.account), format!("store contract: {breach}"));
    }
}

/// The newest grant of `account`, if any.
fn newest_grant(m: &Model, account: &AccountId) -> Option<usize> {
    (0..m.grants.len())
        .rev()
        .find(|&g| &m.grants[g].account == account)
}

/// Checks what `key` holds at the end of the run.
fn end_state(ev: &Evidence<'_>, key: &TokenKey, findings: &mut Findings) {
    let m = ev.model;
    let account = &key.account;
    let Some(stored) = ev.store.peek(key) else {
        findings.violate(Some(account), "end: the account's row is gone".into());
        return;
    };
    let Some(token) = stored.token.as_ref() else {
        findings.allow("end: removed or revoked");
        return;
    };
    if stored.in_flight.is_some() {
        findings.violate(
            Some(account),
            "end: a refresh is still recorded in flight after the quiet period".into(),
        );
    }
    let refresh = token
        .refresh_token()
        .map(|r| r.expose_secret().to_owned())
        .unwrap_or_default();
    let Some((g, i)) = m.by_refresh.get(&refresh).copied() else {
        findings.violate(
            Some(account),
            "end: the stored refresh token was never issued".into(),
        );
        return;
    };
    let flagged = token.reauthorization_required().is_some();
    let grant = &m.grants[g];
    match &grant.death {
        None => {
            if flagged {
                findings.violate(
                    Some(account),
                    format!("end: live grant g{g} is flagged for reauthorization"),
                );
            }
            if i + 1 < grant.pairs.len() {
                if i + 2 < grant.pairs.len() {
                    findings.violate(
                        Some(account),
                        format!("end: stored g{g}#{i} is several pairs behind"),
                    );
                    return;
                }
                match ev.loss(g, i, ev.now) {
                    Ok(cause) => findings.allow(format!("end: pair lost: {cause}")),
                    Err(why) => findings.violate(
                        Some(account),
                        format!(
                            "end: stored g{g}#{i} is older than #{} the server issued: {why}",
                            i + 1
                        ),
                    ),
                }
                return;
            }
            findings.allow("end: holds the newest pair");
        }
        Some((Death::Revoked, _)) => findings.allow("end: grant revoked"),
        Some((Death::Burned { .. }, _)) => {
            findings.allow("end: grant burned (cause checked at the send)")
        }
        Some((Death::Superseded { .. }, _)) => {
            // Every newer grant of the account: was one of them delivered
            // to a process that lived to save it?
            let newest = newest_grant(m, account).unwrap_or(g);
            let mut cause = Cause::Superseded("its answer never arrived");
            for later in g + 1..=newest {
                if &m.grants[later].account != account {
                    continue;
                }
                let first = &m.grants[later].pairs[0];
                let login = m.grants[later].login.clone();
                let race = !login.as_ref().is_none_or(|l| l.with_account)
                    || !grant.login.as_ref().is_none_or(|l| l.with_account);
                for &(p, _) in &first.delivered {
                    if ev.lives[p].died.is_some() {
                        cause = Cause::Superseded("its process died");
                        continue;
                    }
                    if race {
                        cause = Cause::LoginRace;
                        continue;
                    }
                    findings.violate(
                        Some(account),
                        format!(
                            "end: stores g{g}, superseded by the login of g{later}, whose pair reached process {p}, alive"
                        ),
                    );
                    return;
                }
            }
            findings.allow(format!("end: {cause}"));
        }
    }
}
