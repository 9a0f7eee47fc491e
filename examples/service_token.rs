//! Run: cargo run -p examples --example service_token
//!
//! Tokens for a service acting as itself: the client credentials grant
//! (RFC 6749 §4.4). No person logs in: the provider mints each token, and
//! the `TokenManager` gets a new one when the old one expires, once for all
//! concurrent callers. The server is a made-up, strict client credentials
//! server served by a small axum router in this file (the emulated Google
//! and Fitbit servers have no such grant, like the real ones). It never
//! prints a token.
#![allow(
    clippy::print_stdout,
    reason = "an example reports to the person running it on stdout"
)]

use std::error::Error;
use std::sync::Arc;
use std::time::Duration;

use auth_core::{TokenKey, TokenManager};
use auth_oauth2::{ClientAuth, ClientCredentials, Endpoints, OAuth2Provider};
use examples::check;
use store_memory::MemoryTokenStore;

const CLIENT_ID: &str = "reporting-service";
const CLIENT_SECRET: &str = "service-example-secret";

#[tokio::main]
async fn main() -> std::process::ExitCode {
    examples::report(run().await)
}

async fn run() -> Result<(), Box<dyn Error>> {
    let server = server::Server::start().await?;
    let endpoints = Endpoints::new(server.url("/authorize")?, server.url("/token")?);
    let provider = OAuth2Provider::builder("metrics-api".parse()?, CLIENT_ID)
        .client_secret(CLIENT_SECRET)
        .client_auth(ClientAuth::ClientSecretBasic)
        .endpoints(endpoints)
        .client_credentials(
            ClientCredentials::new()
                .scopes(["metrics:read"])
                .audience("https://metrics.example"),
        )
        .build()?;
    let manager = TokenManager::builder(Arc::new(MemoryTokenStore::new()))
        .provider(Arc::new(provider))
        .build();
    // The account names what the token is for: here, the client itself.
    let key = TokenKey::parse("metrics-api", CLIENT_ID)?;

    // No login: the first call mints a token, and a hundred concurrent
    // callers share that one request.
    let mut calls = Vec::new();
    for _ in 0..100 {
        let manager = manager.clone();
        let key = key.clone();
        calls.push(tokio::spawn(
            async move { manager.access_token(&key).await },
        ));
    }
    let mut first = None;
    for call in calls {
        let token = call.await??;
        first.get_or_insert_with(|| token.secret().to_owned());
    }
    check(server.requests() == 1, "100 callers made one token request")?;
    let first = first.ok_or("no token")?;
    println!(
        "minted a token [redacted, {} chars] with no login, for audience https://metrics.example",
        first.len()
    );

    // While it is valid, it is served from the cache.
    let again = manager.access_token(&key).await?;
    check(again.secret() == first, "the valid token is served again")?;
    check(server.requests() == 1, "with no new request")?;

    // This grant has no refresh token: replacing the token (after an API
    // rejected it, or once it nears expiry) is a new token request.
    let next = manager.force_refresh(&key, &again).await?;
    check(next.secret() != first, "a rejected token is replaced")?;
    check(server.requests() == 2, "by exactly one more token request")?;
    println!("service_token: all checks passed");
    manager.shutdown(Duration::from_secs(30)).await?;
    Ok(())
}

/// A made-up client credentials server: `POST /token` with Basic
/// authentication, `grant_type=client_credentials`, a known scope and the
/// audience; tokens live an hour.
mod server {
    use std::error::Error;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode, header};
    use axum::response::{IntoResponse, Response};
    use axum::routing::post;
    use axum::{Form, Json, Router};
    use base64::Engine as _;
    use rand::Rng as _;
    use serde_json::json;

    pub(super) struct Server {
        base: url::Url,
        requests: Arc<AtomicUsize>,
    }

    impl Server {
        pub(super) async fn start() -> Result<Self, Box<dyn Error>> {
            let requests = Arc::new(AtomicUsize::new(0));
            let app = Router::new()
                .route("/token", post(token))
                .with_state(Arc::clone(&requests));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let base = url::Url::parse(&format!("http://{}/", listener.local_addr()?))?;
            tokio::spawn(async move { axum::serve(listener, app).await });
            Ok(Self { base, requests })
        }

        pub(super) fn url(&self, path: &str) -> Result<url::Url, url::ParseError> {
            self.base.join(path)
        }

        pub(super) fn requests(&self) -> usize {
            self.requests.load(Ordering::SeqCst)
        }
    }

    async fn token(
        State(requests): State<Arc<AtomicUsize>>,
        headers: HeaderMap,
        Form(form): Form<Vec<(String, String)>>,
    ) -> Response {
        requests.fetch_add(1, Ordering::SeqCst);
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!(
                "{}:{}",
                super::CLIENT_ID,
                super::CLIENT_SECRET
            ))
        );
        let error = |status: StatusCode, code: &str| {
            (status, Json(json!({ "error": code }))).into_response()
        };
        if headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            != Some(&expected)
        {
            return error(StatusCode::UNAUTHORIZED, "invalid_client");
        }
        let get = |name: &str| {
            form.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        if get("grant_type") != Some("client_credentials") {
            return error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
        }
        if get("scope") != Some("metrics:read") {
            return error(StatusCode::BAD_REQUEST, "invalid_scope");
        }
        if get("audience") != Some("https://metrics.example") {
            return error(StatusCode::BAD_REQUEST, "invalid_request");
        }
        let token: String = rand::rng()
            .sample_iter(rand::distr::Alphanumeric)
            .take(40)
            .map(char::from)
            .collect();
        Json(json!({
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": 3600,
            "scope": "metrics:read",
        }))
        .into_response()
    }
}
