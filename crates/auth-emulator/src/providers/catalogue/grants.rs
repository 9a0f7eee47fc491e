//! One profile's grants: codes, access tokens and refresh tokens, with the
//! entry's rotation and replay rules. Nothing here does I/O.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use auth_catalogue::{Fact, ProviderSpec, RefreshRules};

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
    /// Usable.
    Live,
    /// Used; within the replay window the same pair is handed back.
    Used {
        successor: (String, Option<String>),
        at: SystemTime,
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
    /// Access tokens and refresh tokens issued by a refresh whose window the
    /// first use ends: using either closes the old token's window.
    pub(super) window_closers: HashMap<String, String>,
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
            window_closers: HashMap::new(),
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

    /// A new grant with its first pair.
    pub(super) fn start_grant(
        &mut self,
        scopes: Vec<String>,
        offline: bool,
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
        let access = self.issue_access(id);
        let refresh = offline.then(|| self.issue_refresh(id));
        (id, access, refresh)
    }

    fn issue_access(&mut self, grant: u64) -> String {
        let value = token::opaque_access();
        self.access.insert(
            value.clone(),
            Access {
                grant,
                expires_at: SystemTime::now() + self.access_lifetime,
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

    /// Uses a refresh token once, by the entry's rules.
    pub(super) fn refresh(&mut self, presented: &str) -> RefreshOutcome {
        let Some(entry) = self.refresh.get(presented) else {
            return RefreshOutcome::Dead;
        };
        let grant = entry.grant;
        if self.grants.get(&grant).is_none_or(|g| g.revoked) {
            return RefreshOutcome::Dead;
        }
        if let RefreshState::Used { successor, at } = entry.state.clone() {
            let open = self
                .rules
                .replay_window
                .is_some_and(|window| at.elapsed().unwrap_or_default() <= window);
            return if open {
                RefreshOutcome::Issued {
                    access: successor.0,
                    refresh: successor.1,
                    grant,
                }
            } else {
                RefreshOutcome::Dead
            };
        }
        let access = if self.spec.response.unchanged_access_token_on_refresh {
            self.grants
                .get(&grant)
                .and_then(|g| g.latest_access.clone())
                .filter(|a| self.access_is_valid(a))
                .unwrap_or_else(|| self.issue_access(grant))
        } else {
            self.issue_access(grant)
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
                    old.state = RefreshState::Used {
                        successor: (access.clone(), Some(new_refresh.clone())),
                        at: SystemTime::now(),
                    };
                }
                if self.rules.first_use_ends_window {
                    self.window_closers
                        .insert(access.clone(), presented.to_owned());
                    self.window_closers
                        .insert(new_refresh.clone(), presented.to_owned());
                }
            }
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

    /// Records a use of a token issued by a refresh: the old token's replay
    /// window ends, when the entry says the first use ends it.
    pub(super) fn note_use(&mut self, token: &str) {
        if let Some(old) = self.window_closers.remove(token) {
            self.refresh.remove(&old);
            self.window_closers.retain(|_, v| *v != old);
        }
    }

    pub(super) fn access_is_valid(&self, token: &str) -> bool {
        self.access.get(token).is_some_and(|a| {
            a.expires_at > SystemTime::now()
                && self.grants.get(&a.grant).is_some_and(|g| !g.revoked)
        })
    }

    /// The grant of a valid access token.
    pub(super) fn grant_of_access(&self, token: &str) -> Option<(&Grant, SystemTime)> {
        if !self.access_is_valid(token) {
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
