//! A fault-injecting [`TokenStore`] around the shared memory store: one
//! wrapper per simulated process, all over clones of one
//! [`MemoryTokenStore`].
//!
//! Faults are injected *before* the inner operation, never after it
//! succeeded (a save that landed and then reports failure is not a fault a
//! real store has). A dead process's wrapper fails everything, and its
//! leases report themselves lost, so its leftover tasks stop.

use std::sync::Arc;
use std::time::Duration;

use auth_core::{
    Clock, Error, KeyLock, ProviderId, Result, StoreErrorKind, TokenKey, TokenSet, TokenStore,
    Version, Versioned, async_trait,
};
use store_memory::MemoryTokenStore;

use super::SimClock;
use super::chaos::Chaos;
use super::server::Server;

/// The memory store, with faults, as one process sees it.
#[derive(Debug)]
pub(crate) struct FaultStore {
    inner: MemoryTokenStore,
    chaos: Arc<Chaos>,
    server: Arc<Server>,
    clock: Arc<SimClock>,
    proc: usize,
}

impl FaultStore {
    pub(crate) fn new(
        inner: MemoryTokenStore,
        chaos: Arc<Chaos>,
        server: Arc<Server>,
        clock: Arc<SimClock>,
        proc: usize,
    ) -> Self {
        Self {
            inner,
            chaos,
            server,
            clock,
            proc,
        }
    }

    fn fail(&self, kind: StoreErrorKind, key: &TokenKey, what: &str) -> Error {
        Error::store(kind, Some(key.clone()), format!("injected: {what}"))
    }

    fn gone(&self, key: &TokenKey) -> Result<()> {
        if self.server.is_dead(self.proc) {
            return Err(self.fail(StoreErrorKind::Unavailable, key, "the process is gone"));
        }
        Ok(())
    }
}

#[async_trait]
impl TokenStore for FaultStore {
    async fn load(&self, key: &TokenKey) -> Result<Option<Versioned<TokenSet>>> {
        self.gone(key)?;
        if self.chaos.scripted("load_fail") || self.chaos.chance(self.chaos.rates().load_fail) {
            return Err(self.fail(StoreErrorKind::Io, key, "read error"));
        }
        self.inner.load(key).await
    }

    async fn save(
        &self,
        key: &TokenKey,
        token: &TokenSet,
        expected: Option<Version>,
    ) -> Result<Version> {
        self.gone(key)?;
        if self.chaos.disk_full(self.clock.now()) {
            return Err(self.fail(StoreErrorKind::Io, key, "No space left on device"));
        }
        if self.chaos.scripted("save_fail") || self.chaos.chance(self.chaos.rates().save_fail) {
            return Err(self.fail(StoreErrorKind::Io, key, "write error"));
        }
        self.inner.save(key, token, expected).await
    }

    async fn delete(&self, key: &TokenKey) -> Result<bool> {
        self.gone(key)?;
        if self.chaos.chance(self.chaos.rates().delete_fail) {
            return Err(self.fail(StoreErrorKind::Io, key, "unlink error"));
        }
        self.inner.delete(key).await
    }

    async fn list(&self, provider: Option<&ProviderId>) -> Result<Vec<TokenKey>> {
        self.inner.list(provider).await
    }

    async fn lock(&self, key: &TokenKey, wait: Duration) -> Result<Box<dyn KeyLock>> {
        self.gone(key)?;
        let rates = self.chaos.rates();
        if self.chaos.scripted("lock_fail") || self.chaos.chance(rates.lock_fail) {
            return Err(self.fail(StoreErrorKind::Unavailable, key, "lock backend unavailable"));
        }
        if self.chaos.scripted("lock_timeout") || self.chaos.chance(rates.lock_timeout) {
            // A timeout takes the whole wait, like a real one.
            tokio::time::sleep(wait).await;
            return Err(self.fail(StoreErrorKind::LockTimeout, key, "lock wait timed out"));
        }
        let inner = self.inner.lock(key, wait).await?;
        Ok(Box::new(FaultLock {
            inner,
            chaos: Arc::clone(&self.chaos),
            server: Arc::clone(&self.server),
            proc: self.proc,
        }))
    }
}

/// A lease of the wrapped store; delegates, with faults.
#[derive(Debug)]
struct FaultLock {
    inner: Box<dyn KeyLock>,
    chaos: Arc<Chaos>,
    server: Arc<Server>,
    proc: usize,
}

#[async_trait]
impl KeyLock for FaultLock {
    fn key(&self) -> &TokenKey {
        self.inner.key()
    }

    async fn check(&self) -> Result<()> {
        if self.server.is_dead(self.proc) {
            return Err(Error::store(
                StoreErrorKind::LeaseLost,
                Some(self.key().clone()),
                "injected: the process is gone",
            ));
        }
        if self.chaos.chance(self.chaos.rates().check_fail) {
            return Err(Error::store(
                StoreErrorKind::Unavailable,
                Some(self.key().clone()),
                "injected: cannot check the lease now",
            ));
        }
        self.inner.check().await
    }
}
