//! Token pairs the manager holds but could not save yet.
//!
//! After a refresh the server has rotated the refresh token: the new pair
//! exists only in this process's memory until it is saved. Dropping it would
//! burn the grant, so a pair whose save failed is kept here, its save is
//! retried (under the key's lease) for a bounded time, and every flight of
//! the key deals with it first: nothing refreshes again from the older
//! stored pair while a newer one is held here.
//!
//! What may be handed out meanwhile depends on the provider
//! ([`TokenProvider::use_ends_replay_window`](crate::TokenProvider::use_ends_replay_window)):
//! using Fitbit's new access token ends the window in which the old refresh
//! token still answers with the same pair, so until the save lands callers
//! get the old access token while it is valid, and a transient error after.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use secrecy::ExposeSecret;

use crate::error::{Error, Result};
use crate::id::TokenKey;
use crate::store::{Version, Versioned};
use crate::token::TokenSet;

/// Where an unsaved token came from, which decides what it may overwrite.
#[derive(Clone)]
pub(super) enum Origin {
    /// A refresh of `previous`, the pair stored at `from`; the refresh
    /// token sent is `previous`'s. `previous` is also served meanwhile,
    /// while valid.
    Refresh {
        from: Version,
        previous: Arc<TokenSet>,
    },
    /// A new authorization or a minted token: it replaces whatever is
    /// stored.
    Grant,
}

/// A token waiting to be saved.
pub(super) struct Unsaved {
    pub(super) token: Arc<TokenSet>,
    pub(super) origin: Origin,
    /// Whether the new access token may be used before the save.
    pub(super) serve_new: bool,
    /// Set while a background task is saving it (callers then get the
    /// interim answer without any I/O).
    pub(super) saving: AtomicBool,
    /// Set by `remove`/`revoke`: the account is going away, stop saving.
    pub(super) abandoned: AtomicBool,
}

/// What the store holds, compared with an unsaved token.
pub(super) enum Verdict {
    /// Save over the stored version (or create, for `None`).
    Overwrite(Option<Version>),
    /// The store holds something newer that is not ours to replace (a new
    /// login): keep it and drop ours.
    KeepStored,
}

impl Unsaved {
    pub(super) fn new(token: Arc<TokenSet>, origin: Origin, serve_new: bool) -> Self {
        Self {
            token,
            origin,
            serve_new,
            saving: AtomicBool::new(false),
            abandoned: AtomicBool::new(false),
        }
    }

    /// Decides, from what the store holds now, whether to save over it. A
    /// refreshed pair overwrites the pair it came from, a flagged token, or
    /// any token still carrying the refresh token it sent (another process
    /// replayed the same request and saved the same pair, or its own copy);
    /// a grant overwrites anything but a token received after it.
    pub(super) fn verdict(&self, stored: Option<&Versioned<TokenSet>>) -> Verdict {
        let Some(stored) = stored else {
            return match self.origin {
                Origin::Grant => Verdict::Overwrite(None),
                // Removed under the lease: the account is gone.
                Origin::Refresh { .. } => Verdict::KeepStored,
            };
        };
        match &self.origin {
            // Two logins racing: the one received last wins, whichever
            // saves last (Fitbit's newer consent supersedes the older
            // grant's refresh token, so the older one must not end up
            // stored). What counts is when each *grant* was received, not
            // when the stored token was: a pair refreshed from an older
            // grant after this login is still the older grant's, and this
            // login replaces it. A stored token with no grant time (stored
            // before it was recorded) is replaced too, and so is a flagged
            // one.
            Origin::Grant
                if stored.value.reauthorization_required().is_none()
                    && stored
                        .value
                        .granted_at()
                        .zip(self.token.granted_at())
                        .is_some_and(|(theirs, ours)| theirs > ours) =>
            {
                Verdict::KeepStored
            }
            Origin::Grant => Verdict::Overwrite(Some(stored.version)),
            Origin::Refresh { from, previous } => {
                let sent = previous.refresh_token().map(ExposeSecret::expose_secret);
                let ours = stored.version == *from
                    || stored.value.reauthorization_required().is_some()
                    || stored
                        .value
                        .refresh_token()
                        .is_some_and(|t| Some(t.expose_secret()) == sent);
                if ours {
                    Verdict::Overwrite(Some(stored.version))
                } else {
                    Verdict::KeepStored
                }
            }
        }
    }

    /// What a caller gets while this token is unsaved: the new access token
    /// if the provider allows it, else the previous one while it is still
    /// valid (and not the one `rejected`), else a transient error.
    pub(super) fn interim(
        &self,
        key: &TokenKey,
        now: SystemTime,
        rejected: Option<&str>,
    ) -> Result<Arc<TokenSet>> {
        // Only a token that is still valid, and never the rejected one,
        // even when it is the new one (a login whose save is pending, held
        // long enough to expire or to be rejected by an API).
        let usable = |token: &TokenSet| {
            token.is_fresh(now, Duration::ZERO)
                && token.reauthorization_required().is_none()
                && rejected.is_none_or(|r| r != token.access_token().expose_secret())
        };
        if self.serve_new && usable(&self.token) {
            return Ok(Arc::clone(&self.token));
        }
        if let Origin::Refresh { previous, .. } = &self.origin
            && usable(previous)
        {
            return Ok(Arc::clone(previous));
        }
        Err(Error::Transient {
            message: format!(
                "a new token for {key} was issued but could not be saved yet; it is kept in \
                 memory and its save is being retried, and it cannot be handed out before it is \
                 saved without risking the grant"
            ),
            status: None,
            retry_after: Some(Duration::from_secs(5)),
            source: None,
        })
    }
}

/// Keyed with `foldhash`, seeded per process, like the cache: SipHash made
/// hashing the key most of what a lookup cost.
type Map = HashMap<TokenKey, Arc<Unsaved>, foldhash::fast::RandomState>;

/// Unsaved tokens by key.
///
/// Almost always empty, and asked on every flight, so a count kept next to
/// the map answers "none" without taking its lock.
#[derive(Default)]
pub(super) struct UnsavedMap {
    map: Mutex<Map>,
    /// The map's length, written under its lock.
    len: AtomicUsize,
}

impl UnsavedMap {
    fn map(&self) -> std::sync::MutexGuard<'_, Map> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Updates the count after a change made under the lock.
    fn counted(&self, map: &Map) {
        self.len.store(map.len(), Ordering::Release);
    }

    /// The unsaved token of `key`, if any.
    ///
    /// A token kept by a flight of `key` is seen by every later flight of
    /// `key`: the flight keeps it before it finishes, and flights of one key
    /// follow each other through the flight map's lock.
    pub(super) fn get(&self, key: &TokenKey) -> Option<Arc<Unsaved>> {
        if self.len.load(Ordering::Acquire) == 0 {
            return None;
        }
        self.map().get(key).cloned()
    }

    /// Keeps `unsaved` for `key`, replacing an older one.
    pub(super) fn keep(&self, key: &TokenKey, unsaved: Arc<Unsaved>) {
        let mut map = self.map();
        map.insert(key.clone(), unsaved);
        self.counted(&map);
    }

    /// Drops `key`'s entry if it is still `unsaved` (the same one, not an
    /// equal one; a pair that was never kept is never in the map).
    pub(super) fn settle(&self, key: &TokenKey, unsaved: &Unsaved) {
        if self.len.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut map = self.map();
        if map
            .get(key)
            .is_some_and(|u| std::ptr::eq(Arc::as_ptr(u), unsaved))
        {
            map.remove(key);
            self.counted(&map);
        }
    }

    /// Drops and abandons `key`'s entry (the account is being removed).
    pub(super) fn abandon(&self, key: &TokenKey) {
        let mut map = self.map();
        if let Some(unsaved) = map.remove(key) {
            self.counted(&map);
            unsaved.abandoned.store(true, Ordering::SeqCst);
        }
    }

    /// Keys with an unsaved token.
    pub(super) fn keys(&self) -> Vec<TokenKey> {
        self.map().keys().cloned().collect()
    }
}
