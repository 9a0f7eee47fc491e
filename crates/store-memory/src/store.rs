//! [`MemoryTokenStore`].

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use auth_core::{
    Clock, Error, Expect, InFlight, Lease, ProviderId, Record, Result, Sequence, StoreErrorKind,
    Stored, SystemClock, TokenKey, TokenSet, TokenStore, Version,
};
use tokio::sync::OwnedMutexGuard;

/// Tokens in memory. Clones share the same tokens and leases.
#[derive(Clone)]
pub struct MemoryTokenStore {
    shared: Arc<Shared>,
}

impl Default for MemoryTokenStore {
    fn default() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }
}

/// The map's hasher: `foldhash`, seeded per process, rather than the
/// standard SipHash, which cost a sixth of this store's work per refresh.
type Hasher = foldhash::fast::RandomState;

/// A key's lease: an async mutex, so that waiting ties up no thread. It is
/// held until released or dropped, so it cannot be lost while its holder
/// lives ([`TokenStore::lease_ttl`] is `None`).
type Mutexed = Arc<tokio::sync::Mutex<()>>;

/// One map for rows and leases: a refresh finds both with one lookup. An
/// entry without a row and without handed-out sequence numbers lives only
/// while its lease is held or waited for, so memory grows with the keys
/// that were written, never with every key ever locked.
type Entries = HashMap<TokenKey, Entry, Hasher>;

#[derive(Default)]
struct Entry {
    row: Option<Row>,
    /// The highest login sequence handed out for the key.
    sequence: u64,
    /// Made by the first `lock` of the key.
    lease: Option<Mutexed>,
}

struct Row {
    version: Version,
    token: Option<TokenSet>,
    grant: Sequence,
    in_flight: Option<InFlight>,
}

struct Shared {
    entries: Mutex<Entries>,
    /// Versions come from one counter, so a version is never reused, even
    /// by another key.
    next_version: AtomicU64,
    /// The store's clock: records are stamped and rows read with it.
    clock: Arc<dyn Clock>,
}

impl Shared {
    fn entries(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn next_version(&self) -> Version {
        Version(self.next_version.fetch_add(1, Ordering::Relaxed) + 1)
    }

    fn load(&self, key: &TokenKey) -> Option<Stored> {
        let entries = self.entries();
        let row = entries.get(key)?.row.as_ref()?;
        Some(Stored {
            version: row.version,
            token: row.token.clone(),
            grant: row.grant,
            in_flight: row.in_flight,
            read_at: self.clock.now(),
        })
    }

    /// Runs `write` on `key`'s entry (made if missing) under the map's lock.
    fn write<T>(&self, key: &TokenKey, write: impl FnOnce(&mut Entry) -> Result<T>) -> Result<T> {
        let mut entries = self.entries();
        let entry = entries.entry(key.clone()).or_default();
        write(entry)
    }

    fn save(
        &self,
        key: &TokenKey,
        token: &TokenSet,
        expected: Expect,
        record: Record,
    ) -> Result<Version> {
        self.write(key, |entry| {
            let grant = match (expected, &entry.row) {
                (Expect::Absent, None) => Sequence(0),
                (Expect::Version(v), Some(row)) if row.version == v => row.grant,
                (Expect::Login(s), None) => s,
                (Expect::Login(s), Some(row)) if row.grant < s => s,
                (_, row) => return Err(conflict(key, expected, row.as_ref())),
            };
            let in_flight = match record {
                Record::Keep => entry.row.as_ref().and_then(|r| r.in_flight),
                Record::Clear => None,
            };
            if let Expect::Login(s) = expected {
                entry.sequence = entry.sequence.max(s.0);
            }
            let version = self.next_version();
            entry.row = Some(Row {
                version,
                token: Some(token.clone()),
                grant,
                in_flight,
            });
            Ok(version)
        })
    }

    /// After a lease was released or given up: removes `key`'s entry if it
    /// holds no row and no sequence and nobody else holds or waits for the
    /// lease. Waiters clone the lease under the map's mutex, so none can
    /// slip in between the count and the removal.
    fn forget_if_idle(&self, key: &TokenKey, lease: &Mutexed) {
        let mut entries = self.entries();
        if let Some(entry) = entries.get(key)
            && entry.row.is_none()
            && entry.sequence == 0
            && entry
                .lease
                .as_ref()
                .is_some_and(|held| Arc::ptr_eq(held, lease) && Arc::strong_count(held) == 2)
        {
            entries.remove(key);
        }
    }

    /// The lease of `key`, made (with its entry) on first use.
    fn lease(&self, key: &TokenKey) -> Mutexed {
        let mut entries = self.entries();
        let entry = entries.entry(key.clone()).or_default();
        Arc::clone(entry.lease.get_or_insert_with(Mutexed::default))
    }
}

impl MemoryTokenStore {
    /// An empty store on the system clock.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store whose clock (the one records are stamped with and
    /// rows read at) is `clock`: for tests that age a record without
    /// sleeping.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        Self {
            shared: Arc::new(Shared {
                entries: Mutex::default(),
                next_version: AtomicU64::new(0),
                clock,
            }),
        }
    }

    /// Stores `token` for `key` over whatever is there, through the key's
    /// lease, clearing any record: a test's or an example's given. Returns
    /// the new version.
    ///
    /// # Errors
    ///
    /// A lock timeout when the lease is held elsewhere for a second.
    pub async fn put(&self, key: &TokenKey, token: &TokenSet) -> Result<Version> {
        let lease = self.lock(key, Duration::from_secs(1)).await?;
        let expect = match lease.load().await? {
            Some(row) => Expect::Version(row.version),
            None => Expect::Absent,
        };
        lease.save_and_release(token, expect, Record::Clear).await
    }

    /// The token stored for `key`, if any (not a tombstone).
    pub fn token(&self, key: &TokenKey) -> Option<TokenSet> {
        self.shared.load(key).and_then(|row| row.token)
    }

    /// Number of keys with a lease entry but nothing stored (their lease is
    /// held or waited for); for tests of bounded memory.
    pub fn lock_entries(&self) -> usize {
        self.shared
            .entries()
            .values()
            .filter(|e| e.row.is_none() && e.sequence == 0)
            .count()
    }

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
                        "could not take the key's lease within {}; another task holds it \
                         (a refresh in progress?); try again",
                        auth_core::human_duration(wait)
                    ),
                )
            })?;
        waiting.lease = None;
        Ok(guard)
    }
}

impl fmt::Debug for MemoryTokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let entries = self.shared.entries();
        f.debug_struct("MemoryTokenStore")
            .field(
                "tokens",
                &entries
                    .values()
                    .filter(|e| e.row.as_ref().is_some_and(|r| r.token.is_some()))
                    .count(),
            )
            .finish_non_exhaustive()
    }
}

/// A held lease on one key of a [`MemoryTokenStore`]. Dropping it releases
/// the lease, and removes the key's entry when nothing is stored for it and
/// nobody else holds or waits for the lease.
struct MemoryLease {
    key: TokenKey,
    guard: Option<OwnedMutexGuard<()>>,
    shared: Arc<Shared>,
}

impl Drop for MemoryLease {
    fn drop(&mut self) {
        let Some(guard) = self.guard.take() else {
            return;
        };
        let lease = Arc::clone(OwnedMutexGuard::mutex(&guard));
        drop(guard);
        self.shared.forget_if_idle(&self.key, &lease);
    }
}

impl fmt::Debug for MemoryLease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryLease")
            .field("key", &self.key)
            .finish()
    }
}

#[async_trait]
impl Lease for MemoryLease {
    fn key(&self) -> &TokenKey {
        &self.key
    }

    async fn load(&self) -> Result<Option<Stored>> {
        Ok(self.shared.load(&self.key))
    }

    async fn mark_in_flight(&self, expected: Version) -> Result<Version> {
        let now = self.shared.clock.now();
        self.shared.write(&self.key, |entry| match &mut entry.row {
            Some(row) if row.version == expected && row.token.is_some() => {
                row.in_flight = Some(row.in_flight.unwrap_or(InFlight { since: now }));
                row.version = self.shared.next_version();
                Ok(row.version)
            }
            row => Err(conflict(&self.key, Expect::Version(expected), row.as_ref())),
        })
    }

    async fn save(&self, token: &TokenSet, expected: Expect, record: Record) -> Result<Version> {
        self.shared.save(&self.key, token, expected, record)
    }

    /// The save, then the release as the lease drops: one call, where the
    /// provided method makes two more (BENCHMARKS.md §9).
    async fn save_and_release(
        self: Box<Self>,
        token: &TokenSet,
        expected: Expect,
        record: Record,
    ) -> Result<Version> {
        self.shared.save(&self.key, token, expected, record)
    }

    async fn delete(&self, expected: Version) -> Result<Version> {
        self.shared.write(&self.key, |entry| {
            let sequence = entry.sequence;
            match &mut entry.row {
                Some(row) if row.version == expected => {
                    row.token = None;
                    row.in_flight = None;
                    row.grant = row.grant.max(Sequence(sequence));
                    row.version = self.shared.next_version();
                    Ok(row.version)
                }
                row => Err(conflict(&self.key, Expect::Version(expected), row.as_ref())),
            }
        })
    }

    async fn next_sequence(&self) -> Result<Sequence> {
        self.shared.write(&self.key, |entry| {
            let floor = entry.row.as_ref().map_or(0, |r| r.grant.0);
            entry.sequence = entry.sequence.max(floor) + 1;
            Ok(Sequence(entry.sequence))
        })
    }

    async fn release(self: Box<Self>) -> Result<()> {
        Ok(())
    }
}

#[async_trait]
impl TokenStore for MemoryTokenStore {
    async fn load(&self, key: &TokenKey) -> Result<Option<Stored>> {
        Ok(self.shared.load(key))
    }

    async fn list(&self, provider: Option<&ProviderId>) -> Result<Vec<TokenKey>> {
        Ok(self
            .shared
            .entries()
            .iter()
            .filter(|(k, e)| {
                e.row.as_ref().is_some_and(|r| r.token.is_some())
                    && provider.is_none_or(|p| &k.provider == p)
            })
            .map(|(k, _)| k.clone())
            .collect())
    }

    async fn lock(&self, key: &TokenKey, wait: Duration) -> Result<Box<dyn Lease>> {
        // A free lease is taken at once, without arming a timer or
        // counting a waiter. (`try_lock` never jumps the queue: a lease
        // released to a waiter is not free.)
        let guard = match self.shared.lease(key).try_lock_owned() {
            Ok(guard) => guard,
            Err(_) => self.wait_for_lease(key, wait).await?,
        };
        Ok(Box::new(MemoryLease {
            key: key.clone(),
            guard: Some(guard),
            shared: Arc::clone(&self.shared),
        }))
    }

    async fn orphaned(&self, limit: usize) -> Result<Vec<TokenKey>> {
        Ok(self
            .shared
            .entries()
            .iter()
            .filter(|(_, e)| {
                e.row
                    .as_ref()
                    .is_some_and(|r| r.token.is_some() && r.in_flight.is_some())
                    && e.lease.as_ref().is_none_or(|l| l.try_lock().is_ok())
            })
            .take(limit)
            .map(|(k, _)| k.clone())
            .collect())
    }

    /// Memory leases are held until released or dropped: they cannot be
    /// lost while their holder lives.
    fn lease_ttl(&self) -> Option<Duration> {
        None
    }
}

/// A waiter for a lease; if it goes away without the lease, it removes the
/// key's entry unless something is stored or someone else holds or waits
/// for the lease.
struct Waiting<'a> {
    shared: &'a Shared,
    key: &'a TokenKey,
    lease: Option<Mutexed>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if let Some(lease) = self.lease.take() {
            self.shared.forget_if_idle(self.key, &lease);
        }
    }
}

fn conflict(key: &TokenKey, expected: Expect, current: Option<&Row>) -> Error {
    let wanted = match expected {
        Expect::Absent => "no row".to_owned(),
        Expect::Version(v) => format!("version {v}"),
        Expect::Login(s) => format!("a grant older than login {s}"),
    };
    let found = current.map_or_else(
        || "no row".to_owned(),
        |r| format!("version {} (grant {})", r.version, r.grant),
    );
    Error::store(
        StoreErrorKind::Conflict,
        Some(key.clone()),
        format!("expected {wanted}, found {found}; reload and try again"),
    )
}
