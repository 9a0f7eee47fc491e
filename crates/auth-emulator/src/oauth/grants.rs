//! The authorization records of one server: codes, grants and the tokens
//! issued under them. A grant is one consent of one user for one client; its
//! tokens die with it. This module keeps records only; the rules of each
//! server (rotation, replay, what revocation reaches) live in `fitbit` and
//! `google`.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use crate::oauth::pkce::Challenge;

/// Identifies a grant within one server.
pub(crate) type GrantId = u64;

/// How long an authorization code stays valid (docs/providers-facts.md, "Legacy Fitbit OAuth 2.0").
pub(crate) const CODE_LIFETIME: Duration = Duration::from_secs(600);

/// An authorization code, bound to what the authorize request said.
#[derive(Clone, Debug)]
pub(crate) struct Code {
    pub(crate) client_id: String,
    pub(crate) user_id: String,
    pub(crate) scopes: Vec<String>,
    /// The `redirect_uri` sent to authorize, if one was sent.
    pub(crate) redirect_uri: Option<String>,
    pub(crate) challenge: Option<Challenge>,
    pub(crate) issued_at: SystemTime,
    /// Google: `access_type=offline` was requested.
    pub(crate) offline: bool,
    /// Google: the exchange returns a refresh token.
    pub(crate) issue_refresh: bool,
}

impl Code {
    pub(crate) fn expired(&self, now: SystemTime) -> bool {
        now.duration_since(self.issued_at).unwrap_or_default() > CODE_LIFETIME
    }
}

/// What a Fitbit refresh answered, kept for the replay window.
#[derive(Clone, Debug)]
pub(crate) struct Rotation {
    pub(crate) presented: String,
    pub(crate) body: String,
    pub(crate) at: SystemTime,
    pub(crate) new_access: String,
    pub(crate) new_refresh: String,
}

/// Tokens issued by [`Emulator::seed_fitbit_grant`](crate::Emulator::seed_fitbit_grant) or
/// [`Emulator::seed_google_grant`](crate::Emulator::seed_google_grant).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedTokens {
    /// The access token.
    pub access_token: String,
    /// The refresh token (always present for seeded grants).
    pub refresh_token: Option<String>,
    /// The access token's lifetime in seconds.
    pub expires_in: u64,
    /// The Fitbit `user_id` or Google `sub`.
    pub user_id: String,
    /// The granted scopes.
    pub scopes: Vec<String>,
}

/// A grant a test seeds: as if `user_id` had consented to `scopes` for
/// `client_id`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Seed<'a> {
    pub(crate) client_id: &'a str,
    pub(crate) user_id: &'a str,
    pub(crate) scopes: &'a [&'a str],
}

/// One consent of one user for one client.
#[derive(Clone, Debug)]
pub(crate) struct Grant {
    pub(crate) client_id: String,
    pub(crate) user_id: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) offline: bool,
    pub(crate) revoked: bool,
    /// The refresh token that may be used now (Fitbit: the newest of the
    /// chain; `None` once a newer consent superseded this grant).
    pub(crate) current_refresh: Option<String>,
    /// Google "Testing" apps: when the refresh token stops working.
    pub(crate) refresh_expires_at: Option<SystemTime>,
    pub(crate) last_rotation: Option<Rotation>,
}

/// An issued access token.
#[derive(Clone, Debug)]
pub(crate) struct AccessToken {
    pub(crate) grant: GrantId,
    pub(crate) issued_at: SystemTime,
    pub(crate) expires_at: SystemTime,
    /// Presented as a bearer token (ends the Fitbit replay window).
    pub(crate) used: bool,
}

/// An issued refresh token.
#[derive(Clone, Debug)]
pub(crate) struct RefreshToken {
    pub(crate) grant: GrantId,
    /// Already exchanged (Fitbit refresh tokens are single-use).
    pub(crate) used: bool,
}

/// All records of one server.
#[derive(Debug, Default)]
pub(crate) struct Authority {
    pub(crate) codes: HashMap<String, Code>,
    pub(crate) grants: HashMap<GrantId, Grant>,
    pub(crate) access: HashMap<String, AccessToken>,
    pub(crate) refresh: HashMap<String, RefreshToken>,
    next_grant: GrantId,
}

impl Authority {
    /// Records a new grant.
    pub(crate) fn new_grant(
        &mut self,
        client_id: &str,
        user_id: &str,
        scopes: Vec<String>,
        offline: bool,
    ) -> GrantId {
        self.next_grant += 1;
        self.grants.insert(
            self.next_grant,
            Grant {
                client_id: client_id.to_owned(),
                user_id: user_id.to_owned(),
                scopes,
                offline,
                revoked: false,
                current_refresh: None,
                refresh_expires_at: None,
                last_rotation: None,
            },
        );
        self.next_grant
    }

    /// Records an access token under `grant`.
    pub(crate) fn add_access(
        &mut self,
        grant: GrantId,
        token: String,
        now: SystemTime,
        lifetime: Duration,
    ) {
        self.access.insert(
            token,
            AccessToken {
                grant,
                issued_at: now,
                expires_at: now + lifetime,
                used: false,
            },
        );
    }

    /// Records a refresh token under `grant` and makes it the current one.
    pub(crate) fn add_refresh(&mut self, grant: GrantId, token: String) {
        if let Some(g) = self.grants.get_mut(&grant) {
            g.current_refresh = Some(token.clone());
        }
        self.refresh
            .insert(token, RefreshToken { grant, used: false });
    }

    /// The access token and its grant, if the token is active at `now`.
    pub(crate) fn active_access(
        &self,
        token: &str,
        now: SystemTime,
    ) -> Option<(&AccessToken, &Grant)> {
        let access = self.access.get(token)?;
        let grant = self.grants.get(&access.grant)?;
        (!grant.revoked && now < access.expires_at).then_some((access, grant))
    }

    /// The grant an access or refresh token was issued under.
    pub(crate) fn grant_of(&self, token: &str) -> Option<GrantId> {
        self.access
            .get(token)
            .map(|a| a.grant)
            .or_else(|| self.refresh.get(token).map(|r| r.grant))
    }

    /// Revokes every grant of `user_id` for `client_id`; returns how many
    /// were live.
    pub(crate) fn revoke_user(&mut self, client_id: &str, user_id: &str) -> usize {
        let mut revoked = 0;
        for grant in self.grants.values_mut() {
            if grant.client_id == client_id && grant.user_id == user_id && !grant.revoked {
                grant.revoked = true;
                grant.current_refresh = None;
                revoked += 1;
            }
        }
        revoked
    }
}
