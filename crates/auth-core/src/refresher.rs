//! [`Refresher`]: refreshes tokens in the background, shortly before they
//! expire, so that callers of
//! [`TokenManager::access_token`](crate::TokenManager::access_token) never
//! wait for a refresh.
//!
//! It must never refresh beside the protocol: every background refresh goes
//! through the manager's single flight, its lease (across processes) and its
//! stored cooldowns, with a goal that refreshes only the very token judged
//! due (a token that another process already replaced is taken as it is).
//! And it must never read every token on every tick: the store is scanned
//! once, into a schedule ordered by due time, which the manager's events
//! keep up to date.
//!
//! What it refreshes, when, and how hosts share the work: see
//! [`Refresher`].

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use futures::StreamExt as _;
use tokio::sync::{Notify, broadcast, watch};
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::error::{Error, Result};
use crate::id::{ProviderId, TokenKey};
use crate::manager::{Ahead, CooldownPolicy, TokenEvent, TokenManager};
use crate::telemetry;
use crate::token::TokenSet;

/// The default lead time: tokens are refreshed this long before they expire
/// (twice the manager's default skew, so callers never meet a due token).
pub const DEFAULT_LEAD: Duration = Duration::from_secs(10 * 60);
/// The default spread of due times: up to this much earlier than the lead.
const DEFAULT_JITTER: Duration = Duration::from_secs(2 * 60);
/// The default cap on background refreshes at once, overall.
const DEFAULT_MAX_CONCURRENT: usize = 8;
/// The default cap on background refreshes at once, per provider.
const DEFAULT_PER_PROVIDER: usize = 4;
/// Store reads at once during a scan.
const SCAN_CONCURRENCY: usize = 16;
/// The pause before a failed scan is tried again.
const SCAN_RETRY: Duration = Duration::from_secs(30);
/// How often every refresher asks the store for refreshes left in flight
/// by a holder that died or gave up (whatever its shard), and takes each
/// over at once: a cache hit in a long-lived process cannot see them.
pub const ORPHAN_POLL: Duration = Duration::from_secs(2);
/// Orphaned keys taken over per poll at most.
const ORPHAN_BATCH: usize = 64;
/// How many times one takeover comes back when its replay was paced for
/// less than a poll, or the store failed before anything was sent.
const TAKEOVER_TRIES: usize = 4;
/// How soon a takeover comes back after a store failure.
const TAKEOVER_STORE_RETRY: Duration = Duration::from_millis(250);
/// Due times further away than this are held at this distance (a token
/// valid for decades, a keep-alive of years): the entry simply comes up
/// again then.
const FAR: Duration = Duration::from_secs(30 * 24 * 3600);

/// Which accounts a refresher owns, when several share a store: those whose
/// key hashes to `index` modulo `count` (see [`Refresher`]).
///
/// ```
/// use auth_core::{Shard, TokenKey};
/// let key = TokenKey::parse("fitbit", "26FWFL").unwrap();
/// let shards: Vec<Shard> = (0..3).map(|i| Shard::new(i, 3).unwrap()).collect();
/// assert_eq!(shards.iter().filter(|s| s.owns(&key)).count(), 1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    index: u32,
    count: u32,
}

impl Shard {
    /// Every account: one refresher for the whole store.
    pub fn all() -> Self {
        Self { index: 0, count: 1 }
    }

    /// Shard `index` of `count`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] when `count` is zero or `index` is not below it.
    pub fn new(index: u32, count: u32) -> Result<Self> {
        if count == 0 || index >= count {
            return Err(Error::invalid_input(format!(
                "refresher shard {index} of {count}: the count must be at least 1 and the \
                 index below it"
            )));
        }
        Ok(Self { index, count })
    }

    /// Whether this shard owns `key`. Stable across hosts, processes and
    /// versions of this crate.
    pub fn owns(&self, key: &TokenKey) -> bool {
        self.count == 1 || key_hash(key, None) % u64::from(self.count) == u64::from(self.index)
    }
}

impl Default for Shard {
    fn default() -> Self {
        Self::all()
    }
}

/// FNV-1a over the provider id, a `0xff` byte, the account id and then
/// `salt`'s little-endian bytes (if any), finished with SplitMix64's mixer so
/// that every bit of the result depends on every byte.
fn key_hash(key: &TokenKey, salt: Option<u64>) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let salt = salt.map(u64::to_le_bytes);
    let bytes = key
        .provider
        .as_str()
        .bytes()
        .chain([0xff])
        .chain(key.account.as_str().bytes())
        .chain(salt.into_iter().flatten());
    for byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash = (hash ^ (hash >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash = (hash ^ (hash >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^ (hash >> 31)
}

/// A fraction of `span` picked by `hash`: deterministic jitter.
fn fraction(span: Duration, hash: u64) -> Duration {
    // 53 bits are what an f64 holds exactly.
    #[allow(clippy::cast_precision_loss)]
    let unit = (hash >> 11) as f64 / (1u64 << 53) as f64;
    span.mul_f64(unit)
}

/// Something the refresher did. Carries no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefresherEvent {
    /// A scan of the store finished; `scheduled` accounts are on the
    /// schedule.
    Scanned {
        /// Accounts scheduled after the scan.
        scheduled: usize,
    },
    /// A token was replaced ahead of its expiry (or was found replaced by
    /// another process).
    Refreshed {
        /// The account.
        key: TokenKey,
        /// When the new access token expires.
        expires_at: Option<SystemTime>,
        /// Whether this was a keep-alive of a dormant grant.
        keep_alive: bool,
    },
    /// A background refresh failed; the key (and, for a provider fault, its
    /// provider) backs off until `retry_at`.
    Failed {
        /// The account.
        key: TokenKey,
        /// The error's [class](Error::class).
        class: &'static str,
        /// Why, without secrets.
        reason: String,
        /// When this key is tried again.
        retry_at: SystemTime,
    },
    /// The key left the schedule: it needs a new login, its provider is
    /// retired or unknown, or it is gone.
    Dropped {
        /// The account.
        key: TokenKey,
        /// Why, without secrets.
        reason: String,
    },
    /// The refresher stopped.
    Stopped,
}

/// Counters of a [`Refresher`], for health checks and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct RefresherStats {
    /// Accounts on the schedule (running ones excluded).
    pub scheduled: usize,
    /// Background refreshes running now.
    pub running: usize,
    /// Most background refreshes that ever ran at once.
    pub peak_running: usize,
    /// Tokens replaced so far.
    pub refreshed: u64,
    /// Background refreshes that failed so far.
    pub failed: u64,
}

/// Configures and spawns a [`Refresher`].
#[derive(Debug)]
pub struct RefresherBuilder {
    manager: TokenManager,
    config: Config,
}

/// What the loop needs to know, shared with its tasks.
#[derive(Debug, Clone)]
struct Config {
    lead: Duration,
    jitter: Duration,
    max_concurrent: usize,
    per_provider: usize,
    backoff: CooldownPolicy,
    provider_backoff: CooldownPolicy,
    keep_alive: HashMap<ProviderId, Duration>,
    shard: Shard,
}

impl RefresherBuilder {
    /// Refreshes tokens this long before they expire (default 10 minutes).
    /// Keep it well above the manager's refresh skew (default 5 minutes):
    /// between the two, a background refresh has time to finish before any
    /// caller would refresh on demand.
    #[must_use]
    pub fn lead(mut self, lead: Duration) -> Self {
        self.config.lead = lead;
        self
    }

    /// Spreads due times over up to this much before the lead (default 2
    /// minutes), so tokens issued together are not refreshed together.
    #[must_use]
    pub fn jitter(mut self, jitter: Duration) -> Self {
        self.config.jitter = jitter;
        self
    }

    /// At most this many background refreshes at once (default 8).
    #[must_use]
    pub fn max_concurrent(mut self, max: usize) -> Self {
        self.config.max_concurrent = max.max(1);
        self
    }

    /// At most this many background refreshes at once per provider
    /// (default 4).
    #[must_use]
    pub fn max_per_provider(mut self, max: usize) -> Self {
        self.config.per_provider = max.max(1);
        self
    }

    /// How long a key waits after failed background refreshes in a row
    /// (default 15 seconds, doubling to 10 minutes; a server's `Retry-After`
    /// and the manager's stored cooldown are honoured when longer).
    #[must_use]
    pub fn backoff(mut self, backoff: CooldownPolicy) -> Self {
        self.config.backoff = backoff;
        self
    }

    /// How long a provider is paused after background refreshes failed in
    /// a row, whichever keys they were for (default 15 seconds, doubling to
    /// 10 minutes). While it has failures, it gets one refresh at a time.
    #[must_use]
    pub fn provider_backoff(mut self, backoff: CooldownPolicy) -> Self {
        self.config.provider_backoff = backoff;
        self
    }

    /// Refreshes `provider`'s dormant grants once they have gone unrefreshed
    /// for `idle` (see [`Refresher`]). Meant for providers whose
    /// refresh tokens do not rotate and die when unused, such as Google's
    /// (six months): pick a fraction of that.
    #[must_use]
    pub fn keep_alive(mut self, provider: ProviderId, idle: Duration) -> Self {
        self.config.keep_alive.insert(provider, idle);
        self
    }

    /// Owns only this shard of the accounts (default: all of them).
    #[must_use]
    pub fn shard(mut self, shard: Shard) -> Self {
        self.config.shard = shard;
        self
    }

    /// Starts the refresher on the current Tokio runtime: it scans the store
    /// once, then refreshes on schedule until the manager shuts down or
    /// [`Refresher::stop`] is called.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub fn spawn(self) -> Refresher {
        let (events, _) = broadcast::channel(256);
        let (stopped_tx, stopped) = watch::channel(false);
        let shared = Arc::new(Shared {
            stop: Notify::new(),
            events,
            scheduled: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
            peak_running: AtomicUsize::new(0),
            refreshed: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        });
        // Subscribe before the scan, so no event between the two is missed.
        let manager_events = self.manager.subscribe();
        let worker = Worker {
            manager: self.manager,
            config: Arc::new(self.config),
            shared: Arc::clone(&shared),
            schedule: Schedule::default(),
            running: HashMap::new(),
            providers: HashMap::new(),
            tasks: JoinSet::new(),
            scan: None,
            orphan_poll: Some(Instant::now()),
            taking_over: HashSet::new(),
        };
        tokio::spawn(async move {
            worker.run(manager_events).await;
            stopped_tx.send_replace(true);
        });
        Refresher { shared, stopped }
    }
}

/// Refreshes tokens in the background before they expire, through the
/// manager's protocol: its single flight, its lease (across processes) and
/// its stored cooldowns apply to every background refresh.
///
/// # How it decides what to refresh
///
/// - A token that is valid when the refresher first sees it (at the scan, or
///   in a [`TokenEvent::Refreshed`]) is **live**: it is refreshed `lead`
///   (plus up to `jitter`) before it expires, and so is each of its
///   successors, until the account is removed, revoked or flagged.
/// - A token that lives too briefly for the lead is refreshed 7/8 of its
///   lifetime ahead (the manager's skew is capped at 3/4 of it, so this is
///   still before any caller), with 1/16 of it as jitter.
/// - A token already expired at the scan is **dormant**: nobody is using it,
///   and the next caller refreshes it on demand. It is left alone, unless its
///   provider has a **keep-alive**: then it is refreshed once it has been
///   idle (unrefreshed) that long, and again each time it has been idle that
///   long since. Google drops refresh tokens unused for six months, so a
///   keep-alive of a month or two keeps a dormant Google grant working.
/// - A token without a refresh token (and whose provider cannot mint one),
///   or flagged for reauthorization, is not scheduled.
///
/// # Refreshes left in flight
///
/// Every [`ORPHAN_POLL`] (2 s) the refresher asks the store for refreshes
/// left in flight whose lease is free or expired
/// ([`TokenStore::orphaned`](crate::TokenStore::orphaned)): their holder
/// died, paused, or gave up after an unknown outcome. It takes each over at
/// once through the manager, **whatever its shard**: only a replay inside
/// the provider's window recovers the pair, and a cached token in a
/// long-lived process cannot see the record. A takeover makes one attempt
/// (the next poll comes back for it); replays are paced at one per
/// window/8 per account, and a record a window old is watched before it
/// is replayed.
///
/// # Many hosts
///
/// Refreshers on several hosts split the accounts by a stable hash of the
/// key ([`Shard`]): give each host its index and the shared count, and each
/// scans and refreshes only the keys it owns. The hash is FNV-1a of the
/// provider id, a `0xff` byte and the account id: the same on every host and
/// in every version of this crate (mixed by SplitMix64's finalizer, then
/// taken modulo the count). Correctness never depends on the split:
/// two refreshers that both own a key (a shard misconfigured, or hosts
/// resharding) still refresh it once, because both go through the lease and
/// the second one finds the token replaced. A store with a queue of its own
/// (`FOR UPDATE SKIP LOCKED` on Postgres) could hand out due keys instead;
/// the static split needs no store support, which is why it comes first.
///
/// # Limits
///
/// - Concurrency is capped overall and per provider. After a failure a key
///   backs off (doubling, with jitter), and its provider too: a provider
///   that fails is probed by one refresh at a time, after a growing pause,
///   until one succeeds, so an outage costs a few requests, not one per key.
///   Takeovers of refreshes left in flight are not capped this way: each
///   account with a record is replayed at its own pace (see above).
/// - A lagging event subscription (more events than the manager's
///   `event_capacity` while the refresher was busy) triggers a new scan.
///
/// It stops on [`TokenManager::shutdown`](crate::TokenManager::shutdown) (the
/// [`TokenEvent::ShuttingDown`] event) or on [`Refresher::stop`]; refreshes in
/// progress are finished, never cut, and the manager's shutdown waits for
/// them as for any refresh.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use auth_core::testing::FakeProvider;
/// use auth_core::{Refresher, TokenManager};
/// use store_memory::MemoryTokenStore;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> auth_core::Result<()> {
/// let manager = TokenManager::builder(Arc::new(MemoryTokenStore::new()))
///     .provider(Arc::new(FakeProvider::new("fitbit")))
///     .build();
/// let refresher = Refresher::builder(manager.clone())
///     .lead(Duration::from_secs(10 * 60))
///     .max_concurrent(8)
///     .spawn();
///
/// // … the app runs …
///
/// manager.shutdown(Duration::from_secs(30)).await?;
/// refresher.stopped().await;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Refresher {
    shared: Arc<Shared>,
    stopped: watch::Receiver<bool>,
}

impl Refresher {
    /// Starts configuring a refresher for `manager`. If the lead is not
    /// longer than the manager's skew, the refresher uses twice the skew
    /// instead, with a warning.
    pub fn builder(manager: TokenManager) -> RefresherBuilder {
        RefresherBuilder {
            manager,
            config: Config {
                lead: DEFAULT_LEAD,
                jitter: DEFAULT_JITTER,
                max_concurrent: DEFAULT_MAX_CONCURRENT,
                per_provider: DEFAULT_PER_PROVIDER,
                backoff: CooldownPolicy::default(),
                provider_backoff: CooldownPolicy::default(),
                keep_alive: HashMap::new(),
                shard: Shard::all(),
            },
        }
    }

    /// Events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<RefresherEvent> {
        self.shared.events.subscribe()
    }

    /// Counters so far.
    pub fn stats(&self) -> RefresherStats {
        RefresherStats {
            scheduled: self.shared.scheduled.load(Ordering::SeqCst),
            running: self.shared.running.load(Ordering::SeqCst),
            peak_running: self.shared.peak_running.load(Ordering::SeqCst),
            refreshed: self.shared.refreshed.load(Ordering::SeqCst),
            failed: self.shared.failed.load(Ordering::SeqCst),
        }
    }

    /// Stops the refresher without shutting the manager down. Refreshes in
    /// progress finish; [`stopped`](Self::stopped) tells when.
    pub fn stop(&self) {
        self.shared.stop.notify_one();
    }

    /// Resolves once the refresher has stopped (after the manager's
    /// shutdown began, or [`stop`](Self::stop)) and its refreshes in
    /// progress have finished.
    pub async fn stopped(&self) {
        let mut stopped = self.stopped.clone();
        // An error means the task is gone, which is stopped too.
        let _ = stopped.wait_for(|done| *done).await;
    }
}

/// What the handle and the loop share.
#[derive(Debug)]
struct Shared {
    stop: Notify,
    events: broadcast::Sender<RefresherEvent>,
    scheduled: AtomicUsize,
    running: AtomicUsize,
    peak_running: AtomicUsize,
    refreshed: AtomicU64,
    failed: AtomicU64,
}

impl Shared {
    fn emit(&self, event: RefresherEvent) {
        // No subscribers is fine.
        let _ = self.events.send(event);
    }
}

/// What an entry of the schedule is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A live token: refresh ahead of its expiry.
    Live,
    /// A dormant grant: refresh once it has been idle for the keep-alive.
    KeepAlive,
    /// Unknown yet (a new login, a cleared flag): read it, refresh only if
    /// live and due, then plan it.
    Probe,
}

/// One scheduled key.
#[derive(Debug, Clone, Copy)]
struct Entry {
    due: Instant,
    kind: Kind,
    /// Failed attempts in a row.
    failures: u32,
}

/// Due keys by provider, each queue ordered by due time; and the index.
#[derive(Debug, Default)]
struct Schedule {
    entries: HashMap<TokenKey, Entry>,
    queues: HashMap<ProviderId, BTreeSet<(Instant, TokenKey)>>,
}

impl Schedule {
    fn insert(&mut self, key: TokenKey, entry: Entry) {
        self.remove(&key);
        self.queues
            .entry(key.provider.clone())
            .or_default()
            .insert((entry.due, key.clone()));
        self.entries.insert(key, entry);
    }

    fn remove(&mut self, key: &TokenKey) -> Option<Entry> {
        let entry = self.entries.remove(key)?;
        if let Some(queue) = self.queues.get_mut(&key.provider) {
            queue.remove(&(entry.due, key.clone()));
        }
        Some(entry)
    }

    fn len(&self) -> usize {
        self.entries.len()
    }
}

/// A provider's state in the loop.
#[derive(Debug, Default)]
struct ProviderState {
    running: usize,
    /// Failed background refreshes in a row.
    failures: u32,
    paused_until: Option<Instant>,
}

/// What a task of the loop reports.
enum Done {
    Refresh {
        key: TokenKey,
        kind: Kind,
        result: Result<Ahead>,
    },
    Scan(Vec<(TokenKey, TokenSet)>),
    /// An orphan poll's query answered with these keys.
    Orphans(Vec<TokenKey>),
    /// A takeover of a refresh left in flight finished.
    TakenOver(TokenKey),
}

/// The loop and its state; owned by one task.
struct Worker {
    manager: TokenManager,
    config: Arc<Config>,
    shared: Arc<Shared>,
    schedule: Schedule,
    /// Running keys, with their failures in a row before this attempt.
    running: HashMap<TokenKey, u32>,
    providers: HashMap<ProviderId, ProviderState>,
    tasks: JoinSet<Done>,
    /// The scan in progress, which `finish` cancels (a store that cannot
    /// list would keep it retrying forever).
    scan: Option<AbortHandle>,
    /// When the next orphan poll is due; `None` while one runs.
    orphan_poll: Option<Instant>,
    /// Keys whose takeover is running: the next poll leaves them to it,
    /// and a slow one holds up no other key.
    taking_over: HashSet<TokenKey>,
}

impl Worker {
    async fn run(mut self, mut events: broadcast::Receiver<TokenEvent>) {
        let skew = self.manager.skew();
        if self.config.lead <= skew {
            let lead = skew * 2;
            warn!(lead = ?self.config.lead, ?skew, "the refresher's lead is not longer than the manager's skew; using twice the skew");
            Arc::make_mut(&mut self.config).lead = lead;
        }
        self.start_scan();
        loop {
            if self.manager.is_shutting_down() {
                break;
            }
            self.dispatch();
            self.publish();
            let wake = self.next_wake();
            tokio::select! {
                biased;
                () = self.shared.stop.notified() => break,
                event = events.recv() => match event {
                    Ok(TokenEvent::ShuttingDown) | Err(broadcast::error::RecvError::Closed) => break,
                    Ok(event) => self.on_event(event),
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        warn!(missed, "the refresher missed manager events; scanning the store again");
                        self.start_scan();
                    }
                },
                Some(done) = self.tasks.join_next() => match done {
                    Ok(done) => self.on_done(done),
                    Err(err) if err.is_cancelled() => {}
                    Err(err) => warn!(error = %err, "a refresher task failed"),
                },
                () = sleep_until(self.orphan_poll) => self.poll_orphans(),
                () = sleep_until(wake) => {}
            }
        }
        self.finish().await;
    }

    /// Asks the store for refreshes left in flight; each is then taken
    /// over at once, through the manager (a replay, or the late-replay
    /// guard), in a task of its own.
    fn poll_orphans(&mut self) {
        self.orphan_poll = None;
        let manager = self.manager.clone();
        self.tasks.spawn(async move {
            match manager.store().orphaned(ORPHAN_BATCH).await {
                Ok(keys) => Done::Orphans(keys),
                Err(err) => {
                    warn!(error = %err, "the refresher cannot list refreshes left in flight");
                    Done::Orphans(Vec::new())
                }
            }
        });
    }

    /// Takes over each key the orphan poll found, unless its takeover is
    /// running already; the next poll comes [`ORPHAN_POLL`] after this
    /// one, however long the takeovers take.
    fn take_over(&mut self, keys: Vec<TokenKey>) {
        self.orphan_poll = Some(Instant::now() + ORPHAN_POLL);
        for key in keys {
            if !self.taking_over.insert(key.clone()) {
                continue;
            }
            let manager = self.manager.clone();
            self.tasks.spawn(async move {
                debug!(%key, "a refresh was left in flight; taking it over");
                // A replay paced a moment ago says when it may come again
                // (sooner than the next poll), and a store that failed
                // before anything was sent may answer in a moment: the
                // takeover comes back then rather than at the next poll.
                for _ in 0..TAKEOVER_TRIES {
                    match manager.take_over(&key).await {
                        Err(err) if err.store_kind().is_some() => {
                            tokio::time::sleep(TAKEOVER_STORE_RETRY).await;
                        }
                        Err(err) if err.retry_after().is_some_and(|d| d < ORPHAN_POLL) => {
                            tokio::time::sleep(err.retry_after().unwrap_or_default()).await;
                        }
                        Err(err) => {
                            debug!(%key, error = %err, "the refresh left in flight is not finished yet");
                            break;
                        }
                        Ok(_) => break,
                    }
                }
                Done::TakenOver(key)
            });
        }
    }

    /// Lets refreshes in progress finish (the manager starts no new one once
    /// shutting down), drops the rest, and says so.
    async fn finish(mut self) {
        if let Some(scan) = self.scan.take() {
            scan.abort();
        }
        while let Some(done) = self.tasks.join_next().await {
            if let Ok(Done::Refresh { key, kind, result }) = done {
                self.on_refreshed(key, kind, result);
            }
        }
        self.publish();
        info!("the token refresher stopped");
        self.shared.emit(RefresherEvent::Stopped);
    }

    /// Publishes the counters that live in the loop.
    fn publish(&self) {
        self.shared
            .scheduled
            .store(self.schedule.len(), Ordering::SeqCst);
        self.shared
            .running
            .store(self.running.len(), Ordering::SeqCst);
        self.shared
            .peak_running
            .fetch_max(self.running.len(), Ordering::SeqCst);
    }

    // ---- The scan -----------------------------------------------------------

    /// Reads every owned key once, in a task (retrying the listing until
    /// the store answers).
    fn start_scan(&mut self) {
        let manager = self.manager.clone();
        let shard = self.config.shard;
        if let Some(previous) = self.scan.take() {
            previous.abort();
        }
        let scan = self.tasks.spawn(async move {
            let keys = loop {
                match manager.list(None).await {
                    Ok(keys) => break keys,
                    Err(err) => {
                        warn!(error = %err, "the refresher cannot list the stored tokens; trying again in {}", crate::error::human_duration(SCAN_RETRY));
                        tokio::time::sleep(SCAN_RETRY).await;
                    }
                }
            };
            let store = Arc::clone(manager.store());
            let tokens = futures::stream::iter(keys.into_iter().filter(|k| shard.owns(k)))
                .map(|key| {
                    let store = Arc::clone(&store);
                    async move {
                        match store.load(&key).await {
                            Ok(Some(stored)) => stored.token.map(|token| (key, token)),
                            Ok(None) => None,
                            Err(err) => {
                                warn!(%key, error = %err, "the refresher cannot read this token; it is not scheduled");
                                None
                            }
                        }
                    }
                })
                .buffer_unordered(SCAN_CONCURRENCY)
                .filter_map(|found| async move { found })
                .collect::<Vec<_>>()
                .await;
            Done::Scan(tokens)
        });
        self.scan = Some(scan);
    }

    fn on_scan(&mut self, tokens: Vec<(TokenKey, TokenSet)>) {
        self.scan = None;
        for (key, token) in tokens {
            if self.running.contains_key(&key) {
                continue;
            }
            self.plan(key, &token, Kind::Live, 0);
        }
        let scheduled = self.schedule.len();
        info!(scheduled, "the token refresher scanned the store");
        self.shared.emit(RefresherEvent::Scanned { scheduled });
    }

    // ---- Planning -----------------------------------------------------------

    /// Puts `key` on the schedule for `token`, or takes it off if there is
    /// nothing to do. `kind` is what the key was (a keep-alive stays one
    /// after its refresh; anything else is live when valid).
    fn plan(&mut self, key: TokenKey, token: &TokenSet, kind: Kind, failures: u32) {
        // On the token's own time when this process just received it: a
        // host clock minutes fast must not make a new token due at once.
        let now = self.manager.token_now(&key, token);
        if token.reauthorization_required().is_some() || !self.refreshable(&key, token) {
            self.schedule.remove(&key);
            return;
        }
        let keep_alive = self.config.keep_alive.get(&key.provider).copied();
        let live = token.expires_at().is_some() && token.is_fresh(now, Duration::ZERO);
        let due = match (kind, live, keep_alive) {
            (Kind::KeepAlive, _, Some(idle)) | (_, false, Some(idle)) => {
                let due = token.issued_at()
                    + idle
                    + self.jitter_for(&key, token.issued_at(), self.config.jitter);
                Some((due, Kind::KeepAlive))
            }
            (_, true, _) => {
                let expires_at = token.expires_at().expect("live tokens have an expiry");
                let lifetime = expires_at.duration_since(token.issued_at()).ok();
                let (lead, jitter) = window(&self.config, lifetime);
                let ahead = lead + self.jitter_for(&key, expires_at, jitter);
                let due = expires_at.checked_sub(ahead).unwrap_or(now);
                Some((due, Kind::Live))
            }
            (_, false, None) => None,
        };
        match due {
            Some((due, kind)) => {
                let due = self.instant_at(due, now);
                self.schedule.insert(
                    key,
                    Entry {
                        due,
                        kind,
                        failures,
                    },
                );
            }
            None => {
                debug!(%key, "dormant token without a keep-alive; not scheduled");
                self.schedule.remove(&key);
            }
        }
    }

    /// Whether a refresh of `token` can succeed at all.
    fn refreshable(&self, key: &TokenKey, token: &TokenSet) -> bool {
        match self.manager.provider(&key.provider) {
            Some(provider) => token.refresh_token().is_some() || provider.can_mint(),
            None => false,
        }
    }

    /// This key's jitter for a due time computed from `anchor`: a
    /// deterministic fraction of the configured spread.
    fn jitter_for(&self, key: &TokenKey, anchor: SystemTime, spread: Duration) -> Duration {
        let salt = anchor
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(1, |d| d.as_secs() | 1);
        fraction(spread, key_hash(key, Some(salt)))
    }

    /// The loop's instant for the manager's wall-clock time `at`.
    fn instant_at(&self, at: SystemTime, now: SystemTime) -> Instant {
        let ahead = at.duration_since(now).unwrap_or_default().min(FAR);
        Instant::now() + ahead
    }

    // ---- Dispatch -----------------------------------------------------------

    /// How many refreshes `provider` may run at once now.
    fn provider_cap(&self, provider: &ProviderId) -> usize {
        match self.providers.get(provider) {
            Some(state) if state.failures > 0 => 1,
            _ => self.config.per_provider,
        }
    }

    /// Whether `provider` may start a refresh now, its pause and cap
    /// considered; `Err(until)` when paused.
    fn provider_open(
        &self,
        provider: &ProviderId,
        now: Instant,
    ) -> std::result::Result<bool, Instant> {
        let state = self.providers.get(provider);
        if let Some(until) = state.and_then(|s| s.paused_until)
            && until > now
        {
            return Err(until);
        }
        Ok(state.map_or(0, |s| s.running) < self.provider_cap(provider))
    }

    /// Starts due refreshes while the caps allow, earliest due first.
    fn dispatch(&mut self) {
        let now = Instant::now();
        while self.running.len() < self.config.max_concurrent {
            let next = self
                .schedule
                .queues
                .iter()
                .filter(|(provider, _)| self.provider_open(provider, now) == Ok(true))
                .filter_map(|(_, queue)| queue.first())
                .filter(|(due, _)| *due <= now)
                .min()
                .cloned();
            let Some((_, key)) = next else { break };
            let entry = self.schedule.remove(&key).expect("queued keys are indexed");
            self.start_refresh(key, entry);
        }
    }

    /// When the loop must look again, if nothing else wakes it: the
    /// earliest due time (or provider pause end) that the caps would let
    /// start. `None`: only an event or a finished task can change anything.
    fn next_wake(&self) -> Option<Instant> {
        if self.running.len() >= self.config.max_concurrent {
            return None;
        }
        let now = Instant::now();
        self.schedule
            .queues
            .iter()
            .filter_map(|(provider, queue)| {
                let (due, _) = queue.first()?;
                match self.provider_open(provider, now) {
                    Ok(true) => Some(*due),
                    Ok(false) => None,
                    Err(until) => Some((*due).max(until)),
                }
            })
            .min()
    }

    fn start_refresh(&mut self, key: TokenKey, entry: Entry) {
        self.providers
            .entry(key.provider.clone())
            .or_default()
            .running += 1;
        self.running.insert(key.clone(), entry.failures);
        let manager = self.manager.clone();
        let config = Arc::clone(&self.config);
        self.tasks.spawn(async move {
            let kind = entry.kind;
            let result = manager
                .refresh_if(&key, |token, now| is_due(&config, kind, &key, token, now))
                .await;
            Done::Refresh {
                key,
                kind: entry.kind,
                result,
            }
        });
    }

    // ---- Outcomes -----------------------------------------------------------

    fn on_done(&mut self, done: Done) {
        match done {
            Done::Scan(tokens) => self.on_scan(tokens),
            Done::Orphans(keys) => self.take_over(keys),
            Done::TakenOver(key) => {
                self.taking_over.remove(&key);
            }
            Done::Refresh { key, kind, result } => self.on_refreshed(key, kind, result),
        }
    }

    fn on_refreshed(&mut self, key: TokenKey, kind: Kind, result: Result<Ahead>) {
        let failures = self.running.remove(&key).unwrap_or(0);
        let state = self.providers.entry(key.provider.clone()).or_default();
        state.running = state.running.saturating_sub(1);
        match result {
            Ok(Ahead::NotDue(token)) => self.plan(key, &token, kind, 0),
            Ok(Ahead::Replaced(token)) => {
                if let Some(state) = self.providers.get_mut(&key.provider) {
                    state.failures = 0;
                    state.paused_until = None;
                }
                let keep_alive = kind == Kind::KeepAlive;
                telemetry::background_refresh(&key.provider, "ok");
                info!(%key, keep_alive, "refreshed ahead of expiry");
                self.shared.refreshed.fetch_add(1, Ordering::SeqCst);
                self.shared.emit(RefresherEvent::Refreshed {
                    key: key.clone(),
                    expires_at: token.expires_at(),
                    keep_alive,
                });
                self.plan(key.clone(), &token, kind, 0);
                self.not_sooner(&key, &token);
            }
            Err(err) => self.on_failure(key, kind, failures, &err),
        }
    }

    /// A key just replaced is not due again sooner than 1/16 of its new
    /// token's life (at least a second), whatever the clocks say: a token
    /// handed out before it is saved (a login's, kept in memory while its
    /// save is retried) is judged on a host clock that may be minutes
    /// fast, and must not be "due" again at the same instant.
    fn not_sooner(&mut self, key: &TokenKey, token: &TokenSet) {
        let life = token
            .expires_at()
            .and_then(|e| e.duration_since(token.issued_at()).ok())
            .unwrap_or_default();
        let floor = Instant::now() + (life / 16).max(Duration::from_secs(1));
        if let Some(mut entry) = self.schedule.entries.get(key).copied()
            && entry.due < floor
        {
            entry.due = floor;
            self.schedule.insert(key.clone(), entry);
        }
    }

    /// Backs the key off (and its provider, unless the store failed), or
    /// drops it when only a person can help.
    fn on_failure(&mut self, key: TokenKey, kind: Kind, failures: u32, err: &Error) {
        telemetry::background_refresh(&key.provider, err.class());
        self.shared.failed.fetch_add(1, Ordering::SeqCst);
        let permanent = err.is_reauthorization_required()
            || matches!(
                err,
                Error::ProviderRetired { .. } | Error::InvalidInput { .. }
            );
        if permanent {
            info!(%key, class = err.class(), error = %err, "dropped from the refresh schedule");
            self.schedule.remove(&key);
            self.shared.emit(RefresherEvent::Dropped {
                key,
                reason: err.to_string(),
            });
            return;
        }
        let now = Instant::now();
        // A store failure is not the provider's.
        if !matches!(err, Error::Store { .. }) {
            let state = self.providers.entry(key.provider.clone()).or_default();
            state.failures = state.failures.saturating_add(1);
            let pause = self.config.provider_backoff.delay(state.failures);
            let until = now + pause;
            state.paused_until = Some(state.paused_until.map_or(until, |u| u.max(until)));
        }
        let failures = failures.saturating_add(1);
        let backoff = self.config.backoff.delay(failures);
        let wait = backoff.max(err.retry_after().unwrap_or_default())
            + fraction(backoff / 4, key_hash(&key, Some(u64::from(failures))));
        let retry_at = self.manager.now() + wait;
        warn!(%key, class = err.class(), error = %err, failures, "background refresh failed; next try in {}", crate::error::human_duration(wait));
        self.shared.emit(RefresherEvent::Failed {
            key: key.clone(),
            class: err.class(),
            reason: err.to_string(),
            retry_at,
        });
        self.schedule.insert(
            key,
            Entry {
                due: now + wait,
                kind,
                failures,
            },
        );
    }

    // ---- Manager events -----------------------------------------------------

    fn on_event(&mut self, event: TokenEvent) {
        let key = match &event {
            TokenEvent::Authorized { key }
            | TokenEvent::Refreshed { key, .. }
            | TokenEvent::ReauthorizationRequired { key, .. }
            | TokenEvent::Revoked { key }
            | TokenEvent::Removed { key }
            | TokenEvent::RefreshFailed { key, .. }
            | TokenEvent::ReauthorizationCleared { key } => key.clone(),
            _ => return,
        };
        // A running key's own outcome reschedules it.
        if self.running.contains_key(&key) || !self.config.shard.owns(&key) {
            return;
        }
        match event {
            TokenEvent::Refreshed { expires_at, .. } => {
                // A caller refreshed it: live from now on.
                let now = self.manager.now();
                match expires_at.filter(|&at| at > now) {
                    Some(expires_at) => {
                        // Just refreshed: what is left is about its lifetime.
                        let lifetime = expires_at.duration_since(now).ok();
                        let (lead, jitter) = window(&self.config, lifetime);
                        let ahead = lead + self.jitter_for(&key, expires_at, jitter);
                        let due =
                            self.instant_at(expires_at.checked_sub(ahead).unwrap_or(now), now);
                        self.schedule.insert(
                            key,
                            Entry {
                                due,
                                kind: Kind::Live,
                                failures: 0,
                            },
                        );
                    }
                    None => self.probe(key),
                }
            }
            TokenEvent::Authorized { .. } | TokenEvent::ReauthorizationCleared { .. } => {
                self.probe(key);
            }
            TokenEvent::RefreshFailed { retry_at, .. } => {
                let now = self.manager.now();
                let not_before = self.instant_at(retry_at, now);
                if let Some(mut entry) = self.schedule.entries.get(&key).copied()
                    && entry.due < not_before
                {
                    entry.due = not_before;
                    self.schedule.insert(key, entry);
                }
            }
            _ => {
                self.schedule.remove(&key);
            }
        }
    }

    /// Schedules a read of `key` now, to plan it from what is stored.
    fn probe(&mut self, key: TokenKey) {
        self.schedule.insert(
            key,
            Entry {
                due: Instant::now(),
                kind: Kind::Probe,
                failures: 0,
            },
        );
    }
}

/// Whether `token` is due for `kind` at `now` (run inside the manager's
/// [`refresh_if`](TokenManager::refresh_if), on the freshest token it has).
fn is_due(config: &Config, kind: Kind, key: &TokenKey, token: &TokenSet, now: SystemTime) -> bool {
    // The lead plus the whole jitter: an entry jittered early is due when
    // it comes up.
    let lifetime = token
        .expires_at()
        .and_then(|at| at.duration_since(token.issued_at()).ok());
    let (lead, jitter) = window(config, lifetime);
    let due_live = token.expires_at().is_some() && !token.is_fresh(now, lead + jitter);
    match kind {
        Kind::Live => due_live,
        // A probe refreshes only what is live and due; a dormant token is
        // planned, not refreshed.
        Kind::Probe => due_live && token.is_fresh(now, Duration::ZERO),
        Kind::KeepAlive => config
            .keep_alive
            .get(&key.provider)
            .is_some_and(|idle| token.issued_at() + *idle <= now),
    }
}

/// The lead and the jitter spread for a token that lives `lifetime`: the
/// configured ones, but for a token too short-lived for them, a lead of 7/8
/// of its life and a spread of 1/16. The manager caps its skew at 3/4 of a
/// token's life, so this still comes before any caller would refresh, and a
/// new token is never due the moment it arrives (no refresh loop).
fn window(config: &Config, lifetime: Option<Duration>) -> (Duration, Duration) {
    match lifetime {
        Some(life) => (config.lead.min(life / 8 * 7), config.jitter.min(life / 16)),
        None => (config.lead, config.jitter),
    }
}

/// Sleeps until `at`, or forever.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
