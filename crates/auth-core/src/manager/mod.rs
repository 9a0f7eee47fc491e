//! [`TokenManager`]: hands out valid access tokens and refreshes each account
//! at most once at a time, everywhere.
//!
//! A refresh reads, in order: `decision` (what to do, from what is known;
//! no I/O), `driver` (doing it: the flight's work, the attempts, the
//! saves), `flight` (one refresh per key in this process) and `cache` (the
//! hot path). `writers` holds logins, revocation, removal and clearing a
//! flag; `builder`, `events` and `retry` the configuration and what apps
//! observe.

mod ahead;
mod builder;
mod cache;
mod decision;
mod driver;
mod events;
mod flight;
mod received;
mod retry;
mod sharded;
mod writers;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use tokio::sync::broadcast;
use tokio_util::task::TaskTracker;
use tracing::{error, warn};

pub use builder::{
    DEFAULT_ATTEMPT_TIMEOUT, DEFAULT_CACHE_CAPACITY, DEFAULT_LOCK_WAIT, DEFAULT_PENDING_MAX_AGE,
    DEFAULT_REFRESH_DEADLINE, DEFAULT_SKEW, DEFAULT_SURVIVED_FAILURES, TokenManagerBuilder,
};
pub use events::TokenEvent;
pub use retry::{CooldownPolicy, RetryPolicy};
pub use writers::Cleared;

pub(crate) use ahead::Ahead;
pub(crate) use decision::Goal;

use crate::authorization::{AuthorizeRequest, Callback, PendingAuthorization};
use crate::clock::Clock;
use crate::error::{Error, Result, human_duration};
use crate::id::{ProviderId, TokenKey};
use crate::introspection::Introspection;
use crate::provider::TokenProvider;
use crate::store::TokenStore;
use crate::telemetry::Telemetry;
use crate::token::{AccessToken, TokenSet};

use cache::Cache;
use driver::{Guards, UnsavedMap};
use flight::Flights;
use received::Received;

/// Keeps tokens of many accounts and providers fresh, over one store.
///
/// Cloning is cheap and clones share everything. It must be used inside a
/// Tokio runtime: a refresh whose callers all went away, a login whose
/// caller went away, and the save of a pair that could not be saved at
/// once are finished by spawned tasks. Call [`shutdown`](Self::shutdown)
/// before the process exits.
///
/// See the [crate docs](crate) for an example and the fault table.
///
/// # The refresh protocol
///
/// 1. **Fast path.** A cached token valid for longer than the skew is
///    returned with no I/O. (It cannot see a record written by another
///    process: the [`Refresher`](crate::Refresher)'s orphan poll does.)
/// 2. **Single flight.** The first caller per key leads; every other caller
///    waits for its result. A leader that goes away hands its unfinished
///    refresh to a task.
/// 3. **Lease and reload.** The row is read, then read again under the
///    key's lease. A refresh found in flight there (its holder died,
///    paused or gave up) is replayed before anything else; a token with a
///    record is never served as fresh.
/// 4. **Write-ahead.** A rotating refresh token is sent only after a
///    fenced record of the refresh; if the record cannot be written,
///    nothing is sent. Every retry and replay renews the lease first.
/// 5. **Only a definite outcome clears the record**: the new pair, saved
///    with compare-and-swap, or the flag after `invalid_grant`.
/// 6. **An unsaved pair is never dropped** while the process lives: a task
///    saves it, taking the lease back the moment it is free.
/// 7. **A transient failure** records a cooldown (on the store's clock)
///    and serves the still-valid token meanwhile.
#[derive(Clone)]
pub struct TokenManager {
    inner: Arc<Inner>,
}

/// The registered providers by id.
type Providers = HashMap<ProviderId, Arc<dyn TokenProvider>, foldhash::fast::RandomState>;

/// The tunables the driver reads.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    skew: Duration,
    lock_wait: Duration,
    retry: RetryPolicy,
    cooldown: CooldownPolicy,
    refresh_deadline: Duration,
    attempt_timeout: Duration,
    pending_max_age: Duration,
}

pub(crate) struct Inner {
    providers: Providers,
    store: Arc<dyn TokenStore>,
    cache: Cache,
    flights: Arc<Flights>,
    unsaved: UnsavedMap,
    guards: Guards,
    received: Received,
    tasks: TaskTracker,
    closing: AtomicBool,
    events: broadcast::Sender<TokenEvent>,
    telemetry: Telemetry,
    clock: Option<Arc<dyn Clock>>,
    config: Config,
}

impl std::fmt::Debug for TokenManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut providers: Vec<_> = self.inner.providers.keys().collect();
        providers.sort();
        f.debug_struct("TokenManager")
            .field("providers", &providers)
            .field("store", &self.inner.store)
            .field("config", &self.inner.config)
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
    /// If the refresh fails for a transient reason and the token is still
    /// valid, it is returned anyway, with a warning and a
    /// [`TokenEvent::RefreshFailed`] event.
    ///
    /// # Errors
    ///
    /// - [`Error::ReauthorizationRequired`] when no token is stored, the
    ///   stored one is flagged, or the server refused the refresh token.
    /// - [`Error::Transient`] (or a transient store error) when the token
    ///   has expired and could not be refreshed now; the stored token is
    ///   intact and a later call tries again.
    /// - Others as classified by the provider and the store.
    pub async fn access_token(&self, key: &TokenKey) -> Result<AccessToken> {
        if let Some(token) = self
            .inner
            .cache
            .fresh(key, self.inner.now(), self.inner.config.skew)
        {
            self.inner.telemetry.cache_hit(&key.provider);
            return Ok(AccessToken::new(token));
        }
        self.inner.telemetry.cache_miss(&key.provider);
        // Boxed: the refresh path's state is about 2.8 KB, and inline it
        // made this future that large for the cache hit too, which is then
        // copied whenever a caller moves the future (`now_or_never`, a
        // spawn, a box): 13% of the hot path's time (BENCHMARKS.md §1,
        // round 3). A miss does I/O; one allocation there is noise.
        Box::pin(self.inner.fly(key, Goal::Fresh))
            .await
            .map(AccessToken::new)
    }

    /// Replaces a token that an API rejected: refreshes only if `rejected`
    /// is still the current token, and otherwise returns the newer one. So
    /// a hundred requests that got a 401 with the same token cause one
    /// refresh, however late each 401 arrives. It never answers with the
    /// rejected token.
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
            None => self.inner.stored_token(key).await?,
        };
        self.inner
            .fly(key, Goal::Replace(current))
            .await
            .map(AccessToken::new)
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
    /// constant time, then its age against the builder's
    /// `pending_max_age`), exchanges the code, and saves the token under the
    /// key's lease, replacing (and so un-flagging) any token stored for the
    /// account.
    ///
    /// Logins are ordered by the store, not by clocks: when the account is
    /// known in advance ([`AuthorizeRequest::account`]), the lease and the
    /// key's next login sequence are taken before the code is exchanged,
    /// and the save succeeds only over an older grant. When the account
    /// comes from the response, they are taken right after the exchange
    /// (see [`TokenEvent::LoginRace`]).
    ///
    /// **Cancellation-safe.** From the moment the code is sent, the
    /// exchange and the save finish in a task of their own even if this
    /// future is dropped; the next call for the key sees the result. A
    /// token whose save fails is kept in memory, served, and saved by a
    /// task.
    ///
    /// # Errors
    ///
    /// [`Error::AuthorizationDenied`] when the callback carries an error,
    /// [`Error::InvalidInput`] when its state does not match, the
    /// provider's errors, a lock timeout before the exchange, and
    /// [`Error::ReauthorizationRequired`] when the account was revoked or
    /// removed after this login began.
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
        if age > self.inner.config.pending_max_age {
            return Err(Error::invalid_input(format!(
                "this authorization was started {} ago, longer than the {} allowed; start it again",
                human_duration(age),
                human_duration(self.inner.config.pending_max_age)
            )));
        }
        let provider = Arc::clone(self.inner.provider(&pending.provider)?);
        let (key, token) = self
            .inner
            .login(provider, pending.clone(), callback.clone())
            .await?;
        Ok((key, AccessToken::new(token)))
    }

    /// Saves the token of a login that did not go through
    /// [`complete_authorization`](Self::complete_authorization), such as a
    /// device login (RFC 8628), as that method saves its token. Its
    /// sequence is taken after the token was issued (a
    /// [`TokenEvent::LoginRace`]). Cancellation-safe.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] when no provider `key.provider` is
    /// registered.
    pub async fn save_authorization(&self, key: &TokenKey, token: TokenSet) -> Result<AccessToken> {
        self.inner.provider(&key.provider)?;
        let inner = Arc::clone(&self.inner);
        let owned = key.clone();
        let token = self
            .inner
            .detached(async move {
                inner
                    .save_login(&owned, None, None, token.into_new_grant())
                    .await
            })
            .await?;
        Ok(AccessToken::new(token))
    }

    /// Revokes the grant at the provider and leaves a tombstone, under the
    /// key's lease. A refresh in flight is finished first, and the current
    /// pair is revoked (this process's unsaved one, if it holds one). The
    /// tombstone refuses logins sequenced before it, so a login that began
    /// before the revocation cannot bring the grant back; a later login
    /// is accepted. If the provider cannot revoke, nothing is deleted.
    ///
    /// # Errors
    ///
    /// [`Error::ReauthorizationRequired`] when nothing is stored,
    /// [`Error::Unsupported`] when the provider has no revocation, a
    /// transient error when a refresh in flight could not be finished yet,
    /// and the provider's errors (the token is then kept).
    pub async fn revoke(&self, key: &TokenKey) -> Result<()> {
        self.inner.revoke(key).await
    }

    /// Deletes the token locally only (a logout), leaving a tombstone like
    /// [`revoke`](Self::revoke). Returns whether one was stored.
    ///
    /// # Errors
    ///
    /// The store's errors, and a transient error when a refresh in flight
    /// could not be finished yet.
    pub async fn remove(&self, key: &TokenKey) -> Result<bool> {
        self.inner.remove(key).await
    }

    /// Clears a reauthorization flag that an operator knows is wrong, and
    /// any refresh cooldown, so the next call refreshes again. A refresh
    /// in flight stays recorded. Says what it cleared.
    ///
    /// # Errors
    ///
    /// [`Error::ReauthorizationRequired`] when nothing is stored; the
    /// store's errors.
    pub async fn clear_reauthorization(&self, key: &TokenKey) -> Result<Cleared> {
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
        let token = self.inner.stored_token(key).await?;
        provider
            .introspect(&token)
            .await
            .map_err(|e| e.for_key(key))
    }

    /// The stored token set for `key`, if any, read from the store.
    ///
    /// # Errors
    ///
    /// The store's errors.
    pub async fn stored(&self, key: &TokenKey) -> Result<Option<Arc<TokenSet>>> {
        Ok(self
            .inner
            .store
            .load(key)
            .await?
            .and_then(|row| row.token)
            .map(Arc::new))
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

    /// The accounts whose new token this process holds but has not saved:
    /// they are at risk if the process stops now.
    pub fn unsaved(&self) -> Vec<TokenKey> {
        self.inner.unsaved.keys()
    }

    /// Stops starting refreshes and waits, at most `timeout`, for the
    /// refreshes, logins and saves in progress. Cached tokens are still
    /// served afterwards.
    ///
    /// Accounts whose new token could not be saved are named at error
    /// level, with why they are at risk; the error lists them too.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when a new token could not be saved and is lost
    /// with this process, and [`Error::Transient`] when work was still
    /// running at the timeout.
    pub async fn shutdown(&self, timeout: Duration) -> Result<()> {
        if !self.inner.closing.swap(true, Ordering::SeqCst) {
            self.inner.emit(TokenEvent::ShuttingDown);
        }
        self.inner.tasks.close();
        let idle = tokio::time::timeout(timeout, self.inner.tasks.wait())
            .await
            .is_ok();
        let unsaved = self.inner.unsaved.keys();
        for key in &unsaved {
            error!(%key, "shutting down with a new token for this account that is not saved: the store still holds the spent pair with a refresh in flight, and another process can recover it only by replaying within the provider's window; otherwise the account needs a new login");
        }
        if !unsaved.is_empty() {
            let names: Vec<_> = unsaved.iter().map(ToString::to_string).collect();
            return Err(Error::store(
                crate::error::StoreErrorKind::Unavailable,
                None,
                format!(
                    "new tokens for {} could not be saved before shutdown; those accounts may \
                     need a new login unless another process replays their refresh in time",
                    names.join(", ")
                ),
            ));
        }
        if !idle {
            return Err(Error::transient(format!(
                "{} refresh(es), login(s) or save(s) were still running after {}",
                self.inner.tasks.len(),
                human_duration(timeout)
            )));
        }
        Ok(())
    }

    /// Whether [`shutdown`](Self::shutdown) was called.
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

    /// The stored token, or the error that none is stored.
    async fn stored_token(&self, key: &TokenKey) -> Result<Arc<TokenSet>> {
        self.store
            .load(key)
            .await?
            .and_then(|row| row.token)
            .map(Arc::new)
            .ok_or_else(|| {
                Error::reauthorization_required(
                    Some(key.clone()),
                    "no token is stored for this account",
                )
            })
    }

    /// Spawns background work (a save, a guard) that
    /// [`shutdown`](TokenManager::shutdown) waits for, if there is a runtime.
    fn spawn_tracked(&self, work: impl Future<Output = ()> + Send + 'static) {
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(self.tasks.spawn_on(work, &runtime)),
            Err(_) => warn!("background token work needs a Tokio runtime; none is running"),
        }
    }

    fn emit(&self, event: TokenEvent) {
        // No subscribers is fine.
        let _ = self.events.send(event);
    }
}
