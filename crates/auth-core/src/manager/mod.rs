//! [`TokenManager`]: hands out valid access tokens and refreshes each account
//! at most once at a time, everywhere.
//!
//! The modules, each one concept:
//! - `protocol`: the refresh protocol, one function per step, top to bottom;
//! - `flight`: the in-process single flight and the tracking of work that
//!   shutdown waits for;
//! - `cache`: the sharded, bounded, version-monotonic token cache;
//! - `unsaved`: rotated pairs held in memory until their save lands;
//! - `writers`: login, logout, revoke and clearing a flag, under the lease;
//! - `builder`, `events`, `retry`: configuration and what apps observe;
//! - `ahead`: the entry point of the background [`Refresher`](crate::Refresher).

mod ahead;
mod builder;
mod cache;
mod events;
mod flight;
mod protocol;
mod retry;
mod unsaved;
mod writers;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use tokio::sync::broadcast;
use tracing::error;

pub use builder::{
    DEFAULT_CACHE_CAPACITY, DEFAULT_LOCK_WAIT, DEFAULT_PENDING_MAX_AGE, DEFAULT_REFRESH_DEADLINE,
    DEFAULT_SAVE_RETRY_FOR, DEFAULT_SKEW, TokenManagerBuilder,
};
pub use events::TokenEvent;
pub use retry::{CooldownPolicy, RetryPolicy};

pub(crate) use ahead::Ahead;

use crate::authorization::{AuthorizeRequest, Callback, PendingAuthorization};
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::id::{ProviderId, TokenKey};
use crate::introspection::Introspection;
use crate::provider::TokenProvider;
use crate::store::TokenStore;
use crate::telemetry::Telemetry;
use crate::token::{AccessToken, TokenSet};

use cache::Cache;
use flight::{Flights, Tasks};
use protocol::Goal;
use unsaved::UnsavedMap;

/// Keeps tokens of many accounts and providers fresh, over one store.
///
/// Cloning is cheap and clones share everything. It must be used inside a
/// Tokio runtime: a refresh whose callers all went away, and the retried
/// save of a pair that could not be saved at once, are finished by spawned
/// tasks. Call [`shutdown`](Self::shutdown) before the process exits.
///
/// See the [crate docs](crate) for an example.
///
/// # The refresh protocol
///
/// 1. **Fast path.** A cached token valid for longer than the skew is
///    returned with no I/O, no await and no allocation beyond an `Arc` clone.
/// 2. **Single flight.** The first caller per key leads: it runs the
///    refresh itself, and every other caller waits for its result. A leader
///    that gives up (its future is dropped) hands the unfinished refresh to
///    a task, so a refresh is never cancelled between the server rotating
///    the refresh token and the new pair being saved.
/// 3. **Lease and reload.** The leader reads the store; if the token there
///    will do (another process refreshed), that is the answer. Otherwise it
///    takes the key's lease (across processes where the store can), reads
///    again, and checks that the lease is really held. If the lease cannot
///    be had within the lock wait, a still-valid stored token is served and
///    otherwise a transient [`LockTimeout`](crate::StoreErrorKind::LockTimeout)
///    is returned: nothing is ever refreshed without the lease.
/// 4. **Refresh and save.** The refresh request is retried with the *same*
///    refresh token while its outcome is unknown (lost answer, timeout, 5xx,
///    429), all attempts within the refresh deadline, which is shorter than
///    the lock wait. The new pair is saved with a fenced compare-and-swap
///    *before* the lease is released or anyone sees it.
/// 5. **A refused grant** (`invalid_grant` only) flags the stored token,
///    which is kept, never deleted: [`Error::ReauthorizationRequired`].
/// 6. **A failed save never drops the pair.** It stays in memory and its
///    save is retried under the lease, for
///    [`save_retry_for`](TokenManagerBuilder::save_retry_for). Meanwhile the
///    new access token is handed out only if the provider says that using it
///    does not end the server's replay window
///    ([`TokenProvider::use_ends_replay_window`]); otherwise the old one is,
///    while valid. A compare-and-swap conflict reloads: a flagged token, or
///    one that still carries the refresh token we sent, is overwritten; a
///    new login is kept. Nothing refreshes again from the older stored pair
///    while this process holds a newer one.
/// 7. **A transient failure** records a growing cooldown with the stored
///    token (every process honours it), and a token that is still valid is
///    served meanwhile (stale-while-revalidate). Only an expired token fails.
///
/// Every writer of a key (refresh, login, revoke, remove, clearing a flag)
/// holds the key's lease, and the cache only ever moves to newer versions,
/// so nothing written by one can be undone by another that read before it.
#[derive(Clone)]
pub struct TokenManager {
    inner: Arc<Inner>,
}

/// The registered providers by id, looked up on every flight: hashed with
/// `foldhash`, like the cache, not SipHash.
type Providers = HashMap<ProviderId, Arc<dyn TokenProvider>, foldhash::fast::RandomState>;

pub(crate) struct Inner {
    providers: Providers,
    store: Arc<dyn TokenStore>,
    cache: Cache,
    flights: Arc<Flights>,
    unsaved: UnsavedMap,
    tasks: Arc<Tasks>,
    closing: AtomicBool,
    events: broadcast::Sender<TokenEvent>,
    telemetry: Telemetry,
    clock: Option<Arc<dyn Clock>>,
    skew: Duration,
    lock_wait: Duration,
    retry: RetryPolicy,
    cooldown: CooldownPolicy,
    refresh_deadline: Duration,
    save_retry_for: Duration,
    pending_max_age: Duration,
}

impl std::fmt::Debug for TokenManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut providers: Vec<_> = self.inner.providers.keys().collect();
        providers.sort();
        f.debug_struct("TokenManager")
            .field("providers", &providers)
            .field("store", &self.inner.store)
            .field("skew", &self.inner.skew)
            .field("lock_wait", &self.inner.lock_wait)
            .field("refresh_deadline", &self.inner.refresh_deadline)
            .field("retry", &self.inner.retry)
            .finish_non_exhaustive()
    }
}

impl TokenManager {
    /// Starts building a manager over `store`.
    pub fn builder(store: Arc<dyn TokenStore>) -> TokenManagerBuilder {
        TokenManagerBuilder::new(store)
    }

    /// A valid access token for `key`, refreshing it first if it expires
    /// within the skew.
    ///
    /// If the refresh fails for a transient reason (the server, the
    /// network, a busy lease) and the token is still valid, it is returned
    /// anyway, with a warning and a [`TokenEvent::RefreshFailed`] event.
    ///
    /// # Errors
    ///
    /// - [`Error::ReauthorizationRequired`] when no token is stored, the
    ///   stored one is flagged, or the server refused the refresh token.
    /// - [`Error::Transient`] (or a transient store error) when the token
    ///   has expired and could not be refreshed now; the stored token is
    ///   intact and a later call tries again, after the cooldown.
    /// - Others as classified by the provider and the store.
    pub async fn access_token(&self, key: &TokenKey) -> Result<AccessToken> {
        if let Some(token) = self
            .inner
            .cache
            .fresh(key, self.inner.now(), self.inner.skew)
        {
            self.inner.telemetry.cache_hit(&key.provider);
            return Ok(AccessToken::new(token));
        }
        self.inner.telemetry.cache_miss(&key.provider);
        self.inner.fly(key, Goal::Fresh).await.map(AccessToken::new)
    }

    /// Replaces a token that an API rejected: refreshes only if `rejected`
    /// is still the current token, and otherwise returns the newer one. So
    /// a hundred requests that got a 401 with the same token cause one
    /// refresh, however late each 401 arrives.
    ///
    /// It never answers with the rejected token: if the refresh fails, the
    /// error is returned.
    ///
    /// # Errors
    ///
    /// As for [`access_token`](Self::access_token), except that no stale
    /// token is served.
    pub async fn force_refresh(
        &self,
        key: &TokenKey,
        rejected: &AccessToken,
    ) -> Result<AccessToken> {
        let goal = Goal::Replace(Arc::clone(rejected.token_set()));
        // The cache answers only when this process holds no newer unsaved
        // token: the rejected token may be newer than the cached one.
        if self.inner.unsaved.get(key).is_none()
            && let Some(token) = self.inner.cache.get(key).and_then(|e| e.token)
            && goal.satisfied_by(&token, self.inner.now(), Duration::ZERO)
        {
            return Ok(AccessToken::new(token));
        }
        self.inner.fly(key, goal).await.map(AccessToken::new)
    }

    /// Refreshes the current token now, whatever its expiry, and succeeds
    /// only with a pair newer than the one current when called (a command
    /// line's `refresh`). Concurrent calls share one refresh.
    ///
    /// # Errors
    ///
    /// As for [`force_refresh`](Self::force_refresh).
    pub async fn refresh(&self, key: &TokenKey) -> Result<AccessToken> {
        let current = match self.inner.cache.get(key).and_then(|e| e.token) {
            Some(token) => token,
            None => {
                let stored = self.inner.store.load(key).await?.ok_or_else(|| {
                    Error::reauthorization_required(
                        Some(key.clone()),
                        "no token is stored for this account",
                    )
                })?;
                Arc::new(stored.value)
            }
        };
        let goal = Goal::Replace(current);
        self.inner.fly(key, goal).await.map(AccessToken::new)
    }

    /// Builds the authorize URL for a new grant with `provider`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for an unknown provider; the provider's own
    /// errors otherwise.
    pub fn begin_authorization(
        &self,
        provider: &ProviderId,
        request: AuthorizeRequest,
    ) -> Result<PendingAuthorization> {
        self.inner.provider(provider)?.authorize(request)
    }

    /// Finishes an authorization: checks the callback (error, then state in
    /// constant time, then that the authorization is younger than the
    /// builder's `pending_max_age`), exchanges the code, and saves the
    /// token under the key's lease, replacing (and so un-flagging) any token
    /// stored for the account.
    ///
    /// When the account is known in advance
    /// ([`AuthorizeRequest::account`]), the lease is taken before the code
    /// is exchanged, so a busy lease costs nothing. An exchanged token is
    /// never lost to a lock wait or a store failure: it is kept in memory,
    /// served, and its save retried in the background (and
    /// [`shutdown`](Self::shutdown) waits for that). The one exception is
    /// the one a save would make too: if this process already holds the
    /// token of a login of the account received *after* this one (two
    /// logins finishing out of order), that newer token is kept and
    /// returned instead.
    ///
    /// # Errors
    ///
    /// [`Error::AuthorizationDenied`] when the callback carries an error,
    /// [`Error::InvalidInput`] when its state does not match, and the
    /// provider's errors; a lock timeout before the exchange.
    pub async fn complete_authorization(
        &self,
        pending: &PendingAuthorization,
        callback: &Callback,
    ) -> Result<(TokenKey, AccessToken)> {
        callback.code_or_error()?;
        pending.verify_state(callback)?;
        let age = self
            .inner
            .now()
            .duration_since(pending.created_at)
            .unwrap_or_default();
        if age > self.inner.pending_max_age {
            return Err(Error::invalid_input(format!(
                "this authorization was started {} ago, longer than the {} allowed; start it again",
                humantime::format_duration(Duration::from_secs(age.as_secs())),
                humantime::format_duration(self.inner.pending_max_age)
            )));
        }
        let provider = Arc::clone(self.inner.provider(&pending.provider)?);
        let early = match &pending.account {
            Some(account) => {
                let key = TokenKey::new(pending.provider.clone(), account.clone());
                let lease = self.inner.store.lock(&key, self.inner.lock_wait).await?;
                Some((key, lease))
            }
            None => None,
        };
        let token = provider.exchange_code(pending, callback).await?;
        let (key, lease) = match early {
            Some((key, lease)) => (key, Some(lease)),
            None => {
                let Some(account) = provider.account_for(&token) else {
                    return Err(Error::configuration(format!(
                        "provider {} cannot tell which account the new token belongs to; \
                         set AuthorizeRequest::account",
                        pending.provider
                    )));
                };
                (TokenKey::new(pending.provider.clone(), account), None)
            }
        };
        let token = self.inner.save_grant(&key, lease, token).await;
        self.inner.emit(TokenEvent::Authorized { key: key.clone() });
        Ok((key, AccessToken::new(token)))
    }

    /// Saves the token of a login that did not go through
    /// [`complete_authorization`](Self::complete_authorization), such as a
    /// device login (RFC 8628), exactly as that method saves its token:
    /// under the key's lease, replacing (and so un-flagging) any token
    /// stored for the account, never lost to a lock wait or a store failure
    /// (kept in memory, served, and its save retried in the background),
    /// with a [`TokenEvent::Authorized`] event.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] when no provider `key.provider` is
    /// registered.
    pub async fn save_authorization(&self, key: &TokenKey, token: TokenSet) -> Result<AccessToken> {
        self.inner.provider(&key.provider)?;
        let token = self.inner.save_grant(key, None, token).await;
        self.inner.emit(TokenEvent::Authorized { key: key.clone() });
        Ok(AccessToken::new(token))
    }

    /// Revokes the grant at the provider, then deletes the token locally,
    /// under the key's lease. If the provider cannot revoke, nothing is
    /// deleted.
    ///
    /// A login of the same account whose save is still being retried by
    /// *another* process (its store failed when it finished) can land after
    /// this, since a store keeps no record of a deletion: the account then
    /// holds that login's grant, which the user approved and which was not
    /// revoked. In this process, a pending login of the key is dropped.
    ///
    /// # Errors
    ///
    /// [`Error::ReauthorizationRequired`] when nothing is stored,
    /// [`Error::Unsupported`] when the provider has no revocation, and the
    /// provider's errors (the local token is then kept).
    pub async fn revoke(&self, key: &TokenKey) -> Result<()> {
        self.inner.revoke(key).await
    }

    /// Deletes the token locally only (a logout), under the key's lease.
    /// Returns whether one was stored. An unknown key creates nothing. As
    /// for [`revoke`](Self::revoke), another process's pending login save
    /// can land afterwards.
    ///
    /// # Errors
    ///
    /// The store's errors.
    pub async fn remove(&self, key: &TokenKey) -> Result<bool> {
        self.inner.remove(key).await
    }

    /// Clears a reauthorization flag that an operator knows is wrong (and
    /// any refresh cooldown), so the next call refreshes again. Returns
    /// whether there was anything to clear.
    ///
    /// # Errors
    ///
    /// [`Error::ReauthorizationRequired`] when nothing is stored; the
    /// store's errors.
    pub async fn clear_reauthorization(&self, key: &TokenKey) -> Result<bool> {
        self.inner.clear_reauthorization(key).await
    }

    /// Asks the provider about the stored access token, without refreshing.
    ///
    /// # Errors
    ///
    /// [`Error::ReauthorizationRequired`] when nothing is stored,
    /// [`Error::Unsupported`] when the provider cannot introspect.
    pub async fn introspect(&self, key: &TokenKey) -> Result<Introspection> {
        let provider = self.inner.provider(&key.provider)?;
        let stored = self.inner.store.load(key).await?.ok_or_else(|| {
            Error::reauthorization_required(
                Some(key.clone()),
                "no token is stored for this account",
            )
        })?;
        provider
            .introspect(&stored.value)
            .await
            .map_err(|e| e.for_key(key))
    }

    /// The stored token set for `key`, if any, read from the store.
    ///
    /// # Errors
    ///
    /// The store's errors.
    pub async fn stored(&self, key: &TokenKey) -> Result<Option<Arc<TokenSet>>> {
        Ok(self.inner.store.load(key).await?.map(|v| Arc::new(v.value)))
    }

    /// The stored keys, of one provider or of all.
    ///
    /// # Errors
    ///
    /// The store's errors.
    pub async fn list(&self, provider: Option<&ProviderId>) -> Result<Vec<TokenKey>> {
        self.inner.store.list(provider).await
    }

    /// Forgets the cached token for `key`; the next call reads the store.
    pub fn invalidate(&self, key: &TokenKey) {
        self.inner.cache.forget(key);
    }

    /// Events (refreshed, reauthorization required, …) from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<TokenEvent> {
        self.inner.events.subscribe()
    }

    /// A registered provider.
    pub fn provider(&self, id: &ProviderId) -> Option<Arc<dyn TokenProvider>> {
        self.inner.providers.get(id).cloned()
    }

    /// The ids of the registered providers, sorted.
    pub fn provider_ids(&self) -> Vec<ProviderId> {
        let mut ids: Vec<_> = self.inner.providers.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn TokenStore> {
        &self.inner.store
    }

    /// Stops starting refreshes and waits, at most `timeout`, for the
    /// refreshes and saves in progress (abandoned flights and background
    /// saves included), so that no refresh is cut between the server's
    /// answer and the save. Cached tokens are still served afterwards.
    ///
    /// # Errors
    ///
    /// [`Error::Transient`] when work was still running at the timeout, and
    /// [`Error::Store`] when a new token could not be saved and is lost
    /// with this process (each is also logged at error level, with its key).
    pub async fn shutdown(&self, timeout: Duration) -> Result<()> {
        if !self.inner.closing.swap(true, Ordering::SeqCst) {
            self.inner.emit(TokenEvent::ShuttingDown);
        }
        let idle = self.inner.tasks.wait_idle(timeout).await;
        let unsaved = self.inner.unsaved.keys();
        for key in &unsaved {
            error!(%key, "shutting down with a new token that could not be saved; the account may need a new login");
        }
        if !unsaved.is_empty() {
            return Err(Error::store(
                crate::error::StoreErrorKind::Other,
                None,
                format!(
                    "{} new token(s) could not be saved before shutdown (see the error log for \
                     their keys); those accounts may need a new login",
                    unsaved.len()
                ),
            ));
        }
        if !idle {
            return Err(Error::transient(format!(
                "{} refresh(es) or save(s) were still running after {}",
                self.inner.tasks.running(),
                humantime::format_duration(timeout)
            )));
        }
        Ok(())
    }

    /// Whether [`shutdown`](Self::shutdown) was called. Subscribers also
    /// get a [`TokenEvent::ShuttingDown`] (or, if they lagged, an error from
    /// `recv`, after which they should look here).
    pub fn is_shutting_down(&self) -> bool {
        self.inner.closing.load(Ordering::SeqCst)
    }

    /// How many entries the manager holds in memory (cache entries and
    /// tombstones, flights, unsaved tokens); for tests of bounded memory.
    #[doc(hidden)]
    pub fn memory_entries(&self) -> usize {
        self.inner.cache.len() + self.inner.flights.len() + self.inner.unsaved.keys().len()
    }
}

impl Inner {
    fn now(&self) -> SystemTime {
        match &self.clock {
            Some(clock) => clock.now(),
            None => SystemTime::now(),
        }
    }

    fn provider(&self, id: &ProviderId) -> Result<&Arc<dyn TokenProvider>> {
        self.providers.get(id).ok_or_else(|| {
            let mut known: Vec<_> = self.providers.keys().map(ProviderId::as_str).collect();
            known.sort_unstable();
            Error::invalid_input(format!(
                "no provider {id} is registered (registered: {})",
                known.join(", ")
            ))
        })
    }

    fn emit(&self, event: TokenEvent) {
        // No subscribers is fine.
        let _ = self.events.send(event);
    }
}
