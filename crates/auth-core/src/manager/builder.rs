//! [`TokenManagerBuilder`].

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio_util::task::TaskTracker;
use tracing::warn;

use super::cache::Cache;
use super::driver::{Guards, MARGIN, UnsavedMap};
use super::received::Received;
use super::{Config, CooldownPolicy, Inner, RetryPolicy, TokenManager};
use crate::clock::Clock;
use crate::error::human_duration;
use crate::provider::TokenProvider;
use crate::store::TokenStore;
use crate::telemetry::Telemetry;

/// The default refresh skew: tokens expiring within it are refreshed.
pub const DEFAULT_SKEW: Duration = Duration::from_secs(5 * 60);
/// The default age beyond which a pending authorization is refused.
pub const DEFAULT_PENDING_MAX_AGE: Duration = Duration::from_secs(60 * 60);
/// The default bound on waiting for a store key lock.
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(30);
/// The default bound on the provider phase of one refresh (all attempts,
/// timeouts and `Retry-After` waits): room for two attempts of
/// [`DEFAULT_ATTEMPT_TIMEOUT`] and a pause, so a slow answer gets one
/// retry; below [`DEFAULT_LOCK_WAIT`], so a lease is held for less time
/// than others wait for it.
pub const DEFAULT_REFRESH_DEADLINE: Duration = Duration::from_secs(20);
/// The default bound on one refresh request. With the 2-second margin it
/// fits a 10-second lease (Postgres's default), which every request must
/// not outlive.
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(8);
/// The default number of holders in a row that may fail (die, pause, lose
/// their lease) and still leave time to replay inside a provider's window.
pub const DEFAULT_SURVIVED_FAILURES: u32 = 2;
/// The default number of cached tokens (and tombstones) kept in memory.
pub const DEFAULT_CACHE_CAPACITY: usize = 100_000;

/// Builds a [`TokenManager`].
#[derive(Debug)]
pub struct TokenManagerBuilder {
    store: Arc<dyn TokenStore>,
    providers: super::Providers,
    clock: Option<Arc<dyn Clock>>,
    /// What the manager is built with for the driver to read.
    config: Config,
    survived_failures: u32,
    cache_capacity: usize,
    event_capacity: usize,
}

impl TokenManagerBuilder {
    pub(super) fn new(store: Arc<dyn TokenStore>) -> Self {
        Self {
            store,
            providers: super::Providers::default(),
            clock: None,
            config: Config {
                skew: DEFAULT_SKEW,
                lock_wait: DEFAULT_LOCK_WAIT,
                retry: RetryPolicy::default(),
                cooldown: CooldownPolicy::default(),
                refresh_deadline: DEFAULT_REFRESH_DEADLINE,
                attempt_timeout: DEFAULT_ATTEMPT_TIMEOUT,
                pending_max_age: DEFAULT_PENDING_MAX_AGE,
            },
            survived_failures: DEFAULT_SURVIVED_FAILURES,
            cache_capacity: DEFAULT_CACHE_CAPACITY,
            event_capacity: 256,
        }
    }

    /// Registers a provider under its id. A later provider with the same id
    /// replaces the earlier one.
    #[must_use]
    pub fn provider(mut self, provider: Arc<dyn TokenProvider>) -> Self {
        let id = provider.id().clone();
        if self.providers.insert(id.clone(), provider).is_some() {
            warn!(provider = %id, "provider registered twice; the later one wins");
        }
        self
    }

    /// Refreshes tokens that expire within `skew` (default 5 minutes).
    #[must_use]
    pub fn refresh_skew(mut self, skew: Duration) -> Self {
        self.config.skew = skew;
        self
    }

    /// Waits at most this long for a store key lock (default 30 seconds).
    /// Keep it longer than the [refresh deadline](Self::refresh_deadline),
    /// so that a waiter outlasts a refresh in progress elsewhere.
    #[must_use]
    pub fn lock_wait(mut self, wait: Duration) -> Self {
        self.config.lock_wait = wait;
        self
    }

    /// Bounds the provider phase of one refresh: every attempt, timeout and
    /// `Retry-After` wait (default 20 seconds, below the default lock wait).
    #[must_use]
    pub fn refresh_deadline(mut self, deadline: Duration) -> Self {
        self.config.refresh_deadline = deadline;
        self
    }

    /// Bounds one refresh request (default 8 seconds). Keep it below the
    /// store's lease TTL minus 2 seconds, and at most half the refresh
    /// deadline; `build` warns otherwise.
    #[must_use]
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.config.attempt_timeout = timeout;
        self
    }

    /// How many holders in a row may fail (die, pause past their lease)
    /// and still leave a replay inside each provider's window (default 2);
    /// `build` warns about providers whose window is too short for it.
    #[must_use]
    pub fn survive_holder_failures(mut self, failures: u32) -> Self {
        self.survived_failures = failures;
        self
    }

    /// How long a key waits before its next refresh attempt after transient
    /// failures (default 15 seconds, doubling to 10 minutes).
    #[must_use]
    pub fn cooldown_policy(mut self, cooldown: CooldownPolicy) -> Self {
        self.config.cooldown = cooldown;
        self
    }

    /// How many tokens the in-memory cache keeps at most (default
    /// 100,000); beyond it, expired and then arbitrary entries are dropped
    /// (the store still has them).
    #[must_use]
    pub fn cache_capacity(mut self, capacity: usize) -> Self {
        self.cache_capacity = capacity.max(1);
        self
    }

    /// How transient refresh failures are retried.
    #[must_use]
    pub fn retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.config.retry = retry;
        self
    }

    /// Reads time from `clock` instead of the system clock (for tests).
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// How many events a slow subscriber may lag behind (default 256).
    #[must_use]
    pub fn event_capacity(mut self, capacity: usize) -> Self {
        self.event_capacity = capacity.max(1);
        self
    }

    /// Refuses callbacks for authorizations started longer ago than this
    /// (default 1 hour; providers' codes live minutes, so an older one is a
    /// stale or replayed browser tab).
    #[must_use]
    pub fn pending_max_age(mut self, max_age: Duration) -> Self {
        self.config.pending_max_age = max_age;
        self
    }

    /// What [`build`](Self::build) would warn about: each parameter that
    /// cannot keep the protocol's promises, in words. Empty when all is
    /// well.
    pub fn parameter_warnings(&self) -> Vec<String> {
        let c = &self.config;
        let mut warnings = Vec::new();
        if c.refresh_deadline >= c.lock_wait {
            warnings.push(format!(
                "the refresh deadline ({}) is not shorter than the lock wait ({}): callers may \
                 give up on a lease whose holder is still refreshing",
                human_duration(c.refresh_deadline),
                human_duration(c.lock_wait)
            ));
        }
        let two_attempts = c.attempt_timeout * 2 + c.retry.initial_backoff;
        if c.refresh_deadline < two_attempts && c.retry.max_attempts > 1 {
            warnings.push(format!(
                "the refresh deadline ({}) leaves no room for a retry after a slow answer: it \
                 should be at least twice the attempt timeout ({}) plus the first back-off",
                human_duration(c.refresh_deadline),
                human_duration(c.attempt_timeout)
            ));
        }
        let ttl = self.store.lease_ttl();
        if let Some(ttl) = ttl
            && ttl < c.attempt_timeout + super::decision::lease_margin(ttl, MARGIN)
        {
            warnings.push(format!(
                "the store's lease TTL ({}) is shorter than the attempt timeout ({}) plus a \
                 margin of {}: a request may outlive its lease (each attempt is cut to fit it)",
                human_duration(ttl),
                human_duration(c.attempt_timeout),
                human_duration(super::decision::lease_margin(ttl, MARGIN))
            ));
        }
        let mut ids: Vec<_> = self.providers.keys().collect();
        ids.sort();
        for id in ids {
            let rules = self.providers[id].refresh_rules();
            if let Some(window) = rules.replay_window().filter(|_| rules.rotates()) {
                let needed = ttl.unwrap_or_default() * self.survived_failures + c.refresh_deadline;
                if window <= needed {
                    warnings.push(format!(
                        "provider {id}'s replay window ({}) is not longer than {} holder \
                         failure(s) x the lease TTL ({}) + the refresh deadline ({}): a refresh \
                         left in flight by that many failures in a row cannot be replayed in time",
                        human_duration(window),
                        self.survived_failures,
                        human_duration(ttl.unwrap_or_default()),
                        human_duration(c.refresh_deadline)
                    ));
                }
            }
        }
        warnings
    }

    /// Builds the manager, warning about parameters that cannot keep the
    /// protocol's promises (see [`attempt_timeout`](Self::attempt_timeout)
    /// and [`survive_holder_failures`](Self::survive_holder_failures)).
    pub fn build(self) -> TokenManager {
        for warning in self.parameter_warnings() {
            warn!("{warning}");
        }
        let (events, _) = broadcast::channel(self.event_capacity);
        let telemetry = Telemetry::new(self.providers.keys());
        TokenManager {
            inner: Arc::new(Inner {
                providers: self.providers,
                store: self.store,
                cache: Cache::new(self.cache_capacity),
                flights: Arc::default(),
                unsaved: UnsavedMap::default(),
                guards: Guards::default(),
                received: Received::default(),
                tasks: TaskTracker::new(),
                closing: AtomicBool::new(false),
                events,
                telemetry,
                clock: self.clock,
                config: self.config,
            }),
        }
    }
}
