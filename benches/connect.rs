//! The connect routes' cost (`auth-axum`), each against a baseline behind
//! the same session layer, so that only the crate's own work is compared.
//! Budgets (issue 23):
//!
//! - `GET /connections` for a user with 5 connections, all tokens cached:
//!   at most 1.2x the same session layer around a handler that answers a
//!   fixed JSON body of the same size.
//! - `GET /connect/{provider}`: at most 1.5x the same session layer around
//!   a bare axum handler that writes one value into the session and
//!   redirects.
//!
//! Run: `cargo bench -p benchmarks --bench connect`
//!
//! The budgets are judged on requests over loopback HTTP (a `reqwest`
//! client and `axum::serve` on 127.0.0.1 in the same 2-worker runtime), as
//! an app receives them and as the middleware benchmark measures. The same
//! comparisons are also printed with the requests sent through the routers
//! in process (`tower::ServiceExt::oneshot`, no sockets): there the
//! baselines cost almost nothing, so those ratios show the crate's work
//! against the session layer alone (no budget). Every request reads the
//! whole body. Neither side sends a session cookie, so each connect request
//! creates a session in the memory store on both sides. After the
//! criterion group, summary loops alternate batches of the two sides and
//! print the median per-round ratio (lines `RATIO`), as the other
//! benchmarks of this package do.

#![allow(
    missing_docs,
    reason = "criterion_main! generates an undocumented main"
)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use auth_axum::Connect;
use auth_axum::tower_sessions::cookie::SameSite;
use auth_axum::tower_sessions::cookie::time;
use auth_axum::tower_sessions::{Expiry, MemoryStore, Session, SessionManagerLayer};
use auth_core::testing::FakeProvider;
use auth_core::{AccountId, TokenKey, TokenManager, TokenSet};
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use store_memory::MemoryTokenStore;
use tower::ServiceExt as _;

const CONNECTIONS_BUDGET: f64 = 1.2;
const CONNECT_BUDGET: f64 = 1.5;
const ROUNDS: usize = 301;
const REQUESTS_PER_ROUND: u32 = 50;
const PROVIDERS: [&str; 5] = ["alpha", "bravo", "charlie", "delta", "echo"];
const REDIRECT_URI: &str = "http://127.0.0.1:8080/callback";

struct World {
    runtime: tokio::runtime::Runtime,
    connect: Router,
    fixed_json: Router,
    bare_redirect: Router,
    client: reqwest::Client,
    connect_url: String,
    fixed_json_url: String,
    bare_redirect_url: String,
}

/// Serves `router` on a loopback port; its base URL.
async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, router).await.expect("serve") });
    url
}

/// The session layer both sides sit behind: the configuration
/// `Connect::router_with_store` uses.
fn sessions() -> SessionManagerLayer<MemoryStore> {
    SessionManagerLayer::new(MemoryStore::default())
        .with_name("token_keeper_connect")
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(false)
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(time::Duration::days(1)))
}

fn world() -> World {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (connect, body) = runtime.block_on(async {
        let store = MemoryTokenStore::new();
        let user = AccountId::new("alice").expect("user");
        let mut builder = TokenManager::builder(Arc::new(store.clone()));
        for id in PROVIDERS {
            builder = builder.provider(Arc::new(FakeProvider::new(id)));
            let token = TokenSet::new(format!("{id}-access"), "Bearer", SystemTime::now())
                .with_refresh_token(format!("{id}-refresh"))
                .with_expires_in(Duration::from_secs(24 * 3600))
                .with_scopes(["read", "write"]);
            let key = TokenKey::new(id.parse().expect("id"), user.clone());
            store.put(&key, &token).await.expect("save");
        }
        let manager = builder.build();
        for id in PROVIDERS {
            let key = TokenKey::new(id.parse().expect("id"), user.clone());
            manager.access_token(&key).await.expect("cached");
        }
        let signed_in = user.clone();
        let connect = Connect::builder(
            manager,
            REDIRECT_URI,
            move |_: &axum::http::request::Parts| Some(signed_in.clone()),
        )
        .expect("connect")
        .build()
        .router();
        let (status, body) = get_body(&connect, "/connections").await;
        assert_eq!(status, StatusCode::OK);
        let json: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(json["connections"].as_array().map(Vec::len), Some(5));
        assert!(
            json["connections"]
                .as_array()
                .expect("rows")
                .iter()
                .all(|r| r["connected"] == true)
        );
        (connect, body)
    });
    let fixed = body.clone();
    let fixed_json = Router::new()
        .route(
            "/connections",
            get(move || {
                let body = fixed.clone();
                async move { ([(header::CONTENT_TYPE, "application/json")], body).into_response() }
            }),
        )
        .layer(sessions());
    let bare_redirect = Router::new()
        .route(
            "/connect/{provider}",
            get(|session: Session| async move {
                session
                    .insert("pending", "one value")
                    .await
                    .expect("session");
                Redirect::to("https://provider.example/authorize?client_id=x&state=y")
            }),
        )
        .layer(sessions());
    let (connect_url, fixed_json_url, bare_redirect_url) = runtime.block_on(async {
        (
            serve(connect.clone()).await,
            serve(fixed_json.clone()).await,
            serve(bare_redirect.clone()).await,
        )
    });
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    World {
        runtime,
        connect,
        fixed_json,
        bare_redirect,
        client,
        connect_url,
        fixed_json_url,
        bare_redirect_url,
    }
}

async fn http_get(w: &World, url: String) -> StatusCode {
    let answer = w.client.get(url).send().await.expect("send");
    let status = answer.status();
    answer.bytes().await.expect("body");
    StatusCode::from_u16(status.as_u16()).expect("status")
}

async fn http_connections(w: &World) {
    let status = http_get(w, format!("{}/connections", w.connect_url)).await;
    assert_eq!(status, StatusCode::OK);
}

async fn http_fixed_json(w: &World) {
    let status = http_get(w, format!("{}/connections", w.fixed_json_url)).await;
    assert_eq!(status, StatusCode::OK);
}

async fn http_connect_redirect(w: &World) {
    let status = http_get(w, format!("{}/connect/alpha", w.connect_url)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
}

async fn http_bare_redirect(w: &World) {
    let status = http_get(w, format!("{}/connect/alpha", w.bare_redirect_url)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
}

async fn get_body(router: &Router, path: &str) -> (StatusCode, axum::body::Bytes) {
    let request = Request::get(path).body(Body::empty()).expect("request");
    let response = router.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    (status, body)
}

async fn connections(w: &World) {
    let (status, _) = get_body(&w.connect, "/connections").await;
    assert_eq!(status, StatusCode::OK);
}

async fn fixed_json(w: &World) {
    let (status, _) = get_body(&w.fixed_json, "/connections").await;
    assert_eq!(status, StatusCode::OK);
}

async fn connect_redirect(w: &World) {
    let (status, _) = get_body(&w.connect, "/connect/alpha").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
}

async fn bare_redirect(w: &World) {
    let (status, _) = get_body(&w.bare_redirect, "/connect/alpha").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
}

type Side = fn(&World) -> futures::future::BoxFuture<'_, ()>;

/// Time per request of `REQUESTS_PER_ROUND` sequential requests, run in a
/// task of the runtime (as a server's handler would run them).
fn batch(w: &Arc<World>, side: Side) -> Duration {
    let world = Arc::clone(w);
    w.runtime.block_on(async move {
        tokio::spawn(async move {
            let start = Instant::now();
            for _ in 0..REQUESTS_PER_ROUND {
                side(&world).await;
            }
            start.elapsed() / REQUESTS_PER_ROUND
        })
        .await
        .expect("task")
    })
}

fn bench(c: &mut Criterion) {
    let w = Arc::new(world());
    let mut group = c.benchmark_group("connect");
    group.bench_function("http_connections_5_cached", |b| {
        b.to_async(&w.runtime).iter(|| http_connections(&w));
    });
    group.bench_function("http_fixed_json_same_size", |b| {
        b.to_async(&w.runtime).iter(|| http_fixed_json(&w));
    });
    group.bench_function("http_connect_redirect", |b| {
        b.to_async(&w.runtime).iter(|| http_connect_redirect(&w));
    });
    group.bench_function("http_bare_redirect_one_session_value", |b| {
        b.to_async(&w.runtime).iter(|| http_bare_redirect(&w));
    });
    group.finish();

    let rounds = if support::quick_mode() { 3 } else { ROUNDS };
    support::heading("connect: GET /connections, 5 cached connections, over loopback HTTP");
    let cmp = support::compare(
        rounds,
        || batch(&w, |w| Box::pin(http_connections(w))),
        || batch(&w, |w| Box::pin(http_fixed_json(w))),
    );
    support::report(
        "connections",
        "GET /connections (5 cached)",
        "fixed JSON of the same size, same session layer",
        &cmp,
        Some(CONNECTIONS_BUDGET),
    );
    support::heading("connect: GET /connect/{provider}, over loopback HTTP");
    let cmp = support::compare(
        rounds,
        || batch(&w, |w| Box::pin(http_connect_redirect(w))),
        || batch(&w, |w| Box::pin(http_bare_redirect(w))),
    );
    support::report(
        "connect_redirect",
        "GET /connect/{provider}",
        "bare redirect writing one session value, same session layer",
        &cmp,
        Some(CONNECT_BUDGET),
    );

    support::heading("connect: the same, in process (no sockets; no budget)");
    let cmp = support::compare(
        rounds,
        || batch(&w, |w| Box::pin(connections(w))),
        || batch(&w, |w| Box::pin(fixed_json(w))),
    );
    support::report(
        "connections_in_process",
        "GET /connections (5 cached)",
        "fixed JSON of the same size, same session layer",
        &cmp,
        None,
    );
    let cmp = support::compare(
        rounds,
        || batch(&w, |w| Box::pin(connect_redirect(w))),
        || batch(&w, |w| Box::pin(bare_redirect(w))),
    );
    support::report(
        "connect_redirect_in_process",
        "GET /connect/{provider}",
        "bare redirect writing one session value, same session layer",
        &cmp,
        None,
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
