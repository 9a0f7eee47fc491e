//! `authctl token` for a valid stored token, as a whole process, against
//! `cat` of the same token file. Budget (issue 14): at most 1.5× `cat`.
//!
//! Prerequisite: a release build of `authctl` in the same target
//! directory, `cargo build --release -p token-keeper-authctl`, then
//! `cargo bench -p benchmarks --bench authctl_token`. The binary is taken
//! from `AUTHCTL_BIN` when that is set, and otherwise from the `release`
//! directory this benchmark runs from.
//!
//! The token (valid for 8 hours, so nothing is refreshed and nothing goes
//! on the network) is written with `store_file::FileTokenStore` into a
//! temporary store, and a config file points `authctl` at it; every
//! endpoint is set to a closed loopback port so that even a bug could not
//! send a request anywhere. Each run checks that `authctl` printed exactly
//! the stored access token. Both sides are timed from spawn to exit with
//! stdout read through a pipe.
//!
//! After the criterion group, a summary loop alternates 10-process batches
//! of each for 31 rounds and prints the median per-round ratio (a line
//! starting `RATIO`), and the same for `authctl --version`, the floor of any
//! `authctl` run (loading the binary, parsing the command line).

#![allow(
    missing_docs,
    reason = "criterion_main! generates an undocumented main"
)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime};

use auth_core::{Expect, Record, TokenKey, TokenSet, TokenStore};
use criterion::{Criterion, criterion_group, criterion_main};
use store_file::FileTokenStore;

const ROUNDS: usize = 31;
const PROCESSES_PER_ROUND: u32 = 10;
const ACCESS_TOKEN: &str = "bench-access-token-valid-for-eight-hours";
const SECRET_ENV: &str = "BENCH_FITBIT_CLIENT_SECRET";
/// The budget: `authctl token` within this many times `cat` of the file.
const BUDGET: f64 = 1.5;

/// Where the `authctl` binary is: `AUTHCTL_BIN`, or beside this benchmark's
/// own `deps` directory (`<target>/release/authctl`).
fn authctl_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("AUTHCTL_BIN") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "AUTHCTL_BIN={} is not a file; build it with `cargo build --release -p token-keeper-authctl`",
            path.display()
        );
        return path;
    }
    let exe = std::env::current_exe().expect("the benchmark's own path");
    let release = exe
        .parent()
        .and_then(Path::parent)
        .expect("the benchmark runs from <target>/release/deps");
    let candidate = release.join(format!("authctl{}", std::env::consts::EXE_SUFFIX));
    assert!(
        candidate.is_file(),
        "no authctl binary at {}: run `cargo build --release -p token-keeper-authctl` with the same \
         CARGO_TARGET_DIR first, or set AUTHCTL_BIN to the binary",
        candidate.display()
    );
    candidate
}

struct Setup {
    _dir: tempfile::TempDir,
    bin: PathBuf,
    config: PathBuf,
    token_file: PathBuf,
}

impl Setup {
    fn new() -> Self {
        let bin = authctl_bin();
        let dir = tempfile::Builder::new()
            .prefix("authctl-bench-")
            .tempdir()
            .expect("a temporary directory");
        let store_root = dir.path().join("tokens");
        let store = FileTokenStore::open(&store_root).expect("open the file store");
        let key = TokenKey::parse("fitbit", "default").expect("a valid key");
        let token = TokenSet::new(ACCESS_TOKEN, "Bearer", SystemTime::now())
            .with_refresh_token("bench-refresh-token")
            .with_expires_in(Duration::from_secs(8 * 3600))
            .with_scopes(["activity", "sleep"])
            .with_extra("user_id", serde_json::json!("26FWFL"));
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime")
            .block_on(async {
                // Every write goes through the key's lease.
                let lease = store.lock(&key, Duration::from_secs(5)).await?;
                lease
                    .save_and_release(&token, Expect::Absent, Record::Clear)
                    .await
            })
            .expect("save the token");
        let token_file = store.token_path(&key);
        assert!(token_file.is_file(), "the store wrote the token file");

        // Port 9 (discard) on loopback: closed here, so nothing can leak.
        let closed = "http://127.0.0.1:9";
        let config = dir.path().join("authctl.toml");
        let text = format!(
            r#"[store]
path = {store_root:?}

[providers.fitbit]
kind = "fitbit"
client_id = "BENCH-FITBIT-SERVER"
client_secret_env = "{SECRET_ENV}"
app_type = "server"
redirect_uri = "http://127.0.0.1:8976/callback"
scopes = ["activity", "sleep"]
authorize_url = "{closed}/oauth2/authorize"
token_url = "{closed}/oauth2/token"
introspect_url = "{closed}/1.1/oauth2/introspect"
revoke_url = "{closed}/oauth2/revoke"
"#,
            store_root = store_root.display().to_string(),
        );
        std::fs::write(&config, text).expect("write the config");
        Self {
            _dir: dir,
            bin,
            config,
            token_file,
        }
    }

    fn authctl(&self) -> Output {
        let output = Command::new(&self.bin)
            .arg("--config")
            .arg(&self.config)
            .args(["token", "fitbit"])
            .env(SECRET_ENV, "bench-secret")
            .env_remove("AUTHCTL_STORE")
            .env_remove("RUST_LOG")
            .output()
            .expect("spawn authctl");
        assert!(
            output.status.success() && output.stdout == format!("{ACCESS_TOKEN}\n").as_bytes(),
            "authctl token failed or printed something else than the stored token: {}\n\
             stdout: {}\nstderr: {}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        );
        output
    }

    /// The floor of any `authctl` run: loading the binary and parsing the
    /// command line, with no config, store or runtime.
    fn authctl_version(&self) -> Output {
        let output = Command::new(&self.bin)
            .arg("--version")
            .output()
            .expect("spawn authctl");
        assert!(output.status.success(), "authctl --version failed");
        output
    }

    fn cat(&self) -> Output {
        let output = Command::new("cat")
            .arg(&self.token_file)
            .output()
            .expect("spawn cat");
        assert!(output.status.success() && !output.stdout.is_empty());
        output
    }
}

/// Time per process over `n` processes.
fn batch(n: u32, run: impl Fn() -> Output) -> Duration {
    let started = Instant::now();
    for _ in 0..n {
        run();
    }
    started.elapsed() / n
}

fn bench(c: &mut Criterion) {
    let setup = Setup::new();

    let mut group = c.benchmark_group("authctl_token");
    group.bench_function("authctl_token_process", |b| b.iter(|| setup.authctl()));
    group.bench_function("cat_token_file_process", |b| b.iter(|| setup.cat()));
    group.finish();

    let (rounds, n) = if support::quick_mode() {
        (1, 1)
    } else {
        (ROUNDS, PROCESSES_PER_ROUND)
    };
    support::heading(&format!(
        "authctl_token summary: {n} processes per side per round"
    ));
    let cmp = support::compare(
        rounds,
        || batch(n, || setup.authctl()),
        || batch(n, || setup.cat()),
    );
    support::report(
        "authctl_token/vs_cat",
        "authctl token",
        "cat token file",
        &cmp,
        Some(BUDGET),
    );
    let floor = support::compare(
        rounds,
        || batch(n, || setup.authctl_version()),
        || batch(n, || setup.cat()),
    );
    support::report(
        "authctl_token/version_vs_cat",
        "authctl --version",
        "cat token file",
        &floor,
        None,
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    targets = bench
}
criterion_main!(benches);
