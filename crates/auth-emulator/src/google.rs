//! The Google OAuth 2.0 server that guards the Google Health API (docs/providers-facts.md
//! section 3): consent page with the offline and `prompt=consent` rules, token
//! endpoint whose refresh tokens do not rotate, tokeninfo, revocation and the
//! discovery document. Errors follow RFC 6749.
//!
//! Everything here runs under the state lock and must never block or await.

use http::StatusCode;
use serde::Serialize;
use serde_json::json;
use url::Url;

use crate::client_auth::{self, Client, Rules};
use crate::clock::{epoch_seconds, seconds_until};
use crate::endpoint::Endpoint;
use crate::error_body;
use crate::fitbit::grant_scopes;
use crate::grants::{Code, GrantId};
use crate::params::Params;
use crate::pkce;
use crate::reply::Reply;
use crate::scopes;
use crate::state::{Consent, Request, State};
use crate::token;

/// Handles one request to a Google endpoint (faults are dealt with before).
pub(crate) fn handle(state: &mut State, endpoint: Endpoint, req: &Request) -> Reply {
    match endpoint {
        Endpoint::GoogleAuthorize => authorize(state, req),
        Endpoint::GoogleToken => token_endpoint(state, req),
        Endpoint::GoogleRevoke => revoke(state, req),
        Endpoint::GoogleTokeninfo => tokeninfo(state, req),
        Endpoint::GoogleHealthIdentity => crate::resource::google_identity(state, req),
        Endpoint::GoogleDeviceCode => crate::device::device_code(state, req),
        Endpoint::GoogleDevicePage => crate::device::device_page(state, req),
        _ => discovery(state),
    }
}

// ---- authorize ----

fn error_page(status: StatusCode, error: &str, detail: &str) -> Reply {
    Reply::html_page(
        status,
        "Access blocked: this app's request is invalid",
        &[
            &format!("Error {}: {error}", status.as_u16()),
            detail,
            "Request details: the request was rejected by the authorization server; no redirect was made.",
        ],
    )
}

fn bad_request_page(detail: &str) -> Reply {
    error_page(StatusCode::BAD_REQUEST, "invalid_request", detail)
}

fn authorize(state: &mut State, req: &Request) -> Reply {
    let params = match req.query_params() {
        Ok(p) => p,
        Err(name) => return bad_request_page(&format!("Parameter is repeated: {name}")),
    };
    let Some(client_id) = params.get("client_id") else {
        return bad_request_page("Missing required parameter: client_id");
    };
    let Some(client) = state.config.google_clients.get(client_id).cloned() else {
        return error_page(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "The OAuth client was not found.",
        );
    };
    let Some(redirect_uri) = params.get("redirect_uri") else {
        return bad_request_page("Missing required parameter: redirect_uri");
    };
    if !client.has_redirect_uri(redirect_uri) {
        return error_page(
            StatusCode::BAD_REQUEST,
            "redirect_uri_mismatch",
            "The redirect URI in the request does not match the ones authorized for the OAuth client.",
        );
    }
    match params.get("response_type") {
        Some("code") => {}
        None => return bad_request_page("Required parameter is missing: response_type"),
        Some(_) => {
            return error_page(
                StatusCode::BAD_REQUEST,
                "unsupported_response_type",
                "Only response_type=code is supported.",
            );
        }
    }
    let Some(scope) = params.get("scope") else {
        return bad_request_page("Missing required parameter: scope");
    };
    let requested = scopes::split(scope);
    if requested.is_empty() {
        return bad_request_page("Missing required parameter: scope");
    }
    let invalid: Vec<&String> = requested.iter().filter(|s| !scopes::is_google(s)).collect();
    if !invalid.is_empty() {
        let list: Vec<&str> = invalid.iter().map(|s| s.as_str()).collect();
        return error_page(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            &format!(
                "Some requested scopes were invalid. {{invalid=[{}]}}",
                list.join(", ")
            ),
        );
    }
    let offline = match params.get("access_type") {
        None | Some("online") => false,
        Some("offline") => true,
        Some(other) => return bad_request_page(&format!("Invalid access_type: {other}")),
    };
    let prompt: Vec<&str> = params
        .get("prompt")
        .map(|p| p.split(' ').filter(|s| !s.is_empty()).collect())
        .unwrap_or_default();
    if prompt
        .iter()
        .any(|p| !matches!(*p, "none" | "consent" | "select_account"))
        || (prompt.contains(&"none") && prompt.len() > 1)
    {
        return bad_request_page("Invalid parameter value for prompt.");
    }
    let challenge = match pkce::parse_challenge(
        params.get("code_challenge"),
        params.get("code_challenge_method"),
    ) {
        Ok(c) => c,
        Err(e) => return bad_request_page(e.describe()),
    };
    let state_param = params.raw("state").map(str::to_owned);
    let (user_id, granted) = match state.next_consent() {
        Consent::Denied => {
            let mut pairs = vec![("error", "access_denied".to_owned())];
            if let Some(s) = state_param {
                pairs.push(("state", s));
            }
            return Reply::redirect(&redirect_url(redirect_uri, &pairs));
        }
        Consent::Granted { user_id, only } => (user_id, grant_scopes(requested, only)),
    };
    let key = (client.id.clone(), user_id.clone());
    // Google returns a refresh token on the first offline consent only,
    // unless the app forces the consent screen again.
    let issue_refresh =
        offline && (!state.google_offline_consents.contains(&key) || prompt.contains(&"consent"));
    if offline {
        state.google_offline_consents.insert(key);
    }
    let code = token::google_code();
    let scope_text = granted.join(" ");
    state.google.codes.insert(
        code.clone(),
        Code {
            client_id: client.id.clone(),
            user_id,
            scopes: granted,
            redirect_uri: Some(redirect_uri.to_owned()),
            challenge,
            issued_at: state.clock.now(),
            offline,
            issue_refresh,
        },
    );
    let mut pairs = Vec::new();
    if let Some(s) = state_param {
        pairs.push(("state", s));
    }
    pairs.push(("iss", state.config.issuer.clone()));
    pairs.push(("code", code));
    pairs.push(("scope", scope_text));
    Reply::redirect(&redirect_url(redirect_uri, &pairs))
}

fn redirect_url(target: &str, pairs: &[(&str, String)]) -> String {
    match Url::parse(target) {
        Ok(mut url) => {
            {
                let mut query = url.query_pairs_mut();
                for (k, v) in pairs {
                    query.append_pair(k, v);
                }
            }
            url.into()
        }
        // Registered URIs are checked when the emulator starts.
        Err(_) => target.to_owned(),
    }
}

// ---- token ----

#[derive(Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    expires_in: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token_expires_in: Option<u64>,
    scope: String,
    token_type: &'static str,
}

pub(crate) fn bad_request(error: &str, description: &str) -> Reply {
    error_body::oauth(StatusCode::BAD_REQUEST, error, description)
}

fn expired_or_revoked() -> Reply {
    bad_request("invalid_grant", "Token has been expired or revoked.")
}

fn token_endpoint(state: &mut State, req: &Request) -> Reply {
    let params = match req.form_params() {
        Ok(p) => p,
        Err(message) => return bad_request("invalid_request", &message),
    };
    let client = match client_auth::authenticate(
        &state.config.google_clients,
        req.authorization(),
        &params,
        Rules::Google,
    ) {
        Ok(c) => c.clone(),
        Err(_) => {
            state.counters.client_auth_failures += 1;
            return error_body::oauth(StatusCode::UNAUTHORIZED, "invalid_client", "Unauthorized");
        }
    };
    match params.get("grant_type") {
        Some("authorization_code") => exchange_code(state, &client, &params),
        Some("refresh_token") => refresh(state, &client, &params),
        Some(crate::device::GRANT_TYPE) => crate::device::poll(state, &client, &params),
        other => bad_request(
            "unsupported_grant_type",
            &format!("Invalid grant_type: {}", other.unwrap_or("")),
        ),
    }
}

fn exchange_code(state: &mut State, client: &Client, params: &Params) -> Reply {
    let Some(code) = params.get("code") else {
        return bad_request("invalid_request", "Missing required parameter: code");
    };
    let now = state.clock.now();
    let record = match state.google.codes.get(code) {
        Some(c) if c.client_id == client.id => c.clone(),
        _ => return bad_request("invalid_grant", "Malformed auth code."),
    };
    // Any exchange attempt by its own client uses the code up.
    state.google.codes.remove(code);
    if record.expired(now) {
        return bad_request("invalid_grant", "Bad Request");
    }
    match params.get("redirect_uri") {
        None => return bad_request("invalid_request", "Missing parameter: redirect_uri"),
        Some(given) if Some(given) != record.redirect_uri.as_deref() => {
            return bad_request("redirect_uri_mismatch", "Bad Request");
        }
        Some(_) => {}
    }
    if let Some(challenge) = &record.challenge {
        match params.get("code_verifier") {
            None => {
                state.counters.pkce_failures += 1;
                return bad_request("invalid_grant", "Missing code verifier.");
            }
            Some(v) if !pkce::verify(challenge, v) => {
                state.counters.pkce_failures += 1;
                return bad_request("invalid_grant", "Invalid code verifier.");
            }
            Some(_) => {}
        }
    }
    let grant = state
        .google
        .new_grant(&client.id, &record.user_id, record.scopes, record.offline);
    let tokens = issue(state, grant, record.issue_refresh);
    Reply::json(
        StatusCode::OK,
        &TokenResponse {
            access_token: &tokens.access_token,
            expires_in: tokens.expires_in,
            refresh_token: tokens.refresh_token.as_deref(),
            refresh_token_expires_in: tokens.refresh_expires_in,
            scope: tokens.scopes.join(" "),
            token_type: "Bearer",
        },
    )
}

/// A new grant's token response, as for a code exchange (the device flow
/// ends with one).
pub(crate) fn grant_reply(state: &mut State, grant: GrantId, with_refresh: bool) -> Reply {
    let tokens = issue(state, grant, with_refresh);
    Reply::json(
        StatusCode::OK,
        &TokenResponse {
            access_token: &tokens.access_token,
            expires_in: tokens.expires_in,
            refresh_token: tokens.refresh_token.as_deref(),
            refresh_token_expires_in: tokens.refresh_expires_in,
            scope: tokens.scopes.join(" "),
            token_type: "Bearer",
        },
    )
}

/// Tokens issued by one code exchange or seeding.
struct Issued {
    access_token: String,
    expires_in: u64,
    refresh_token: Option<String>,
    refresh_expires_in: Option<u64>,
    scopes: Vec<String>,
}

fn issue(state: &mut State, grant: GrantId, with_refresh: bool) -> Issued {
    let now = state.clock.now();
    let lifetime = state.config.google_access_lifetime;
    let access_token = token::google_access();
    state
        .google
        .add_access(grant, access_token.clone(), now, lifetime);
    let mut refresh_token = None;
    let mut refresh_expires_in = None;
    if with_refresh {
        let refresh = token::google_refresh();
        state.google.add_refresh(grant, refresh.clone());
        if let Some(limit) = state.config.google_refresh_lifetime {
            if let Some(g) = state.google.grants.get_mut(&grant) {
                g.refresh_expires_at = Some(now + limit);
            }
            refresh_expires_in = Some(limit.as_secs());
        }
        refresh_token = Some(refresh);
    }
    Issued {
        access_token,
        expires_in: lifetime.as_secs(),
        refresh_token,
        refresh_expires_in,
        scopes: state.google.grants[&grant].scopes.clone(),
    }
}

fn refresh(state: &mut State, client: &Client, params: &Params) -> Reply {
    let Some(presented) = params.get("refresh_token") else {
        return bad_request(
            "invalid_request",
            "Missing required parameter: refresh_token",
        );
    };
    let now = state.clock.now();
    let Some(grant_id) = state.google.refresh.get(presented).map(|r| r.grant) else {
        return expired_or_revoked();
    };
    let Some(grant) = state.google.grants.get(&grant_id).cloned() else {
        return expired_or_revoked();
    };
    if grant.revoked || grant.refresh_expires_at.is_some_and(|t| now >= t) {
        return expired_or_revoked();
    }
    if grant.client_id != client.id {
        return error_body::oauth(
            StatusCode::UNAUTHORIZED,
            "unauthorized_client",
            "Unauthorized",
        );
    }
    // Google refresh tokens do not rotate: the answer has no refresh_token and
    // the presented one stays valid.
    let lifetime = state.config.google_access_lifetime;
    let access_token = token::google_access();
    state
        .google
        .add_access(grant_id, access_token.clone(), now, lifetime);
    Reply::json(
        StatusCode::OK,
        &TokenResponse {
            access_token: &access_token,
            expires_in: lifetime.as_secs(),
            refresh_token: None,
            refresh_token_expires_in: None,
            scope: grant.scopes.join(" "),
            token_type: "Bearer",
        },
    )
}

// ---- tokeninfo ----

fn request_params(req: &Request) -> Result<Params, String> {
    let query = req
        .query_params()
        .map_err(|name| format!("Parameter is repeated: {name}"))?;
    if req.method == http::Method::POST {
        Ok(req.form_params()?.merged_with(query))
    } else {
        Ok(query)
    }
}

fn tokeninfo(state: &mut State, req: &Request) -> Reply {
    let invalid = || bad_request("invalid_token", "Invalid Value");
    let Ok(params) = request_params(req) else {
        return invalid();
    };
    let Some(token) = params.get("access_token") else {
        return invalid();
    };
    let now = state.clock.now();
    let Some((access, grant)) = state.google.active_access(token, now) else {
        return invalid();
    };
    Reply::json(
        StatusCode::OK,
        &json!({
            "azp": grant.client_id,
            "aud": grant.client_id,
            "sub": grant.user_id,
            "scope": grant.scopes.join(" "),
            "exp": epoch_seconds(access.expires_at).to_string(),
            "expires_in": seconds_until(now, access.expires_at).to_string(),
            "access_type": if grant.offline { "offline" } else { "online" },
        }),
    )
}

// ---- revoke ----

fn revoke(state: &mut State, req: &Request) -> Reply {
    let params = match request_params(req) {
        Ok(p) => p,
        Err(message) => return bad_request("invalid_request", &message),
    };
    let Some(token) = params.get("token") else {
        return bad_request("invalid_request", "Missing required parameter: token");
    };
    let now = state.clock.now();
    let live_grant = if state.google.access.contains_key(token) {
        state.google.active_access(token, now).map(|(a, _)| a.grant)
    } else {
        state
            .google
            .refresh
            .get(token)
            .map(|r| r.grant)
            .filter(|g| {
                state
                    .google
                    .grants
                    .get(g)
                    .is_some_and(|g| !g.revoked && g.refresh_expires_at.is_none_or(|t| now < t))
            })
    };
    let Some(grant) = live_grant
        .and_then(|g| state.google.grants.get(&g))
        .cloned()
    else {
        return bad_request("invalid_token", "Token expired or revoked");
    };
    state.google.revoke_user(&grant.client_id, &grant.user_id);
    state
        .google_offline_consents
        .remove(&(grant.client_id, grant.user_id));
    Reply::json(StatusCode::OK, &json!({}))
}

// ---- discovery ----

fn discovery(state: &State) -> Reply {
    let base = &state.config.base_url;
    let at = |e: Endpoint| {
        base.join(e.path().trim_start_matches('/'))
            .map(String::from)
            .unwrap_or_default()
    };
    Reply::json(
        StatusCode::OK,
        &json!({
            "issuer": state.config.issuer,
            "authorization_endpoint": at(Endpoint::GoogleAuthorize),
            "token_endpoint": at(Endpoint::GoogleToken),
            "revocation_endpoint": at(Endpoint::GoogleRevoke),
            "tokeninfo_endpoint": at(Endpoint::GoogleTokeninfo),
            "device_authorization_endpoint": at(Endpoint::GoogleDeviceCode),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": [
                "authorization_code",
                "refresh_token",
                crate::device::GRANT_TYPE,
            ],
            "subject_types_supported": ["public"],
            "scopes_supported": scopes::google_all(),
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "code_challenge_methods_supported": ["S256", "plain"],
            "authorization_response_iss_parameter_supported": true,
        }),
    )
}

// ---- seeding ----

/// Issues an offline grant (with a refresh token) as if `user_id` had
/// consented to `scopes` for `client_id`.
pub(crate) fn seed(
    state: &mut State,
    client_id: &str,
    user_id: &str,
    scopes: &[&str],
) -> crate::IssuedTokens {
    assert!(
        state.config.google_clients.contains_key(client_id),
        "seed_google_grant: unknown Google client {client_id:?}; register it with EmulatorBuilder::google_client"
    );
    if let Some(bad) = scopes.iter().find(|s| !scopes::is_google(s)) {
        panic!("seed_google_grant: {bad:?} is not a Google Health or identity scope");
    }
    let scopes: Vec<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
    let grant = state.google.new_grant(client_id, user_id, scopes, true);
    state
        .google_offline_consents
        .insert((client_id.to_owned(), user_id.to_owned()));
    let issued = issue(state, grant, true);
    crate::IssuedTokens {
        access_token: issued.access_token,
        refresh_token: issued.refresh_token,
        expires_in: issued.expires_in,
        user_id: user_id.to_owned(),
        scopes: issued.scopes,
    }
}
