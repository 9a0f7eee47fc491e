//! Shared helpers for auth-core's integration tests.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use auth_core::testing::FakeProvider;
use auth_core::{
    Clock, KeyLock, ProviderId, Result, TokenKey, TokenManager, TokenSet, TokenStore, Version,
    Versioned, async_trait,
};
use store_memory::MemoryTokenStore;
use tokio::time::Instant;

/// A store that counts every call, around a memory store.
#[derive(Debug, Default)]
pub struct CountingStore {
    pub inner: MemoryTokenStore,
    pub loads: AtomicU64,
    pub saves: AtomicU64,
    pub locks: AtomicU64,
    pub deletes: AtomicU64,
}

impl CountingStore {
    pub fn io_calls(&self) -> u64 {
        self.loads.load(Ordering::SeqCst)
            + self.saves.load(Ordering::SeqCst)
            + self.locks.load(Ordering::SeqCst)
            + self.deletes.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl TokenStore for CountingStore {
    async fn load(&self, key: &TokenKey) -> Result<Option<Versioned<TokenSet>>> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        self.inner.load(key).await
    }
    async fn save(
        &self,
        key: &TokenKey,
        token: &TokenSet,
        expected: Option<Version>,
    ) -> Result<Version> {
        self.saves.fetch_add(1, Ordering::SeqCst);
        self.inner.save(key, token, expected).await
    }
    async fn delete(&self, key: &TokenKey) -> Result<bool> {
        self.deletes.fetch_add(1, Ordering::SeqCst);
        self.inner.delete(key).await
    }
    async fn list(&self, provider: Option<&ProviderId>) -> Result<Vec<TokenKey>> {
        self.inner.list(provider).await
    }
    async fn lock(&self, key: &TokenKey, wait: Duration) -> Result<Box<dyn KeyLock>> {
        self.locks.fetch_add(1, Ordering::SeqCst);
        self.inner.lock(key, wait).await
    }
}

pub fn key() -> TokenKey {
    TokenKey::parse("fake", "26FWFL").unwrap()
}

/// A token that expired an hour ago, with a refresh token.
pub fn expired_token() -> TokenSet {
    TokenSet::new(
        "old-access-secret",
        "Bearer",
        SystemTime::now() - Duration::from_secs(7200),
    )
    .with_refresh_token("old-refresh-secret")
    .with_expires_in(Duration::from_secs(3600))
    .with_scopes(["read"])
}

/// A token valid for another hour.
pub fn valid_token() -> TokenSet {
    TokenSet::new("valid-access-secret", "Bearer", SystemTime::now())
        .with_refresh_token("valid-refresh-secret")
        .with_expires_in(Duration::from_secs(3600))
}

pub struct Setup {
    pub store: Arc<CountingStore>,
    pub provider: Arc<FakeProvider>,
    pub manager: TokenManager,
}

pub async fn setup_with(token: Option<TokenSet>) -> Setup {
    let store = Arc::new(CountingStore::default());
    if let Some(token) = token {
        store.inner.save(&key(), &token, None).await.unwrap();
    }
    let provider = Arc::new(FakeProvider::new("fake"));
    let manager = TokenManager::builder(store.clone())
        .provider(provider.clone())
        .retry_policy(auth_core::RetryPolicy::new(4, Duration::from_millis(10)))
        .build();
    Setup {
        store,
        provider,
        manager,
    }
}

/// Wall-clock time that moves with tokio's (paused) clock.
#[derive(Debug)]
pub struct TokioClock {
    start: SystemTime,
    at: Instant,
}

impl TokioClock {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            start: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            at: Instant::now(),
        })
    }
}

impl Clock for TokioClock {
    fn now(&self) -> SystemTime {
        self.start + self.at.elapsed()
    }
}

/// Stores account `i`'s token: access `a-i`, refresh `r-i`, expiring at
/// `expires_at`.
pub async fn store_token(
    store: &MemoryTokenStore,
    key: &TokenKey,
    i: usize,
    expires_at: SystemTime,
) {
    let token = TokenSet::new(
        format!("a-{i}"),
        "Bearer",
        expires_at - Duration::from_secs(3600),
    )
    .with_refresh_token(format!("r-{i}"))
    .with_expires_at(Some(expires_at));
    store.save(key, &token, None).await.unwrap();
}
