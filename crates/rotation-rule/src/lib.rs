//! The rule of a single-use refresh token with a replay window, as an
//! authorization server applies it to a refresh request.
//!
//! Given what the server's records say of the presented refresh token
//! ([`Presented`]) and the time, [`Rules::judge`] gives the [`Verdict`]:
//!
//! - the grant's **current** token: rotate (issue a new pair, make its
//!   refresh token current, remember the rotation);
//! - an identical **replay** of a rotation still inside its window: answer
//!   the same pair again and change nothing. The window ends `window` after
//!   the rotation, or at the first use of the new pair when the server says
//!   so, as legacy Fitbit's does ([`Rules::window_end`]);
//! - a **spent** token outside any window: `invalid_grant`; with no window
//!   at all (strict, as oidc-provider and RFC 9700's reuse detection) the
//!   reuse means the chain leaked and the whole grant dies;
//! - anything else (a token a newer consent superseded before it was ever
//!   used, an unknown one): `invalid_grant`, and nothing else happens.
//!
//! It is pure: no I/O, no threads, no clock of its own. Time comes in as an
//! argument of any type that orders and adds a [`Duration`]
//! (`std::time::SystemTime`, `std::time::Instant`, Tokio's paused
//! `Instant`), so a seeded simulation stays deterministic. It keeps no
//! records either: the server says what it knows of the token, and acts on
//! the verdict with its own records.
//!
//! # Who uses it
//!
//! Four servers in the token-keeper workspace rotate single-use refresh
//! tokens, each for its own reason, and all four take this rule from here:
//!
//! - the emulator's Fitbit server (`auth-emulator`), a real HTTP server with
//!   Fitbit's wire formats, records and events;
//! - the emulator's catalogue profiles (`auth_emulator::profile`), which
//!   play any entry of the provider catalogue, the window read from the
//!   entry's facts, every spent token with a window of its own;
//! - the seeded simulation's server (`tests/sim/server.rs`), with its ledger
//!   and its faults;
//! - `auth_core::testing::FakeProvider` in strict mode, with its scripts and
//!   gates.
//!
//! # Why a crate of its own
//!
//! The emulator is kept apart from the client crates on purpose
//! (`ARCHITECTURE.md`): the client code is tested against a server written
//! independently of it. So the rule cannot live in `auth-core` (the
//! emulator would depend on the client's core), nor in the emulator
//! (`auth-core`'s fake would pull in an HTTP server), nor in the unpublished
//! `test-support` (the emulator is published). This crate depends on
//! nothing, so both sides use it and neither depends on the other.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use rotation_rule::{Presented, Rotation, Rules, Verdict};
//!
//! // Legacy Fitbit: about two minutes, ended by the first use of the new pair.
//! let fitbit = Rules::with_window(Duration::from_secs(120), true);
//! let rotated = Duration::from_secs(1_000); // any time type: here, time since a start
//! let spent = |successor_first_used| {
//!     Presented::Spent(Rotation { at: rotated, successor_first_used })
//! };
//!
//! assert_eq!(fitbit.judge(Presented::Current, rotated), Verdict::Rotate);
//! let soon = rotated + Duration::from_secs(5);
//! assert_eq!(fitbit.judge(spent(None), soon), Verdict::Replay);
//! // The new pair was used: the window is closed.
//! assert_eq!(
//!     fitbit.judge(spent(Some(soon)), soon),
//!     Verdict::Reused { grant_dies: false }
//! );
//! // No window: any reuse kills the grant.
//! assert_eq!(
//!     Rules::NO_WINDOW.judge(spent(None), soon),
//!     Verdict::Reused { grant_dies: true }
//! );
//! ```

use std::ops::Add;
use std::time::Duration;

/// A point in time the rule can compare and add a [`Duration`] to:
/// `SystemTime`, `Instant`, Tokio's `Instant`, or a `Duration` since some
/// start.
pub trait Time: Copy + Ord + Add<Duration, Output = Self> {}

impl<T: Copy + Ord + Add<Duration, Output = T>> Time for T {}

/// How a server treats a spent refresh token. The default is
/// [`Rules::NO_WINDOW`], the strictest.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// How long after a rotation an identical replay of the token it spent
    /// is answered with the same pair again; `None`: never (every reuse
    /// kills the grant).
    pub window: Option<Duration>,
    /// Whether the first use of the new pair (its access token at the API,
    /// or its refresh token) ends the window early (legacy Fitbit).
    pub first_use_ends: bool,
}

impl Rules {
    /// No replay window: a spent token is never answered again, and sending
    /// one kills the grant (oidc-provider, RFC 9700's reuse detection).
    pub const NO_WINDOW: Self = Self {
        window: None,
        first_use_ends: false,
    };

    /// A replay window of `window`, ended early by the first use of the new
    /// pair when `first_use_ends`.
    pub const fn with_window(window: Duration, first_use_ends: bool) -> Self {
        Self {
            window: Some(window),
            first_use_ends,
        }
    }

    /// When the replay window of a rotation made at `rotated` closes:
    /// `window` after it, or at `successor_first_used` (the first use of the
    /// pair it issued) if that is earlier and the rules say the first use
    /// ends it. The window is open strictly before this moment. `None`: the
    /// server has no window.
    ///
    /// A server that records only *whether* the new pair was used, not
    /// when, passes the time of the request for a used one: the window is
    /// then closed.
    pub fn window_end<T: Time>(&self, rotated: T, successor_first_used: Option<T>) -> Option<T> {
        let end = rotated + self.window?;
        Some(match successor_first_used {
            Some(used) if self.first_use_ends => end.min(used),
            _ => end,
        })
    }

    /// The verdict on a refresh request at `now` that presents a token the
    /// server's records describe as `presented`.
    pub fn judge<T: Time>(&self, presented: Presented<T>, now: T) -> Verdict {
        match presented {
            Presented::Current => Verdict::Rotate,
            Presented::Spent(rotation) => {
                if self
                    .window_end(rotation.at, rotation.successor_first_used)
                    .is_some_and(|end| now < end)
                {
                    Verdict::Replay
                } else {
                    self.reused()
                }
            }
            Presented::SpentEarlier => self.reused(),
            Presented::NeverUsed | Presented::Unknown => Verdict::Invalid,
        }
    }

    fn reused(&self) -> Verdict {
        Verdict::Reused {
            grant_dies: self.window.is_none(),
        }
    }
}

/// What the server's records say of a presented refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presented<T> {
    /// The grant's newest refresh token, never used.
    Current,
    /// Spent by a rotation the server remembers, whose pair a replay would
    /// repeat. Fitbit (and the emulator's Fitbit server and the simulation)
    /// remember only a grant's last rotation; a server may remember more
    /// (the emulator's catalogue profiles remember every one).
    Spent(Rotation<T>),
    /// Spent by a rotation the server does not remember as replayable: an
    /// older link of the chain (two or more rotations back, for a server
    /// that remembers only the last).
    SpentEarlier,
    /// Issued and never used, but no longer current: a newer consent
    /// superseded it. Not a reuse.
    NeverUsed,
    /// A token the server does not know (never issued, or forgotten).
    Unknown,
}

/// A rotation as the rule needs it: when it happened, and when the pair it
/// issued was first used, if it has been.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation<T> {
    /// When the server rotated the token.
    pub at: T,
    /// The first use of the pair the rotation issued (its access token at
    /// the API, or its refresh token): it ends the window when the rules say
    /// so. `None`: not used yet.
    pub successor_first_used: Option<T>,
}

/// What the server does with a refresh request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The current token: issue a new pair, make its refresh token the
    /// current one, and remember the rotation (for a replay).
    Rotate,
    /// An identical replay inside the window: answer the remembered
    /// rotation's pair again; nothing changes.
    Replay,
    /// A spent token outside any window: `invalid_grant`. `grant_dies`:
    /// the server has no window, so the reuse means the chain leaked and
    /// the whole grant dies.
    Reused {
        /// Whether the whole grant dies (no window).
        grant_dies: bool,
    },
    /// `invalid_grant` and nothing else: a token superseded before it was
    /// ever used, or one the server does not know.
    Invalid,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Time as seconds since an origin.
    fn t(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    const FITBIT: Rules = Rules::with_window(Duration::from_secs(120), true);
    const WINDOW_ONLY: Rules = Rules::with_window(Duration::from_secs(120), false);

    fn spent(at: u64, used: Option<u64>) -> Presented<Duration> {
        Presented::Spent(Rotation {
            at: t(at),
            successor_first_used: used.map(t),
        })
    }

    #[test]
    fn the_rule_table() {
        let dies = Verdict::Reused { grant_dies: true };
        let refused = Verdict::Reused { grant_dies: false };
        let (rotate, replay, invalid) = (Verdict::Rotate, Verdict::Replay, Verdict::Invalid);
        let (current, earlier) = (Presented::Current, Presented::SpentEarlier);
        let (never, unknown) = (Presented::NeverUsed, Presented::Unknown);
        let strict = Rules::NO_WINDOW;
        // (case, rules, presented, now, verdict)
        #[rustfmt::skip]
        let table: &[(&str, Rules, Presented<Duration>, u64, Verdict)] = &[
            ("current rotates", FITBIT, current, 500, rotate),
            ("current rotates, no window", strict, current, 500, rotate),
            ("replay at the rotation", FITBIT, spent(100, None), 100, replay),
            ("replay inside the window", FITBIT, spent(100, None), 219, replay),
            ("replay at the window's end", FITBIT, spent(100, None), 220, refused),
            ("replay after the window", FITBIT, spent(100, None), 400, refused),
            ("first use ends the window", FITBIT, spent(100, Some(130)), 131, refused),
            ("first use at the request", FITBIT, spent(100, Some(150)), 150, refused),
            ("first use ignored without first_use_ends", WINDOW_ONLY, spent(100, Some(130)), 131, replay),
            ("the length still ends it without first_use_ends", WINDOW_ONLY, spent(100, Some(130)), 220, refused),
            ("no window: a replay burns the grant", strict, spent(100, None), 100, dies),
            ("no window: later too", strict, spent(100, None), 10_000, dies),
            ("an older link, soon after", FITBIT, earlier, 101, refused),
            ("an older link, no window", strict, earlier, 101, dies),
            ("superseded, never used", FITBIT, never, 101, invalid),
            ("superseded, never used, no window", strict, never, 101, invalid),
            ("unknown", FITBIT, unknown, 101, invalid),
            ("unknown, no window", strict, unknown, 101, invalid),
        ];
        for &(case, rules, presented, now, verdict) in table {
            assert_eq!(rules.judge(presented, t(now)), verdict, "{case}");
        }
    }

    #[test]
    fn window_end_is_the_earlier_of_the_length_and_the_first_use() {
        assert_eq!(FITBIT.window_end(t(100), None), Some(t(220)));
        assert_eq!(FITBIT.window_end(t(100), Some(t(130))), Some(t(130)));
        // A first use after the length does not lengthen it.
        assert_eq!(FITBIT.window_end(t(100), Some(t(300))), Some(t(220)));
        assert_eq!(WINDOW_ONLY.window_end(t(100), Some(t(130))), Some(t(220)));
        assert_eq!(Rules::NO_WINDOW.window_end(t(100), None), None);
        assert_eq!(Rules::NO_WINDOW.window_end(t(100), Some(t(130))), None);
        assert_eq!(Rules::default(), Rules::NO_WINDOW);
    }

    #[test]
    fn works_on_system_time() {
        use std::time::SystemTime;
        let at = SystemTime::UNIX_EPOCH + t(1_800_000_000);
        let rotation = Presented::Spent(Rotation {
            at,
            successor_first_used: None,
        });
        assert_eq!(FITBIT.judge(rotation, at + t(119)), Verdict::Replay);
        assert_eq!(
            FITBIT.judge(rotation, at + t(121)),
            Verdict::Reused { grant_dies: false }
        );
    }
}
