//! The middleware's cost: one GET against a loopback resource server through
//! `auth-reqwest`'s `BearerAuth`, against the same reqwest client adding the
//! header by hand. Budget (issue 14): at most 1.1x.
//!
//! Run: `cargo bench -p benchmarks --bench middleware`
//!
//! - Candidate: a `ClientWithMiddleware` with `BearerAuth::new` over a
//!   `TokenManager` (memory store, a valid cached token): the origin check,
//!   the manager's fast path, the sensitive header, the request clone kept
//!   for a retry, and the status check.
//! - Baseline: the same `reqwest::Client` (`auth_reqwest::reqwest_builder`),
//!   with the loop every app writes by hand: `manager.access_token` and
//!   `bearer_auth`.
//! - Also reported: the same client with a constant token string and no
//!   manager at all.
//!
//! Every request reads the whole (small) body. The server is an axum
//! handler on 127.0.0.1 in the same 2-worker runtime that checks the
//! header. After the criterion group, a summary loop alternates batches of
//! the two sides and prints the median per-round ratio (lines `RATIO`), as
//! the other benchmarks of this package do.

#![allow(
    missing_docs,
    reason = "criterion_main! generates an undocumented main"
)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use auth_core::testing::FakeProvider;
use auth_core::{TokenKey, TokenManager, TokenSet};
use auth_reqwest::BearerAuth;
use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use store_memory::MemoryTokenStore;

const BUDGET: f64 = 1.1;
const ROUNDS: usize = 301;
const REQUESTS_PER_ROUND: u32 = 20;

struct World {
    runtime: tokio::runtime::Runtime,
    url: String,
    plain: reqwest::Client,
    with_middleware: ClientWithMiddleware,
    manager: TokenManager,
    key: TokenKey,
    token: String,
}

async fn resource(headers: HeaderMap) -> (StatusCode, &'static str) {
    let ok = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bearer "));
    if ok {
        (StatusCode::OK, "{\"user\":{\"encodedId\":\"26FWFL\"}}")
    } else {
        (StatusCode::UNAUTHORIZED, "")
    }
}

fn world() -> World {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (url, manager, key, token) = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = Router::new().route("/1/user/-/profile.json", get(resource));
        tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
        let store = MemoryTokenStore::new();
        let key = TokenKey::parse("fake", "26FWFL").expect("key");
        let token = TokenSet::new("bench-access-token", "Bearer", SystemTime::now())
            .with_refresh_token("bench-refresh-token")
            .with_expires_in(Duration::from_secs(24 * 3600));
        store.put(&key, &token).await.expect("save");
        let manager = TokenManager::builder(Arc::new(store))
            .provider(Arc::new(FakeProvider::new("fake")))
            .build();
        let token = manager
            .access_token(&key)
            .await
            .expect("token")
            .secret()
            .to_owned();
        (
            format!("http://127.0.0.1:{}/1/user/-/profile.json", addr.port()),
            manager,
            key,
            token,
        )
    });
    let plain = auth_reqwest::reqwest_builder().build().expect("client");
    let auth = BearerAuth::new(manager.clone(), key.clone())
        .allow_origin(&url)
        .expect("origin");
    let with_middleware = ClientBuilder::new(plain.clone()).with(auth).build();
    World {
        runtime,
        url,
        plain,
        with_middleware,
        manager,
        key,
        token,
    }
}

async fn via_middleware(w: &World) {
    let answer = w.with_middleware.get(&w.url).send().await.expect("send");
    assert_eq!(answer.status(), 200);
    answer.bytes().await.expect("body");
}

async fn by_hand(w: &World) {
    let token = w.manager.access_token(&w.key).await.expect("token");
    let answer = w
        .plain
        .get(&w.url)
        .bearer_auth(token.secret())
        .send()
        .await
        .expect("send");
    assert_eq!(answer.status(), 200);
    answer.bytes().await.expect("body");
}

async fn constant(w: &World) {
    let answer = w
        .plain
        .get(&w.url)
        .bearer_auth(&w.token)
        .send()
        .await
        .expect("send");
    assert_eq!(answer.status(), 200);
    answer.bytes().await.expect("body");
}

/// Time per request of `REQUESTS_PER_ROUND` sequential requests, run in a
/// task of the runtime (as a server's handler would run them).
fn batch(w: &Arc<World>, side: fn(&World) -> futures::future::BoxFuture<'_, ()>) -> Duration {
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

fn middleware_side(w: &World) -> futures::future::BoxFuture<'_, ()> {
    Box::pin(via_middleware(w))
}

fn by_hand_side(w: &World) -> futures::future::BoxFuture<'_, ()> {
    Box::pin(by_hand(w))
}

fn constant_side(w: &World) -> futures::future::BoxFuture<'_, ()> {
    Box::pin(constant(w))
}

fn bench(c: &mut Criterion) {
    let w = Arc::new(world());
    let mut group = c.benchmark_group("middleware");
    group.bench_function("bearer_auth_middleware", |b| {
        b.to_async(&w.runtime).iter(|| via_middleware(&w));
    });
    group.bench_function("header_by_hand", |b| {
        b.to_async(&w.runtime).iter(|| by_hand(&w));
    });
    group.finish();

    let rounds = if support::quick_mode() { 3 } else { ROUNDS };
    support::heading("middleware: one GET against a loopback resource server");
    let cmp = support::compare(
        rounds,
        || batch(&w, middleware_side),
        || batch(&w, by_hand_side),
    );
    support::report(
        "middleware",
        "BearerAuth middleware",
        "header by hand (access_token + bearer_auth)",
        &cmp,
        Some(BUDGET),
    );
    let cmp = support::compare(
        rounds,
        || batch(&w, middleware_side),
        || batch(&w, constant_side),
    );
    support::report(
        "middleware_vs_constant",
        "BearerAuth middleware",
        "a constant token string",
        &cmp,
        None,
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
