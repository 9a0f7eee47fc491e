//! [`TokenManagerBuilder`].

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use tokio::sync::broadcast;
use tracing::warn;

use super::cache::Cache;
use super::flight::Tasks;
use super::unsaved::UnsavedMap;
use super::{CooldownPolicy, Inner, RetryPolicy, TokenManager};
use crate::clock::Clock;
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
/// timeouts and `Retry-After` waits); below [`DEFAULT_LOCK_WAIT`], so a
/// lease is held for less time than others wait for it.
pub const DEFAULT_REFRESH_DEADLINE: Duration = Duration::from_secs(20);
/// The default time a new token that could not be saved keeps being
/// retried, under the lease, before the failure is reported.
pub const DEFAULT_SAVE_RETRY_FOR: Duration = Duration::from_secs(5 * 60);
/// The default number of cached tokens (and tombstones) kept in memory.
pub const DEFAULT_CACHE_CAPACITY: usize = 100_000;

/// Builds a [`TokenManager`].
#[derive(Debug)]
pub struct TokenManagerBuilder {
    store: Arc<dyn TokenStore>,
    providers: super::Providers,
    clock: Option<Arc<dyn Clock>>,
    skew: Duration,
    lock_wait: Duration,
    retry: RetryPolicy,
    cooldown: CooldownPolicy,
    refresh_deadline: Duration,
    save_retry_for: Duration,
    cache_capacity: usize,
    event_capacity: usize,
    pending_max_age: Duration,
}

impl TokenManagerBuilder {
    pub(super) fn new(store: Arc<dyn TokenStore>) -> Self {
        Self {
            store,
            providers: super::Providers::default(),
            clock: None,
            skew: DEFAULT_SKEW,
            lock_wait: DEFAULT_LOCK_WAIT,
            retry: RetryPolicy::default(),
            cooldown: CooldownPolicy::default(),
            refresh_deadline: DEFAULT_REFRESH_DEADLINE,
            save_retry_for: DEFAULT_SAVE_RETRY_FOR,
            cache_capacity: DEFAULT_CACHE_CAPACITY,
            event_capacity: 256,
            pending_max_age: DEFAULT_PENDING_MAX_AGE,
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
        self.skew = skew;
        self
    }

    /// Waits at most this long for a store key lock (default 30 seconds).
    /// Keep it longer than the [refresh deadline](Self::refresh_deadline),
    /// so that a waiter outlasts a refresh in progress elsewhere.
    #[must_use]
    pub fn lock_wait(mut self, wait: Duration) -> Self {
        self.lock_wait = wait;
        self
    }

    /// Bounds the provider phase of one refresh: every attempt, timeout and
    /// `Retry-After` wait (default 20 seconds, below the default lock wait).
    #[must_use]
    pub fn refresh_deadline(mut self, deadline: Duration) -> Self {
        self.refresh_deadline = deadline;
        self
    }

    /// How long a new token that could not be saved keeps being retried
    /// under the lease before the failure is logged at error level and a
    /// [`TokenEvent::SaveFailed`](super::TokenEvent::SaveFailed) is sent
    /// (default 5 minutes). The token stays in memory after that too.
    #[must_use]
    pub fn save_retry_for(mut self, duration: Duration) -> Self {
        self.save_retry_for = duration;
        self
    }

    /// How long a key waits before its next refresh attempt after transient
    /// failures (default 15 seconds, doubling to 10 minutes).
    #[must_use]
    pub fn cooldown_policy(mut self, cooldown: CooldownPolicy) -> Self {
        self.cooldown = cooldown;
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
        self.retry = retry;
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
        self.pending_max_age = max_age;
        self
    }

    /// Builds the manager.
    pub fn build(self) -> TokenManager {
        if self.refresh_deadline >= self.lock_wait {
            warn!(
                refresh_deadline = ?self.refresh_deadline,
                lock_wait = ?self.lock_wait,
                "the refresh deadline is not shorter than the lock wait: callers may give up on \
                 a lease whose holder is still refreshing"
            );
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
                tasks: Arc::new(Tasks::default()),
                closing: AtomicBool::new(false),
                events,
                telemetry,
                clock: self.clock,
                skew: self.skew,
                lock_wait: self.lock_wait,
                retry: self.retry,
                cooldown: self.cooldown,
                refresh_deadline: self.refresh_deadline,
                save_retry_for: self.save_retry_for,
                pending_max_age: self.pending_max_age,
            }),
        }
    }
}
