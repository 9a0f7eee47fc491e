//! The key's other writers: a login, a revocation, a removal, and an
//! operator clearing a flag. Each holds the key's lease while it writes, so
//! nothing one writes is undone by another that read before it.
//!
//! Logins are ordered by the store's per-key sequence, never by clocks; a
//! login's exchange and save run in a task of their own from the moment
//! the code is sent, so a caller that goes away loses nothing. Revocation
//! and removal finish a refresh in flight first and leave a tombstone,
//! which refuses logins sequenced before it.

use std::fmt;
use std::sync::Arc;

use tokio::time::Instant;
use tracing::{info, warn};

use super::decision::{self, Goal, Origin, Unsaved};
use super::driver::MARGIN;
use super::{Inner, TokenEvent};
use crate::authorization::{Callback, PendingAuthorization};
use crate::error::{Error, Result, StoreErrorKind};
use crate::id::TokenKey;
use crate::provider::TokenProvider;
use crate::store::{Expect, Lease, Record, Sequence, Stored};
use crate::token::TokenSet;

/// What [`TokenManager::clear_reauthorization`](super::TokenManager::clear_reauthorization)
/// cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Cleared {
    /// Nothing: the token was neither flagged nor cooling down.
    Nothing,
    /// The reauthorization flag.
    Flag,
    /// The refresh cooldown.
    Cooldown,
    /// The flag and the cooldown.
    FlagAndCooldown,
}

impl Cleared {
    /// Whether anything was cleared.
    pub fn any(self) -> bool {
        self != Self::Nothing
    }
}

impl fmt::Display for Cleared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Nothing => "nothing to clear: the token was neither flagged nor cooling down",
            Self::Flag => "cleared the reauthorization flag",
            Self::Cooldown => "cleared the refresh cooldown",
            Self::FlagAndCooldown => "cleared the reauthorization flag and the refresh cooldown",
        })
    }
}

/// How many times revoke and remove let a refresh in flight be finished
/// before they give up.
const FINISH_ROUNDS: usize = 3;

impl Inner {
    /// Exchanges the code and saves the token, in a task of its own from
    /// the moment the code is sent. When the account is known, the lease
    /// and the login's sequence are taken first; otherwise right after the
    /// exchange (the [`LoginRace`](TokenEvent::LoginRace)).
    pub(super) async fn login(
        self: &Arc<Self>,
        provider: Arc<dyn TokenProvider>,
        pending: PendingAuthorization,
        callback: Callback,
    ) -> Result<(TokenKey, Arc<TokenSet>)> {
        let early = match &pending.account {
            Some(account) => {
                let key = TokenKey::new(pending.provider.clone(), account.clone());
                let lease = self.store.lock(&key, self.config.lock_wait).await?;
                let sequence = lease.next_sequence().await?;
                Some((key, lease, sequence))
            }
            None => None,
        };
        let inner = Arc::clone(self);
        let work = async move {
            let token = provider.exchange_code(&pending, &callback).await?;
            let token = token.into_new_grant();
            let (key, lease, sequence) = match early {
                Some((key, lease, sequence)) => (key, Some(lease), Some(sequence)),
                None => {
                    let Some(account) = provider.account_for(&token) else {
                        return Err(Error::configuration(format!(
                            "provider {} cannot tell which account the new token belongs to; \
                             set AuthorizeRequest::account",
                            pending.provider
                        )));
                    };
                    (TokenKey::new(pending.provider.clone(), account), None, None)
                }
            };
            let token = inner.save_login(&key, lease, sequence, token).await?;
            Ok((key, token))
        };
        self.detached(work).await
    }

    /// Runs `work` in a tracked task that finishes even if the caller goes
    /// away, and waits for it.
    pub(super) async fn detached<T: Send + 'static>(
        &self,
        work: impl Future<Output = Result<T>> + Send + 'static,
    ) -> Result<T> {
        match self.tasks.spawn(work).await {
            Ok(out) => out,
            Err(_) => Err(Error::transient(
                "the login task panicked (a bug in the provider or store)",
            )),
        }
    }

    /// Saves a login's token under the key's lease with its sequence
    /// (taking both now if not given). Never loses it: if the store fails,
    /// it is kept in memory, served, and saved by a task.
    pub(super) async fn save_login(
        self: &Arc<Self>,
        key: &TokenKey,
        lease: Option<Box<dyn Lease>>,
        sequence: Option<Sequence>,
        token: TokenSet,
    ) -> Result<Arc<TokenSet>> {
        let token = Arc::new(token);
        let lease = match lease {
            Some(lease) => Ok(lease),
            None => self.store.lock(key, self.config.lock_wait).await,
        };
        let taken = match (lease, sequence) {
            (Ok(lease), Some(seq)) => Ok((lease, seq)),
            (Ok(lease), None) => {
                // Another login whose exchange came later may have taken
                // its sequence before this one: the store then keeps
                // this older grant. Named, so that it can be counted.
                self.emit(TokenEvent::LoginRace { key: key.clone() });
                match lease.next_sequence().await {
                    Ok(seq) => Ok((lease, seq)),
                    Err(err) => Err((err, None)),
                }
            }
            (Err(err), seq) => Err((err, seq)),
        };
        let (err, sequence) = match taken {
            Ok((lease, seq)) => match lease
                .save_and_release(&token, Expect::Login(seq), Record::Clear)
                .await
            {
                Ok(version) => {
                    self.unsaved.abandon(key);
                    self.cache.put(key, Arc::clone(&token), version);
                    self.emit(TokenEvent::Authorized { key: key.clone() });
                    return Ok(token);
                }
                Err(err) if err.store_kind() == Some(StoreErrorKind::Conflict) => {
                    return self.login_superseded(key).await;
                }
                Err(err) => (err, Some(seq)),
            },
            Err((err, seq)) => (err, seq),
        };
        warn!(%key, error = %err, "saving a new authorization failed; keeping it in memory and saving it again");
        let unsaved = Unsaved {
            token: Arc::clone(&token),
            origin: Origin::Login(sequence),
            serve_new: true,
        };
        self.cache.forget(key);
        self.keep_saving(key, Arc::new(unsaved));
        Ok(token)
    }

    /// A login whose sequence the store refused: a newer login is stored
    /// (its token is the answer) or the account was revoked or removed
    /// after this login began.
    async fn login_superseded(&self, key: &TokenKey) -> Result<Arc<TokenSet>> {
        match self.store.load(key).await? {
            Some(Stored {
                token: Some(token),
                version,
                ..
            }) => {
                warn!(%key, "a newer login of this account is stored; keeping it");
                let token = Arc::new(token);
                self.cache.put(key, Arc::clone(&token), version);
                Ok(token)
            }
            _ => Err(Error::reauthorization_required(
                Some(key.clone()),
                "the account was revoked or removed after this login began; log in again",
            )),
        }
    }

    /// Takes the lease with no refresh in flight: a record found is
    /// finished first (replayed, or left to its guard), a few times at
    /// most. The row read under the lease.
    async fn lease_settled(
        self: &Arc<Self>,
        key: &TokenKey,
    ) -> Result<(Box<dyn Lease>, Option<Stored>)> {
        for _ in 0..FINISH_ROUNDS {
            let lease = self.store.lock(key, self.config.lock_wait).await?;
            let row = lease.load().await?;
            let rotates = self
                .provider(&key.provider)
                .is_ok_and(|p| p.refresh_rules().rotates());
            let in_flight = row.as_ref().is_some_and(|r| r.in_flight.is_some());
            if !in_flight || !rotates || self.unsaved.get(key).is_some() {
                return Ok((lease, row));
            }
            drop(lease);
            info!(%key, "a refresh is in flight; finishing it first");
            let _ = self.fly(key, Goal::Takeover { observed: None }).await;
        }
        Err(Error::transient(format!(
            "a refresh of {key} is in flight and could not be finished yet; nothing was changed; \
             try again in a few seconds"
        )))
    }

    /// Revokes the current pair (this process's unsaved one, if any) at the
    /// provider, then leaves a tombstone. A failed revocation keeps the
    /// token.
    pub(super) async fn revoke(self: &Arc<Self>, key: &TokenKey) -> Result<()> {
        let provider = Arc::clone(self.provider(&key.provider)?);
        let (lease, row) = self.lease_settled(key).await?;
        let (row, stored) = match row {
            Some(row) if row.token.is_some() => {
                let token = row.token.clone().expect("checked");
                (row, token)
            }
            _ => {
                return Err(Error::reauthorization_required(
                    Some(key.clone()),
                    "no token is stored for this account",
                ));
            }
        };
        let current = match self.unsaved.get(key) {
            Some(unsaved) => Arc::clone(&unsaved.token),
            None => Arc::new(stored),
        };
        // Renew the lease right before the request, which then ends before
        // the lease would. A process that paused since (until the lease
        // could be another writer's, who may have refreshed the pair)
        // sends nothing: a spent token's revocation may be acknowledged
        // and ignored, leaving the grant alive.
        let renewed_at = Instant::now();
        let renewed = lease.load().await?;
        if renewed.as_ref().map(|r| r.version) != Some(row.version) {
            return Err(Error::not_sent(format!(
                "the stored token of {key} changed while its revocation was prepared; nothing \
                 was sent; try again"
            )));
        }
        let limit = decision::attempt_timeout(
            self.config.attempt_timeout,
            self.config.refresh_deadline,
            self.store.lease_ttl(),
            renewed_at.elapsed(),
            MARGIN,
        );
        if limit.is_zero() {
            return Err(Error::not_sent(format!(
                "the lease on {key} may have lapsed before its revocation was sent (the process \
                 was paused); nothing was sent; try again"
            )));
        }
        match tokio::time::timeout(limit, provider.revoke(&current)).await {
            Ok(answer) => answer.map_err(|e| e.for_key(key))?,
            Err(_) => {
                return Err(Error::transient(format!(
                    "the provider did not answer the revocation of {key} within {}; the token \
                     is kept; try again",
                    crate::error::human_duration(limit)
                )));
            }
        }
        let version = lease.delete(row.version).await?;
        self.unsaved.abandon(key);
        self.cache.bury(key, Some(version));
        info!(%key, "grant revoked; a tombstone is left");
        self.emit(TokenEvent::Revoked { key: key.clone() });
        Ok(())
    }

    /// Leaves a tombstone for the key's token, after finishing a refresh in
    /// flight. Returns whether a token was stored.
    pub(super) async fn remove(self: &Arc<Self>, key: &TokenKey) -> Result<bool> {
        // An account never stored takes no lease: a store may make a lock
        // file or a directory for one.
        let known = match self.store.load(key).await {
            Ok(row) => row.is_some(),
            Err(err) if err.store_kind() == Some(StoreErrorKind::Corrupt) => true,
            Err(err) => return Err(err),
        };
        if !known && self.unsaved.get(key).is_none() {
            self.cache.bury(key, None);
            return Ok(false);
        }
        let (lease, row) = self.lease_settled(key).await?;
        let Some(row) = row.filter(|r| r.token.is_some()) else {
            let held = self.unsaved.get(key).is_some();
            self.unsaved.abandon(key);
            self.cache.bury(key, None);
            return Ok(held);
        };
        let version = lease.delete(row.version).await?;
        self.unsaved.abandon(key);
        self.cache.bury(key, Some(version));
        info!(%key, "token removed; a tombstone is left");
        self.emit(TokenEvent::Removed { key: key.clone() });
        Ok(true)
    }

    /// Clears the flag and the cooldown of the stored token, keeping any
    /// record, under the lease.
    pub(super) async fn clear_reauthorization(&self, key: &TokenKey) -> Result<Cleared> {
        let lease = self.store.lock(key, self.config.lock_wait).await?;
        let Some((token, version)) = lease
            .load()
            .await?
            .and_then(|r| Some((r.token?, r.version)))
        else {
            return Err(Error::reauthorization_required(
                Some(key.clone()),
                "no token is stored for this account",
            ));
        };
        let cleared = match (
            token.reauthorization_required().is_some(),
            token.refresh_cooldown().is_some(),
        ) {
            (false, false) => return Ok(Cleared::Nothing),
            (true, false) => Cleared::Flag,
            (false, true) => Cleared::Cooldown,
            (true, true) => Cleared::FlagAndCooldown,
        };
        let unflagged = token.unflagged();
        let version = lease
            .save_and_release(&unflagged, Expect::Version(version), Record::Keep)
            .await?;
        self.cache.put(key, Arc::new(unflagged), version);
        info!(%key, "{cleared} by request");
        self.emit(TokenEvent::ReauthorizationCleared { key: key.clone() });
        Ok(cleared)
    }
}
