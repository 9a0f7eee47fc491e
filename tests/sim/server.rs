//! A strict in-process authorization server with single-use refresh
//! tokens, and the [`TokenProvider`] each simulated process talks to it
//! through.
//!
//! - A refresh token can be used once. Sending a spent one kills the whole
//!   grant, except an identical replay inside the replay window (when the
//!   server has one), which gets the same new pair again. The window ends
//!   `window` after the rotation, or at the first use of the new pair when
//!   the server says so (Fitbit). Which of these a send is comes from the
//!   shared rule (`rotation_rule`, see below).
//! - A new consent (a code exchange) supersedes every older grant of the
//!   same account, as Fitbit's does: their refresh tokens stop working.
//! - Revoking the current refresh token kills the grant; revoking a spent
//!   one is acknowledged and does nothing (RFC 7009 allows it).
//!
//! It records what the checker needs: every pair issued, to which
//! processes each answer was delivered and when, and every refresh token
//! that arrived. The faults of the network and the process live here too:
//! a request refused before it leaves, 5xx and 429 answers, an answer lost
//! after processing, the process dying while the answer is on its way, a
//! slow or garbled answer, pauses before the send.
//!
//! Why another server, beside the emulator (`auth-emulator`, real HTTP: its
//! Fitbit server and its catalogue profiles) and
//! `auth_core::testing::FakeProvider` (a scriptable provider for unit
//! tests): the simulation must replay a seed exactly, so this server has no
//! sockets, no threads and no clock of its own (it reads the simulated
//! clock), and it keeps the ledger the checker judges by (every pair, every
//! delivery, every refresh token that arrived), which none of the
//! others records.
//!
//! What it shares with them is the rule itself: [`Rules`] and the verdict
//! on a presented refresh token (current, replay inside the window, spent)
//! are `rotation_rule`'s, pure and given the simulated time, so the four
//! servers cannot drift apart. What stays here is its own: the ledger, the
//! faults, and one harshness of its own: a spent token outside the window
//! burns the grant even when the server has a window (Fitbit only refuses
//! it), so that every misstep of a client is a burn the checker must
//! explain.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use auth_core::secrecy::ExposeSecret;
use auth_core::{
    AccountId, AuthorizeRequest, Callback, Error, Introspection, PendingAuthorization, ProviderId,
    RefreshRules, Result, Sent, TokenProvider, TokenSet, async_trait,
};
use tokio::time::Instant;

use rotation_rule::{Presented, Rotation, Verdict};

use super::chaos::Chaos;
use super::life::Life;
use super::wall;

/// The provider id of the simulated server.
pub(crate) const PROVIDER: &str = "sim";

/// How the server treats a spent refresh token: the shared rule's
/// parameters (a window, and whether the first use of the new pair ends
/// it).
pub(crate) use rotation_rule::Rules;

/// What the provider declares to the manager: exactly the truth.
pub(crate) fn declared(rules: Rules) -> RefreshRules {
    match rules.window {
        None => RefreshRules::ROTATING,
        Some(w) => RefreshRules::rotating_with_window(w, rules.first_use_ends),
    }
}

/// One issued access + refresh pair.
#[derive(Debug)]
pub(crate) struct Pair {
    pub(crate) token: TokenSet,
    pub(crate) issued: Instant,
    /// The first use of its access token, or the first send of its refresh
    /// token.
    pub(crate) first_used: Option<Instant>,
    /// Processes its answer reached, and when.
    pub(crate) delivered: Vec<(usize, Instant)>,
}

/// How a grant died.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Death {
    /// Spent refresh token `index` was sent outside the window, by the send
    /// numbered `send`.
    Burned { index: usize, send: usize },
    /// The scenario revoked it.
    Revoked,
    /// A newer consent (grant `by`) superseded it.
    Superseded { by: usize },
}

/// One grant: the chain of pairs a login started.
#[derive(Debug)]
pub(crate) struct Grant {
    pub(crate) account: AccountId,
    pub(crate) pairs: Vec<Pair>,
    pub(crate) death: Option<(Death, Instant)>,
    /// The exchange that created it, if a login did (`None`: seeded).
    pub(crate) login: Option<Login>,
}

/// The login that created a grant.
#[derive(Debug, Clone)]
pub(crate) struct Login {
    pub(crate) proc: usize,
    /// Whether the caller named the account before the exchange.
    pub(crate) with_account: bool,
    pub(crate) processed: Instant,
}

/// What a refresh token was when it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Arrival {
    /// The grant's newest refresh token.
    Current,
    /// Spent, and the replay window is open.
    InWindow,
    /// Spent, outside the window: this send burns the grant.
    Spent,
    /// The grant is dead already.
    DeadGrant,
    /// A token the server never issued: a bug.
    Unknown,
}

/// One refresh request as the server saw it.
#[derive(Debug, Clone)]
pub(crate) struct Send {
    pub(crate) at: Instant,
    pub(crate) proc: usize,
    pub(crate) grant: Option<usize>,
    pub(crate) index: usize,
    pub(crate) arrival: Arrival,
    /// How long the process was paused between entering the provider (its
    /// last check) and the send.
    pub(crate) paused_before: Duration,
    /// How many pairs of the grant were newer than the one sent.
    pub(crate) behind: usize,
    pub(crate) outcome: &'static str,
}

/// What the server thinks of an access token at a moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Validity {
    Valid,
    Expired,
    Unknown,
    Dead(Death),
}

/// Everything the server knows.
#[derive(Debug)]
pub(crate) struct Model {
    pub(crate) rules: Rules,
    pub(crate) lifetime: Duration,
    pub(crate) grants: Vec<Grant>,
    pub(crate) by_refresh: HashMap<String, (usize, usize)>,
    by_access: HashMap<String, (usize, usize)>,
    codes: HashMap<String, AccountId>,
    pub(crate) sends: Vec<Send>,
    /// Revocations that named a spent refresh token and so left the grant
    /// alive: (process, grant, index).
    pub(crate) stale_revokes: Vec<(usize, usize, usize, Instant)>,
    /// Refresh requests that could not have finished a refresh, by
    /// account: `[start, end)` in which a replay was defeated (refused, an
    /// error answer, a lost, garbled or late answer, a 429 and the wait it
    /// asked for, up to the protocol's pacing). A chance to replay starts
    /// again after each.
    pub(crate) defeats: Vec<(AccountId, Instant, Instant)>,
    /// Provider outages: the token endpoint answers 503 in `[start, end)`.
    pub(crate) outages: Vec<(Instant, Instant)>,
    life: Arc<Life>,
    seq: u64,
    pub(crate) stats: Stats,
}

/// Counters for the run report.
#[derive(Debug, Default, Clone)]
pub(crate) struct Stats {
    pub(crate) rotations: u64,
    pub(crate) replays: u64,
    pub(crate) burns: u64,
    pub(crate) lost_answers: u64,
    pub(crate) died_awaiting_answer: u64,
    pub(crate) exchanges: u64,
    pub(crate) superseded: u64,
    pub(crate) revokes: u64,
}

/// The server, shared by every simulated process.
#[derive(Debug)]
pub(crate) struct Server {
    model: Mutex<Model>,
    chaos: Arc<Chaos>,
    life: Arc<Life>,
    id: ProviderId,
}

/// Milliseconds since the run began, for the trace.
pub(crate) fn stamp(t: Instant) -> u128 {
    wall(t)
        .duration_since(SystemTime::UNIX_EPOCH + super::BASE)
        .unwrap_or_default()
        .as_millis()
}

fn transient(message: &str, status: Option<u16>, sent: Sent) -> Error {
    Error::Transient {
        message: message.to_owned(),
        status,
        retry_after: None,
        sent,
        source: None,
    }
}

impl Server {
    pub(crate) fn new(
        rules: Rules,
        lifetime: Duration,
        chaos: Arc<Chaos>,
        life: Arc<Life>,
    ) -> Self {
        Self {
            model: Mutex::new(Model {
                rules,
                lifetime,
                grants: Vec::new(),
                by_refresh: HashMap::new(),
                by_access: HashMap::new(),
                codes: HashMap::new(),
                sends: Vec::new(),
                stale_revokes: Vec::new(),
                defeats: Vec::new(),
                outages: Vec::new(),
                life: Arc::clone(&life),
                seq: 0,
                stats: Stats::default(),
            }),
            chaos,
            life,
            id: ProviderId::new(PROVIDER).expect("a valid provider id"),
        }
    }

    /// The model, for the checks.
    pub(crate) fn model(&self) -> MutexGuard<'_, Model> {
        self.model.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a line to the trace of `account` (`None`: every account's).
    pub(crate) fn note(&self, account: Option<&AccountId>, line: String) {
        self.life.note(account, line);
    }

    /// Starts a grant directly (the scenario's first logins).
    pub(crate) fn seed_grant(&self, account: &AccountId) -> TokenSet {
        let now = Instant::now();
        let mut m = self.model();
        let g = m.new_grant(account.clone(), None, now);
        m.grants[g].pairs[0].delivered.push((usize::MAX, now));
        m.grants[g].pairs[0].token.clone()
    }

    /// The user approves a pending authorization: a one-time code.
    pub(crate) fn approve(&self, account: &AccountId) -> String {
        let mut m = self.model();
        m.seq += 1;
        let code = format!("code-{}", m.seq);
        m.codes.insert(code.clone(), account.clone());
        code
    }

    /// Grant and pair index of an access token.
    pub(crate) fn pair_of_access(&self, access: &str) -> Option<(usize, usize)> {
        self.model().by_access.get(access).copied()
    }

    /// Grant and pair index of a refresh token.
    pub(crate) fn pair_of_refresh(&self, refresh: &str) -> Option<(usize, usize)> {
        self.model().by_refresh.get(refresh).copied()
    }

    /// A client uses an access token at the API: is it valid now? The
    /// first use of a pair ends the replay window of the refresh that
    /// issued it, where the rules say so.
    pub(crate) fn use_access(&self, access: &str) -> Validity {
        let now = Instant::now();
        let mut m = self.model();
        let Some(&(g, i)) = m.by_access.get(access) else {
            return Validity::Unknown;
        };
        let pair = &mut m.grants[g].pairs[i];
        pair.first_used.get_or_insert(now);
        let grant = &m.grants[g];
        if let Some((death, _)) = &grant.death {
            return Validity::Dead(death.clone());
        }
        if grant.pairs[i].token.is_fresh(wall(now), Duration::ZERO) {
            Validity::Valid
        } else {
            Validity::Expired
        }
    }

    /// The process may pause or die here; returns how long it was paused.
    async fn await_point(&self, proc: usize) -> Duration {
        let rates = self.chaos.rates();
        let before = Instant::now();
        if self.chaos.fires("die_at_await", rates.die_at_await) {
            if self.life.kill(proc) {
                self.note(
                    None,
                    format!("process {proc} died at an await point (server)"),
                );
            }
        } else if !self.life.is_dead(proc)
            && self.chaos.fires("pause_at_await", rates.pause_at_await)
        {
            let d = self.chaos.pause_length(None);
            self.life.pause(proc, d);
            self.note(
                None,
                format!("process {proc} paused for {d:?} at an await point (server)"),
            );
        }
        self.life.gate(proc).await;
        before.elapsed()
    }

    /// The refresh grant, with faults around it.
    pub(crate) async fn refresh(&self, proc: usize, refresh: Option<&str>) -> Result<TokenSet> {
        let Some(refresh) = refresh else {
            return Err(Error::reauthorization_required(None, "no refresh token"));
        };
        let paused_before = self.await_point(proc).await;
        let rates = self.chaos.rates();
        let defeat = |wait: Duration| {
            let now = Instant::now();
            let mut m = self.model();
            if let Some(&(g, _)) = m.by_refresh.get(refresh) {
                let account = m.grants[g].account.clone();
                m.defeats.push((account, now, now + wait));
            }
        };
        if self.chaos.fires("refresh_refused", rates.refresh_refused) {
            defeat(Duration::ZERO);
            return Err(transient("connection refused", None, Sent::No));
        }
        let now = Instant::now();
        let mut send = self.model().arrive(proc, refresh, now, paused_before);
        if self.chaos.in_outage(wall(now)) {
            send.outcome = "503 (outage)";
            self.model().record(send);
            defeat(Duration::ZERO);
            return Err(transient("service unavailable", Some(503), Sent::Unknown));
        }
        if self.chaos.fires("refresh_5xx", rates.refresh_5xx) {
            send.outcome = "500";
            self.model().record(send);
            defeat(Duration::ZERO);
            return Err(transient("internal server error", Some(500), Sent::Unknown));
        }
        if self.chaos.fires("refresh_429", rates.refresh_429) {
            send.outcome = "429";
            self.model().record(send);
            let wait = self
                .chaos
                .duration(Duration::from_secs(1), Duration::from_secs(90));
            // The protocol waits what a 429 asks, up to a quarter of the
            // window while an outcome is unknown.
            let window = self.model().rules.window;
            defeat(window.map_or(wait, |w| wait.min(w / 4)));
            return Err(Error::Transient {
                message: "too many requests".into(),
                status: Some(429),
                retry_after: Some(wait),
                sent: Sent::Unknown,
                source: None,
            });
        }
        let answer = self.model().process(send, now);
        let account = answer
            .as_ref()
            .ok()
            .map(|&(g, _)| self.model().grants[g].account.clone());
        self.answer(proc, answer, account, |m, (g, i), at| {
            m.grants[g].pairs[i].delivered.push((proc, at));
            let _ = at;
            let account = m.grants[g].account.clone();
            m.note((Some(account), format!("process {proc} received g{g}#{i}")));
            m.grants[g].pairs[i].token.clone()
        })
        .await
    }

    /// What happens to a processed request's answer: lost on the way, lost
    /// with the process, late, garbled, or delivered.
    async fn answer(
        &self,
        proc: usize,
        answer: Result<(usize, usize)>,
        account: Option<AccountId>,
        deliver: impl FnOnce(&mut Model, (usize, usize), Instant) -> TokenSet,
    ) -> Result<TokenSet> {
        let rates = self.chaos.rates();
        let sent_at = Instant::now();
        let defeat = |end: Instant| {
            if let Some(account) = &account {
                self.model().defeats.push((account.clone(), sent_at, end));
            }
        };
        if answer.is_ok() && self.chaos.fires("refresh_die_held", rates.refresh_die_held) {
            // Processed; the process dies while the answer is on its way.
            self.model().stats.died_awaiting_answer += 1;
            self.note(
                None,
                format!("process {proc} died awaiting an answer the server processed"),
            );
            self.life.kill(proc);
            self.life.gate(proc).await;
        }
        if self.chaos.fires("refresh_lost", rates.refresh_lost) {
            defeat(sent_at);
            self.model().stats.lost_answers += 1;
            return Err(transient(
                "connection reset by peer (the server processed the request)",
                None,
                Sent::Unknown,
            ));
        }
        if self.chaos.scripted("refresh_slow") {
            // The regression tests' slow answer: 5 s.
            tokio::time::sleep(Duration::from_secs(5)).await;
        } else if self.chaos.chance(rates.refresh_slow) {
            let late = self
                .chaos
                .duration(Duration::from_secs(15), Duration::from_secs(40));
            // Noted before the wait: an attempt that times out drops this
            // future while it sleeps.
            defeat(sent_at + late);
            tokio::time::sleep(late).await;
        }
        if answer.is_ok() && self.chaos.fires("refresh_garbled", rates.refresh_garbled) {
            defeat(sent_at);
            self.model().stats.lost_answers += 1;
            return Err(Error::protocol(
                Some(200),
                "the token response could not be parsed",
                "{\"access_tok",
            ));
        }
        // The process must be alive to receive it.
        self.life.gate(proc).await;
        let token = {
            let mut m = self.model();
            answer.map(|pair| deliver(&mut m, pair, Instant::now()))
        };
        self.await_point(proc).await;
        token
    }

    /// The code exchange: a new grant that supersedes every older one of
    /// the account.
    pub(crate) async fn exchange(
        &self,
        proc: usize,
        code: &str,
        with_account: bool,
    ) -> Result<TokenSet> {
        self.await_point(proc).await;
        let rates = self.chaos.rates();
        let now = Instant::now();
        if self.chaos.in_outage(wall(now)) || self.chaos.fires("exchange_5xx", rates.exchange_5xx) {
            return Err(transient("internal server error", Some(500), Sent::Unknown));
        }
        let answer = {
            let mut m = self.model();
            match m.codes.remove(code) {
                None => Err(Error::reauthorization_required(
                    None,
                    "invalid_grant (code)",
                )),
                Some(account) => {
                    let login = Login {
                        proc,
                        with_account,
                        processed: now,
                    };
                    let g = m.new_grant(account, Some(login), now);
                    m.stats.exchanges += 1;
                    Ok((g, 0))
                }
            }
        };
        if answer.is_ok()
            && self
                .chaos
                .fires("exchange_die_held", rates.exchange_die_held)
        {
            self.life.kill(proc);
            self.life.gate(proc).await;
        }
        if self.chaos.fires("exchange_lost", rates.exchange_lost) {
            return Err(transient(
                "connection reset by peer (the code was exchanged)",
                None,
                Sent::Unknown,
            ));
        }
        self.life.gate(proc).await;
        let token = {
            let mut m = self.model();
            answer.map(|(g, i)| {
                m.grants[g].pairs[i].delivered.push((proc, Instant::now()));
                m.grants[g].pairs[i].token.clone()
            })
        };
        self.await_point(proc).await;
        token
    }

    /// Revocation (RFC 7009): the grant of the current refresh token dies;
    /// a spent one is acknowledged and ignored.
    pub(crate) async fn revoke(&self, proc: usize, token: &TokenSet) -> Result<()> {
        self.await_point(proc).await;
        let rates = self.chaos.rates();
        if self.chaos.fires("revoke_5xx", rates.revoke_5xx) {
            return Err(transient("internal server error", Some(500), Sent::Unknown));
        }
        let now = Instant::now();
        {
            let mut m = self.model();
            m.stats.revokes += 1;
            let found = token
                .refresh_token()
                .and_then(|r| m.by_refresh.get(r.expose_secret()).copied())
                .or_else(|| {
                    m.by_access
                        .get(token.access_token().expose_secret())
                        .copied()
                });
            if let Some((g, i)) = found {
                let account = m.grants[g].account.clone();
                if m.grants[g].death.is_some() {
                } else if i + 1 == m.grants[g].pairs.len() {
                    m.grants[g].death = Some((Death::Revoked, now));
                    m.note((Some(account), format!("g{g} revoked by process {proc}")));
                } else {
                    m.note((
                        Some(account),
                        format!("revoke by process {proc} named spent g{g}#{i}: ignored"),
                    ));
                    m.stale_revokes.push((proc, g, i, now));
                }
            }
        }
        if self.chaos.fires("revoke_lost", rates.revoke_lost) {
            return Err(transient(
                "connection reset by peer (the revocation was processed)",
                None,
                Sent::Unknown,
            ));
        }
        self.await_point(proc).await;
        Ok(())
    }
}

impl Model {
    /// Adds a line to the run's trace.
    fn note(&self, (account, line): (Option<AccountId>, String)) {
        self.life.note(account.as_ref(), line);
    }

    fn new_grant(&mut self, account: AccountId, login: Option<Login>, now: Instant) -> usize {
        let g = self.grants.len();
        for older in 0..g {
            if self.grants[older].account == account && self.grants[older].death.is_none() {
                self.grants[older].death = Some((Death::Superseded { by: g }, now));
                self.stats.superseded += 1;
                self.note((
                    Some(account.clone()),
                    format!("g{older} superseded by g{g}"),
                ));
            }
        }
        self.grants.push(Grant {
            account: account.clone(),
            pairs: Vec::new(),
            death: None,
            login: login.clone(),
        });
        self.new_pair(g, now);
        self.note((
            Some(account),
            match login {
                Some(l) => format!(
                    "g{g} created by a login on process {} (account {})",
                    l.proc,
                    if l.with_account {
                        "named"
                    } else {
                        "from the response"
                    }
                ),
                None => format!("g{g} seeded"),
            },
        ));
        g
    }

    fn new_pair(&mut self, g: usize, now: Instant) {
        self.seq += 1;
        let seq = self.seq;
        let i = self.grants[g].pairs.len();
        let access = format!("at-g{g}-{i}-s{seq}");
        let refresh = format!("rt-g{g}-{i}-s{seq}");
        let account = self.grants[g].account.clone();
        let token = TokenSet::new(access.clone(), "Bearer", wall(now))
            .with_refresh_token(refresh.clone())
            .with_expires_in(self.lifetime)
            .with_scopes(["activity"])
            .with_extra("user_id", serde_json::json!(account.as_str()));
        self.by_access.insert(access, (g, i));
        self.by_refresh.insert(refresh, (g, i));
        self.grants[g].pairs.push(Pair {
            token,
            issued: now,
            first_used: None,
            delivered: Vec::new(),
        });
    }

    /// When the replay window of spent pair `i` (answered by pair `i + 1`)
    /// closes: `window` after the rotation, or at the first use of the new
    /// pair. `None`: the server has no window.
    pub(crate) fn window_end(&self, g: usize, i: usize) -> Option<Instant> {
        let next = &self.grants[g].pairs[i + 1];
        self.rules.window_end(next.issued, next.first_used)
    }

    /// Classifies a refresh token on arrival, and counts it as a use of
    /// its pair.
    fn arrive(
        &mut self,
        proc: usize,
        refresh: &str,
        now: Instant,
        paused_before: Duration,
    ) -> Send {
        let mut send = Send {
            at: now,
            proc,
            grant: None,
            index: 0,
            arrival: Arrival::Unknown,
            paused_before,
            behind: 0,
            outcome: "",
        };
        let Some(&(g, i)) = self.by_refresh.get(refresh) else {
            return send;
        };
        send.grant = Some(g);
        send.index = i;
        send.behind = self.grants[g].pairs.len() - 1 - i;
        let pairs = &self.grants[g].pairs;
        send.arrival = if self.grants[g].death.is_some() {
            Arrival::DeadGrant
        } else {
            // Every older token of a live grant was spent by a rotation;
            // only the last rotation can be replayed.
            let presented = if i + 1 == pairs.len() {
                Presented::Current
            } else if i + 2 == pairs.len() {
                Presented::Spent(Rotation {
                    at: pairs[i + 1].issued,
                    successor_first_used: pairs[i + 1].first_used,
                })
            } else {
                Presented::SpentEarlier
            };
            match self.rules.judge(presented, now) {
                Verdict::Rotate => Arrival::Current,
                Verdict::Replay => Arrival::InWindow,
                // This server burns on any reuse, window or not.
                Verdict::Reused { .. } => Arrival::Spent,
                // Not given here: unknown tokens and dead grants are
                // classified above.
                Verdict::Invalid => Arrival::DeadGrant,
            }
        };
        self.grants[g].pairs[i].first_used.get_or_insert(now);
        send
    }

    fn record(&mut self, send: Send) {
        let account = send.grant.map(|g| self.grants[g].account.clone());
        self.note((
            account,
            format!(
                "process {} sent g{:?}#{} ({:?}{}): {}",
                send.proc,
                send.grant,
                send.index,
                send.arrival,
                if send.paused_before.is_zero() {
                    String::new()
                } else {
                    format!(", after a pause of {:?}", send.paused_before)
                },
                send.outcome
            ),
        ));
        self.sends.push(send);
    }

    /// The server's decision on a refresh that got through.
    fn process(&mut self, mut send: Send, now: Instant) -> Result<(usize, usize)> {
        let invalid = || Error::reauthorization_required(None, "invalid_grant");
        let Some(g) = send.grant else {
            send.outcome = "invalid_grant (unknown token)";
            self.record(send);
            return Err(invalid());
        };
        let i = send.index;
        let result = match send.arrival {
            Arrival::DeadGrant | Arrival::Unknown => {
                send.outcome = "invalid_grant (dead grant)";
                Err(invalid())
            }
            Arrival::Current => {
                self.new_pair(g, now);
                self.stats.rotations += 1;
                send.outcome = "rotated";
                Ok((g, i + 1))
            }
            Arrival::InWindow => {
                self.stats.replays += 1;
                send.outcome = "replayed";
                Ok((g, i + 1))
            }
            Arrival::Spent => {
                let number = self.sends.len();
                self.grants[g].death = Some((
                    Death::Burned {
                        index: i,
                        send: number,
                    },
                    now,
                ));
                self.stats.burns += 1;
                send.outcome = "invalid_grant: grant burned";
                Err(invalid())
            }
        };
        self.record(send);
        result
    }
}

/// One process's client of the server.
#[derive(Debug)]
pub(crate) struct SimProvider {
    server: Arc<Server>,
    proc: usize,
    rules: RefreshRules,
}

impl SimProvider {
    pub(crate) fn new(server: Arc<Server>, proc: usize) -> Self {
        let rules = declared(server.model().rules);
        Self {
            server,
            proc,
            rules,
        }
    }
}

#[async_trait]
impl TokenProvider for SimProvider {
    fn id(&self) -> &ProviderId {
        &self.server.id
    }

    fn refresh_rules(&self) -> RefreshRules {
        self.rules
    }

    fn authorize(&self, request: AuthorizeRequest) -> Result<PendingAuthorization> {
        let state = {
            let mut m = self.server.model();
            m.seq += 1;
            format!("state-{}", m.seq)
        };
        let url = url::Url::parse("https://sim.invalid/authorize").expect("a static URL");
        Ok(PendingAuthorization::new(
            self.server.id.clone(),
            request.account,
            url,
            state,
            None,
            request.redirect_uri,
            request.scopes,
            wall(Instant::now()),
        ))
    }

    async fn exchange_code(
        &self,
        pending: &PendingAuthorization,
        callback: &Callback,
    ) -> Result<TokenSet> {
        pending.verify_state(callback)?;
        let code = callback.code_or_error()?.expose_secret().to_owned();
        let with_account = pending.account.is_some();
        self.server.exchange(self.proc, &code, with_account).await
    }

    async fn refresh(&self, current: &TokenSet) -> Result<TokenSet> {
        let refresh = current
            .refresh_token()
            .map(|r| r.expose_secret().to_owned());
        self.server.refresh(self.proc, refresh.as_deref()).await
    }

    async fn revoke(&self, token: &TokenSet) -> Result<()> {
        self.server.revoke(self.proc, token).await
    }

    async fn introspect(&self, _token: &TokenSet) -> Result<Introspection> {
        Err(Error::Unsupported {
            provider: self.server.id.clone(),
            operation: "introspect",
        })
    }

    fn account_for(&self, token: &TokenSet) -> Option<AccountId> {
        token
            .extra_str("user_id")
            .and_then(|id| AccountId::new(id).ok())
    }
}
