//! A loopback resource server that records the `Authorization` header of
//! every request and rejects chosen tokens the RFC 6750 way, and a manager
//! over a `FakeProvider` with one stored token.

#![allow(dead_code, unreachable_pub)]

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use auth_core::testing::FakeProvider;
use auth_core::{TokenKey, TokenManager, TokenSet};
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use store_memory::MemoryTokenStore;

/// The body of a 401, longer than the middleware's default prefix so tests
/// see that the caller gets all of it.
pub fn long_401_body() -> String {
    format!(
        "{{\"error\":\"invalid_token\",\"padding\":\"{}\"}}",
        "x".repeat(20_000)
    )
}

#[derive(Default)]
pub struct Seen {
    /// The `Authorization` header of each request, in order.
    pub authorizations: Mutex<Vec<Option<String>>>,
    /// Tokens answered with 401 `invalid_token`.
    pub rejected: Mutex<HashSet<String>>,
    /// Reject every token.
    pub reject_all: Mutex<bool>,
}

impl Seen {
    pub fn requests(&self) -> usize {
        self.authorizations.lock().unwrap().len()
    }

    pub fn authorizations(&self) -> Vec<Option<String>> {
        self.authorizations.lock().unwrap().clone()
    }

    pub fn reject(&self, token: &str) {
        self.rejected.lock().unwrap().insert(token.to_owned());
    }
}

pub struct Server {
    pub base: String,
    pub seen: Arc<Seen>,
}

async fn resource(State(seen): State<Arc<Seen>>, headers: HeaderMap) -> Response {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    seen.authorizations.lock().unwrap().push(auth.clone());
    let Some(token) = auth.as_deref().and_then(|a| a.strip_prefix("Bearer ")) else {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, r#"Bearer realm="test""#)],
        )
            .into_response();
    };
    let rejected =
        *seen.reject_all.lock().unwrap() || seen.rejected.lock().unwrap().contains(token);
    if rejected {
        return (
            StatusCode::UNAUTHORIZED,
            [(
                header::WWW_AUTHENTICATE,
                r#"Bearer realm="test", error="invalid_token""#,
            )],
            long_401_body(),
        )
            .into_response();
    }
    (StatusCode::OK, "hello").into_response()
}

async fn redirect(
    State(seen): State<Arc<Seen>>,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    seen.authorizations.lock().unwrap().push(auth);
    let to = q
        .into_iter()
        .find(|(k, _)| k == "to")
        .map(|(_, v)| v)
        .unwrap_or_default();
    (StatusCode::FOUND, [(header::LOCATION, to)]).into_response()
}

/// Starts a server on 127.0.0.1 with `GET /resource`, `POST /resource` and
/// `GET /redirect?to=URL`.
pub async fn server() -> Server {
    let seen = Arc::new(Seen::default());
    let app = Router::new()
        .route("/resource", get(resource).post(resource))
        .route("/redirect", get(redirect))
        .with_state(Arc::clone(&seen));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Server {
        base: format!("http://127.0.0.1:{}", addr.port()),
        seen,
    }
}

pub struct Accounts {
    pub manager: TokenManager,
    pub provider: Arc<FakeProvider>,
    pub store: MemoryTokenStore,
}

/// The stored access token of `account` under provider `fake`.
pub fn key(account: &str) -> TokenKey {
    TokenKey::parse("fake", account).unwrap()
}

/// A manager over a `FakeProvider` `fake`, with a valid token
/// `old-<account>` stored for each account.
pub async fn accounts(names: &[&str]) -> Accounts {
    let store = MemoryTokenStore::new();
    let provider = Arc::new(FakeProvider::new("fake"));
    for name in names {
        let token = TokenSet::new(format!("old-{name}"), "Bearer", SystemTime::now())
            .with_refresh_token(format!("refresh-{name}"))
            .with_expires_in(Duration::from_secs(3600));
        store.put(&key(name), &token).await.unwrap();
    }
    let manager = TokenManager::builder(Arc::new(store.clone()))
        .provider(provider.clone())
        .retry_policy(auth_core::RetryPolicy::new(1, Duration::ZERO))
        .build();
    Accounts {
        manager,
        provider,
        store,
    }
}
