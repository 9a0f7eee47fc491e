//! The stampede: 1,000 concurrent `access_token` callers on one expired
//! token, against one refresh round trip to the same in-process emulator.
//! Budget (BENCHMARKS.md, section 2): exactly one token request per stampede
//! (checked on every iteration, a panic otherwise) and a wall time of at
//! most 1.2x one raw refresh round trip.
//!
//! Run: `cargo bench -p benchmarks --bench stampede`
//!
//! Every iteration gets a new Fitbit user with a freshly seeded grant,
//! stored with an access token that expired an hour ago; the emulator runs
//! in strict mode (replay window off), so a second refresh with the same
//! token would revoke the grant and fail. Seeding and storing happen
//! outside the timed part. The stampede's time runs from spawning the
//! first of 1,000 tokio tasks, each calling `access_token`, to the last
//! one's answer, on a 2-worker runtime that also runs the emulator. Every
//! timed part, baselines included, runs inside a task on that runtime, as
//! a server's request handler would.
//!
//! Baselines, in the same group: one refresh made with the `oauth2` crate
//! directly (`BasicClient`, Basic auth, a `reqwest` client built once), the
//! budget's "raw round trip"; one `FitbitProvider::refresh` call, the same
//! request through this workspace's provider; and the test harness alone
//! (1,000 tasks spawned and joined, each answered by the cache), which is
//! what the stampede costs beyond the refresh itself at the least.
//!
//! After the criterion group, a summary loop alternates stampede and
//! baselines for 301 rounds and prints the median per-round ratios (lines
//! starting `RATIO`) and what the stampede costs beyond its harness (a line
//! starting `EXCESS`), then repeats the stampede and the raw round trip with
//! a 20 ms server delay (the emulator's `Fault::Delay`), as a stand-in for a
//! real network round trip.

#![allow(
    missing_docs,
    reason = "criterion_main! generates an undocumented main"
)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use auth_core::secrecy::ExposeSecret;
use auth_core::{AccessToken, TokenKey, TokenManager, TokenProvider};
use auth_emulator::{Endpoint, Fault};
use criterion::{Criterion, criterion_group, criterion_main};
use support::refresh::World;

const CALLERS: usize = 1_000;
const BUDGET: f64 = 1.2;
const ROUNDS: usize = 301;
const SLOW_ROUNDS: usize = 9;
const SERVER_DELAY: Duration = Duration::from_millis(20);

/// Stampedes run so far, each checked to make exactly one token request.
static STAMPEDES: AtomicU64 = AtomicU64::new(0);

/// One stampede on a freshly stored expired token; returns its wall time.
fn stampede(world: &Arc<World>) -> Duration {
    let (key, old) = world.store_expired("stampede");
    let before = world.refreshes();
    let manager = world.manager.clone();
    let (elapsed, token) = world.in_task(async move {
        let started = Instant::now();
        let token = callers(&manager, &key).await;
        (started.elapsed(), token)
    });
    let requests = world.refreshes() - before;
    assert_eq!(
        requests, 1,
        "{CALLERS} concurrent callers on an expired token made {requests} token requests; \
         the budget is exactly 1"
    );
    assert_ne!(token, old, "the expired token was refreshed");
    STAMPEDES.fetch_add(1, Ordering::Relaxed);
    elapsed
}

/// Spawns the callers, waits for all, checks they all got the same token,
/// and returns it.
async fn callers(manager: &TokenManager, key: &TokenKey) -> String {
    let tasks: Vec<_> = (0..CALLERS)
        .map(|_| {
            let manager = manager.clone();
            let key = key.clone();
            tokio::spawn(async move { manager.access_token(&key).await })
        })
        .collect();
    let mut first: Option<AccessToken> = None;
    for task in tasks {
        let token = task
            .await
            .expect("a caller task completes")
            .expect("every caller gets a token");
        match &first {
            None => first = Some(token),
            Some(t) => assert_eq!(t.secret(), token.secret(), "all callers share one token"),
        }
    }
    first.expect("at least one caller").secret().to_owned()
}

/// The harness alone: 1,000 callers on a token that is already fresh.
fn harness(world: &Arc<World>, key: &TokenKey) -> Duration {
    let before = world.refreshes();
    let manager = world.manager.clone();
    let key = key.clone();
    let elapsed = world.in_task(async move {
        let started = Instant::now();
        callers(&manager, &key).await;
        started.elapsed()
    });
    assert_eq!(
        world.refreshes(),
        before,
        "a fresh token is never refreshed"
    );
    elapsed
}

/// One raw `oauth2` crate refresh of a freshly seeded grant.
fn raw_round_trip(world: &Arc<World>) -> Duration {
    let (_, token) = world.seed_expired("raw");
    let refresh = token
        .refresh_token()
        .expect("seeded with a refresh token")
        .expose_secret()
        .to_owned();
    let before = world.refreshes();
    let w = Arc::clone(world);
    let elapsed = world.in_task(async move {
        let started = Instant::now();
        let response = w.raw_refresh(&refresh).await;
        let elapsed = started.elapsed();
        assert_ne!(support::refresh::rotated(&response), refresh);
        elapsed
    });
    assert_eq!(world.refreshes() - before, 1);
    elapsed
}

/// One `FitbitProvider::refresh` of a freshly seeded grant.
fn provider_round_trip(world: &Arc<World>) -> Duration {
    let (_, token) = world.seed_expired("provider");
    let before = world.refreshes();
    let provider = Arc::clone(&world.provider);
    let elapsed = world.in_task(async move {
        let started = Instant::now();
        let fresh = provider
            .refresh(&token)
            .await
            .expect("the provider refresh succeeds");
        let elapsed = started.elapsed();
        assert!(fresh.refresh_token().is_some());
        elapsed
    });
    assert_eq!(world.refreshes() - before, 1);
    elapsed
}

fn sum(iters: u64, mut one: impl FnMut() -> Duration) -> Duration {
    (0..iters).map(|_| one()).sum()
}

fn bench(c: &mut Criterion) {
    let world = Arc::new(World::new());
    let (fresh_key, _) = world.store_expired("harness");
    // Refresh it once; from then on it is a valid cached token.
    world
        .rt
        .block_on(world.manager.access_token(&fresh_key))
        .expect("the harness token refreshes");

    let mut group = c.benchmark_group("stampede");
    group.bench_function("1000_callers_expired_token", |b| {
        b.iter_custom(|iters| sum(iters, || stampede(&world)));
    });
    group.bench_function("raw_oauth2_refresh", |b| {
        b.iter_custom(|iters| sum(iters, || raw_round_trip(&world)));
    });
    group.bench_function("fitbit_provider_refresh", |b| {
        b.iter_custom(|iters| sum(iters, || provider_round_trip(&world)));
    });
    group.bench_function("1000_callers_valid_token_harness", |b| {
        b.iter_custom(|iters| sum(iters, || harness(&world, &fresh_key)));
    });
    group.finish();

    summary(&world, &fresh_key);
}

fn summary(world: &Arc<World>, fresh_key: &TokenKey) {
    let quick = support::quick_mode();
    let (rounds, slow_rounds) = if quick { (1, 1) } else { (ROUNDS, SLOW_ROUNDS) };
    support::heading(&format!(
        "stampede summary: {CALLERS} callers, exactly 1 token request checked every time"
    ));
    let raw = support::compare(rounds, || stampede(world), || raw_round_trip(world));
    support::report(
        "stampede/vs_raw_oauth2",
        "1000 callers",
        "raw oauth2 refresh",
        &raw,
        Some(BUDGET),
    );
    let provider = support::compare(rounds, || stampede(world), || provider_round_trip(world));
    support::report(
        "stampede/vs_fitbit_provider",
        "1000 callers",
        "FitbitProvider::refresh",
        &provider,
        None,
    );
    let harness = support::compare(
        rounds,
        || harness(world, fresh_key),
        || raw_round_trip(world),
    );
    support::report(
        "stampede/harness_vs_raw_oauth2",
        "1000 tasks, cached token",
        "raw oauth2 refresh",
        &harness,
        None,
    );

    excess(world, fresh_key, rounds);

    support::heading(&format!(
        "stampede with a {SERVER_DELAY:?} server delay on every token request"
    ));
    let slow = |run: &dyn Fn() -> Duration| {
        world
            .emulator
            .inject(Endpoint::FitbitToken, Fault::Delay(SERVER_DELAY), 1);
        let elapsed = run();
        world.emulator.clear_faults();
        elapsed
    };
    let delayed = support::compare(
        slow_rounds,
        || slow(&|| stampede(world)),
        || slow(&|| raw_round_trip(world)),
    );
    support::report(
        "stampede/delayed_vs_raw_oauth2",
        "1000 callers",
        "raw oauth2 refresh",
        &delayed,
        Some(BUDGET),
    );
    support::heading(&format!(
        "stampede: {} stampedes of {CALLERS} callers in this run, each made exactly 1 token request",
        STAMPEDES.load(Ordering::Relaxed)
    ));
}

/// What the stampede costs beyond its harness: in each round, the
/// stampede, the harness alone and one raw round trip (in rotating order);
/// the round's figure is (stampede - harness) / round trip. At most about 1
/// when the single flight adds nothing but its one refresh; less when that
/// refresh overlaps the spawning of the callers.
#[allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]
fn excess(world: &Arc<World>, fresh_key: &TokenKey, rounds: usize) {
    let mut ratios = Vec::with_capacity(rounds);
    let mut per_caller = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let mut times = [Duration::ZERO; 3];
        for i in 0..3 {
            let side = (round + i) % 3;
            times[side] = match side {
                0 => stampede(world),
                1 => harness(world, fresh_key),
                _ => raw_round_trip(world),
            };
        }
        let [stampede, harness, raw] = times.map(|t| t.as_secs_f64());
        ratios.push((stampede - harness) / raw);
        per_caller.push((stampede - raw) / CALLERS as f64);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "EXCESS stampede/beyond_harness: (1000 callers - 1000 tasks on a cached token) / raw oauth2 \
         refresh = {:.3}x; (1000 callers - raw refresh) / 1000 = {:.0} ns per caller \
         (medians of {rounds} rotating rounds)",
        median(ratios),
        median(per_caller) * 1e9,
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    targets = bench
}
criterion_main!(benches);
