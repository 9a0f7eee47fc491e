//! The manager's in-memory token cache: the hot path of
//! [`TokenManager::access_token`](super::TokenManager::access_token).
//!
//! It never goes backwards: each entry carries the store version it was
//! read or written at, an older write is ignored, and a removal leaves a
//! *tombstone* with the removed version, so a flight which read the token
//! before the removal cannot bring it back. A full shard drops tombstones
//! and expired tokens first. Scaling with threads is [`ShardedMap`]'s job.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::decision::fresh_beyond_skew;
use super::sharded::ShardedMap;
use crate::id::TokenKey;
use crate::store::Version;
use crate::token::TokenSet;

/// A cached token, or the tombstone of a removed one.
#[derive(Clone)]
pub(super) struct Entry {
    /// `None` for a tombstone.
    pub(super) token: Option<Arc<TokenSet>>,
    /// The store version the token was read or written at (for a tombstone,
    /// the last version removed).
    pub(super) version: Version,
}

/// The bounded, version-monotonic cache.
pub(super) struct Cache(ShardedMap<Entry>);

impl Cache {
    /// A cache holding about `capacity` entries at most.
    pub(super) fn new(capacity: usize) -> Self {
        Self(ShardedMap::new(capacity, |e, now| {
            e.token
                .as_ref()
                .is_some_and(|t| t.is_fresh(now, Duration::ZERO))
        }))
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
        self.0.read(key, |entry| {
            let token = entry?.token.as_ref()?;
            let usable = token.reauthorization_required().is_none()
                && (fresh_beyond_skew(token, now, skew)
                    || (token.refresh_cooldown().is_some_and(|c| c.is_active(now))
                        && token.is_fresh(now, Duration::ZERO)));
            usable.then(|| Arc::clone(token))
        })
    }

    /// The entry for `key`, tombstones included.
    pub(super) fn get(&self, key: &TokenKey) -> Option<Entry> {
        self.0.read(key, |e| e.cloned())
    }

    /// Caches `token` at `version`, unless the cache already holds something
    /// newer (or the tombstone of this very version).
    pub(super) fn put(&self, key: &TokenKey, token: Arc<TokenSet>, version: Version) {
        self.0.update(key, |held| {
            let newer = held.is_some_and(|e| {
                e.version > version || (e.version == version && e.token.is_none())
            });
            (!newer).then_some(Entry {
                token: Some(token),
                version,
            })
        });
    }

    /// Caches a token read from the store, unless the cache already holds
    /// its version or a newer one: the usual case when a flight reloads,
    /// which then costs a read lock and no write lock.
    pub(super) fn put_stored(&self, key: &TokenKey, token: &TokenSet, version: Version) {
        if !self
            .0
            .read(key, |e| e.is_some_and(|e| e.version >= version))
        {
            self.put(key, Arc::new(token.clone()), version);
        }
    }

    /// Records that `key` was removed at `version` (the last version it had,
    /// if known): older writes are ignored from now on.
    pub(super) fn bury(&self, key: &TokenKey, version: Option<Version>) {
        self.0.update(key, |held| {
            Some(Entry {
                token: None,
                version: held.map(|e| e.version).max(version).unwrap_or(Version(0)),
            })
        });
    }

    /// Forgets `key`'s token (not a removal: the next read goes to the
    /// store).
    pub(super) fn forget(&self, key: &TokenKey) {
        self.0.remove_if(key, |e| e.token.is_some());
    }

    /// Entries held, tombstones included; for tests of bounded memory.
    pub(super) fn len(&self) -> usize {
        self.0.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manager::sharded::SHARDS;

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
