//! What encryption at rest costs: `EncryptedStore` over the file store
//! against the bare file store (save and load), and over the memory store
//! against the bare memory store (a save + load round trip).
//!
//! Run: `cargo bench -p token-keeper-store-encrypted --bench encryption`
//!
//! Criterion measures each pair; then a summary loop alternates short
//! rounds of the plain and the encrypted operation (so drift on a shared
//! machine hits both alike), takes the median of each, and prints the
//! ratios against the budgets: save ≤ 1.05×, load ≤ 1.2×, and the memory
//! round trip as an absolute cost per token and a ratio.
//!
//! The file stores live under Cargo's target temporary directory, on the
//! disk, so a save pays its real fsyncs.

#![allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]
#![allow(
    missing_docs,
    reason = "criterion_main! generates an undocumented main"
)]

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use auth_core::{Expect, Record, TokenKey, TokenSet, TokenStore, Version};
use criterion::{Criterion, criterion_group, criterion_main};
use store_encrypted::{EncryptedStore, KeyRing};
use store_file::FileTokenStore;
use store_memory::MemoryTokenStore;
use tokio::runtime::Runtime;

const ROUNDS: usize = 15;
const SAVES_PER_ROUND: usize = 30;
const LOADS_PER_ROUND: usize = 300;
const TRIPS_PER_ROUND: usize = 3_000;

fn token() -> TokenSet {
    TokenSet::new(
        "a".repeat(180),
        "Bearer",
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_000_000),
    )
    .with_refresh_token("r".repeat(64))
    .with_expires_in(Duration::from_secs(28_800))
    .with_scopes(["activity", "heartrate", "sleep"])
    .with_extra("user_id", serde_json::json!("26FWFL"))
}

fn ring() -> KeyRing {
    KeyRing::parse(&KeyRing::generate_entry(), "a generated key").expect("a ring")
}

/// A store with one token of `key` saved, and its version.
struct Subject {
    store: Arc<dyn TokenStore>,
    version: Version,
}

impl Subject {
    async fn new(store: Arc<dyn TokenStore>, key: &TokenKey) -> Self {
        let version = store
            .lock(key, Duration::from_secs(5))
            .await
            .expect("lock")
            .save_and_release(&token(), Expect::Absent, Record::Clear)
            .await
            .expect("seed");
        Self { store, version }
    }

    /// A save as the manager makes one: through the key's lease.
    async fn save(&mut self, key: &TokenKey, token: &TokenSet) {
        self.version = self
            .store
            .lock(key, Duration::from_secs(5))
            .await
            .expect("lock")
            .save_and_release(token, Expect::Version(self.version), Record::Clear)
            .await
            .expect("save");
    }

    async fn load(&self, key: &TokenKey) {
        let loaded = self.store.load(key).await.expect("load").expect("a token");
        std::hint::black_box(loaded);
    }

    async fn round_trip(&mut self, key: &TokenKey, token: &TokenSet) {
        self.save(key, token).await;
        self.load(key).await;
    }
}

fn file_store(root: &std::path::Path, name: &str) -> FileTokenStore {
    FileTokenStore::open(root.join(name)).expect("open")
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn bench(c: &mut Criterion) {
    let rt = Runtime::new().expect("runtime");
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("a temporary directory");
    let key = TokenKey::parse("fitbit", "26FWFL").expect("key");
    let t = token();

    let plain_file = Arc::new(file_store(dir.path(), "plain"));
    let sealed_file = Arc::new(EncryptedStore::new(
        Arc::new(file_store(dir.path(), "sealed")),
        ring(),
    ));
    let plain_mem = Arc::new(MemoryTokenStore::new());
    let sealed_mem = Arc::new(EncryptedStore::new(
        Arc::new(MemoryTokenStore::new()),
        ring(),
    ));
    let mut subjects = rt.block_on(async {
        [
            Subject::new(plain_file, &key).await,
            Subject::new(sealed_file, &key).await,
            Subject::new(plain_mem, &key).await,
            Subject::new(sealed_mem, &key).await,
        ]
    });
    let names = ["plain", "encrypted"];

    let mut group = c.benchmark_group("file_save");
    for (i, name) in names.iter().enumerate() {
        group.bench_function(*name, |b| {
            b.iter(|| rt.block_on(subjects[i].save(&key, &t)));
        });
    }
    group.finish();
    let mut group = c.benchmark_group("file_load");
    for (i, name) in names.iter().enumerate() {
        group.bench_function(*name, |b| b.iter(|| rt.block_on(subjects[i].load(&key))));
    }
    group.finish();
    let mut group = c.benchmark_group("memory_round_trip");
    for (i, name) in names.iter().enumerate() {
        group.bench_function(*name, |b| {
            b.iter(|| rt.block_on(subjects[2 + i].round_trip(&key, &t)));
        });
    }
    group.finish();

    // The summary: alternating rounds, medians, ratios.
    let mut save = [Vec::new(), Vec::new()];
    let mut load = [Vec::new(), Vec::new()];
    let mut trip = [Vec::new(), Vec::new()];
    rt.block_on(async {
        for _ in 0..ROUNDS {
            for i in 0..2 {
                let started = Instant::now();
                for _ in 0..SAVES_PER_ROUND {
                    subjects[i].save(&key, &t).await;
                }
                save[i].push(started.elapsed() / SAVES_PER_ROUND as u32);
                let started = Instant::now();
                for _ in 0..LOADS_PER_ROUND {
                    subjects[i].load(&key).await;
                }
                load[i].push(started.elapsed() / LOADS_PER_ROUND as u32);
                let started = Instant::now();
                for _ in 0..TRIPS_PER_ROUND {
                    subjects[2 + i].round_trip(&key, &t).await;
                }
                trip[i].push(started.elapsed() / TRIPS_PER_ROUND as u32);
            }
        }
    });
    let report = |what: &str, pair: [Vec<Duration>; 2], budget: Option<f64>| {
        let [plain, sealed] = pair.map(median);
        let ratio = sealed.as_secs_f64() / plain.as_secs_f64();
        let verdict = match budget {
            Some(b) if ratio <= b => format!("within the {b}× budget"),
            Some(b) => format!("OVER the {b}× budget"),
            None => "no budget; reported".to_owned(),
        };
        println!(
            "{what}: plain {plain:?}, encrypted {sealed:?} (+{:?}), ratio {ratio:.3} — {verdict}",
            sealed.saturating_sub(plain)
        );
    };
    println!("\nsummary (median of {ROUNDS} alternating rounds):");
    report("file-store save", save, Some(1.05));
    report("file-store load", load, Some(1.2));
    report("memory round trip (save + load)", trip, None);
}

criterion_group!(benches, bench);
criterion_main!(benches);
