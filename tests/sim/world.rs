//! The scenario: processes (each a manager with its own clock and a
//! Refresher), accounts and random operations over the model store and the
//! server model; process kills, pauses and outages between them; then a
//! quiet period and the checker.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use auth_core::secrecy::ExposeSecret;
use auth_core::{
    AccessToken, AccountId, AuthorizeRequest, Callback, Error, ProviderId, Refresher, Result,
    TokenKey, TokenManager,
};
use tokio::time::Instant;

use super::chaos::{Chaos, Rates};
use super::checker::{self, Evidence, Findings};
use super::life::Life;
use super::server::{Death, PROVIDER, Rules, Server, SimProvider, Validity};
use super::store::{ModelStore, ProcStore};
use super::{SimClock, paused_runtime, start_time};

/// How a run is set up; all drawn from the seed.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) seed: u64,
    pub(crate) ops: usize,
    pub(crate) rules: Rules,
    /// The store's lease TTL; `None`: leases die with their process.
    pub(crate) lease_ttl: Option<Duration>,
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
    pub(crate) kills: u64,
    pub(crate) pauses: u64,
    pub(crate) sends: u64,
    pub(crate) unknown_commits: u64,
    pub(crate) stats: super::server::Stats,
    /// Errors returned to callers, by kind.
    pub(crate) error_kinds: BTreeMap<String, u64>,
    pub(crate) findings: Findings,
    /// The server's log of the account of the first violation.
    pub(crate) trace: String,
    /// A digest of the whole trace, for comparing two runs of one seed.
    pub(crate) digest: u64,
}

impl Report {
    /// A run that did not finish within `bound` of simulated time.
    fn stuck(config: Config, bound: Duration) -> Self {
        let mut findings = Findings::default();
        findings.violate(
            None,
            format!("the run did not finish within {bound:?} of simulated time"),
        );
        Self {
            config,
            sim_time: bound,
            ok: 0,
            errors: 0,
            cancelled: 0,
            kills: 0,
            pauses: 0,
            sends: 0,
            unknown_commits: 0,
            stats: super::server::Stats::default(),
            error_kinds: BTreeMap::new(),
            findings,
            trace: String::new(),
            digest: 0,
        }
    }

    /// The command that replays this run.
    pub(crate) fn replay_command(&self) -> String {
        format!(
            "SIM_SEED={} SIM_OPS={} cargo test -p reliability --test simulation replay -- --nocapture",
            self.config.seed, self.config.ops
        )
    }

    /// Allowed losses of any kind, counted.
    pub(crate) fn allowed_burns(&self) -> u64 {
        self.findings
            .allowed
            .iter()
            .filter(|(k, _)| k.starts_with("burn:"))
            .map(|(_, n)| n)
            .sum()
    }

    /// One paragraph of figures.
    pub(crate) fn summary(&self) -> String {
        format!(
            "seed {} ({:?}, lease TTL {:?}, level {}, {} accounts, {} processes, lifetime {:?}): {} ops ({} ok, {} err, {} cancelled), {} kills, {} pauses, over {:?} simulated; {} refresh requests, {} rotations, {} replays, {} lost answers, {} deaths awaiting an answer, {} burns, {} superseded, {} store commits with lost answers; errors: {:?}; allowed: {:?}",
            self.config.seed,
            self.config.rules,
            self.config.lease_ttl,
            self.config.level,
            self.config.accounts,
            self.config.processes,
            self.config.lifetime,
            self.config.ops,
            self.ok,
            self.errors,
            self.cancelled,
            self.kills,
            self.pauses,
            self.sim_time,
            self.sends,
            self.stats.rotations,
            self.stats.replays,
            self.stats.lost_answers,
            self.stats.died_awaiting_answer,
            self.stats.burns,
            self.stats.superseded,
            self.unknown_commits,
            self.error_kinds,
            self.findings.allowed
        )
    }

    /// Panics with the seed, the replay command, the violations and a
    /// trace if any rule broke.
    pub(crate) fn assert_ok(&self) {
        let violations = &self.findings.violations;
        if violations.is_empty() {
            return;
        }
        let mut msg = format!(
            "simulation seed {} broke {} rule(s)\nreplay: {}\n{}\n",
            self.config.seed,
            violations.len(),
            self.replay_command(),
            self.summary()
        );
        for (account, v) in violations.iter().take(12) {
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
///
/// A run that spins without letting simulated time pass (a retry loop
/// with no back-off) would never reach its bound in simulated time, so the
/// run also has a watchdog in real time (`SIM_WALL_LIMIT` seconds, default
/// 120): past it the run is reported stuck, with the trace's last lines.
pub(crate) fn run(seed: u64, ops: usize) -> Report {
    let limit = std::env::var("SIM_WALL_LIMIT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(120u64);
    let (tx, rx) = std::sync::mpsc::channel();
    let (life_tx, life_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let report = run_here(seed, ops, &life_tx);
        let _ = tx.send(report);
    });
    match rx.recv_timeout(Duration::from_secs(limit)) {
        Ok(report) => report,
        Err(_) => {
            let (config, life): (Config, Arc<Life>) = life_rx.recv().expect("the run started");
            let mut report = Report::stuck(config, Duration::ZERO);
            report.findings.violations[0].1 = format!(
                "the run did not finish within {limit} s of real time: a loop that lets no simulated time pass"
            );
            report.trace = format!(
                "the last lines of the trace:\n    {}\n",
                life.tail(60).join("\n    ")
            );
            report
        }
    }
}

fn run_here(
    seed: u64,
    ops: usize,
    started: &std::sync::mpsc::Sender<(Config, Arc<Life>)>,
) -> Report {
    paused_runtime().block_on(async move {
        start_time();
        let world = World::new(seed, ops);
        let config = world.config.clone();
        let life = Arc::clone(&world.shared.life);
        let _ = started.send((config.clone(), Arc::clone(&life)));
        // A generous bound in simulated time: a run that has not finished
        // by then is stuck (a call that never returns, a retry loop that
        // never ends), which is a failure too.
        let bound = Duration::from_secs(300) * u32::try_from(ops).unwrap_or(u32::MAX).max(1);
        match tokio::time::timeout(bound, world.run()).await {
            Ok(report) => report,
            Err(_) => {
                let mut report = Report::stuck(config, bound);
                report.trace = format!(
                    "the last lines of the trace:\n    {}\n",
                    life.tail(60).join("\n    ")
                );
                report
            }
        }
    })
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
    error_kinds: BTreeMap<String, u64>,
    findings: Findings,
    barriers: Vec<Barrier>,
    /// Access tokens handed out, per process and account, for later
    /// `force_refresh` (a process's callers hold only its own tokens).
    handed: BTreeMap<(usize, AccountId), Vec<AccessToken>>,
    /// Grants whose tokens each process handed out, per account.
    served: BTreeMap<(usize, AccountId), BTreeSet<usize>>,
    /// Served tokens of grants that died by a burn, checked at the end
    /// (the burn's cause is known only then): (grant, what).
    served_burned: Vec<(usize, String)>,
}

/// What the operation tasks share.
struct Shared {
    chaos: Arc<Chaos>,
    store: Arc<ModelStore>,
    server: Arc<Server>,
    life: Arc<Life>,
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
    refresher: Refresher,
    /// How far its clock is off, in milliseconds.
    offset_ms: i64,
}

struct World {
    config: Config,
    shared: Arc<Shared>,
    procs: Vec<Proc>,
    accounts: Vec<TokenKey>,
    kills: u64,
    pauses: u64,
}

impl World {
    fn new(seed: u64, ops: usize) -> Self {
        let chaos = Arc::new(Chaos::new(seed));
        let config = {
            let c = &chaos;
            let rules = if c.chance(0.5) {
                Rules::NO_WINDOW
            } else {
                Rules {
                    window: Some(
                        [
                            Duration::from_secs(60),
                            Duration::from_secs(120),
                            Duration::from_secs(300),
                        ][c.below(3)],
                    ),
                    first_use_ends: c.chance(0.5),
                }
            };
            Config {
                seed,
                ops,
                rules,
                lease_ttl: [
                    None,
                    Some(Duration::from_secs(10)),
                    Some(Duration::from_secs(15)),
                    Some(Duration::from_secs(30)),
                ][c.below(4)],
                lifetime: [
                    Duration::from_secs(6 * 60),
                    Duration::from_secs(10 * 60),
                    Duration::from_secs(30 * 60),
                    Duration::from_secs(8 * 3600),
                ][c.below(4)],
                accounts: 2 + c.below(7),
                processes: 2 + c.below(4),
                level: c.below(3) as u32,
            }
        };
        let rates = Rates::draw(&mut chaos.rng(), config.level);
        chaos.set_rates(rates);
        let life = Arc::new(Life::default());
        let store = ModelStore::new(config.lease_ttl, Arc::clone(&life));
        let server = Arc::new(Server::new(
            config.rules,
            config.lifetime,
            Arc::clone(&chaos),
            Arc::clone(&life),
        ));
        let shared = Arc::new(Shared {
            chaos,
            store,
            server,
            life,
            ledger: Mutex::default(),
            tick: AtomicU64::new(0),
        });
        let accounts = (0..config.accounts)
            .map(|i| TokenKey::parse(PROVIDER, &format!("user{i}")).expect("a valid key"))
            .collect();
        let mut world = Self {
            config,
            shared,
            procs: Vec::new(),
            accounts,
            kills: 0,
            pauses: 0,
        };
        for _ in 0..world.config.processes {
            world.start_process();
        }
        world
    }

    /// A new process: its own clock (up to two minutes off), provider
    /// client, view of the store, manager and Refresher.
    fn start_process(&mut self) {
        let s = &self.shared;
        let id = s.life.add();
        let offset_ms = s.chaos.rng_range_i64(-120_000, 120_000);
        let store = ProcStore::new(Arc::clone(&s.store), Arc::clone(&s.chaos), id);
        let manager = TokenManager::builder(Arc::new(store))
            .provider(Arc::new(SimProvider::new(Arc::clone(&s.server), id)))
            .clock(Arc::new(SimClock::new(offset_ms)) as Arc<dyn auth_core::Clock>)
            .event_capacity(4096)
            .build();
        let refresher = Refresher::builder(manager.clone()).spawn();
        s.server.note(
            None,
            format!("process {id} started (clock {offset_ms:+} ms)"),
        );
        self.procs.push(Proc {
            id,
            manager,
            refresher,
            offset_ms,
        });
    }

    fn running(&self) -> Vec<usize> {
        (0..self.procs.len())
            .filter(|&i| self.shared.life.is_running(self.procs[i].id))
            .collect()
    }

    async fn run(mut self) -> Report {
        let start = Instant::now();
        for (n, key) in self.accounts.iter().enumerate() {
            let token = self.shared.server.seed_grant(&key.account);
            self.shared.store.seed(key, token, 1 + n as u64);
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
                        .findings
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
        self.check(sim_time)
    }

    /// Between batches: kills, pauses, outages; and a replacement for
    /// every dead process, so that the world keeps its size.
    fn weather(&mut self) {
        let c = Arc::clone(&self.shared.chaos);
        let rates = c.rates();
        if c.chance(rates.outage) {
            let d = c.duration(Duration::from_secs(20), Duration::from_secs(180));
            let now = super::wall(Instant::now());
            c.outage_until(Some(now + d));
            let at = Instant::now();
            self.shared.server.model().outages.push((at, at + d));
        }
        if c.chance(rates.store_outage) {
            let d = c.duration(Duration::from_secs(1), Duration::from_secs(90));
            self.shared.store.outage(d);
        }
        let running = self.running();
        if !running.is_empty() && c.chance(0.04 * (1 + self.config.level) as f64) {
            let p = self.procs[running[c.below(running.len())]].id;
            self.kill(p);
        }
        let running = self.running();
        if !running.is_empty() && c.chance(0.04 * (1 + self.config.level) as f64) {
            let p = self.procs[running[c.below(running.len())]].id;
            let d = c.pause_length(self.config.lease_ttl);
            self.shared.life.pause(p, d);
            self.shared
                .server
                .note(None, format!("process {p} paused for {d:?}"));
            self.pauses += 1;
        }
        self.replace_dead();
    }

    /// Starts a replacement for every dead process, so that the world
    /// keeps its size (a supervisor restarting what was killed).
    fn replace_dead(&mut self) {
        let dead = self
            .procs
            .iter()
            .filter(|p| self.shared.life.is_dead(p.id))
            .count();
        let alive = self.procs.len() - dead;
        for _ in alive..self.config.processes {
            self.start_process();
        }
        for p in &self.procs {
            if self.shared.life.is_dead(p.id) {
                // Nothing it does can reach the store or the server any
                // more; stopping its loop only saves the simulation work.
                p.refresher.stop();
            }
        }
        self.procs.retain(|p| !self.shared.life.is_dead(p.id));
    }

    /// `SIGKILL`: the process stops where it is, holding what it holds.
    fn kill(&mut self, proc: usize) {
        if self.shared.life.kill(proc) {
            self.shared
                .server
                .note(None, format!("process {proc} killed"));
            self.kills += 1;
        }
    }

    /// Picks and spawns one operation on a running process.
    fn start_op(&mut self) -> Option<tokio::task::JoinHandle<()>> {
        let c = Arc::clone(&self.shared.chaos);
        let running = self.running();
        if running.is_empty() {
            return None;
        }
        let slot = running[c.below(running.len())];
        let kind = c.weighted(&[46, 20, 6, 2, 2, 8, 2]);
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
        let offset_ms = self.procs[slot].offset_ms;
        let shared = Arc::clone(&self.shared);
        Some(tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            call(shared, proc, offset_ms, manager, key, op, deadline).await;
        }))
    }

    /// Ends the faults, wakes every process, and waits long enough for
    /// every Refresher to finish orphans and every pending save to land.
    async fn quiesce(&mut self) {
        let c = &self.shared.chaos;
        c.set_rates(Rates::default());
        c.outage_until(None);
        let now = Instant::now();
        for o in &mut self.shared.server.model().outages {
            o.1 = o.1.min(now).max(o.0);
        }
        self.shared.store.end_outages();
        self.shared.life.wake_all();
        self.replace_dead();
        // Every account is used once more by a running process, so that a
        // record left behind meets a caller as well as the Refreshers.
        tokio::time::sleep(Duration::from_secs(600)).await;
        let running = self.running();
        if let Some(&slot) = running.first() {
            let manager = self.procs[slot].manager.clone();
            for key in &self.accounts {
                let _ = manager.access_token(key).await;
            }
        }
        tokio::time::sleep(Duration::from_secs(600)).await;
        for p in &self.procs {
            p.refresher.stop();
        }
    }

    /// Runs the checker over everything the run recorded.
    fn check(self, sim_time: Duration) -> Report {
        let mut ledger = std::mem::take(&mut *self.shared.ledger());
        let lives = self.shared.life.snapshot();
        let server = &self.shared.server;
        let (stats, sends) = {
            let m = server.model();
            let ev = Evidence {
                model: &m,
                store: &self.shared.store,
                lives: &lives,
                now: Instant::now(),
            };
            checker::check(&ev, &self.accounts, &mut ledger.findings);
            for (g, what) in std::mem::take(&mut ledger.served_burned) {
                let Some((Death::Burned { send, .. }, _)) = &m.grants[g].death else {
                    continue;
                };
                let s = &m.sends[*send];
                let key = TokenKey::new(
                    ProviderId::new(PROVIDER).expect("a valid id"),
                    m.grants[g].account.clone(),
                );
                let excused =
                    ev.loss(g, s.index, s.at).is_ok() || ev.paused_past_lease(&key, s.proc, s.at);
                if excused {
                    ledger
                        .findings
                        .allow("served a token of a grant lost to an allowed burn");
                } else {
                    let account = m.grants[g].account.clone();
                    ledger.findings.violate(
                        Some(&account),
                        format!("{what}: a token of grant g{g}, burned by a bug"),
                    );
                }
            }
            (m.stats.clone(), m.sends.len() as u64)
        };
        let trace = self.trace(&ledger.findings.violations);
        Report {
            config: self.config.clone(),
            sim_time,
            ok: ledger.ok,
            errors: ledger.errors,
            cancelled: ledger.cancelled,
            kills: self.kills,
            pauses: self.pauses,
            sends,
            unknown_commits: self.shared.store.unknown_commits(),
            stats,
            error_kinds: ledger.error_kinds,
            findings: ledger.findings,
            trace,
            digest: self.shared.life.digest(),
        }
    }

    /// The server's log for the account of the first violation.
    fn trace(&self, violations: &[(Option<AccountId>, String)]) -> String {
        let Some((account, _)) = violations.first() else {
            return String::new();
        };
        let lines = self.shared.life.journal(account.as_ref());
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
/// checks what it got.
async fn call(
    shared: Arc<Shared>,
    proc: usize,
    offset_ms: i64,
    manager: TokenManager,
    key: TokenKey,
    op: Op,
    deadline: Option<Duration>,
) {
    let started = shared.tick();
    let began = Instant::now();
    let server = &shared.server;
    if let Op::Force(rejected) = &op {
        server.note(
            Some(&key.account),
            format!(
                "process {proc}: force_refresh #{started} rejects {:?}",
                server.pair_of_access(rejected.secret())
            ),
        );
    }
    // The old tokens of a remove or revoke: what was stored when it
    // started, and what this process had handed out.
    let old_grants = match op {
        Op::Remove | Op::Revoke => {
            let mut grants: Vec<usize> = shared
                .ledger()
                .served
                .get(&(proc, key.account.clone()))
                .map(|s| s.iter().copied().collect())
                .unwrap_or_default();
            let stored = shared.store.peek(&key);
            if let Some(refresh) = stored
                .as_ref()
                .and_then(|s| s.token.as_ref())
                .and_then(|t| t.refresh_token())
                && let Some((g, _)) = server.pair_of_refresh(refresh.expose_secret())
            {
                grants.push(g);
            }
            grants
        }
        _ => Vec::new(),
    };
    let work = perform(&shared, &manager, &key, &op);
    let bounded = async {
        match deadline {
            Some(d) => tokio::time::timeout(d, work).await.ok(),
            None => Some(work.await),
        }
    };
    // A caller lives in its process: when the process dies, so does the
    // call, wherever it was.
    let result = tokio::select! {
        biased;
        r = bounded => r,
        () = shared.life.died(proc) => return,
    };
    let completed = shared.tick();
    server.note(
        Some(&key.account),
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
    if shared.life.is_dead(proc) {
        // Whatever a dead process answered, nobody heard it.
        return;
    }
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
    let what = format!("{:?} on process {proc}", OpName(&op));
    let pair = server.pair_of_access(&secret);
    // The server takes it, now.
    match server.use_access(&secret) {
        Validity::Valid => {}
        Validity::Expired => {
            // A host whose clock is behind sees a token as valid for as
            // long as it is behind; nothing unsafe, and counted.
            let lag = Duration::from_millis(offset_ms.min(0).unsigned_abs());
            let expired_for = pair
                .map(|(g, i)| {
                    let m = server.model();
                    let exp = m.grants[g].pairs[i].token.expires_at();
                    exp.and_then(|e| super::wall(Instant::now()).duration_since(e).ok())
                        .unwrap_or_default()
                })
                .unwrap_or_default();
            let paused_in_login = matches!(op, Op::Login { .. })
                && shared.life.snapshot()[proc].stopped_within(began, Instant::now());
            if expired_for <= lag {
                ledger.findings.allow(
                    "served a token expired by the true time, valid on the host's slow clock",
                );
            } else if paused_in_login {
                // A login answers with the token it obtained; it expired
                // while its process was paused during the call.
                ledger
                    .findings
                    .allow("a login's own token, expired while its process paused in the call");
            } else {
                ledger.findings.violate(
                    account,
                    format!("{what} returned a token expired for {expired_for:?} (clock {offset_ms:+} ms)"),
                );
            }
        }
        Validity::Unknown => ledger.findings.violate(
            account,
            format!("{what} returned a token the server never issued"),
        ),
        Validity::Dead(Death::Revoked) => ledger
            .findings
            .allow("served a revoked token (another process, or concurrent with the revoke)"),
        Validity::Dead(Death::Superseded { .. }) => ledger
            .findings
            .allow("served a token superseded by a login (its cache cannot know)"),
        Validity::Dead(Death::Burned { .. }) => {
            if let Some((g, _)) = pair {
                ledger.served_burned.push((g, what.clone()));
            }
        }
    }
    if let Op::Force(rejected) = &op {
        let old = server.pair_of_access(rejected.secret());
        // A later grant (a new login) is newer than any pair of an earlier
        // one.
        let newer = match (pair, old) {
            (Some(p), Some(o)) => p > o,
            _ => false,
        };
        // The named login race: a login whose account comes from the
        // response takes its sequence after the exchange, so an older
        // grant's login may be stored over a newer one, and handed out.
        let login_race = match (pair, old) {
            (Some((p, _)), Some((o, _))) if p < o => {
                let m = server.model();
                [p, o]
                    .iter()
                    .any(|&g| m.grants[g].login.as_ref().is_some_and(|l| !l.with_account))
            }
            _ => false,
        };
        if login_race {
            ledger
                .findings
                .allow("force_refresh answered with an older grant stored by the login race");
        } else if !newer {
            ledger.findings.violate(
                account,
                format!("force_refresh on process {proc} answered with {pair:?}, not newer than the rejected {old:?}"),
            );
        }
    }
    // Nothing removed or revoked on this process comes back to a call that
    // started after the removal completed.
    if let Some((g, i)) = pair {
        ledger
            .served
            .entry((proc, key.account.clone()))
            .or_default()
            .insert(g);
        let broken: Vec<String> = ledger
            .barriers
            .iter()
            .filter(|b| {
                b.proc == proc
                    && b.account == key.account
                    && started > b.completed
                    && b.old_grants.contains(&g)
            })
            .map(|_| {
                format!(
                    "{what} returned g{g}#{i}, removed or revoked there before the call started"
                )
            })
            .collect();
        for v in broken {
            ledger.findings.violate(account, v);
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
