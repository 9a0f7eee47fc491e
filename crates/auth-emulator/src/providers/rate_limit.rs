//! Legacy Fitbit rate limits (docs/providers-facts.md, "Legacy Fitbit OAuth 2.0"): a quota per user per
//! clock hour of the emulator's clock, reset at the top of the hour, reported
//! in `Fitbit-Rate-Limit-*` headers on every API response.

use std::collections::HashMap;
use std::time::SystemTime;

use http::HeaderName;

use crate::oauth::clock::epoch_seconds;
use crate::oauth::reply::Reply;

/// Whose quota a request spends: the user when the request names a known
/// token or code, else the client, else nobody in particular.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum RateKey {
    User(String),
    Client(String),
    Anonymous,
}

/// What the quota says after a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Quota {
    pub(crate) limit: u32,
    pub(crate) remaining: u32,
    /// Seconds to the top of the hour (1..=3600).
    pub(crate) reset: u64,
    pub(crate) exceeded: bool,
}

/// Counts requests per key within the current clock hour.
#[derive(Debug, Default)]
pub(crate) struct RateLimiter {
    hour: u64,
    used: HashMap<RateKey, u32>,
}

impl RateLimiter {
    /// Spends one request of `key`'s quota, if any is left.
    pub(crate) fn consume(&mut self, key: RateKey, limit: u32, now: SystemTime) -> Quota {
        self.roll(now);
        let used = self.used.entry(key).or_insert(0);
        let exceeded = *used >= limit;
        if !exceeded {
            *used += 1;
        }
        Quota {
            limit,
            remaining: limit - (*used).min(limit),
            reset: seconds_to_reset(now),
            exceeded,
        }
    }

    /// Reports `key`'s quota without spending any.
    pub(crate) fn peek(&mut self, key: &RateKey, limit: u32, now: SystemTime) -> Quota {
        self.roll(now);
        let used = self.used.get(key).copied().unwrap_or(0);
        Quota {
            limit,
            remaining: limit.saturating_sub(used),
            reset: seconds_to_reset(now),
            exceeded: used >= limit,
        }
    }

    fn roll(&mut self, now: SystemTime) {
        let hour = epoch_seconds(now) / 3600;
        if hour != self.hour {
            self.hour = hour;
            self.used.clear();
        }
    }
}

/// Seconds from `now` to the top of the next hour (1..=3600).
pub(crate) fn seconds_to_reset(now: SystemTime) -> u64 {
    3600 - epoch_seconds(now) % 3600
}

impl Quota {
    /// Adds the three `Fitbit-Rate-Limit-*` headers.
    pub(crate) fn headers(&self, reply: Reply) -> Reply {
        reply
            .with_header(
                HeaderName::from_static("fitbit-rate-limit-limit"),
                self.limit,
            )
            .with_header(
                HeaderName::from_static("fitbit-rate-limit-remaining"),
                self.remaining,
            )
            .with_header(
                HeaderName::from_static("fitbit-rate-limit-reset"),
                self.reset,
            )
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    #[test]
    fn quota_resets_at_the_top_of_the_hour() {
        let mut limiter = RateLimiter::default();
        let start = UNIX_EPOCH + Duration::from_secs(1_000 * 3600 + 10);
        let key = RateKey::User("26FWFL".into());
        for expected in (0..2).rev() {
            let q = limiter.consume(key.clone(), 2, start);
            assert_eq!(q.remaining, expected);
            assert!(!q.exceeded);
            assert_eq!(q.reset, 3590);
        }
        let q = limiter.consume(key.clone(), 2, start);
        assert!(q.exceeded);
        assert_eq!(q.remaining, 0);
        let other = limiter.consume(RateKey::User("OTHER".into()), 2, start);
        assert!(!other.exceeded, "quotas are per user");
        let next_hour = start + Duration::from_secs(3590);
        assert!(!limiter.consume(key, 2, next_hour).exceeded);
    }
}
