//! The hot path: `TokenManager::access_token` for a valid cached token,
//! against the least any cache can do: a `std::sync::RwLock<HashMap<TokenKey,
//! Arc<TokenSet>>>` lookup, an `Arc` clone and a `SystemTime::now()` read.
//! Budgets (round 2): at most 1.5x with 1 thread; and with 2 threads, each
//! over many keys of its own (a web app serving many users), at least 1.7x
//! the throughput of 1 thread. The same-key figure is reported too.
//!
//! Run: `cargo bench -p benchmarks --bench hot_path`
//!
//! The manager holds 1,000 accounts (memory store, `FakeProvider`), each
//! token valid for 8 hours, so the fast path always answers; the baseline
//! map holds the same 1,000 tokens. Both look up the same account. The
//! `access_token` future is polled once with `FutureExt::now_or_never`,
//! which is all the fast path needs (it never awaits); a `None` would mean
//! it did and panics. A runtime's `block_on` would add more than the
//! lookup costs.
//!
//! "2 threads, same key" is two OS threads calling concurrently on the same
//! key; "2 threads, own keys" gives each thread 500 accounts of its own,
//! cycled through. Each figure is the wall time (first thread's start to
//! last thread's end) divided by the calls of both threads (the inverse of
//! throughput), so perfect scaling would halve the 1-thread figure. The
//! scaling ratio compares the manager with 2 threads over own keys against
//! the manager with 1 thread over all 1,000 keys: at most 1/1.7 = 0.588x
//! time per call (at least 1.7x the throughput).
//!
//! After the criterion groups, a summary loop alternates 2,000,000-call
//! batches of candidate and baseline for 11 rounds and prints the median
//! per-round ratio (lines starting `RATIO`), plus the share of the clock
//! read in the baseline.

#![allow(
    missing_docs,
    reason = "criterion_main! generates an undocumented main"
)]

mod support;

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use auth_core::testing::FakeProvider;
use auth_core::{AccessToken, TokenKey, TokenManager, TokenProvider, TokenSet};
use criterion::{Criterion, criterion_group, criterion_main};
use futures::FutureExt;
use store_memory::MemoryTokenStore;
use support::threads::{self, one_thread, one_thread_keys, two_threads};

const ACCOUNTS: usize = 1_000;
const BUDGET: f64 = 1.5;
/// Time per call with 2 threads over own keys, against 1 thread: at most
/// this (throughput at least 1.7x).
const SCALING_BUDGET: f64 = 1.0 / 1.7;
const ROUNDS: usize = 11;
const CALLS_PER_ROUND: u64 = 2_000_000;

/// The baseline: what any token cache must do at least.
struct BareCache {
    map: RwLock<HashMap<TokenKey, Arc<TokenSet>>>,
}

impl BareCache {
    fn get(&self, key: &TokenKey) -> (Arc<TokenSet>, SystemTime) {
        let now = SystemTime::now();
        let map = self.map.read().unwrap_or_else(PoisonError::into_inner);
        let token = map.get(key).expect("the key is cached");
        (Arc::clone(token), now)
    }
}

struct Fixture {
    manager: TokenManager,
    provider: Arc<FakeProvider>,
    bare: BareCache,
    key: TokenKey,
    keys: Vec<TokenKey>,
}

impl Fixture {
    fn new() -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let store = MemoryTokenStore::new();
        let provider = Arc::new(FakeProvider::new("fitbit"));
        let manager = TokenManager::builder(Arc::new(store.clone()))
            .provider(Arc::clone(&provider) as Arc<dyn TokenProvider>)
            .build();
        let now = SystemTime::now();
        let mut map = HashMap::new();
        let keys: Vec<TokenKey> = (0..ACCOUNTS)
            .map(|i| TokenKey::parse("fitbit", &format!("user-{i:04}")).expect("a valid key"))
            .collect();
        rt.block_on(async {
            for (i, key) in keys.iter().enumerate() {
                let token =
                    TokenSet::new(format!("access-{i:04}-{}", "x".repeat(280)), "Bearer", now)
                        .with_refresh_token(format!("refresh-{i:04}"))
                        .with_expires_in(Duration::from_secs(8 * 3600))
                        .with_scopes(["activity", "sleep"])
                        .with_extra("user_id", serde_json::json!(key.account.as_str()));
                store.put(key, &token).await.expect("store");
                // The first call reads the store and fills the manager's cache.
                manager.access_token(key).await.expect("a valid token");
                map.insert(key.clone(), Arc::new(token));
            }
        });
        let key = keys[ACCOUNTS / 2].clone();
        Self {
            manager,
            provider,
            bare: BareCache {
                map: RwLock::new(map),
            },
            key,
            keys,
        }
    }

    fn manager_call_on(&self, key: &TokenKey) -> AccessToken {
        self.manager
            .access_token(black_box(key))
            .now_or_never()
            .expect("the fast path completes without awaiting")
            .expect("a valid cached token")
    }

    /// The keys of thread `thread` of `threads`: disjoint halves.
    fn own_keys(&self, thread: usize, threads: usize) -> &[TokenKey] {
        let per = self.keys.len() / threads;
        &self.keys[thread * per..(thread + 1) * per]
    }

    fn manager_call(&self) -> AccessToken {
        self.manager
            .access_token(black_box(&self.key))
            .now_or_never()
            .expect("the fast path completes without awaiting")
            .expect("a valid cached token")
    }

    fn bare_call(&self) -> (Arc<TokenSet>, SystemTime) {
        self.bare.get(black_box(&self.key))
    }
}

/// Two threads over their own halves of the keys.
fn two_threads_own_keys<T>(
    calls: u64,
    f: &Fixture,
    op: impl Fn(&TokenKey) -> T + Sync,
) -> Duration {
    threads::two_threads_own_keys(calls, [f.own_keys(0, 2), f.own_keys(1, 2)], op)
}

fn bench(c: &mut Criterion) {
    let f = Fixture::new();

    let mut group = c.benchmark_group("hot_path/1_thread");
    group.bench_function("access_token", |b| {
        b.iter_custom(|iters| one_thread(iters, || f.manager_call()));
    });
    group.bench_function("rwlock_hashmap_baseline", |b| {
        b.iter_custom(|iters| one_thread(iters, || f.bare_call()));
    });
    group.finish();

    let mut group = c.benchmark_group("hot_path/2_threads");
    group.bench_function("access_token", |b| {
        b.iter_custom(|iters| two_threads(iters, || f.manager_call()));
    });
    group.bench_function("rwlock_hashmap_baseline", |b| {
        b.iter_custom(|iters| two_threads(iters, || f.bare_call()));
    });
    group.finish();

    let mut group = c.benchmark_group("hot_path/own_keys");
    group.bench_function("access_token_1_thread", |b| {
        b.iter_custom(|iters| one_thread_keys(iters, &f.keys, |k| f.manager_call_on(k)));
    });
    group.bench_function("access_token_2_threads", |b| {
        b.iter_custom(|iters| two_threads_own_keys(iters, &f, |k| f.manager_call_on(k)));
    });
    group.finish();

    summary(&f);
}

fn summary(f: &Fixture) {
    let (rounds, calls) = if support::quick_mode() {
        (1, 1_000)
    } else {
        (ROUNDS, CALLS_PER_ROUND)
    };
    support::heading(&format!(
        "hot_path summary: {calls} calls per side per round ({} per thread with 2 threads)",
        calls / 2
    ));
    let one = support::compare(
        rounds,
        || one_thread(calls, || f.manager_call()) / calls as u32,
        || one_thread(calls, || f.bare_call()) / calls as u32,
    );
    support::report(
        "hot_path/1_thread",
        "access_token",
        "RwLock<HashMap>+Arc+now",
        &one,
        Some(BUDGET),
    );
    let per_thread = calls / 2;
    let two = support::compare(
        rounds,
        || two_threads(per_thread, || f.manager_call()) / per_thread as u32,
        || two_threads(per_thread, || f.bare_call()) / per_thread as u32,
    );
    support::report(
        "hot_path/2_threads_same_key",
        "access_token",
        "RwLock<HashMap>+Arc+now",
        &two,
        None,
    );
    let scaling = support::compare(
        rounds,
        || two_threads_own_keys(per_thread, f, |k| f.manager_call_on(k)) / per_thread as u32,
        || one_thread_keys(calls, &f.keys, |k| f.manager_call_on(k)) / calls as u32,
    );
    support::report(
        "hot_path/scaling_own_keys",
        "access_token 2 threads (time per call)",
        "access_token 1 thread",
        &scaling,
        Some(SCALING_BUDGET),
    );
    let bare_scaling = support::compare(
        rounds,
        || two_threads_own_keys(per_thread, f, |k| f.bare.get(black_box(k))) / per_thread as u32,
        || one_thread_keys(calls, &f.keys, |k| f.bare.get(black_box(k))) / calls as u32,
    );
    support::report(
        "hot_path/scaling_own_keys_baseline",
        "RwLock<HashMap> 2 threads (time per call)",
        "RwLock<HashMap> 1 thread",
        &bare_scaling,
        None,
    );
    // What the budget is made of: the clock read alone, against the whole
    // baseline.
    let clock = support::compare(
        rounds,
        || one_thread(calls, SystemTime::now) / calls as u32,
        || one_thread(calls, || f.bare_call()) / calls as u32,
    );
    support::report(
        "hot_path/clock_share",
        "SystemTime::now()",
        "RwLock<HashMap>+Arc+now",
        &clock,
        None,
    );
    assert_eq!(
        f.provider.refresh_calls(),
        0,
        "a valid token must never be refreshed on the hot path"
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
