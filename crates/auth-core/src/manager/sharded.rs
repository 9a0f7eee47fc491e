//! A bounded hash map by [`TokenKey`] that scales with threads: the
//! storage under the manager's [cache](super::cache). It knows nothing of
//! tokens; everything here is tuning, measured in BENCHMARKS.md ("Hot
//! path", "2-thread scaling").
//!
//! - **Shards.** The map is split into 64 shards, so that writers (a
//!   refresh, a login) of different users rarely meet.
//! - **Readers on their own cache lines.** Each shard is behind a
//!   [`ShardedLock`], whose readers count themselves on one of several
//!   cache lines, picked by thread. With a plain `RwLock` every reader
//!   writes the lock's one count, and two threads serving different users
//!   did only 1.4 times the work of one. A lock-free map avoids that too,
//!   but the one tried cost 2.7 times the single-threaded hot path.
//! - **One hash.** `foldhash`, seeded per process, is computed once per
//!   call: its high bits pick the shard, and the map inside uses it as
//!   is. A few nanoseconds for short ids, against SipHash's twenty.
//! - **Bounded.** A full shard drops the entries its owner does not value
//!   first, then an eighth of the rest.

use std::hash::BuildHasher as _;
use std::sync::PoisonError;
use std::time::SystemTime;

use crossbeam_utils::sync::{ShardedLock, ShardedLockReadGuard, ShardedLockWriteGuard};
use foldhash::fast::RandomState;
use hashbrown::HashTable;
use hashbrown::hash_table::Entry;

use crate::id::TokenKey;

/// Shards; a power of two.
pub(super) const SHARDS: usize = 64;

/// One shard, aligned so that its table's header is not on a line that a
/// neighbour's readers write.
#[repr(align(128))]
struct Shard<V>(ShardedLock<HashTable<(TokenKey, V)>>);

/// The map. `valued` says which entries a full shard keeps first, at a time
/// read once per pruning.
pub(super) struct ShardedMap<V> {
    shards: Box<[Shard<V>]>,
    hasher: RandomState,
    per_shard: usize,
    valued: fn(&V, SystemTime) -> bool,
}

impl<V> ShardedMap<V> {
    /// A map holding about `capacity` entries at most.
    pub(super) fn new(capacity: usize, valued: fn(&V, SystemTime) -> bool) -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| Shard(ShardedLock::new(HashTable::new())))
                .collect(),
            hasher: RandomState::default(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
            valued,
        }
    }

    /// What `f` makes of `key`'s entry, under the shard's read lock.
    pub(super) fn read<R>(&self, key: &TokenKey, f: impl FnOnce(Option<&V>) -> R) -> R {
        let (hash, shard) = self.read_shard(key);
        f(shard.find(hash, |(k, _)| k == key).map(|(_, v)| v))
    }

    /// Writes what `make` returns for `key`'s entry (nothing for `None`),
    /// under the shard's write lock, making room in a full shard for a new
    /// key.
    pub(super) fn update(&self, key: &TokenKey, make: impl FnOnce(Option<&V>) -> Option<V>) {
        let (hash, mut shard) = self.write_shard(key);
        let held = shard.find(hash, |(k, _)| k == key).map(|(_, v)| v);
        let new_key = held.is_none();
        let Some(value) = make(held) else {
            return;
        };
        if new_key && shard.len() >= self.per_shard {
            self.make_room(&mut shard);
        }
        match shard.entry(hash, |(k, _)| k == key, |(k, _)| self.hasher.hash_one(k)) {
            Entry::Occupied(mut slot) => slot.get_mut().1 = value,
            Entry::Vacant(slot) => drop(slot.insert((key.clone(), value))),
        }
    }

    /// Removes `key`'s entry if `doomed` says so.
    pub(super) fn remove_if(&self, key: &TokenKey, doomed: impl Fn(&V) -> bool) {
        let (hash, mut shard) = self.write_shard(key);
        if let Ok(slot) = shard.find_entry(hash, |(k, v)| k == key && doomed(v)) {
            slot.remove();
        }
    }

    /// Entries held; for tests of bounded memory.
    pub(super) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.0.read().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }

    /// The key's hash, and its shard, taken from bits the table inside does
    /// not use (the low ones pick its bucket, the top seven its tag), so
    /// that one shard's keys still spread over its buckets. The seed means
    /// an adversary who crowds one shard only slows that shard down.
    fn locate(&self, key: &TokenKey) -> (u64, &ShardedLock<HashTable<(TokenKey, V)>>) {
        let hash = self.hasher.hash_one(key);
        #[allow(clippy::cast_possible_truncation)]
        let index = ((hash >> 32) as usize) & (SHARDS - 1);
        (hash, &self.shards[index].0)
    }

    fn read_shard(
        &self,
        key: &TokenKey,
    ) -> (u64, ShardedLockReadGuard<'_, HashTable<(TokenKey, V)>>) {
        let (hash, shard) = self.locate(key);
        (hash, shard.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn write_shard(
        &self,
        key: &TokenKey,
    ) -> (u64, ShardedLockWriteGuard<'_, HashTable<(TokenKey, V)>>) {
        let (hash, shard) = self.locate(key);
        (hash, shard.write().unwrap_or_else(PoisonError::into_inner))
    }

    /// Frees at least one place in a full shard: the entries not valued
    /// first, then an eighth of the rest.
    fn make_room(&self, shard: &mut HashTable<(TokenKey, V)>) {
        let now = SystemTime::now();
        shard.retain(|(_, v)| (self.valued)(v, now));
        if shard.len() >= self.per_shard {
            let mut to_drop = (self.per_shard / 8).max(1);
            shard.retain(|_| {
                let keep = to_drop == 0;
                to_drop = to_drop.saturating_sub(1);
                keep
            });
        }
    }
}
