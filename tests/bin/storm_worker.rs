//! A worker process of the kill storm: one `TokenManager` and one
//! `Refresher` over a shared store, refreshing and reading random accounts
//! against the emulator until its stdin closes (then it shuts down
//! cleanly) or it is killed (the point of the storm).
//!
//! Usage:
//! `storm_worker file STORE_DIR EMULATOR_BASE_URL ACCOUNTS SEED` or
//! `storm_worker pg DATABASE_URL SCHEMA EMULATOR_BASE_URL ACCOUNTS SEED`,
//! where `ACCOUNTS` is a comma-separated list of Fitbit user ids. It prints
//! `ready` once its manager is built.

#![allow(clippy::print_stdout, clippy::print_stderr)] // a test helper that reports on stdio

use std::io::{BufRead, Write as _};
use std::sync::Arc;
use std::time::Duration;

use auth_core::{Refresher, TokenKey, TokenManager, TokenStore};
use auth_emulator::demo;
use auth_fitbit::FitbitProvider;
use auth_oauth2::HttpConfig;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use store_file::FileTokenStore;
use store_postgres::PostgresTokenStore;

/// The lease TTL on Postgres: at most a second, so that a killed holder's
/// lease lapses fast.
const LEASE_TTL: Duration = Duration::from_millis(900);
/// The HTTP timeout: a request must end well inside the lease.
const HTTP_TIMEOUT: Duration = Duration::from_millis(400);

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(err) = run(&args).await {
        eprintln!("storm_worker: {err}");
        std::process::exit(1);
    }
}

async fn run(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let (store, rest): (Arc<dyn TokenStore>, &[String]) = match args {
        [kind, dir, rest @ ..] if kind == "file" => (Arc::new(FileTokenStore::open(dir)?), rest),
        [kind, url, schema, rest @ ..] if kind == "pg" => (
            Arc::new(
                PostgresTokenStore::builder()
                    .schema(schema.clone())
                    .lease_ttl(LEASE_TTL)
                    .max_connections(4)
                    .connect(url)
                    .await?,
            ),
            rest,
        ),
        _ => {
            return Err("usage: storm_worker (file DIR | pg URL SCHEMA) BASE ACCOUNTS SEED".into());
        }
    };
    let [base, accounts, seed] = rest else {
        return Err("usage: storm_worker (file DIR | pg URL SCHEMA) BASE ACCOUNTS SEED".into());
    };
    let keys: Vec<TokenKey> = accounts
        .split(',')
        .map(|a| TokenKey::parse("fitbit", a))
        .collect::<Result<_, _>>()?;
    let provider = FitbitProvider::builder(demo::FITBIT_SERVER_CLIENT_ID)
        .client_secret(demo::FITBIT_SERVER_CLIENT_SECRET)
        .base_url(&base.parse()?)?
        .http_config(HttpConfig::default().with_timeouts(HTTP_TIMEOUT, HTTP_TIMEOUT))
        .build()?;
    let manager = TokenManager::builder(store)
        .provider(Arc::new(provider))
        .attempt_timeout(HTTP_TIMEOUT)
        .lock_wait(Duration::from_secs(5))
        .build();
    let refresher = Refresher::builder(manager.clone()).spawn();
    let mut rng = StdRng::seed_from_u64(seed.parse()?);
    println!("ready");
    std::io::stdout().flush()?;

    // The parent closes stdin to end the run cleanly.
    let (done_tx, mut done) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let mut line = String::new();
        while std::io::stdin().lock().read_line(&mut line).unwrap_or(0) > 0 {
            line.clear();
        }
        let _ = done_tx.send(());
    });
    loop {
        let key = &keys[rng.random_range(0..keys.len())];
        let pace = Duration::from_millis(rng.random_range(0..40));
        let work = async {
            // Errors are expected in a storm (a dead holder's lease, an
            // answer held back); what counts is checked by the parent.
            if rng.random_bool(0.7) {
                let _ = manager.refresh(key).await;
            } else {
                let _ = manager.access_token(key).await;
            }
            tokio::time::sleep(pace).await;
        };
        tokio::select! {
            biased;
            _ = &mut done => break,
            () = work => {}
        }
    }
    refresher.stop();
    if let Err(err) = manager.shutdown(Duration::from_secs(10)).await {
        eprintln!("storm_worker: shutdown: {err}");
        std::process::exit(3);
    }
    Ok(())
}
