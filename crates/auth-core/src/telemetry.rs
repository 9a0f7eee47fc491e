//! What the manager and the refresher measure, on the [`metrics`] facade
//! (feature `metrics`), and the names they measure it under.
//!
//! Labels are `provider` and `class` (an [`Error::class`](crate::Error::class)
//! name, or `ok`) and nothing else: never an account id (cardinality and
//! privacy) and never anything taken from a token. Without the feature every
//! recording function is an empty inline function, so the hot path pays
//! nothing; with it, a cache hit costs one map lookup by provider and one
//! atomic add on a handle registered when the manager was built.
//!
//! Handles are registered when the [`TokenManager`](crate::TokenManager) is
//! built, as the `metrics` crate recommends: install the recorder (exporter)
//! before building the manager, or the cache counters stay no-ops.
//!
//! [`metrics`]: https://docs.rs/metrics

use std::time::Duration;

use crate::id::ProviderId;

/// Counter: refresh requests that reached a provider, labelled `provider` and
/// `class` (`ok`, or the error's class such as `transient`).
pub const REFRESHES: &str = "token_keeper_refreshes_total";
/// Histogram, seconds: how long one refresh at the provider took, retries of
/// an unknown outcome included; labelled `provider` and `class`.
pub const REFRESH_SECONDS: &str = "token_keeper_refresh_seconds";
/// Histogram, seconds: how long a refresh waited for the key's lease;
/// labelled `provider`.
pub const LEASE_WAIT_SECONDS: &str = "token_keeper_lease_wait_seconds";
/// Counter: `access_token` calls answered from the cache; labelled
/// `provider`.
pub const CACHE_HITS: &str = "token_keeper_cache_hits_total";
/// Counter: `access_token` calls that had to go past the cache (a store
/// read, a refresh, or waiting for one); labelled `provider`.
pub const CACHE_MISSES: &str = "token_keeper_cache_misses_total";
/// Counter: grants refused by the provider, so that the account needs a new
/// login; labelled `provider`.
pub const REAUTHORIZATIONS: &str = "token_keeper_reauthorizations_total";
/// Counter: background refreshes started by a [`Refresher`](crate::Refresher),
/// labelled `provider` and `class` (`ok`, or the error's class).
pub const BACKGROUND_REFRESHES: &str = "token_keeper_background_refreshes_total";

/// The hot-path handles, registered per provider when the manager is built.
pub(crate) struct Telemetry {
    #[cfg(feature = "metrics")]
    cache: std::collections::HashMap<ProviderId, (metrics::Counter, metrics::Counter)>,
}

impl Telemetry {
    /// Registers the cache counters of `providers`.
    pub(crate) fn new<'a>(providers: impl Iterator<Item = &'a ProviderId>) -> Self {
        #[cfg(feature = "metrics")]
        {
            let cache = providers
                .map(|id| {
                    let label = id.to_string();
                    let hits = metrics::counter!(CACHE_HITS, "provider" => label.clone());
                    let misses = metrics::counter!(CACHE_MISSES, "provider" => label);
                    (id.clone(), (hits, misses))
                })
                .collect();
            Self { cache }
        }
        #[cfg(not(feature = "metrics"))]
        {
            let _ = providers;
            Self {}
        }
    }

    /// An `access_token` call answered from the cache.
    #[inline]
    pub(crate) fn cache_hit(&self, provider: &ProviderId) {
        #[cfg(feature = "metrics")]
        if let Some((hits, _)) = self.cache.get(provider) {
            hits.increment(1);
        }
        #[cfg(not(feature = "metrics"))]
        let _ = provider;
    }

    /// An `access_token` call that went past the cache.
    #[inline]
    pub(crate) fn cache_miss(&self, provider: &ProviderId) {
        #[cfg(feature = "metrics")]
        if let Some((_, misses)) = self.cache.get(provider) {
            misses.increment(1);
        }
        #[cfg(not(feature = "metrics"))]
        let _ = provider;
    }
}

/// Times a refresh for [`refresh`]. It reads the clock only when the
/// `metrics` feature is on: nothing else uses the time, and a clock read
/// costs tens of nanoseconds on a virtual machine.
pub(crate) struct Stopwatch {
    #[cfg(feature = "metrics")]
    started: tokio::time::Instant,
}

impl Stopwatch {
    /// Starts timing.
    #[inline]
    pub(crate) fn start() -> Self {
        Self {
            #[cfg(feature = "metrics")]
            started: tokio::time::Instant::now(),
        }
    }

    /// The time since [`start`](Self::start); zero without the `metrics`
    /// feature.
    #[inline]
    pub(crate) fn elapsed(&self) -> Duration {
        #[cfg(feature = "metrics")]
        let elapsed = self.started.elapsed();
        #[cfg(not(feature = "metrics"))]
        let elapsed = Duration::ZERO;
        elapsed
    }
}

/// One refresh at the provider ended with `class` after `latency`.
#[inline]
pub(crate) fn refresh(provider: &ProviderId, class: &'static str, latency: Duration) {
    #[cfg(feature = "metrics")]
    {
        let provider = provider.to_string();
        metrics::counter!(REFRESHES, "provider" => provider.clone(), "class" => class).increment(1);
        metrics::histogram!(REFRESH_SECONDS, "provider" => provider, "class" => class)
            .record(latency.as_secs_f64());
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (provider, class, latency);
}

/// A refresh waited `waited` for its key's lease.
#[inline]
pub(crate) fn lease_wait(provider: &ProviderId, waited: Duration) {
    #[cfg(feature = "metrics")]
    metrics::histogram!(LEASE_WAIT_SECONDS, "provider" => provider.to_string())
        .record(waited.as_secs_f64());
    #[cfg(not(feature = "metrics"))]
    let _ = (provider, waited);
}

/// The provider refused a grant: the account needs a new login.
#[inline]
pub(crate) fn reauthorization(provider: &ProviderId) {
    #[cfg(feature = "metrics")]
    metrics::counter!(REAUTHORIZATIONS, "provider" => provider.to_string()).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = provider;
}

/// A background refresh by the refresher ended with `class`.
#[inline]
pub(crate) fn background_refresh(provider: &ProviderId, class: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!(BACKGROUND_REFRESHES, "provider" => provider.to_string(), "class" => class)
        .increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = (provider, class);
}
