//! [`TokenManager`]: hands out valid access tokens and refreshes each account
//! at most once at a time, everywhere.
//!
//! The refresh protocol is documented on [`TokenManager`].

mod builder;
mod events;
mod retry;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use std::panic::AssertUnwindSafe;

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::{broadcast, watch};
use tracing::{debug, warn};

pub use builder::{DEFAULT_LOCK_WAIT, DEFAULT_PENDING_MAX_AGE, DEFAULT_SKEW, TokenManagerBuilder};
pub use events::TokenEvent;
pub use retry::RetryPolicy;

use crate::authorization::{AuthorizeRequest, Callback, PendingAuthorization};
use crate::clock::Clock;
use crate::error::{Error, Result, StoreErrorKind};
use crate::id::{ProviderId, TokenKey};
use crate::introspection::Introspection;
use crate::provider::TokenProvider;
use crate::store::{TokenStore, Version, Versioned};
use crate::token::{AccessToken, TokenSet};

/// A token in the in-memory cache, with the store version it was read at.
#[derive(Clone)]
struct Cached {
    token: Arc<TokenSet>,
    version: Version,
}

/// What followers of a flight wait on: the leader's result, once there.
type Flight = watch::Receiver<Option<Result<Arc<TokenSet>>>>;
/// The refresh work itself, owned by whoever drives it.
type Work = BoxFuture<'static, Result<Arc<TokenSet>>>;

/// Why a flight runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Return a token fresh beyond the skew; refresh only if needed.
    Fresh,
    /// Refresh unless the store holds a newer version than `seen`.
    Forced { seen: Option<Version> },
}

/// Keeps tokens of many accounts and providers fresh, over one store.
///
/// Cloning is cheap and clones share everything. It must be used inside a
/// Tokio runtime: a refresh whose callers all went away is finished by a
/// spawned task.
///
/// See the [crate docs](crate) for an example.
///
/// # The refresh protocol
///
/// 1. **Fast path.** A cached token valid for longer than the skew is
///    returned with no I/O, no await and no allocation beyond an `Arc` clone.
/// 2. **Single flight.** The first caller per key leads: it runs the
///    refresh itself, and every other caller waits for its result. A leader
///    that gives up (its future is dropped) while the refresh is unfinished
///    hands it to a spawned task, so a refresh is never cancelled halfway,
///    between the server rotating the refresh token and the new pair being
///    saved.
/// 3. **Lock and reload.** The task takes the store's key lock (across
///    processes where the store can), then reloads the token. If another
///    process refreshed meanwhile, that token is used and nothing is sent.
/// 4. **Refresh and save.** One refresh request; on success the new pair is
///    saved with compare-and-swap *before* the lock is released or anyone
///    sees the token. A response without a refresh token keeps the old one.
/// 5. **Failures.** A transient failure (network, 5xx, 429, Fitbit's 409) is
///    retried with the same refresh token, with bounded backoff, after a
///    reload from the store. `invalid_grant` flags the stored token as
///    needing reauthorization (it is never deleted) and returns
///    [`Error::ReauthorizationRequired`].
///
/// Where this differs from the first design sketch: a future shared by its
/// callers dies with its last caller, and a refresh abandoned after the
/// server rotated the token is exactly how grants get burned, so abandoned
/// flights are finished by a task. (Spawning every refresh, or driving it
/// through a `futures` `Shared`, was simpler but cost two thread hand-offs
/// per refresh, about 90 µs on loopback; see BENCHMARKS.md.)
#[derive(Clone)]
pub struct TokenManager {
    inner: Arc<Inner>,
}

struct Inner {
    providers: HashMap<ProviderId, Arc<dyn TokenProvider>>,
    store: Arc<dyn TokenStore>,
    cache: RwLock<HashMap<TokenKey, Cached>>,
    flights: Mutex<HashMap<TokenKey, Flight>>,
    events: broadcast::Sender<TokenEvent>,
    clock: Option<Arc<dyn Clock>>,
    skew: Duration,
    lock_wait: Duration,
    retry: RetryPolicy,
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
    /// # Errors
    ///
    /// - [`Error::ReauthorizationRequired`] when no token is stored, the
    ///   stored one is flagged, or the server refused the refresh token.
    /// - [`Error::Transient`] when the refresh failed after the retries; the
    ///   stored token is intact and a later call tries again.
    /// - Others as classified by the provider and the store.
    pub async fn access_token(&self, key: &TokenKey) -> Result<AccessToken> {
        if let Some(token) = self.cached_fresh(key) {
            return Ok(AccessToken::new(token));
        }
        self.fly(key, Mode::Fresh).await.map(AccessToken::new)
    }

    /// Refreshes now, unless another caller or process refreshed since this
    /// manager last saw the token. Use it when an API rejected the token.
    ///
    /// # Errors
    ///
    /// As for [`access_token`](Self::access_token).
    pub async fn force_refresh(&self, key: &TokenKey) -> Result<AccessToken> {
        let seen = self.read_cache().get(key).map(|c| c.version);
        self.fly(key, Mode::Forced { seen })
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
    /// constant time, then that the authorization is younger than the
    /// builder's `pending_max_age`), exchanges the code, and saves the
    /// token, replacing (and so un-flagging) any token stored for the
    /// account.
    ///
    /// # Errors
    ///
    /// [`Error::AuthorizationDenied`] when the callback carries an error,
    /// [`Error::InvalidInput`] when its state does not match, and the
    /// provider's and store's errors.
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
        let provider = self.inner.provider(&pending.provider)?;
        let token = provider.exchange_code(pending, callback).await?;
        let account = match (&pending.account, provider.account_for(&token)) {
            (Some(account), _) => account.clone(),
            (None, Some(account)) => account,
            (None, None) => {
                return Err(Error::configuration(format!(
                    "provider {} cannot tell which account the new token belongs to; \
                     set AuthorizeRequest::account",
                    pending.provider
                )));
            }
        };
        let key = TokenKey::new(pending.provider.clone(), account);
        let token = self.inner.replace(&key, token).await?;
        self.inner.emit(TokenEvent::Authorized { key: key.clone() });
        Ok((key, AccessToken::new(token)))
    }

    /// Revokes the grant at the provider, then deletes the token locally.
    /// If the provider cannot revoke, nothing is deleted.
    ///
    /// # Errors
    ///
    /// [`Error::ReauthorizationRequired`] when nothing is stored,
    /// [`Error::Unsupported`] when the provider has no revocation, and the
    /// provider's errors (the local token is then kept).
    pub async fn revoke(&self, key: &TokenKey) -> Result<()> {
        let provider = self.inner.provider(&key.provider)?;
        let stored = self.inner.load_required(key).await?;
        provider
            .revoke(&stored.value)
            .await
            .map_err(|e| e.for_key(key))?;
        self.remove(key).await?;
        self.inner.emit(TokenEvent::Revoked { key: key.clone() });
        Ok(())
    }

    /// Deletes the token locally only (a logout). Returns whether one was
    /// stored.
    ///
    /// # Errors
    ///
    /// The store's errors.
    pub async fn remove(&self, key: &TokenKey) -> Result<bool> {
        let _lock = self.inner.store.lock(key, self.inner.lock_wait).await?;
        let existed = self.inner.store.delete(key).await?;
        self.inner.write_cache().remove(key);
        if existed {
            self.inner.emit(TokenEvent::Removed { key: key.clone() });
        }
        Ok(existed)
    }

    /// Asks the provider about the stored access token, without refreshing.
    ///
    /// # Errors
    ///
    /// [`Error::ReauthorizationRequired`] when nothing is stored,
    /// [`Error::Unsupported`] when the provider cannot introspect.
    pub async fn introspect(&self, key: &TokenKey) -> Result<Introspection> {
        let provider = self.inner.provider(&key.provider)?;
        let stored = self.inner.load_required(key).await?;
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
        self.inner.write_cache().remove(key);
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

    fn cached_fresh(&self, key: &TokenKey) -> Option<Arc<TokenSet>> {
        let now = self.inner.now();
        let cache = self.read_cache();
        let cached = cache.get(key)?;
        let token = &cached.token;
        (token.reauthorization_required().is_none() && token.is_fresh(now, self.inner.skew))
            .then(|| Arc::clone(token))
    }

    fn read_cache(&self) -> std::sync::RwLockReadGuard<'_, HashMap<TokenKey, Cached>> {
        self.inner
            .cache
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Joins the key's flight, or leads a new one.
    ///
    /// The leader polls the refresh work itself: no task hop, no shared
    /// future (both were measured to cost two thread hand-offs per refresh).
    /// Followers wait for its result on a watch channel. A leader dropped
    /// before the work is done hands the work to a task, which finishes it
    /// and tells the followers.
    async fn fly(&self, key: &TokenKey, mode: Mode) -> Result<Arc<TokenSet>> {
        loop {
            let joined = {
                let mut flights = self
                    .inner
                    .flights
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                match flights.get(key) {
                    Some(flight) => Ok(flight.clone()),
                    None => {
                        let (done, flight) = watch::channel(None);
                        flights.insert(key.clone(), flight);
                        Err(self.inner.flight_work(key.clone(), mode, done))
                    }
                }
            };
            match joined {
                Err(work) => {
                    let mut guard = FinishOnDrop(Some(work));
                    let result = guard.0.as_mut().expect("work is present until done").await;
                    guard.0 = None;
                    return result;
                }
                Ok(mut flight) => {
                    let outcome = flight
                        .wait_for(Option::is_some)
                        .await
                        .map(|done| done.clone().expect("waited for Some"));
                    let Ok(result) = outcome else {
                        // The work was dropped unfinished (its leader went
                        // away outside a runtime): clear the dead flight and
                        // start over.
                        let mut flights = self
                            .inner
                            .flights
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner);
                        if flights.get(key).is_some_and(|f| f.same_channel(&flight)) {
                            flights.remove(key);
                        }
                        continue;
                    };
                    // A forced refresh must not be satisfied by a flight
                    // that only read a token still fresh: fly our own.
                    if mode == Mode::Fresh {
                        return result;
                    }
                }
            }
        }
    }
}

/// Drives unfinished refresh work to completion in a task when its leader
/// goes away: a refresh abandoned between the server rotating the token and
/// the new pair being saved is how grants get burned.
struct FinishOnDrop(Option<Work>);

impl Drop for FinishOnDrop {
    fn drop(&mut self) {
        let Some(work) = self.0.take() else { return };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(work);
            }
            Err(_) => {
                warn!("a refresh was abandoned outside a Tokio runtime and cannot be finished")
            }
        }
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

    fn write_cache(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<TokenKey, Cached>> {
        self.cache.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn cache_put(&self, key: &TokenKey, token: Arc<TokenSet>, version: Version) {
        // Every writer of the cache holds the key lock or runs the key's
        // single flight, so the last write is the newest.
        self.write_cache()
            .insert(key.clone(), Cached { token, version });
    }

    fn emit(&self, event: TokenEvent) {
        // No subscribers is fine.
        let _ = self.events.send(event);
    }

    /// The work of one flight: the protocol, then leaving the flight map
    /// and telling the followers.
    fn flight_work(
        self: &Arc<Self>,
        key: TokenKey,
        mode: Mode,
        done: watch::Sender<Option<Result<Arc<TokenSet>>>>,
    ) -> Work {
        let inner = Arc::clone(self);
        async move {
            let result = AssertUnwindSafe(inner.ensure(&key, mode))
                .catch_unwind()
                .await
                .unwrap_or_else(|_| {
                    Err(Error::transient(format!(
                        "the refresh of {key} panicked (a bug in its provider or store); try again"
                    )))
                });
            // The flight leaves the map only after the cache holds its
            // result, so a newcomer either joins it or hits the cache.
            inner
                .flights
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&key);
            done.send_replace(Some(result.clone()));
            result
        }
        .boxed()
    }

    async fn load_required(&self, key: &TokenKey) -> Result<Versioned<TokenSet>> {
        self.store.load(key).await?.ok_or_else(|| {
            Error::reauthorization_required(
                Some(key.clone()),
                "no token is stored for this account",
            )
        })
    }

    /// Returns `stored` if it can be used as is: caches it and answers for a
    /// flagged token too.
    fn usable(
        &self,
        key: &TokenKey,
        stored: &Versioned<TokenSet>,
        mode: Mode,
    ) -> Option<Result<Arc<TokenSet>>> {
        let token = Arc::new(stored.value.clone());
        if let Some(reason) = token.reauthorization_required() {
            let err = Error::reauthorization_required(Some(key.clone()), reason);
            self.cache_put(key, token, stored.version);
            return Some(Err(err));
        }
        let usable = match mode {
            Mode::Fresh => token.is_fresh(self.now(), self.skew),
            Mode::Forced { seen } => seen.is_some_and(|seen| stored.version > seen),
        };
        if usable {
            self.cache_put(key, Arc::clone(&token), stored.version);
            Some(Ok(token))
        } else {
            None
        }
    }

    /// The body of a flight: steps 3 to 5 of the protocol.
    async fn ensure(&self, key: &TokenKey, mode: Mode) -> Result<Arc<TokenSet>> {
        let provider = Arc::clone(self.provider(&key.provider)?);
        if mode == Mode::Fresh {
            // A cache miss on a token another process keeps fresh needs no lock.
            if let Some(done) = self.usable(key, &self.load_required(key).await?, mode) {
                return done;
            }
        }
        let _lock = self.store.lock(key, self.lock_wait).await?;
        let mut current = self.load_required(key).await?;
        if let Some(done) = self.usable(key, &current, mode) {
            debug!(%key, "another refresher got there first; using its token");
            return done;
        }
        if current.value.refresh_token().is_none() {
            return Err(Error::reauthorization_required(
                Some(key.clone()),
                "the access token expired and the grant has no refresh token",
            ));
        }
        let mut attempt = 1;
        loop {
            debug!(%key, attempt, "refreshing");
            match provider.refresh(&current.value).await {
                Ok(fresh) => {
                    let merged = current.value.merge_refreshed(fresh);
                    let version = self.save_refreshed(key, &merged, current.version).await?;
                    let token = Arc::new(merged);
                    self.cache_put(key, Arc::clone(&token), version);
                    self.emit(TokenEvent::Refreshed {
                        key: key.clone(),
                        expires_at: token.expires_at(),
                    });
                    return Ok(token);
                }
                Err(err) if err.is_reauthorization_required() => {
                    return Err(self.flag(key, current, err).await);
                }
                Err(err) if err.is_transient() => {
                    let Some(delay) = self.retry.delay_after(attempt, err.retry_after()) else {
                        warn!(%key, attempt, error = %err, "refresh failed; giving up for now");
                        return Err(err.for_key(key));
                    };
                    debug!(%key, attempt, ?delay, error = %err, "transient refresh failure; retrying");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                    // Fitbit's 409 means another refresh is in flight: the
                    // store may hold its result by now.
                    current = self.load_required(key).await?;
                    if let Some(done) = self.usable(key, &current, Mode::Fresh) {
                        return done;
                    }
                }
                Err(err) => return Err(err.for_key(key)),
            }
        }
    }

    async fn save_refreshed(
        &self,
        key: &TokenKey,
        token: &TokenSet,
        expected: Version,
    ) -> Result<Version> {
        match self.store.save(key, token, Some(expected)).await {
            Ok(version) => Ok(version),
            Err(err) if err.store_kind() == Some(StoreErrorKind::Conflict) => {
                warn!(%key, "token changed in the store while its key lock was held");
                Err(Error::store(
                    StoreErrorKind::Conflict,
                    Some(key.clone()),
                    "the token was changed in the store while this process held the key lock \
                     (a writer that does not take the lock?); the refreshed token was not saved",
                ))
            }
            Err(err) => {
                // One more try for a passing store failure: the new pair
                // exists only in memory now.
                warn!(%key, error = %err, "saving the refreshed token failed; trying once more");
                self.store.save(key, token, Some(expected)).await
            }
        }
    }

    /// Flags the stored token as needing reauthorization, keeping it.
    async fn flag(&self, key: &TokenKey, current: Versioned<TokenSet>, err: Error) -> Error {
        let reason = match &err {
            Error::ReauthorizationRequired { reason, .. } => reason.clone(),
            other => other.to_string(),
        };
        let flagged = current.value.flagged_for_reauthorization(reason.clone());
        match self.store.save(key, &flagged, Some(current.version)).await {
            Ok(version) => self.cache_put(key, Arc::new(flagged), version),
            Err(save_err) => warn!(%key, error = %save_err, "could not flag the token"),
        }
        warn!(%key, %reason, "reauthorization required");
        self.emit(TokenEvent::ReauthorizationRequired {
            key: key.clone(),
            reason,
        });
        err.for_key(key)
    }

    /// Saves a token from a new authorization under the key lock.
    async fn replace(&self, key: &TokenKey, token: TokenSet) -> Result<Arc<TokenSet>> {
        let _lock = self.store.lock(key, self.lock_wait).await?;
        // A corrupt stored token makes `load` fail, and the error stands:
        // overwriting it would destroy what a person may need to look at.
        let expected = self.store.load(key).await?.map(|v| v.version);
        let version = self.store.save(key, &token, expected).await?;
        let token = Arc::new(token);
        self.cache_put(key, Arc::clone(&token), version);
        Ok(token)
    }
}
