//! The scenario: processes, accounts and random operations over the
//! server model and the faulty store, and the checks (a)–(e) of issue 11.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use auth_core::secrecy::ExposeSecret;
use auth_core::{
    AccessToken, AccountId, AuthorizeRequest, Callback, Clock, Error, ProviderId, Result,
    TokenEvent, TokenKey, TokenManager, TokenStore,
};
use store_memory::MemoryTokenStore;
use tokio::sync::broadcast::error::RecvError;

use super::chaos::{Chaos, Rates};
use super::server::{Death, Mode, PROVIDER, SendClass, Server, SimProvider, Validity};
use super::store::FaultStore;
use super::{SimClock, paused_runtime, quiet_injected_panics};

/// How a run is set up; all drawn from the seed.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) seed: u64,
    pub(crate) ops: usize,
    pub(crate) mode: Mode,
    pub(crate) lifetime: Duration,
    pub(crate) accounts: usize,
    pub(crate) processes: usize,
    pub(crate) level: u32,
}

/// What one run did and found.
#[derive(Debug)]
pub(crate) struct Report {
    pub(crate) config: Config,
    pub(crate) sim_time: Duration,
    pub(crate) ok: u64,
    pub(crate) errors: u64,
    pub(crate) cancelled: u64,
    pub(crate) sends: u64,
    pub(crate) stats: super::server::Stats,
    /// Things the checks allow, with how often each happened.
    pub(crate) allowed: BTreeMap<String, u64>,
    /// Errors returned to callers, by kind.
    pub(crate) error_kinds: BTreeMap<String, u64>,
    /// Broken invariants, with the account concerned.
    pub(crate) violations: Vec<(Option<AccountId>, String)>,
    /// The server's log of the accounts of the first violations.
    pub(crate) trace: String,
}

impl Report {
    /// The command that replays this run.
    pub(crate) fn replay_command(&self) -> String {
        format!(
            "SIM_SEED={} SIM_OPS={} cargo test -p reliability --test simulation replay -- --nocapture",
            self.config.seed, self.config.ops
        )
    }

    /// One line of figures.
    pub(crate) fn summary(&self) -> String {
        format!(
            "seed {} ({:?}, level {}, {} accounts, {} processes, lifetime {:?}): {} ops ({} ok, {} err, {} cancelled) over {:?} simulated; {} refresh requests, {} rotations, {} replays, {} lost answers, {} burns; errors: {:?}; allowed: {:?}",
            self.config.seed,
            self.config.mode,
            self.config.level,
            self.config.accounts,
            self.config.processes,
            self.config.lifetime,
            self.config.ops,
            self.ok,
            self.errors,
            self.cancelled,
            self.sim_time,
            self.sends,
            self.stats.rotations,
            self.stats.replays,
            self.stats.lost_answers,
            self.stats.burns,
            self.error_kinds,
            self.allowed
        )
    }

    /// Panics with the seed, the replay command, the violations and a
    /// trace if any invariant broke.
    pub(crate) fn assert_ok(&self) {
        if self.violations.is_empty() {
            return;
        }
        let mut msg = format!(
            "simulation seed {} broke {} invariant(s)\nreplay: {}\n{}\n",
            self.config.seed,
            self.violations.len(),
            self.replay_command(),
            self.summary()
        );
        for (account, v) in self.violations.iter().take(12) {
            let _ = writeln!(
                msg,
                "  [{}] {v}",
                account.as_ref().map_or("-", |a| a.as_str())
            );
        }
        msg.push_str(&self.trace);
        panic!("{msg}");
    }
}

/// Runs seed `seed` for `ops` operations on a fresh paused runtime.
pub(crate) fn run(seed: u64, ops: usize) -> Report {
    quiet_injected_panics();
    paused_runtime().block_on(async move { World::new(seed, ops).run().await })
}

#[derive(Debug, Clone)]
enum Op {
    Access,
    Force(AccessToken),
    Refresh,
    Revoke,
    Remove,
    Login { with_account: bool },
    Clear,
}

/// A remove or revoke that returned `Ok` on a process: calls on that
/// process that start afterwards must not get a token of these grants.
#[derive(Debug)]
struct Barrier {
    proc: usize,
    account: AccountId,
    completed: u64,
    old_grants: Vec<usize>,
}

#[derive(Debug, Default)]
struct Ledger {
    ok: u64,
    errors: u64,
    cancelled: u64,
    allowed: BTreeMap<String, u64>,
    error_kinds: BTreeMap<String, u64>,
    violations: Vec<(Option<AccountId>, String)>,
    barriers: Vec<Barrier>,
    /// Access tokens handed out, per process and account, for later
    /// `force_refresh` (a process's callers hold only its own tokens).
    handed: BTreeMap<(usize, AccountId), Vec<AccessToken>>,
    /// Grants whose tokens each process handed out, per account.
    served: BTreeMap<(usize, AccountId), std::collections::BTreeSet<usize>>,
}

impl Ledger {
    fn allow(&mut self, what: impl Into<String>) {
        *self.allowed.entry(what.into()).or_default() += 1;
    }

    fn violate(&mut self, account: Option<&AccountId>, what: String) {
        self.violations.push((account.cloned(), what));
    }
}

/// What the operation tasks share.
struct Shared {
    chaos: Arc<Chaos>,
    /// The shared store, read without faults by the checks.
    store: MemoryTokenStore,
    clock: Arc<SimClock>,
    server: Arc<Server>,
    ledger: Mutex<Ledger>,
    tick: AtomicU64,
}

impl Shared {
    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn tick(&self) -> u64 {
        self.tick.fetch_add(1, Ordering::SeqCst)
    }
}

struct Proc {
    id: usize,
    manager: TokenManager,
    retiring: bool,
}

struct World {
    config: Config,
    shared: Arc<Shared>,
    store: MemoryTokenStore,
    procs: Vec<Proc>,
    accounts: Vec<TokenKey>,
}

impl World {
    fn new(seed: u64, ops: usize) -> Self {
        let chaos = Arc::new(Chaos::new(seed));
        let config = {
            let c = &chaos;
            Config {
                seed,
                ops,
                mode: if c.chance(0.5) {
                    Mode::Fitbit
                } else {
                    Mode::WindowOff
                },
                lifetime: [
                    Duration::from_secs(6 * 60),
                    Duration::from_secs(10 * 60),
                    Duration::from_secs(30 * 60),
                    Duration::from_secs(8 * 3600),
                ][c.below(4)],
                accounts: 2 + c.below(9),
                processes: 2 + c.below(4),
                level: c.below(3) as u32,
            }
        };
        let rates = Rates::draw(&mut chaos.rng(), config.level);
        chaos.set_rates(rates);
        let clock = Arc::new(SimClock::new());
        let server = Arc::new(Server::new(
            config.mode,
            config.lifetime,
            Arc::clone(&chaos),
            Arc::clone(&clock),
        ));
        let store = MemoryTokenStore::new();
        let shared = Arc::new(Shared {
            chaos,
            store: store.clone(),
            clock,
            server,
            ledger: Mutex::default(),
            tick: AtomicU64::new(0),
        });
        let accounts = (0..config.accounts)
            .map(|i| TokenKey::parse(PROVIDER, &format!("user{i}")).expect("a valid key"))
            .collect();
        let mut world = Self {
            config,
            shared,
            store,
            procs: Vec::new(),
            accounts,
        };
        for _ in 0..world.config.processes {
            world.start_process();
        }
        world
    }

    /// A new process: its own provider client, store wrapper and manager.
    fn start_process(&mut self) {
        let s = &self.shared;
        let id = s.server.add_process();
        let store = FaultStore::new(
            self.store.clone(),
            Arc::clone(&s.chaos),
            Arc::clone(&s.server),
            Arc::clone(&s.clock),
            id,
        );
        let manager = TokenManager::builder(Arc::new(store))
            .provider(Arc::new(SimProvider::new(Arc::clone(&s.server), id)))
            .clock(Arc::clone(&s.clock) as Arc<dyn auth_core::Clock>)
            .event_capacity(4096)
            .build();
        let mut events = manager.subscribe();
        let server = Arc::clone(&s.server);
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(TokenEvent::SaveFailed { key, .. }) => {
                        server.note_save_failed(id, key.account.clone());
                    }
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => break,
                }
            }
        });
        self.procs.push(Proc {
            id,
            manager,
            retiring: false,
        });
    }

    async fn run(mut self) -> Report {
        let start = tokio::time::Instant::now();
        for key in &self.accounts {
            let token = self.shared.server.seed_grant(&key.account);
            self.store
                .save(key, &token, None)
                .await
                .expect("seeding the store");
        }
        let mut done = 0;
        while done < self.config.ops {
            self.weather();
            let batch = 1 + self.shared.chaos.below(8);
            let mut tasks = Vec::new();
            for _ in 0..batch {
                done += 1;
                if let Some(task) = self.start_op() {
                    tasks.push(task);
                }
            }
            for task in tasks {
                if let Err(err) = task.await {
                    self.shared
                        .ledger()
                        .violate(None, format!("a call panicked out of the manager: {err}"));
                }
            }
            let c = &self.shared.chaos;
            let gap = match c.weighted(&[60, 32, 8]) {
                0 => c.duration(Duration::ZERO, Duration::from_secs(20)),
                1 => c.duration(Duration::from_secs(20), Duration::from_secs(240)),
                _ => c.duration(Duration::from_secs(240), Duration::from_secs(1800)),
            };
            tokio::time::sleep(gap).await;
        }
        self.quiesce().await;
        let sim_time = start.elapsed();
        self.check(sim_time).await
    }

    /// Starts or ends the long faults: a full disk, a token endpoint down.
    fn weather(&self) {
        let c = &self.shared.chaos;
        let rates = c.rates();
        let now = self.shared.clock.now();
        if c.chance(rates.disk_full) {
            // Shorter than the manager's save retry (5 min): a longer one is
            // the bounded-retry case the issue accepts, reported by an event.
            let d = c.duration(Duration::from_secs(20), Duration::from_secs(240));
            c.fill_disk_until(Some(now + d));
        }
        if c.chance(rates.outage) {
            let d = c.duration(Duration::from_secs(20), Duration::from_secs(180));
            c.outage_until(Some(now + d));
        }
    }

    /// Picks and spawns one operation (or restarts a process).
    fn start_op(&mut self) -> Option<tokio::task::JoinHandle<()>> {
        let c = Arc::clone(&self.shared.chaos);
        let kind = c.weighted(&[46, 20, 6, 2, 2, 8, 2, 2]);
        let live: Vec<usize> = (0..self.procs.len())
            .filter(|&i| !self.procs[i].retiring)
            .collect();
        let slot = live[c.below(live.len())];
        if kind == 7 {
            return Some(self.restart(slot));
        }
        let key = self.accounts[c.below(self.accounts.len())].clone();
        let proc = self.procs[slot].id;
        let op = match kind {
            0 => Op::Access,
            1 => {
                let handed = self
                    .shared
                    .ledger()
                    .handed
                    .get(&(proc, key.account.clone()))
                    .cloned()
                    .unwrap_or_default();
                if handed.is_empty() {
                    Op::Access
                } else {
                    Op::Force(handed[c.below(handed.len())].clone())
                }
            }
            2 => Op::Refresh,
            3 => Op::Revoke,
            4 => Op::Remove,
            5 => Op::Login {
                with_account: c.chance(0.7),
            },
            _ => Op::Clear,
        };
        let deadline = if c.chance(0.25) {
            Some(if c.chance(0.8) {
                c.duration(Duration::ZERO, Duration::from_secs(3))
            } else {
                c.duration(Duration::ZERO, Duration::from_secs(60))
            })
        } else {
            None
        };
        let delay = c.duration(Duration::ZERO, Duration::from_secs(3));
        let manager = self.procs[slot].manager.clone();
        let shared = Arc::clone(&self.shared);
        Some(tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            call(shared, proc, manager, key, op, deadline).await;
        }))
    }

    /// Shuts a process down (bounded) and starts its replacement. The old
    /// one dies when its shutdown returns: whatever it held unsaved is
    /// lost with it, which its shutdown must have reported.
    fn restart(&mut self, slot: usize) -> tokio::task::JoinHandle<()> {
        self.procs[slot].retiring = true;
        let manager = self.procs[slot].manager.clone();
        let proc = self.procs[slot].id;
        self.start_process();
        let shared = Arc::clone(&self.shared);
        let timeout = shared
            .chaos
            .duration(Duration::ZERO, Duration::from_secs(60));
        tokio::spawn(async move {
            let clean = manager.shutdown(timeout).await.is_ok();
            shared.server.kill(proc, clean);
        })
    }

    /// Ends the faults, lets pending saves land, and shuts every process
    /// down.
    async fn quiesce(&mut self) {
        let c = &self.shared.chaos;
        c.set_rates(Rates::default());
        c.fill_disk_until(None);
        c.outage_until(None);
        tokio::time::sleep(Duration::from_secs(600)).await;
        for p in &self.procs {
            if self.shared.server.is_dead(p.id) {
                continue;
            }
            let clean = p.manager.shutdown(Duration::from_secs(120)).await.is_ok();
            self.shared.server.kill(p.id, clean);
        }
    }

    /// Checks (a), (b), (c) and the revocations at the end of the run;
    /// (d) and (e) were checked as each call returned.
    async fn check(self, sim_time: Duration) -> Report {
        let mut ledger = std::mem::take(&mut *self.shared.ledger());
        let server = &self.shared.server;
        let stats;
        let sends;
        {
            let m = server.model();
            stats = m.stats.clone();
            sends = m.sends.len() as u64;
            // (a) every send of a spent refresh token is explained.
            for s in &m.sends {
                let account = s.grant.map(|g| &m.grants[g].account);
                match &s.class {
                    SendClass::Current | SendClass::DeadGrant => {}
                    SendClass::Violation(what) => ledger.violate(account, format!("(a) {what}")),
                    SendClass::Unknown => ledger.violate(
                        account,
                        "(a) a refresh token the server never issued was sent".into(),
                    ),
                    other => ledger.allow(format!("(a) spent token sent: {other:?}")),
                }
            }
            // (b) no grant dies unless revoked, or lost beyond recovery.
            for (g, grant) in m.grants.iter().enumerate() {
                match &grant.death {
                    None => {}
                    Some(Death::Revoked) => ledger.allow("(b) grant revoked by the scenario"),
                    Some(Death::Burned { class }) if class.is_violation() => ledger.violate(
                        Some(&grant.account),
                        format!("(b) grant g{g} burned by a send that was a bug: {class:?}"),
                    ),
                    Some(Death::Burned { class }) => {
                        ledger.allow(format!("(b) grant burned after {class:?}"));
                    }
                }
            }
            for (proc, g, class) in &m.stale_revokes {
                if class.is_violation() {
                    ledger.violate(
                        Some(&m.grants[*g].account),
                        format!("revoke by process {proc} named a spent refresh token of g{g}, so the grant lives on: {class:?}"),
                    );
                } else {
                    ledger.allow(format!("revoke named a spent token: {class:?}"));
                }
            }
        }
        // (c) each stored pair is its grant's newest, and flags are right.
        for key in &self.accounts {
            let Some(stored) = self.store.load(key).await.expect("the inner store") else {
                continue;
            };
            let refresh = stored
                .value
                .refresh_token()
                .map(|r| r.expose_secret().to_owned())
                .unwrap_or_default();
            let Some((g, i)) = server.pair_of_refresh(&refresh) else {
                ledger.violate(
                    Some(&key.account),
                    "(c) the stored refresh token was never issued".into(),
                );
                continue;
            };
            let m = server.model();
            let grant = &m.grants[g];
            let flagged = stored.value.reauthorization_required().is_some();
            if flagged && grant.death.is_none() {
                ledger.violate(
                    Some(&key.account),
                    format!("(c) stored token of live grant g{g} is flagged for reauthorization"),
                );
            }
            if grant.death.is_some() {
                ledger.allow(if flagged {
                    "(c) stored grant dead, flagged"
                } else {
                    "(c) stored grant dead, not flagged yet"
                });
                continue;
            }
            if i + 1 == grant.pairs.len() {
                continue;
            }
            let next = &grant.pairs[i + 1];
            let holders = m.holders(g, i + 1);
            if next.delivered_to.is_empty() {
                ledger.allow("(c) stored pair one behind: its successor's answer was lost");
            } else if holders.is_empty() {
                ledger.allow("(c) stored pair one behind: successor lost with a process that reported it, or superseded by its new login");
            } else {
                ledger.violate(
                    Some(&key.account),
                    format!(
                        "(c) stored pair g{g}#{i} is older than #{} which reached process(es) {holders:?}",
                        i + 1
                    ),
                );
            }
        }
        let trace = self.trace(&ledger.violations);
        Report {
            config: self.config.clone(),
            sim_time,
            ok: ledger.ok,
            errors: ledger.errors,
            cancelled: ledger.cancelled,
            sends,
            stats,
            allowed: ledger.allowed,
            error_kinds: ledger.error_kinds,
            violations: ledger.violations,
            trace,
        }
    }

    /// The server's log for the accounts of the first violations.
    fn trace(&self, violations: &[(Option<AccountId>, String)]) -> String {
        let Some((account, _)) = violations.first() else {
            return String::new();
        };
        let m = self.shared.server.model();
        let lines: Vec<&String> = m
            .log
            .iter()
            .filter(|(a, _)| a.is_none() || a == account)
            .map(|(_, line)| line)
            .collect();
        // `SIM_TRACE_LINES` shows more of the history (default 400).
        let keep = std::env::var("SIM_TRACE_LINES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(400usize);
        let mut out = format!(
            "trace of {} (last {keep} lines):\n",
            account.as_ref().map_or("-", |a| a.as_str())
        );
        for line in lines.iter().skip(lines.len().saturating_sub(keep)) {
            let _ = writeln!(out, "    {line}");
        }
        out
    }
}

/// One operation by one caller, who may give up after `deadline`; then
/// checks (d) and (e) on its answer.
async fn call(
    shared: Arc<Shared>,
    proc: usize,
    manager: TokenManager,
    key: TokenKey,
    op: Op,
    deadline: Option<Duration>,
) {
    let started = shared.tick();
    if let Op::Force(rejected) = &op {
        shared.server.note(
            &key.account,
            format!(
                "process {proc}: force_refresh #{started} rejects {:?}",
                shared.server.pair_of_access(rejected.secret())
            ),
        );
    }
    // The old tokens are what was stored when the remove started and what
    // this process had handed out; a login still being saved by another
    // process is not (see the report: a remove cannot see it).
    let old_grants = match op {
        Op::Remove | Op::Revoke => {
            let mut grants: Vec<usize> = shared
                .ledger()
                .served
                .get(&(proc, key.account.clone()))
                .map(|s| s.iter().copied().collect())
                .unwrap_or_default();
            let stored = shared.store.load(&key).await.expect("the inner store");
            if let Some(refresh) = stored.as_ref().and_then(|s| s.value.refresh_token())
                && let Some((g, _)) = shared.server.pair_of_refresh(refresh.expose_secret())
            {
                grants.push(g);
            }
            grants
        }
        _ => Vec::new(),
    };
    let work = perform(&shared, &manager, &key, &op);
    let result = match deadline {
        Some(d) => tokio::time::timeout(d, work).await.ok(),
        None => Some(work.await),
    };
    let completed = shared.tick();
    let server = &shared.server;
    server.note(
        &key.account,
        format!(
            "process {proc}: {:?} (started #{started}) -> {}",
            OpName(&op),
            match &result {
                None => "cancelled".to_owned(),
                Some(Ok(Some(t))) => format!("{:?}", server.pair_of_access(t.secret())),
                Some(Ok(None)) => "ok".to_owned(),
                Some(Err(e)) => e.to_string(),
            }
        ),
    );
    let now = shared.clock.now();
    let mut ledger = shared.ledger();
    let Some(result) = result else {
        ledger.cancelled += 1;
        return;
    };
    let token = match result {
        Err(err) => {
            ledger.errors += 1;
            let kind = if err.is_reauthorization_required() {
                "reauthorization required".to_owned()
            } else if err.is_transient() {
                "transient".to_owned()
            } else {
                match err.store_kind() {
                    Some(kind) => format!("store: {kind}"),
                    None => format!("{err}").chars().take(40).collect(),
                }
            };
            *ledger.error_kinds.entry(kind).or_default() += 1;
            return;
        }
        Ok(None) => {
            ledger.ok += 1;
            if matches!(op, Op::Remove | Op::Revoke) {
                ledger.barriers.push(Barrier {
                    proc,
                    account: key.account.clone(),
                    completed,
                    old_grants,
                });
            }
            return;
        }
        Ok(Some(token)) => token,
    };
    ledger.ok += 1;
    let account = Some(&key.account);
    let secret = token.secret().to_owned();
    let what = format!("{op:?}", op = OpName(&op));
    // (d) the server takes it, now.
    match server.use_access(&secret) {
        Validity::Valid => {}
        Validity::Expired => ledger.violate(
            account,
            format!("(d) {what} on process {proc} returned an expired token at {now:?}"),
        ),
        Validity::Unknown => ledger.violate(
            account,
            format!("(d) {what} on process {proc} returned a token the server never issued"),
        ),
        Validity::Revoked => {
            let here = ledger
                .barriers
                .iter()
                .any(|b| b.proc == proc && b.account == key.account);
            ledger.allow(if here {
                "(d) served a revoked token (revoke on this process, concurrent with the call)"
            } else {
                "(d) served a token revoked by another process (its cache cannot know)"
            });
        }
        Validity::Burned { explained: true } => {
            ledger.allow("(d) served a token of a grant lost to an unrecoverable loss");
        }
        Validity::Burned { explained: false } => ledger.violate(
            account,
            format!("(d) {what} on process {proc} returned a token of a grant burned by a bug"),
        ),
    }
    let pair = server.pair_of_access(&secret);
    if let Op::Force(rejected) = &op {
        let old = server.pair_of_access(rejected.secret());
        // A later grant (a new login) is newer than any pair of an earlier
        // one, whatever their issue order.
        let newer = match (pair, old) {
            (Some((g, i, _)), Some((og, oi, _))) => (g, i) > (og, oi),
            _ => false,
        };
        // The one older answer that is explained: the account's token was
        // deleted (a revoke or a remove, on any process, of the rejected
        // grant or of any grant newer than the answer), and the store then
        // received an earlier login's token from another process, whose
        // save had been pending (retried in the background) since before
        // the deletion. A store keeps no record of a deletion, so that
        // process cannot know; the answer is a live grant the user approved
        // (checked above). A refresh of an older grant cannot land this
        // way: its save needs the pair it replaced, which was deleted; so
        // the answer must be a login's own pair, unless the rejected grant
        // itself was revoked (the first form found, seed 5000806).
        let older_login_after_revoke = match (pair, old) {
            (Some((g, i, _)), Some((og, _, _))) => {
                g < og
                    && (server.is_revoked(og)
                        || (i == 0
                            && ledger.barriers.iter().any(|b| {
                                b.account == key.account
                                    && b.completed < started
                                    && b.old_grants.iter().any(|&deleted| deleted > g)
                            })))
            }
            _ => false,
        };
        if !newer {
            if older_login_after_revoke {
                ledger.allow(
                    "force_refresh after a revoke or remove: an earlier login's token, saved after \
                     the deletion by another process",
                );
            } else {
                ledger.violate(
                    account,
                    format!("force_refresh on process {proc} answered with {pair:?}, not newer than the rejected {old:?}"),
                );
            }
        }
    }
    if let Op::Login { .. } = op {
        server.login_done(&secret);
    }
    // (e) nothing removed or revoked on this process comes back to a call
    // that started after the removal completed.
    if let Some((g, i, _)) = pair {
        ledger
            .served
            .entry((proc, key.account.clone()))
            .or_default()
            .insert(g);
        let mut broken = Vec::new();
        for b in &ledger.barriers {
            if b.proc == proc
                && b.account == key.account
                && started > b.completed
                && b.old_grants.contains(&g)
            {
                broken.push(format!(
                    "(e) {what} on process {proc} returned g{g}#{i}, removed/revoked there before the call started"
                ));
            }
        }
        for v in broken {
            ledger.violate(account, v);
        }
    }
    let handed = ledger
        .handed
        .entry((proc, key.account.clone()))
        .or_default();
    handed.push(token);
    if handed.len() > 8 {
        handed.remove(0);
    }
}

/// The operation's name, without its token.
struct OpName<'a>(&'a Op);

impl std::fmt::Debug for OpName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            Op::Access => "access_token",
            Op::Force(_) => "force_refresh",
            Op::Refresh => "refresh",
            Op::Revoke => "revoke",
            Op::Remove => "remove",
            Op::Login { .. } => "complete_authorization",
            Op::Clear => "clear_reauthorization",
        })
    }
}

async fn perform(
    shared: &Shared,
    manager: &TokenManager,
    key: &TokenKey,
    op: &Op,
) -> Result<Option<AccessToken>> {
    match op {
        Op::Access => manager.access_token(key).await.map(Some),
        Op::Force(rejected) => manager.force_refresh(key, rejected).await.map(Some),
        Op::Refresh => manager.refresh(key).await.map(Some),
        Op::Revoke => manager.revoke(key).await.map(|()| None),
        Op::Remove => manager.remove(key).await.map(|_| None),
        Op::Clear => manager.clear_reauthorization(key).await.map(|_| None),
        Op::Login { with_account } => {
            let provider = ProviderId::new(PROVIDER).expect("a valid id");
            let mut request = AuthorizeRequest::new().scopes(["activity"]);
            if *with_account {
                request = request.account(key.account.clone());
            }
            let pending = manager.begin_authorization(&provider, request)?;
            let code = shared.server.approve(&key.account);
            let callback = Callback::from_pairs([
                ("code".to_owned(), code),
                (
                    "state".to_owned(),
                    pending.state().expose_secret().to_owned(),
                ),
            ])?;
            let (got, token) = manager.complete_authorization(&pending, &callback).await?;
            if &got != key {
                return Err(Error::invalid_input(format!(
                    "the login stored {got}, not {key}"
                )));
            }
            Ok(Some(token))
        }
    }
}
