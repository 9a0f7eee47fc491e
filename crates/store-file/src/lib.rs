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
//! use std::time::{Duration, SystemTime};
//! use auth_core::{Expect, Record, TokenKey, TokenSet, TokenStore};
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
//! // Every write goes through the key's lease.
//! let lease = store.lock(&key, Duration::from_secs(5)).await?;
//! let login = lease.next_sequence().await?;
//! let v1 = lease.save(&token, Expect::Login(login), Record::Clear).await?;
//! let v2 = lease.mark_in_flight(v1).await?; // the write-ahead record
//! let v3 = lease.save_and_release(&token, Expect::Version(v2), Record::Clear).await?;
//! assert!(v3 > v2 && v2 > v1);
//! assert_eq!(store.load(&key).await?.unwrap().version, v3);
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
//!     <account>.json               0600, the account file: the row
//!     <account>.lock               0600, the key's lease (TokenStore::lock)
//!     <account>.wlock              0600, the key's write lock
//!   .in-flight/                    0700, the index of refreshes in flight
//!     <provider>/<account>         0600, empty: a marker per record
//! ```
//!
//! Provider and account ids become file names by keeping the bytes `a`-`z`,
//! `0`-`9`, `_` and `-` and writing every other byte as `%XX`: `26FWFL`
//! becomes `26%46%57%46%4C`, `..` becomes `%2E%2E`. No name can leave its
//! directory, be hidden, or match another id's name, even on a
//! case-insensitive filesystem. A name that would be longer than 200 bytes
//! is replaced by `~` and the SHA-256 of the id. Each account file also
//! holds its real provider and account ids, so
//! [`list`](auth_core::TokenStore::list) returns ids exactly, and a file
//! moved by hand is noticed.
//!
//! An account file (schema 2) is `{"schema": 2, "version": N, "provider":
//! …, "account": …, "grant": G, "sequence": S, "in_flight": {"since_us":
//! T} | null, "token": … | null}`: the row's version, the login sequence of
//! its grant, the highest login sequence handed out, the write-ahead record
//! of a refresh in flight, and the token in [`TokenSet`](auth_core::TokenSet)'s
//! own versioned serialized form, or `null` for a tombstone (a revoked or
//! removed grant, which keeps the version and the sequence). It holds the
//! tokens in clear: the file permissions are what protect them.
//!
//! **Schemas.** Files of schema 1 (this crate before write-ahead records)
//! are read as rows with no record and grant 0, and the next write of the
//! key makes them schema 2; a key that schema 1 deleted keeps its old
//! version mark in its write lock, which is still read, so versions never
//! go back. A version of this crate that reads only schema 1 refuses a
//! schema 2 file with a `Corrupt` error saying it was written by a newer
//! version and to upgrade, and never writes over it: upgrade every process
//! sharing a root together.
//!
//! # Guarantees
//!
//! - **The lease is the only way to write, and it is fenced.** A
//!   [`lock`](auth_core::TokenStore::lock) takes the key's lease: an
//!   advisory `flock` on `<account>.lock`. Every part of the
//!   [`Lease`](auth_core::Lease) checks that its open lock file is still the
//!   file at that path (same device and inode), and each write takes the
//!   key's write lock, checks again, reads the account file, checks what the
//!   caller expects (a version, no row, a login sequence) and replaces the
//!   file, all under the write lock. A lease whose lock file was deleted or
//!   replaced by hand (`rm *.lock`, a provider directory removed) fails with
//!   [`LeaseLost`](auth_core::StoreErrorKind::LeaseLost) and writes nothing,
//!   and no two holders ever interleave a check and a write. Lock files are
//!   never deleted by the store.
//! - **Leases do not expire; a dead holder's lease frees itself.**
//!   [`lease_ttl`](auth_core::TokenStore::lease_ttl) is `None`: the OS
//!   releases a `flock` when its holder closes it or dies, at once, however
//!   it died (SIGKILL included). So an orphaned refresh is free to be taken
//!   over the moment its process is gone, with no expiry to wait for; and a
//!   live holder, however long it pauses, keeps its lease (there is no
//!   expiry to lose it to), which makes the late-replay case of a paused
//!   holder impossible on one host.
//! - **Atomic, durable writes.** A write makes a temporary file in the same
//!   directory, fsyncs it, renames it over the account file and fsyncs the
//!   directory. A reader, or a process after a crash or a SIGKILL at any
//!   instant, sees the old row or the new one, never a mix. A killed writer
//!   can leave a hidden `.tmp-*` file behind; it is ignored, and can be
//!   deleted when no process is writing.
//! - **A refresh is two atomic replaces**: the write-ahead mark, and the
//!   save that stores the new pair and clears the record
//!   ([`account_file_replaces`](FileTokenStore::account_file_replaces)
//!   counts them; a test holds the budget). The mark also makes sure the
//!   key's marker in the in-flight index exists, which costs one more
//!   directory fsync when it does not.
//! - **The record survives its holder, and the orphan scan finds it without
//!   reading every account file.** [`orphaned`](auth_core::TokenStore::orphaned)
//!   lists the in-flight index, tries each marked key's lease without
//!   waiting, and reads only those account files. Crash ordering: a marker
//!   is made durable *before* the record lands in the account file, and
//!   removed only *after* the record is gone, so a crash or power cut at
//!   any instant leaves at worst a marker without a record, which the scan
//!   removes under the key's lease. There is never a record without a
//!   marker.
//! - **Versions and login sequences only grow** for a key, across deletes
//!   (a delete leaves a tombstone that keeps both) and even if an account
//!   file is lost: a new number is the largest of the current one + 1, an
//!   old schema 1 mark + 1, and this host's clock in microseconds since the
//!   Unix epoch (so numbers look like `1764000000123456`).
//! - **The store's clock is this host's clock.** The record's `since` and
//!   every row's `read_at` come from it; the store is for one host, so every
//!   process that measures a record's age measures it on the same clock.
//! - **Cost does not grow with the number of accounts** for `load`, `lock`
//!   and the writes (they touch only their own key's files) nor for
//!   `orphaned` (only keys with a marker); `list` reads every account file
//!   of the providers it lists, since tombstones are not listed.
//! - **No blocking on the executor.** All file I/O runs on tokio's blocking
//!   pool ([`open`](FileTokenStore::open), a one-off at startup, excepted).
//! - **Waiting for a lease costs no thread.** A lease waiter polls a
//!   non-blocking `flock` with async sleeps (1 ms doubling to 20 ms), so a
//!   thousand keys waiting at once leave the blocking pool free for loads
//!   and saves. The store therefore needs a Tokio runtime with timers
//!   enabled (`enable_time`, or `enable_all`).
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
//! An account file that is empty, truncated, not JSON, of the wrong shape,
//! of an unknown or newer schema, or that holds another key's row makes
//! `load` of that key, and every part of its lease, fail with a
//! [`Corrupt`](auth_core::StoreErrorKind::Corrupt) store error naming the
//! file and what to do. The file is never overwritten or deleted by the
//! store: every write reads it first and fails the same way. Other keys keep
//! working, and `list` still lists the key when its name tells it. To start
//! the key over, move the file aside (the message says so); the next login
//! then writes a new one, and versions still grow.
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
