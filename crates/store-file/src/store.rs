//! [`FileTokenStore`]: the [`TokenStore`] contract on top of the layout,
//! format, lock, lease, in-flight, version, atomic-write and list modules,
//! and the reading of account files they share.
//!
//! Every operation runs its file I/O on a blocking thread; nothing here may
//! block the async executor. `load`, `lock` and the writes of a lease touch
//! only the files of their own key, so their cost does not grow with the
//! number of stored accounts; `orphaned` reads only the in-flight index and
//! the keys it marks; only `list` reads the provider directories.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use auth_core::{
    Error, InFlight, Lease, ProviderId, Result, Sequence, Stored, TokenKey, TokenStore, Version,
};
use tracing::warn;

use crate::format::{self, DecodeError, Row};
use crate::layout::KeyPaths;
use crate::lease::FileLease;
use crate::lock::{self, AcquireError, Cancel, HeldLock};
use crate::{atomic, error, in_flight, list, permissions, version};

/// The application name under the platform's data directory, see
/// [`FileTokenStore::default_root`].
const APP_NAME: &str = "token-keeper";

/// Tokens in JSON files under one directory, safe to share between processes.
///
/// See the [crate documentation](crate) for the layout, the guarantees and
/// the policies on permissions and damaged files. Clones are cheap and work
/// on the same files.
#[derive(Clone)]
pub struct FileTokenStore {
    inner: Arc<Inner>,
}

#[derive(Clone)]
pub(crate) struct Inner {
    pub(crate) root: PathBuf,
    pub(crate) write_lock_wait: Duration,
    /// Atomic replaces of account files, shared by clones.
    replaces: Arc<AtomicU64>,
}

impl Inner {
    /// Replaces the account file of `paths` by `row`, durably, and counts it.
    pub(crate) fn write_row(&self, paths: &KeyPaths, row: &Row) -> Result<()> {
        atomic::replace(&paths.token, &format::encode(row))
            .map_err(|e| error::io(Some(&row.key), "write the token file", &paths.token, e))?;
        self.replaces.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

impl FileTokenStore {
    /// How long a write through a lease waits for the key's write lock by
    /// default. A write holds it for one file write and two fsyncs, and only
    /// two holders of one key (after someone deleted a held lease's lock
    /// file) ever contend for it, so only a stuck process or a stalled disk
    /// can make this run out.
    pub const DEFAULT_WRITE_LOCK_WAIT: Duration = Duration::from_secs(10);

    /// Opens the store at `root`, creating the directory (and its missing
    /// parents) with mode 0700 if it does not exist.
    ///
    /// An existing root is used as it is; if other users can access it, a
    /// warning is logged (see the crate docs). This does a little blocking
    /// I/O once; call it at startup, or inside
    /// [`tokio::task::spawn_blocking`] from async code that must never block.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] of kind [`Io`](auth_core::StoreErrorKind::Io) when
    /// the directory cannot be created or `root` is not a directory.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        let root = std::path::absolute(&root)
            .map_err(|e| error::io(None, "resolve the store directory", &root, e))?;
        let created = permissions::create_private_dir(&root, true)
            .map_err(|e| error::io(None, "create the store directory", &root, e))?;
        if !created {
            let metadata = fs::metadata(&root)
                .map_err(|e| error::io(None, "read the store directory", &root, e))?;
            if let Some(mode) = permissions::loose_mode(&metadata) {
                warn!(
                    path = %root.display(),
                    mode = format_args!("{mode:o}"),
                    "token store directory {} can be accessed by other users (mode {mode:o}); \
                     run `chmod 700 {}` to make it private",
                    root.display(),
                    root.display(),
                );
            }
        }
        Ok(Self {
            inner: Arc::new(Inner {
                root,
                write_lock_wait: Self::DEFAULT_WRITE_LOCK_WAIT,
                replaces: Arc::new(AtomicU64::new(0)),
            }),
        })
    }

    /// The default root: a `tokens` directory in the platform's local data
    /// directory for the application name `token-keeper`, for example
    /// `~/.local/share/token-keeper/tokens` on Linux (or under
    /// `$XDG_DATA_HOME`), `~/Library/Application Support/token-keeper/tokens`
    /// on macOS and `%LOCALAPPDATA%\token-keeper\data\tokens` on Windows.
    ///
    /// Every program using the default shares the same tokens; pass another
    /// directory to [`open`](Self::open) to keep them apart.
    ///
    /// # Errors
    ///
    /// [`Error::Configuration`] when the platform has no home directory for
    /// this user.
    pub fn default_root() -> Result<PathBuf> {
        directories::ProjectDirs::from("", "", APP_NAME)
            .map(|dirs| dirs.data_local_dir().join("tokens"))
            .ok_or_else(|| {
                Error::configuration(
                    "no home directory was found to put the default token store in; \
                     pass a directory to FileTokenStore::open",
                )
            })
    }

    /// [`load`](TokenStore::load) on the calling thread: one file read,
    /// blocking. For programs that need one token before (or without) an
    /// async runtime, such as a command line printing a stored token; async
    /// code should call `load`, which does this on the blocking pool.
    ///
    /// # Errors
    ///
    /// As for [`load`](TokenStore::load).
    pub fn load_blocking(&self, key: &TokenKey) -> Result<Option<Stored>> {
        let row = read_row(key, &KeyPaths::new(&self.inner.root, key).token)?;
        Ok(row.and_then(|row| to_stored(row, SystemTime::now())))
    }

    /// How many times this store, and its clones, atomically replaced an
    /// account file (a write-ahead mark, a save, a delete, a login's
    /// sequence number). For tests and benchmarks of the write budget: a
    /// refresh costs two, the mark and the save that clears it.
    pub fn account_file_replaces(&self) -> u64 {
        self.inner.replaces.load(Ordering::Relaxed)
    }

    /// Sets how long a write through a lease waits for the key's write lock
    /// before failing with
    /// [`LockTimeout`](auth_core::StoreErrorKind::LockTimeout). The default
    /// is [`DEFAULT_WRITE_LOCK_WAIT`](Self::DEFAULT_WRITE_LOCK_WAIT).
    #[must_use]
    pub fn with_write_lock_wait(mut self, wait: Duration) -> Self {
        Arc::make_mut(&mut self.inner).write_lock_wait = wait;
        self
    }

    /// The root directory, made absolute.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// The file that holds (or would hold) the token of `key`, for messages
    /// and tools; read it through [`TokenStore::load`], never directly.
    pub fn token_path(&self, key: &TokenKey) -> PathBuf {
        KeyPaths::new(&self.inner.root, key).token
    }
}

impl std::fmt::Debug for FileTokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileTokenStore")
            .field("root", &self.inner.root)
            .field("write_lock_wait", &self.inner.write_lock_wait)
            .finish_non_exhaustive()
    }
}

/// Runs blocking file work on tokio's blocking pool, in the caller's span and
/// with the caller's tracing subscriber, so warnings from the work reach the
/// same place as the caller's own.
pub(crate) async fn blocking<T, F>(work: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    let span = tracing::Span::current();
    let dispatch = tracing::dispatcher::get_default(Clone::clone);
    let task = tokio::task::spawn_blocking(move || {
        tracing::dispatcher::with_default(&dispatch, || span.in_scope(work))
    });
    match task.await {
        Ok(result) => result,
        Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
        Err(err) => Err(error::task_lost(&err)),
    }
}

/// Creates a provider directory on first use, and makes its entry in the
/// root durable.
fn ensure_dir(root: &Path, dir: &Path, key: &TokenKey) -> Result<()> {
    let created = permissions::create_private_dir(dir, false)
        .map_err(|e| error::io(Some(key), "create the provider directory", dir, e))?;
    if created {
        atomic::sync_dir(root)
            .map_err(|e| error::io(Some(key), "sync the store directory", root, e))?;
    }
    Ok(())
}

/// Takes a key's write lock, for one read-check-write step.
pub(crate) fn take_write_lock(
    inner: &Inner,
    key: &TokenKey,
    paths: &KeyPaths,
    cancel: &Cancel,
) -> Result<HeldLock> {
    let wait = inner.write_lock_wait;
    lock::acquire(&paths.write, wait, cancel).map_err(|e| match e {
        AcquireError::TimedOut | AcquireError::Cancelled => {
            error::lock_timeout(key, "write lock", &paths.write, wait)
        }
        AcquireError::Io(err) => {
            error::io(Some(key), "open or lock the write lock", &paths.write, err)
        }
    })
}

/// The raw bytes of a file, at most one byte past the largest account file,
/// `None` when there is none.
pub(crate) fn read_raw(path: &Path) -> io::Result<Option<Vec<u8>>> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut bytes = Vec::new();
    (&file)
        .take(format::MAX_FILE_LEN + 1)
        .read_to_end(&mut bytes)?;
    Ok(Some(bytes))
}

/// The raw bytes of an account file, `None` when there is none. Warns when
/// other users can read it.
fn read_file(key: &TokenKey, path: &Path) -> Result<Option<Vec<u8>>> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(error::io(Some(key), "open the token file", path, e)),
    };
    let metadata = file
        .metadata()
        .map_err(|e| error::io(Some(key), "read the metadata of the token file", path, e))?;
    if let Some(mode) = permissions::loose_mode(&metadata) {
        warn!(
            %key,
            path = %path.display(),
            mode = format_args!("{mode:o}"),
            "token file {} can be read or written by other users (mode {mode:o}); \
             run `chmod 600 {}` (the next save of this key also fixes it)",
            path.display(),
            path.display(),
        );
    }
    let mut bytes = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0).min(64 * 1024));
    (&file)
        .take(format::MAX_FILE_LEN + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| error::io(Some(key), "read the token file", path, e))?;
    Ok(Some(bytes))
}

/// Decodes an account file's bytes and checks that it holds `key`.
fn decode_for(key: &TokenKey, path: &Path, bytes: &[u8]) -> Result<Row> {
    if bytes.len() as u64 > format::MAX_FILE_LEN {
        let reason = format!("it is larger than {} bytes", format::MAX_FILE_LEN);
        return Err(error::corrupt(
            Some(key),
            path,
            &DecodeError::Invalid(reason),
        ));
    }
    let row = format::decode(bytes).map_err(|e| error::corrupt(Some(key), path, &e))?;
    if &row.key != key {
        return Err(error::misplaced(key, path, &row.key));
    }
    Ok(row)
}

/// The account file of `key` at `path`, decoded; `None` when there is none.
/// A damaged file is a `Corrupt` error, so every write, which reads first,
/// leaves it untouched.
pub(crate) fn read_row(key: &TokenKey, path: &Path) -> Result<Option<Row>> {
    read_file(key, path)?
        .map(|bytes| decode_for(key, path, &bytes))
        .transpose()
}

/// Microseconds since the Unix epoch on this host's clock, the store's
/// clock.
pub(crate) fn now_us(now: SystemTime) -> u64 {
    now.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// A decoded account file as the trait shows it, read at `read_at`; `None`
/// for a file that holds only the sequence counter.
pub(crate) fn to_stored(row: Row, read_at: SystemTime) -> Option<Stored> {
    row.is_row().then(|| Stored {
        version: Version(row.version),
        token: row.token,
        grant: Sequence(row.grant),
        in_flight: row.in_flight_us.map(|us| InFlight {
            since: SystemTime::UNIX_EPOCH + Duration::from_micros(us),
        }),
        read_at,
    })
}

/// The next version of a key whose file holds `current`, under its write
/// lock `held`.
pub(crate) fn next_version(key: &TokenKey, current: Option<&Row>, held: &HeldLock) -> Result<u64> {
    let mark = version::read_high_water(held.file())
        .map_err(|e| error::io(Some(key), "read the version mark in", held.path(), e))?
        .unwrap_or_else(|text| {
            // The clock floor of `version::next` still keeps versions growing.
            warn!(%key, path = %held.path().display(), "ignoring a damaged version mark {text:?}");
            0
        });
    let current = current.filter(|r| r.is_row()).map(|r| r.version);
    Ok(version::next(current, mark, SystemTime::now()))
}

/// Runs blocking work with a cancel flag that is set if the caller's future
/// is dropped, so a wait for a lock on a blocking thread stops.
pub(crate) async fn blocking_cancellable<T, F>(work: F) -> Result<T>
where
    F: FnOnce(&Cancel) -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    let cancel = Cancel::default();
    let guard = cancel.on_drop();
    let result = blocking(move || work(&cancel)).await;
    guard.disarm();
    result
}

#[async_trait]
impl TokenStore for FileTokenStore {
    async fn load(&self, key: &TokenKey) -> Result<Option<Stored>> {
        let store = self.clone();
        let key = key.clone();
        blocking(move || store.load_blocking(&key)).await
    }

    async fn list(&self, provider: Option<&ProviderId>) -> Result<Vec<TokenKey>> {
        let inner = Arc::clone(&self.inner);
        let provider = provider.cloned();
        blocking(move || list::list(&inner.root, provider.as_ref())).await
    }

    async fn lock(&self, key: &TokenKey, wait: Duration) -> Result<Box<dyn Lease>> {
        let paths = KeyPaths::new(&self.inner.root, key);
        {
            let (root, dir, key) = (self.inner.root.clone(), paths.dir.clone(), key.clone());
            blocking(move || ensure_dir(&root, &dir, &key)).await?;
        }
        let held = lock::acquire_async(&paths.lease, wait)
            .await
            .map_err(|e| match e {
                AcquireError::TimedOut | AcquireError::Cancelled => {
                    error::lock_timeout(key, "key lock", &paths.lease, wait)
                }
                AcquireError::Io(err) => {
                    error::io(Some(key), "open or lock the key lock", &paths.lease, err)
                }
            })?;
        Ok(Box::new(FileLease::new(
            key.clone(),
            held,
            paths,
            Arc::clone(&self.inner),
        )))
    }

    async fn orphaned(&self, limit: usize) -> Result<Vec<TokenKey>> {
        let inner = Arc::clone(&self.inner);
        blocking(move || in_flight::orphaned(&inner.root, limit)).await
    }

    /// `None`: a lease is an OS file lock, held until released or until its
    /// holder's process dies, when the OS frees it at once.
    fn lease_ttl(&self) -> Option<Duration> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use auth_core::{Expect, Record, StoreErrorKind, TokenSet};

    fn token(tag: &str) -> TokenSet {
        TokenSet::new(format!("access-{tag}"), "Bearer", SystemTime::UNIX_EPOCH)
    }

    async fn create(store: &FileTokenStore, key: &TokenKey, tag: &str) -> Version {
        store
            .lock(key, Duration::from_secs(1))
            .await
            .unwrap()
            .save_and_release(&token(tag), Expect::Absent, Record::Clear)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_stuck_writer_makes_writes_time_out() {
        let tmp = tempfile::tempdir().unwrap();
        let store = FileTokenStore::open(tmp.path())
            .unwrap()
            .with_write_lock_wait(Duration::from_millis(100));
        let key = TokenKey::parse("p", "a").unwrap();
        let version = create(&store, &key, "1").await;
        let paths = KeyPaths::new(store.root(), &key);
        let stuck = lock::acquire(&paths.write, Duration::ZERO, &Cancel::default()).unwrap();

        let lease = store.lock(&key, Duration::from_secs(1)).await.unwrap();
        let err = lease
            .save(&token("2"), Expect::Version(version), Record::Clear)
            .await
            .unwrap_err();
        assert_eq!(err.store_kind(), Some(StoreErrorKind::LockTimeout), "{err}");
        assert!(err.to_string().contains("write lock"), "{err}");
        for err in [
            lease.delete(version).await.unwrap_err(),
            lease.mark_in_flight(version).await.unwrap_err(),
        ] {
            assert_eq!(err.store_kind(), Some(StoreErrorKind::LockTimeout), "{err}");
        }
        let err = lease.next_sequence().await.unwrap_err();
        assert_eq!(err.store_kind(), Some(StoreErrorKind::LockTimeout), "{err}");

        drop(stuck);
        lease
            .save(&token("2"), Expect::Version(version), Record::Clear)
            .await
            .expect("the write lock was released");
    }

    #[tokio::test]
    async fn a_damaged_version_mark_does_not_stop_versions_growing() {
        let tmp = tempfile::tempdir().unwrap();
        let store = FileTokenStore::open(tmp.path()).unwrap();
        let key = TokenKey::parse("p", "a").unwrap();
        let v1 = create(&store, &key, "1").await;
        fs::write(KeyPaths::new(store.root(), &key).write, b"garbage").unwrap();
        let lease = store.lock(&key, Duration::from_secs(1)).await.unwrap();
        let v2 = lease
            .save(&token("2"), Expect::Version(v1), Record::Clear)
            .await
            .unwrap();
        assert!(v2 > v1, "{v2} is not greater than {v1}");
    }

    #[tokio::test]
    async fn a_schema_1_high_water_mark_keeps_versions_growing() {
        // Schema 1 removed the file on delete and kept the largest version in
        // the write lock; a key deleted before the upgrade never reuses one.
        let tmp = tempfile::tempdir().unwrap();
        let store = FileTokenStore::open(tmp.path()).unwrap();
        let key = TokenKey::parse("p", "a").unwrap();
        let paths = KeyPaths::new(store.root(), &key);
        fs::create_dir_all(&paths.dir).unwrap();
        let mark = u64::MAX / 4;
        let file = lock::open_lock_file(&paths.write).unwrap();
        version::write_high_water(&file, mark).unwrap();
        let v = create(&store, &key, "1").await;
        assert!(v.0 > mark, "{v} does not pass the old mark {mark}");
    }

    #[tokio::test]
    async fn a_tombstone_cannot_be_marked() {
        let tmp = tempfile::tempdir().unwrap();
        let store = FileTokenStore::open(tmp.path()).unwrap();
        let key = TokenKey::parse("p", "a").unwrap();
        let v1 = create(&store, &key, "1").await;
        let lease = store.lock(&key, Duration::from_secs(1)).await.unwrap();
        let tombstone = lease.delete(v1).await.unwrap();
        let err = lease.mark_in_flight(tombstone).await.unwrap_err();
        assert_eq!(err.store_kind(), Some(StoreErrorKind::Conflict), "{err}");
        assert!(err.to_string().contains("tombstone"), "{err}");
        assert!(store.orphaned(10).await.unwrap().is_empty());
    }

    #[test]
    fn debug_shows_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let store = FileTokenStore::open(tmp.path()).unwrap();
        let text = format!("{store:?}");
        assert!(text.contains(&tmp.path().display().to_string()), "{text}");
        assert!(text.starts_with("FileTokenStore"), "{text}");
    }
}
