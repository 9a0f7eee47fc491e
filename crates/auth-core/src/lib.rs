//! Keep OAuth 2.0 tokens alive for many users across many providers, without
//! ever burning a single-use refresh token.
//!
//! Register your providers ([`TokenProvider`]) and a store ([`TokenStore`])
//! with a [`TokenManager`], then ask it for an access token whenever you
//! call an API: it hands out the cached token, or refreshes it first, once
//! per account, across threads, processes and hosts. This crate holds the
//! traits, the types and the manager; it does no HTTP and touches no
//! filesystem. Providers and stores plug in from the other crates of the
//! workspace, or from your own code.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use std::time::{Duration, SystemTime};
//! use auth_core::testing::FakeProvider;
//! use auth_core::{TokenKey, TokenManager, TokenSet};
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
//! store.put(&key, &old).await?;
//!
//! // The manager refreshes it once, saves the new pair, and hands it out.
//! let token = manager.access_token(&key).await?;
//! assert_ne!(token.secret(), "old-access");
//! assert_eq!(provider.refresh_calls(), 1);
//! # Ok(())
//! # }
//! ```
//!
//! Run a [`Refresher`] next to the manager in long-lived processes: it
//! refreshes tokens ahead of their expiry, and every 2 s it finishes the
//! refreshes that another process left in flight (see below). Call
//! [`TokenManager::shutdown`] before the process exits.
//!
//! # Why a manager
//!
//! Some providers (Fitbit among them) issue refresh tokens that can be used
//! **once**. Two refreshes racing, in one process or in two, burn the
//! user's grant, and so does a refresh whose answer is lost: the server
//! rotated the pair and nobody has the new one. The manager refreshes each
//! account once at a time (a single flight per key in the process, the
//! store's lease across processes), and it keeps a **write-ahead record**
//! in the store of every refresh of a rotating token: "a refresh of this
//! stored version is in flight". Whoever takes the key's lease next finds
//! the record and replays the same refresh token while the server still
//! forgives a replay (Fitbit's window of about two minutes), which recovers
//! the pair. Only a definite outcome (the new pair, or `invalid_grant`)
//! clears the record.
//!
//! The protocol is a pure decision (from what is known: the goal, the
//! stored row with its record and age on the store's clock, an unsaved
//! pair, the provider's [`RefreshRules`], the time; to the next action:
//! serve, wait, replay, refresh, save, flag, give up) and a thin driver
//! that performs it. [`TokenManager`]'s docs list its steps.
//!
//! # What happens on each fault
//!
//! | Fault | What the user sees | Proved by |
//! |---|---|---|
//! | The process dies after sending a refresh, before saving the answer | Nothing, if another process runs a `Refresher` or asks for the token within the provider's window: it finds the record, replays the same refresh token and saves the same pair. Callers meanwhile get the old token while it is valid. | `a_refresh_left_by_a_dead_process_is_finished_by_the_refresher`, `trace_orphan_is_taken_over_without_traffic` |
//! | The answer is lost (reset, timeout, 5xx, a 200 that cannot be parsed) | The same refresh token is retried inside the refresh deadline; if the outcome stays unknown, the record stays, the next attempt comes within a quarter of the window, and the still-valid token is served (else a transient error saying "the outcome is unknown"). | `regression_the_cooldown_after_a_lost_answer_stays_inside_the_window`, `two_transient_failures_then_success_are_retried_and_saved` |
//! | A slow answer | Each attempt has its own timeout (default 8 s) and the deadline (20 s) holds two, so the slow attempt is retried. | `regression_a_slow_answer_is_retried_inside_the_deadline`, `a_slow_answer_gets_a_retry_inside_the_default_deadline` |
//! | A refused connection, a 429 or an error answer | Nothing was processed: the record is cleared, unless an earlier attempt under it was unknown; a cooldown (on the store's clock) follows. | `a_definite_failure_clears_the_record_only_with_no_unknown_attempt_before`, `trace_429_after_a_lost_answer_keeps_the_record` |
//! | The server says `invalid_grant` | [`Error::ReauthorizationRequired`]; the token is kept, flagged, and not sent again (`authctl clear-flag` clears a flag an operator knows is wrong). | `invalid_grant_flags_the_token_and_keeps_it` |
//! | The store fails to save a new pair | The pair stays in memory and a task saves it while the process lives, taking the lease back the moment it is free; the record stays so others replay rather than refresh. Fitbit's old access token is served while valid (using the new one would end its window). | `regression_an_unsaved_pair_is_saved_after_its_lease_is_lost`, `an_unsaved_refresh_serves_the_old_token_while_first_use_ends_the_window` |
//! | The process stops with a pair not saved | [`TokenManager::shutdown`] logs each account at risk at error level and returns an error naming them. | `shutdown_names_the_accounts_whose_new_pair_is_not_saved` |
//! | The lease is lost (expired, a pause longer than it) | Every write through it fails ([`StoreErrorKind::LeaseLost`]); every retry and replay renews the lease first and sends nothing if that fails; no attempt outlives the lease. | `trace_retry_without_a_lease_sends_nothing`, `trace_request_outliving_its_lease_is_cut_to_fit`, `regression_an_unfenced_store_fails_the_conformance_suite` |
//! | The process pauses after renewing its lease, until the lease could have run out | Nothing is sent (a refresh, a replay or a revocation): what is left of the lease is counted from before the renewal was asked for; the record stays for whoever holds the lease now. | `a_lease_used_up_by_a_pause_after_its_renewal_sends_nothing` |
//! | A replay's answer is slow or lost | The next replay comes window/8 after the failed one began, not after it ended; a replay marks the record it found, so a guard watching it elsewhere waits for this process's save. | `replays_are_paced_from_the_start_of_the_failed_one`, `regression_a_replay_moves_the_record_it_found` |
//! | The host clock jumps (a suspended laptop, a fast clock) | A pair just received is judged on the host clock less how far it was ahead of the pair's issue time on arrival: not due at once on a fast clock, expired after a suspend. | `a_received_token_expires_when_the_host_clock_jumps_forward`, `a_fast_host_clock_does_not_drive_a_refresh_loop` |
//! | The record is a window old (an outage aged it, its holder paused), or the provider has no window | The late-replay guard: the record is watched for the save back-off cap plus a margin, and replayed only if unchanged, so a live holder saves first. Callers get the still-valid token or a transient error meanwhile. | `trace_late_takeover_watches_before_replaying`, `trace_outage_aged_record_is_watched`, `trace_without_a_window_every_replay_is_guarded`, `trace_retry_after_the_window_goes_to_the_guard` |
//! | A cached token in a long-lived process | It is served with no I/O, so it cannot see another process's record: the `Refresher`'s orphan poll finishes those. | `the_hot_path_does_no_store_io`, `a_refresh_left_by_a_dead_process_is_finished_by_the_refresher` |
//! | The caller goes away mid-refresh | The refresh finishes in a task and is saved. | `a_refresh_abandoned_by_its_only_caller_still_finishes_and_saves` |
//! | The caller goes away mid-login (Ctrl-C, a closed browser) | From the code's exchange on, the exchange and the save finish in a task; the next call sees the new grant. | `regression_a_login_dropped_mid_save_is_still_saved` |
//! | Hosts' clocks disagree by minutes | Nothing: logins are ordered by the store's sequence, and record ages and cooldowns are measured on the store's clock. Where the account comes from the login's answer, the sequence is taken right after the exchange ([`TokenEvent::LoginRace`] names that one race). | `regression_logins_are_ordered_by_the_store_not_by_host_clocks`, `a_cooldown_on_the_stores_clock_serves_the_valid_token_and_names_clear_flag` |
//! | A revoke while another process holds a newer unsaved pair | The refresh in flight is finished first (replayed), the current pair is revoked, and a tombstone refuses the older save and any login begun before it. | `regression_revoke_finishes_another_processs_unsaved_refresh_first` |
//! | A caller's wait for the lease times out | The stored token is served if still valid, and cached, so a later `force_refresh` rejecting it never gets an older one. | `regression_force_refresh_never_answers_older_than_a_token_served_after_a_lock_timeout` |
//! | A new pair is saved but the answer is lost, and another process removes the account | The save task finds the tombstone, drops the pair and buries the cached token too, so a `force_refresh` rejecting the pair never gets the token from before it. | `regression_a_dropped_unsaved_pair_leaves_no_older_token_in_the_cache` |
//! | A login (account from the response) cannot be saved, then the account is removed | The login's save task keeps the sequence it took first, so the tombstone of a removal that came after the login refuses it. | `regression_an_unsaved_login_keeps_its_sequence_so_a_later_remove_holds` |
//! | A thousand callers on an expired token | One request. | `a_thousand_callers_on_an_expired_token_make_one_refresh` |
//! | The provider panics | A transient error; the record stays (the outcome is unknown) and the next attempt replays. | `a_panicking_provider_gives_an_error_and_does_not_wedge_the_account` |
//!
//! When a manager is built it warns about parameters that cannot keep
//! these promises: a lease TTL shorter than the attempt timeout plus a
//! margin (2 s, or half the TTL when that is less: each attempt is cut to
//! the TTL less that margin, so a short lease still leaves time to send),
//! and a provider window not longer than
//! [the holder failures to survive](TokenManagerBuilder::survive_holder_failures)
//! × the lease TTL + the refresh deadline
//! (`the_builder_warns_about_parameters_that_break_the_protocol`).
//!
//! # Feature flags
//!
//! - `conformance`: the `conformance` module, the suite every [`TokenStore`]
//!   should pass.
//! - `testing`: the `testing` module with `FakeProvider`, a scriptable
//!   provider for tests (with a strict single-use mode).
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
