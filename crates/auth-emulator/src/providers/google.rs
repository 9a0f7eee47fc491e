//! The Google OAuth 2.0 server that guards the Google Health API (docs/providers-facts.md
//! section 3): consent page with the offline and `prompt=consent` rules, token
//! endpoint whose refresh tokens do not rotate, tokeninfo, revocation and the
//! discovery document. Errors follow RFC 6749.
//!
//! Everything here runs under the server's lock and must never block or await.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

use http::StatusCode;
use serde::Serialize;
use serde_json::json;
use url::Url;

use crate::oauth::client_auth::{self, Client, Rules};
use crate::oauth::clock::{epoch_seconds, seconds_until};
use crate::oauth::consent::{Consent, grant_scopes};
use crate::oauth::context::{Cx, Event};
use crate::oauth::endpoint::Endpoint;
use crate::oauth::error_body::{self, oauth_bad_request as bad_request};
use crate::oauth::grants::{Authority, Code, GrantId, IssuedTokens, Seed};
use crate::oauth::params::Params;
use crate::oauth::pkce;
use crate::oauth::reply::Reply;
use crate::oauth::request::Request;
use crate::oauth::scopes;
use crate::oauth::token;
use crate::providers::device::{self, DeviceLogins};
use crate::providers::resource::{self, Identities};

/// The settings of the Google server, fixed at start.
#[derive(Clone, Debug)]
pub(crate) struct GoogleSettings {
    pub(crate) clients: HashMap<String, Client>,
    pub(crate) access_lifetime: Duration,
    /// Refresh tokens expire this long after issue ("Testing" apps).
    pub(crate) refresh_lifetime: Option<Duration>,
    /// The base URL, `http://127.0.0.1:PORT/`.
    pub(crate) base_url: Url,
    /// The issuer: the base URL without its trailing slash.
    pub(crate) issuer: String,
    /// The polling interval of device logins (5 s at Google).
    pub(crate) device_interval: Duration,
}

/// The Google server: its settings and records, the offline consents it
/// remembers, its device logins and the identities its Health API gives.
#[derive(Debug)]
pub(crate) struct Google {
    settings: GoogleSettings,
    records: Authority,
    /// (client, user) pairs that already granted offline access.
    offline_consents: HashSet<(String, String)>,
    devices: DeviceLogins,
    identities: Identities,
}

impl Google {
    /// A server with no grants yet.
    pub(crate) fn new(settings: GoogleSettings) -> Self {
        Self {
            settings,
            records: Authority::default(),
            offline_consents: HashSet::new(),
            devices: DeviceLogins::default(),
            identities: Identities::default(),
        }
    }

    /// Forgets one access token (its grant and refresh token live on).
    pub(crate) fn invalidate_access(&mut self, token: &str) {
        self.records.access.remove(token);
    }

    /// Sets the legacy Fitbit id the identity endpoint gives for a user.
    pub(crate) fn set_legacy_user_id(&mut self, google_user: &str, legacy: Option<&str>) {
        self.identities.set_legacy_user_id(google_user, legacy);
    }

    /// Handles one request to a Google endpoint (faults are dealt with
    /// before).
    pub(crate) fn handle(&mut self, endpoint: Endpoint, req: &Request, cx: &mut Cx<'_>) -> Reply {
        match endpoint {
            Endpoint::GoogleAuthorize => self.authorize(req, cx),
            Endpoint::GoogleToken => self.token_endpoint(req, cx),
            Endpoint::GoogleRevoke => self.revoke(req, cx.now),
            Endpoint::GoogleTokeninfo => self.tokeninfo(req, cx.now),
            Endpoint::GoogleHealthIdentity => {
                resource::google_identity(&self.records, &self.identities, req, cx)
            }
            Endpoint::GoogleDeviceCode => self.device_code(req, cx),
            Endpoint::GoogleDevicePage => self.devices.page(req, cx),
            _ => self.discovery(),
        }
    }

    /// Authenticates the client of a token or device request.
    fn authenticate(&self, req: &Request, params: &Params) -> Option<Client> {
        client_auth::authenticate(
            &self.settings.clients,
            req.authorization(),
            params,
            Rules::Google,
        )
        .ok()
        .cloned()
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

impl Google {
    fn authorize(&mut self, req: &Request, cx: &mut Cx<'_>) -> Reply {
        let params = match req.query_params() {
            Ok(p) => p,
            Err(name) => return bad_request_page(&format!("Parameter is repeated: {name}")),
        };
        let Some(client_id) = params.get("client_id") else {
            return bad_request_page("Missing required parameter: client_id");
        };
        let Some(client) = self.settings.clients.get(client_id).cloned() else {
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
        let (user_id, granted) = match cx.consents.next() {
            Consent::Denied => {
                let mut pairs = vec![("error", "access_denied".to_owned())];
                if let Some(s) = state_param {
                    pairs.push(("state", s));
                }
                return Reply::redirect_with(redirect_uri, &pairs, None);
            }
            Consent::Granted { user_id, only } => (user_id, grant_scopes(requested, only)),
        };
        let key = (client.id.clone(), user_id.clone());
        // Google returns a refresh token on the first offline consent only,
        // unless the app forces the consent screen again.
        let issue_refresh =
            offline && (!self.offline_consents.contains(&key) || prompt.contains(&"consent"));
        if offline {
            self.offline_consents.insert(key);
        }
        let code = token::google_code();
        let scope_text = granted.join(" ");
        self.records.codes.insert(
            code.clone(),
            Code {
                client_id: client.id.clone(),
                user_id,
                scopes: granted,
                redirect_uri: Some(redirect_uri.to_owned()),
                challenge,
                issued_at: cx.now,
                offline,
                issue_refresh,
            },
        );
        let mut pairs = Vec::new();
        if let Some(s) = state_param {
            pairs.push(("state", s));
        }
        pairs.push(("iss", self.settings.issuer.clone()));
        pairs.push(("code", code));
        pairs.push(("scope", scope_text));
        Reply::redirect_with(redirect_uri, &pairs, None)
    }
}

// ---- token, tokeninfo, revoke, device code, discovery, seeding ----

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

fn expired_or_revoked() -> Reply {
    bad_request("invalid_grant", "Token has been expired or revoked.")
}

impl Google {
    fn token_endpoint(&mut self, req: &Request, cx: &mut Cx<'_>) -> Reply {
        let params = match req.form_params() {
            Ok(p) => p,
            Err(message) => return bad_request("invalid_request", &message),
        };
        let Some(client) = self.authenticate(req, &params) else {
            cx.report(Event::ClientAuthFailure);
            return error_body::oauth(StatusCode::UNAUTHORIZED, "invalid_client", "Unauthorized");
        };
        match params.get("grant_type") {
            Some("authorization_code") => self.exchange_code(&client, &params, cx),
            Some("refresh_token") => self.refresh(&client, &params, cx.now),
            Some(device::GRANT_TYPE) => {
                let interval = self.settings.device_interval;
                match self.devices.poll(&client.id, &params, cx.now, interval) {
                    Ok(approved) => {
                        let grant = self.records.new_grant(
                            &client.id,
                            &approved.user_id,
                            approved.scopes,
                            true,
                        );
                        self.grant_reply(grant, true, cx.now)
                    }
                    Err(reply) => reply,
                }
            }
            other => bad_request(
                "unsupported_grant_type",
                &format!("Invalid grant_type: {}", other.unwrap_or("")),
            ),
        }
    }

    fn exchange_code(&mut self, client: &Client, params: &Params, cx: &mut Cx<'_>) -> Reply {
        let Some(code) = params.get("code") else {
            return bad_request("invalid_request", "Missing required parameter: code");
        };
        let record = match self.records.codes.get(code) {
            Some(c) if c.client_id == client.id => c.clone(),
            _ => return bad_request("invalid_grant", "Malformed auth code."),
        };
        // Any exchange attempt by its own client uses the code up.
        self.records.codes.remove(code);
        if record.expired(cx.now) {
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
                    cx.report(Event::PkceFailure);
                    return bad_request("invalid_grant", "Missing code verifier.");
                }
                Some(v) if !pkce::verify(challenge, v) => {
                    cx.report(Event::PkceFailure);
                    return bad_request("invalid_grant", "Invalid code verifier.");
                }
                Some(_) => {}
            }
        }
        let grant =
            self.records
                .new_grant(&client.id, &record.user_id, record.scopes, record.offline);
        self.grant_reply(grant, record.issue_refresh, cx.now)
    }

    /// A new grant's token response (a code exchange, or the end of a device
    /// login).
    fn grant_reply(&mut self, grant: GrantId, with_refresh: bool, now: SystemTime) -> Reply {
        let tokens = self.issue(grant, with_refresh, now);
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

    fn issue(&mut self, grant: GrantId, with_refresh: bool, now: SystemTime) -> Issued {
        let lifetime = self.settings.access_lifetime;
        let access_token = token::google_access();
        self.records
            .add_access(grant, access_token.clone(), now, lifetime);
        let mut refresh_token = None;
        let mut refresh_expires_in = None;
        if with_refresh {
            let refresh = token::google_refresh();
            self.records.add_refresh(grant, refresh.clone());
            if let Some(limit) = self.settings.refresh_lifetime {
                if let Some(g) = self.records.grants.get_mut(&grant) {
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
            scopes: self.records.grants[&grant].scopes.clone(),
        }
    }

    fn refresh(&mut self, client: &Client, params: &Params, now: SystemTime) -> Reply {
        let Some(presented) = params.get("refresh_token") else {
            return bad_request(
                "invalid_request",
                "Missing required parameter: refresh_token",
            );
        };
        let Some(grant_id) = self.records.refresh.get(presented).map(|r| r.grant) else {
            return expired_or_revoked();
        };
        let Some(grant) = self.records.grants.get(&grant_id).cloned() else {
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
        // Google refresh tokens do not rotate: the answer has no refresh_token
        // and the presented one stays valid.
        let lifetime = self.settings.access_lifetime;
        let access_token = token::google_access();
        self.records
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

    fn tokeninfo(&self, req: &Request, now: SystemTime) -> Reply {
        let invalid = || bad_request("invalid_token", "Invalid Value");
        let Ok(params) = req.query_and_form_params() else {
            return invalid();
        };
        let Some(token) = params.get("access_token") else {
            return invalid();
        };
        let Some((access, grant)) = self.records.active_access(token, now) else {
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

    fn revoke(&mut self, req: &Request, now: SystemTime) -> Reply {
        let params = match req.query_and_form_params() {
            Ok(p) => p,
            Err(message) => return bad_request("invalid_request", &message),
        };
        let Some(token) = params.get("token") else {
            return bad_request("invalid_request", "Missing required parameter: token");
        };
        let records = &self.records;
        let live_grant = if records.access.contains_key(token) {
            records.active_access(token, now).map(|(a, _)| a.grant)
        } else {
            records.refresh.get(token).map(|r| r.grant).filter(|g| {
                records
                    .grants
                    .get(g)
                    .is_some_and(|g| !g.revoked && g.refresh_expires_at.is_none_or(|t| now < t))
            })
        };
        let Some(grant) = live_grant.and_then(|g| records.grants.get(&g)).cloned() else {
            return bad_request("invalid_token", "Token expired or revoked");
        };
        self.records.revoke_user(&grant.client_id, &grant.user_id);
        self.offline_consents
            .remove(&(grant.client_id, grant.user_id));
        Reply::json(StatusCode::OK, &json!({}))
    }

    /// `POST /device/code`: `client_id` (and the secret, by body or Basic)
    /// and `scope`.
    fn device_code(&mut self, req: &Request, cx: &mut Cx<'_>) -> Reply {
        let params = match req.form_params() {
            Ok(p) => p,
            Err(message) => return bad_request("invalid_request", &message),
        };
        let Some(client) = self.authenticate(req, &params) else {
            cx.report(Event::ClientAuthFailure);
            return error_body::oauth(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "The OAuth client was not found.",
            );
        };
        let verification_url = self
            .settings
            .base_url
            .join("device")
            .map(String::from)
            .unwrap_or_default();
        let interval = self.settings.device_interval;
        self.devices
            .start(&client.id, &params, cx.now, interval, verification_url)
    }

    fn discovery(&self) -> Reply {
        let base = &self.settings.base_url;
        let at = |e: Endpoint| {
            base.join(e.path().trim_start_matches('/'))
                .map(String::from)
                .unwrap_or_default()
        };
        Reply::json(
            StatusCode::OK,
            &json!({
                "issuer": self.settings.issuer,
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
                    device::GRANT_TYPE,
                ],
                "subject_types_supported": ["public"],
                "scopes_supported": scopes::google_all(),
                "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
                "code_challenge_methods_supported": ["S256", "plain"],
                "authorization_response_iss_parameter_supported": true,
            }),
        )
    }

    /// Issues an offline grant (with a refresh token) as if `user_id` had
    /// consented to `scopes` for `client_id`.
    pub(crate) fn seed(&mut self, seed: &Seed<'_>, now: SystemTime) -> IssuedTokens {
        assert!(
            self.settings.clients.contains_key(seed.client_id),
            "seed_google_grant: unknown Google client {:?}; register it with EmulatorBuilder::google_client",
            seed.client_id
        );
        if let Some(bad) = seed.scopes.iter().find(|s| !scopes::is_google(s)) {
            panic!("seed_google_grant: {bad:?} is not a Google Health or identity scope");
        }
        let scopes: Vec<String> = seed.scopes.iter().map(|s| (*s).to_owned()).collect();
        let grant = self
            .records
            .new_grant(seed.client_id, seed.user_id, scopes, true);
        self.offline_consents
            .insert((seed.client_id.to_owned(), seed.user_id.to_owned()));
        let issued = self.issue(grant, true, now);
        IssuedTokens {
            access_token: issued.access_token,
            refresh_token: issued.refresh_token,
            expires_in: issued.expires_in,
            user_id: seed.user_id.to_owned(),
            scopes: issued.scopes,
        }
    }
}

/// Tokens issued by one code exchange or seeding.
struct Issued {
    access_token: String,
    expires_in: u64,
    refresh_token: Option<String>,
    refresh_expires_in: Option<u64>,
    scopes: Vec<String>,
}
