//! [`TokenEvent`]: what the manager tells apps that subscribe.

use std::time::SystemTime;

use crate::id::TokenKey;

/// Something that happened to an account's token. Carries no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenEvent {
    /// A new authorization was completed and saved.
    Authorized {
        /// The account.
        key: TokenKey,
    },
    /// The token was refreshed and the new pair saved.
    Refreshed {
        /// The account.
        key: TokenKey,
        /// When the new access token expires.
        expires_at: Option<SystemTime>,
    },
    /// The grant is gone; the user must authorize again. The stored token
    /// is kept and flagged.
    ReauthorizationRequired {
        /// The account.
        key: TokenKey,
        /// Why, without secrets.
        reason: String,
    },
    /// The grant was revoked at the provider and deleted locally.
    Revoked {
        /// The account.
        key: TokenKey,
    },
    /// The token was deleted locally.
    Removed {
        /// The account.
        key: TokenKey,
    },
    /// A refresh failed for a transient reason; the next attempt waits
    /// until `retry_at`.
    RefreshFailed {
        /// The account.
        key: TokenKey,
        /// Why, without secrets.
        reason: String,
        /// When the next attempt may be made.
        retry_at: SystemTime,
        /// Whether the still-valid old token was handed out instead.
        served_stale: bool,
    },
    /// A new token still could not be saved after repeated store errors.
    /// It is kept in memory and its save goes on while the process lives,
    /// but it is lost if the process stops.
    SaveFailed {
        /// The account.
        key: TokenKey,
        /// Why, without secrets.
        reason: String,
    },
    /// A login's sequence was taken after its code exchange, because the
    /// account came from the response (or the token from elsewhere): a
    /// login of the same account whose exchange came later but whose
    /// sequence came first is overwritten by this older one. The one race
    /// of logins no client rule closes; counted so it can be told apart.
    LoginRace {
        /// The account.
        key: TokenKey,
    },
    /// An operator cleared the reauthorization flag.
    ReauthorizationCleared {
        /// The account.
        key: TokenKey,
    },
    /// [`TokenManager::shutdown`](super::TokenManager::shutdown) was called:
    /// no new refresh starts. Background work (a
    /// [`Refresher`](crate::Refresher)) stops on it.
    ShuttingDown,
}
