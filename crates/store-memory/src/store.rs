//! [`MemoryTokenStore`].

use std::collections::HashMap;
use std::collections::hash_map::Entry;
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

/// The maps' hasher: `foldhash`, seeded per process, rather than the
/// standard SipHash, which cost a sixth of this store's work per refresh.
type Hasher = foldhash::fast::RandomState;

#[derive(Default)]
struct Shared {
    tokens: Mutex<HashMap<TokenKey, Versioned<TokenSet>, Hasher>>,
    locks: Mutex<HashMap<TokenKey, Arc<tokio::sync::Mutex<()>>, Hasher>>,
    /// Versions come from one counter, so a key deleted and created again
    /// never reuses a version someone may still hold.
    next_version: AtomicU64,
}

impl MemoryTokenStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn tokens(&self) -> std::sync::MutexGuard<'_, HashMap<TokenKey, Versioned<TokenSet>, Hasher>> {
        self.shared
            .tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Number of keys with a lock entry (held or waited for); for tests of
    /// bounded memory.
    pub fn lock_entries(&self) -> usize {
        self.shared
            .locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// A compare-and-swap save, at once.
    fn save_now(
        &self,
        key: &TokenKey,
        token: &TokenSet,
        expected: Option<Version>,
    ) -> Result<Version> {
        let mut tokens = self.tokens();
        // One lookup, and a stored token is replaced in place.
        let entry = tokens.entry(key.clone());
        let current = match &entry {
            Entry::Occupied(stored) => Some(stored.get().version),
            Entry::Vacant(_) => None,
        };
        if current != expected {
            return Err(conflict(key, expected, current));
        }
        let version = self.bump();
        let value = Versioned {
            value: token.clone(),
            version,
        };
        match entry {
            Entry::Occupied(mut stored) => {
                stored.insert(value);
            }
            Entry::Vacant(slot) => {
                slot.insert(value);
            }
        }
        Ok(version)
    }

    fn bump(&self) -> Version {
        Version(self.shared.next_version.fetch_add(1, Ordering::Relaxed) + 1)
    }
}

impl fmt::Debug for MemoryTokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryTokenStore")
            .field("tokens", &self.tokens().len())
            .finish_non_exhaustive()
    }
}

/// A held lease on one key of a [`MemoryTokenStore`]. Dropping it releases
/// the lease, and removes the key's entry from the lock map when nobody else
/// holds or waits for it, so the map does not grow with every key ever
/// locked.
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
        let mutex = Arc::clone(OwnedMutexGuard::mutex(&guard));
        drop(guard);
        self.shared.forget_if_idle(&self.key, &mutex);
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
        Ok(self.tokens().get(key).cloned())
    }

    async fn save(
        &self,
        key: &TokenKey,
        token: &TokenSet,
        expected: Option<Version>,
    ) -> Result<Version> {
        self.save_now(key, token, expected)
    }

    // The leased forms check the lease and then read or write in the same
    // call, instead of the defaults' second (boxed) call: two fewer
    // allocations per refresh.
    async fn load_leased(&self, lease: &dyn KeyLock) -> Result<Option<Versioned<TokenSet>>> {
        lease.check().await?;
        Ok(self.tokens().get(lease.key()).cloned())
    }

    async fn save_leased(
        &self,
        lease: &dyn KeyLock,
        token: &TokenSet,
        expected: Option<Version>,
    ) -> Result<Version> {
        lease.check().await?;
        self.save_now(lease.key(), token, expected)
    }

    async fn delete(&self, key: &TokenKey) -> Result<bool> {
        Ok(self.tokens().remove(key).is_some())
    }

    async fn list(&self, provider: Option<&ProviderId>) -> Result<Vec<TokenKey>> {
        Ok(self
            .tokens()
            .keys()
            .filter(|k| provider.is_none_or(|p| &k.provider == p))
            .cloned()
            .collect())
    }

    async fn lock(&self, key: &TokenKey, wait: Duration) -> Result<Box<dyn KeyLock>> {
        let mutex = {
            let mut locks = self
                .shared
                .locks
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            Arc::clone(locks.entry(key.clone()).or_default())
        };
        // Declared before the wait, so it drops after it: a timed-out or
        // cancelled waiter leaves no lock entry behind.
        let mut waiting = Waiting {
            shared: &self.shared,
            key,
            mutex: Some(Arc::clone(&mutex)),
        };
        // A free lock is taken at once, without arming a timer. (`try_lock`
        // never jumps the queue: a lock released to a waiter is not free.)
        let guard = match Arc::clone(&mutex).try_lock_owned() {
            Ok(guard) => guard,
            Err(_) => tokio::time::timeout(wait, mutex.lock_owned())
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
                })?,
        };
        waiting.mutex = None;
        Ok(Box::new(MemoryKeyLock {
            key: key.clone(),
            guard: Some(guard),
            shared: Arc::clone(&self.shared),
        }))
    }
}

/// A waiter for a key lock; if it goes away without the lock, it removes
/// the key's lock entry unless someone else holds or waits for it.
struct Waiting<'a> {
    shared: &'a Shared,
    key: &'a TokenKey,
    mutex: Option<Arc<tokio::sync::Mutex<()>>>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if let Some(mutex) = self.mutex.take() {
            self.shared.forget_if_idle(self.key, &mutex);
        }
    }
}

impl Shared {
    /// Removes `key`'s lock entry if it is `mutex` and only the map and the
    /// caller hold it. Waiters clone the entry under the map's mutex, so none
    /// can slip in between the count and the removal.
    fn forget_if_idle(&self, key: &TokenKey, mutex: &Arc<tokio::sync::Mutex<()>>) {
        let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
        if let Entry::Occupied(entry) = locks.entry(key.clone())
            && Arc::ptr_eq(entry.get(), mutex)
            && Arc::strong_count(entry.get()) == 2
        {
            entry.remove();
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
