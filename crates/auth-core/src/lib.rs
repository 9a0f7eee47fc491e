//! Keep OAuth 2.0 tokens alive for many users across many providers, without
//! ever burning a single-use refresh token.
//!
//! This crate holds the traits and types every other crate of the workspace
//! shares, and the [`TokenManager`] that refreshes tokens safely. It does no
//! HTTP and touches no filesystem: providers ([`TokenProvider`]) and stores
//! ([`TokenStore`]) plug in from other crates, or from your own code.
//!
//! # Why a manager
//!
//! Some providers (Fitbit among them) issue refresh tokens that can be used
//! **once**. Two refreshes racing, in one process or in two, burn the user's
//! grant and force them to log in again. The [`TokenManager`] refreshes each
//! account at most once at a time: in-process through a single flight per
//! key, across processes through the store's key lock, and it saves the new
//! pair with compare-and-swap before anyone gets to use it.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use std::time::{Duration, SystemTime};
//! use auth_core::testing::FakeProvider;
//! use auth_core::{TokenKey, TokenManager, TokenSet, TokenStore};
//! use store_memory::MemoryTokenStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> auth_core::Result<()> {
//! let store = MemoryTokenStore::new();
//! let provider = Arc::new(FakeProvider::new("fitbit"));
//! let manager = TokenManager::builder(Arc::new(store.clone()))
//!     .provider(provider.clone())
//!     .build();
//!
//! // A token that expired an hour ago.
//! let key = TokenKey::parse("fitbit", "26FWFL")?;
//! let issued = SystemTime::now() - Duration::from_secs(7200);
//! let old = TokenSet::new("old-access", "Bearer", issued)
//!     .with_refresh_token("old-refresh")
//!     .with_expires_in(Duration::from_secs(3600));
//! store.save(&key, &old, None).await?;
//!
//! // The manager refreshes it once, saves the new pair, and hands it out.
//! let token = manager.access_token(&key).await?;
//! assert_ne!(token.secret(), "old-access");
//! assert_eq!(provider.refresh_calls(), 1);
//! # Ok(())
//! # }
//! ```
//!
//! # Background refresh
//!
//! A [`Refresher`], spawned next to the manager, refreshes tokens a lead
//! time before they expire, through the same protocol, so callers of
//! [`TokenManager::access_token`] find a fresh token in the cache. It scans
//! the store once and then follows the manager's [`TokenEvent`]s; it caps
//! its concurrency overall and per provider, backs off per key and per
//! provider, can keep dormant non-rotating grants alive, splits the accounts
//! between hosts by [`Shard`], and stops with [`TokenManager::shutdown`].
//!
//! # Where this departs from the first design, and why
//!
//! - **An abandoned refresh is finished, not cancelled.** The single flight
//!   is led by its first caller, but a refresh abandoned between the server
//!   rotating the token and the new pair being saved is exactly how grants
//!   get burned. So a caller dropped mid-flight hands the flight to a
//!   spawned task, and the manager needs a Tokio runtime. (Spawning every
//!   refresh was simpler but cost about 90 µs of thread hand-offs per
//!   refresh on loopback.)
//! - **The reauthorization flag and the refresh cooldown live in the stored
//!   [`TokenSet`]** ([`TokenSet::reauthorization_required`],
//!   [`TokenSet::refresh_cooldown`]), not in the manager's memory, so every
//!   process sharing the store sees them: none sends a dead refresh token
//!   again, and an outage costs one attempt per cooldown across all of them,
//!   each `authctl` run included.
//! - **A rotated pair that cannot be saved is kept, not dropped.** The
//!   design said "save before anyone uses it". A full disk or a dead
//!   database at that moment would then lose the only copy of the new pair,
//!   so the pair stays in memory, its save is retried under the lease, and
//!   only providers whose replay window survives use of the new access
//!   token ([`TokenProvider::use_ends_replay_window`]) get it handed out
//!   before the save lands.
//! - **`force_refresh` takes the rejected token.** "Refresh unless someone
//!   else did" needs to know *which* token was rejected: a version seen by
//!   this process's cache is not enough on a cold cache or across processes.
//!   With the rejected access token, a hundred late 401s cause one refresh.
//!   [`TokenManager::refresh`] is the command-line form: replace whatever is
//!   current.
//! - **Leases can be lost, and writes are fenced.** A lock file can be
//!   deleted, a lease row can expire, a database session can die. So
//!   [`KeyLock::check`] says whether a lease is still held, the manager
//!   knows it is held before every refresh request, and it writes only
//!   through [`TokenStore::save_leased`], which a store can make atomic with
//!   the lease check. The first request follows the leased read
//!   ([`TokenStore::load_leased`]), which checked the lease in the same
//!   step with nothing awaited since, so only a retry, after its pause,
//!   calls `check` again: a store round trip less per refresh than the
//!   design's "check before every send".
//! - **The refresh has a deadline shorter than the lock wait**
//!   ([`DEFAULT_REFRESH_DEADLINE`] 20 s against [`DEFAULT_LOCK_WAIT`]
//!   30 s), covering every attempt and `Retry-After` wait, so that a lease
//!   is held for less time than others wait for it. A waiter that still
//!   times out serves a valid stored token, and never refreshes without the
//!   lease.
//! - **The cache is sharded and only moves forward.** A single
//!   `RwLock<HashMap>` does not scale past one core (every reader writes the
//!   lock's counter), so the cache has 64 shards, each behind a lock whose
//!   readers count themselves on a cache line of their thread's (a
//!   `crossbeam` `ShardedLock`): threads serving different users write
//!   nothing in common on the hot path. Entries carry the store version they were read at, and a removal
//!   leaves a tombstone, so a flight that read before a logout or a revoke
//!   cannot bring the old token back. It is bounded
//!   ([`TokenManagerBuilder::cache_capacity`]).
//! - **Every writer of a key holds its lease**: refresh, login, revoke,
//!   logout and [`TokenManager::clear_reauthorization`]. A login whose
//!   account is known takes the lease before exchanging the code, so a busy
//!   lease costs nothing; an exchanged token whose save fails is kept and
//!   retried like a rotated pair.
//! - **Only `invalid_grant` flags an account.** Answers that may be about
//!   the client (`invalid_token` from a token endpoint, Google's
//!   `UNAUTHENTICATED`) are [`Error::Configuration`]: flagging on them would
//!   flag every account of a misconfigured client at once.
//! - **[`TokenManager::shutdown`]** waits, bounded, for refreshes and saves
//!   in progress, so a process that exits (or gets Ctrl-C) never cuts a
//!   refresh between the server's answer and the save.
//! - **Two more error variants**: [`Error::InvalidInput`] (a bad id, an
//!   unknown provider, a callback whose state does not match) and
//!   [`Error::AuthorizationDenied`] (the user clicked deny). Neither fits the
//!   server-side classes, and an app reacts to each differently.
//! - **[`Error`] is `Clone`** (sources are `Arc`ed), because one refresh
//!   result is handed to every caller that waited on it.
//! - **`exchange_code` takes references** and the manager checks the
//!   callback's error and state before calling it; providers check again
//!   (and check `iss`), so a provider used on its own is safe too.
//!
//! # Feature flags
//!
//! - `conformance`: the `conformance` module, the suite every [`TokenStore`]
//!   should pass.
//! - `testing`: the `testing` module with `FakeProvider`, a scriptable
//!   provider for tests.
//! - `metrics`: counters and histograms on the [`metrics`] facade, named in
//!   the [`telemetry`] module: refreshes by provider and outcome class,
//!   refresh latency, lease waits, cache hits and misses, reauthorizations,
//!   background refreshes. Labels are the provider and the class, never the
//!   account. Install the recorder before building the manager. Without the
//!   feature, nothing is recorded and the hot path pays nothing.
//!
//! [`metrics`]: https://docs.rs/metrics

mod authorization;
mod clock;
mod error;
mod id;
mod introspection;
mod manager;
mod provider;
pub mod redact;
mod refresher;
mod resource;
mod store;
pub mod telemetry;
mod token;

#[cfg(feature = "conformance")]
pub mod conformance;
#[cfg(feature = "testing")]
pub mod testing;

pub use authorization::{AuthorizeRequest, Callback, PendingAuthorization};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{Error, Result, Sent, Source, StoreErrorKind, human_duration};
pub use id::{AccountId, MAX_ID_LEN, ProviderId, TokenKey};
pub use introspection::{GrantedScope, Introspection};
pub use manager::{
    Cleared, CooldownPolicy, DEFAULT_ATTEMPT_TIMEOUT, DEFAULT_CACHE_CAPACITY, DEFAULT_LOCK_WAIT,
    DEFAULT_PENDING_MAX_AGE, DEFAULT_REFRESH_DEADLINE, DEFAULT_SKEW, DEFAULT_SURVIVED_FAILURES,
    RetryPolicy, TokenEvent, TokenManager, TokenManagerBuilder,
};
pub use provider::{RefreshRules, TokenProvider};
pub use refresher::{
    DEFAULT_LEAD, ORPHAN_POLL, Refresher, RefresherBuilder, RefresherEvent, RefresherStats, Shard,
};
pub use resource::ResourceResponse;
pub use store::{Expect, InFlight, Lease, Record, Sequence, Stored, TokenStore, Version};
pub use token::{AccessToken, RefreshCooldown, TOKEN_FORMAT_VERSION, TokenSet};

/// Re-exported so implementors use the same `async_trait` macro.
pub use async_trait::async_trait;
/// Re-exported so implementors and callers use the same `secrecy` version.
pub use secrecy;
/// Re-exported because a token's and an introspection's extra fields are
/// [`serde_json::Value`]s.
pub use serde_json;
/// Re-exported because [`PendingAuthorization::authorize_url`] and the
/// providers' endpoints are [`url::Url`]s.
pub use url;
