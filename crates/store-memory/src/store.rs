//! [`MemoryTokenStore`].

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use auth_core::{
    Error, KeyLock, ProviderId, Result, StoreErrorKind, TokenKey, TokenSet, TokenStore, Version,
    Versioned,
};
use tokio::sync::OwnedMutexGuard;

/// Tokens in memory. Clones share the same tokens and locks.
#[derive(Clone, Default)]
pub struct MemoryTokenStore {
    shared: Arc<Shared>,
}

/// The map's hasher: `foldhash`, seeded per process, rather than the
/// standard SipHash, which cost a sixth of this store's work per refresh.
type Hasher = foldhash::fast::RandomState;

/// A key's lease: an async mutex, so that waiting ties up no thread.
type Lease = Arc<tokio::sync::Mutex<()>>;

/// One map for tokens and leases: a refresh finds both with one lookup, and
/// a stored key keeps its lease between refreshes instead of allocating,
/// inserting and removing one every time (that churn was a tenth of the
/// manager's bookkeeping per refresh). An entry without a token lives only
/// while its lease is held or waited for, so memory grows with the stored
/// keys, never with every key ever locked.
type Entries = HashMap<TokenKey, Entry, Hasher>;

#[derive(Default)]
struct Entry {
    token: Option<Versioned<TokenSet>>,
    /// Made by the first `lock` of the key.
    lease: Option<Lease>,
}

#[derive(Default)]
struct Shared {
    entries: Mutex<Entries>,
    /// Versions come from one counter, so a key deleted and created again
    /// never reuses a version someone may still hold.
    next_version: AtomicU64,
}

impl Shared {
    fn entries(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The stored token of `key`.
    fn load(&self, key: &TokenKey) -> Option<Versioned<TokenSet>> {
        self.entries().get(key).and_then(|e| e.token.clone())
    }

    /// A compare-and-swap save, at once: one lookup when the key is
    /// stored (every refresh); a new key is inserted only once its version
    /// checks.
    fn save(&self, key: &TokenKey, token: &TokenSet, expected: Option<Version>) -> Result<Version> {
        let mut entries = self.entries();
        if let Some(entry) = entries.get_mut(key) {
            return self.put(key, &mut entry.token, token, expected);
        }
        let mut slot = None;
        let version = self.put(key, &mut slot, token, expected)?;
        entries.insert(
            key.clone(),
            Entry {
                token: slot,
                lease: None,
            },
        );
        Ok(version)
    }

    /// Replaces the token in `slot` if its version is `expected`.
    fn put(
        &self,
        key: &TokenKey,
        slot: &mut Option<Versioned<TokenSet>>,
        token: &TokenSet,
        expected: Option<Version>,
    ) -> Result<Version> {
        let current = slot.as_ref().map(|stored| stored.version);
        if current != expected {
            return Err(conflict(key, expected, current));
        }
        let version = Version(self.next_version.fetch_add(1, Ordering::Relaxed) + 1);
        *slot = Some(Versioned {
            value: token.clone(),
            version,
        });
        Ok(version)
    }

    /// Removes `key`'s token; its entry goes too unless its lease is in use.
    fn delete(&self, key: &TokenKey) -> bool {
        let mut entries = self.entries();
        let Some(entry) = entries.get_mut(key) else {
            return false;
        };
        let existed = entry.token.take().is_some();
        if entry
            .lease
            .as_ref()
            .is_none_or(|lease| Arc::strong_count(lease) == 1)
        {
            entries.remove(key);
        }
        existed
    }

    /// The lease of `key`, made (with its entry) on first use.
    fn lease(&self, key: &TokenKey) -> Lease {
        let mut entries = self.entries();
        if let Some(entry) = entries.get_mut(key) {
            return Arc::clone(entry.lease.get_or_insert_with(Lease::default));
        }
        let lease = Lease::default();
        entries.insert(
            key.clone(),
            Entry {
                token: None,
                lease: Some(Arc::clone(&lease)),
            },
        );
        lease
    }

    /// After `lease` was released or given up: removes `key`'s entry if it
    /// holds no token and nobody else holds or waits for the lease. Waiters
    /// clone the lease under the map's mutex, so none can slip in between
    /// the count and the removal.
    fn forget_if_idle(&self, key: &TokenKey, lease: &Lease) {
        let mut entries = self.entries();
        if let Some(entry) = entries.get(key)
            && entry.token.is_none()
            && entry
                .lease
                .as_ref()
                .is_some_and(|held| Arc::ptr_eq(held, lease) && Arc::strong_count(held) == 2)
        {
            entries.remove(key);
        }
    }
}

impl MemoryTokenStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of keys with a lease entry but no stored token (their lease is
    /// held or waited for); for tests of bounded memory.
    pub fn lock_entries(&self) -> usize {
        self.shared
            .entries()
            .values()
            .filter(|e| e.token.is_none())
            .count()
    }

    /// Checks `lease` unless it is one of this store's own, which cannot be
    /// lost while held: that check would be a boxed no-op on every leased
    /// call.
    async fn check(&self, lease: &dyn KeyLock) -> Result<()> {
        let any: &dyn Any = lease;
        match any.downcast_ref::<MemoryKeyLock>() {
            Some(own) if Arc::ptr_eq(&own.shared, &self.shared) => Ok(()),
            _ => lease.check().await,
        }
    }
}

impl fmt::Debug for MemoryTokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let entries = self.shared.entries();
        f.debug_struct("MemoryTokenStore")
            .field(
                "tokens",
                &entries.values().filter(|e| e.token.is_some()).count(),
            )
            .finish_non_exhaustive()
    }
}

/// A held lease on one key of a [`MemoryTokenStore`]. Dropping it releases
/// the lease, and removes the key's entry when it holds no token and nobody
/// else holds or waits for the lease, so the map does not grow with every
/// key ever locked.
struct MemoryKeyLock {
    key: TokenKey,
    guard: Option<OwnedMutexGuard<()>>,
    shared: Arc<Shared>,
}

impl Drop for MemoryKeyLock {
    fn drop(&mut self) {
        let Some(guard) = self.guard.take() else {
            return;
        };
        let lease = Arc::clone(OwnedMutexGuard::mutex(&guard));
        drop(guard);
        self.shared.forget_if_idle(&self.key, &lease);
    }
}

impl fmt::Debug for MemoryKeyLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryKeyLock")
            .field("key", &self.key)
            .finish()
    }
}

#[async_trait]
impl KeyLock for MemoryKeyLock {
    fn key(&self) -> &TokenKey {
        &self.key
    }

    /// A memory lease cannot be lost while its holder lives.
    async fn check(&self) -> Result<()> {
        Ok(())
    }
}

#[async_trait]
impl TokenStore for MemoryTokenStore {
    async fn load(&self, key: &TokenKey) -> Result<Option<Versioned<TokenSet>>> {
        Ok(self.shared.load(key))
    }

    async fn save(
        &self,
        key: &TokenKey,
        token: &TokenSet,
        expected: Option<Version>,
    ) -> Result<Version> {
        self.shared.save(key, token, expected)
    }

    // The leased forms check the lease and then read or write in the same
    // call, instead of the defaults' second (boxed) call; and this store's
    // own leases need no check (see `check`).
    async fn load_leased(&self, lease: &dyn KeyLock) -> Result<Option<Versioned<TokenSet>>> {
        self.check(lease).await?;
        Ok(self.shared.load(lease.key()))
    }

    async fn save_leased(
        &self,
        lease: &dyn KeyLock,
        token: &TokenSet,
        expected: Option<Version>,
    ) -> Result<Version> {
        self.check(lease).await?;
        self.shared.save(lease.key(), token, expected)
    }

    async fn delete(&self, key: &TokenKey) -> Result<bool> {
        Ok(self.shared.delete(key))
    }

    async fn list(&self, provider: Option<&ProviderId>) -> Result<Vec<TokenKey>> {
        Ok(self
            .shared
            .entries()
            .iter()
            .filter(|(k, e)| e.token.is_some() && provider.is_none_or(|p| &k.provider == p))
            .map(|(k, _)| k.clone())
            .collect())
    }

    async fn lock(&self, key: &TokenKey, wait: Duration) -> Result<Box<dyn KeyLock>> {
        // A free lease is taken at once, without arming a timer or
        // counting a waiter. (`try_lock` never jumps the queue: a lease
        // released to a waiter is not free.)
        let guard = match self.shared.lease(key).try_lock_owned() {
            Ok(guard) => guard,
            Err(_) => self.wait_for_lease(key, wait).await?,
        };
        Ok(Box::new(MemoryKeyLock {
            key: key.clone(),
            guard: Some(guard),
            shared: Arc::clone(&self.shared),
        }))
    }
}

impl MemoryTokenStore {
    /// Waits up to `wait` for `key`'s lease, which is held.
    async fn wait_for_lease(&self, key: &TokenKey, wait: Duration) -> Result<OwnedMutexGuard<()>> {
        let lease = self.shared.lease(key);
        // Declared before the wait, so it drops after it: a timed-out or
        // cancelled waiter leaves no entry behind.
        let mut waiting = Waiting {
            shared: &self.shared,
            key,
            lease: Some(Arc::clone(&lease)),
        };
        let guard = tokio::time::timeout(wait, lease.lock_owned())
            .await
            .map_err(|_| {
                Error::store(
                    StoreErrorKind::LockTimeout,
                    Some(key.clone()),
                    format!(
                        "could not take the key lock within {wait:?}; another task holds it \
                         (a refresh in progress?); try again"
                    ),
                )
            })?;
        waiting.lease = None;
        Ok(guard)
    }
}

/// A waiter for a lease; if it goes away without the lease, it removes the
/// key's entry unless it holds a token or someone else holds or waits for
/// the lease.
struct Waiting<'a> {
    shared: &'a Shared,
    key: &'a TokenKey,
    lease: Option<Lease>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if let Some(lease) = self.lease.take() {
            self.shared.forget_if_idle(self.key, &lease);
        }
    }
}

fn conflict(key: &TokenKey, expected: Option<Version>, current: Option<Version>) -> Error {
    let show = |v: Option<Version>| v.map_or_else(|| "absent".to_owned(), |v| v.to_string());
    Error::store(
        StoreErrorKind::Conflict,
        Some(key.clone()),
        format!(
            "expected version {}, found {}; reload and try again",
            show(expected),
            show(current)
        ),
    )
}
