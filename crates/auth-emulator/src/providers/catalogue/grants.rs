//! One profile's grants: codes, access tokens and refresh tokens, with the
//! entry's rotation and replay rules. Nothing here does I/O, and nothing
//! reads a clock: every call that time decides takes `now`, the emulator's
//! clock read once for the request.
//!
//! Why this exists beside the emulator's Fitbit server, the simulation's
//! server and `auth_core::testing::FakeProvider`: it plays *any* catalogue
//! entry, so what a refresh does is read from the entry's facts rather
//! than fixed, and it keeps its own records of codes, tokens and grants.
//! The verdict on a presented refresh token is the one the other three
//! take, from `rotation_rule`: the entry's `replay_window` and
//! `first_use_ends_window` are the rule's `window` and `first_use_ends`;
//! each token's record becomes a [`Presented`] (live: `Current`; spent:
//! `Spent` with its rotation's time and the first use of the pair it
//! issued; not on record: `Unknown`) and the [`Verdict`] is acted on with
//! these records. The window is open strictly before its end, as
//! everywhere else.
//!
//! What stays here is the entry's own:
//!
//! - **every spent token keeps its own window**, not only the grant's last
//!   rotation as Fitbit's server does. Atlassian's entry documents a
//!   ten-minute leeway that only time bounds (`first_use_ends_window =
//!   false`): an old token two links back is still within it, and a server
//!   that remembered only the last rotation would refuse it. The rule
//!   allows a server to remember more ([`Presented::Spent`]); for entries
//!   whose first use ends the window (Withings, Fitbit) it makes no
//!   difference, since refreshing with the new token is a first use;
//! - an entry that does not rotate keeps its refresh token live, and may
//!   leave it out of the answer (`may_omit_refresh_token`);
//! - without a window, an entry whose old token dies at once forgets it
//!   (presented again it is unknown: `invalid_grant`, the grant lives), and
//!   one whose old token does not (Microsoft, Entra) keeps it live, each
//!   use answered with a new pair. No entry documents that a reuse kills
//!   the grant, and the provider conformance suite goes on with a grant
//!   after showing its dead old token is refused, so the rule's "no window:
//!   the grant dies" never applies here (were a spent token without a
//!   window on record, the verdict would revoke the grant);
//! - a reuse after a window refuses the token and the grant lives, as the
//!   rule says for a server with a window (Atlassian's announcement says
//!   such a reuse revokes every token; the catalogue has no fact for that,
//!   so it is not played);
//! - an access token handed back unchanged while it is valid (Strava).

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use auth_catalogue::{Fact, ProviderSpec, RefreshRules};
use rotation_rule::{Presented, Rotation, Verdict};

use crate::oauth::pkce::Challenge;
use crate::oauth::token;

/// A code waiting for its exchange.
pub(super) struct PendingCode {
    pub(super) redirect_uri: String,
    pub(super) challenge: Option<Challenge>,
    pub(super) scopes: Vec<String>,
    pub(super) offline: bool,
    pub(super) state: Option<String>,
}

/// One grant: a user's consent to this client.
pub(super) struct Grant {
    pub(super) user: String,
    pub(super) scopes: Vec<String>,
    pub(super) revoked: bool,
    /// The newest access token, for providers that hand it back unchanged.
    pub(super) latest_access: Option<String>,
}

/// A refresh token's life.
#[derive(Clone)]
pub(super) enum RefreshState {
    /// Usable: the rule's `Current`.
    Live,
    /// Spent by a rotation at `at` that issued `successor`; within its own
    /// replay window the same pair is handed back.
    Spent {
        successor: (String, Option<String>),
        at: SystemTime,
        /// When the successor (its access or refresh token) was first used.
        successor_first_used: Option<SystemTime>,
    },
}

pub(super) struct Access {
    pub(super) grant: u64,
    pub(super) expires_at: SystemTime,
}

pub(super) struct Refresh {
    pub(super) grant: u64,
    pub(super) state: RefreshState,
}

/// What a refresh produced.
pub(super) enum RefreshOutcome {
    /// A pair (the refresh token absent when the answer omits it).
    Issued {
        access: String,
        refresh: Option<String>,
        grant: u64,
    },
    /// The refresh token is unknown, used outside its window, or revoked.
    Dead,
}

/// The grants of one profile.
pub(super) struct Grants {
    pub(super) spec: ProviderSpec,
    pub(super) rules: RefreshRules,
    pub(super) access_lifetime: Duration,
    pub(super) codes: HashMap<String, PendingCode>,
    pub(super) grants: HashMap<u64, Grant>,
    pub(super) access: HashMap<String, Access>,
    pub(super) refresh: HashMap<String, Refresh>,
    /// The access and refresh token of each pair a rotation issued, to the
    /// refresh token it spent: the first use of either is noted on the
    /// spent token's record (it ends the window where the entry says so).
    pub(super) successors: HashMap<String, String>,
    next_grant: u64,
}

impl Grants {
    pub(super) fn new(spec: ProviderSpec) -> Self {
        let rules = spec.refresh_rules();
        let access_lifetime = spec
            .response
            .default_expires_in
            .map_or(Duration::from_secs(3600), |s| s.0);
        Self {
            spec,
            rules,
            access_lifetime,
            codes: HashMap::new(),
            grants: HashMap::new(),
            access: HashMap::new(),
            refresh: HashMap::new(),
            successors: HashMap::new(),
            next_grant: 1000,
        }
    }

    /// Whether refresh answers leave the refresh token out (a provider that
    /// documents it does so when the token does not change).
    fn omits_unchanged_refresh_token(&self) -> bool {
        self.spec.refresh.may_omit_refresh_token == Fact::Known(true)
    }

    pub(super) fn new_code(&mut self, code: PendingCode) -> String {
        let value = token::opaque_code();
        self.codes.insert(value.clone(), code);
        value
    }

    /// The rule the entry's facts make.
    fn rotation_rule(&self) -> rotation_rule::Rules {
        rotation_rule::Rules {
            window: self.rules.replay_window,
            first_use_ends: self.rules.first_use_ends_window,
        }
    }

    /// A new grant with its first pair, at `now`.
    pub(super) fn start_grant(
        &mut self,
        scopes: Vec<String>,
        offline: bool,
        now: SystemTime,
    ) -> (u64, String, Option<String>) {
        self.next_grant += 1;
        let id = self.next_grant;
        self.grants.insert(
            id,
            Grant {
                user: id.to_string(),
                scopes,
                revoked: false,
                latest_access: None,
            },
        );
        let access = self.issue_access(id, now);
        let refresh = offline.then(|| self.issue_refresh(id));
        (id, access, refresh)
    }

    fn issue_access(&mut self, grant: u64, now: SystemTime) -> String {
        let value = token::opaque_access();
        self.access.insert(
            value.clone(),
            Access {
                grant,
                expires_at: now + self.access_lifetime,
            },
        );
        if let Some(g) = self.grants.get_mut(&grant) {
            g.latest_access = Some(value.clone());
        }
        value
    }

    fn issue_refresh(&mut self, grant: u64) -> String {
        let value = token::opaque_refresh();
        self.refresh.insert(
            value.clone(),
            Refresh {
                grant,
                state: RefreshState::Live,
            },
        );
        value
    }

    /// What the records say of the refresh token `presented`.
    fn presented(&self, presented: &str) -> Presented<SystemTime> {
        match self.refresh.get(presented).map(|r| &r.state) {
            None => Presented::Unknown,
            Some(RefreshState::Live) => Presented::Current,
            Some(RefreshState::Spent {
                at,
                successor_first_used,
                ..
            }) => Presented::Spent(Rotation {
                at: *at,
                successor_first_used: *successor_first_used,
            }),
        }
    }

    /// A refresh with the refresh token `presented` at `now`: the verdict
    /// of `rotation_rule` on its record, acted on by the entry's rules.
    pub(super) fn refresh(&mut self, presented: &str, now: SystemTime) -> RefreshOutcome {
        let grant = self.refresh.get(presented).map(|r| r.grant);
        if let Some(grant) = grant
            && self.grants.get(&grant).is_none_or(|g| g.revoked)
        {
            return RefreshOutcome::Dead;
        }
        let verdict = self.rotation_rule().judge(self.presented(presented), now);
        match (verdict, grant) {
            (Verdict::Rotate, Some(grant)) => self.rotate(presented, grant, now),
            (Verdict::Replay, Some(grant)) => match self.refresh.get(presented).map(|r| &r.state) {
                Some(RefreshState::Spent { successor, .. }) => RefreshOutcome::Issued {
                    access: successor.0.clone(),
                    refresh: successor.1.clone(),
                    grant,
                },
                _ => RefreshOutcome::Dead,
            },
            (Verdict::Reused { grant_dies }, Some(grant)) => {
                if grant_dies && let Some(g) = self.grants.get_mut(&grant) {
                    g.revoked = true;
                }
                RefreshOutcome::Dead
            }
            _ => RefreshOutcome::Dead,
        }
    }

    /// The verdict was `Rotate`: a new pair (or, for an entry that does not
    /// rotate, a new access token), the old refresh token spent, forgotten
    /// or kept live as the entry says.
    fn rotate(&mut self, presented: &str, grant: u64, now: SystemTime) -> RefreshOutcome {
        let access = if self.spec.response.unchanged_access_token_on_refresh {
            self.grants
                .get(&grant)
                .and_then(|g| g.latest_access.clone())
                .filter(|a| self.access_is_valid(a, now))
                .unwrap_or_else(|| self.issue_access(grant, now))
        } else {
            self.issue_access(grant, now)
        };
        if !self.rules.rotating {
            let refresh = (!self.omits_unchanged_refresh_token()).then(|| presented.to_owned());
            return RefreshOutcome::Issued {
                access,
                refresh,
                grant,
            };
        }
        let new_refresh = self.issue_refresh(grant);
        let dies_at_once = self.spec.refresh.old_token_dies_at_once.or(true);
        match self.rules.replay_window {
            Some(_) => {
                if let Some(old) = self.refresh.get_mut(presented) {
                    old.state = RefreshState::Spent {
                        successor: (access.clone(), Some(new_refresh.clone())),
                        at: now,
                        successor_first_used: None,
                    };
                }
                self.successors.insert(access.clone(), presented.to_owned());
                self.successors
                    .insert(new_refresh.clone(), presented.to_owned());
            }
            // Forgotten: presented again it is unknown.
            None if dies_at_once => {
                self.refresh.remove(presented);
            }
            // The old token stays usable until it expires on its own.
            None => {}
        }
        RefreshOutcome::Issued {
            access,
            refresh: Some(new_refresh),
            grant,
        }
    }

    /// Records a use of `token` at `now`: if a rotation issued it, the
    /// first use of that rotation's pair (which ends the spent token's
    /// window when the entry says so).
    pub(super) fn note_use(&mut self, token: &str, now: SystemTime) {
        let Some(old) = self.successors.remove(token) else {
            return;
        };
        if let Some(Refresh {
            state:
                RefreshState::Spent {
                    successor_first_used,
                    ..
                },
            ..
        }) = self.refresh.get_mut(&old)
        {
            successor_first_used.get_or_insert(now);
        }
        // Only the first use counts: the pair's other token is done with.
        self.successors.retain(|_, v| *v != old);
    }

    /// Whether `token` is an access token of a live grant, unexpired at
    /// `now`.
    pub(super) fn access_is_valid(&self, token: &str, now: SystemTime) -> bool {
        self.access.get(token).is_some_and(|a| {
            a.expires_at > now && self.grants.get(&a.grant).is_some_and(|g| !g.revoked)
        })
    }

    /// The grant of an access token valid at `now`, and when it expires.
    pub(super) fn grant_of_access(
        &self,
        token: &str,
        now: SystemTime,
    ) -> Option<(&Grant, SystemTime)> {
        if !self.access_is_valid(token, now) {
            return None;
        }
        let access = self.access.get(token)?;
        Some((self.grants.get(&access.grant)?, access.expires_at))
    }

    /// Revokes the grant a token belongs to. Unknown tokens are fine
    /// (RFC 7009 §2.2).
    pub(super) fn revoke(&mut self, token: &str) {
        let grant = self
            .access
            .get(token)
            .map(|a| a.grant)
            .or_else(|| self.refresh.get(token).map(|r| r.grant));
        if let Some(g) = grant.and_then(|g| self.grants.get_mut(&g)) {
            g.revoked = true;
        }
    }

    pub(super) fn user_of(&self, grant: u64) -> String {
        self.grants
            .get(&grant)
            .map_or_else(String::new, |g| g.user.clone())
    }

    pub(super) fn scopes_of(&self, grant: u64) -> Vec<String> {
        self.grants
            .get(&grant)
            .map_or_else(Vec::new, |g| g.scopes.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use auth_catalogue::Catalogue;

    fn grants(name: &str) -> Grants {
        Grants::new(Catalogue::builtin().get(name).expect("an entry").clone())
    }

    /// A time on the emulator's clock: `s` seconds after an origin.
    fn t(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + s)
    }

    /// The pair a refresh issued; panics on a dead token.
    fn issued(outcome: RefreshOutcome) -> (String, String) {
        match outcome {
            RefreshOutcome::Issued {
                access, refresh, ..
            } => (access, refresh.unwrap_or_default()),
            RefreshOutcome::Dead => panic!("the refresh token was dead"),
        }
    }

    fn is_dead(outcome: &RefreshOutcome) -> bool {
        matches!(outcome, RefreshOutcome::Dead)
    }

    /// A grant with a refresh token, started at `t(0)`.
    fn login(g: &mut Grants) -> String {
        let (_, _, refresh) = g.start_grant(vec![], true, t(0));
        refresh.expect("an offline grant")
    }

    #[test]
    fn the_window_is_open_strictly_before_its_end_on_the_given_time() {
        // Withings: eight hours, ended early by the first use of the new pair.
        let mut g = grants("withings");
        let old = login(&mut g);
        let pair = issued(g.refresh(&old, t(100)));
        assert_ne!(pair.1, old, "the token rotated");
        let end = t(100) + Duration::from_secs(8 * 3600);
        let just_before = end - Duration::from_millis(1);
        assert_eq!(issued(g.refresh(&old, just_before)), pair, "a replay");
        assert!(is_dead(&g.refresh(&old, end)), "the window's end is shut");
        // A reuse after a window refuses the token; the grant lives.
        let next = issued(g.refresh(&pair.1, end));
        assert_ne!(next.1, pair.1);
    }

    #[test]
    fn the_first_use_ends_the_window_only_where_the_entry_says_so() {
        let mut withings = grants("withings");
        let old = login(&mut withings);
        let (access, _) = issued(withings.refresh(&old, t(10)));
        withings.note_use(&access, t(20));
        assert!(is_dead(&withings.refresh(&old, t(20))), "Withings: used");

        let mut atlassian = grants("atlassian");
        let old = login(&mut atlassian);
        let pair = issued(atlassian.refresh(&old, t(10)));
        atlassian.note_use(&pair.0, t(20));
        assert_eq!(issued(atlassian.refresh(&old, t(20))), pair, "time alone");
        assert!(is_dead(&atlassian.refresh(&old, t(10 + 600))));
    }

    #[test]
    fn every_spent_token_keeps_its_own_window() {
        // Atlassian: ten minutes, which the first use does not end.
        let mut g = grants("atlassian");
        let a = login(&mut g);
        let b = issued(g.refresh(&a, t(0)));
        let c = issued(g.refresh(&b.1, t(60)));
        // Two links back and still inside its own ten minutes.
        assert_eq!(issued(g.refresh(&a, t(120))), b);
        assert!(is_dead(&g.refresh(&a, t(600))), "a's window ended");
        assert_eq!(issued(g.refresh(&b.1, t(600))), c, "b's has not");
        assert!(is_dead(&g.refresh(&b.1, t(660))));
        assert_ne!(issued(g.refresh(&c.1, t(660))).1, c.1, "c rotates");
    }

    #[test]
    fn without_a_window_the_entry_says_whether_the_old_token_lives() {
        // Strava: the old token dies at once; showing it again is refused
        // and the grant lives.
        let mut strava = grants("strava");
        let old = login(&mut strava);
        let pair = issued(strava.refresh(&old, t(10)));
        assert!(is_dead(&strava.refresh(&old, t(11))));
        assert_ne!(issued(strava.refresh(&pair.1, t(12))).1, pair.1);

        // Microsoft: old refresh tokens are not revoked; each use rotates.
        let mut microsoft = grants("microsoft");
        let old = login(&mut microsoft);
        let first = issued(microsoft.refresh(&old, t(10)));
        let second = issued(microsoft.refresh(&old, t(11)));
        assert_ne!(first, second, "a new pair, not a replay");
    }

    #[test]
    fn access_tokens_expire_on_the_given_time() {
        let mut g = grants("strava");
        let (_, access, _) = g.start_grant(vec![], true, t(0));
        let expiry = t(0) + g.access_lifetime;
        assert!(g.access_is_valid(&access, expiry - Duration::from_secs(1)));
        assert!(!g.access_is_valid(&access, expiry));
        assert!(g.grant_of_access(&access, expiry).is_none());
    }

    #[test]
    fn a_revoked_grant_refreshes_nothing() {
        let mut g = grants("atlassian");
        let old = login(&mut g);
        let pair = issued(g.refresh(&old, t(0)));
        g.revoke(&pair.0);
        assert!(is_dead(&g.refresh(&pair.1, t(1))));
        assert!(is_dead(&g.refresh(&old, t(1))), "not even a replay");
    }
}
