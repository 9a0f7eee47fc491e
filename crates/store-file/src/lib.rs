//! A durable [`TokenStore`](auth_core::TokenStore) on the local filesystem:
//! one JSON file per account, written atomically, private to the user, and
//! safe to share between processes.
//!
//! [`FileTokenStore`] is the store for a CLI on a laptop or for several
//! worker processes on one host. Its key locks and compare-and-swap hold
//! **across processes**, so a [`TokenManager`](auth_core::TokenManager) in
//! each of many processes still refreshes each account once.
//!
//! # Example
//!
//! ```
//! use std::time::SystemTime;
//! use auth_core::{TokenKey, TokenSet, TokenStore};
//! use store_file::FileTokenStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> auth_core::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! // Usually `FileTokenStore::open(FileTokenStore::default_root()?)`.
//! let store = FileTokenStore::open(dir.path().join("tokens"))?;
//! let key = TokenKey::parse("fitbit", "26FWFL")?;
//! let token = TokenSet::new("access", "Bearer", SystemTime::now()).with_refresh_token("refresh");
//!
//! let v1 = store.save(&key, &token, None).await?; // create only
//! let v2 = store.save(&key, &token, Some(v1)).await?; // compare-and-swap
//! assert!(v2 > v1);
//! assert_eq!(store.load(&key).await?.unwrap().version, v2);
//! assert_eq!(store.list(None).await?, vec![key.clone()]);
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//!
//! ```text
//! <root>/                          0700
//!   <provider>/                    0700, one per provider
//!     <account>.json               0600, the token
//!     <account>.lock               0600, the key's lease lock (TokenStore::lock)
//!     <account>.wlock              0600, the key's write lock and version mark
//! ```
//!
//! Provider and account ids become file names by keeping the bytes `a`-`z`,
//! `0`-`9`, `_` and `-` and writing every other byte as `%XX`: `26FWFL`
//! becomes `26%46%57%46%4C`, `..` becomes `%2E%2E`. No name can leave its
//! directory, be hidden, or match another id's name, even on a
//! case-insensitive filesystem. A name that would be longer than 200 bytes
//! is replaced by `~` and the SHA-256 of the id. Each token file also holds
//! its real provider and account ids, so [`list`](auth_core::TokenStore::list)
//! returns ids exactly, and a file moved by hand is noticed.
//!
//! A token file is `{"schema": 1, "version": N, "provider": …, "account": …,
//! "token": …}`, where `token` is [`TokenSet`](auth_core::TokenSet)'s own
//! versioned serialized form. It holds the tokens in clear: the file
//! permissions are what protect them.
//!
//! # Guarantees
//!
//! - **Atomic, durable writes.** A save writes a temporary file in the same
//!   directory, fsyncs it, renames it over the token file and fsyncs the
//!   directory. A reader, or a process after a crash or a SIGKILL at any
//!   instant, sees the old token or the new one, never a mix. A killed
//!   writer can leave a hidden `.tmp-*` file behind; it is ignored, and can
//!   be deleted when no process is writing.
//! - **Compare-and-swap across processes.** `save` and `delete` take the
//!   key's *write lock* (`<account>.wlock`), check the stored version, write,
//!   and release it, so of many processes racing to save the same expected
//!   version exactly one wins.
//! - **Key leases across processes.** [`lock`](auth_core::TokenStore::lock)
//!   takes the key's *lease lock* (`<account>.lock`), a different file, so a
//!   task holding the lease can save without deadlocking against itself.
//!   Both are advisory `flock`-style locks: each has one holder at a time,
//!   whether the others wait in other processes or in other tasks of the
//!   same process; the OS releases it when its holder dies; and waiting for
//!   it is bounded (a lease by the caller's
//!   `wait`, the write lock by
//!   [`with_write_lock_wait`](FileTokenStore::with_write_lock_wait)); past
//!   the bound comes a [`LockTimeout`](auth_core::StoreErrorKind::LockTimeout)
//!   error. Lock files are never deleted, because deleting a lock file
//!   someone holds would let two holders in.
//! - **Versions only grow** for a key, even across `delete` and
//!   re-creation: a new version is the largest of the current version + 1,
//!   the key's high-water mark + 1 (the largest version it ever deleted,
//!   kept in its write-lock file), and the clock in microseconds since the
//!   Unix epoch (so versions look like `1764000000123456`).
//! - **Cost does not grow with the number of accounts.** `load`, `save`,
//!   `delete` and `lock` touch only their own key's files; only `list` reads
//!   directories.
//! - **No blocking on the executor.** All file I/O runs on tokio's blocking
//!   pool ([`open`](FileTokenStore::open), a one-off at startup, excepted).
//! - **Waiting for a lease costs no thread.** A lease waiter polls a
//!   non-blocking `flock` with async sleeps (1 ms doubling to 20 ms), so a
//!   thousand keys waiting at once leave the blocking pool free for loads
//!   and saves. The store therefore needs a Tokio runtime with timers
//!   enabled (`enable_time`, or `enable_all`).
//! - **A deleted or replaced lock file is noticed.** A lease is trusted only
//!   while its open file is still the file at the lock path (same device and
//!   inode): checked after locking (a stale orphan is dropped and the new
//!   file locked instead), and by `KeyLock::check`, which the manager calls
//!   before sending a refresh and which `save_leased` calls before saving.
//!   So `rm *.lock`, or a provider directory removed by hand, can no longer
//!   let two holders in unnoticed: the holder of the orphan finds out before
//!   it sends anything, or its save is refused with `LeaseLost`.
//!
//! # Permissions (Unix)
//!
//! Directories are created 0700 and files 0600, set explicitly rather than
//! left to the umask. A token file found with looser permissions (any
//! access for group or others) still loads, and each load logs a
//! `tracing` warning naming the file and the fix (`chmod 600 <file>`); the
//! next save of that key replaces it with a 0600 file. An existing root
//! directory with looser permissions is likewise used, with a warning from
//! [`open`](FileTokenStore::open) (`chmod 700 <root>`). The store never
//! changes the mode of a file or directory it did not create. On other
//! platforms files inherit the access control of the directory.
//!
//! # Damaged files
//!
//! A token file that is empty, truncated, not JSON, of the wrong shape, of
//! an unknown or newer schema, or that holds another key's token makes
//! `load` and `save` of that key fail with a
//! [`Corrupt`](auth_core::StoreErrorKind::Corrupt) store error naming the
//! file and what to do. The file is never overwritten: a `save` over it
//! fails with the same error. Other keys keep working, and `list` still
//! lists the key when its name tells it. An explicit
//! [`delete`](auth_core::TokenStore::delete) of the key does remove the
//! damaged file (with a warning), since that is what was asked for.
//!
//! # Default location
//!
//! [`FileTokenStore::default_root`] is a `tokens` directory in the
//! platform's local data directory for the application `token-keeper`:
//! `$XDG_DATA_HOME/token-keeper/tokens` (usually
//! `~/.local/share/token-keeper/tokens`) on Linux,
//! `~/Library/Application Support/token-keeper/tokens` on macOS.
//!
//! # Platforms
//!
//! **Tested on Linux only.** CI builds and tests on Linux (x86-64); nothing
//! is built or tested on macOS or Windows.
//!
//! - **Linux and the other Unixes** share one code path: the modes above,
//!   `flock`-style locks, device and inode to recognise a lock file, and
//!   `fsync` of the file and of its directory.
//! - **macOS** takes the Unix path. Its plain `fsync` only hands the data to
//!   the drive, whose cache can still lose it (and reorder it) in a power
//!   cut; a durable write there needs `fcntl(F_FULLFSYNC)`. Every fsync this
//!   store makes goes through Rust's `File::sync_all` or `sync_data`, which
//!   on Apple platforms *are* `F_FULLFSYNC`, so a save that returned `Ok`
//!   has asked the drive to flush its cache, for the token file and for the
//!   directory holding the rename. On a filesystem that refuses
//!   `F_FULLFSYNC` (some network filesystems) the save fails with that
//!   error rather than pretending. Expect saves to cost more than on Linux.
//! - **Windows** (untested) takes a fallback: files are not made private
//!   (they inherit the directory's access control: keep the root in your
//!   profile), the directory is not fsynced after a rename (NTFS journals
//!   its metadata), and a deleted or replaced lock file is recognised by
//!   its creation time and length instead of device and inode, which is
//!   weaker.
//!
//! Keep the root on a local filesystem: on NFS, Linux emulates `flock` with
//! POSIX record locks, which do not exclude two tasks of one process.

mod atomic;
mod error;
mod format;
mod in_flight;
mod layout;
mod lease;
mod list;
mod lock;
mod permissions;
mod store;
mod version;

pub use store::FileTokenStore;
