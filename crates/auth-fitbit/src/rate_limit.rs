//! Fitbit's rate-limit headers, kept so the app can see its budget.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName};

// Named once: a lookup by `&str` parses and validates the name every time.
static LIMIT: HeaderName = HeaderName::from_static("fitbit-rate-limit-limit");
static REMAINING: HeaderName = HeaderName::from_static("fitbit-rate-limit-remaining");
static RESET: HeaderName = HeaderName::from_static("fitbit-rate-limit-reset");

/// What the last Fitbit response said about the rate limit (150 requests
/// per user per hour, reset at the top of the hour).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// `Fitbit-Rate-Limit-Limit`: the quota.
    pub limit: u64,
    /// `Fitbit-Rate-Limit-Remaining`: requests left.
    pub remaining: u64,
    /// `Fitbit-Rate-Limit-Reset`: time until the quota resets (approximate).
    pub reset_in: Duration,
    /// When the response was received.
    pub observed_at: SystemTime,
}

impl RateLimit {
    /// Reads the three headers; `None` unless all are present and numeric.
    pub fn from_headers(headers: &HeaderMap, now: SystemTime) -> Option<Self> {
        let number =
            |name: &HeaderName| headers.get(name)?.to_str().ok()?.trim().parse::<u64>().ok();
        Some(Self {
            limit: number(&LIMIT)?,
            remaining: number(&REMAINING)?,
            reset_in: Duration::from_secs(number(&RESET)?),
            observed_at: now,
        })
    }
}

/// The last rate limit seen, shared between the hooks and the provider.
#[derive(Debug, Default)]
pub(crate) struct RateLimitCell(Mutex<Option<RateLimit>>);

impl RateLimitCell {
    pub(crate) fn set(&self, limit: RateLimit) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(limit);
    }

    pub(crate) fn get(&self) -> Option<RateLimit> {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_all_three_headers() {
        let mut h = HeaderMap::new();
        h.insert("fitbit-rate-limit-limit", "150".parse().unwrap());
        h.insert("fitbit-rate-limit-remaining", "149".parse().unwrap());
        h.insert("fitbit-rate-limit-reset", "1800".parse().unwrap());
        let r = RateLimit::from_headers(&h, SystemTime::UNIX_EPOCH).unwrap();
        assert_eq!(
            (r.limit, r.remaining, r.reset_in),
            (150, 149, Duration::from_secs(1800))
        );
        h.remove("fitbit-rate-limit-reset");
        assert!(RateLimit::from_headers(&h, SystemTime::UNIX_EPOCH).is_none());
    }
}
