//! The [`TokenStore`] trait: where tokens live between processes and restarts.

use std::any::Any;
use std::fmt::{self, Debug};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::id::{ProviderId, TokenKey};
use crate::token::TokenSet;

/// A stored value's version, for compare-and-swap. Versions of one key only
/// grow; their values mean nothing across keys or stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Version(pub u64);

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}

/// A value and the version it was read at.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    /// The value.
    pub value: T,
    /// Its version.
    pub version: Version,
}

/// An exclusive lease on one key, from [`TokenStore::lock`]. Dropping it
/// releases the lease.
///
/// `Any` is a supertrait so that a store can recognise its own leases in
/// [`TokenStore::save_leased`] (`(lease as &dyn Any).downcast_ref()`), for
/// example to fence a write in the same statement that checks the lease.
#[async_trait]
pub trait KeyLock: Any + Debug + Send + Sync {
    /// The key this lock holds.
    fn key(&self) -> &TokenKey;

    /// Checks that the lease is still held, as the backend sees it now: the
    /// lock file is still the one at its path, the lease row is still ours
    /// and unexpired, the session that holds the lock is still alive.
    ///
    /// # Errors
    ///
    /// [`StoreErrorKind::LeaseLost`](crate::StoreErrorKind::LeaseLost) when
    /// the lease is gone; the backend's errors when it cannot tell.
    async fn check(&self) -> Result<()>;
}

/// Durable storage for token sets, shared by every process that manages the
/// same accounts.
///
/// Used as `Arc<dyn TokenStore>`. Every implementation should run the
/// conformance suite in `auth_core::conformance` (feature `conformance`);
/// each clause below has a test function of the same name there.
///
/// # Contract
///
/// - **round_trip**: a saved token loads back equal (every field, secrets
///   included) with the version `save` returned.
/// - **missing_key**: `load` of a key never saved returns `Ok(None)`.
/// - **create_only**: `save` with `expected = None` succeeds only if the key
///   does not exist; otherwise it fails with
///   [`StoreErrorKind::Conflict`](crate::StoreErrorKind::Conflict) and
///   changes nothing.
/// - **cas_conflict**: `save` with `expected = Some(v)` succeeds only if the
///   stored version is `v`; otherwise it fails with `Conflict` and changes
///   nothing.
/// - **overwrite_bumps_version**: a successful `save` returns a version
///   greater than the one it replaced.
/// - **versions_survive_delete**: a key deleted and created again gets a
///   version greater than any it had before, so a caller holding an old
///   version can never overwrite the new token.
/// - **delete**: `delete` removes the key and returns `true`; a later `load`
///   returns `None`.
/// - **delete_missing**: `delete` of an absent key returns `Ok(false)`.
/// - **list_filtered**: `list(None)` returns every stored key;
///   `list(Some(p))` only provider `p`'s. A key whose data cannot be decoded
///   may be listed (then `load` reports it as corrupt).
/// - **keys_isolated**: keys that differ in provider, account, or only in
///   letter case never see each other's tokens.
/// - **lock_exclusive**: while one [`KeyLock`] for a key is alive, `lock` on
///   the same key waits; locks on other keys do not.
/// - **lock_released_on_drop**: dropping the lock lets the next waiter in.
/// - **lock_timeout**: a `lock` that cannot be had within `wait` fails with
///   [`StoreErrorKind::LockTimeout`](crate::StoreErrorKind::LockTimeout), in
///   bounded time.
/// - **concurrent_cas**: of many concurrent `save`s with the same
///   `expected` version, exactly one succeeds.
/// - **debug_hides_secrets**: the store's `Debug` shows no token.
/// - **minimal_round_trip**: a token with no refresh token, no expiry, no
///   scopes and no extras round trips too.
/// - **cas_expected_newer**: `save` with an `expected` version newer than
///   the stored one fails with `Conflict` and changes nothing.
/// - **hostile_ids**: ids with quotes, `%`, `_`, backslashes, dots, slashes
///   and 1,000 characters are stored apart and round trip through `save`,
///   `load`, `list`, `lock` and `delete`.
/// - **lock_waits**: `lock` on a held key really waits: it returns only
///   after the holder releases, and not before.
/// - **cancelled_waiter_leaves_unlocked**: a `lock` future dropped while it
///   waits leaves nothing held.
/// - **save_under_lease**: `save` and [`save_leased`](Self::save_leased)
///   succeed while the caller holds the key's lease (the lease is not a
///   write lock against its own holder).
/// - **load_under_lease_sees_latest**: `load` while holding the lease sees
///   the latest successful `save`, from this instance or another one.
/// - **lease_check**: [`KeyLock::check`] succeeds on a lease that is held.
/// - **load_leased_sees_latest**: [`load_leased`](Self::load_leased) through
///   a held lease returns the latest successful `save` (from this instance
///   or another one), and `Ok(None)` for a key with no token.
/// - **load_leased_lease_lost**: `load_leased` through a lease that is no
///   longer held fails with
///   [`LeaseLost`](crate::StoreErrorKind::LeaseLost), whether or not a
///   token is stored: a lost lease is never reported as "no token". Stores
///   whose leases cannot be lost (the memory store) pass trivially.
/// - **undecodable_never_overwritten**: data the store cannot decode makes
///   `load` fail with `Corrupt`, and `save` (create-only or with any
///   expected version) fails without replacing it. Stores that cannot hold
///   undecodable data (the memory store) pass trivially.
///
/// Stores whose instances share state (two [`FileTokenStore`]s on one
/// directory, two Postgres stores on one database) must also keep these
/// clauses **between instances**: the suite's `run_all_shared(a, b)` runs
/// the cross-instance variants (a lock held through `a` excludes `b`, a save
/// through `a` is seen by `b`, CAS decides between them).
///
/// [`FileTokenStore`]: https://docs.rs/store-file///
/// Where the backend can, locks and compare-and-swap hold **across
/// processes**: the [`TokenManager`](crate::TokenManager) relies on them to
/// refresh each account once. A store that is only process-local must say so
/// in its docs.
///
/// A store never deletes or overwrites data it cannot decode: it reports
/// [`StoreErrorKind::Corrupt`](crate::StoreErrorKind::Corrupt) and leaves it
/// for a person to look at.
#[async_trait]
pub trait TokenStore: Debug + Send + Sync {
    /// Loads a token and its version.
    async fn load(&self, key: &TokenKey) -> Result<Option<Versioned<TokenSet>>>;

    /// Compare-and-swap: stores `token` only if the stored version is
    /// `expected` (`None`: the key must not exist). Returns the new version.
    async fn save(
        &self,
        key: &TokenKey,
        token: &TokenSet,
        expected: Option<Version>,
    ) -> Result<Version>;

    /// Removes a token. Returns whether there was one.
    async fn delete(&self, key: &TokenKey) -> Result<bool>;

    /// Lists stored keys, of one provider or of all.
    async fn list(&self, provider: Option<&ProviderId>) -> Result<Vec<TokenKey>>;

    /// Takes an exclusive lease on one key, waiting at most `wait`.
    ///
    /// Waiting must not tie up a thread: poll with async sleeps, or wait on
    /// an async primitive. A `lock` future dropped while it waits leaves
    /// nothing held.
    async fn lock(&self, key: &TokenKey, wait: Duration) -> Result<Box<dyn KeyLock>>;

    /// A compare-and-swap [`save`](Self::save) by the holder of `lease`,
    /// which is **fenced**: it fails with
    /// [`LeaseLost`](crate::StoreErrorKind::LeaseLost) if the lease is no
    /// longer held. The manager writes only through this method.
    ///
    /// The default checks the lease, then saves. A store that can check the
    /// lease and write in one atomic step (a conditional `UPDATE`) should
    /// override it; the default leaves a window between check and save that
    /// only a store whose leases cannot be lost (memory) may accept.
    async fn save_leased(
        &self,
        lease: &dyn KeyLock,
        token: &TokenSet,
        expected: Option<Version>,
    ) -> Result<Version> {
        lease.check().await?;
        self.save(lease.key(), token, expected).await
    }

    /// A [`delete`](Self::delete) by the holder of `lease`, fenced like
    /// [`save_leased`](Self::save_leased).
    async fn delete_leased(&self, lease: &dyn KeyLock) -> Result<bool> {
        lease.check().await?;
        self.delete(lease.key()).await
    }

    /// A [`load`](Self::load) of the key of `lease` by its holder, which
    /// fails with [`LeaseLost`](crate::StoreErrorKind::LeaseLost) if the
    /// lease is no longer held, so that a lost lease is never mistaken for
    /// "no token" (`Ok(None)`). The manager reads the token it may refresh
    /// from only through this method, right after taking the lease.
    ///
    /// The default checks the lease, then loads: two steps, as the manager
    /// did before this method existed. A store that can check the lease and
    /// read in one step (one statement, one snapshot) should override it;
    /// it saves a round trip on every refresh.
    async fn load_leased(&self, lease: &dyn KeyLock) -> Result<Option<Versioned<TokenSet>>> {
        lease.check().await?;
        self.load(lease.key()).await
    }
}
