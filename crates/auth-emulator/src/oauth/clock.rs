//! The emulator's own clock: the machine's wall clock plus an offset that tests
//! move forward with `advance_time`. Every expiry, the replay window and the
//! rate-limit hour are measured on it, never on the machine's clock directly.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Wall clock plus a test-controlled offset.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Clock {
    offset: Duration,
}

impl Clock {
    /// The emulator's current time.
    pub(crate) fn now(&self) -> SystemTime {
        SystemTime::now() + self.offset
    }

    /// Moves the clock forward.
    pub(crate) fn advance(&mut self, d: Duration) {
        self.offset += d;
    }
}

/// Seconds since the Unix epoch.
pub(crate) fn epoch_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

/// Milliseconds since the Unix epoch.
pub(crate) fn epoch_millis(t: SystemTime) -> u64 {
    u64::try_from(t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis()).unwrap_or(u64::MAX)
}

/// Whole seconds from `now` to `later`, zero if `later` has passed.
pub(crate) fn seconds_until(now: SystemTime, later: SystemTime) -> u64 {
    later.duration_since(now).unwrap_or_default().as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_moves_now_forward() {
        let mut clock = Clock::default();
        let before = clock.now();
        clock.advance(Duration::from_secs(3600));
        let after = clock.now();
        assert!(after.duration_since(before).unwrap() >= Duration::from_secs(3600));
    }
}
