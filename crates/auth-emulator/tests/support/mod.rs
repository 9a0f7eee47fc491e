//! Helpers shared by the integration tests: a plain HTTP client that never
//! follows redirects, and small builders for the requests a real app sends.
//! Nothing here uses the workspace's client crates: the emulator is checked
//! on its own.

#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test binary uses a different subset of these helpers"
)]

use std::time::{Duration, UNIX_EPOCH};

use auth_emulator::{Emulator, demo};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng as _;
use reqwest::{Response, StatusCode};
use serde_json::Value;
use sha2::{Digest, Sha256};
use url::Url;

pub const SLEEP: &str = "sleep";
pub const HEALTH_SLEEP: &str = "https://www.googleapis.com/auth/googlehealth.sleep.readonly";
pub const HEALTH_ACTIVITY: &str =
    "https://www.googleapis.com/auth/googlehealth.activity_and_fitness.readonly";

/// An HTTP client that does not follow redirects (as OAuth clients must not).
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a reqwest client")
}

/// An emulator with the demo clients.
pub async fn start() -> Emulator {
    Emulator::builder()
        .with_demo_clients()
        .start()
        .await
        .expect("the emulator starts")
}

/// A PKCE verifier and its S256 challenge.
#[derive(Clone, Debug)]
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

pub fn pkce() -> Pkce {
    let bytes: [u8; 32] = rand::rng().random();
    let verifier = URL_SAFE_NO_PAD.encode(bytes);
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    Pkce {
        verifier,
        challenge,
    }
}

/// A legacy Fitbit app and how it authenticates.
#[derive(Clone, Copy, Debug)]
pub enum App {
    /// A "Server" app: `Authorization: Basic`.
    Server {
        id: &'static str,
        secret: &'static str,
    },
    /// A "Client" app: `client_id` in the body.
    Public { id: &'static str },
}

impl App {
    pub fn id(self) -> &'static str {
        match self {
            App::Server { id, .. } | App::Public { id } => id,
        }
    }
}

pub const SERVER_APP: App = App::Server {
    id: demo::FITBIT_SERVER_CLIENT_ID,
    secret: demo::FITBIT_SERVER_CLIENT_SECRET,
};
pub const PUBLIC_APP: App = App::Public {
    id: demo::FITBIT_PUBLIC_CLIENT_ID,
};

/// POSTs a form the way `app` authenticates.
pub async fn post_as(
    http: &reqwest::Client,
    url: Url,
    app: App,
    form: &[(&str, &str)],
) -> Response {
    let mut fields: Vec<(&str, &str)> = form.to_vec();
    let mut request = http.post(url);
    match app {
        App::Server { id, secret } => request = request.basic_auth(id, Some(secret)),
        App::Public { id } => fields.push(("client_id", id)),
    }
    request
        .form(&fields)
        .send()
        .await
        .expect("the request is answered")
}

/// GETs the Fitbit consent page with these query parameters.
pub async fn fitbit_authorize(
    http: &reqwest::Client,
    emu: &Emulator,
    query: &[(&str, &str)],
) -> Response {
    http.get(emu.fitbit_endpoints().authorize)
        .query(query)
        .send()
        .await
        .expect("the consent page answers")
}

/// GETs the Google consent page with these query parameters.
pub async fn google_authorize(
    http: &reqwest::Client,
    emu: &Emulator,
    query: &[(&str, &str)],
) -> Response {
    http.get(emu.google_endpoints().authorize)
        .query(query)
        .send()
        .await
        .expect("the consent page answers")
}

/// The `Location` of a 302, parsed.
pub fn location(response: &Response) -> Url {
    assert_eq!(response.status(), StatusCode::FOUND, "expected a redirect");
    let value = response
        .headers()
        .get("location")
        .expect("a redirect has a Location")
        .to_str()
        .expect("an ASCII Location");
    Url::parse(value).expect("an absolute Location")
}

/// The first value of a query parameter.
pub fn param(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// A header's value as text.
pub fn header(response: &Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().expect("an ASCII header").to_owned())
}

/// Status and JSON body.
pub async fn json(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let body = response.text().await.expect("a body");
    let value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    (status, value)
}

/// Asserts a Fitbit error body of `error_type` and returns its message.
pub fn fitbit_error(body: &Value, error_type: &str) -> String {
    assert_eq!(body["success"], false, "{body}");
    assert_eq!(body["errors"][0]["errorType"], error_type, "{body}");
    body["errors"][0]["message"]
        .as_str()
        .expect("a message")
        .to_owned()
}

/// Runs the Fitbit consent page for `app` with S256 PKCE and returns the code.
pub async fn fitbit_code(
    http: &reqwest::Client,
    emu: &Emulator,
    app: App,
    pkce: &Pkce,
    scope: &str,
) -> String {
    let response = fitbit_authorize(
        http,
        emu,
        &[
            ("client_id", app.id()),
            ("response_type", "code"),
            ("scope", scope),
            ("redirect_uri", demo::REDIRECT_URI),
            ("code_challenge", &pkce.challenge),
            ("code_challenge_method", "S256"),
            ("state", "st"),
        ],
    )
    .await;
    param(&location(&response), "code").expect("a code in the redirect")
}

/// Exchanges a Fitbit code for tokens.
pub async fn fitbit_exchange(
    http: &reqwest::Client,
    emu: &Emulator,
    app: App,
    code: &str,
    verifier: &str,
) -> Response {
    post_as(
        http,
        emu.fitbit_endpoints().token,
        app,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", demo::REDIRECT_URI),
            ("code_verifier", verifier),
        ],
    )
    .await
}

/// Refreshes a Fitbit refresh token.
pub async fn fitbit_refresh(
    http: &reqwest::Client,
    emu: &Emulator,
    app: App,
    refresh: &str,
) -> Response {
    post_as(
        http,
        emu.fitbit_endpoints().token,
        app,
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
    )
    .await
}

/// Introspects `token`, presenting `bearer`.
pub async fn fitbit_introspect(
    http: &reqwest::Client,
    emu: &Emulator,
    bearer: &str,
    token: &str,
) -> Response {
    http.post(emu.fitbit_endpoints().introspect)
        .bearer_auth(bearer)
        .form(&[("token", token)])
        .send()
        .await
        .expect("introspect answers")
}

/// Whether `token` is an active Fitbit access token (introspected with a
/// fresh bearer token of another user, so the check uses nothing up).
pub async fn fitbit_active(http: &reqwest::Client, emu: &Emulator, token: &str) -> bool {
    let probe = emu.seed_fitbit_grant(demo::FITBIT_SERVER_CLIENT_ID, "PROBE1", &[SLEEP]);
    let (status, body) = json(fitbit_introspect(http, emu, &probe.access_token, token).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["active"].as_bool().expect("active is a bool")
}

/// Runs the Google consent page (`extra` overrides or adds parameters) and
/// returns the redirect.
pub async fn google_consent(http: &reqwest::Client, emu: &Emulator, extra: &[(&str, &str)]) -> Url {
    let mut query = vec![
        ("client_id", demo::GOOGLE_CLIENT_ID),
        ("response_type", "code"),
        ("redirect_uri", demo::REDIRECT_URI),
        ("scope", HEALTH_SLEEP),
        ("state", "g-state"),
    ];
    for &(name, value) in extra {
        match query.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => query.push((name, value)),
        }
    }
    location(&google_authorize(http, emu, &query).await)
}

/// POSTs to the Google token endpoint with `client_secret_post`.
/// A Google refresh with `refresh_token`, as status and JSON body.
pub async fn google_refresh_json(
    http: &reqwest::Client,
    emu: &Emulator,
    refresh_token: &str,
) -> (StatusCode, Value) {
    json(
        google_token(
            http,
            emu,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
        )
        .await,
    )
    .await
}

pub async fn google_token(
    http: &reqwest::Client,
    emu: &Emulator,
    form: &[(&str, &str)],
) -> Response {
    let mut fields = form.to_vec();
    fields.push(("client_id", demo::GOOGLE_CLIENT_ID));
    fields.push(("client_secret", demo::GOOGLE_CLIENT_SECRET));
    http.post(emu.google_endpoints().token)
        .form(&fields)
        .send()
        .await
        .expect("the token endpoint answers")
}

/// Exchanges a Google code (no PKCE).
pub async fn google_exchange(
    http: &reqwest::Client,
    emu: &Emulator,
    code: &str,
) -> (StatusCode, Value) {
    json(
        google_token(
            http,
            emu,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", demo::REDIRECT_URI),
            ],
        )
        .await,
    )
    .await
}

/// Moves the emulator's clock to one second past the top of the next hour,
/// so a rate-limit test cannot straddle an hour boundary.
pub fn align_to_hour_start(emu: &Emulator) {
    let secs = emu
        .now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    emu.advance_time(Duration::from_secs(3600 - secs % 3600 + 1));
}
