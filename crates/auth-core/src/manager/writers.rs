//! The key's other writers: a new authorization, a logout, a revocation and
//! an operator clearing a reauthorization flag.
//!
//! Each holds the key's lease while it writes, like a refresh, so nothing
//! one writes can be undone by another that read before it; and each leaves
//! the cache so that a flight that read earlier cannot bring an old token
//! back (see [`Cache::bury`](super::cache::Cache::bury)).

use std::sync::Arc;

use tracing::{info, warn};

use super::protocol::{Saved, version_of};
use super::unsaved::{Origin, Unsaved};
use super::{Inner, TokenEvent};
use crate::error::{Error, Result, StoreErrorKind};
use crate::id::TokenKey;
use crate::token::TokenSet;

impl Inner {
    /// Saves the token of a new authorization. Never loses it: if the lease
    /// or the store fails, the token is kept in memory (and served) while a
    /// background task keeps trying to save it; unless this process holds a
    /// newer login's token, which wins here as it would in the store (see
    /// [`newer_login_known`](Self::newer_login_known)).
    pub(super) async fn save_grant(
        self: &Arc<Self>,
        key: &TokenKey,
        lease: Option<Box<dyn crate::store::KeyLock>>,
        token: TokenSet,
    ) -> Arc<TokenSet> {
        let token = Arc::new(token.into_new_grant());
        let unsaved = Arc::new(Unsaved::new(Arc::clone(&token), Origin::Grant, true));
        let lease = match lease {
            Some(lease) => Some(lease),
            None => match self.store.lock(key, self.lock_wait).await {
                Ok(lease) => Some(lease),
                Err(err) => {
                    warn!(%key, error = %err, "could not take the lease to save a new authorization; keeping it in memory and retrying");
                    None
                }
            },
        };
        // A login replaces whatever was unsaved for the account, but only
        // once the login itself is saved or kept: a login cancelled before
        // that must leave an unsaved refreshed pair to be saved, or the
        // next refresh burns the grant. Until the new token is saved, the
        // previous grant's token is not served from the cache either.
        if let Some(lease) = lease {
            let saved = match lease.check().await {
                Ok(()) => self.try_save(key, lease.as_ref(), &unsaved).await,
                Err(err) => Err(err),
            };
            match saved {
                Ok(Saved::Ours(token)) => {
                    self.unsaved.abandon(key);
                    return token;
                }
                // A login received after this one is stored already.
                Ok(Saved::Theirs(Some(stored))) => {
                    self.unsaved.abandon(key);
                    return Arc::new(stored.value);
                }
                Ok(Saved::Theirs(None)) => return token,
                Err(err) => {
                    if let Some(newer) = self.newer_login_known(key, &token) {
                        return newer;
                    }
                    warn!(%key, error = %err, "saving a new authorization failed; keeping it in memory and retrying");
                    self.unsaved.abandon(key);
                    self.cache.forget(key);
                    self.keep_saving(key, Some(lease), unsaved);
                    return token;
                }
            }
        }
        if let Some(newer) = self.newer_login_known(key, &token) {
            return newer;
        }
        self.unsaved.abandon(key);
        self.cache.forget(key);
        self.keep_saving(key, None, unsaved);
        token
    }

    /// A login of `key` received after `token`'s, that this process already
    /// holds (cached from the store, or unsaved): `token` must not replace
    /// it here, as a save would not replace it in the store (the verdict of
    /// [`Unsaved::verdict`]: a newer grant wins unless it is flagged). Two
    /// logins of one account can finish out of order on one process; the
    /// older one, unable to save, was kept and served over the newer one,
    /// even to a `force_refresh` that had rejected the newer one
    /// (simulation seed 7000975).
    ///
    /// What the caller then gets: the newer token, as any caller would get
    /// it (an unsaved one only as [`Unsaved::interim`] allows, never
    /// abandoned for an older login); failing that, this login's own token,
    /// valid but not kept.
    fn newer_login_known(&self, key: &TokenKey, token: &Arc<TokenSet>) -> Option<Arc<TokenSet>> {
        let ours = token.granted_at()?;
        let newer = |held: &TokenSet| {
            held.reauthorization_required().is_none()
                && held.granted_at().is_some_and(|theirs| theirs > ours)
        };
        let held = match self.unsaved.get(key) {
            Some(unsaved) if newer(&unsaved.token) => unsaved
                .interim(key, self.now(), None)
                .unwrap_or_else(|_| Arc::clone(token)),
            _ => self.cache.get(key)?.token.filter(|cached| newer(cached))?,
        };
        warn!(%key, "this process holds the token of a login received after this one; keeping it, and dropping this login's token, which could not be saved");
        Some(held)
    }

    /// Deletes the token locally, under the lease. An unknown key touches
    /// nothing (no lock file, no directory).
    pub(super) async fn remove(&self, key: &TokenKey) -> Result<bool> {
        let known = match self.store.load(key).await {
            Ok(stored) => stored.is_some(),
            // Deleting is what was asked: a corrupt token goes too.
            Err(err) if err.store_kind() == Some(StoreErrorKind::Corrupt) => true,
            Err(err) => return Err(err),
        };
        if !known && self.unsaved.get(key).is_none() {
            self.cache.bury(key, None);
            return Ok(false);
        }
        // An unsaved pair is abandoned only once the delete is done: a
        // remove that times out on the lease, fails, or is cancelled must
        // leave it to be saved, or the next refresh sends its spent
        // predecessor and burns the grant.
        let lease = self.store.lock(key, self.lock_wait).await?;
        let version = version_of(self, key).await;
        let existed = self.store.delete_leased(lease.as_ref()).await?;
        self.unsaved.abandon(key);
        self.cache.bury(key, version);
        if existed {
            info!(%key, "token removed");
            self.emit(TokenEvent::Removed { key: key.clone() });
        }
        Ok(existed)
    }

    /// Revokes what is current under the lease (a newer unsaved pair, if
    /// this process holds one), then deletes it locally. A failed
    /// revocation keeps the local token.
    pub(super) async fn revoke(&self, key: &TokenKey) -> Result<()> {
        let provider = Arc::clone(self.provider(&key.provider)?);
        let lease = self.store.lock(key, self.lock_wait).await?;
        // Read under the lease, checking it in the same step.
        let stored = self
            .store
            .load_leased(lease.as_ref())
            .await?
            .ok_or_else(|| {
                Error::reauthorization_required(
                    Some(key.clone()),
                    "no token is stored for this account",
                )
            })?;
        let current = match self.unsaved.get(key) {
            Some(unsaved) => Arc::clone(&unsaved.token),
            None => Arc::new(stored.value),
        };
        provider
            .revoke(&current)
            .await
            .map_err(|e| e.for_key(key))?;
        self.unsaved.abandon(key);
        self.store.delete_leased(lease.as_ref()).await?;
        self.cache.bury(key, Some(stored.version));
        info!(%key, "grant revoked and token removed");
        self.emit(TokenEvent::Revoked { key: key.clone() });
        Ok(())
    }

    /// Clears the reauthorization flag (and any cooldown) of the stored
    /// token, under the lease. Returns whether it was flagged.
    pub(super) async fn clear_reauthorization(&self, key: &TokenKey) -> Result<bool> {
        let lease = self.store.lock(key, self.lock_wait).await?;
        let stored = self.store.load(key).await?.ok_or_else(|| {
            Error::reauthorization_required(
                Some(key.clone()),
                "no token is stored for this account",
            )
        })?;
        if stored.value.reauthorization_required().is_none()
            && stored.value.refresh_cooldown().is_none()
        {
            return Ok(false);
        }
        let cleared = stored.value.unflagged();
        let version = self
            .store
            .save_leased(lease.as_ref(), &cleared, Some(stored.version))
            .await?;
        self.cache.put(key, Arc::new(cleared), version);
        info!(%key, "reauthorization flag cleared by request");
        self.emit(TokenEvent::ReauthorizationCleared { key: key.clone() });
        Ok(true)
    }
}
