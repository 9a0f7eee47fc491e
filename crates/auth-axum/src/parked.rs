//! Pending authorizations parked in the server-side session between the
//! redirect to the provider and the callback.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use auth_core::{AccountId, Callback, PendingAuthorization};
use serde::{Deserialize, Serialize};
use tower_sessions::Session;

/// The session key of the parked authorizations.
const KEY: &str = "token_keeper.pending";
/// How many authorizations one browser may have in progress at once (say,
/// in several tabs); starting another drops the oldest.
const MAX_PARKED: usize = 8;

/// What the callback finishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Kind {
    /// A new grant for the provider.
    Connect,
    /// A move from legacy Fitbit to Google Health, with the identity check.
    Move,
}

/// One authorization in progress, bound to the session it is parked in.
#[derive(Serialize, Deserialize)]
pub(crate) struct Parked {
    /// The state and PKCE verifier (secret: they stay on the server).
    pub(crate) pending: PendingAuthorization,
    /// The user signed in when it began; the callback must find the same.
    pub(crate) user: AccountId,
    /// The path to send the browser to afterwards (already checked).
    pub(crate) return_to: String,
    /// When it stops being accepted, in milliseconds since the epoch.
    pub(crate) expires_at_ms: u64,
    /// What the callback finishes.
    pub(crate) kind: Kind,
}

impl Parked {
    pub(crate) fn new(
        pending: PendingAuthorization,
        user: AccountId,
        return_to: String,
        ttl: Duration,
        kind: Kind,
    ) -> Self {
        Self {
            pending,
            user,
            return_to,
            expires_at_ms: millis(SystemTime::now() + ttl),
            kind,
        }
    }

    /// Whether it is past its time.
    pub(crate) fn is_expired(&self) -> bool {
        millis(SystemTime::now()) >= self.expires_at_ms
    }
}

fn millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Parks `parked` in the session, dropping the oldest beyond the limit.
pub(crate) async fn park(
    session: &Session,
    parked: Parked,
) -> Result<(), tower_sessions::session::Error> {
    let mut all: Vec<Parked> = session.get(KEY).await?.unwrap_or_default();
    all.retain(|p| !p.is_expired());
    all.push(parked);
    if all.len() > MAX_PARKED {
        let extra = all.len() - MAX_PARKED;
        all.drain(..extra);
    }
    session.insert(KEY, all).await
}

/// Takes out of the session the authorization whose state the callback
/// carries, comparing every parked state in constant time. On a match the
/// session gets a new id (against session fixation) and is saved at once,
/// so that the authorization serves one callback only, even if this
/// request goes no further.
pub(crate) async fn take(
    session: &Session,
    callback: &Callback,
) -> Result<Option<Parked>, tower_sessions::session::Error> {
    let mut all: Vec<Parked> = session.get(KEY).await?.unwrap_or_default();
    let mut found = None;
    for (index, parked) in all.iter().enumerate() {
        if parked.pending.verify_state(callback).is_ok() {
            found = Some(index);
        }
    }
    let Some(index) = found else {
        return Ok(None);
    };
    let parked = all.remove(index);
    session.insert(KEY, all).await?;
    session.cycle_id().await?;
    session.save().await?;
    Ok(Some(parked))
}
