//! The legacy Fitbit OAuth 2.0 server (docs/providers-facts.md, "Legacy Fitbit OAuth 2.0"): consent page,
//! token endpoint with single-use rotating refresh tokens and the replay
//! window, introspection, revocation, rate limits and the retired switch.
//! [`Fitbit`] owns all of it: its clients, settings, records and quota.
//!
//! Everything here runs under the server's lock and must never block or await.
//!
//! Why this server exists beside the other rotating servers of the
//! workspace (`auth_core::testing::FakeProvider`, scriptable, for unit
//! tests; the seeded simulation's, deterministic and without sockets; the
//! catalogue profiles, any entry's facts rather than Fitbit's): it is the
//! one a real client meets over HTTP, with Fitbit's wire formats, error
//! bodies, rate limits, records and counters, written apart from the
//! client crates. The rule it applies to a presented refresh token is the
//! one the others apply, from `rotation_rule`: the current token
//! rotates; an identical replay of the last rotation is answered with the
//! same body until the new access or refresh token is used, or the window
//! (120 s by default) has passed; any other spent token is `invalid_grant`
//! and, with the window switched off, revokes the grant. What stays here is
//! Fitbit's: the records the verdict is drawn from and acted on, the
//! byte-identical replayed body, and the `Replay` and `ReuseDetection`
//! events.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use http::StatusCode;
use rotation_rule::{Presented, Rotation, Verdict};
use serde::Serialize;

use crate::oauth::client_auth::{self, Client, Rules};
use crate::oauth::clock::epoch_millis;
use crate::oauth::consent::{Consent, grant_scopes};
use crate::oauth::context::{Cx, Event};
use crate::oauth::endpoint::Endpoint;
use crate::oauth::error_body::{self, FITBIT_DOCS_HINT};
use crate::oauth::grants::{self, Authority, Code, GrantId, IssuedTokens, Seed};
use crate::oauth::params::Params;
use crate::oauth::reply::Reply;
use crate::oauth::request::Request;
use crate::oauth::{pkce, scopes, token};
use crate::providers::rate_limit::{RateKey, RateLimiter};
use crate::providers::resource;

/// The longest access-token lifetime a client may ask for with `expires_in`.
const MAX_REQUESTED_LIFETIME: u64 = 31_536_000;

/// What every legacy endpoint answers in retired mode.
pub(crate) const RETIRED_MESSAGE: &str = "The legacy Fitbit Web API and the Fitbit OAuth 2.0 endpoints were turned off on 2026-11-02. Use the Google Health API (https://health.googleapis.com/v4) with Google OAuth 2.0 instead; every user must consent again.";

/// The settings of the legacy Fitbit server, fixed at start except for the
/// two switches tests may flip ([`Fitbit::set_retired`],
/// [`Fitbit::set_replay_window`]).
#[derive(Clone, Debug)]
pub(crate) struct FitbitSettings {
    pub(crate) clients: HashMap<String, Client>,
    pub(crate) access_lifetime: Duration,
    pub(crate) replay_window: bool,
    pub(crate) replay_window_duration: Duration,
    pub(crate) retired: bool,
    pub(crate) rate_limit_per_hour: u32,
}

/// The legacy Fitbit server: its settings, its records and its quota.
#[derive(Debug)]
pub(crate) struct Fitbit {
    settings: FitbitSettings,
    records: Authority,
    rate: RateLimiter,
}

impl Fitbit {
    /// A server with no grants yet.
    pub(crate) fn new(settings: FitbitSettings) -> Self {
        Self {
            settings,
            records: Authority::default(),
            rate: RateLimiter::default(),
        }
    }

    /// Whether the legacy endpoints answer `410 Gone`.
    pub(crate) fn is_retired(&self) -> bool {
        self.settings.retired
    }

    /// Turns retired mode on or off.
    pub(crate) fn set_retired(&mut self, on: bool) {
        self.settings.retired = on;
    }

    /// Turns the replay window on, or off (strict mode).
    pub(crate) fn set_replay_window(&mut self, on: bool) {
        self.settings.replay_window = on;
    }

    /// Forgets one access token (its grant and refresh token live on).
    pub(crate) fn invalidate_access(&mut self, token: &str) {
        self.records.access.remove(token);
    }

    /// Handles one request to a legacy Fitbit endpoint (retired mode and
    /// faults are dealt with before).
    pub(crate) fn handle(&mut self, endpoint: Endpoint, req: &Request, cx: &mut Cx<'_>) -> Reply {
        if endpoint == Endpoint::FitbitAuthorize {
            // The consent page is on www.fitbit.com, outside the API quota.
            return self.authorize(req, cx);
        }
        let key = self.rate_key(endpoint, req);
        let limit = self.settings.rate_limit_per_hour;
        let quota = self.rate.consume(key, limit, cx.now);
        let reply = if quota.exceeded {
            cx.report(Event::RateLimited);
            error_body::fitbit(StatusCode::TOO_MANY_REQUESTS, "system", "Too Many Requests")
                .with_retry_after(quota.reset)
        } else {
            match endpoint {
                Endpoint::FitbitToken => self.token_endpoint(req, cx),
                Endpoint::FitbitIntrospect => self.introspect(req, cx.now),
                Endpoint::FitbitProfile => resource::fitbit_profile(&mut self.records, req, cx),
                _ => self.revoke(req, cx),
            }
        };
        quota.headers(reply)
    }

    /// Adds the rate-limit headers to a fault's answer, without spending quota.
    pub(crate) fn with_quota_headers(
        &mut self,
        endpoint: Endpoint,
        req: &Request,
        reply: Reply,
        now: SystemTime,
    ) -> Reply {
        if endpoint == Endpoint::FitbitAuthorize {
            return reply;
        }
        let key = self.rate_key(endpoint, req);
        let limit = self.settings.rate_limit_per_hour;
        let mut quota = self.rate.peek(&key, limit, now);
        if reply.status == StatusCode::TOO_MANY_REQUESTS {
            quota.remaining = 0;
            if let Some(seconds) = reply
                .headers
                .iter()
                .find(|(n, _)| n == http::header::RETRY_AFTER)
                .and_then(|(_, v)| v.to_str().ok()?.parse().ok())
            {
                quota.reset = seconds;
            }
        }
        quota.headers(reply)
    }

    /// Whose quota a request spends.
    fn rate_key(&self, endpoint: Endpoint, req: &Request) -> RateKey {
        let params = req.form_params().unwrap_or_default();
        let records = &self.records;
        let user_of_token = |token: &str| {
            records
                .grant_of(token)
                .and_then(|g| records.grants.get(&g))
                .map(|g| g.user_id.clone())
        };
        let user = match endpoint {
            Endpoint::FitbitToken => match params.get("grant_type") {
                Some("refresh_token") => params.get("refresh_token").and_then(user_of_token),
                Some("authorization_code") => params
                    .get("code")
                    .and_then(|c| records.codes.get(c))
                    .map(|c| c.user_id.clone()),
                _ => None,
            },
            Endpoint::FitbitIntrospect | Endpoint::FitbitProfile => {
                req.bearer().and_then(user_of_token)
            }
            _ => params.get("token").and_then(user_of_token),
        };
        user.map(RateKey::User)
            .or_else(|| {
                client_auth::claimed_client_id(req.authorization(), &params).map(RateKey::Client)
            })
            .unwrap_or(RateKey::Anonymous)
    }

    /// Reads the form of a token or revoke request and authenticates its
    /// client.
    fn client_form(&self, req: &Request, cx: &mut Cx<'_>) -> Result<(Params, Client), Reply> {
        let params = req
            .form_params()
            .map_err(|message| invalid_request(&message))?;
        let client = client_auth::authenticate(
            &self.settings.clients,
            req.authorization(),
            &params,
            Rules::Fitbit,
        )
        .cloned()
        .map_err(|failure| {
            cx.report(Event::ClientAuthFailure);
            error_body::fitbit(StatusCode::UNAUTHORIZED, "invalid_client", failure.0)
        })?;
        Ok((params, client))
    }
}

/// The answer of every legacy endpoint in retired mode.
pub(crate) fn retired() -> Reply {
    error_body::fitbit(StatusCode::GONE, "request", RETIRED_MESSAGE)
}

// ---- authorize ----

impl Fitbit {
    /// The consent page: invalid parameters get an HTML page and never a redirect.
    fn authorize(&mut self, req: &Request, cx: &mut Cx<'_>) -> Reply {
        let params = match req.query_params() {
            Ok(p) => p,
            Err(name) => return error_page(&format!("Repeated parameter: {name}")),
        };
        let Some(client_id) = params.get("client_id") else {
            return error_page("Missing parameters: client_id");
        };
        let Some(client) = self.settings.clients.get(client_id).cloned() else {
            return error_page("Invalid client_id parameter value");
        };
        match params.get("response_type") {
            Some("code") => {}
            None => return error_page("Missing parameters: response_type"),
            Some(_) => {
                return error_page("Invalid response_type parameter value: only code is supported");
            }
        }
        let (target, sent_redirect) = match params.get("redirect_uri") {
            Some(uri) if client.has_redirect_uri(uri) => (uri.to_owned(), Some(uri.to_owned())),
            Some(_) => return error_page("Invalid redirect_uri parameter value"),
            None => match client.redirect_uris.as_slice() {
                [only] => (only.clone(), None),
                _ => return error_page("Missing parameters: redirect_uri"),
            },
        };
        let Some(scope) = params.get("scope") else {
            return error_page("Missing parameters: scope");
        };
        let requested = scopes::split(scope);
        if requested.is_empty() {
            return error_page("Missing parameters: scope");
        }
        if let Some(bad) = requested.iter().find(|s| !scopes::is_fitbit(s)) {
            return error_page(&format!("Invalid scope parameter value: {bad}"));
        }
        let challenge = match pkce::parse_challenge(
            params.get("code_challenge"),
            params.get("code_challenge_method"),
        ) {
            Ok(c) => c,
            Err(e) => return error_page(e.describe()),
        };
        if let Some(prompt) = params.get("prompt")
            && !matches!(
                prompt,
                "none" | "consent" | "login" | "login consent" | "consent login"
            )
        {
            return error_page("Invalid prompt parameter value");
        }
        let state_param = params.raw("state").map(str::to_owned);
        let (user_id, granted) = match cx.consents.next() {
            Consent::Denied => {
                let mut pairs = vec![
                    ("error", "access_denied".to_owned()),
                    (
                        "error_description",
                        "The user denied the request.".to_owned(),
                    ),
                ];
                if let Some(s) = state_param {
                    pairs.push(("state", s));
                }
                return Reply::redirect_with(&target, &pairs, Some(FRAGMENT));
            }
            Consent::Granted { user_id, only } => (user_id, grant_scopes(requested, only)),
        };
        let record = Code {
            client_id: client.id.clone(),
            user_id,
            scopes: granted,
            redirect_uri: sent_redirect,
            challenge,
            issued_at: cx.now,
            // Google-only fields: every Fitbit exchange returns a refresh token.
            offline: false,
            issue_refresh: false,
        };
        let code = token::fitbit_code();
        self.records.codes.insert(code.clone(), record);
        let mut pairs = vec![("code", code)];
        if let Some(s) = state_param {
            pairs.push(("state", s));
        }
        Reply::redirect_with(&target, &pairs, Some(FRAGMENT))
    }
}

/// The fragment Fitbit appends to its redirects.
const FRAGMENT: &str = "_=_";

fn error_page(developer_info: &str) -> Reply {
    Reply::html_page(
        StatusCode::BAD_REQUEST,
        "Fitbit: the app you're trying to connect did not provide valid information",
        &[
            "The app you're trying to connect did not provide valid information to Fitbit. Please report this issue to them.",
            &format!("Developer information: invalid_request - {developer_info}"),
        ],
    )
}

// ---- token ----

#[derive(Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    expires_in: u64,
    refresh_token: &'a str,
    scope: String,
    token_type: &'static str,
    user_id: &'a str,
}

fn invalid_request(message: &str) -> Reply {
    error_body::fitbit(StatusCode::BAD_REQUEST, "invalid_request", message)
}

fn invalid_grant(message: &str) -> Reply {
    error_body::fitbit(StatusCode::BAD_REQUEST, "invalid_grant", message)
}

impl Fitbit {
    fn token_endpoint(&mut self, req: &Request, cx: &mut Cx<'_>) -> Reply {
        let (params, client) = match self.client_form(req, cx) {
            Ok(form) => form,
            Err(reply) => return reply,
        };
        let lifetime = match requested_lifetime(&params, self.settings.access_lifetime) {
            Ok(l) => l,
            Err(reply) => return reply,
        };
        match params.get("grant_type") {
            Some("authorization_code") => self.exchange_code(&client, &params, lifetime, cx),
            Some("refresh_token") => match params.get("refresh_token") {
                Some(presented) => self.refresh(&client, presented, lifetime, cx),
                None => invalid_request("Missing parameters: refresh_token"),
            },
            Some(other) => invalid_request(&format!("Unsupported grant_type: {other}")),
            None => invalid_request("Missing parameters: grant_type"),
        }
    }

    fn exchange_code(
        &mut self,
        client: &Client,
        params: &Params,
        lifetime: Duration,
        cx: &mut Cx<'_>,
    ) -> Reply {
        let Some(code) = params.get("code") else {
            return invalid_request("Missing parameters: code");
        };
        let invalid = || {
            invalid_grant(&format!(
                "Authorization code invalid: {code} {FITBIT_DOCS_HINT}"
            ))
        };
        let record = match self.records.codes.get(code) {
            Some(c) if c.client_id == client.id => c.clone(),
            _ => return invalid(),
        };
        // Any exchange attempt by its own client uses the code up.
        self.records.codes.remove(code);
        if record.expired(cx.now) {
            return invalid_grant(&format!(
                "Authorization code expired: {code} {FITBIT_DOCS_HINT}"
            ));
        }
        let redirect_ok = match (record.redirect_uri.as_deref(), params.get("redirect_uri")) {
            (Some(sent), given) => given == Some(sent),
            (None, Some(given)) => client.has_redirect_uri(given),
            (None, None) => true,
        };
        if !redirect_ok {
            return invalid_grant(&format!(
                "Redirect_uri mismatch: the redirect_uri must equal the one sent to authorize. {FITBIT_DOCS_HINT}"
            ));
        }
        if let Some(challenge) = &record.challenge {
            let verified = params
                .get("code_verifier")
                .is_some_and(|v| pkce::verify(challenge, v));
            if !verified {
                cx.report(Event::PkceFailure);
                let what = if params.has("code_verifier") {
                    "invalid"
                } else {
                    "missing"
                };
                return invalid_grant(&format!(
                    "Code verifier {what}: PKCE verification failed. {FITBIT_DOCS_HINT}"
                ));
            }
        }
        let grant = self.new_consent(&client.id, &record.user_id, record.scopes);
        let (body, _, _) = self.issue_pair(grant, lifetime, cx.now);
        Reply::json_text(StatusCode::OK, body)
    }

    /// Records a new consent. One active refresh token per user per app: it
    /// supersedes the refresh tokens of earlier ones (their access tokens
    /// live on).
    fn new_consent(&mut self, client_id: &str, user_id: &str, scopes: Vec<String>) -> GrantId {
        for grant in self.records.grants.values_mut() {
            if grant.client_id == client_id && grant.user_id == user_id {
                grant.current_refresh = None;
            }
        }
        self.records.new_grant(client_id, user_id, scopes, true)
    }

    /// Issues a new access and refresh token under `grant`; returns the JSON
    /// success body and the two tokens.
    fn issue_pair(
        &mut self,
        grant: GrantId,
        lifetime: Duration,
        now: SystemTime,
    ) -> (String, String, String) {
        let access = token::fitbit_access();
        let refresh = token::fitbit_refresh();
        self.records
            .add_access(grant, access.clone(), now, lifetime);
        self.records.add_refresh(grant, refresh.clone());
        let g = &self.records.grants[&grant];
        let body = serde_json::to_string(&TokenResponse {
            access_token: &access,
            expires_in: lifetime.as_secs(),
            refresh_token: &refresh,
            scope: g.scopes.join(" "),
            token_type: "Bearer",
            user_id: &g.user_id,
        })
        .unwrap_or_default();
        (body, access, refresh)
    }

    /// A refresh with the refresh token `presented`.
    fn refresh(
        &mut self,
        client: &Client,
        presented: &str,
        lifetime: Duration,
        cx: &mut Cx<'_>,
    ) -> Reply {
        let invalid = || {
            invalid_grant(&format!(
                "Refresh token invalid: {presented}. {FITBIT_DOCS_HINT}"
            ))
        };
        let Some(record) = self.records.refresh.get(presented).cloned() else {
            return invalid();
        };
        let Some(grant) = self.records.grants.get(&record.grant).cloned() else {
            return invalid();
        };
        if grant.client_id != client.id || grant.revoked {
            return invalid();
        }
        let now = cx.now;
        let rules = rotation_rule::Rules {
            window: (self.settings.replay_window).then_some(self.settings.replay_window_duration),
            first_use_ends: true,
        };
        let last = grant
            .last_rotation
            .as_ref()
            .filter(|r| r.presented == presented);
        let seen = if grant.current_refresh.as_deref() == Some(presented) {
            Presented::Current
        } else if !record.used {
            // Superseded by a newer consent before it was used.
            Presented::NeverUsed
        } else if let Some(r) = last {
            // The records say whether the new pair was used (its access
            // token as a bearer, its refresh token, or a newer consent that
            // took its place), not when: a used one closes the window now.
            let unused = grant.current_refresh.as_deref() == Some(r.new_refresh.as_str())
                && self
                    .records
                    .access
                    .get(&r.new_access)
                    .is_some_and(|a| !a.used);
            Presented::Spent(Rotation {
                at: r.at,
                successor_first_used: (!unused).then_some(now),
            })
        } else {
            Presented::SpentEarlier
        };
        match (rules.judge(seen, now), last) {
            (Verdict::Rotate, _) => {
                let (body, new_access, new_refresh) = self.issue_pair(record.grant, lifetime, now);
                if let Some(r) = self.records.refresh.get_mut(presented) {
                    r.used = true;
                }
                if let Some(g) = self.records.grants.get_mut(&record.grant) {
                    g.last_rotation = Some(grants::Rotation {
                        presented: presented.to_owned(),
                        body: body.clone(),
                        at: now,
                        new_access,
                        new_refresh,
                    });
                }
                Reply::json_text(StatusCode::OK, body)
            }
            (Verdict::Replay, Some(rotation)) => {
                cx.report(Event::Replay);
                Reply::json_text(StatusCode::OK, rotation.body.clone())
            }
            (Verdict::Reused { grant_dies }, _) => {
                cx.report(Event::ReuseDetection);
                if grant_dies {
                    // Strict mode: reuse means the chain leaked; the whole grant dies.
                    self.records.revoke_user(&grant.client_id, &grant.user_id);
                }
                invalid()
            }
            _ => invalid(),
        }
    }
}

/// The optional `expires_in` request parameter.
fn requested_lifetime(params: &Params, default: Duration) -> Result<Duration, Reply> {
    match params.get("expires_in") {
        None => Ok(default),
        Some(text) => match text.parse::<u64>() {
            Ok(s) if (1..=MAX_REQUESTED_LIFETIME).contains(&s) => Ok(Duration::from_secs(s)),
            _ => Err(invalid_request(&format!(
                "Invalid expires_in parameter value: {text}"
            ))),
        },
    }
}

// ---- introspect, revoke, seeding ----

#[derive(Serialize)]
struct ActiveIntrospection<'a> {
    active: bool,
    scope: String,
    client_id: &'a str,
    user_id: &'a str,
    token_type: &'static str,
    exp: u64,
    iat: u64,
}

impl Fitbit {
    fn introspect(&mut self, req: &Request, now: SystemTime) -> Reply {
        let Some(bearer) = req.bearer() else {
            return error_body::fitbit(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                &format!(
                    "Authorization header required: send Authorization: Bearer <access token>. {FITBIT_DOCS_HINT}"
                ),
            );
        };
        if self.records.active_access(bearer, now).is_none() {
            return error_body::fitbit(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                &format!("Access token invalid: {bearer}. {FITBIT_DOCS_HINT}"),
            );
        }
        if let Some(a) = self.records.access.get_mut(bearer) {
            a.used = true;
        }
        let params = match req.form_params() {
            Ok(p) => p,
            Err(message) => return invalid_request(&message),
        };
        let Some(token) = params.get("token") else {
            return invalid_request("Missing parameters: token");
        };
        match self.records.active_access(token, now) {
            Some((access, grant)) => Reply::json(
                StatusCode::OK,
                &ActiveIntrospection {
                    active: true,
                    scope: scopes::fitbit_braces(&grant.scopes),
                    client_id: &grant.client_id,
                    user_id: &grant.user_id,
                    token_type: "access_token",
                    exp: epoch_millis(access.expires_at),
                    iat: epoch_millis(access.issued_at),
                },
            ),
            None => Reply::json(StatusCode::OK, &serde_json::json!({ "active": false })),
        }
    }

    fn revoke(&mut self, req: &Request, cx: &mut Cx<'_>) -> Reply {
        let (params, client) = match self.client_form(req, cx) {
            Ok(form) => form,
            Err(reply) => return reply,
        };
        let Some(token) = params.get("token") else {
            return invalid_request("Missing parameters: token");
        };
        // RFC 7009: an unknown token is not an error.
        let Some(grant) = self
            .records
            .grant_of(token)
            .and_then(|g| self.records.grants.get(&g))
            .cloned()
        else {
            return Reply::empty(StatusCode::OK);
        };
        if grant.client_id != client.id {
            return invalid_request("The token was not issued to this client.");
        }
        self.records.revoke_user(&grant.client_id, &grant.user_id);
        Reply::empty(StatusCode::OK)
    }

    /// Issues tokens as if `user_id` had consented to `scopes` for `client_id`.
    pub(crate) fn seed(&mut self, seed: &Seed<'_>, now: SystemTime) -> IssuedTokens {
        assert!(
            self.settings.clients.contains_key(seed.client_id),
            "seed_fitbit_grant: unknown Fitbit client {:?}; register it with EmulatorBuilder::fitbit_client",
            seed.client_id
        );
        if let Some(bad) = seed.scopes.iter().find(|s| !scopes::is_fitbit(s)) {
            panic!("seed_fitbit_grant: {bad:?} is not a legacy Fitbit scope");
        }
        let scopes: Vec<String> = seed.scopes.iter().map(|s| (*s).to_owned()).collect();
        let grant = self.new_consent(seed.client_id, seed.user_id, scopes.clone());
        let lifetime = self.settings.access_lifetime;
        let (_, access_token, refresh_token) = self.issue_pair(grant, lifetime, now);
        IssuedTokens {
            access_token,
            refresh_token: Some(refresh_token),
            expires_in: lifetime.as_secs(),
            user_id: seed.user_id.to_owned(),
            scopes,
        }
    }
}
