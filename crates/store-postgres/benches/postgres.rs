//! The PostgreSQL store's budgets, against baselines measured in the same
//! run on the same server:
//!
//! - **cycle**: one lease + load + fenced save + release, as the manager's
//!   refresh does them (`lock`, `load_leased`, `save_leased`, then the
//!   release, awaited here so that its cost is charged), against a bare
//!   `BEGIN; SELECT … FOR UPDATE; UPDATE …; COMMIT` doing the same work on
//!   a plain table through the same pool (budget 1.5×). The manager's
//!   refresh is exactly this cycle: it no longer checks the lease before
//!   its first request to the provider (the leased load just did). For
//!   context, the summary also times the cycle with one `check` more, what
//!   a retry after a pause adds;
//! - **scale**: `load` and `save` with 100,000 rows in the table against
//!   10 rows (budget 1.5×);
//! - **throughput**: refreshes per second through 4 managers (separate
//!   pools, like 4 hosts) against the emulator answering every refresh
//!   after 100 ms, and how many database connections they opened.
//!
//! Run: `cargo bench -p token-keeper-store-postgres --bench postgres`
//! (add `-- --warm-up-time 1 --measurement-time 2` for a quicker run).
//!
//! It starts its own throwaway cluster, with the server's default
//! durability settings (fsync on), or uses `TOKEN_KEEPER_PG_URL`. After
//! criterion's own reports, a summary loop runs short rounds that
//! alternate between each pair, so that drift on a shared machine hits
//! both sides alike, and prints the median ratio and its spread. Every
//! timed part runs inside a task on the runtime, as a request handler
//! would call the store (see "How the ratio is computed" in
//! `BENCHMARKS.md`).

#![allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]
#![allow(
    missing_docs,
    reason = "criterion_main! generates an undocumented main"
)]

#[allow(dead_code, reason = "the benchmark needs only part of the harness")]
#[path = "../tests/support/cluster.rs"]
mod cluster;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use auth_core::{TokenKey, TokenManager, TokenSet, TokenStore, Version};
use auth_emulator::{Emulator, Endpoint, Fault, demo};
use auth_fitbit::{AppType, FitbitEndpoints, FitbitProvider};
use criterion::{Criterion, criterion_group, criterion_main};
use sqlx::PgPool;
use store_postgres::{PgLease, PostgresTokenStore};
use tokio::runtime::Runtime;

const LARGE: usize = 100_000;
const SMALL: usize = 10;
const ROUNDS: usize = 31;
const OPS_PER_ROUND: usize = 100;

fn token(tag: usize) -> TokenSet {
    let issued = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_000_000);
    TokenSet::new(format!("access-{tag:040}"), "Bearer", issued)
        .with_refresh_token(format!("refresh-{tag:040}"))
        .with_expires_in(Duration::from_secs(28_800))
        .with_scopes(["activity", "heartrate", "sleep"])
        .with_extra("user_id", serde_json::json!("26FWFL"))
}

fn key(i: usize) -> TokenKey {
    TokenKey::parse("fitbit", &format!("account-{i:06}")).expect("key")
}

struct World {
    rt: Runtime,
    _cluster: Option<cluster::Cluster>,
    url: String,
    small: PostgresTokenStore,
    large: PostgresTokenStore,
    bare_pool: PgPool,
    versions_small: Version,
    versions_large: Version,
}

fn world() -> World {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (cluster, url) = match std::env::var(cluster::URL_VAR) {
        Ok(url) if !url.is_empty() => (None, url),
        _ => {
            let c = cluster::Cluster::start_with(&[]);
            let url = c.url().to_owned();
            (Some(c), url)
        }
    };
    let (small, large, bare_pool) = rt.block_on(async {
        let open = |schema: &'static str| {
            let url = url.clone();
            async move {
                PostgresTokenStore::builder()
                    .schema(schema)
                    .max_connections(4)
                    .connect(&url)
                    .await
                    .expect("connect")
            }
        };
        let small = open("bench_small").await;
        let large = open("bench_large").await;
        for (store, n) in [(&small, SMALL), (&large, LARGE)] {
            let tables = store.tables();
            sqlx::query(&format!("TRUNCATE {}", quoted(&tables)))
                .execute(store.pool())
                .await
                .expect("truncate");
            let data = serde_json::to_string(&token(0)).unwrap();
            sqlx::query(&format!(
                "INSERT INTO {} (provider, account, version, data, data_md5) \
                 SELECT 'fitbit', 'account-' || lpad(i::text, 6, '0'), 1, $1::jsonb, md5($1::jsonb::text) \
                 FROM generate_series(0, $2 - 1) i",
                quoted(&tables)
            ))
            .bind(&data)
            .bind(n as i64)
            .execute(store.pool())
            .await
            .expect("fill");
            sqlx::query(&format!("VACUUM ANALYZE {}", quoted(&tables)))
                .execute(store.pool())
                .await
                .expect("analyze");
        }
        // The baseline's table: the same row shape, without leases.
        let bare_pool = small.pool().clone();
        sqlx::raw_sql(
            "DROP TABLE IF EXISTS bench_bare; \
             CREATE TABLE bench_bare (id bigint PRIMARY KEY, version bigint NOT NULL, data jsonb); \
             INSERT INTO bench_bare SELECT i, 1, '{}' FROM generate_series(0, 9) i;",
        )
        .execute(&bare_pool)
        .await
        .expect("bare table");
        (small, large, bare_pool)
    });
    World {
        versions_small: Version(1),
        versions_large: Version(1),
        rt,
        _cluster: cluster,
        url,
        small,
        large,
        bare_pool,
    }
}

fn quoted(tables: &str) -> String {
    let (schema, table) = tables.split_once('.').expect("schema.table");
    format!("\"{schema}\".\"{table}\"")
}

impl World {
    async fn bare_transaction(pool: &PgPool, data: &str) {
        let mut tx = pool.begin().await.expect("begin");
        let (version,): (i64,) =
            sqlx::query_as("SELECT version FROM bench_bare WHERE id = 3 FOR UPDATE")
                .fetch_one(&mut *tx)
                .await
                .expect("select for update");
        sqlx::query("UPDATE bench_bare SET data = $1::jsonb, version = $2 WHERE id = 3")
            .bind(data)
            .bind(version + 1)
            .execute(&mut *tx)
            .await
            .expect("update");
        tx.commit().await.expect("commit");
    }

    /// What the manager's refresh asks of the store, in order: take the
    /// lease, load under it (`reload`), [check the lease again, as before a
    /// retry, with `check`], save under it, release it. The manager drops the
    /// lease, which releases it from a task; this awaits the release, so
    /// that its cost is charged to the cycle.
    async fn lease_cycle(store: &PostgresTokenStore, token: &TokenSet, check: bool) {
        let k = key(3);
        let lease = store.lock(&k, Duration::from_secs(5)).await.expect("lock");
        let current = store
            .load_leased(lease.as_ref())
            .await
            .expect("load")
            .expect("stored");
        if check {
            lease.check().await.expect("check");
        }
        store
            .save_leased(lease.as_ref(), token, Some(current.version))
            .await
            .expect("fenced save");
        let lease: Box<dyn std::any::Any> = lease;
        lease
            .downcast::<PgLease>()
            .expect("a PgLease")
            .release()
            .await
            .expect("release");
    }

    /// Times `n` bare transactions and `n` lease cycles, in the order
    /// `bare_first` says; returns (bare, lease).
    fn time_pair(&mut self, n: usize, bare_first: bool, check: bool) -> (Duration, Duration) {
        let first = self.time_pair_one(n, bare_first, check);
        let second = self.time_pair_one(n, !bare_first, check);
        if bare_first {
            (first, second)
        } else {
            (second, first)
        }
    }

    /// Runs `work` in a task on the runtime, as an application's request
    /// handler would call the store (from the main thread through
    /// `block_on`, every answer would also pay a wake-up of a thread outside
    /// the runtime; see "How the ratio is computed" in `BENCHMARKS.md`).
    fn in_task<T: Send + 'static>(
        &self,
        work: impl std::future::Future<Output = T> + Send + 'static,
    ) -> T {
        self.rt
            .block_on(async { tokio::spawn(work).await.expect("the timed task") })
    }

    fn time_loads(&mut self, large: bool, n: usize) -> Duration {
        let (store, size) = if large {
            (self.large.clone(), LARGE)
        } else {
            (self.small.clone(), SMALL)
        };
        self.in_task(async move {
            let started = Instant::now();
            for i in 0..n {
                let k = key((i * 7919) % size);
                store.load(&k).await.expect("load").expect("stored");
            }
            started.elapsed()
        })
    }

    fn time_saves(&mut self, large: bool, n: usize) -> Duration {
        let t = token(3);
        let k = key(5);
        let (store, mut version) = if large {
            (self.large.clone(), self.versions_large)
        } else {
            (self.small.clone(), self.versions_small)
        };
        let (took, version) = self.in_task(async move {
            let started = Instant::now();
            for _ in 0..n {
                version = store.save(&k, &t, Some(version)).await.expect("save");
            }
            (started.elapsed(), version)
        });
        if large {
            self.versions_large = version;
        } else {
            self.versions_small = version;
        }
        took
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The spread of the per-round ratios: the smallest and largest, and the
/// first and third quartiles (the middle half of the rounds).
fn spread(mut v: Vec<f64>) -> String {
    v.sort_by(f64::total_cmp);
    format!(
        "spread {:.2}-{:.2}x, middle half {:.2}-{:.2}x",
        v[0],
        v[v.len() - 1],
        v[v.len() / 4],
        v[v.len() * 3 / 4]
    )
}

fn benches(c: &mut Criterion) {
    let mut w = world();

    let mut group = c.benchmark_group("cycle");
    group.bench_function("bare_transaction", |b| {
        b.iter_custom(|iters| w.time_pair_one(iters as usize, true, false));
    });
    group.bench_function("lease_load_save", |b| {
        b.iter_custom(|iters| w.time_pair_one(iters as usize, false, false));
    });
    group.finish();

    let mut group = c.benchmark_group("scale");
    for (name, large) in [("load_10", false), ("load_100000", true)] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| w.time_loads(large, iters as usize))
        });
    }
    for (name, large) in [("save_10", false), ("save_100000", true)] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| w.time_saves(large, iters as usize))
        });
    }
    group.finish();

    summary(&mut w);
    throughput(&w);
}

impl World {
    fn time_pair_one(&mut self, n: usize, bare: bool, check: bool) -> Duration {
        let data = serde_json::to_string(&token(1)).unwrap();
        let t = token(2);
        let (pool, store) = (self.bare_pool.clone(), self.small.clone());
        self.in_task(async move {
            let started = Instant::now();
            for _ in 0..n {
                if bare {
                    Self::bare_transaction(&pool, &data).await;
                } else {
                    Self::lease_cycle(&store, &t, check).await;
                }
            }
            started.elapsed()
        })
    }
}

fn summary(w: &mut World) {
    let (mut cycle, mut load, mut save) = (Vec::new(), Vec::new(), Vec::new());
    let (mut bare_us, mut lease_us) = (Vec::new(), Vec::new());
    let (mut checked, mut checked_bare_us, mut checked_us) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let (bare, lease) = w.time_pair(OPS_PER_ROUND, round % 2 == 0, false);
        cycle.push(lease.as_secs_f64() / bare.as_secs_f64());
        bare_us.push(bare.as_secs_f64() * 1e6 / OPS_PER_ROUND as f64);
        lease_us.push(lease.as_secs_f64() * 1e6 / OPS_PER_ROUND as f64);
        let (bare, lease) = w.time_pair(OPS_PER_ROUND, round % 2 == 1, true);
        checked.push(lease.as_secs_f64() / bare.as_secs_f64());
        checked_bare_us.push(bare.as_secs_f64() * 1e6 / OPS_PER_ROUND as f64);
        checked_us.push(lease.as_secs_f64() * 1e6 / OPS_PER_ROUND as f64);
        let (s, l) = (
            w.time_loads(false, OPS_PER_ROUND),
            w.time_loads(true, OPS_PER_ROUND),
        );
        load.push(l.as_secs_f64() / s.as_secs_f64());
        let (s, l) = (
            w.time_saves(false, OPS_PER_ROUND),
            w.time_saves(true, OPS_PER_ROUND),
        );
        save.push(l.as_secs_f64() / s.as_secs_f64());
    }
    println!();
    println!("summary (median of {ROUNDS} alternating rounds of {OPS_PER_ROUND} operations):");
    println!(
        "  lease+load+save+release / bare transaction: {:.2}x  ({:.0} us vs {:.0} us; {}; budget 1.5x)",
        median(cycle.clone()),
        median(lease_us),
        median(bare_us),
        spread(cycle)
    );
    println!(
        "  ... with a lease check more (a retry's): {:.2}x  ({:.0} us vs {:.0} us; {}; context)",
        median(checked.clone()),
        median(checked_us),
        median(checked_bare_us),
        spread(checked)
    );
    println!(
        "  load  at {LARGE} rows / at {SMALL} rows:        {:.2}x  (budget 1.5x)",
        median(load)
    );
    println!(
        "  save  at {LARGE} rows / at {SMALL} rows:        {:.2}x  (budget 1.5x)",
        median(save)
    );
}

/// Refreshes per second through 4 managers, each with its own pool, with
/// every refresh answered after 100 ms.
fn throughput(w: &World) {
    const MANAGERS: usize = 4;
    const ACCOUNTS: usize = 200;
    w.rt.block_on(async {
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
                .connect(&w.url)
                .await
                .expect("connect");
            let fitbit = FitbitProvider::builder(demo::FITBIT_SERVER_CLIENT_ID, AppType::Server)
                .client_secret(demo::FITBIT_SERVER_CLIENT_SECRET)
                .endpoints(FitbitEndpoints::with_base(emulator.base_url()).expect("endpoints"))
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
            let _ = stores[0].delete(k).await;
            stores[0].save(k, &expired, None).await.expect("seed");
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

criterion_group!(postgres, benches);
criterion_main!(postgres);
