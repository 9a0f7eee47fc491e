//! The kill storm: real worker processes (`storm_worker`) refresh shared
//! accounts against the emulator while the test `SIGKILL`s them at random
//! moments, some of them while the emulator holds back an answer it has
//! already processed (the rotated pair exists only at the server and in a
//! process about to die). Killed workers are replaced at once.
//!
//! - 8 processes on one file store;
//! - 2 hosts x 4 processes on one Postgres database, each process with its
//!   own store instance (a lease TTL under a second) and a Refresher.
//!
//! The emulator keeps Fitbit's replay window (120 s, ended by first use).
//! Afterwards no grant is burned, no token is lost, and every account
//! holds the newest pair the server issued.
//!
//! `STORM_KILLS` (default 200 per store) makes a longer run:
//! `STORM_KILLS=2000 cargo test --release -p reliability --test kill_storm -- --nocapture`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use auth_core::secrecy::ExposeSecret;
use auth_core::{Expect, Record, TokenKey, TokenManager, TokenSet, TokenStore};
use auth_emulator::{Emulator, Endpoint, Fault, Release, demo};
use auth_fitbit::FitbitProvider;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Accounts shared by every worker.
const ACCOUNTS: usize = 4;

fn kills_wanted() -> usize {
    std::env::var("STORM_KILLS").map_or(200, |v| v.parse().expect("STORM_KILLS must be a number"))
}

/// Where the workers keep their tokens.
enum Backing {
    File(tempfile::TempDir),
    Postgres { url: String, schema: String },
}

impl Backing {
    /// The worker's arguments that name the store.
    fn args(&self) -> Vec<String> {
        match self {
            Self::File(dir) => vec!["file".into(), dir.path().display().to_string()],
            Self::Postgres { url, schema } => vec!["pg".into(), url.clone(), schema.clone()],
        }
    }

    /// The test's own view of the store.
    async fn open(&self) -> Arc<dyn TokenStore> {
        match self {
            Self::File(dir) => {
                Arc::new(store_file::FileTokenStore::open(dir.path()).expect("the file store"))
            }
            Self::Postgres { url, schema } => Arc::new(
                store_postgres::PostgresTokenStore::builder()
                    .schema(schema.clone())
                    .lease_ttl(Duration::from_millis(900))
                    .connect(url)
                    .await
                    .expect("the Postgres store"),
            ),
        }
    }
}

/// One running worker.
struct Worker {
    child: Child,
    /// Its host (for Postgres: which group of four it belongs to).
    host: usize,
}

fn spawn_worker(backing: &Backing, base: &str, accounts: &str, seed: u64, host: usize) -> Worker {
    let mut child = Command::new(env!("CARGO_BIN_EXE_storm_worker"))
        .args(backing.args())
        .args([base, accounts, &seed.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn storm_worker");
    let mut out = BufReader::new(child.stdout.take().expect("its stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("the worker's first line");
    assert_eq!(line.trim(), "ready", "the worker did not start");
    Worker { child, host }
}

/// The process whose TCP connection has local port `port` towards the
/// emulator's `server_port`, among `workers`: found through the socket's
/// inode in `/proc/net/tcp` and the workers' open descriptors.
fn worker_with_port(workers: &[Worker], port: u16, server_port: u16) -> Option<usize> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let inode = table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let local = u16::from_str_radix(cols.get(1)?.rsplit(':').next()?, 16).ok()?;
        let remote = u16::from_str_radix(cols.get(2)?.rsplit(':').next()?, 16).ok()?;
        (local == port && remote == server_port).then(|| cols.get(9).map(|s| (*s).to_owned()))?
    })?;
    let wanted = format!("socket:[{inode}]");
    workers.iter().position(|w| {
        std::fs::read_dir(format!("/proc/{}/fd", w.child.id()))
            .into_iter()
            .flatten()
            .flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == wanted.as_str()))
    })
}

/// What a storm did.
#[derive(Debug, Default)]
struct Storm {
    kills: usize,
    kills_holding: usize,
    refreshes: u64,
    replays: u64,
}

async fn storm(backing: Backing, hosts: usize, per_host: usize, seed: u64) -> Storm {
    let emulator = Emulator::builder()
        .with_demo_clients()
        // The storm refreshes far more often than Fitbit's hourly quota.
        .rate_limit_per_hour(u32::MAX)
        .start()
        .await
        .expect("the emulator");
    let base = emulator.base_url().to_string();
    let server_port = emulator.base_url().port().expect("a port");
    let store = backing.open().await;
    let users: Vec<String> = (0..ACCOUNTS).map(|i| format!("STORM{seed}X{i}")).collect();
    for user in &users {
        let issued = emulator.seed_fitbit_grant(demo::FITBIT_SERVER_CLIENT_ID, user, &["sleep"]);
        let mut token = TokenSet::new(issued.access_token.clone(), "Bearer", SystemTime::now())
            .with_expires_in(Duration::from_secs(issued.expires_in))
            .with_scopes(issued.scopes.clone())
            .with_extra("user_id", serde_json::json!(issued.user_id));
        if let Some(refresh) = &issued.refresh_token {
            token = token.with_refresh_token(refresh.clone());
        }
        let key = TokenKey::parse("fitbit", user).expect("a key");
        let lease = store
            .lock(&key, Duration::from_secs(5))
            .await
            .expect("a lease");
        lease
            .save_and_release(&token, Expect::Absent, Record::Clear)
            .await
            .expect("seeding");
    }
    let accounts = users.join(",");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut workers: Vec<Worker> = (0..hosts * per_host)
        .map(|i| spawn_worker(&backing, &base, &accounts, rng.random(), i / per_host))
        .collect();
    let mut report = Storm::default();
    while report.kills < kills_wanted() {
        // A random moment: the storm's own schedule, not a wait for anything.
        tokio::time::sleep(Duration::from_millis(rng.random_range(20..250))).await;
        let mut victim = rng.random_range(0..workers.len());
        if rng.random_bool(0.4) {
            // Kill the process whose answer the server holds back.
            emulator.inject(Endpoint::FitbitToken, Fault::HoldAnswer, 1);
            match tokio::time::timeout(Duration::from_secs(5), emulator.wait_for_held()).await {
                Ok(held) => {
                    let peer = held[0].peer.expect("the client's address");
                    if let Some(found) = worker_with_port(&workers, peer.port(), server_port) {
                        victim = found;
                        report.kills_holding += 1;
                    }
                }
                Err(_) => emulator.clear_faults(),
            }
        }
        let host = workers[victim].host;
        workers[victim].child.kill().expect("SIGKILL");
        workers[victim].child.wait().expect("reaped");
        report.kills += 1;
        // The held answer never reaches anyone now.
        emulator.release_all_held(Release::Drop);
        workers[victim] = spawn_worker(&backing, &base, &accounts, rng.random(), host);
    }
    emulator.clear_faults();
    emulator.release_all_held(Release::Drop);
    // The end: every worker shuts down cleanly.
    for w in &mut workers {
        drop(w.child.stdin.take());
    }
    for w in &mut workers {
        let status = w.child.wait().expect("a worker's exit");
        assert!(
            status.success(),
            "a worker's clean shutdown failed: {status}"
        );
    }
    // A fresh process finishes whatever a killed one left in flight.
    let provider = FitbitProvider::builder(demo::FITBIT_SERVER_CLIENT_ID)
        .client_secret(demo::FITBIT_SERVER_CLIENT_SECRET)
        .base_url(emulator.base_url())
        .expect("endpoints")
        .build()
        .expect("the provider");
    let manager = TokenManager::builder(Arc::clone(&store))
        .provider(Arc::new(provider))
        .lock_wait(Duration::from_secs(10))
        .build();
    let http = reqwest::Client::new();
    for user in &users {
        let key = TokenKey::parse("fitbit", user).expect("a key");
        // A forced refresh takes the lease and finishes a refresh a killed
        // process left in flight first. While a replay is paced, it says
        // when to try again: that is the only wait here.
        let give_up = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            match manager.refresh(&key).await {
                Ok(_) => break,
                Err(e) if e.is_transient() && std::time::Instant::now() < give_up => {
                    let wait = e.retry_after().unwrap_or(Duration::from_millis(200));
                    tokio::time::sleep(wait.min(Duration::from_secs(5))).await;
                }
                Err(e) => panic!("{user}: the account was lost: {e}"),
            }
        }
        let row = store.load(&key).await.expect("a read").expect("a row");
        assert!(
            row.in_flight.is_none(),
            "{user}: a refresh is still in flight"
        );
        let token = row.token.expect("a token, not a tombstone");
        assert!(
            token.reauthorization_required().is_none(),
            "{user}: flagged"
        );
        // The stored pair is the newest: its refresh token rotates as a
        // current one (a spent one would be answered as a replay, or
        // refused).
        let before = emulator.counters().replays;
        let refresh = token.refresh_token().expect("a refresh token");
        let answer = http
            .post(emulator.fitbit_endpoints().token)
            .basic_auth(
                demo::FITBIT_SERVER_CLIENT_ID,
                Some(demo::FITBIT_SERVER_CLIENT_SECRET),
            )
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh.expose_secret()),
            ])
            .send()
            .await
            .expect("an answer");
        assert_eq!(
            answer.status(),
            200,
            "{user}: the stored refresh token was refused"
        );
        assert_eq!(
            emulator.counters().replays,
            before,
            "{user}: the stored refresh token was a spent one (answered as a replay)"
        );
    }
    let counters = emulator.counters();
    assert_eq!(counters.reuse_detections, 0, "a grant was burned");
    report.refreshes = counters.fitbit_token_refresh;
    report.replays = counters.replays;
    report
}

#[allow(clippy::print_stderr)] // the storm's figures, for the longer run
fn check(name: &str, report: &Storm) {
    eprintln!("{name}: {report:?}");
    assert!(report.kills >= kills_wanted(), "{report:?}");
    assert!(
        report.kills_holding >= kills_wanted() / 10,
        "too few kills landed while an answer was held: {report:?}"
    );
    assert!(
        report.refreshes > report.kills as u64,
        "the workers hardly refreshed: {report:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_storm_eight_processes_on_one_file_store() {
    let dir = tempfile::tempdir().expect("a directory");
    let report = storm(Backing::File(dir), 1, 8, 21).await;
    check("file store", &report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_storm_two_hosts_of_four_on_postgres() {
    let cluster = test_support::postgres::shared();
    let report = storm(
        Backing::Postgres {
            url: cluster.url().to_owned(),
            schema: format!("storm_{}", std::process::id()),
        },
        2,
        4,
        22,
    )
    .await;
    check("postgres", &report);
}
