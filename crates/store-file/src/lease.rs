//! [`FileLease`]: a key's lease (its `flock`ed lock file) and the only way
//! to write the key.
//!
//! Every part of a lease first checks that its lock file is still the file
//! at the lock path (someone may have deleted it, letting a second holder
//! lock a new one), and fails with `LeaseLost` when it is not. A write then
//! takes the key's write lock, checks the lease again, reads the account
//! file, checks what the caller expects, and replaces the file in one
//! atomic step, all under that write lock: no check and write of two
//! holders ever interleave, and a damaged file fails the read, so it is
//! never overwritten.
//!
//! The lease never expires while its holder lives (the store's `lease_ttl`
//! is `None`): the OS frees a `flock` when its holder's process dies, at
//! once, whatever killed it.

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use auth_core::{
    Error, Expect, Lease, Record, Result, Sequence, StoreErrorKind, Stored, TokenKey, TokenSet,
    Version,
};
use tracing::warn;

use crate::format::Row;
use crate::layout::KeyPaths;
use crate::lock::{Cancel, HeldLock, same_file};
use crate::store::{
    Inner, blocking, blocking_cancellable, next_version, now_us, read_row, take_write_lock,
    to_stored,
};
use crate::{error, in_flight, version};

/// A held lease of a [`FileTokenStore`](crate::FileTokenStore): its key's
/// lock file, `flock`ed. Dropping it releases the lease; so does the death
/// of the process.
pub(crate) struct FileLease {
    shared: Arc<Shared>,
}

struct Shared {
    key: TokenKey,
    held: HeldLock,
    paths: KeyPaths,
    inner: Arc<Inner>,
}

impl FileLease {
    pub(crate) fn new(key: TokenKey, held: HeldLock, paths: KeyPaths, inner: Arc<Inner>) -> Self {
        Self {
            shared: Arc::new(Shared {
                key,
                held,
                paths,
                inner,
            }),
        }
    }

    /// Runs one fenced write step on a blocking thread: the lease checked,
    /// the write lock taken, the lease checked again, then `step` with the
    /// account file as it is now.
    async fn write<T, F>(&self, step: F) -> Result<T>
    where
        F: FnOnce(&Shared, Option<Row>, &HeldLock) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let shared = Arc::clone(&self.shared);
        blocking_cancellable(move |cancel: &Cancel| {
            shared.check()?;
            let held = take_write_lock(&shared.inner, &shared.key, &shared.paths, cancel)?;
            shared.check()?;
            let current = read_row(&shared.key, &shared.paths.token)?;
            step(&shared, current, &held)
        })
        .await
    }
}

impl Shared {
    /// Whether the lease is still held: its open file is still the file at
    /// its path.
    fn check(&self) -> Result<()> {
        match same_file(self.held.file(), self.held.path()) {
            Ok(true) => Ok(()),
            Ok(false) => Err(Error::store(
                StoreErrorKind::LeaseLost,
                Some(self.key.clone()),
                format!(
                    "the lock file {} was deleted or replaced while its lease was held, so \
                     another process may hold the key too; nothing was read or written through \
                     the old lease (never delete lock files of a store in use)",
                    self.held.path().display()
                ),
            )),
            Err(e) => Err(error::io(
                Some(&self.key),
                "check the lock file",
                self.held.path(),
                e,
            )),
        }
    }

    /// Writes `row`, keeping the in-flight index in the crash-safe order
    /// (see the `in_flight` module): a marker is made durable before a
    /// record lands, and removed only after a record is gone.
    fn replace(&self, before: Option<&Row>, row: &Row) -> Result<()> {
        let had = before.is_some_and(|r| r.in_flight_us.is_some());
        if row.in_flight_us.is_some() {
            in_flight::ensure_marker(&self.inner.root, &self.paths, &self.key)?;
        }
        self.inner.write_row(&self.paths, row)?;
        if had
            && row.in_flight_us.is_none()
            && let Err(err) = in_flight::remove_marker(&self.paths, &self.key)
        {
            // The write landed; a marker left behind costs the orphan scan
            // one read and is removed by it.
            warn!(key = %self.key, error = %err, "could not remove an in-flight marker");
        }
        Ok(())
    }
}

impl std::fmt::Debug for FileLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileLease")
            .field("key", &self.shared.key)
            .field("path", &self.shared.held.path())
            .finish()
    }
}

/// Whether `current` is what `expected` asks for.
fn matches(current: Option<&Row>, expected: Expect) -> bool {
    let row = current.filter(|r| r.is_row());
    match expected {
        Expect::Absent => row.is_none(),
        Expect::Version(v) => row.is_some_and(|r| r.version == v.0),
        Expect::Login(s) => row.is_none_or(|r| r.grant < s.0),
    }
}

#[async_trait]
impl Lease for FileLease {
    fn key(&self) -> &TokenKey {
        &self.shared.key
    }

    async fn load(&self) -> Result<Option<Stored>> {
        let shared = Arc::clone(&self.shared);
        blocking(move || {
            shared.check()?;
            let row = read_row(&shared.key, &shared.paths.token)?;
            Ok(row.and_then(|row| to_stored(row, SystemTime::now())))
        })
        .await
    }

    async fn mark_in_flight(&self, expected: Version) -> Result<Version> {
        self.write(move |shared, current, held| {
            // A tombstone has no refresh token to send.
            let tombstone = current.as_ref().is_some_and(|r| r.token.is_none());
            if tombstone || !matches(current.as_ref(), Expect::Version(expected)) {
                return Err(error::conflict(
                    &shared.key,
                    Expect::Version(expected),
                    current.as_ref(),
                ));
            }
            let before = current.expect("a row matched");
            let now = SystemTime::now();
            let row = Row {
                version: next_version(&shared.key, Some(&before), held)?,
                in_flight_us: before.in_flight_us.or(Some(now_us(now))),
                ..before.clone()
            };
            shared.replace(Some(&before), &row)?;
            Ok(Version(row.version))
        })
        .await
    }

    async fn save(&self, token: &TokenSet, expected: Expect, record: Record) -> Result<Version> {
        let token = token.clone();
        self.write(move |shared, current, held| {
            if !matches(current.as_ref(), expected) {
                return Err(error::conflict(&shared.key, expected, current.as_ref()));
            }
            let base = current
                .clone()
                .unwrap_or_else(|| Row::empty(shared.key.clone()));
            let (grant, in_flight_us) = match expected {
                // A new grant: any refresh in flight was of the old one.
                Expect::Login(s) => (s.0, None),
                _ => (
                    base.grant,
                    match record {
                        Record::Keep => base.in_flight_us,
                        Record::Clear => None,
                    },
                ),
            };
            let row = Row {
                key: shared.key.clone(),
                version: next_version(&shared.key, current.as_ref(), held)?,
                grant,
                sequence: base.sequence.max(grant),
                in_flight_us,
                token: Some(token),
            };
            shared.replace(current.as_ref(), &row)?;
            Ok(Version(row.version))
        })
        .await
    }

    async fn delete(&self, expected: Version) -> Result<Version> {
        self.write(move |shared, current, held| {
            if !matches(current.as_ref(), Expect::Version(expected)) {
                return Err(error::conflict(
                    &shared.key,
                    Expect::Version(expected),
                    current.as_ref(),
                ));
            }
            let before = current.expect("a row matched");
            let highest = before.sequence.max(before.grant);
            let row = Row {
                key: shared.key.clone(),
                version: next_version(&shared.key, Some(&before), held)?,
                grant: highest,
                sequence: highest,
                in_flight_us: None,
                token: None,
            };
            shared.replace(Some(&before), &row)?;
            Ok(Version(row.version))
        })
        .await
    }

    async fn next_sequence(&self) -> Result<Sequence> {
        self.write(move |shared, current, _held| {
            let base = current
                .clone()
                .unwrap_or_else(|| Row::empty(shared.key.clone()));
            let issued = base.sequence.max(base.grant);
            let next = version::next(Some(issued), 0, SystemTime::now());
            let row = Row {
                sequence: next,
                ..base
            };
            shared.replace(current.as_ref(), &row)?;
            Ok(Sequence(next))
        })
        .await
    }

    async fn release(self: Box<Self>) -> Result<()> {
        drop(self);
        Ok(())
    }
}
