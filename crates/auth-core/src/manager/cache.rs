//! The manager's in-memory token cache: the hot path of
//! [`TokenManager::access_token`](super::TokenManager::access_token).
//!
//! It must never go backwards: every entry carries the store version it was
//! read or written at, and a write with an older version than the entry's is
//! ignored. A removal leaves a *tombstone* holding the removed version, so a
//! flight that read the token before the removal cannot bring it back.
//!
//! It scales with threads on two levels. The map is split into shards, so
//! that writers (refreshes) of different users rarely meet. And each shard
//! is guarded by a [`ShardedLock`]: a reader-writer lock whose readers
//! count themselves on one of several cache lines, picked by thread, and
//! whose writers take all of them. With a plain `RwLock` every reader
//! writes the lock's one reader count, so two cores serving different
//! users still pass that cache line back and forth on every call, and two
//! threads did only 1.4 times the work of one (BENCHMARKS.md, "Hot path").
//! A lock-free map avoids that too, but the one tried cost 2.7 times the
//! single-threaded hot path; this keeps the single-threaded path as it was.
//! Writes take every reader line of their shard; they are rare (a refresh,
//! a login, a removal).
//!
//! Its size is bounded: a full shard first drops tombstones and expired
//! tokens, then any entries (they are only a cache; the store has the
//! data).

use std::hash::BuildHasher as _;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, SystemTime};

use crossbeam_utils::sync::{ShardedLock, ShardedLockReadGuard, ShardedLockWriteGuard};
use hashbrown::HashTable;
use hashbrown::hash_table::Entry as Slot;

use super::decision::fresh_beyond_skew;
use crate::id::TokenKey;
use crate::store::Version;
use crate::token::TokenSet;

/// Shards; a power of two.
const SHARDS: usize = 64;

/// A cached token, or the tombstone of a removed one.
#[derive(Clone)]
pub(super) struct Entry {
    /// `None` for a tombstone.
    pub(super) token: Option<Arc<TokenSet>>,
    /// The store version the token was read or written at (for a tombstone,
    /// the last version removed).
    pub(super) version: Version,
}

/// The hasher of the cache: `foldhash`, seeded per process. A few
/// nanoseconds for short ids, against SipHash's twenty. A key is hashed
/// once: the hash picks the shard and then finds the key in its map.
type Hasher = foldhash::fast::RandomState;

/// One shard's entries, looked up by the hash that picked the shard.
#[derive(Default)]
struct Map(HashTable<(TokenKey, Entry)>);

impl Map {
    fn get(&self, hash: u64, key: &TokenKey) -> Option<&Entry> {
        self.0.find(hash, |(k, _)| k == key).map(|(_, e)| e)
    }

    fn contains(&self, hash: u64, key: &TokenKey) -> bool {
        self.get(hash, key).is_some()
    }

    fn insert(&mut self, hash: u64, key: &TokenKey, entry: Entry, hasher: &Hasher) {
        match self
            .0
            .entry(hash, |(k, _)| k == key, |(k, _)| hasher.hash_one(k))
        {
            Slot::Occupied(mut slot) => slot.get_mut().1 = entry,
            Slot::Vacant(slot) => {
                slot.insert((key.clone(), entry));
            }
        }
    }

    fn remove(&mut self, hash: u64, key: &TokenKey) {
        if let Ok(slot) = self.0.find_entry(hash, |(k, _)| k == key) {
            slot.remove();
        }
    }

    fn len(&self) -> usize {
        self.0.len()
    }
}

/// One shard. Its lock's reader counts are on cache lines of their own;
/// the alignment keeps the map's header off a line a neighbour writes.
#[repr(align(128))]
struct Shard(ShardedLock<Map>);

/// The sharded, bounded, version-monotonic cache.
pub(super) struct Cache {
    shards: Box<[Shard]>,
    hasher: Hasher,
    per_shard: usize,
}

impl Cache {
    /// A cache holding about `capacity` entries at most.
    pub(super) fn new(capacity: usize) -> Self {
        let hasher = Hasher::default();
        Self {
            shards: (0..SHARDS)
                .map(|_| Shard(ShardedLock::new(Map::default())))
                .collect(),
            hasher,
            per_shard: capacity.div_ceil(SHARDS).max(1),
        }
    }

    /// The key's seeded hash, and its shard: an adversary who crowds one
    /// shard only slows that shard down. The shard comes from bits that the
    /// map inside does not use (it takes the low bits for the bucket and
    /// the top seven for its tags), so one shard's keys still spread over
    /// its buckets.
    fn locate(&self, key: &TokenKey) -> (u64, &ShardedLock<Map>) {
        let hash = self.hasher.hash_one(key);
        #[allow(clippy::cast_possible_truncation)]
        let index = ((hash >> 32) as usize) & (SHARDS - 1);
        (hash, &self.shards[index].0)
    }

    fn read(&self, key: &TokenKey) -> (u64, ShardedLockReadGuard<'_, Map>) {
        let (hash, shard) = self.locate(key);
        (hash, shard.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn write(&self, key: &TokenKey) -> (u64, ShardedLockWriteGuard<'_, Map>) {
        let (hash, shard) = self.locate(key);
        (hash, shard.write().unwrap_or_else(PoisonError::into_inner))
    }

    /// The hot path: the cached token if it is unflagged and fresh beyond
    /// `skew` at `now`; or, while its stored refresh cooldown runs, if it is
    /// merely unexpired (an outage must not send every call to the store).
    pub(super) fn fresh(
        &self,
        key: &TokenKey,
        now: SystemTime,
        skew: Duration,
    ) -> Option<Arc<TokenSet>> {
        let (hash, shard) = self.read(key);
        let token = shard.get(hash, key)?.token.as_ref()?;
        if token.reauthorization_required().is_some() {
            return None;
        }
        if fresh_beyond_skew(token, now, skew)
            || (token.refresh_cooldown().is_some_and(|c| c.is_active(now))
                && token.is_fresh(now, Duration::ZERO))
        {
            return Some(Arc::clone(token));
        }
        None
    }

    /// The entry for `key`, tombstones included.
    pub(super) fn get(&self, key: &TokenKey) -> Option<Entry> {
        let (hash, shard) = self.read(key);
        shard.get(hash, key).cloned()
    }

    /// Caches `token` at `version`, unless the cache already holds something
    /// newer (or the tombstone of this very version).
    pub(super) fn put(&self, key: &TokenKey, token: Arc<TokenSet>, version: Version) {
        let (hash, mut shard) = self.write(key);
        if let Some(entry) = shard.get(hash, key) {
            let newer = entry.version > version;
            let removed = entry.version == version && entry.token.is_none();
            if newer || removed {
                return;
            }
        } else if shard.len() >= self.per_shard {
            Self::make_room(&mut shard, self.per_shard);
        }
        shard.insert(
            hash,
            key,
            Entry {
                token: Some(token),
                version,
            },
            &self.hasher,
        );
    }

    /// Caches a token read from the store, unless the cache already holds
    /// its version or a newer one. That is the usual case when a flight
    /// reloads (the cache is how the flight started), and it then costs a
    /// read lock and no write lock.
    pub(super) fn put_stored(&self, key: &TokenKey, token: &TokenSet, version: Version) {
        {
            let (hash, shard) = self.read(key);
            if shard
                .get(hash, key)
                .is_some_and(|entry| entry.version >= version)
            {
                return;
            }
        }
        self.put(key, Arc::new(token.clone()), version);
    }

    /// Records that `key` was removed at `version` (the last version it had,
    /// if known): older writes are ignored from now on.
    pub(super) fn bury(&self, key: &TokenKey, version: Option<Version>) {
        let (hash, mut shard) = self.write(key);
        let version = match (shard.get(hash, key).map(|e| e.version), version) {
            (Some(a), Some(b)) => a.max(b),
            (a, b) => a.or(b).unwrap_or(Version(0)),
        };
        if !shard.contains(hash, key) && shard.len() >= self.per_shard {
            Self::make_room(&mut shard, self.per_shard);
        }
        shard.insert(
            hash,
            key,
            Entry {
                token: None,
                version,
            },
            &self.hasher,
        );
    }

    /// Forgets `key` (not a removal: the next read goes to the store).
    pub(super) fn forget(&self, key: &TokenKey) {
        let (hash, mut shard) = self.write(key);
        if shard.get(hash, key).is_some_and(|e| e.token.is_some()) {
            shard.remove(hash, key);
        }
    }

    /// Entries held, tombstones included; for tests of bounded memory.
    pub(super) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.0.read().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }

    /// Frees at least one place in a full shard: tombstones and expired
    /// tokens first, then an eighth of the rest.
    fn make_room(shard: &mut Map, limit: usize) {
        let now = SystemTime::now();
        shard.0.retain(|(_, e)| {
            e.token
                .as_ref()
                .is_some_and(|t| t.is_fresh(now, Duration::ZERO))
        });
        if shard.len() >= limit {
            let mut to_drop = (limit / 8).max(1);
            shard.0.retain(|_| {
                if to_drop == 0 {
                    return true;
                }
                to_drop -= 1;
                false
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(account: &str) -> TokenKey {
        TokenKey::parse("p", account).unwrap()
    }

    fn token(tag: &str) -> Arc<TokenSet> {
        Arc::new(
            TokenSet::new(tag, "Bearer", SystemTime::now())
                .with_expires_in(Duration::from_secs(3600)),
        )
    }

    #[test]
    fn never_goes_backwards() {
        let cache = Cache::new(100);
        cache.put(&key("a"), token("new"), Version(5));
        cache.put(&key("a"), token("old"), Version(4));
        let got = cache.get(&key("a")).unwrap();
        assert_eq!(got.version, Version(5));
        assert_eq!(
            secrecy::ExposeSecret::expose_secret(got.token.unwrap().access_token()),
            "new"
        );
    }

    #[test]
    fn a_tombstone_keeps_the_removed_token_out() {
        let cache = Cache::new(100);
        cache.put(&key("a"), token("t"), Version(5));
        cache.bury(&key("a"), Some(Version(5)));
        cache.put(&key("a"), token("t"), Version(5));
        assert!(cache.get(&key("a")).unwrap().token.is_none());
        assert!(
            cache
                .fresh(&key("a"), SystemTime::now(), Duration::ZERO)
                .is_none()
        );
        // A new login has a newer version.
        cache.put(&key("a"), token("again"), Version(6));
        assert!(
            cache
                .fresh(&key("a"), SystemTime::now(), Duration::ZERO)
                .is_some()
        );
    }

    #[test]
    fn size_is_bounded() {
        let cache = Cache::new(SHARDS * 4);
        for i in 0..10_000 {
            cache.put(&key(&format!("k{i}")), token("t"), Version(1));
            cache.bury(&key(&format!("gone{i}")), None);
        }
        assert!(cache.len() <= SHARDS * 4, "{} entries", cache.len());
    }
}
