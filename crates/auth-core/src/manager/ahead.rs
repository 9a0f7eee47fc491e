//! The manager's entry point for the background
//! [`Refresher`](crate::Refresher): refresh a key *through the protocol*
//! when its token is due, so the single flight, the lease, the stored
//! cooldown and every other rule apply to background refreshes exactly as
//! to callers'.
//!
//! It must never refresh a token that someone else already replaced: the
//! flight's goal is [`Goal::Replace`] of the token it judged due, so a
//! newer token found in the store (another process, another host) is the
//! answer, with no request.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::TokenManager;
use super::decision::Goal;
use crate::error::{Error, Result};
use crate::id::TokenKey;
use crate::token::TokenSet;

/// What [`TokenManager::refresh_if`] did.
#[derive(Debug)]
pub(crate) enum Ahead {
    /// The current token was not due; nothing was sent.
    NotDue(Arc<TokenSet>),
    /// The due token was replaced: refreshed now, or found already replaced
    /// in the store.
    Replaced(Arc<TokenSet>),
}

impl TokenManager {
    /// The manager's clock (the system clock unless the builder set one).
    pub(crate) fn now(&self) -> SystemTime {
        self.inner.now()
    }

    /// The time to judge `token`'s expiry by: see `Inner::token_now` (a
    /// pair this process just received is not due at once, whatever this
    /// host's clock says).
    pub(crate) fn token_now(&self, key: &TokenKey, token: &TokenSet) -> SystemTime {
        self.inner.token_now(key, token, None)
    }

    /// The refresh skew: callers refresh tokens expiring within it.
    pub(crate) fn skew(&self) -> Duration {
        self.inner.config.skew
    }

    /// Refreshes `key` through the protocol if `due(current, now)` says its
    /// current token is due; the current token is the cached one, else the
    /// stored one. A flagged token is an error, as for callers.
    ///
    /// # Errors
    ///
    /// As for [`refresh`](Self::refresh): no stale token is served, and a
    /// stored cooldown still running is a transient error with its
    /// `retry_after`.
    pub(crate) async fn refresh_if(
        &self,
        key: &TokenKey,
        due: impl FnOnce(&TokenSet, SystemTime) -> bool,
    ) -> Result<Ahead> {
        let current = match self.inner.cache.get(key).and_then(|e| e.token) {
            Some(token) => token,
            None => self.inner.stored_token(key).await?,
        };
        if let Some(reason) = current.reauthorization_required() {
            return Err(Error::reauthorization_required(Some(key.clone()), reason));
        }
        // The same time the Refresher plans `NotDue`'s token with (see
        // `token_now` below): if the two disagreed, a token not due here
        // would be planned due at once, in a loop.
        if !due(&current, self.token_now(key, &current)) {
            return Ok(Ahead::NotDue(current));
        }
        let token = self.inner.fly(key, Goal::Replace(current)).await?;
        Ok(Ahead::Replaced(token))
    }

    /// Finishes a refresh left in flight by its holder (the Refresher's
    /// orphan poll): replays it, or starts the late-replay guard. The
    /// token the store holds afterwards.
    ///
    /// # Errors
    ///
    /// A transient error while the refresh cannot be finished yet, and the
    /// errors of a refresh.
    pub(crate) async fn take_over(&self, key: &TokenKey) -> Result<Arc<TokenSet>> {
        self.inner.fly(key, Goal::Takeover { observed: None }).await
    }
}
