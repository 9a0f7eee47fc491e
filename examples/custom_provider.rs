//! Run: cargo run -p examples --example custom_provider
//!
//! A provider for a server this workspace has never heard of, made from the
//! standards `OAuth2Provider` plus `Hooks` for its quirks. The server here is
//! "Acme", a made-up authorization server served by a small axum router in
//! this file. Its quirks:
//!
//! - errors come as `{"errors":[{"type":"invalid_grant","text":"…"}]}`
//!   instead of RFC 6749's `{"error":…}`;
//! - the token response names the user in an extra `uid` field;
//! - its authorize URL wants `audience=api`.
//!
//! The example registers the provider with a `TokenManager`, logs a user in
//! (the account comes from `uid`), refreshes, and then shows an error
//! classified through the custom error-body hook: once the user disconnects
//! the app at Acme, the refresh fails with `ReauthorizationRequired`. The
//! same answer read without the hook is only a `Protocol` error, which an
//! app cannot act on.
#![allow(
    clippy::print_stdout,
    reason = "an example reports to the person running it on stdout"
)]

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;

use auth_core::{
    AccountId, AuthorizeRequest, Callback, Error, ProviderId, TokenManager, TokenProvider, TokenSet,
};
use auth_oauth2::{Endpoints, Hooks, OAuth2Provider, ResponseMeta, ServerError};
use examples::{check, play_browser};
use store_memory::MemoryTokenStore;

/// Acme's quirks. Every method not written here keeps the standards behaviour.
#[derive(Debug)]
struct AcmeHooks;

impl Hooks for AcmeHooks {
    /// Acme's error body, `{"errors":[{"type":…,"text":…}]}`, in RFC 6749
    /// terms, so that `invalid_grant` is classified like everywhere else.
    fn parse_error(&self, response: &ResponseMeta) -> Option<ServerError> {
        let body: serde_json::Value = serde_json::from_slice(&response.body).ok()?;
        let first = body.get("errors")?.get(0)?;
        Some(ServerError {
            code: first.get("type")?.as_str()?.to_owned(),
            description: first
                .get("text")
                .and_then(|t| t.as_str())
                .map(str::to_owned),
        })
    }

    /// The token response's `uid` names the account, so the app need not.
    fn account_for(&self, token: &TokenSet) -> Option<AccountId> {
        AccountId::new(token.extra_str("uid")?).ok()
    }

    fn authorize_params(&self, _request: &AuthorizeRequest) -> Vec<(String, String)> {
        vec![("audience".into(), "api".into())]
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    examples::report(run().await)
}

async fn run() -> Result<(), Box<dyn StdError>> {
    let acme = acme::Server::start().await?;
    let endpoints = Endpoints::new(acme.url("/authorize")?, acme.url("/token")?);
    let provider = OAuth2Provider::builder(ProviderId::new("acme")?, acme::CLIENT_ID)
        .client_secret(acme::CLIENT_SECRET)
        .endpoints(endpoints.clone())
        .redirect_uri(acme::REDIRECT_URI)
        .default_scopes(["read"])
        .hooks(Arc::new(AcmeHooks))
        .build()?;
    let manager = TokenManager::builder(Arc::new(MemoryTokenStore::new()))
        .provider(Arc::new(provider))
        .build();

    // Log in. The app names no account: the `uid` hook finds it.
    let pending = manager.begin_authorization(&"acme".parse()?, AuthorizeRequest::new())?;
    check(
        pending
            .authorize_url
            .query_pairs()
            .any(|(k, v)| k == "audience" && v == "api"),
        "the authorize URL carries the hook's audience=api",
    )?;
    let callback = Callback::parse(&play_browser(&pending.authorize_url).await?)?;
    let (key, first) = manager.complete_authorization(&pending, &callback).await?;
    println!("logged in: {key} (account from the uid field)");
    check(
        key.account.as_str() == acme::USER,
        "the account is Acme's uid",
    )?;

    // A refresh: Acme rotates the pair, the manager stores it.
    let refreshed = manager.refresh(&key).await?;
    check(
        refreshed.secret() != first.secret(),
        "the refresh brought a new access token",
    )?;
    check(acme.refreshes() == 1, "one refresh request reached Acme")?;

    // The user disconnects the app on Acme's website. The next refresh gets
    // Acme's own error body, which the hook reads as `invalid_grant`.
    acme.disconnect(acme::USER);
    let err = manager
        .refresh(&key)
        .await
        .err()
        .ok_or("the refresh of a disconnected grant succeeded")?;
    println!("refresh after the user disconnected: {err}");
    check(
        matches!(err, Error::ReauthorizationRequired { .. }),
        "the custom error body is classified as ReauthorizationRequired",
    )?;
    let stored = manager.stored(&key).await?.ok_or("the token was deleted")?;
    check(
        stored.reauthorization_required().is_some(),
        "the stored token is kept, flagged for reauthorization",
    )?;
    let requests = acme.refreshes();
    let again = manager.access_token(&key).await;
    check(
        again.is_err_and(|e| e.is_reauthorization_required()) && acme.refreshes() == requests,
        "later calls fail at once, without asking Acme again",
    )?;

    // Without the hook, the same answer is unreadable: a Protocol error.
    let plain = OAuth2Provider::builder(ProviderId::new("acme-without-hooks")?, acme::CLIENT_ID)
        .client_secret(acme::CLIENT_SECRET)
        .endpoints(endpoints)
        .build()?;
    let unhooked = plain
        .refresh(&stored)
        .await
        .err()
        .ok_or("the refresh without hooks succeeded")?;
    println!("the same answer without the hook: {unhooked}");
    check(
        matches!(
            unhooked,
            Error::Protocol {
                status: Some(400),
                ..
            }
        ),
        "without the hook it is only a Protocol error",
    )?;
    println!("custom_provider: all checks passed");
    // Waits for refreshes and saves in progress, so none is cut off.
    manager.shutdown(Duration::from_secs(30)).await?;
    Ok(())
}

/// "Acme": a made-up authorization server, small but strict where it
/// matters (client authentication, exact redirect URI, PKCE S256, single-use
/// codes and refresh tokens). Only the example's client is registered.
mod acme {
    use std::collections::{HashMap, HashSet};
    use std::error::Error;
    use std::sync::{Arc, Mutex, PoisonError};

    use axum::extract::{Query, State};
    use axum::http::{HeaderMap, StatusCode, header};
    use axum::response::{IntoResponse, Redirect, Response};
    use axum::routing::{get, post};
    use axum::{Form, Json, Router};
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use rand::Rng as _;
    use sha2::{Digest as _, Sha256};

    pub(crate) const CLIENT_ID: &str = "acme-example-client";
    pub(crate) const CLIENT_SECRET: &str = "acme-example-secret";
    pub(crate) const REDIRECT_URI: &str = "http://127.0.0.1:8976/callback";
    /// The user who consents on Acme's consent page.
    pub(crate) const USER: &str = "acme-user-42";

    #[derive(Default)]
    struct AcmeState {
        /// code → (redirect URI, PKCE challenge, user)
        codes: HashMap<String, (String, String, String)>,
        /// refresh token → user
        refresh_tokens: HashMap<String, String>,
        disconnected: HashSet<String>,
        refreshes: u64,
    }

    type Shared = Arc<Mutex<AcmeState>>;

    /// A running Acme server on 127.0.0.1; it stops when the example ends.
    pub(crate) struct Server {
        base: url::Url,
        state: Shared,
    }

    impl Server {
        pub(crate) async fn start() -> Result<Self, Box<dyn Error>> {
            let state = Shared::default();
            let app = Router::new()
                .route("/authorize", get(authorize))
                .route("/token", post(token))
                .with_state(Arc::clone(&state));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let base = url::Url::parse(&format!("http://{}/", listener.local_addr()?))?;
            tokio::spawn(async move { axum::serve(listener, app).await });
            Ok(Self { base, state })
        }

        pub(crate) fn url(&self, path: &str) -> Result<url::Url, url::ParseError> {
            self.base.join(path)
        }

        /// The user revokes the app's access on Acme's website.
        pub(crate) fn disconnect(&self, user: &str) {
            lock(&self.state).disconnected.insert(user.to_owned());
        }

        /// Refresh requests received so far.
        pub(crate) fn refreshes(&self) -> u64 {
            lock(&self.state).refreshes
        }
    }

    fn lock(state: &Shared) -> std::sync::MutexGuard<'_, AcmeState> {
        state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn random_token() -> String {
        let bytes: [u8; 32] = rand::rng().random();
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Acme's error body: not RFC 6749's shape.
    fn acme_error(status: StatusCode, kind: &str, text: &str) -> Response {
        let body = serde_json::json!({ "errors": [{ "type": kind, "text": text }] });
        (status, Json(body)).into_response()
    }

    /// The consent page: checks the request, then consents as [`USER`] at once.
    async fn authorize(
        State(state): State<Shared>,
        Query(q): Query<HashMap<String, String>>,
    ) -> Response {
        let param = |name: &str| q.get(name).map(String::as_str).unwrap_or_default();
        if param("client_id") != CLIENT_ID || param("redirect_uri") != REDIRECT_URI {
            // Never redirect to an unchecked URI: answer with a page instead.
            return (StatusCode::BAD_REQUEST, "unknown client or redirect URI").into_response();
        }
        if param("audience") != "api" || param("code_challenge_method") != "S256" {
            return (
                StatusCode::BAD_REQUEST,
                "audience=api and PKCE S256 are required",
            )
                .into_response();
        }
        let code = random_token();
        lock(&state).codes.insert(
            code.clone(),
            (
                REDIRECT_URI.to_owned(),
                param("code_challenge").to_owned(),
                USER.to_owned(),
            ),
        );
        let mut back = url::Url::parse(REDIRECT_URI).expect("a constant URL");
        back.query_pairs_mut()
            .append_pair("code", &code)
            .append_pair("state", param("state"));
        Redirect::to(back.as_str()).into_response()
    }

    /// The token endpoint: Basic client authentication, then the grant.
    async fn token(
        State(state): State<Shared>,
        headers: HeaderMap,
        Form(form): Form<HashMap<String, String>>,
    ) -> Response {
        let expected = format!(
            "Basic {}",
            STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
        );
        if headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            != Some(&expected)
        {
            return acme_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "bad client credentials",
            );
        }
        let param = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
        let mut state = lock(&state);
        let user = match param("grant_type") {
            "authorization_code" => {
                let Some((redirect_uri, challenge, user)) = state.codes.remove(param("code"))
                else {
                    return acme_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_grant",
                        "unknown or used code",
                    );
                };
                let verifier_ok =
                    URL_SAFE_NO_PAD.encode(Sha256::digest(param("code_verifier"))) == challenge;
                if redirect_uri != param("redirect_uri") || !verifier_ok {
                    return acme_error(StatusCode::BAD_REQUEST, "invalid_grant", "code mismatch");
                }
                user
            }
            "refresh_token" => {
                state.refreshes += 1;
                let presented = param("refresh_token");
                match state.refresh_tokens.get(presented).cloned() {
                    Some(user) if state.disconnected.contains(&user) => {
                        return acme_error(
                            StatusCode::BAD_REQUEST,
                            "invalid_grant",
                            "the user disconnected this app",
                        );
                    }
                    Some(user) => {
                        // Single use: a refresh token is gone once it has served.
                        state.refresh_tokens.remove(presented);
                        user
                    }
                    None => {
                        return acme_error(
                            StatusCode::BAD_REQUEST,
                            "invalid_grant",
                            "unknown or used refresh token",
                        );
                    }
                }
            }
            _ => return acme_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "no"),
        };
        let refresh = random_token();
        state.refresh_tokens.insert(refresh.clone(), user.clone());
        Json(serde_json::json!({
            "access_token": random_token(),
            "token_type": "Bearer",
            "expires_in": 3600,
            "refresh_token": refresh,
            "scope": "read",
            "uid": user,
        }))
        .into_response()
    }
}
