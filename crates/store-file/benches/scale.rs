//! `FileTokenStore::load` and a save (through the key's lease: lock, save,
//! release, as the manager makes one) with 10, 1,000 and 10,000 stored
//! accounts, and what fsync costs.
//!
//! Run: `cargo bench -p token-keeper-store-file --bench scale`
//!
//! Criterion measures each operation at each size, visiting every stored
//! account in turn. Then a summary loop prints the ratios
//! cost@10,000 / cost@10 (the budget is 1.5) for two access patterns:
//!
//! - **all accounts**: each operation on the next of the N stored accounts,
//!   so the set of files touched grows with N (as the page cache sees it);
//! - **same 10 accounts**: each operation on one of the same 10 accounts,
//!   whatever N, which isolates what N itself costs (directory lookups).
//!
//! Next to them, as the baseline, a bare `std::fs::read` of the same token
//! files shows what the filesystem itself charges for each pattern.
//!
//! The summary runs many short rounds that alternate between the sizes, so
//! that drift in disk and CPU load (the machine may be shared) hits every
//! size alike, and takes the median round.
//!
//! The fsync line is the time a save spends in its two fsyncs (file and
//! directory), measured on the same temp-write-fsync-rename-fsync sequence
//! done by hand with a file of the same size, next to the whole save.
//!
//! The stores live under Cargo's target temporary directory, on the disk,
//! not on a memory filesystem where fsync would cost nothing.

#![allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]
#![allow(
    missing_docs,
    reason = "criterion_main! generates an undocumented main"
)]

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use auth_core::{Expect, Record, TokenKey, TokenSet, TokenStore, Version};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use store_file::FileTokenStore;
use tokio::runtime::Runtime;

const SIZES: [usize; 3] = [10, 1_000, 10_000];
/// The accounts the "same 10 accounts" pattern uses.
const HOT: usize = 10;
/// Rounds of the summary loop; the median round counts.
const ROUNDS: usize = 15;
const LOADS_PER_ROUND: usize = 400;
const SAVES_PER_ROUND: usize = 40;

/// Which accounts an operation picks.
#[derive(Clone, Copy)]
enum Pattern {
    AllAccounts,
    SameTen,
}

/// A save as the manager makes one: through the key's lease.
async fn save(
    store: &FileTokenStore,
    key: &TokenKey,
    token: &TokenSet,
    expected: Expect,
) -> auth_core::Result<Version> {
    store
        .lock(key, Duration::from_secs(5))
        .await?
        .save_and_release(token, expected, Record::Clear)
        .await
}

/// A store holding `accounts` tokens, with each key's current version.
struct Filled {
    _dir: tempfile::TempDir,
    store: FileTokenStore,
    keys: Vec<TokenKey>,
    versions: Vec<Version>,
    next: usize,
}

impl Filled {
    fn new(rt: &Runtime, accounts: usize) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("store-file-bench-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .expect("a temporary directory under the target directory");
        let store = FileTokenStore::open(dir.path().join("tokens")).expect("open the store");
        let keys: Vec<TokenKey> = (0..accounts)
            .map(|i| TokenKey::parse("fitbit", &format!("account-{i:05}")).expect("valid key"))
            .collect();
        let versions = rt.block_on(async {
            let mut versions = Vec::with_capacity(accounts);
            let token = token();
            // In concurrent batches: 10,000 saves one fsync at a time is slow.
            for batch in keys.chunks(64) {
                let saves = batch
                    .iter()
                    .map(|k| save(&store, k, &token, Expect::Absent));
                for saved in futures::future::join_all(saves).await {
                    versions.push(saved.expect("fill the store"));
                }
            }
            versions
        });
        Self {
            _dir: dir,
            store,
            keys,
            versions,
            next: 0,
        }
    }

    fn pick(&mut self, pattern: Pattern) -> usize {
        let range = match pattern {
            Pattern::AllAccounts => self.keys.len(),
            Pattern::SameTen => HOT.min(self.keys.len()),
        };
        self.next = (self.next + 1) % range;
        self.next
    }

    async fn load_one(&mut self, pattern: Pattern) {
        let i = self.pick(pattern);
        let loaded = self.store.load(&self.keys[i]).await.expect("load");
        assert!(loaded.is_some());
    }

    async fn save_one(&mut self, pattern: Pattern) {
        let i = self.pick(pattern);
        let saved = save(
            &self.store,
            &self.keys[i],
            &token(),
            Expect::Version(self.versions[i]),
        )
        .await;
        self.versions[i] = saved.expect("save");
    }

    /// The mean time of `n` bare `std::fs::read`s of the same token files,
    /// on this thread: the floor any file-per-account store pays.
    fn time_bare_reads(&mut self, pattern: Pattern, n: usize) -> Duration {
        let paths: Vec<_> = (0..n)
            .map(|_| {
                let i = self.pick(pattern);
                self.store.token_path(&self.keys[i])
            })
            .collect();
        let started = Instant::now();
        for path in &paths {
            assert!(!std::fs::read(path).expect("bare read").is_empty());
        }
        started.elapsed() / n as u32
    }

    /// The mean time of `n` loads or saves.
    async fn time(&mut self, save: bool, pattern: Pattern, n: usize) -> Duration {
        let started = Instant::now();
        for _ in 0..n {
            if save {
                self.save_one(pattern).await;
            } else {
                self.load_one(pattern).await;
            }
        }
        started.elapsed() / n as u32
    }
}

/// A token of realistic size (Fitbit's are JWTs of a few hundred bytes).
fn token() -> TokenSet {
    TokenSet::new("a".repeat(300), "Bearer", SystemTime::now())
        .with_refresh_token("r".repeat(64))
        .with_expires_in(Duration::from_secs(28_800))
        .with_scopes(["activity", "heartrate", "sleep", "profile"])
        .with_extra("user_id", serde_json::json!("26FWFL"))
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime")
}

/// What the fsyncs of one atomic replace cost: the same steps a save takes
/// (temporary file, write, fsync, rename, fsync of the directory) done by
/// hand on a file of `len` bytes. Returns (time in the two fsyncs, total),
/// each summed over `iterations`.
fn fsync_share(dir: &Path, len: usize, iterations: u64) -> (Duration, Duration) {
    let bytes = vec![b'x'; len];
    let target = dir.join("fsync-probe.json");
    let (mut in_fsync, mut total) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..iterations {
        let started = Instant::now();
        let mut temp = tempfile::NamedTempFile::new_in(dir).expect("temp file");
        temp.write_all(&bytes).expect("write");
        let synced = Instant::now();
        temp.as_file().sync_all().expect("fsync the file");
        in_fsync += synced.elapsed();
        temp.persist(&target).expect("rename");
        let synced = Instant::now();
        File::open(dir)
            .and_then(|d| d.sync_all())
            .expect("fsync the directory");
        in_fsync += synced.elapsed();
        total += started.elapsed();
    }
    (in_fsync, total)
}

fn token_file_len(filled: &Filled) -> usize {
    let path = filled.store.token_path(&filled.keys[0]);
    std::fs::metadata(path).map_or(1024, |m| m.len() as usize)
}

fn bench(c: &mut Criterion) {
    let rt = runtime();
    let mut stores: Vec<(usize, Filled)> =
        SIZES.iter().map(|&n| (n, Filled::new(&rt, n))).collect();

    for (name, save) in [("load", false), ("save", true)] {
        let mut group = c.benchmark_group(name);
        for (n, filled) in &mut stores {
            group.bench_function(BenchmarkId::from_parameter(*n), |b| {
                b.iter_custom(|iters| {
                    let iters = iters.max(1) as usize;
                    rt.block_on(filled.time(save, Pattern::AllAccounts, iters)) * iters as u32
                });
            });
        }
        group.finish();
    }

    let probe_dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("probe directory");
    let len = token_file_len(&stores[0].1);
    c.bench_function("fsync/file+directory", |b| {
        b.iter_custom(|iters| fsync_share(probe_dir.path(), len, iters).0);
    });

    summary(&rt, &mut stores, probe_dir.path(), len);
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// What the summary times.
#[derive(Clone, Copy, PartialEq)]
enum Op {
    Load,
    Save,
    BareRead,
}

/// Median per-operation times of each size, in interleaved rounds.
fn interleaved(
    rt: &Runtime,
    stores: &mut [(usize, Filled)],
    op: Op,
    pattern: Pattern,
) -> Vec<Duration> {
    let per_round = if op == Op::Save {
        SAVES_PER_ROUND
    } else {
        LOADS_PER_ROUND
    };
    let mut samples = vec![Vec::with_capacity(ROUNDS); stores.len()];
    for _ in 0..ROUNDS {
        for (i, (_, filled)) in stores.iter_mut().enumerate() {
            let mean = match op {
                Op::Load => rt.block_on(filled.time(false, pattern, per_round)),
                Op::Save => rt.block_on(filled.time(true, pattern, per_round)),
                Op::BareRead => filled.time_bare_reads(pattern, per_round),
            };
            samples[i].push(mean);
        }
    }
    samples.into_iter().map(median).collect()
}

/// The same-run ratios the budget is about, and the fsync line.
fn summary(rt: &Runtime, stores: &mut [(usize, Filled)], probe_dir: &Path, len: usize) {
    let last = stores.len() - 1;
    let (small, large) = (stores[0].0, stores[last].0);
    println!();
    println!(
        "summary: median of {ROUNDS} interleaved rounds of {LOADS_PER_ROUND} loads or \
         {SAVES_PER_ROUND} saves per size"
    );
    let mut save_at_small = Duration::ZERO;
    for (label, pattern) in [
        ("all accounts", Pattern::AllAccounts),
        ("same 10 accounts", Pattern::SameTen),
    ] {
        let loads = interleaved(rt, stores, Op::Load, pattern);
        let saves = interleaved(rt, stores, Op::Save, pattern);
        let reads = interleaved(rt, stores, Op::BareRead, pattern);
        println!("  {label}:");
        for (i, (n, _)) in stores.iter().enumerate() {
            println!(
                "    {n:>6} accounts: load {:>9.1?}  save {:>9.1?}  (baseline: bare fs::read {:>9.1?})",
                loads[i], saves[i], reads[i]
            );
        }
        let ratio = |d: &[Duration]| d[last].as_secs_f64() / d[0].as_secs_f64();
        println!(
            "    ratio {large} / {small} accounts: load {:.2}x  save {:.2}x  (budget 1.5x; \
             bare fs::read {:.2}x)",
            ratio(&loads),
            ratio(&saves),
            ratio(&reads)
        );
        if let Pattern::AllAccounts = pattern {
            save_at_small = saves[0];
        }
    }
    let rounds = (SAVES_PER_ROUND * ROUNDS) as u64;
    let (fsync, replace) = fsync_share(probe_dir, len, rounds);
    let (fsync, replace) = (fsync / rounds as u32, replace / rounds as u32);
    println!(
        "  fsync (file + directory) of a {len}-byte atomic replace: {fsync:.1?} of its \
         {replace:.1?}; a save at {small} accounts takes {save_at_small:.1?}, so fsync is \
         {:.0}% of it",
        100.0 * fsync.as_secs_f64() / save_at_small.as_secs_f64()
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
