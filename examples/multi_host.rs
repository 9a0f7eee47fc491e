//! Run: TOKEN_KEEPER_PG_URL=postgres://user:password@localhost:5432/db cargo run -p examples --example multi_host
//!
//! Two hosts of one web app, sharing one PostgreSQL database: each "host"
//! is a `TokenManager` over its own `PostgresTokenStore` with its own
//! connection pool. Both ask for the same users' expired Fitbit tokens at
//! once, many times over. Fitbit refresh tokens can be used once (the
//! emulator runs with the replay window off, the strictest setting): a
//! second refresh with the same token would burn the user's grant. The
//! store's cross-host lease, fenced on every write, makes the emulator see
//! exactly one refresh per user. It uses the tables
//! `token_keeper_example.tokens*` in that database and leaves them empty.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "an example reports to the person running it"
)]

use std::error::Error;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use auth_core::{Expect, Record, TokenKey, TokenManager, TokenSet};
use auth_emulator::{Emulator, demo};
use auth_fitbit::FitbitProvider;
use examples::check;
use secrecy::ExposeSecret as _;
use store_postgres::PostgresTokenStore;

const USERS: [&str; 5] = ["HOSTA1", "HOSTB2", "HOSTC3", "HOSTD4", "HOSTE5"];
/// Concurrent callers per user on each host.
const CALLERS: usize = 10;

/// One host: its own pool, its own store, its own manager.
async fn host(url: &str, emulator: &Emulator) -> Result<TokenManager, Box<dyn Error>> {
    let store = PostgresTokenStore::builder()
        .schema("token_keeper_example")
        .table("tokens")
        .max_connections(4)
        .connect(url)
        .await?;
    let fitbit = FitbitProvider::builder(demo::FITBIT_SERVER_CLIENT_ID)
        .client_secret(demo::FITBIT_SERVER_CLIENT_SECRET)
        .base_url(emulator.base_url())?
        .build()?;
    Ok(TokenManager::builder(Arc::new(store))
        .provider(Arc::new(fitbit))
        .build())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    examples::report(run().await)
}

async fn run() -> Result<(), Box<dyn Error>> {
    let Some(url) = std::env::var("TOKEN_KEEPER_PG_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!(
            "multi_host needs a PostgreSQL database: set TOKEN_KEEPER_PG_URL, for example\n  \
             TOKEN_KEEPER_PG_URL=postgres://postgres:secret@localhost:5432/postgres \
             cargo run -p examples --example multi_host"
        );
        std::process::exit(2);
    };
    let emulator = Emulator::builder()
        .with_demo_clients()
        .replay_window(false)
        .start()
        .await?;
    let host_a = host(&url, &emulator).await?;
    let host_b = host(&url, &emulator).await?;
    println!("two hosts, each with its own pool, on one database");

    // Every user has a stored token that expired an hour ago.
    let mut keys = Vec::new();
    for user in USERS {
        let issued = emulator.seed_fitbit_grant(demo::FITBIT_SERVER_CLIENT_ID, user, &["sleep"]);
        let expired = TokenSet::new(
            issued.access_token,
            "Bearer",
            SystemTime::now() - Duration::from_secs(9 * 3600),
        )
        .with_refresh_secret(issued.refresh_token.map(Into::into))
        .with_expires_in(Duration::from_secs(8 * 3600))
        .with_extra("user_id", serde_json::json!(user));
        let key = TokenKey::parse("fitbit", user)?;
        // Every write goes through the key's lease: replace whatever an
        // earlier run left.
        let lease = host_a.store().lock(&key, Duration::from_secs(5)).await?;
        let expect = match lease.load().await? {
            Some(row) => Expect::Version(row.version),
            None => Expect::Absent,
        };
        lease
            .save_and_release(&expired, expect, Record::Clear)
            .await?;
        keys.push(key);
    }

    // Both hosts, many callers each, all at once.
    let calls = keys.iter().flat_map(|key| {
        [&host_a, &host_b]
            .into_iter()
            .flat_map(move |host| (0..CALLERS).map(move |_| (key, host)))
    });
    let results = futures::future::join_all(calls.map(|(key, host)| async move {
        let token = host.access_token(key).await?;
        Ok::<_, auth_core::Error>((key.clone(), token.secret().to_owned()))
    }))
    .await;

    for key in &keys {
        let seen: std::collections::BTreeSet<&str> = results
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .filter(|(k, _)| k == key)
            .map(|(_, t)| t.as_str())
            .collect();
        check(
            seen.len() == 1,
            &format!("every caller on both hosts got the same new token for {key}"),
        )?;
        let stored = host_b.store().load(key).await?.ok_or("token gone")?;
        check(
            stored
                .token
                .as_ref()
                .is_some_and(|t| seen.contains(t.access_token().expose_secret())),
            &format!("the stored token of {key} is the one both hosts use"),
        )?;
    }
    check(
        results.iter().all(Result::is_ok),
        &format!("all {} calls succeeded", results.len()),
    )?;
    let counters = emulator.counters();
    check(
        counters.fitbit_token_refresh == USERS.len() as u64,
        &format!(
            "the server saw exactly one refresh per user ({} for {} users, {} callers)",
            counters.fitbit_token_refresh,
            USERS.len(),
            results.len()
        ),
    )?;
    check(
        counters.reuse_detections == 0,
        "no refresh token was ever used twice",
    )?;

    for key in &keys {
        host_a.remove(key).await?;
    }
    println!("multi_host: all checks passed");
    Ok(())
}
