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
    /// A new token could not be saved within the save retry time, or its
    /// lease was lost. It is kept in memory (and the next call for the
    /// account tries again), but it is lost if the process stops.
    SaveFailed {
        /// The account.
        key: TokenKey,
        /// Why, without secrets.
        reason: String,
    },
    /// An operator cleared the reauthorization flag.
    ReauthorizationCleared {
        /// The account.
        key: TokenKey,
    },
}
