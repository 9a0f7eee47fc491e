//! Cross-process, per-key advisory locks on lock files, with a bounded wait.
//!
//! Each key has two lock files beside its token file:
//!
//! - the **lease** (`<account>.lock`), held by a `FileLease` from
//!   [`TokenStore::lock`](auth_core::TokenStore::lock) for as long as the
//!   caller likes (a refresh round trip), and tried without waiting by the
//!   orphan scan;
//! - the **write lock** (`<account>.wlock`), held by each write of a lease
//!   for the few milliseconds of its read-check-write step, so that even two
//!   holders of one key (possible only after someone deleted a held lease's
//!   lock file) never interleave a check and a write.
//!
//! The locks are `flock(2)`-style (through `fs4`): they conflict between any
//! two open file handles, in one process or in two, and the OS drops them
//! when the holder closes the file or dies. Lock files must never be deleted:
//! a process could hold a lock on the old inode while another locks a new
//! file of the same name, and both would think they hold the key.
//!
//! Since someone may delete them anyway (`rm *.lock`, a provider directory
//! removed by hand), a lock is only trusted while its file is still the file
//! at its path (same device and inode): checked right after locking (a
//! mismatch means we locked an orphan, so we try again on the new file), and
//! by every part of a lease, which fails with `LeaseLost` once it is not.
//!
//! Waiting for the lease costs no thread: [`acquire_async`] polls the
//! non-blocking `try_lock` with async sleeps in between, so a thousand keys
//! waiting at once leave the blocking pool free for loads and saves.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use fs4::{FileExt, TryLockError};

use crate::permissions;

/// The first pause between two attempts; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(1);
/// The longest pause between two attempts, which bounds how late a waiter
/// notices a released lock.
const MAX_BACKOFF: Duration = Duration::from_millis(20);

/// A held lock on one lock file, released when dropped.
#[derive(Debug)]
pub(crate) struct HeldLock {
    file: File,
    path: PathBuf,
}

impl HeldLock {
    /// The locked file, to read or write what it keeps.
    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    /// The lock file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        // Closing the file releases the lock too, unless the descriptor was
        // duplicated somewhere; unlocking first makes the release certain.
        let _ = FileExt::unlock(&self.file);
    }
}

/// Why [`acquire`] gave up.
#[derive(Debug)]
pub(crate) enum AcquireError {
    /// Someone else held the lock for the whole wait.
    TimedOut,
    /// The caller stopped waiting (its future was dropped).
    Cancelled,
    /// The lock file could not be opened or locked.
    Io(io::Error),
}

impl From<io::Error> for AcquireError {
    fn from(err: io::Error) -> Self {
        Self::Io(err)
    }
}

/// Set when the caller no longer wants the lock; checked between attempts.
#[derive(Debug, Clone, Default)]
pub(crate) struct Cancel(Arc<AtomicBool>);

impl Cancel {
    fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// A guard that sets the flag when dropped: hold it in the future that
    /// waits, so dropping the future stops the blocking thread polling.
    pub(crate) fn on_drop(&self) -> CancelOnDrop {
        CancelOnDrop {
            cancel: self.clone(),
            armed: true,
        }
    }
}

/// Sets its [`Cancel`] when dropped, unless disarmed.
#[derive(Debug)]
pub(crate) struct CancelOnDrop {
    cancel: Cancel,
    armed: bool,
}

impl CancelOnDrop {
    /// Keeps the flag clear: the wait ended normally.
    pub(crate) fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.armed {
            self.cancel.0.store(true, Ordering::Relaxed);
        }
    }
}

/// Opens (creating it as 0600 if needed) the lock file at `path`.
pub(crate) fn open_lock_file(path: &Path) -> io::Result<File> {
    permissions::private_open_options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

/// One non-blocking attempt: `Some` when `file` is now locked by us and is
/// still the file at `path`. A locked orphan (the path now names another
/// file, or none) is unlocked and reported as `Err(Replaced)`.
fn try_once(file: &File, path: &Path) -> Result<bool, TryError> {
    match FileExt::try_lock(file) {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => return Ok(false),
        Err(TryLockError::Error(e)) => return Err(TryError::Io(e)),
    }
    match same_file(file, path) {
        Ok(true) => Ok(true),
        Ok(false) => {
            let _ = FileExt::unlock(file);
            Err(TryError::Replaced)
        }
        Err(e) => {
            let _ = FileExt::unlock(file);
            Err(TryError::Io(e))
        }
    }
}

enum TryError {
    /// The lock file was deleted or replaced: open the path again.
    Replaced,
    Io(io::Error),
}

/// Whether the open `file` is the file now at `path` (same device and
/// inode). `false` when the path names another file or none.
pub(crate) fn same_file(file: &File, path: &Path) -> io::Result<bool> {
    let held = file.metadata()?;
    let now = match std::fs::metadata(path) {
        Ok(now) => now,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    Ok(identity(&held) == identity(&now))
}

#[cfg(unix)]
fn identity(metadata: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (metadata.dev(), metadata.ino())
}

#[cfg(not(unix))]
fn identity(metadata: &std::fs::Metadata) -> (u64, u64) {
    // Without inode numbers the best available identity is the creation
    // time and length of a file nobody writes; documented as weaker.
    let created = metadata
        .created()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as u64);
    (created, metadata.len())
}

/// Takes the lock file at `path` without tying up a thread while waiting:
/// polls `try_lock` with async sleeps (1 ms doubling to 20 ms) for at most
/// `wait`. Opening the file runs on the blocking pool. Dropping the future
/// leaves nothing locked.
pub(crate) async fn acquire_async(path: &Path, wait: Duration) -> Result<HeldLock, AcquireError> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut backoff = FIRST_BACKOFF;
    'reopen: loop {
        let file = {
            let path = path.to_owned();
            tokio::task::spawn_blocking(move || open_lock_file(&path))
                .await
                .map_err(|e| AcquireError::Io(io::Error::other(e)))??
        };
        loop {
            match try_once(&file, path) {
                Ok(true) => {
                    return Ok(HeldLock {
                        file,
                        path: path.to_owned(),
                    });
                }
                Ok(false) => {}
                Err(TryError::Replaced) => continue 'reopen,
                Err(TryError::Io(e)) => return Err(AcquireError::Io(e)),
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(AcquireError::TimedOut);
            }
            tokio::time::sleep(backoff.min(deadline - now)).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

/// Opens (creating it as 0600 if needed) and exclusively locks the lock file
/// at `path`, trying for at most `wait`. Blocks the calling thread: call it
/// on a blocking thread. Used for the short-lived write lock.
pub(crate) fn acquire(
    path: &Path,
    wait: Duration,
    cancel: &Cancel,
) -> Result<HeldLock, AcquireError> {
    let mut file = open_lock_file(path)?;
    let deadline = Instant::now() + wait;
    let mut backoff = FIRST_BACKOFF;
    loop {
        match try_once(&file, path) {
            Ok(true) => {
                return Ok(HeldLock {
                    file,
                    path: path.to_owned(),
                });
            }
            Ok(false) => {}
            Err(TryError::Replaced) => {
                file = open_lock_file(path)?;
                continue;
            }
            Err(TryError::Io(e)) => return Err(AcquireError::Io(e)),
        }
        if cancel.is_set() {
            return Err(AcquireError::Cancelled);
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(AcquireError::TimedOut);
        }
        // Polling, not waiting for an event: flock has no timed wait, and a
        // thread parked in a blocking flock could not be given up on.
        std::thread::sleep(backoff.min(deadline - now));
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Takes the lock file at `path` if it is free right now, without waiting:
/// `Ok(None)` when someone holds it. Creates the file (0600) if it is
/// missing; the directory must exist. For the orphan scan, which must never
/// wait behind a live holder.
pub(crate) fn try_acquire(path: &Path) -> io::Result<Option<HeldLock>> {
    // A lock file replaced between the open and the lock is opened again;
    // a few rounds are plenty, since only a person deletes lock files.
    for _ in 0..4 {
        let file = open_lock_file(path)?;
        match try_once(&file, path) {
            Ok(true) => {
                return Ok(Some(HeldLock {
                    file,
                    path: path.to_owned(),
                }));
            }
            Ok(false) => return Ok(None),
            Err(TryError::Replaced) => {}
            Err(TryError::Io(e)) => return Err(e),
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_handles_in_one_process_exclude_each_other() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("k.lock");
        let cancel = Cancel::default();
        let held = acquire(&path, Duration::from_secs(1), &cancel).unwrap();
        let started = Instant::now();
        let second = acquire(&path, Duration::from_millis(50), &cancel);
        assert!(matches!(second, Err(AcquireError::TimedOut)), "{second:?}");
        assert!(started.elapsed() >= Duration::from_millis(50));
        drop(held);
        acquire(&path, Duration::ZERO, &cancel).expect("a released lock can be taken at once");
    }

    #[test]
    fn a_cancelled_wait_stops_early() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("k.lock");
        let _held = acquire(&path, Duration::from_secs(1), &Cancel::default()).unwrap();
        let cancel = Cancel::default();
        drop(cancel.on_drop());
        let started = Instant::now();
        let result = acquire(&path, Duration::from_secs(30), &cancel);
        assert!(matches!(result, Err(AcquireError::Cancelled)), "{result:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_disarmed_guard_leaves_the_flag_clear() {
        let cancel = Cancel::default();
        cancel.on_drop().disarm();
        assert!(!cancel.is_set());
    }

    #[test]
    fn try_acquire_never_waits() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("k.lock");
        let held = try_acquire(&path).unwrap().expect("a free lock is taken");
        assert!(
            try_acquire(&path).unwrap().is_none(),
            "a held lock was taken"
        );
        drop(held);
        assert!(try_acquire(&path).unwrap().is_some());
    }

    #[cfg(unix)]
    #[test]
    fn lock_files_are_created_private() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("k.lock");
        let held = acquire(&path, Duration::ZERO, &Cancel::default()).unwrap();
        assert_eq!(
            held.file().metadata().unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}
