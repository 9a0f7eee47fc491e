//! One catalogue profile's behaviour and state ([`Profile`]): the emulator
//! acting as an entry of the provider catalogue ([`auth_catalogue`]),
//! enforcing what the entry says (client authentication, PKCE, scopes,
//! rotation and replay window, response quirks, error bodies). The public
//! `profile` module lists the rules; the server that serves profiles is
//! `server::profiles`.
//!
//! Consent is given at once: the authorize endpoint redirects straight back
//! with a code for a new user.
//!
//! Time is the emulator's clock, read once per request by the server and
//! passed in as `now`: token expiry and replay windows follow
//! `ProfileEmulator::advance_time`, never the machine's clock directly.

mod grants;
mod shape;

use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

use auth_catalogue::{AccountFrom, ClientAuthMethod, IntrospectStyle, Pkce, ProviderSpec};
use http::{Method, StatusCode};
use serde_json::{Value, json};
use url::Url;

use crate::oauth::client_auth::parse_basic;
use crate::oauth::params::Params;
use crate::oauth::pkce;
use crate::oauth::reply::Reply;
use crate::oauth::request::Request;
use crate::oauth::token;
use grants::{Grants, PendingCode, RefreshOutcome};
use shape::{Issued, bad_token_reply, error_reply, token_reply};

/// The device code grant type (RFC 8628).
const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// Per-profile counts of what clients asked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProfileCounters {
    /// Code exchanges answered with tokens.
    pub code_exchanges: u64,
    /// Refreshes answered with tokens.
    pub refreshes: u64,
    /// Refreshes refused because the token was dead.
    pub dead_refreshes: u64,
    /// Requests refused for bad client authentication.
    pub bad_client: u64,
    /// Revocations.
    pub revocations: u64,
}

/// The client id registered with the profile `name`.
pub(crate) fn client_id(name: &str) -> String {
    format!("{name}-emulated-client")
}

/// The client secret registered with every profile.
pub(crate) fn client_secret(_name: &str) -> String {
    PROFILE_CLIENT_SECRET.to_owned()
}

/// The client secret registered with every profile: a public demo value,
/// not a credential.
pub const PROFILE_CLIENT_SECRET: &str = "emulated-client-secret";

/// The entry with its placeholders filled and its URLs pointing at `base`.
fn served_spec(base: &Url, name: &str, spec: &ProviderSpec) -> ProviderSpec {
    let values: BTreeMap<String, String> = spec
        .endpoints
        .placeholders
        .iter()
        .map(|p| (p.clone(), format!("{p}.emulated")))
        .collect();
    let mut spec = spec.instantiate(&values).unwrap_or_else(|_| spec.clone());
    let root = format!("{base}{name}/");
    let at = |path: &str| format!("{root}{path}");
    let e = &mut spec.endpoints;
    e.authorize = at("authorize");
    e.token = at("token");
    e.revoke = e.revoke.as_ref().map(|_| at("revoke"));
    e.introspect = e.introspect.as_ref().map(|_| at("introspect"));
    e.device_authorization = e.device_authorization.as_ref().map(|_| at("device"));
    e.userinfo = e.userinfo.as_ref().map(|_| at("userinfo"));
    e.issuer = e
        .issuer
        .as_ref()
        .map(|_| root.trim_end_matches('/').to_owned());
    e.api_base_urls = vec![at("api/")];
    if let Some(resource) = &e.resource {
        // Placeholders in a template's resource path are not filled in the
        // served copy; the emulator answers any path under api/.
        e.resource = Some(resource.replace(['{', '}'], ""));
    }
    spec
}

/// One served profile: its entry (as served), grants, device logins and
/// counters.
pub(crate) struct Profile {
    name: String,
    grants: Grants,
    counters: ProfileCounters,
    devices: HashMap<String, Vec<String>>,
}

impl Profile {
    /// The profile `name` playing `spec`, served under `base`.
    pub(crate) fn new(name: String, base: &Url, spec: &ProviderSpec) -> Self {
        let served = served_spec(base, &name, spec);
        Self {
            name,
            grants: Grants::new(served),
            counters: ProfileCounters::default(),
            devices: HashMap::new(),
        }
    }

    /// The entry as served: every endpoint points at the emulator.
    pub(crate) fn spec(&self) -> &ProviderSpec {
        &self.grants.spec
    }

    /// What clients asked so far.
    pub(crate) fn counters(&self) -> ProfileCounters {
        self.counters
    }

    /// Ends the grant a token belongs to.
    pub(crate) fn revoke_grant_of(&mut self, token: &str) {
        self.grants.revoke(token);
    }

    /// Answers one request to `endpoint`, the path under the profile's
    /// root, at `now` on the emulator's clock.
    pub(crate) fn handle(&mut self, endpoint: &str, req: &Request, now: SystemTime) -> Reply {
        handle(self, endpoint, req, now)
    }
}

/// The query and body parameters together.
fn params(req: &Request) -> Result<Params, Reply> {
    let query = Params::parse(&req.query);
    let body = Params::parse(&req.body);
    match (query, body) {
        (Ok(q), Ok(b)) => Ok(b.merged_with(q)),
        (Err(name), _) | (_, Err(name)) => Err(Reply::json(
            StatusCode::BAD_REQUEST,
            &json!({"error": "invalid_request", "error_description": format!("{name} was sent twice")}),
        )),
    }
}

fn header(req: &Request, name: http::header::HeaderName) -> Option<&str> {
    req.headers.get(name).and_then(|v| v.to_str().ok())
}

fn handle(p: &mut Profile, endpoint: &str, req: &Request, now: SystemTime) -> Reply {
    let has = |url: &Option<String>| url.is_some();
    let e = &p.grants.spec.endpoints;
    match (endpoint, &req.method) {
        ("authorize", &Method::GET) => authorize(p, req),
        ("token", &Method::POST) => token(p, req, now),
        ("revoke", &Method::POST) if has(&e.revoke) => revoke(p, req),
        ("introspect", &Method::POST) if has(&e.introspect) => introspect(p, req, now),
        ("device", &Method::POST) if has(&e.device_authorization) => device(p, req),
        ("userinfo", &Method::GET) if has(&e.userinfo) => userinfo(p, req, now),
        (path, _) if path.starts_with("api/") => resource(p, req, now),
        _ => Reply::json(StatusCode::NOT_FOUND, &json!({"error": "not_found"})),
    }
}

fn bad_request(p: &Profile, description: &str) -> Reply {
    error_reply(
        &p.grants.spec,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        description,
    )
}

fn authorize(p: &mut Profile, req: &Request) -> Reply {
    let params = match params(req) {
        Ok(params) => params,
        Err(reply) => return reply,
    };
    let page = |text: &str| Reply::html_page(StatusCode::BAD_REQUEST, "Invalid request", &[text]);
    if params.get("client_id") != Some(client_id(&p.name).as_str()) {
        return page("Unknown client_id.");
    }
    let Some(redirect_uri) = params.get("redirect_uri").map(str::to_owned) else {
        return page("redirect_uri is required.");
    };
    if !Url::parse(&redirect_uri)
        .is_ok_and(|u| matches!(u.host_str(), Some("127.0.0.1" | "localhost" | "[::1]")))
    {
        return page("The emulator redirects to loopback URIs only.");
    }
    if params.get("response_type") != Some("code") {
        return page("response_type must be code.");
    }
    let spec = &p.grants.spec;
    let challenge = match pkce::parse_challenge(
        params.get("code_challenge"),
        params.get("code_challenge_method"),
    ) {
        Ok(c) => c,
        Err(e) => return page(e.describe()),
    };
    match (spec.client.pkce, &challenge) {
        (Pkce::Required, None) => return page("This provider requires PKCE (code_challenge)."),
        (Pkce::Unsupported, Some(_)) => {
            return page("This provider does not take PKCE; send no code_challenge.");
        }
        _ => {}
    }
    let separator = spec.scopes.separator.as_str();
    let raw_scope = params.get("scope").unwrap_or_default();
    if separator != " " && raw_scope.contains(' ') {
        return page("Scopes must be joined with the provider's separator.");
    }
    let scopes: Vec<String> = raw_scope
        .split(separator)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    // Without the entry's offline scopes and parameters, no refresh token.
    let offline = spec.scopes.offline.iter().all(|s| scopes.contains(s))
        && spec
            .scopes
            .authorize_params
            .iter()
            .all(|(k, v)| params.get(k) == Some(v.as_str()));
    let state = params.get("state").map(str::to_owned);
    let code = p.grants.new_code(PendingCode {
        redirect_uri: redirect_uri.clone(),
        challenge,
        scopes,
        offline,
        state: state.clone(),
    });
    let mut location = Url::parse(&redirect_uri).expect("checked above");
    {
        let mut query = location.query_pairs_mut();
        query.append_pair("code", &code);
        if let Some(state) = &state {
            query.append_pair("state", state);
        }
    }
    Reply::redirect(location.as_str())
}

/// Checks client authentication by the entry's method.
fn authenticate(p: &mut Profile, req: &Request, params: &Params) -> Result<(), Reply> {
    let basic = header(req, http::header::AUTHORIZATION).and_then(parse_basic);
    let id = client_id(&p.name);
    let secret = client_secret(&p.name);
    let ok = match p.grants.spec.client.auth {
        ClientAuthMethod::ClientSecretBasic => {
            basic == Some((id.clone(), secret.clone())) && !params.has("client_secret")
        }
        ClientAuthMethod::ClientSecretPost => {
            basic.is_none()
                && params.get("client_id") == Some(id.as_str())
                && params.get("client_secret") == Some(secret.as_str())
        }
        ClientAuthMethod::None => {
            basic.is_none()
                && params.get("client_id") == Some(id.as_str())
                && !params.has("client_secret")
        }
    };
    if ok {
        return Ok(());
    }
    p.counters.bad_client += 1;
    let code = p
        .grants
        .spec
        .errors
        .bad_client
        .first()
        .cloned()
        .unwrap_or_else(|| "invalid_client".to_owned());
    Err(error_reply(
        &p.grants.spec,
        StatusCode::UNAUTHORIZED,
        &code,
        &format!(
            "Client authentication failed; this provider takes {}.",
            p.grants.spec.client.auth.as_str()
        ),
    ))
}

fn dead_grant(p: &mut Profile) -> Reply {
    let code = p
        .grants
        .spec
        .errors
        .reauthorize
        .first()
        .cloned()
        .unwrap_or_else(|| "invalid_grant".to_owned());
    error_reply(
        &p.grants.spec,
        StatusCode::BAD_REQUEST,
        &code,
        "The grant is invalid, expired or revoked.",
    )
}

fn token(p: &mut Profile, req: &Request, now: SystemTime) -> Reply {
    let params = match params(req) {
        Ok(params) => params,
        Err(reply) => return reply,
    };
    if let Err(reply) = authenticate(p, req, &params) {
        return reply;
    }
    for (k, v) in p.grants.spec.scopes.token_params.clone() {
        if params.get(&k) != Some(v.as_str()) {
            return bad_request(p, &format!("{k}={v} is required on token requests."));
        }
    }
    if let Some(asked) = params.get("expires_in") {
        let choices = &p.grants.spec.response.expires_in_choices;
        if !asked.parse::<u64>().is_ok_and(|n| choices.contains(&n)) {
            return bad_request(p, "expires_in is not one this provider accepts.");
        }
    }
    let accept = header(req, http::header::ACCEPT)
        .unwrap_or_default()
        .to_owned();
    match params.get("grant_type") {
        Some("authorization_code") => exchange_code(p, &params, &accept, now),
        Some("refresh_token") => {
            for (k, v) in p.grants.spec.scopes.refresh_params.clone() {
                if params.get(&k) != Some(v.as_str()) {
                    return bad_request(p, &format!("{k}={v} is required on refresh requests."));
                }
            }
            let Some(presented) = params.get("refresh_token") else {
                return bad_request(p, "refresh_token is required.");
            };
            // Refreshing with a rotation's new token is a first use of its
            // pair, before the token itself is judged.
            p.grants.note_use(presented, now);
            match p.grants.refresh(presented, now) {
                RefreshOutcome::Dead => {
                    p.counters.dead_refreshes += 1;
                    dead_grant(p)
                }
                RefreshOutcome::Issued {
                    access,
                    refresh,
                    grant,
                } => {
                    p.counters.refreshes += 1;
                    respond(p, grant, &access, refresh.as_deref(), &accept, now)
                }
            }
        }
        Some(DEVICE_GRANT) if p.grants.spec.endpoints.device_authorization.is_some() => {
            let Some(scopes) = params
                .get("device_code")
                .and_then(|code| p.devices.remove(code))
            else {
                return dead_grant(p);
            };
            let (grant, access, refresh) = p.grants.start_grant(scopes, true, now);
            respond(p, grant, &access, refresh.as_deref(), &accept, now)
        }
        _ => error_reply(
            &p.grants.spec,
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant_type is not supported.",
        ),
    }
}

fn exchange_code(p: &mut Profile, params: &Params, accept: &str, now: SystemTime) -> Reply {
    let Some(pending) = params.get("code").and_then(|c| p.grants.codes.remove(c)) else {
        return dead_grant(p);
    };
    if params.get("redirect_uri") != Some(pending.redirect_uri.as_str()) {
        return dead_grant(p);
    }
    if let Some(challenge) = &pending.challenge {
        let verified = params
            .get("code_verifier")
            .is_some_and(|v| pkce::verify(challenge, v));
        if !verified {
            return dead_grant(p);
        }
    }
    if p.grants.spec.client.echo_state && params.get("state") != pending.state.as_deref() {
        return bad_request(p, "state must be sent again with the code exchange.");
    }
    let (grant, access, refresh) = p.grants.start_grant(pending.scopes, pending.offline, now);
    p.counters.code_exchanges += 1;
    respond(p, grant, &access, refresh.as_deref(), accept, now)
}

fn respond(
    p: &Profile,
    grant: u64,
    access: &str,
    refresh: Option<&str>,
    accept: &str,
    now: SystemTime,
) -> Reply {
    let spec = &p.grants.spec;
    let user = p.grants.user_of(grant);
    let scopes = p.grants.scopes_of(grant);
    let api_base = spec
        .endpoints
        .api_base_urls
        .first()
        .cloned()
        .unwrap_or_default();
    token_reply(
        spec,
        &Issued {
            access_token: access,
            refresh_token: refresh,
            expires_in: p.grants.access_lifetime.as_secs(),
            scopes: &scopes,
            user: &user,
            api_base: &api_base,
            now,
        },
        accept,
    )
}

fn revoke(p: &mut Profile, req: &Request) -> Reply {
    let params = match params(req) {
        Ok(params) => params,
        Err(reply) => return reply,
    };
    if let Err(reply) = authenticate(p, req, &params) {
        return reply;
    }
    let Some(token) = params.get("token") else {
        return bad_request(p, "token is required.");
    };
    p.grants.revoke(token);
    p.counters.revocations += 1;
    Reply::empty(StatusCode::OK)
}

fn introspect(p: &mut Profile, req: &Request, now: SystemTime) -> Reply {
    let params = match params(req) {
        Ok(params) => params,
        Err(reply) => return reply,
    };
    let style = p.grants.spec.endpoints.introspect_style;
    let token = match style {
        IntrospectStyle::Rfc7662 => {
            if let Err(reply) = authenticate(p, req, &params) {
                return reply;
            }
            params.get("token")
        }
        IntrospectStyle::GoogleTokeninfo => params.get("access_token"),
        IntrospectStyle::Bearer => {
            if !req
                .bearer()
                .is_some_and(|b| p.grants.access_is_valid(b, now))
            {
                return bad_token_reply(&p.grants.spec);
            }
            params.get("token")
        }
    }
    .unwrap_or_default()
    .to_owned();
    let separator = p.grants.spec.scopes.separator.clone();
    let active = p
        .grants
        .grant_of_access(&token, now)
        .map(|(grant, expires)| {
            let exp = expires
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            (grant.user.clone(), grant.scopes.join(&separator), exp)
        });
    match (style, active) {
        (IntrospectStyle::GoogleTokeninfo, None) => Reply::json(
            StatusCode::BAD_REQUEST,
            &json!({"error": "invalid_token", "error_description": "Invalid Value"}),
        ),
        (IntrospectStyle::GoogleTokeninfo, Some((user, scope, exp))) => Reply::json(
            StatusCode::OK,
            &json!({"aud": client_id(&p.name), "sub": user, "scope": scope, "exp": exp.to_string()}),
        ),
        (_, None) => Reply::json(StatusCode::OK, &json!({"active": false})),
        (_, Some((user, scope, exp))) => Reply::json(
            StatusCode::OK,
            &json!({"active": true, "client_id": client_id(&p.name), "sub": user, "scope": scope, "exp": exp, "token_type": "access_token"}),
        ),
    }
}

fn device(p: &mut Profile, req: &Request) -> Reply {
    let params = match params(req) {
        Ok(params) => params,
        Err(reply) => return reply,
    };
    if params.get("client_id").is_none() && header(req, http::header::AUTHORIZATION).is_none() {
        return bad_request(p, "client_id is required.");
    }
    let separator = p.grants.spec.scopes.separator.clone();
    let scopes: Vec<String> = params
        .get("scope")
        .unwrap_or_default()
        .split(separator.as_str())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let device_code = token::opaque_device_code();
    p.devices.insert(device_code.clone(), scopes);
    let page = p.grants.spec.endpoints.authorize.clone();
    Reply::json(
        StatusCode::OK,
        &json!({
            "device_code": device_code,
            "user_code": "EMUL-ATED",
            "verification_uri": page,
            "expires_in": 600,
            "interval": 1,
        }),
    )
}

fn userinfo(p: &mut Profile, req: &Request, now: SystemTime) -> Reply {
    let Some(token) = req.bearer() else {
        return bad_token_reply(&p.grants.spec);
    };
    p.grants.note_use(token, now);
    let Some((grant, _)) = p.grants.grant_of_access(token, now) else {
        return bad_token_reply(&p.grants.spec);
    };
    let mut body = serde_json::Map::new();
    if p.grants.spec.account.from == AccountFrom::Userinfo {
        body = shape::account_object(&p.grants.spec, &grant.user);
    }
    body.entry("sub")
        .or_insert_with(|| Value::from(grant.user.clone()));
    Reply::json(StatusCode::OK, &Value::Object(body))
}

fn resource(p: &mut Profile, req: &Request, now: SystemTime) -> Reply {
    let Some(token) = req.bearer() else {
        return bad_token_reply(&p.grants.spec);
    };
    p.grants.note_use(token, now);
    match p.grants.grant_of_access(token, now) {
        Some((grant, _)) => Reply::json(
            StatusCode::OK,
            &json!({"ok": true, "user": grant.user, "scopes": grant.scopes}),
        ),
        None => bad_token_reply(&p.grants.spec),
    }
}
