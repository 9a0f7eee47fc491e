//! The [`TokenStore`] and [`Lease`] traits: where tokens live between
//! processes and restarts, and the only way to write them.
//!
//! A store holds, per key, one row: the token (or a tombstone), a version
//! for compare-and-swap, the login sequence of the grant, and the
//! write-ahead record of a refresh in flight. Reads need nothing; every
//! write goes through a [`Lease`] on the key, and every write through a lease
//! that is no longer held fails with
//! [`LeaseLost`](crate::StoreErrorKind::LeaseLost). There is no
//! check-then-write anywhere: a store checks the lease and writes in one
//! atomic step.

use std::any::Any;
use std::fmt::{self, Debug};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::id::{ProviderId, TokenKey};
use crate::token::TokenSet;

/// A stored row's version, for compare-and-swap. Versions of one key only
/// grow, across deletes too; their values mean nothing across keys or
/// stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Version(pub u64);

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}

/// A key's login sequence number, handed out by the store
/// ([`Lease::next_sequence`]). Logins are ordered by it, never by comparing
/// the clocks of different hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Sequence(pub u64);

impl fmt::Display for Sequence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// The write-ahead record of a refresh in flight: the stored refresh token
/// may have been sent, and the server may have rotated it. Holds no secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InFlight {
    /// When the record was written, on the store's clock.
    pub since: SystemTime,
}

/// One key's row as a store holds it. (Not `PartialEq`: [`TokenSet`] is
/// not, since it holds secrets; compare the fields.)
#[derive(Debug, Clone)]
pub struct Stored {
    /// The row's version. Every write bumps it.
    pub version: Version,
    /// The token, or `None` for a tombstone (a revoked or removed grant) or
    /// for a key that has only handed out login sequence numbers.
    pub token: Option<TokenSet>,
    /// The sequence of the login that created the stored grant; for a
    /// tombstone, the highest sequence handed out when it was written. A
    /// login saves only with a greater sequence.
    pub grant: Sequence,
    /// A refresh in flight, if one is recorded.
    pub in_flight: Option<InFlight>,
    /// The store's clock when this row was read. Every elapsed time that
    /// several hosts must agree on (a record's age, a cooldown's end) is
    /// measured against this, never against a host's own clock.
    pub read_at: SystemTime,
}

impl Stored {
    /// How long the refresh in flight has been recorded, on the store's
    /// clock; `None` when there is none.
    pub fn in_flight_age(&self) -> Option<Duration> {
        self.in_flight.map(|r| {
            self.read_at
                .duration_since(r.since)
                .unwrap_or(Duration::ZERO)
        })
    }

    /// Whether the row is a tombstone or holds no token.
    pub fn is_empty(&self) -> bool {
        self.token.is_none()
    }
}

/// What a [`Lease::save`] expects to find, compare-and-swap style.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// No row at all for the key (a fenced create).
    Absent,
    /// The row at exactly this version (a refresh's save, a cooldown, a
    /// flag, a rekey).
    Version(Version),
    /// A login's save: no row, or a row (token or tombstone) whose
    /// [`grant`](Stored::grant) sequence is lower than this one. The saved
    /// row takes this sequence as its grant.
    Login(Sequence),
}

/// What a write does with the write-ahead record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    /// Leave it as it is: a cooldown, a flag cleared by an operator, a
    /// rekey. The token written must carry the same refresh token.
    Keep,
    /// Clear it: only a definite outcome of the refresh (the new pair, or
    /// the flag after `invalid_grant`), a login, a revoke or a remove.
    Clear,
}

/// An exclusive lease on one key, from [`TokenStore::lock`]: the capability
/// to write that key. Dropping it releases the lease (best effort, without
/// waiting); [`release`](Self::release) releases it and waits.
///
/// # Contract
///
/// Every method fails with [`LeaseLost`](crate::StoreErrorKind::LeaseLost)
/// once the lease has been lost (expired, taken over, its session gone), and
/// then writes nothing: each write checks the lease and writes in one atomic
/// step (**fenced**). A lease whose holder's process died is free, or frees
/// itself within the store's [`lease_ttl`](TokenStore::lease_ttl).
///
/// `Any` is a supertrait so that a wrapping store can recognise its own
/// leases.
#[async_trait]
pub trait Lease: Any + Debug + Send + Sync {
    /// The key this lease holds.
    fn key(&self) -> &TokenKey;

    /// Reads the key's row, fenced: the latest committed row, or `Ok(None)`
    /// when nothing was ever stored. Also extends the lease to a full
    /// [`lease_ttl`](TokenStore::lease_ttl) where leases expire.
    async fn load(&self) -> Result<Option<Stored>>;

    /// Writes the write-ahead record "a refresh of the token at `expected`
    /// is in flight", stamped with the store's clock, and extends the lease
    /// to a full TTL, in one fenced write. Fails with
    /// [`Conflict`](crate::StoreErrorKind::Conflict) if the row is not at
    /// `expected`. Returns the new version.
    ///
    /// Marking a row that already has a record keeps the earlier `since`:
    /// the record's age counts from the first attempt.
    async fn mark_in_flight(&self, expected: Version) -> Result<Version>;

    /// Stores `token` if the row matches `expected`, doing `record` with the
    /// write-ahead record, in one fenced write. Fails with
    /// [`Conflict`](crate::StoreErrorKind::Conflict) and changes nothing
    /// otherwise. Returns the new version. The grant sequence is kept,
    /// except by [`Expect::Login`], which sets it.
    async fn save(&self, token: &TokenSet, expected: Expect, record: Record) -> Result<Version>;

    /// [`save`](Self::save), then releases the lease: one round trip where
    /// the backend can. The lease is released whether or not the save
    /// succeeds.
    ///
    /// The provided method is the plain sequence, for stores with no
    /// round trip to spare: [`save`](Self::save), then
    /// [`release`](Self::release), returning what the save returned (a
    /// release that fails after it leaves the lease as dropping it would).
    async fn save_and_release(
        self: Box<Self>,
        token: &TokenSet,
        expected: Expect,
        record: Record,
    ) -> Result<Version> {
        let saved = self.save(token, expected, record).await;
        let _ = self.release().await;
        saved
    }

    /// Replaces the token by a tombstone if the row is at `expected`, in one
    /// fenced write, and clears the record. The tombstone's grant is the
    /// highest sequence handed out so far, so it refuses logins sequenced
    /// before it and accepts later ones. Returns the tombstone's version.
    async fn delete(&self, expected: Version) -> Result<Version>;

    /// Hands out the key's next login sequence number: greater than every
    /// number handed out before for this key, and than the stored grant,
    /// across deletes and instances. Changes neither the version nor the
    /// record. Fenced.
    async fn next_sequence(&self) -> Result<Sequence>;

    /// Releases the lease and waits until the store has seen it.
    async fn release(self: Box<Self>) -> Result<()>;
}

/// Durable storage for token rows, shared by every process that manages the
/// same accounts.
///
/// Used as `Arc<dyn TokenStore>`. Every implementation should run the
/// conformance suite in `auth_core::conformance` (feature `conformance`);
/// each clause below has a test function of the same name there.
///
/// # Contract
///
/// - **round_trip**: a token saved through a lease loads back equal (every
///   field, secrets included) with the version the save returned.
/// - **missing_key**: `load` of a key never written returns `Ok(None)`.
/// - **fenced_create**: `save` with [`Expect::Absent`] succeeds only if no
///   row exists; otherwise it fails with `Conflict` and changes nothing.
/// - **cas_conflict**: `save` with [`Expect::Version`] succeeds only at that
///   exact version (older or newer fail with `Conflict`, changing nothing).
/// - **versions_grow**: every write (save, mark, delete) returns a version
///   greater than the one it replaced, also across a delete.
/// - **lease_exclusive**: while one [`Lease`] on a key is alive, `lock` on
///   the same key waits; leases on other keys do not.
/// - **lease_released**: dropping or releasing a lease lets the next waiter
///   in; a `lock` future dropped while it waits leaves nothing held.
/// - **lock_timeout**: a `lock` that cannot be had within `wait` fails with
///   [`LockTimeout`](crate::StoreErrorKind::LockTimeout), in bounded time.
/// - **lease_fences_every_write**: after a takeover (the lease expired and
///   another holder took it, or was otherwise lost), `load`, `mark`,
///   `save`, `save_and_release`, `delete` and `next_sequence` through the
///   old lease fail with `LeaseLost` and write nothing. Stores whose leases
///   cannot be lost while their holder lives pass trivially, and say so.
/// - **record_round_trip**: `mark_in_flight` sets a record with `since` on
///   the store's clock; `Record::Keep` keeps it (and its `since`);
///   `Record::Clear`, a login and a delete clear it.
/// - **record_survives_holder**: a record whose holder dropped its lease
///   without clearing it (or died) stays, and the key is listed by
///   [`orphaned`](TokenStore::orphaned) once the lease is free or expired;
///   never while a live lease holds it.
/// - **tombstone**: `delete` leaves a row without a token; `list` and
///   `orphaned` skip it; a login sequenced before the delete fails with
///   `Conflict`, one sequenced after succeeds.
/// - **sequence**: `next_sequence` grows across calls, leases, deletes and
///   instances; `Expect::Login(s)` succeeds only over a grant lower than `s`.
/// - **list_filtered**: `list(None)` returns every key holding a token;
///   `list(Some(p))` only provider `p`'s.
/// - **keys_isolated**: keys that differ in provider, account, or only in
///   letter case never see each other's rows.
/// - **hostile_ids**: ids with quotes, `%`, `_`, backslashes, dots, slashes
///   and 1,000 characters are stored apart and round trip.
/// - **concurrent_writers**: of two instances racing for one key, exactly
///   one holds the lease at a time, and a write through the other fails.
/// - **undecodable_never_overwritten**: data the store cannot decode makes
///   `load` fail with [`Corrupt`](crate::StoreErrorKind::Corrupt), and no
///   write replaces it. Stores that cannot hold undecodable data pass
///   trivially.
/// - **debug_hides_secrets**: the store's and the lease's `Debug` show no
///   token.
///
/// Stores whose instances share state (two file stores on one directory, two
/// Postgres stores on one database) keep these clauses **between
/// instances**: the suite's `run_all_shared(a, b)` runs the cross-instance
/// variants.
///
/// Where the backend can, leases hold **across processes and hosts**: the
/// [`TokenManager`](crate::TokenManager) relies on them to refresh each
/// account once. A store that is only process-local says so in its docs.
///
/// A store never deletes or overwrites data it cannot decode: it reports
/// `Corrupt` and leaves it for a person to look at.
#[async_trait]
pub trait TokenStore: Debug + Send + Sync {
    /// Reads a key's row without the lease (the hot path's reload, status).
    async fn load(&self, key: &TokenKey) -> Result<Option<Stored>>;

    /// Lists the keys that hold a token (no tombstones), of one provider or
    /// of all.
    async fn list(&self, provider: Option<&ProviderId>) -> Result<Vec<TokenKey>>;

    /// Takes an exclusive lease on one key, waiting at most `wait`. The key
    /// need not exist.
    ///
    /// Waiting must not tie up a thread. A `lock` future dropped while it
    /// waits leaves nothing held.
    async fn lock(&self, key: &TokenKey, wait: Duration) -> Result<Box<dyn Lease>>;

    /// Up to `limit` keys with a refresh in flight whose lease is free or
    /// expired: their holder died, paused, or gave up. Tombstones are never
    /// listed. Its cost does not grow with the number of stored keys that
    /// have no record.
    async fn orphaned(&self, limit: usize) -> Result<Vec<TokenKey>>;

    /// How long a lease lives without being renewed, if leases expire at
    /// all. `None`: a lease is held until released or its holder's process
    /// dies (an OS file lock, a process-local lock).
    fn lease_ttl(&self) -> Option<Duration>;
}
