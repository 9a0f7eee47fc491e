//! The clock a token's own expiry is judged by. A pair this process
//! received from the provider (a refresh or a mint) is judged by this
//! host's clock less how far that clock was ahead of the pair's issue time
//! when it arrived: whoever stamped its expiry (this host, another host,
//! the server), a token just received is not due at once, so a host clock
//! minutes fast cannot drive a refresh loop. The host clock still moves it
//! on, through a suspend (which a monotonic clock does not count) or a jump
//! forward. It is never later than the host's clock, which judges every
//! other token.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use foldhash::fast::RandomState;
use secrecy::ExposeSecret;
use tokio::time::Instant;

use super::Inner;
use crate::id::TokenKey;
use crate::store::Version;
use crate::token::TokenSet;

/// The last pair this process received for each key.
#[derive(Default)]
pub(super) struct Received(Mutex<HashMap<TokenKey, Receipt, RandomState>>);

/// A received pair: the version it was saved at (`None` until saved), when
/// it arrived on the monotonic clock (to keep the newest), and how far the
/// host's clock was ahead of its issue time then.
struct Receipt {
    token: Arc<TokenSet>,
    version: Option<Version>,
    arrived: Instant,
    offset: Duration,
}

impl Inner {
    /// The time to judge `token`'s own expiry by (at `version`, if known).
    pub(super) fn token_now(
        &self,
        key: &TokenKey,
        token: &TokenSet,
        version: Option<Version>,
    ) -> SystemTime {
        let now = self.now();
        self.received
            .offset(key, token, version)
            .and_then(|offset| now.checked_sub(offset))
            .unwrap_or(now)
    }

    /// Notes a pair as it arrives from the provider, before anyone can see
    /// it: `version` once saved.
    pub(super) fn note_received(
        &self,
        key: &TokenKey,
        token: &Arc<TokenSet>,
        version: Option<Version>,
        arrived: Instant,
        now: SystemTime,
    ) {
        let offset = now.duration_since(token.issued_at()).unwrap_or_default();
        let mut map = self
            .received
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if map.get(key).is_none_or(|r| r.arrived <= arrived) {
            let receipt = Receipt {
                token: Arc::clone(token),
                version,
                arrived,
                offset,
            };
            map.insert(key.clone(), receipt);
        }
    }
}

impl Received {
    /// How far the host's clock was ahead of the issue time of `token` when
    /// it arrived: its own receipt's, or for a row stored after that receipt
    /// (a newer version: issued later), the receipt's, which it can only be
    /// younger than.
    fn offset(
        &self,
        key: &TokenKey,
        token: &TokenSet,
        version: Option<Version>,
    ) -> Option<Duration> {
        let map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let receipt = map.get(key)?;
        let ours =
            receipt.token.access_token().expose_secret() == token.access_token().expose_secret();
        let later = matches!((version, receipt.version), (Some(v), Some(r)) if v >= r);
        (ours || later).then_some(receipt.offset)
    }
}
