//! [`FileTokenStore`]: the [`TokenStore`] contract on top of the layout,
//! format, lock, version, atomic-write and list modules.
//!
//! Every operation runs its file I/O on a blocking thread; nothing here may
//! block the async executor. `load` and `save` touch only the files of their
//! own key, so their cost does not grow with the number of stored accounts;
//! only `list` reads directories.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use auth_core::{
    Error, KeyLock, ProviderId, Result, TokenKey, TokenSet, TokenStore, Version, Versioned,
};
use tracing::warn;

use crate::format::{self, DecodeError, Record};
use crate::layout::KeyPaths;
use crate::lock::{self, AcquireError, Cancel, FileKeyLock, HeldLock};
use crate::{atomic, error, list, permissions, version};

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
struct Inner {
    root: PathBuf,
    write_lock_wait: Duration,
}

impl FileTokenStore {
    /// How long `save` and `delete` wait for another writer of the same key
    /// by default. A write holds its lock for one file write and two
    /// fsyncs, so only a stuck process or a stalled disk can make this run
    /// out.
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
    pub fn load_blocking(&self, key: &TokenKey) -> Result<Option<Versioned<TokenSet>>> {
        let record = read_record(key, &KeyPaths::new(&self.inner.root, key).token)?;
        Ok(record.map(|r| Versioned {
            value: r.token,
            version: Version(r.version),
        }))
    }

    /// Sets how long `save` and `delete` wait for another writer of the same
    /// key before failing with
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
async fn blocking<T, F>(work: F) -> Result<T>
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

fn take_lock(
    key: &TokenKey,
    which: &str,
    path: &Path,
    wait: Duration,
    cancel: &Cancel,
) -> Result<HeldLock> {
    lock::acquire(path, wait, cancel).map_err(|e| match e {
        AcquireError::TimedOut | AcquireError::Cancelled => {
            error::lock_timeout(key, which, path, wait)
        }
        AcquireError::Io(err) => {
            error::io(Some(key), &format!("open or lock the {which}"), path, err)
        }
    })
}

/// The raw bytes of a token file, `None` when there is none. Warns when
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

/// Decodes a token file's bytes and checks that it holds `key`.
fn decode_for(key: &TokenKey, path: &Path, bytes: &[u8]) -> Result<Record> {
    if bytes.len() as u64 > format::MAX_FILE_LEN {
        let reason = format!("it is larger than {} bytes", format::MAX_FILE_LEN);
        return Err(error::corrupt(
            Some(key),
            path,
            &DecodeError::Invalid(reason),
        ));
    }
    let record = format::decode(bytes).map_err(|e| error::corrupt(Some(key), path, &e))?;
    if &record.key != key {
        return Err(error::misplaced(key, path, &record.key));
    }
    Ok(record)
}

fn read_record(key: &TokenKey, path: &Path) -> Result<Option<Record>> {
    read_file(key, path)?
        .map(|bytes| decode_for(key, path, &bytes))
        .transpose()
}

fn high_water(key: &TokenKey, held: &HeldLock) -> Result<u64> {
    let mark = version::read_high_water(held.file())
        .map_err(|e| error::io(Some(key), "read the version mark in", held.path(), e))?;
    Ok(mark.unwrap_or_else(|text| {
        // The clock floor of `version::next` still keeps versions growing.
        warn!(%key, path = %held.path().display(), "ignoring a damaged version mark {text:?}");
        0
    }))
}

fn save_blocking(
    inner: &Inner,
    key: &TokenKey,
    token: &TokenSet,
    expected: Option<Version>,
    cancel: &Cancel,
) -> Result<Version> {
    let paths = KeyPaths::new(&inner.root, key);
    ensure_dir(&inner.root, &paths.dir, key)?;
    let held = take_lock(
        key,
        "write lock",
        &paths.write,
        inner.write_lock_wait,
        cancel,
    )?;
    // A damaged file fails here, so it is never overwritten.
    let current = read_record(key, &paths.token)?.map(|r| r.version);
    if current.map(Version) != expected {
        return Err(error::conflict(key, expected, current.map(Version)));
    }
    let next = version::next(current, high_water(key, &held)?, SystemTime::now());
    atomic::replace(&paths.token, &format::encode(key, next, token))
        .map_err(|e| error::io(Some(key), "write the token file", &paths.token, e))?;
    Ok(Version(next))
}

fn delete_blocking(inner: &Inner, key: &TokenKey, cancel: &Cancel) -> Result<bool> {
    let paths = KeyPaths::new(&inner.root, key);
    if !paths.dir.is_dir() {
        return Ok(false);
    }
    let held = take_lock(
        key,
        "write lock",
        &paths.write,
        inner.write_lock_wait,
        cancel,
    )?;
    let Some(bytes) = read_file(key, &paths.token)? else {
        return Ok(false);
    };
    let deleted_version = match decode_for(key, &paths.token, &bytes) {
        Ok(record) => Some(record.version),
        Err(err) => {
            // Deleting is what was asked for; say what is going away.
            warn!(%key, error = %err, "deleting a token file that could not be read, as requested");
            format::salvage_version(&bytes)
        }
    };
    let mark = high_water(key, &held)?
        .max(deleted_version.unwrap_or_else(|| version::next(None, 0, SystemTime::now())));
    // The mark is durable before the file goes, so a crash in between
    // cannot lose it.
    version::write_high_water(held.file(), mark)
        .map_err(|e| error::io(Some(key), "record the version mark in", &paths.write, e))?;
    atomic::remove(&paths.token)
        .map_err(|e| error::io(Some(key), "delete the token file", &paths.token, e))
}

#[async_trait]
impl TokenStore for FileTokenStore {
    async fn load(&self, key: &TokenKey) -> Result<Option<Versioned<TokenSet>>> {
        let store = self.clone();
        let key = key.clone();
        blocking(move || store.load_blocking(&key)).await
    }

    async fn save(
        &self,
        key: &TokenKey,
        token: &TokenSet,
        expected: Option<Version>,
    ) -> Result<Version> {
        let inner = Arc::clone(&self.inner);
        let (key, token) = (key.clone(), token.clone());
        let cancel = Cancel::default();
        let guard = cancel.on_drop();
        let version =
            blocking(move || save_blocking(&inner, &key, &token, expected, &cancel)).await;
        guard.disarm();
        version
    }

    async fn delete(&self, key: &TokenKey) -> Result<bool> {
        let inner = Arc::clone(&self.inner);
        let key = key.clone();
        let cancel = Cancel::default();
        let guard = cancel.on_drop();
        let deleted = blocking(move || delete_blocking(&inner, &key, &cancel)).await;
        guard.disarm();
        deleted
    }

    async fn list(&self, provider: Option<&ProviderId>) -> Result<Vec<TokenKey>> {
        let inner = Arc::clone(&self.inner);
        let provider = provider.cloned();
        blocking(move || list::list(&inner.root, provider.as_ref())).await
    }

    async fn lock(&self, key: &TokenKey, wait: Duration) -> Result<Box<dyn KeyLock>> {
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
        Ok(Box::new(FileKeyLock::new(key.clone(), held)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use auth_core::StoreErrorKind;

    fn token(tag: &str) -> TokenSet {
        TokenSet::new(format!("access-{tag}"), "Bearer", SystemTime::UNIX_EPOCH)
    }

    #[tokio::test]
    async fn a_stuck_writer_makes_save_and_delete_time_out() {
        let tmp = tempfile::tempdir().unwrap();
        let store = FileTokenStore::open(tmp.path())
            .unwrap()
            .with_write_lock_wait(Duration::from_millis(100));
        let key = TokenKey::parse("p", "a").unwrap();
        let version = store.save(&key, &token("1"), None).await.unwrap();
        let paths = KeyPaths::new(store.root(), &key);
        let stuck = lock::acquire(&paths.write, Duration::ZERO, &Cancel::default()).unwrap();

        let err = store
            .save(&key, &token("2"), Some(version))
            .await
            .unwrap_err();
        assert_eq!(err.store_kind(), Some(StoreErrorKind::LockTimeout), "{err}");
        assert!(err.to_string().contains("write lock"), "{err}");
        let err = store.delete(&key).await.unwrap_err();
        assert_eq!(err.store_kind(), Some(StoreErrorKind::LockTimeout), "{err}");

        drop(stuck);
        store
            .save(&key, &token("2"), Some(version))
            .await
            .expect("the write lock was released");
    }

    #[tokio::test]
    async fn a_damaged_version_mark_does_not_stop_versions_growing() {
        let tmp = tempfile::tempdir().unwrap();
        let store = FileTokenStore::open(tmp.path()).unwrap();
        let key = TokenKey::parse("p", "a").unwrap();
        let v1 = store.save(&key, &token("1"), None).await.unwrap();
        assert!(store.delete(&key).await.unwrap());
        fs::write(KeyPaths::new(store.root(), &key).write, b"garbage").unwrap();
        let v2 = store.save(&key, &token("2"), None).await.unwrap();
        assert!(v2 > v1, "{v2} is not greater than {v1}");
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
