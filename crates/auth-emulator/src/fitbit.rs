//! The legacy Fitbit OAuth 2.0 server (docs/providers-facts.md, "Legacy Fitbit OAuth 2.0"): consent page,
//! token endpoint with single-use rotating refresh tokens and the replay
//! window, introspection, revocation, rate limits and the retired switch.
//!
//! Everything here runs under the state lock and must never block or await.

use std::time::Duration;

use http::StatusCode;
use serde::Serialize;
use url::Url;

use crate::client_auth::{self, Client, Rules};
use crate::clock::epoch_millis;
use crate::endpoint::Endpoint;
use crate::error_body::{self, FITBIT_DOCS_HINT};
use crate::grants::{Code, GrantId, Rotation};
use crate::params::Params;
use crate::pkce;
use crate::rate_limit::RateKey;
use crate::reply::Reply;
use crate::resource::bearer;
use crate::scopes;
use crate::state::{Consent, Request, State};
use crate::token;

/// The longest access-token lifetime a client may ask for with `expires_in`.
const MAX_REQUESTED_LIFETIME: u64 = 31_536_000;

/// What every legacy endpoint answers in retired mode.
pub(crate) const RETIRED_MESSAGE: &str = "The legacy Fitbit Web API and the Fitbit OAuth 2.0 endpoints were turned off on 2026-11-02. Use the Google Health API (https://health.googleapis.com/v4) with Google OAuth 2.0 instead; every user must consent again.";

/// Handles one request to a legacy Fitbit endpoint (retired mode and faults
/// are dealt with before).
pub(crate) fn handle(state: &mut State, endpoint: Endpoint, req: &Request) -> Reply {
    if endpoint == Endpoint::FitbitAuthorize {
        // The consent page is on www.fitbit.com, outside the API quota.
        return authorize(state, req);
    }
    let key = rate_key(state, endpoint, req);
    let now = state.clock.now();
    let limit = state.config.rate_limit_per_hour;
    let quota = state.rate.consume(key, limit, now);
    let reply = if quota.exceeded {
        state.counters.rate_limited += 1;
        error_body::fitbit(StatusCode::TOO_MANY_REQUESTS, "system", "Too Many Requests")
            .with_retry_after(quota.reset)
    } else {
        match endpoint {
            Endpoint::FitbitToken => token_endpoint(state, req),
            Endpoint::FitbitIntrospect => introspect(state, req),
            Endpoint::FitbitProfile => crate::resource::fitbit_profile(state, req),
            _ => revoke(state, req),
        }
    };
    quota.headers(reply)
}

/// Adds the rate-limit headers to a fault's answer, without spending quota.
pub(crate) fn with_quota_headers(
    state: &mut State,
    endpoint: Endpoint,
    req: &Request,
    reply: Reply,
) -> Reply {
    if endpoint == Endpoint::FitbitAuthorize {
        return reply;
    }
    let key = rate_key(state, endpoint, req);
    let now = state.clock.now();
    let limit = state.config.rate_limit_per_hour;
    let mut quota = state.rate.peek(&key, limit, now);
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

/// The answer of every legacy endpoint in retired mode.
pub(crate) fn retired() -> Reply {
    error_body::fitbit(StatusCode::GONE, "request", RETIRED_MESSAGE)
}

/// Whose quota a request spends.
fn rate_key(state: &State, endpoint: Endpoint, req: &Request) -> RateKey {
    let params = req.form_params().unwrap_or_default();
    let fitbit = &state.fitbit;
    let user_of_token = |token: &str| {
        fitbit
            .grant_of(token)
            .and_then(|g| fitbit.grants.get(&g))
            .map(|g| g.user_id.clone())
    };
    let user = match endpoint {
        Endpoint::FitbitToken => match params.get("grant_type") {
            Some("refresh_token") => params.get("refresh_token").and_then(user_of_token),
            Some("authorization_code") => params
                .get("code")
                .and_then(|c| fitbit.codes.get(c))
                .map(|c| c.user_id.clone()),
            _ => None,
        },
        Endpoint::FitbitIntrospect | Endpoint::FitbitProfile => bearer(req).and_then(user_of_token),
        _ => params.get("token").and_then(user_of_token),
    };
    user.map(RateKey::User)
        .or_else(|| {
            client_auth::claimed_client_id(req.authorization(), &params).map(RateKey::Client)
        })
        .unwrap_or(RateKey::Anonymous)
}

// ---- authorize ----

/// The consent page: invalid parameters get an HTML page and never a redirect.
fn authorize(state: &mut State, req: &Request) -> Reply {
    let params = match req.query_params() {
        Ok(p) => p,
        Err(name) => return error_page(&format!("Repeated parameter: {name}")),
    };
    let Some(client_id) = params.get("client_id") else {
        return error_page("Missing parameters: client_id");
    };
    let Some(client) = state.config.fitbit_clients.get(client_id).cloned() else {
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
    let (user_id, granted) = match state.next_consent() {
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
            return Reply::redirect(&redirect_url(&target, &pairs));
        }
        Consent::Granted { user_id, only } => (user_id, grant_scopes(requested, only)),
    };
    let code = token::fitbit_code();
    state.fitbit.codes.insert(
        code.clone(),
        Code {
            client_id: client.id.clone(),
            user_id,
            scopes: granted,
            redirect_uri: sent_redirect,
            challenge,
            issued_at: state.clock.now(),
            // Google-only fields: every Fitbit exchange returns a refresh token.
            offline: false,
            issue_refresh: false,
        },
    );
    let mut pairs = vec![("code", code)];
    if let Some(s) = state_param {
        pairs.push(("state", s));
    }
    Reply::redirect(&redirect_url(&target, &pairs))
}

/// The requested scopes the user left ticked.
pub(crate) fn grant_scopes(requested: Vec<String>, only: Option<Vec<String>>) -> Vec<String> {
    match only {
        Some(only) => requested.into_iter().filter(|s| only.contains(s)).collect(),
        None => requested,
    }
}

/// `target` with `pairs` added to its query and Fitbit's `#_=_` fragment.
fn redirect_url(target: &str, pairs: &[(&str, String)]) -> String {
    match Url::parse(target) {
        Ok(mut url) => {
            {
                let mut query = url.query_pairs_mut();
                for (k, v) in pairs {
                    query.append_pair(k, v);
                }
            }
            url.set_fragment(Some("_=_"));
            url.into()
        }
        // Registered URIs are checked when the emulator starts.
        Err(_) => target.to_owned(),
    }
}

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

fn token_endpoint(state: &mut State, req: &Request) -> Reply {
    let params = match req.form_params() {
        Ok(p) => p,
        Err(message) => return invalid_request(&message),
    };
    let client = match client_auth::authenticate(
        &state.config.fitbit_clients,
        req.authorization(),
        &params,
        Rules::Fitbit,
    ) {
        Ok(c) => c.clone(),
        Err(failure) => {
            state.counters.client_auth_failures += 1;
            return error_body::fitbit(StatusCode::UNAUTHORIZED, "invalid_client", failure.0);
        }
    };
    let lifetime = match requested_lifetime(&params, state.config.fitbit_access_lifetime) {
        Ok(l) => l,
        Err(reply) => return reply,
    };
    match params.get("grant_type") {
        Some("authorization_code") => exchange_code(state, &client, &params, lifetime),
        Some("refresh_token") => refresh(state, &client, &params, lifetime),
        Some(other) => invalid_request(&format!("Unsupported grant_type: {other}")),
        None => invalid_request("Missing parameters: grant_type"),
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

fn exchange_code(state: &mut State, client: &Client, params: &Params, lifetime: Duration) -> Reply {
    let Some(code) = params.get("code") else {
        return invalid_request("Missing parameters: code");
    };
    let now = state.clock.now();
    let invalid = || {
        invalid_grant(&format!(
            "Authorization code invalid: {code} {FITBIT_DOCS_HINT}"
        ))
    };
    let record = match state.fitbit.codes.get(code) {
        Some(c) if c.client_id == client.id => c.clone(),
        _ => return invalid(),
    };
    // Any exchange attempt by its own client uses the code up.
    state.fitbit.codes.remove(code);
    if record.expired(now) {
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
            state.counters.pkce_failures += 1;
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
    // One active refresh token per user per app: a new consent supersedes
    // the refresh tokens of earlier ones (their access tokens live on).
    for grant in state.fitbit.grants.values_mut() {
        if grant.client_id == client.id && grant.user_id == record.user_id {
            grant.current_refresh = None;
        }
    }
    let grant = state
        .fitbit
        .new_grant(&client.id, &record.user_id, record.scopes, true);
    let (body, _, _) = issue_pair(state, grant, lifetime);
    Reply::json_text(StatusCode::OK, body)
}

/// Issues a new access and refresh token under `grant`; returns the JSON
/// success body and the two tokens.
fn issue_pair(state: &mut State, grant: GrantId, lifetime: Duration) -> (String, String, String) {
    let now = state.clock.now();
    let access = token::fitbit_access();
    let refresh = token::fitbit_refresh();
    state
        .fitbit
        .add_access(grant, access.clone(), now, lifetime);
    state.fitbit.add_refresh(grant, refresh.clone());
    let g = &state.fitbit.grants[&grant];
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

fn refresh(state: &mut State, client: &Client, params: &Params, lifetime: Duration) -> Reply {
    let Some(presented) = params.get("refresh_token") else {
        return invalid_request("Missing parameters: refresh_token");
    };
    let invalid = || {
        invalid_grant(&format!(
            "Refresh token invalid: {presented}. {FITBIT_DOCS_HINT}"
        ))
    };
    let Some(record) = state.fitbit.refresh.get(presented).cloned() else {
        return invalid();
    };
    let Some(grant) = state.fitbit.grants.get(&record.grant).cloned() else {
        return invalid();
    };
    if grant.client_id != client.id || grant.revoked {
        return invalid();
    }
    let now = state.clock.now();
    if grant.current_refresh.as_deref() == Some(presented) {
        let (body, new_access, new_refresh) = issue_pair(state, record.grant, lifetime);
        if let Some(r) = state.fitbit.refresh.get_mut(presented) {
            r.used = true;
        }
        if let Some(g) = state.fitbit.grants.get_mut(&record.grant) {
            g.last_rotation = Some(Rotation {
                presented: presented.to_owned(),
                body: body.clone(),
                at: now,
                new_access,
                new_refresh,
            });
        }
        return Reply::json_text(StatusCode::OK, body);
    }
    if !record.used {
        // Superseded by a newer consent, never used: simply invalid.
        return invalid();
    }
    let config = &state.config;
    let replay = grant.last_rotation.as_ref().filter(|r| {
        config.replay_window
            && r.presented == presented
            && now.duration_since(r.at).unwrap_or_default() <= config.replay_window_duration
            && grant.current_refresh.as_deref() == Some(r.new_refresh.as_str())
            && state
                .fitbit
                .access
                .get(&r.new_access)
                .is_some_and(|a| !a.used)
    });
    if let Some(rotation) = replay {
        state.counters.replays += 1;
        return Reply::json_text(StatusCode::OK, rotation.body.clone());
    }
    state.counters.reuse_detections += 1;
    if !config.replay_window {
        // Strict mode: reuse means the chain leaked; the whole grant dies.
        state.fitbit.revoke_user(&grant.client_id, &grant.user_id);
    }
    invalid()
}

// ---- introspect ----

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

fn introspect(state: &mut State, req: &Request) -> Reply {
    let now = state.clock.now();
    let Some(bearer) = bearer(req) else {
        return error_body::fitbit(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            &format!(
                "Authorization header required: send Authorization: Bearer <access token>. {FITBIT_DOCS_HINT}"
            ),
        );
    };
    if state.fitbit.active_access(bearer, now).is_none() {
        return error_body::fitbit(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            &format!("Access token invalid: {bearer}. {FITBIT_DOCS_HINT}"),
        );
    }
    if let Some(a) = state.fitbit.access.get_mut(bearer) {
        a.used = true;
    }
    let params = match req.form_params() {
        Ok(p) => p,
        Err(message) => return invalid_request(&message),
    };
    let Some(token) = params.get("token") else {
        return invalid_request("Missing parameters: token");
    };
    match state.fitbit.active_access(token, now) {
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

// ---- revoke ----

fn revoke(state: &mut State, req: &Request) -> Reply {
    let params = match req.form_params() {
        Ok(p) => p,
        Err(message) => return invalid_request(&message),
    };
    let client = match client_auth::authenticate(
        &state.config.fitbit_clients,
        req.authorization(),
        &params,
        Rules::Fitbit,
    ) {
        Ok(c) => c.clone(),
        Err(failure) => {
            state.counters.client_auth_failures += 1;
            return error_body::fitbit(StatusCode::UNAUTHORIZED, "invalid_client", failure.0);
        }
    };
    let Some(token) = params.get("token") else {
        return invalid_request("Missing parameters: token");
    };
    // RFC 7009: an unknown token is not an error.
    let Some(grant) = state
        .fitbit
        .grant_of(token)
        .and_then(|g| state.fitbit.grants.get(&g))
        .cloned()
    else {
        return Reply::empty(StatusCode::OK);
    };
    if grant.client_id != client.id {
        return invalid_request("The token was not issued to this client.");
    }
    state.fitbit.revoke_user(&grant.client_id, &grant.user_id);
    Reply::empty(StatusCode::OK)
}

// ---- seeding ----

/// Issues tokens as if `user_id` had consented to `scopes` for `client_id`.
pub(crate) fn seed(
    state: &mut State,
    client_id: &str,
    user_id: &str,
    scopes: &[&str],
) -> crate::IssuedTokens {
    assert!(
        state.config.fitbit_clients.contains_key(client_id),
        "seed_fitbit_grant: unknown Fitbit client {client_id:?}; register it with EmulatorBuilder::fitbit_client"
    );
    if let Some(bad) = scopes.iter().find(|s| !scopes::is_fitbit(s)) {
        panic!("seed_fitbit_grant: {bad:?} is not a legacy Fitbit scope");
    }
    for grant in state.fitbit.grants.values_mut() {
        if grant.client_id == client_id && grant.user_id == user_id {
            grant.current_refresh = None;
        }
    }
    let scopes: Vec<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
    let grant = state
        .fitbit
        .new_grant(client_id, user_id, scopes.clone(), true);
    let lifetime = state.config.fitbit_access_lifetime;
    let (_, access_token, refresh_token) = issue_pair(state, grant, lifetime);
    crate::IssuedTokens {
        access_token,
        refresh_token: Some(refresh_token),
        expires_in: lifetime.as_secs(),
        user_id: user_id.to_owned(),
        scopes,
    }
}
