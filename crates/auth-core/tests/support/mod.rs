//! Shared helpers for auth-core's integration tests.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use auth_core::testing::FakeProvider;
use auth_core::{
    Clock, Expect, Lease, ProviderId, Record, Result, Sequence, Stored, TokenKey, TokenManager,
    TokenSet, TokenStore, Version, async_trait,
};
use store_memory::MemoryTokenStore;
use tokio::time::Instant;

/// Calls counted by a [`CountingStore`], its leases' included.
#[derive(Debug, Default)]
pub struct Counts {
    pub loads: AtomicU64,
    pub saves: AtomicU64,
    pub marks: AtomicU64,
    pub locks: AtomicU64,
    pub deletes: AtomicU64,
}

/// A store that counts every call, around a memory store.
#[derive(Debug, Default)]
pub struct CountingStore {
    pub inner: MemoryTokenStore,
    pub counts: Arc<Counts>,
}

impl CountingStore {
    pub fn io_calls(&self) -> u64 {
        let c = &self.counts;
        c.loads.load(Ordering::SeqCst)
            + c.saves.load(Ordering::SeqCst)
            + c.marks.load(Ordering::SeqCst)
            + c.locks.load(Ordering::SeqCst)
            + c.deletes.load(Ordering::SeqCst)
    }

    pub fn loads(&self) -> u64 {
        self.counts.loads.load(Ordering::SeqCst)
    }

    pub fn locks(&self) -> u64 {
        self.counts.locks.load(Ordering::SeqCst)
    }
}

#[derive(Debug)]
struct CountingLease {
    inner: Box<dyn Lease>,
    counts: Arc<Counts>,
}

fn count(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::SeqCst);
}

#[async_trait]
impl Lease for CountingLease {
    fn key(&self) -> &TokenKey {
        self.inner.key()
    }
    async fn load(&self) -> Result<Option<Stored>> {
        count(&self.counts.loads);
        self.inner.load().await
    }
    async fn mark_in_flight(&self, expected: Version) -> Result<Version> {
        count(&self.counts.marks);
        self.inner.mark_in_flight(expected).await
    }
    async fn save(&self, token: &TokenSet, expected: Expect, record: Record) -> Result<Version> {
        count(&self.counts.saves);
        self.inner.save(token, expected, record).await
    }
    async fn save_and_release(
        self: Box<Self>,
        token: &TokenSet,
        expected: Expect,
        record: Record,
    ) -> Result<Version> {
        count(&self.counts.saves);
        self.inner.save_and_release(token, expected, record).await
    }
    async fn delete(&self, expected: Version) -> Result<Version> {
        count(&self.counts.deletes);
        self.inner.delete(expected).await
    }
    async fn next_sequence(&self) -> Result<Sequence> {
        self.inner.next_sequence().await
    }
    async fn release(self: Box<Self>) -> Result<()> {
        self.inner.release().await
    }
}

#[async_trait]
impl TokenStore for CountingStore {
    async fn load(&self, key: &TokenKey) -> Result<Option<Stored>> {
        count(&self.counts.loads);
        self.inner.load(key).await
    }
    async fn list(&self, provider: Option<&ProviderId>) -> Result<Vec<TokenKey>> {
        self.inner.list(provider).await
    }
    async fn lock(&self, key: &TokenKey, wait: Duration) -> Result<Box<dyn Lease>> {
        count(&self.counts.locks);
        let inner = self.inner.lock(key, wait).await?;
        Ok(Box::new(CountingLease {
            inner,
            counts: Arc::clone(&self.counts),
        }))
    }
    async fn orphaned(&self, limit: usize) -> Result<Vec<TokenKey>> {
        self.inner.orphaned(limit).await
    }
    fn lease_ttl(&self) -> Option<Duration> {
        self.inner.lease_ttl()
    }
}

/// Stores `token` for `key` over whatever is there, clearing any record,
/// as a test's given.
pub async fn seed(store: &dyn TokenStore, key: &TokenKey, token: &TokenSet) -> Version {
    let lease = store.lock(key, Duration::from_secs(1)).await.unwrap();
    let expect = match lease.load().await.unwrap() {
        Some(row) => Expect::Version(row.version),
        None => Expect::Absent,
    };
    lease
        .save_and_release(token, expect, Record::Clear)
        .await
        .unwrap()
}

/// The stored token of `key` (panics if there is none).
pub async fn stored(store: &dyn TokenStore, key: &TokenKey) -> TokenSet {
    store
        .load(key)
        .await
        .unwrap()
        .and_then(|row| row.token)
        .expect("a token is stored")
}

/// Whether a token (not a tombstone) is stored for `key`.
pub async fn holds_token(store: &dyn TokenStore, key: &TokenKey) -> bool {
    store
        .load(key)
        .await
        .unwrap()
        .is_some_and(|row| row.token.is_some())
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
        seed(&store.inner, &key(), &token).await;
    }
    // Rotating, with a replay window (as Fitbit's): a refresh left in
    // flight is replayed at once.
    let provider = Arc::new(FakeProvider::new("fake").with_refresh_rules(
        auth_core::RefreshRules::rotating_with_window(Duration::from_secs(120), false),
    ));
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
    seed(store, key, &token).await;
}

/// Faults a [`FlakyStore`] injects into its leases' saves.
#[derive(Debug, Default)]
pub struct Faults {
    /// The next this many saves fail with `fail_kind`.
    pub fail_saves: std::sync::atomic::AtomicU32,
    /// `LeaseLost` when set, else `Unavailable`.
    pub lease_lost: std::sync::atomic::AtomicBool,
    /// While set, saves wait here for a permit.
    pub gate: std::sync::Mutex<Option<Arc<tokio::sync::Semaphore>>>,
    /// Notified when a save starts (remembered if nobody waits yet).
    pub save_started: tokio::sync::Notify,
    /// The next this many saves take effect, and then report `Unavailable`
    /// (the answer was lost on its way back).
    pub lose_answers: std::sync::atomic::AtomicU32,
}

impl Faults {
    /// Makes the next `n` saves fail, with `LeaseLost` or `Unavailable`.
    pub fn fail_next_saves(&self, n: u32, lease_lost: bool) {
        self.lease_lost.store(lease_lost, Ordering::SeqCst);
        self.fail_saves.store(n, Ordering::SeqCst);
    }

    /// Makes the next `n` saves take effect and then fail, as when the
    /// connection breaks after the statement was sent.
    pub fn lose_next_answers(&self, n: u32) {
        self.lose_answers.store(n, Ordering::SeqCst);
    }

    /// Holds every save until `release`.
    pub fn hold_saves(&self) {
        *self.gate.lock().unwrap() = Some(Arc::new(tokio::sync::Semaphore::new(0)));
    }

    /// Lets the held saves through, and stops holding.
    pub fn release(&self) {
        if let Some(gate) = self.gate.lock().unwrap().take() {
            gate.add_permits(1_000);
        }
    }

    async fn before_save(&self) -> Result<()> {
        self.save_started.notify_one();
        let gate = self.gate.lock().unwrap().clone();
        if let Some(gate) = gate {
            let _permit = gate.acquire().await;
        }
        let failing = self
            .fail_saves
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            let kind = if self.lease_lost.load(Ordering::SeqCst) {
                auth_core::StoreErrorKind::LeaseLost
            } else {
                auth_core::StoreErrorKind::Unavailable
            };
            return Err(auth_core::Error::store(kind, None, "injected by the test"));
        }
        Ok(())
    }

    fn after_save(&self, version: Version) -> Result<Version> {
        let losing = self
            .lose_answers
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if losing {
            return Err(auth_core::Error::store(
                auth_core::StoreErrorKind::Unavailable,
                None,
                "injected by the test: the save took effect, its answer was lost",
            ));
        }
        Ok(version)
    }
}

/// A memory store whose saves can be made to fail or wait; clones share
/// everything.
#[derive(Debug, Clone)]
pub struct FlakyStore {
    pub inner: MemoryTokenStore,
    pub faults: Arc<Faults>,
}

impl FlakyStore {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            inner: MemoryTokenStore::with_clock(clock),
            faults: Arc::default(),
        }
    }
}

#[derive(Debug)]
struct FlakyLease {
    inner: Box<dyn Lease>,
    faults: Arc<Faults>,
}

#[async_trait]
impl Lease for FlakyLease {
    fn key(&self) -> &TokenKey {
        self.inner.key()
    }
    async fn load(&self) -> Result<Option<Stored>> {
        self.inner.load().await
    }
    async fn mark_in_flight(&self, expected: Version) -> Result<Version> {
        self.inner.mark_in_flight(expected).await
    }
    async fn save(&self, token: &TokenSet, expected: Expect, record: Record) -> Result<Version> {
        self.faults.before_save().await?;
        let version = self.inner.save(token, expected, record).await?;
        self.faults.after_save(version)
    }
    async fn save_and_release(
        self: Box<Self>,
        token: &TokenSet,
        expected: Expect,
        record: Record,
    ) -> Result<Version> {
        self.faults.before_save().await?;
        let version = self.inner.save_and_release(token, expected, record).await?;
        self.faults.after_save(version)
    }
    async fn delete(&self, expected: Version) -> Result<Version> {
        self.inner.delete(expected).await
    }
    async fn next_sequence(&self) -> Result<Sequence> {
        self.inner.next_sequence().await
    }
    async fn release(self: Box<Self>) -> Result<()> {
        self.inner.release().await
    }
}

#[async_trait]
impl TokenStore for FlakyStore {
    async fn load(&self, key: &TokenKey) -> Result<Option<Stored>> {
        self.inner.load(key).await
    }
    async fn list(&self, provider: Option<&ProviderId>) -> Result<Vec<TokenKey>> {
        self.inner.list(provider).await
    }
    async fn lock(&self, key: &TokenKey, wait: Duration) -> Result<Box<dyn Lease>> {
        let inner = self.inner.lock(key, wait).await?;
        Ok(Box::new(FlakyLease {
            inner,
            faults: Arc::clone(&self.faults),
        }))
    }
    async fn orphaned(&self, limit: usize) -> Result<Vec<TokenKey>> {
        self.inner.orphaned(limit).await
    }
    fn lease_ttl(&self) -> Option<Duration> {
        self.inner.lease_ttl()
    }
}
