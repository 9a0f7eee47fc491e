//! A strict in-process authorization server with single-use refresh
//! tokens, and the [`TokenProvider`] each simulated process talks to it
//! through.
//!
//! The server is Fitbit's, as strict as docs/providers-facts.md describes it: a
//! refresh token can be used once; using a spent one answers
//! `invalid_grant` and kills the whole grant, except an identical replay
//! inside the replay window (mode [`Mode::Fitbit`]), which gets the same
//! answer again. The window ends on the first use of the new access or
//! refresh token, or [`REPLAY_WINDOW`] after the rotation.
//!
//! It records everything the checks need: every pair issued per grant, to
//! whom each answer was delivered, and every refresh token sent, classified
//! when it arrives.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use auth_core::secrecy::ExposeSecret;
use auth_core::{
    AccountId, AuthorizeRequest, Callback, Clock, Error, Introspection, PendingAuthorization,
    ProviderId, Result, TokenProvider, TokenSet, async_trait,
};

use super::SimClock;
use super::chaos::Chaos;

/// The payload of every panic the server injects.
pub(crate) const INJECTED_PANIC: &str = "simulated provider panic";
/// How long Fitbit answers an identical refresh with the same pair.
pub(crate) const REPLAY_WINDOW: Duration = Duration::from_secs(120);
/// The provider id of the simulated server.
pub(crate) const PROVIDER: &str = "sim";

/// Whether the server replays an identical refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Every reuse of a spent refresh token burns the grant.
    WindowOff,
    /// Fitbit's rule: an identical replay inside the window is answered
    /// again.
    Fitbit,
}

/// One issued access + refresh pair.
#[derive(Debug)]
pub(crate) struct Pair {
    pub(crate) token: TokenSet,
    /// Global issue order.
    pub(crate) seq: u64,
    pub(crate) issued_at: SystemTime,
    /// Its access token was used, or its refresh token sent: that ends the
    /// replay window of the refresh that issued it.
    pub(crate) used: bool,
    /// Processes that received it (an answer that reached the client).
    pub(crate) delivered_to: Vec<usize>,
}

/// How a grant died.
#[derive(Debug, Clone)]
pub(crate) enum Death {
    /// A spent refresh token was sent outside the window.
    Burned { class: SendClass },
    /// The scenario revoked it.
    Revoked,
}

/// One grant: the chain of pairs a login started.
#[derive(Debug)]
pub(crate) struct Grant {
    pub(crate) account: AccountId,
    pub(crate) pairs: Vec<Pair>,
    pub(crate) death: Option<Death>,
    /// Seeded at the start, or its login call returned `Ok`.
    pub(crate) login_done: bool,
}

/// What a refresh token was, when it arrived at the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SendClass {
    /// The grant's newest refresh token.
    Current,
    /// Spent, and the identical-replay window is open.
    InWindow,
    /// Spent; its successor never reached any client (a lost answer no
    /// retry recovered).
    LostAnswer { window_off: bool },
    /// Spent; its successor reached only processes that then shut down
    /// with it unsaved (their shutdown said so).
    LostWithProcess,
    /// Spent; its successor reached only processes that reported giving up
    /// its save (`TokenEvent::SaveFailed`).
    SaveGaveUp,
    /// Spent; its successor reached only processes that then logged the
    /// account in again, which supersedes (and drops) the unsaved pair.
    Superseded,
    /// Spent, although a live process had received its successor: a bug.
    Violation(String),
    /// The grant is dead already.
    DeadGrant,
    /// A token the server never issued: a bug.
    Unknown,
}

impl SendClass {
    /// Whether this send breaks check (a).
    pub(crate) fn is_violation(&self) -> bool {
        matches!(self, Self::Violation(_) | Self::Unknown)
    }
}

/// One refresh request as the server saw it.
#[derive(Debug, Clone)]
pub(crate) struct Sent {
    pub(crate) at: SystemTime,
    pub(crate) proc: usize,
    pub(crate) grant: Option<usize>,
    pub(crate) index: usize,
    pub(crate) class: SendClass,
    pub(crate) outcome: &'static str,
}

/// What the server thinks of an access token at a moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Validity {
    Valid,
    Expired,
    Unknown,
    Revoked,
    Burned { explained: bool },
}

/// A simulated process, as the server's bookkeeping sees it.
#[derive(Debug, Default)]
pub(crate) struct Process {
    pub(crate) dead: bool,
    /// Whether its shutdown returned `Ok`.
    pub(crate) clean: Option<bool>,
    /// Accounts for which it sent `TokenEvent::SaveFailed`.
    pub(crate) save_failed: BTreeSet<AccountId>,
}

/// Everything the server knows.
#[derive(Debug)]
pub(crate) struct Model {
    pub(crate) mode: Mode,
    pub(crate) lifetime: Duration,
    pub(crate) grants: Vec<Grant>,
    by_refresh: HashMap<String, (usize, usize)>,
    by_access: HashMap<String, (usize, usize)>,
    codes: HashMap<String, (AccountId, bool)>,
    pub(crate) sends: Vec<Sent>,
    pub(crate) procs: Vec<Process>,
    /// Revocations that returned `Ok` but hit a spent refresh token, so the
    /// grant lives on: (process, grant, class of the stale token).
    pub(crate) stale_revokes: Vec<(usize, usize, SendClass)>,
    pub(crate) log: Vec<(Option<AccountId>, String)>,
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
    pub(crate) exchanges: u64,
    pub(crate) revokes: u64,
}

/// The server, shared by every simulated process.
#[derive(Debug)]
pub(crate) struct Server {
    model: Mutex<Model>,
    chaos: Arc<Chaos>,
    clock: Arc<SimClock>,
    id: ProviderId,
}

impl Server {
    pub(crate) fn new(
        mode: Mode,
        lifetime: Duration,
        chaos: Arc<Chaos>,
        clock: Arc<SimClock>,
    ) -> Self {
        Self {
            model: Mutex::new(Model {
                mode,
                lifetime,
                grants: Vec::new(),
                by_refresh: HashMap::new(),
                by_access: HashMap::new(),
                codes: HashMap::new(),
                sends: Vec::new(),
                procs: Vec::new(),
                stale_revokes: Vec::new(),
                log: Vec::new(),
                seq: 0,
                stats: Stats::default(),
            }),
            chaos,
            clock,
            id: ProviderId::new(PROVIDER).expect("a valid provider id"),
        }
    }

    /// The model, for the checks.
    pub(crate) fn model(&self) -> MutexGuard<'_, Model> {
        self.model.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn now(&self) -> SystemTime {
        self.clock.now()
    }

    /// Registers a new process; returns its number.
    pub(crate) fn add_process(&self) -> usize {
        let mut m = self.model();
        m.procs.push(Process::default());
        m.procs.len() - 1
    }

    /// Marks a process dead (after its shutdown returned `clean` or not):
    /// from now on its provider and store fail before doing anything.
    pub(crate) fn kill(&self, proc: usize, clean: bool) {
        let mut m = self.model();
        m.procs[proc].dead = true;
        m.procs[proc].clean = Some(clean);
        m.log.push((
            None,
            format!("process {proc} died (clean shutdown: {clean})"),
        ));
    }

    /// Adds a line to the trace of `account`.
    pub(crate) fn note(&self, account: &AccountId, line: String) {
        let now = self.now();
        let at = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        self.model()
            .log
            .push((Some(account.clone()), format!("@{at} {line}")));
    }

    pub(crate) fn is_dead(&self, proc: usize) -> bool {
        self.model().procs[proc].dead
    }

    pub(crate) fn note_save_failed(&self, proc: usize, account: AccountId) {
        let mut m = self.model();
        m.log.push((
            Some(account.clone()),
            format!("process {proc} reported SaveFailed"),
        ));
        m.procs[proc].save_failed.insert(account);
    }

    /// Starts a grant directly (the scenario's initial logins).
    pub(crate) fn seed_grant(&self, account: &AccountId) -> TokenSet {
        let now = self.now();
        let mut m = self.model();
        let gid = m.new_grant(account.clone(), now);
        m.grants[gid].login_done = true;
        m.grants[gid].pairs[0].delivered_to.push(usize::MAX);
        m.grants[gid].pairs[0].token.clone()
    }

    /// The user approves a pending authorization: a one-time code.
    pub(crate) fn approve(&self, account: &AccountId) -> String {
        let mut m = self.model();
        m.seq += 1;
        let code = format!("code-{}", m.seq);
        m.codes.insert(code.clone(), (account.clone(), false));
        code
    }

    /// A login call returned `Ok` with this access token.
    pub(crate) fn login_done(&self, access: &str) {
        let mut m = self.model();
        if let Some(&(g, _)) = m.by_access.get(access) {
            m.grants[g].login_done = true;
        }
    }

    /// Grant and pair index of an access token.
    pub(crate) fn pair_of_access(&self, access: &str) -> Option<(usize, usize, u64)> {
        let m = self.model();
        m.by_access
            .get(access)
            .map(|&(g, i)| (g, i, m.grants[g].pairs[i].seq))
    }

    /// Whether the scenario revoked grant `g`.
    pub(crate) fn is_revoked(&self, g: usize) -> bool {
        matches!(self.model().grants[g].death, Some(Death::Revoked))
    }

    /// Grant and pair index of a refresh token.
    pub(crate) fn pair_of_refresh(&self, refresh: &str) -> Option<(usize, usize)> {
        self.model().by_refresh.get(refresh).copied()
    }

    /// The grants of `account` whose login finished.
    pub(crate) fn settled_grants(&self, account: &AccountId) -> Vec<usize> {
        let m = self.model();
        (0..m.grants.len())
            .filter(|&g| &m.grants[g].account == account && m.grants[g].login_done)
            .collect()
    }

    /// A client uses an access token at the API: is it valid now? The
    /// first use of a pair ends the replay window of the refresh that
    /// issued it.
    pub(crate) fn use_access(&self, access: &str) -> Validity {
        let now = self.now();
        let mut m = self.model();
        let Some(&(g, i)) = m.by_access.get(access) else {
            return Validity::Unknown;
        };
        m.grants[g].pairs[i].used = true;
        let grant = &m.grants[g];
        match &grant.death {
            Some(Death::Revoked) => return Validity::Revoked,
            Some(Death::Burned { class }) => {
                return Validity::Burned {
                    explained: !class.is_violation(),
                };
            }
            None => {}
        }
        if grant.pairs[i].token.is_fresh(now, Duration::ZERO) {
            Validity::Valid
        } else {
            Validity::Expired
        }
    }

    fn transient(message: &str, status: Option<u16>, retry_after: Option<Duration>) -> Error {
        Error::Transient {
            message: message.to_owned(),
            status,
            retry_after,
            source: None,
        }
    }

    /// Faults before the server does anything (and a dead process sends
    /// nothing at all). `Err` ends the call.
    fn before(&self, proc: usize, p5xx: f64, outage: bool) -> Result<()> {
        if self.is_dead(proc) {
            return Err(Self::transient("the process is gone", None, None));
        }
        if outage && self.chaos.in_outage(self.now()) {
            return Err(Self::transient(
                "service unavailable (outage)",
                Some(503),
                None,
            ));
        }
        if self.chaos.chance(p5xx) {
            return Err(Self::transient("internal server error", Some(500), None));
        }
        Ok(())
    }

    /// The refresh grant, with faults around it.
    pub(crate) async fn refresh(&self, proc: usize, refresh: Option<&str>) -> Result<TokenSet> {
        let rates = self.chaos.rates();
        let Some(refresh) = refresh else {
            return Err(Error::reauthorization_required(None, "no refresh token"));
        };
        if self.is_dead(proc) {
            return Err(Self::transient("the process is gone", None, None));
        }
        // Classified on arrival, whatever happens next.
        let now = self.now();
        let sent = self.model().arrive(proc, refresh, now);
        let faulted = |outcome| {
            let mut m = self.model();
            let mut s = sent.clone();
            s.outcome = outcome;
            m.record(s);
        };
        if self.chaos.in_outage(now) {
            faulted("503 (outage)");
            return Err(Self::transient("service unavailable", Some(503), None));
        }
        if self.chaos.scripted("refresh_5xx") || self.chaos.chance(rates.refresh_5xx) {
            faulted("500");
            return Err(Self::transient("internal server error", Some(500), None));
        }
        if self.chaos.chance(rates.refresh_429) {
            faulted("429");
            let wait = self
                .chaos
                .duration(Duration::from_secs(1), Duration::from_secs(90));
            return Err(Self::transient("too many requests", Some(429), Some(wait)));
        }
        if self.chaos.chance(rates.refresh_panic_before) {
            faulted("panic before processing");
            std::panic::panic_any(INJECTED_PANIC);
        }
        let answer = self.model().process(sent, now);
        self.after(proc, answer, &rates).await
    }

    /// Faults after the server processed a request: the answer is lost,
    /// late, or the provider panics; otherwise it is delivered.
    async fn after(
        &self,
        proc: usize,
        answer: Result<(usize, usize)>,
        rates: &super::chaos::Rates,
    ) -> Result<TokenSet> {
        if self.chaos.scripted("refresh_lost") || self.chaos.chance(rates.refresh_lost) {
            self.model().stats.lost_answers += 1;
            return Err(Self::transient(
                "connection reset by peer (the server processed the request)",
                None,
                None,
            ));
        }
        if self.chaos.scripted("refresh_slow") {
            tokio::time::sleep(Duration::from_secs(5)).await;
        } else if self.chaos.chance(rates.refresh_slow) {
            let late = self
                .chaos
                .duration(Duration::from_secs(15), Duration::from_secs(40));
            tokio::time::sleep(late).await;
        }
        if self.chaos.chance(rates.refresh_panic_after) {
            self.model().stats.lost_answers += 1;
            std::panic::panic_any(INJECTED_PANIC);
        }
        let (g, i) = answer?;
        let mut m = self.model();
        let pair = &mut m.grants[g].pairs[i];
        if !pair.delivered_to.contains(&proc) {
            pair.delivered_to.push(proc);
        }
        let token = pair.token.clone();
        let account = m.grants[g].account.clone();
        m.log.push((
            Some(account),
            format!("pair g{g}#{i} delivered to process {proc}"),
        ));
        Ok(token)
    }

    /// The authorization-code grant.
    pub(crate) async fn exchange(&self, proc: usize, code: &str) -> Result<TokenSet> {
        let rates = self.chaos.rates();
        self.before(proc, rates.exchange_5xx, false)?;
        let now = self.now();
        let (g, token) = {
            let mut m = self.model();
            let account = match m.codes.get_mut(code) {
                Some((account, used)) if !*used => {
                    *used = true;
                    account.clone()
                }
                _ => {
                    return Err(Error::reauthorization_required(
                        None,
                        "invalid_grant (code)",
                    ));
                }
            };
            m.stats.exchanges += 1;
            let g = m.new_grant(account, now);
            (g, m.grants[g].pairs[0].token.clone())
        };
        if self.chaos.scripted("exchange_lost") || self.chaos.chance(rates.exchange_lost) {
            return Err(Self::transient(
                "connection reset by peer (the code was exchanged)",
                None,
                None,
            ));
        }
        let mut m = self.model();
        m.grants[g].pairs[0].delivered_to.push(proc);
        Ok(token)
    }

    /// Token revocation (RFC 7009): it kills the grant if it names its
    /// newest refresh token; a spent one is acknowledged and changes
    /// nothing, as RFC 7009 allows.
    pub(crate) async fn revoke(&self, proc: usize, token: &TokenSet) -> Result<()> {
        let rates = self.chaos.rates();
        self.before(proc, rates.revoke_5xx, false)?;
        let now = self.now();
        {
            let mut m = self.model();
            m.stats.revokes += 1;
            let found = match token.refresh_token() {
                Some(r) => m.by_refresh.get(r.expose_secret()).copied(),
                None => m
                    .by_access
                    .get(token.access_token().expose_secret())
                    .copied(),
            };
            if let Some((g, i)) = found {
                let account = m.grants[g].account.clone();
                if m.grants[g].death.is_some() {
                    m.log.push((Some(account), format!("revoke of dead g{g}")));
                } else if i + 1 == m.grants[g].pairs.len() {
                    m.grants[g].death = Some(Death::Revoked);
                    m.log
                        .push((Some(account), format!("g{g} revoked by process {proc}")));
                } else {
                    let class = m.classify_spent(g, i, now);
                    m.log.push((
                        Some(account),
                        format!("revoke by process {proc} named spent g{g}#{i} ({class:?})"),
                    ));
                    m.stale_revokes.push((proc, g, class));
                }
            }
        }
        if self.chaos.chance(rates.revoke_lost) {
            return Err(Self::transient(
                "connection reset by peer (the revocation was processed)",
                None,
                None,
            ));
        }
        Ok(())
    }
}

impl Model {
    fn new_grant(&mut self, account: AccountId, now: SystemTime) -> usize {
        let g = self.grants.len();
        self.grants.push(Grant {
            account: account.clone(),
            pairs: Vec::new(),
            death: None,
            login_done: false,
        });
        self.new_pair(g, now);
        self.log.push((Some(account), format!("g{g} created")));
        g
    }

    fn new_pair(&mut self, g: usize, now: SystemTime) {
        self.seq += 1;
        let seq = self.seq;
        let i = self.grants[g].pairs.len();
        let access = format!("at-g{g}-{i}-s{seq}");
        let refresh = format!("rt-g{g}-{i}-s{seq}");
        let account = self.grants[g].account.clone();
        let token = TokenSet::new(access.clone(), "Bearer", now)
            .with_refresh_token(refresh.clone())
            .with_expires_in(self.lifetime)
            .with_scopes(["activity"])
            .with_extra("user_id", serde_json::json!(account.as_str()));
        self.by_access.insert(access, (g, i));
        self.by_refresh.insert(refresh, (g, i));
        self.grants[g].pairs.push(Pair {
            token,
            seq,
            issued_at: now,
            used: false,
            delivered_to: Vec::new(),
        });
    }

    /// Whether the identical-replay window of spent pair `i` is open.
    fn window_open(&self, g: usize, i: usize, now: SystemTime) -> bool {
        let next = &self.grants[g].pairs[i + 1];
        self.mode == Mode::Fitbit
            && i + 2 == self.grants[g].pairs.len()
            && !next.used
            && now < next.issued_at + REPLAY_WINDOW
    }

    /// What sending spent refresh token `i` of grant `g` means.
    fn classify_spent(&self, g: usize, i: usize, now: SystemTime) -> SendClass {
        if self.window_open(g, i, now) {
            return SendClass::InWindow;
        }
        let next = &self.grants[g].pairs[i + 1];
        if next.delivered_to.is_empty() {
            return SendClass::LostAnswer {
                window_off: self.mode == Mode::WindowOff,
            };
        }
        let account = &self.grants[g].account;
        let holders = self.holders(g, i + 1);
        if holders.is_empty() {
            if next.delivered_to.iter().all(|&p| self.relogged(g, p)) {
                return SendClass::Superseded;
            }
            let gave_up = next.delivered_to.iter().any(|&p| {
                self.procs
                    .get(p)
                    .is_some_and(|p| p.save_failed.contains(account))
            });
            return if gave_up {
                SendClass::SaveGaveUp
            } else {
                SendClass::LostWithProcess
            };
        }
        SendClass::Violation(format!(
            "g{g}#{i} sent after its successor #{} had reached process(es) {holders:?}",
            i + 1
        ))
    }

    /// The processes that received pair `i` of grant `g` and can still be
    /// expected to save it: not dead with it unsaved, not given up on its
    /// save, and not superseded by a new login of theirs.
    pub(crate) fn holders(&self, g: usize, i: usize) -> Vec<usize> {
        let account = &self.grants[g].account;
        self.grants[g].pairs[i]
            .delivered_to
            .iter()
            .copied()
            .filter(|&p| {
                let proc = self.procs.get(p);
                let lost_with_it = proc.is_some_and(|p| p.dead && p.clean == Some(false));
                let gave_up = proc.is_some_and(|p| p.save_failed.contains(account));
                !lost_with_it && !gave_up && !self.relogged(g, p)
            })
            .collect()
    }

    /// Whether process `p` received a later grant of `g`'s account (a new
    /// login there, which replaces whatever it held unsaved).
    fn relogged(&self, g: usize, p: usize) -> bool {
        let account = &self.grants[g].account;
        self.grants[g + 1..]
            .iter()
            .any(|later| &later.account == account && later.pairs[0].delivered_to.contains(&p))
    }

    /// Classifies a refresh token on arrival, and counts it as a use of
    /// its pair.
    fn arrive(&mut self, proc: usize, refresh: &str, now: SystemTime) -> Sent {
        let Some(&(g, i)) = self.by_refresh.get(refresh) else {
            return Sent {
                at: now,
                proc,
                grant: None,
                index: 0,
                class: SendClass::Unknown,
                outcome: "",
            };
        };
        let class = if self.grants[g].death.is_some() {
            SendClass::DeadGrant
        } else if i + 1 == self.grants[g].pairs.len() {
            SendClass::Current
        } else {
            self.classify_spent(g, i, now)
        };
        self.grants[g].pairs[i].used = true;
        Sent {
            at: now,
            proc,
            grant: Some(g),
            index: i,
            class,
            outcome: "",
        }
    }

    fn record(&mut self, sent: Sent) {
        let account = sent.grant.map(|g| self.grants[g].account.clone());
        self.log.push((
            account,
            format!(
                "process {} sent g{:?}#{} ({:?}): {}",
                sent.proc, sent.grant, sent.index, sent.class, sent.outcome
            ),
        ));
        self.sends.push(sent);
    }

    /// The server's decision on a refresh that got through.
    fn process(&mut self, mut sent: Sent, now: SystemTime) -> Result<(usize, usize)> {
        let invalid = || Error::reauthorization_required(None, "invalid_grant");
        let Some(g) = sent.grant else {
            sent.outcome = "invalid_grant (unknown token)";
            self.record(sent);
            return Err(invalid());
        };
        let i = sent.index;
        let result = match &sent.class {
            SendClass::DeadGrant | SendClass::Unknown => {
                sent.outcome = "invalid_grant (dead grant)";
                Err(invalid())
            }
            SendClass::Current => {
                self.new_pair(g, now);
                self.stats.rotations += 1;
                sent.outcome = "rotated";
                Ok((g, i + 1))
            }
            SendClass::InWindow => {
                self.stats.replays += 1;
                sent.outcome = "replayed";
                Ok((g, i + 1))
            }
            class => {
                self.grants[g].death = Some(Death::Burned {
                    class: class.clone(),
                });
                self.stats.burns += 1;
                sent.outcome = "invalid_grant: grant burned";
                Err(invalid())
            }
        };
        self.record(sent);
        result
    }
}

/// One process's client of the server.
#[derive(Debug)]
pub(crate) struct SimProvider {
    server: Arc<Server>,
    proc: usize,
}

impl SimProvider {
    pub(crate) fn new(server: Arc<Server>, proc: usize) -> Self {
        Self { server, proc }
    }
}

#[async_trait]
impl TokenProvider for SimProvider {
    fn id(&self) -> &ProviderId {
        &self.server.id
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
            self.server.now(),
        ))
    }

    async fn exchange_code(
        &self,
        pending: &PendingAuthorization,
        callback: &Callback,
    ) -> Result<TokenSet> {
        pending.verify_state(callback)?;
        let code = callback.code_or_error()?.expose_secret().to_owned();
        self.server.exchange(self.proc, &code).await
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
