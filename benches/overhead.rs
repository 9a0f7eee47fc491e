//! Overhead: one refresh through `TokenManager` and `FitbitProvider`,
//! against one refresh made directly with the `oauth2` crate, both against
//! the same in-process emulator and the same demo server app. Budget
//! (BENCHMARKS.md, section 3): at most 1.1x.
//!
//! Run: `cargo bench -p benchmarks --bench overhead`
//!
//! - Candidate: `TokenManager::force_refresh` over the memory store, which
//!   runs the whole protocol: a spawned single flight, the store's key
//!   lock, a reload, the provider's refresh, a compare-and-swap save, the
//!   cache update and an event.
//! - Baseline: `BasicClient::exchange_refresh_token(..).request_async(..)`
//!   with Basic auth and a closure over a `reqwest` client built once, with
//!   the provider's client settings (no redirects, the same timeouts): what
//!   an app without this library writes.
//! - Also measured, to split the overhead: `FitbitProvider::refresh` alone
//!   (the provider's share: hooks, response recording, the token set);
//!   the same call run in a spawned task that the caller awaits, as the
//!   manager's single flight runs it; and `force_refresh` through a manager
//!   whose `FakeProvider` answers at once (the protocol's own bookkeeping,
//!   with no network).
//!
//! Each side keeps its own grant and chains its refreshes: Fitbit rotates
//! the refresh token, and each refresh uses the one the previous refresh
//! returned (the emulator is in strict mode, so a reuse would fail). The
//! emulator's refresh counter is checked against the number of refreshes
//! made. Every timed part runs inside a task on the 2-worker runtime that
//! also runs the emulator, as a server's request handler would.
//!
//! After the criterion group, a summary loop alternates 4-refresh batches
//! of two sides for 1,001 rounds and prints the median per-round ratios
//! (lines starting `RATIO`): short rounds, so that both sides of a round
//! see the same load from whatever else the machine runs. A diagnosis runs
//! each side alone for 5,000 refreshes and prints its time and the thread
//! context switches of the process per refresh (lines starting
//! `SWITCHES`). Then it repeats manager against raw with a 20 ms server
//! delay on every token request (the emulator's `Fault::Delay`), as a
//! stand-in for a real network round trip.
//!
//! `OVERHEAD_BATCH=N` sets the refreshes per side per round (default 4), to
//! see how much of the ratio is the cost of starting a batch cold.
//!
//! To profile one side, `OVERHEAD_PROFILE=Bookkeeping[:N]` runs only `N`
//! refreshes of it (after 100 to warm up), for example under
//! `valgrind --tool=callgrind`.

#![allow(
    missing_docs,
    reason = "criterion_main! generates an undocumented main"
)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use auth_core::secrecy::ExposeSecret;
use auth_core::testing::FakeProvider;
use auth_core::{RetryPolicy, TokenKey, TokenManager, TokenProvider, TokenSet};
use auth_emulator::{Endpoint, Fault};
use criterion::{Criterion, criterion_group, criterion_main};
use store_memory::MemoryTokenStore;
use support::lock;
use support::refresh::{World, rotated};

const BUDGET: f64 = 1.1;
const ROUNDS: usize = 1_001;
const REFRESHES_PER_ROUND: u64 = 4;
const SLOW_ROUNDS: usize = 9;
const DIAGNOSIS_REFRESHES: u64 = 5_000;
const SERVER_DELAY: Duration = Duration::from_millis(20);

/// What one refresh goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// `TokenManager::force_refresh` with the Fitbit provider.
    Manager,
    /// The `oauth2` crate directly.
    Raw,
    /// `FitbitProvider::refresh` alone.
    Provider,
    /// `TokenManager::force_refresh` with a `FakeProvider`: no network.
    Bookkeeping,
    /// `FitbitProvider::refresh` run in a task of its own that the caller
    /// awaits, as the first version of the manager's single flight ran it.
    SpawnedProvider,
    /// `FitbitProvider::refresh` behind a `futures` `Shared`, as an earlier
    /// version of the manager's single flight ran it (kept to show why it
    /// no longer does).
    SharedProvider,
}

/// The sides, each with its own chained grant.
struct Sides {
    world: Arc<World>,
    manager_key: TokenKey,
    raw_refresh_token: Mutex<String>,
    provider_token: Mutex<TokenSet>,
    bookkeeping: TokenManager,
    bookkeeping_key: TokenKey,
}

impl Sides {
    fn new(world: Arc<World>) -> Self {
        let (manager_key, _) = world.store_expired("overhead-manager");
        let (_, raw) = world.seed_expired("overhead-raw");
        let (_, provider_token) = world.seed_expired("overhead-provider");
        let raw_refresh_token = raw
            .refresh_token()
            .expect("seeded with a refresh token")
            .expose_secret()
            .to_owned();
        let store = MemoryTokenStore::new();
        let bookkeeping = TokenManager::builder(Arc::new(store.clone()))
            .provider(Arc::new(FakeProvider::new("fake")) as Arc<dyn TokenProvider>)
            .retry_policy(RetryPolicy::none())
            .build();
        let bookkeeping_key = TokenKey::parse("fake", "26FWFL").expect("a valid key");
        let (_, token) = world.seed_expired("overhead-bookkeeping");
        world
            .rt
            .block_on(store.put(&bookkeeping_key, &token))
            .expect("store the token");
        Self {
            world,
            manager_key,
            raw_refresh_token: Mutex::new(raw_refresh_token),
            provider_token: Mutex::new(provider_token),
            bookkeeping,
            bookkeeping_key,
        }
    }

    async fn one(&self, side: Side) {
        match side {
            Side::Manager => {
                self.world
                    .manager
                    .refresh(&self.manager_key)
                    .await
                    .expect("the manager refresh succeeds");
            }
            Side::Raw => {
                let current = lock(&self.raw_refresh_token).clone();
                let response = self.world.raw_refresh(&current).await;
                *lock(&self.raw_refresh_token) = rotated(&response);
            }
            Side::Provider => {
                let current = lock(&self.provider_token).clone();
                let fresh = self
                    .world
                    .provider
                    .refresh(&current)
                    .await
                    .expect("the provider refresh succeeds");
                *lock(&self.provider_token) = current.merge_refreshed(fresh);
            }
            Side::SpawnedProvider => {
                let current = lock(&self.provider_token).clone();
                let provider = Arc::clone(&self.world.provider);
                let sent = current.clone();
                let fresh = tokio::spawn(async move { provider.refresh(&sent).await })
                    .await
                    .expect("the refresh task completes")
                    .expect("the provider refresh succeeds");
                *lock(&self.provider_token) = current.merge_refreshed(fresh);
            }
            Side::SharedProvider => {
                use futures::FutureExt as _;
                let current = lock(&self.provider_token).clone();
                let provider = Arc::clone(&self.world.provider);
                let sent = current.clone();
                let fresh = async move { provider.refresh(&sent).await.map_err(|e| e.to_string()) }
                    .boxed()
                    .shared()
                    .await
                    .expect("the provider refresh succeeds");
                *lock(&self.provider_token) = current.merge_refreshed(fresh);
            }
            Side::Bookkeeping => {
                self.bookkeeping
                    .refresh(&self.bookkeeping_key)
                    .await
                    .expect("the fake refresh succeeds");
            }
        }
    }

    /// The time of `n` refreshes of one side, timed inside a task on the
    /// runtime, checking that the emulator saw exactly one token request
    /// per refresh (none for the bookkeeping side).
    fn run(self: &Arc<Self>, side: Side, n: u64) -> Duration {
        let before = self.world.refreshes();
        let sides = Arc::clone(self);
        let elapsed = self.world.in_task(async move {
            let started = Instant::now();
            for _ in 0..n {
                sides.one(side).await;
            }
            started.elapsed()
        });
        let expected = if side == Side::Bookkeeping { 0 } else { n };
        let made = self.world.refreshes() - before;
        assert_eq!(made, expected, "{side:?}: one token request per refresh");
        elapsed
    }

    /// Time per refresh over `n` refreshes of one side.
    fn per_refresh(self: &Arc<Self>, side: Side, n: u64) -> Duration {
        self.run(side, n) / u32::try_from(n).expect("a small batch")
    }
}

fn bench(c: &mut Criterion) {
    let world = Arc::new(World::new());
    let sides = Arc::new(Sides::new(Arc::clone(&world)));
    if let Some((side, n)) = profile_request() {
        // Warm up (connections, allocator), then the part to profile.
        sides.run(side, 100);
        sides.run(side, n);
        return;
    }

    let mut group = c.benchmark_group("overhead");
    for (name, side) in [
        ("token_manager_force_refresh", Side::Manager),
        ("raw_oauth2_refresh", Side::Raw),
        ("fitbit_provider_refresh", Side::Provider),
        ("manager_bookkeeping_no_network", Side::Bookkeeping),
        ("fitbit_provider_refresh_spawned", Side::SpawnedProvider),
    ] {
        group.bench_function(name, |b| b.iter_custom(|iters| sides.run(side, iters)));
    }
    group.finish();

    let (rounds, n) = if support::quick_mode() {
        (1, 2)
    } else {
        (
            ROUNDS,
            std::env::var("OVERHEAD_BATCH")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(REFRESHES_PER_ROUND),
        )
    };
    support::heading(&format!(
        "overhead summary: {n} chained refreshes per side per round"
    ));
    let pairs = [
        (
            "overhead/manager_vs_raw_oauth2",
            Side::Manager,
            "TokenManager::force_refresh",
            Side::Raw,
            "raw oauth2 refresh",
            Some(BUDGET),
        ),
        (
            "overhead/provider_vs_raw_oauth2",
            Side::Provider,
            "FitbitProvider::refresh",
            Side::Raw,
            "raw oauth2 refresh",
            None,
        ),
        (
            "overhead/manager_vs_provider",
            Side::Manager,
            "TokenManager::force_refresh",
            Side::Provider,
            "FitbitProvider::refresh",
            None,
        ),
        (
            "overhead/spawned_provider_vs_provider",
            Side::SpawnedProvider,
            "FitbitProvider::refresh in a spawned task",
            Side::Provider,
            "FitbitProvider::refresh",
            None,
        ),
        (
            "overhead/bookkeeping_vs_raw_oauth2",
            Side::Bookkeeping,
            "force_refresh with FakeProvider (no network)",
            Side::Raw,
            "raw oauth2 refresh",
            None,
        ),
    ];
    for (name, candidate, candidate_name, baseline, baseline_name, budget) in pairs {
        let cmp = support::compare(
            rounds,
            || sides.per_refresh(candidate, n),
            || sides.per_refresh(baseline, n),
        );
        support::report(name, candidate_name, baseline_name, &cmp, budget);
    }

    diagnosis(
        &sides,
        if support::quick_mode() {
            2
        } else {
            DIAGNOSIS_REFRESHES
        },
    );

    support::heading(&format!(
        "overhead with a {SERVER_DELAY:?} server delay on every token request"
    ));
    let slow_rounds = if support::quick_mode() {
        1
    } else {
        SLOW_ROUNDS
    };
    let delayed = |side: Side| {
        world.emulator.inject(
            Endpoint::FitbitToken,
            Fault::Delay(SERVER_DELAY),
            u32::try_from(n).expect("a small batch"),
        );
        let per_refresh = sides.per_refresh(side, n);
        world.emulator.clear_faults();
        per_refresh
    };
    let cmp = support::compare(
        slow_rounds,
        || delayed(Side::Manager),
        || delayed(Side::Raw),
    );
    support::report(
        "overhead/delayed_manager_vs_raw_oauth2",
        "TokenManager::force_refresh",
        "raw oauth2 refresh",
        &cmp,
        Some(BUDGET),
    );
}

/// `OVERHEAD_PROFILE=SIDE[:N]` (a `Side` name, such as `Bookkeeping`):
/// run only `N` (default 2,000) refreshes of that side and nothing else,
/// for a profiler such as `valgrind --tool=callgrind`.
fn profile_request() -> Option<(Side, u64)> {
    let spec = std::env::var("OVERHEAD_PROFILE").ok()?;
    let (name, n) = spec.split_once(':').unwrap_or((&spec, "2000"));
    let side = [
        Side::Manager,
        Side::Raw,
        Side::Provider,
        Side::Bookkeeping,
        Side::SpawnedProvider,
        Side::SharedProvider,
    ]
    .into_iter()
    .find(|side| format!("{side:?}") == name)
    .unwrap_or_else(|| panic!("OVERHEAD_PROFILE: no side named {name}"));
    Some((side, n.parse().expect("OVERHEAD_PROFILE: N is a number")))
}

/// Each side alone for `n` refreshes: time and thread context switches
/// per refresh (all threads of this process, from `/proc`; Linux only).
#[allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]
fn diagnosis(sides: &Arc<Sides>, n: u64) {
    support::heading(&format!(
        "overhead diagnosis: each side alone, {n} refreshes, thread context switches per refresh"
    ));
    for side in [
        Side::Raw,
        Side::Provider,
        Side::SpawnedProvider,
        Side::SharedProvider,
        Side::Manager,
        Side::Bookkeeping,
    ] {
        let before = support::context_switches();
        let per_refresh = sides.run(side, n) / u32::try_from(n).expect("a small batch");
        let switches = support::context_switches()
            .zip(before)
            .map(|(after, before)| format!("{:.2}", (after - before) as f64 / n as f64))
            .unwrap_or_else(|| "n/a".to_owned());
        println!(
            "SWITCHES overhead/{side:?}: {per_refresh:.3?} per refresh, {switches} context switches per refresh"
        );
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = bench
}
criterion_main!(benches);
