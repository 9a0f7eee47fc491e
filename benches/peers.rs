//! Peers: the manager against what a user would pick instead, side by side
//! in one run.
//!
//! - **yup-oauth2** (`Authenticator::token` with a valid token cached, and
//!   `force_refreshed_token` for a refresh). Its token storage here is the
//!   cheapest one can write (`YupStore`: one `RwLock` around the token, a
//!   clone per read), cheaper than its own in-memory storage (a
//!   `tokio::sync::Mutex` around a map keyed by a hash of the scopes), so
//!   its figures are a lower bound of what an app would see.
//! - **A hand-written cache over the `oauth2` crate** (`HandCache`): a
//!   `std::sync::RwLock<HashMap<TokenKey, Arc<Cached>>>`, the expiry checked
//!   with a skew on every read, a refresh through
//!   `BasicClient::exchange_refresh_token` stored back into the map. That is
//!   what most apps write today.
//!
//! Two more rows split the refresh: the manager's own provider refreshing
//! alone (`GoogleHealthProvider::refresh`, the new token kept by the
//! caller) against the hand-written cache, and the manager against that
//! provider. They have no budget; they say which layer a gap is in.
//! `PEERS_PROFILE=SIDE[:N]` runs one side's refreshes alone, for a
//! profiler.
//!
//! Goals (issue "measured against peers"):
//!
//! 1. the manager's hot path (`TokenManager::access_token`, cached) is no
//!    slower than yup-oauth2's cached path: ratio at most 1.0;
//! 2. with 2 threads over their own keys it has at least the hand-written
//!    cache's throughput: time per call ratio at most 1.0;
//! 3. one refresh costs within 10% of the fastest peer doing the same work
//!    (a refresh at the same emulated Google token endpoint, the new token
//!    kept in memory): ratio at most 1.1.
//!
//! Every side talks to the same in-process emulator of Google's token
//! endpoint (Google refresh tokens do not rotate, so each side can refresh
//! the same grant again and again), with `client_secret_post`, as Google
//! wants. The cached paths are polled once with `now_or_never`: none of
//! them awaits anything when the token is valid (a `None` panics).
//!
//! Run: `cargo bench -p benchmarks --bench peers`
//!
//! After the criterion groups, a summary alternates candidate and baseline
//! batches round by round and prints the median ratio of each goal (lines
//! starting `RATIO`); BENCHMARKS.md, last section, records them.

#![allow(
    missing_docs,
    reason = "criterion_main! generates an undocumented main"
)]

mod support;

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use auth_core::{RetryPolicy, TokenKey, TokenManager, TokenProvider, TokenSet};
use auth_emulator::{Emulator, demo};
use auth_fitbit::GoogleHealthProvider;
use auth_oauth2::OAuth2Provider;
use criterion::{Criterion, criterion_group, criterion_main};
use futures::FutureExt;
use oauth2::basic::BasicClient;
use oauth2::{
    AuthType, ClientId, ClientSecret, EndpointNotSet, EndpointSet, RefreshToken, TokenResponse,
    TokenUrl,
};
use store_memory::MemoryTokenStore;
use support::threads::{self, one_thread};
use support::{compare, heading, lock, quick_mode, report};
use tokio::runtime::Runtime;
use yup_oauth2::storage::{TokenInfo, TokenStorage, TokenStorageError};

/// The scope every grant is for.
const SCOPE: &str = "https://www.googleapis.com/auth/googlehealth.sleep.readonly";
/// Accounts for the 2-thread comparison, half per thread.
const ACCOUNTS: usize = 1_000;
/// The skew the hand-written cache refreshes ahead of expiry by (the
/// manager's default).
const SKEW: Duration = auth_core::DEFAULT_SKEW;
/// Summary rounds per comparison.
const ROUNDS: usize = 11;
/// Cached-path calls per summary batch.
const CALLS: u64 = 1_000_000;
/// Refreshes per summary batch.
const REFRESHES: u64 = 200;
/// Summary rounds per refresh comparison: a batch of refreshes is short
/// (about 10 ms) and one round moves by ±50% with the scheduler, so the
/// median needs many more rounds than the cached path's.
const REFRESH_ROUNDS: usize = 101;

/// A `BasicClient` with only its token endpoint set.
type RawClient =
    BasicClient<EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// What the hand-written cache keeps per account.
struct Cached {
    access_token: String,
    refresh_token: String,
    expires_at: SystemTime,
}

/// The cache most apps write: a map behind a `RwLock`, refreshed through
/// the `oauth2` crate when a token is due.
struct HandCache {
    map: RwLock<HashMap<TokenKey, Arc<Cached>>>,
    client: RawClient,
    http: reqwest::Client,
}

impl HandCache {
    /// The cached token of `key` if it is valid beyond the skew; else a
    /// refresh.
    async fn token(&self, key: &TokenKey) -> Arc<Cached> {
        let now = SystemTime::now();
        let current = {
            let map = self.map.read().unwrap_or_else(PoisonError::into_inner);
            map.get(key).cloned()
        };
        match current {
            Some(token) if token.expires_at > now + SKEW => token,
            Some(token) => self.refresh(key, &token.refresh_token).await,
            None => panic!("the hand-written cache has no token for {key}"),
        }
    }

    /// One refresh with the `oauth2` crate, stored back into the map.
    async fn refresh(&self, key: &TokenKey, refresh_token: &str) -> Arc<Cached> {
        let client = self.http.clone();
        let http =
            move |request: oauth2::HttpRequest| support::refresh::send(client.clone(), request);
        let response = self
            .client
            .exchange_refresh_token(&RefreshToken::new(refresh_token.to_owned()))
            .request_async(&http)
            .await
            .expect("the hand-written refresh succeeds");
        let fresh = Arc::new(Cached {
            access_token: response.access_token().secret().clone(),
            // Google answers a refresh without a new refresh token: keep
            // the old one.
            refresh_token: response
                .refresh_token()
                .map_or_else(|| refresh_token.to_owned(), |t| t.secret().clone()),
            expires_at: SystemTime::now()
                + response.expires_in().unwrap_or(Duration::from_secs(3600)),
        });
        self.map
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.clone(), Arc::clone(&fresh));
        fresh
    }
}

/// The cheapest token storage yup-oauth2 can be given: one token behind a
/// `RwLock`.
struct YupStore(RwLock<Option<TokenInfo>>);

#[async_trait::async_trait]
impl TokenStorage for YupStore {
    async fn set(&self, _scopes: &[&str], token: TokenInfo) -> Result<(), TokenStorageError> {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Some(token);
        Ok(())
    }

    async fn get(&self, _scopes: &[&str]) -> Option<TokenInfo> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// yup-oauth2's authenticator with its default HTTP client.
type Yup = yup_oauth2::authenticator::Authenticator<
    <yup_oauth2::DefaultHyperClientBuilder as yup_oauth2::HyperClientBuilder>::Connector,
>;

/// The emulator, the manager and the two peers, all holding a valid token
/// for the same Google grant, plus many accounts for the 2-thread figure.
struct World {
    rt: Runtime,
    emulator: Emulator,
    manager: TokenManager,
    /// The manager's own provider, for the refresh without the manager.
    provider: Arc<OAuth2Provider>,
    /// The token the provider-alone side refreshes, as a caller keeps it.
    provider_token: Mutex<TokenSet>,
    hand: Arc<HandCache>,
    yup: Arc<Yup>,
    key: TokenKey,
    refresh_token: String,
    keys: Vec<TokenKey>,
    refreshes: AtomicU64,
}

impl World {
    fn new() -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let emulator = rt.block_on(async {
            Emulator::builder()
                .with_demo_clients()
                .rate_limit_per_hour(u32::MAX)
                .start()
                .await
                .expect("the emulator starts")
        });
        let endpoints = emulator.google_endpoints();
        let provider =
            GoogleHealthProvider::builder(demo::GOOGLE_CLIENT_ID, demo::GOOGLE_CLIENT_SECRET)
                .redirect_uri(demo::REDIRECT_URI)
                .default_scopes([SCOPE])
                .base_url(emulator.base_url())
                .expect("endpoints")
                .build()
                .expect("the Google Health provider");
        let provider = Arc::new(provider);
        let store = MemoryTokenStore::new();
        let manager = TokenManager::builder(Arc::new(store.clone()))
            .provider(Arc::clone(&provider) as Arc<dyn TokenProvider>)
            // A failure must show, not be retried into a slower figure.
            .retry_policy(RetryPolicy::none())
            .build();
        let issued = emulator.seed_google_grant(demo::GOOGLE_CLIENT_ID, "peer-user", &[SCOPE]);
        let refresh_token = issued.refresh_token.expect("an offline grant");
        let now = SystemTime::now();
        let key = TokenKey::parse(auth_fitbit::GOOGLE_HEALTH, "peer-user").expect("a key");
        let hand = Arc::new(HandCache {
            map: RwLock::new(HashMap::new()),
            client: BasicClient::new(ClientId::new(demo::GOOGLE_CLIENT_ID.to_owned()))
                .set_client_secret(ClientSecret::new(demo::GOOGLE_CLIENT_SECRET.to_owned()))
                .set_auth_type(AuthType::RequestBody)
                .set_token_uri(TokenUrl::from_url(endpoints.token.clone())),
            http: support::refresh::http_client(),
        });
        let secret = yup_oauth2::ApplicationSecret {
            client_id: demo::GOOGLE_CLIENT_ID.to_owned(),
            client_secret: demo::GOOGLE_CLIENT_SECRET.to_owned(),
            token_uri: endpoints.token.to_string(),
            auth_uri: endpoints.authorize.to_string(),
            redirect_uris: vec![demo::REDIRECT_URI.to_owned()],
            ..Default::default()
        };
        let yup_store = YupStore(RwLock::new(Some(TokenInfo {
            access_token: Some(issued.access_token.clone()),
            refresh_token: Some(refresh_token.clone()),
            expires_at: None,
            id_token: None,
        })));
        let keys: Vec<TokenKey> = (0..ACCOUNTS)
            .map(|i| {
                TokenKey::parse(auth_fitbit::GOOGLE_HEALTH, &format!("user-{i:04}")).expect("a key")
            })
            .collect();
        let yup = rt.block_on(async {
            let expired = TokenSet::new(issued.access_token.clone(), "Bearer", now)
                .with_refresh_token(refresh_token.clone())
                .with_expires_at(Some(now - Duration::from_secs(60)))
                .with_scopes([SCOPE]);
            store.put(&key, &expired).await.expect("store");
            // Each side refreshes once, so that each holds a token the
            // server issued, valid for an hour.
            manager
                .access_token(&key)
                .await
                .expect("the manager refreshes");
            hand.map
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(
                    key.clone(),
                    Arc::new(Cached {
                        access_token: String::new(),
                        refresh_token: refresh_token.clone(),
                        expires_at: now,
                    }),
                );
            let refreshed = hand.token(&key).await;
            assert!(
                !refreshed.access_token.is_empty(),
                "the hand-written refresh gave no token"
            );
            let yup = yup_oauth2::InstalledFlowAuthenticator::builder(
                secret,
                yup_oauth2::InstalledFlowReturnMethod::Interactive,
            )
            .with_storage(Box::new(yup_store))
            .build()
            .await
            .expect("the yup-oauth2 authenticator");
            yup.force_refreshed_token(&[SCOPE])
                .await
                .expect("yup-oauth2 refreshes");
            // Many accounts, valid for 8 hours, for the 2-thread figure.
            for (i, k) in keys.iter().enumerate() {
                let token =
                    TokenSet::new(format!("access-{i:04}-{}", "x".repeat(120)), "Bearer", now)
                        .with_refresh_token(format!("refresh-{i:04}"))
                        .with_expires_in(Duration::from_secs(8 * 3600))
                        .with_scopes([SCOPE]);
                store.put(k, &token).await.expect("store");
                manager.access_token(k).await.expect("a valid token");
                hand.map
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(
                        k.clone(),
                        Arc::new(Cached {
                            access_token: format!("access-{i:04}-{}", "x".repeat(120)),
                            refresh_token: format!("refresh-{i:04}"),
                            expires_at: now + Duration::from_secs(8 * 3600),
                        }),
                    );
            }
            yup
        });
        let refreshes = AtomicU64::new(emulator.counters().google_token_refresh);
        let provider_token = Mutex::new(
            TokenSet::new(issued.access_token.clone(), "Bearer", now)
                .with_refresh_token(refresh_token.clone())
                .with_scopes([SCOPE]),
        );
        Self {
            rt,
            emulator,
            manager,
            provider,
            provider_token,
            hand,
            yup: Arc::new(yup),
            key,
            refresh_token,
            keys,
            refreshes,
        }
    }

    fn ours(&self, key: &TokenKey) -> auth_core::AccessToken {
        self.manager
            .access_token(black_box(key))
            .now_or_never()
            .expect("the fast path completes without awaiting")
            .expect("a valid cached token")
    }

    fn hand(&self, key: &TokenKey) -> Arc<Cached> {
        self.hand
            .token(black_box(key))
            .now_or_never()
            .expect("the hand-written cached path completes without awaiting")
    }

    fn yup(&self) -> yup_oauth2::AccessToken {
        self.yup
            .token(black_box(&[SCOPE]))
            .now_or_never()
            .expect("yup-oauth2's cached path completes without awaiting")
            .expect("a valid cached token")
    }

    /// The keys of thread `thread` of 2: disjoint halves.
    fn own_keys(&self, thread: usize) -> &[TokenKey] {
        let per = self.keys.len() / 2;
        &self.keys[thread * per..(thread + 1) * per]
    }

    /// `n` refreshes by `side`, each on a worker thread of the runtime as a
    /// request handler would make it; the time per refresh. Checks that
    /// each one reached the server.
    fn refresh(self: &Arc<Self>, side: Side, n: u64) -> Duration {
        let world = Arc::clone(self);
        let took = self.rt.block_on(async move {
            let task = tokio::spawn(async move {
                let started = Instant::now();
                for _ in 0..n {
                    match side {
                        Side::Ours => {
                            black_box(world.manager.refresh(&world.key).await.expect("a refresh"));
                        }
                        Side::Hand => {
                            black_box(world.hand.refresh(&world.key, &world.refresh_token).await);
                        }
                        Side::Provider => {
                            let current = lock(&world.provider_token).clone();
                            let fresh = world.provider.refresh(&current).await.expect("a refresh");
                            *lock(&world.provider_token) = current.merge_refreshed(fresh);
                        }
                        Side::Yup => {
                            black_box(
                                world
                                    .yup
                                    .force_refreshed_token(&[SCOPE])
                                    .await
                                    .expect("a refresh"),
                            );
                        }
                    }
                }
                started.elapsed()
            });
            task.await.expect("the refresh task")
        });
        let now = self.emulator.counters().google_token_refresh;
        let before = self.refreshes.swap(now, Ordering::Relaxed);
        assert_eq!(
            now - before,
            n,
            "{side:?}: not every refresh reached the server"
        );
        took / u32::try_from(n).expect("a small batch")
    }
}

#[derive(Debug, Clone, Copy)]
enum Side {
    Ours,
    Provider,
    Hand,
    Yup,
}

/// Two threads over their own halves of the keys.
fn two_threads_own_keys<T>(
    calls: u64,
    world: &World,
    op: impl Fn(&TokenKey) -> T + Sync,
) -> Duration {
    threads::two_threads_own_keys(calls, [world.own_keys(0), world.own_keys(1)], op)
}

fn per_call(total: Duration, calls: u64) -> Duration {
    total / u32::try_from(calls).expect("a batch that fits")
}

fn bench(c: &mut Criterion) {
    let world = Arc::new(World::new());
    if let Some((side, n)) = profile_request() {
        // Warm up (connections, allocator), then the part to profile.
        world.refresh(side, 100);
        let per = world.refresh(side, n);
        #[allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]
        {
            println!("PROFILE peers/{side:?}: {per:.3?} per refresh over {n}");
        }
        return;
    }
    let key = world.key.clone();

    let mut group = c.benchmark_group("peers/cached_1_thread");
    group.bench_function("token_keeper_access_token", |b| {
        b.iter_custom(|iters| one_thread(iters, || world.ours(&key)));
    });
    group.bench_function("yup_oauth2_token", |b| {
        b.iter_custom(|iters| one_thread(iters, || world.yup()));
    });
    group.bench_function("hand_written_rwlock_oauth2", |b| {
        b.iter_custom(|iters| one_thread(iters, || world.hand(&key)));
    });
    group.finish();

    let mut group = c.benchmark_group("peers/cached_2_threads_own_keys");
    group.bench_function("token_keeper_access_token", |b| {
        b.iter_custom(|iters| two_threads_own_keys(iters, &world, |k| world.ours(k)));
    });
    group.bench_function("hand_written_rwlock_oauth2", |b| {
        b.iter_custom(|iters| two_threads_own_keys(iters, &world, |k| world.hand(k)));
    });
    group.finish();

    let mut group = c.benchmark_group("peers/refresh");
    group.sample_size(10);
    for (name, side) in [
        ("token_keeper_refresh", Side::Ours),
        ("yup_oauth2_force_refreshed_token", Side::Yup),
        ("hand_written_oauth2_refresh", Side::Hand),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| world.refresh(side, iters) * u32::try_from(iters).unwrap_or(1));
        });
    }
    group.finish();

    summary(&world);
}

/// `PEERS_PROFILE=SIDE[:N]` (`Ours`, `Provider`, `Hand` or `Yup`): run only
/// `N` (default 2,000) refreshes of that side and nothing else, for a
/// profiler such as `valgrind --tool=callgrind`.
fn profile_request() -> Option<(Side, u64)> {
    let spec = std::env::var("PEERS_PROFILE").ok()?;
    let (name, n) = spec.split_once(':').unwrap_or((&spec, "2000"));
    let side = [Side::Ours, Side::Provider, Side::Hand, Side::Yup]
        .into_iter()
        .find(|side| format!("{side:?}") == name)
        .unwrap_or_else(|| panic!("PEERS_PROFILE: no side named {name}"));
    Some((side, n.parse().expect("PEERS_PROFILE: N is a number")))
}

/// The goals, each as the median ratio of alternating rounds.
fn summary(world: &Arc<World>) {
    let quick = quick_mode();
    let (rounds, refresh_rounds, calls, refreshes) = if quick {
        (1, 1, 1_000, 2)
    } else {
        (ROUNDS, REFRESH_ROUNDS, CALLS, REFRESHES)
    };
    let key = world.key.clone();
    heading("peers: cached path, 1 thread");
    let vs_yup = compare(
        rounds,
        || per_call(one_thread(calls, || world.ours(&key)), calls),
        || per_call(one_thread(calls, || world.yup()), calls),
    );
    report(
        "cached/1_thread vs yup-oauth2",
        "access_token",
        "yup token",
        &vs_yup,
        Some(1.0),
    );
    let vs_hand = compare(
        rounds,
        || per_call(one_thread(calls, || world.ours(&key)), calls),
        || per_call(one_thread(calls, || world.hand(&key)), calls),
    );
    report(
        "cached/1_thread vs hand-written",
        "access_token",
        "RwLock<HashMap> + oauth2",
        &vs_hand,
        None,
    );

    heading("peers: cached path, 2 threads over their own keys (time per call)");
    let two = compare(
        rounds,
        || per_call(two_threads_own_keys(calls, world, |k| world.ours(k)), calls),
        || per_call(two_threads_own_keys(calls, world, |k| world.hand(k)), calls),
    );
    report(
        "cached/2_threads_own_keys vs hand-written",
        "access_token",
        "RwLock<HashMap> + oauth2",
        &two,
        Some(1.0),
    );

    heading("peers: one refresh against the emulated Google token endpoint");
    let hand = compare(
        refresh_rounds,
        || world.refresh(Side::Ours, refreshes),
        || world.refresh(Side::Hand, refreshes),
    );
    report(
        "refresh vs hand-written",
        "manager refresh",
        "oauth2 + map",
        &hand,
        None,
    );
    let provider = compare(
        refresh_rounds,
        || world.refresh(Side::Provider, refreshes),
        || world.refresh(Side::Hand, refreshes),
    );
    report(
        "refresh: the provider alone vs hand-written",
        "GoogleHealthProvider::refresh",
        "oauth2 + map",
        &provider,
        None,
    );
    let over = compare(
        refresh_rounds,
        || world.refresh(Side::Ours, refreshes),
        || world.refresh(Side::Provider, refreshes),
    );
    report(
        "refresh: the manager vs its provider alone",
        "manager refresh",
        "GoogleHealthProvider::refresh",
        &over,
        None,
    );
    let yup = compare(
        refresh_rounds,
        || world.refresh(Side::Ours, refreshes),
        || world.refresh(Side::Yup, refreshes),
    );
    report(
        "refresh vs yup-oauth2",
        "manager refresh",
        "yup force_refreshed_token",
        &yup,
        None,
    );
    let (fastest, cmp) = if hand.baseline <= yup.baseline {
        ("hand-written oauth2", hand)
    } else {
        ("yup-oauth2", yup)
    };
    report(
        &format!("refresh vs the fastest peer ({fastest})"),
        "manager refresh",
        fastest,
        &cmp,
        Some(1.1),
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
