//! [`RetryPolicy`]: how transient refresh failures are retried.

use std::time::Duration;

/// Bounded retries with exponential backoff for transient refresh failures.
///
/// Retries reuse the same refresh token: after a lost response, Fitbit
/// answers an identical repeat with the same new pair, so retrying promptly
/// is what saves the grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Attempts in all, the first included (default 4).
    pub max_attempts: u32,
    /// The wait before the first retry (default 200 ms); doubled each time.
    pub initial_backoff: Duration,
    /// The longest wait between attempts (default 5 s).
    pub max_backoff: Duration,
    /// A server's `Retry-After` longer than this ends the retries at once
    /// and is reported to the caller instead (default 30 s).
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// A policy with these attempts and initial backoff, other fields default.
    pub fn new(max_attempts: u32, initial_backoff: Duration) -> Self {
        Self {
            max_attempts: max_attempts.max(1),
            initial_backoff,
            ..Self::default()
        }
    }

    /// Never retry.
    pub fn none() -> Self {
        Self::new(1, Duration::ZERO)
    }

    /// The wait before attempt `attempt + 1`, or `None` when no retry is left
    /// or the server asked for a longer wait than we accept.
    pub fn delay_after(&self, attempt: u32, retry_after: Option<Duration>) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        if let Some(wait) = retry_after {
            return (wait <= self.max_retry_after).then_some(wait);
        }
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        Some(
            self.initial_backoff
                .saturating_mul(factor)
                .min(self.max_backoff),
        )
    }
}

/// How long an account waits before its next refresh attempt after
/// transient failures in a row: `initial`, doubling up to `max`. The pause is
/// stored with the token, so every process sharing the store honours it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CooldownPolicy {
    /// The pause after the first failure (default 15 s). Keep it well below
    /// two minutes: after a lost answer, Fitbit replays the same new pair
    /// for about two minutes, and the retry must land inside that window.
    pub initial: Duration,
    /// The longest pause (default 10 minutes).
    pub max: Duration,
}

impl Default for CooldownPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(15),
            max: Duration::from_secs(10 * 60),
        }
    }
}

impl CooldownPolicy {
    /// A policy starting at `initial` and capped at `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max: max.max(initial),
        }
    }

    /// The pause after `failures` failures in a row (the first is 1).
    pub fn delay(&self, failures: u32) -> Duration {
        let factor = 1u32
            .checked_shl(failures.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cooldown_grows_and_is_capped() {
        let c = CooldownPolicy::default();
        assert_eq!(c.delay(1), Duration::from_secs(15));
        assert_eq!(c.delay(2), Duration::from_secs(30));
        assert_eq!(c.delay(3), Duration::from_secs(60));
        assert_eq!(c.delay(40), Duration::from_secs(600));
    }

    #[test]
    fn backoff_doubles_and_is_bounded() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay_after(1, None), Some(Duration::from_millis(200)));
        assert_eq!(p.delay_after(2, None), Some(Duration::from_millis(400)));
        assert_eq!(p.delay_after(3, None), Some(Duration::from_millis(800)));
        assert_eq!(p.delay_after(4, None), None);
        let long = RetryPolicy {
            max_attempts: 40,
            ..p
        };
        assert_eq!(long.delay_after(39, None), Some(Duration::from_secs(5)));
    }

    #[test]
    fn retry_after_is_honoured_or_ends_retries() {
        let p = RetryPolicy::default();
        assert_eq!(
            p.delay_after(1, Some(Duration::from_secs(3))),
            Some(Duration::from_secs(3))
        );
        assert_eq!(p.delay_after(1, Some(Duration::from_secs(3600))), None);
    }
}
