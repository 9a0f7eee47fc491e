//! The PostgreSQL store's budgets, against baselines measured in the same
//! run on the same server:
//!
//! - **cycle**: one refresh's statements, as the manager's refresh sends
//!   them: `lock` (the lease taken and the row read in one statement), the
//!   first `load` (served from the lock), `mark_in_flight` (the write-ahead
//!   record), `save_and_release` (the save, the record cleared and the
//!   lease released in one statement): three statements, two of them
//!   waiting for a WAL flush. Against a bare transaction doing the same
//!   work with the same two flushes on a plain table through the same
//!   pool: `BEGIN; SELECT … FOR UPDATE; UPDATE …; COMMIT` (the record),
//!   then an autocommitted `UPDATE` (the save) (budget 1.5×). For context,
//!   the summary also times the cycle with one fenced `load` more (the
//!   renewal before a retry), and Round 2's one-commit bare transaction;
//! - **scale**: `load`, and a leased save (lock, save and release), with
//!   100,000 rows in the table against 10 rows (budget 1.5×).
//!
//! The throughput of 4 managers against the emulator is the `throughput`
//! bench of this crate.
//!
//! Run: `cargo bench -p token-keeper-store-postgres --bench postgres`
//! (add `-- --warm-up-time 1 --measurement-time 2` for a quicker run, or
//! `-- summary-only` for the summary loop alone).
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

use std::time::{Duration, Instant, SystemTime};

use auth_core::{Expect, Record, TokenKey, TokenSet, TokenStore};
use criterion::{Criterion, criterion_group, criterion_main};
use sqlx::PgPool;
use store_postgres::PostgresTokenStore;
use test_support::postgres;
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
    _cluster: Option<postgres::Cluster>,
    small: PostgresTokenStore,
    large: PostgresTokenStore,
    bare_pool: PgPool,
}

fn world() -> World {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (cluster, url) = match std::env::var(postgres::URL_VAR) {
        Ok(url) if !url.is_empty() => (None, url),
        _ => {
            let c = postgres::Cluster::start_with(&[]);
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
             CREATE TABLE bench_bare (id bigint PRIMARY KEY, version bigint NOT NULL, data jsonb, \
             in_flight_since timestamptz); \
             INSERT INTO bench_bare SELECT i, 1, '{}' FROM generate_series(0, 9) i;",
        )
        .execute(&bare_pool)
        .await
        .expect("bare table");
        (small, large, bare_pool)
    });
    World {
        rt,
        _cluster: cluster,
        small,
        large,
        bare_pool,
    }
}

fn quoted(tables: &str) -> String {
    let (schema, table) = tables.split_once('.').expect("schema.table");
    format!("\"{schema}\".\"{table}\"")
}

/// What a cycle is timed against.
#[derive(Clone, Copy)]
enum Side {
    /// The bare work with two commits: the record's and the save's.
    Bare,
    /// Round 2's baseline: the bare work in one commit, no record.
    BareOneCommit,
    /// The store's refresh cycle.
    Cycle,
    /// The cycle with a fenced load more (a retry's renewal).
    CycleRenewed,
}

impl World {
    /// The record in one transaction (`SELECT … FOR UPDATE`, `UPDATE`,
    /// `COMMIT`: a flush), then the save (`UPDATE`: a flush).
    async fn bare_two_commits(pool: &PgPool, data: &str) {
        let mut tx = pool.begin().await.expect("begin");
        let (version,): (i64,) =
            sqlx::query_as("SELECT version FROM bench_bare WHERE id = 3 FOR UPDATE")
                .fetch_one(&mut *tx)
                .await
                .expect("select for update");
        sqlx::query("UPDATE bench_bare SET version = $1, in_flight_since = now() WHERE id = 3")
            .bind(version + 1)
            .execute(&mut *tx)
            .await
            .expect("the record");
        tx.commit().await.expect("commit");
        sqlx::query(
            "UPDATE bench_bare SET data = $1::jsonb, version = version + 1, \
             in_flight_since = NULL WHERE id = 3",
        )
        .bind(data)
        .execute(pool)
        .await
        .expect("the save");
    }

    /// Round 2's bare transaction: one commit.
    async fn bare_one_commit(pool: &PgPool, data: &str) {
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
    /// lease (and read the row), load (served from the take), [load again,
    /// as the renewal before a retry], write the record, save clearing it
    /// and releasing the lease.
    async fn lease_cycle(store: &PostgresTokenStore, token: &TokenSet, renew: bool) {
        let k = key(3);
        let lease = store.lock(&k, Duration::from_secs(5)).await.expect("lock");
        let mut current = lease.load().await.expect("load").expect("stored");
        if renew {
            current = lease.load().await.expect("renew").expect("stored");
        }
        let marked = lease
            .mark_in_flight(current.version)
            .await
            .expect("the record");
        lease
            .save_and_release(token, Expect::Version(marked), Record::Clear)
            .await
            .expect("save and release");
    }

    /// Times `n` operations of each side, in the order `first_a` says;
    /// returns (a, b).
    fn time_pair(&mut self, n: usize, a: Side, b: Side, first_a: bool) -> (Duration, Duration) {
        let (x, y) = if first_a { (a, b) } else { (b, a) };
        let first = self.time_side(n, x);
        let second = self.time_side(n, y);
        if first_a {
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

    /// Leased saves: lock, save and release, one key over and over.
    fn time_saves(&mut self, large: bool, n: usize) -> Duration {
        let t = token(3);
        let k = key(5);
        let store = if large {
            self.large.clone()
        } else {
            self.small.clone()
        };
        self.in_task(async move {
            let started = Instant::now();
            for _ in 0..n {
                let lease = store.lock(&k, Duration::from_secs(5)).await.expect("lock");
                let current = lease.load().await.expect("load").expect("stored");
                lease
                    .save_and_release(&t, Expect::Version(current.version), Record::Keep)
                    .await
                    .expect("save");
            }
            started.elapsed()
        })
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
    group.bench_function("bare_two_commits", |b| {
        b.iter_custom(|iters| w.time_side(iters as usize, Side::Bare));
    });
    group.bench_function("lock_mark_save_release", |b| {
        b.iter_custom(|iters| w.time_side(iters as usize, Side::Cycle));
    });
    group.finish();

    let mut group = c.benchmark_group("scale");
    for (name, large) in [("load_10", false), ("load_100000", true)] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| w.time_loads(large, iters as usize))
        });
    }
    for (name, large) in [("leased_save_10", false), ("leased_save_100000", true)] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| w.time_saves(large, iters as usize))
        });
    }
    group.finish();

    summary(&mut w);
}

impl World {
    fn time_side(&mut self, n: usize, side: Side) -> Duration {
        let data = serde_json::to_string(&token(1)).unwrap();
        let t = token(2);
        let (pool, store) = (self.bare_pool.clone(), self.small.clone());
        self.in_task(async move {
            let started = Instant::now();
            for _ in 0..n {
                match side {
                    Side::Bare => Self::bare_two_commits(&pool, &data).await,
                    Side::BareOneCommit => Self::bare_one_commit(&pool, &data).await,
                    Side::Cycle => Self::lease_cycle(&store, &t, false).await,
                    Side::CycleRenewed => Self::lease_cycle(&store, &t, true).await,
                }
            }
            started.elapsed()
        })
    }
}

/// Per-round ratios and per-operation times of one pair.
#[derive(Default)]
struct Pair {
    ratio: Vec<f64>,
    a_us: Vec<f64>,
    b_us: Vec<f64>,
}

impl Pair {
    fn push(&mut self, (a, b): (Duration, Duration)) {
        self.ratio.push(a.as_secs_f64() / b.as_secs_f64());
        self.a_us.push(a.as_secs_f64() * 1e6 / OPS_PER_ROUND as f64);
        self.b_us.push(b.as_secs_f64() * 1e6 / OPS_PER_ROUND as f64);
    }

    fn line(&self, what: &str, tail: &str) {
        println!(
            "  {what}: {:.2}x  ({:.0} us vs {:.0} us; {}; {tail})",
            median(self.ratio.clone()),
            median(self.a_us.clone()),
            median(self.b_us.clone()),
            spread(self.ratio.clone())
        );
    }
}

fn summary(w: &mut World) {
    let (mut cycle, mut renewed, mut round2, mut flush) = (
        Pair::default(),
        Pair::default(),
        Pair::default(),
        Pair::default(),
    );
    let (mut load, mut save) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let odd = round % 2 == 1;
        cycle.push(w.time_pair(OPS_PER_ROUND, Side::Cycle, Side::Bare, odd));
        renewed.push(w.time_pair(OPS_PER_ROUND, Side::CycleRenewed, Side::Bare, !odd));
        round2.push(w.time_pair(OPS_PER_ROUND, Side::Cycle, Side::BareOneCommit, odd));
        flush.push(w.time_pair(OPS_PER_ROUND, Side::Bare, Side::BareOneCommit, !odd));
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
    cycle.line(
        "lock+mark+save_and_release / bare two-commit transaction",
        "budget 1.5x",
    );
    renewed.line("... with a fenced load more (a retry's renewal)", "context");
    round2.line(
        "lock+mark+save_and_release / Round 2's one-commit bare transaction",
        "context: the record's flush is on the left only",
    );
    flush.line(
        "bare two-commit / bare one-commit transaction",
        "context: what the record's flush costs the baseline",
    );
    println!(
        "  load  at {LARGE} rows / at {SMALL} rows:        {:.2}x  (budget 1.5x)",
        median(load)
    );
    println!(
        "  leased save at {LARGE} rows / at {SMALL} rows:  {:.2}x  (budget 1.5x)",
        median(save)
    );
}

criterion_group!(postgres, benches);
criterion_main!(postgres);
