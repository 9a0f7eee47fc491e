//! [`TokenManagerBuilder`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::broadcast;
use tracing::warn;

use super::{Inner, RetryPolicy, TokenManager};
use crate::clock::Clock;
use crate::provider::TokenProvider;
use crate::store::TokenStore;

/// The default refresh skew: tokens expiring within it are refreshed.
pub const DEFAULT_SKEW: Duration = Duration::from_secs(5 * 60);
/// The default age beyond which a pending authorization is refused.
pub const DEFAULT_PENDING_MAX_AGE: Duration = Duration::from_secs(60 * 60);
/// The default bound on waiting for a store key lock.
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(30);

/// Builds a [`TokenManager`].
#[derive(Debug)]
pub struct TokenManagerBuilder {
    store: Arc<dyn TokenStore>,
    providers: HashMap<crate::ProviderId, Arc<dyn TokenProvider>>,
    clock: Option<Arc<dyn Clock>>,
    skew: Duration,
    lock_wait: Duration,
    retry: RetryPolicy,
    event_capacity: usize,
    pending_max_age: Duration,
}

impl TokenManagerBuilder {
    pub(super) fn new(store: Arc<dyn TokenStore>) -> Self {
        Self {
            store,
            providers: HashMap::new(),
            clock: None,
            skew: DEFAULT_SKEW,
            lock_wait: DEFAULT_LOCK_WAIT,
            retry: RetryPolicy::default(),
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
    #[must_use]
    pub fn lock_wait(mut self, wait: Duration) -> Self {
        self.lock_wait = wait;
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
        let (events, _) = broadcast::channel(self.event_capacity);
        TokenManager {
            inner: Arc::new(Inner {
                providers: self.providers,
                store: self.store,
                cache: RwLock::new(HashMap::new()),
                flights: Mutex::new(HashMap::new()),
                events,
                clock: self.clock,
                skew: self.skew,
                lock_wait: self.lock_wait,
                retry: self.retry,
                pending_max_age: self.pending_max_age,
            }),
        }
    }
}
