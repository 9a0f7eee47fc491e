//! The PostgreSQL store under a manager: refreshes per second through 4
//! managers (separate pools, like 4 hosts) against the emulator answering
//! every refresh after 100 ms, exactly one refresh per account, and how
//! many database connections they opened. Reported, no budget.
//!
//! Run: `cargo bench -p token-keeper-store-postgres --bench throughput`.
//! It starts its own throwaway cluster (fsync on) or uses
//! `TOKEN_KEEPER_PG_URL`.

#![allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use auth_core::{Expect, Record, TokenKey, TokenManager, TokenSet, TokenStore};
use auth_emulator::{Emulator, Endpoint, Fault, demo};
use auth_fitbit::FitbitProvider;
use store_postgres::PostgresTokenStore;
use test_support::postgres;
use tokio::runtime::Runtime;

/// Saves `token` over whatever `key` holds, under a lease.
async fn put(store: &PostgresTokenStore, key: &TokenKey, token: &TokenSet) {
    let lease = store
        .lock(key, Duration::from_secs(10))
        .await
        .expect("lock");
    let expect = match lease.load().await.expect("load") {
        Some(stored) => Expect::Version(stored.version),
        None => Expect::Absent,
    };
    lease
        .save_and_release(token, expect, Record::Clear)
        .await
        .expect("seed");
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (_cluster, url) = match std::env::var(postgres::URL_VAR) {
        Ok(url) if !url.is_empty() => (None, url),
        _ => {
            let c = postgres::Cluster::start_with(&[]);
            let url = c.url().to_owned();
            (Some(c), url)
        }
    };
    throughput(&rt, &url);
}

/// Refreshes per second through 4 managers, each with its own pool, with
/// every refresh answered after 100 ms.
fn throughput(rt: &Runtime, url: &str) {
    const MANAGERS: usize = 4;
    const ACCOUNTS: usize = 200;
    rt.block_on(async {
        let emulator = Emulator::builder()
            .with_demo_clients()
            .replay_window(false)
            .rate_limit_per_hour(1_000_000)
            .start()
            .await
            .expect("emulator");
        let mut managers = Vec::new();
        let mut stores = Vec::new();
        for _ in 0..MANAGERS {
            let store = PostgresTokenStore::builder()
                .schema("bench_throughput")
                .max_connections(4)
                .connect(url)
                .await
                .expect("connect");
            let fitbit = FitbitProvider::builder(demo::FITBIT_SERVER_CLIENT_ID)
                .client_secret(demo::FITBIT_SERVER_CLIENT_SECRET)
                .base_url(emulator.base_url())
                .expect("endpoints")
                .build()
                .expect("provider");
            stores.push(store.clone());
            managers.push(
                TokenManager::builder(Arc::new(store))
                    .provider(Arc::new(fitbit))
                    .build(),
            );
        }
        let keys: Vec<TokenKey> = (0..ACCOUNTS)
            .map(|i| TokenKey::parse("fitbit", &format!("TP{i:05}")).expect("key"))
            .collect();
        for (i, k) in keys.iter().enumerate() {
            let issued = emulator.seed_fitbit_grant(
                demo::FITBIT_SERVER_CLIENT_ID,
                &format!("TP{i:05}"),
                &["sleep"],
            );
            let expired = TokenSet::new(
                issued.access_token,
                "Bearer",
                SystemTime::now() - Duration::from_secs(9 * 3600),
            )
            .with_refresh_secret(issued.refresh_token.map(Into::into))
            .with_expires_in(Duration::from_secs(3600));
            put(&stores[0], k, &expired).await;
        }
        emulator.inject(
            Endpoint::FitbitToken,
            Fault::Delay(Duration::from_millis(100)),
            (ACCOUNTS * MANAGERS) as u32,
        );
        let started = Instant::now();
        let calls = keys.iter().flat_map(|k| {
            managers
                .iter()
                .map(move |m| async move { m.access_token(k).await })
        });
        let results = futures::future::join_all(calls).await;
        let took = started.elapsed();
        let ok = results.iter().filter(|r| r.is_ok()).count();
        let refreshes = emulator.counters().fitbit_token_refresh;
        let connections: u32 = stores.iter().map(|s| s.pool().size()).sum();
        println!(
            "  throughput: {ACCOUNTS} expired accounts asked for by {MANAGERS} managers at once \
             ({ok}/{} calls ok): {refreshes} refreshes in {:.2} s = {:.0} refreshes/s with a \
             100 ms server; {connections} database connections open across the {MANAGERS} pools \
             (max 4 each)",
            results.len(),
            took.as_secs_f64(),
            refreshes as f64 / took.as_secs_f64()
        );
    });
}
