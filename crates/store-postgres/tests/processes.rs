//! Separate processes, each with its own pool, stand for separate hosts:
//! eight of them stampede one expired token and the server sees exactly one
//! refresh; the lease holder is SIGKILLed mid-refresh and another process
//! takes over within the lease TTL, with nothing saved twice or lost.

#![cfg(unix)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use auth_core::secrecy::ExposeSecret;
use auth_core::{TokenKey, TokenManager, TokenSet, TokenStore};
use auth_emulator::{Emulator, Endpoint, Fault, IssuedTokens, demo};
use auth_fitbit::FitbitProvider;
use store_postgres::PostgresTokenStore;
use test_support::child::{self, ChildProcess, Role};
use test_support::tokens;

/// The children's lease TTL. The manager cuts each request to the lease
/// TTL less a 2-second margin (a request never outlives its lease), so the
/// tests' usual 2 seconds would leave no time for a request; 8 seconds
/// leave 6, more than the 4-second delay the takeover test injects.
const LEASE_TTL: Duration = Duration::from_secs(8);

/// Not a test: the entry point of the child processes the tests here spawn
/// (see `support::child`). In a normal run it returns at once.
#[test]
fn child_process() {
    child::run_if_child(play);
}

fn manager(store: PostgresTokenStore, base: &str) -> TokenManager {
    let provider = FitbitProvider::builder(demo::FITBIT_SERVER_CLIENT_ID)
        .client_secret(demo::FITBIT_SERVER_CLIENT_SECRET)
        .base_url(&base.parse().expect("base url"))
        .expect("endpoints")
        .build()
        .expect("provider");
    TokenManager::builder(Arc::new(store))
        .provider(Arc::new(provider))
        .lock_wait(Duration::from_secs(60))
        .build()
}

fn play(role: Role) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // The parent gives the store's place as `URL SCHEMA`.
    let place = role.place.to_str().expect("a UTF-8 place");
    let (url, schema) = place.split_once(' ').expect("URL SCHEMA");
    runtime.block_on(async {
        let store = support::builder(schema)
            .lease_ttl(LEASE_TTL)
            .max_connections(2)
            .connect(url)
            .await
            .expect("connect in the child");
        match role.name.as_str() {
            // Asks for the token of the argument's (base account) on "go".
            "refresher" => {
                let (base, account) = role.arg.split_once(' ').expect("BASE ACCOUNT");
                let manager = manager(store, base);
                let key = tokens::key("fitbit", account);
                child::report("ready");
                assert_eq!(child::listen().as_deref(), Some("go"));
                match manager.access_token(&key).await {
                    Ok(token) => child::report(&format!("token {}", token.secret())),
                    Err(e) => child::report(&format!("error {e}")),
                }
            }
            other => panic!("unknown role {other}"),
        }
    });
}

fn token_from(issued: &IssuedTokens, issued_at: SystemTime) -> TokenSet {
    let mut token = TokenSet::new(issued.access_token.clone(), "Bearer", issued_at)
        .with_expires_in(Duration::from_secs(issued.expires_in))
        .with_scopes(issued.scopes.clone())
        .with_extra("user_id", serde_json::json!(issued.user_id));
    if let Some(refresh) = &issued.refresh_token {
        token = token.with_refresh_token(refresh.clone());
    }
    token
}

/// Seeds a grant at the emulator and stores it, expired, under `fitbit/user`.
async fn seed_expired(
    emulator: &Emulator,
    store: &PostgresTokenStore,
    user: &str,
) -> (TokenKey, TokenSet, auth_core::Version) {
    let issued = emulator.seed_fitbit_grant(demo::FITBIT_SERVER_CLIENT_ID, user, &["sleep"]);
    let token = token_from(&issued, SystemTime::now() - Duration::from_secs(10 * 3600));
    let key = tokens::key("fitbit", user);
    let version = support::put(store, &key, &token).await;
    (key, token, version)
}

fn schema_of(store: &PostgresTokenStore) -> String {
    store
        .tables()
        .split_once('.')
        .expect("schema.table")
        .0
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_processes_stampeding_one_expired_token_make_one_refresh() {
    const PROCESSES: usize = 8;
    let emulator = Emulator::builder()
        .with_demo_clients()
        .replay_window(false)
        .start()
        .await
        .expect("emulator");
    let store = support::store("stampede").await;
    let (key, original, seeded) = seed_expired(&emulator, &store, "STAMPEDE1").await;
    let url = test_support::postgres::shared().url().to_owned();
    let schema = schema_of(&store);
    let arg = format!("{} STAMPEDE1", emulator.base_url());

    let mut children: Vec<ChildProcess> = (0..PROCESSES)
        .map(|_| ChildProcess::spawn("refresher", format!("{url} {schema}"), &arg))
        .collect();
    for c in &mut children {
        c.expect_line("ready");
    }
    for c in &mut children {
        c.send("go");
    }
    let answers: Vec<String> = children.iter_mut().map(ChildProcess::next_line).collect();
    for c in children {
        c.finish();
    }

    let tokens: std::collections::BTreeSet<&str> = answers
        .iter()
        .map(|a| {
            a.strip_prefix("token ")
                .unwrap_or_else(|| panic!("a child failed: {a}"))
        })
        .collect();
    assert_eq!(
        tokens.len(),
        1,
        "processes got different tokens: {answers:?}"
    );
    assert!(!tokens.contains(original.access_token().expose_secret()));
    let counters = emulator.counters();
    assert_eq!(counters.fitbit_token_refresh, 1, "refreshes at the server");
    assert_eq!(counters.reuse_detections, 0);
    let stored = store.load(&key).await.expect("load").expect("stored");
    assert_eq!(
        stored
            .token
            .as_ref()
            .expect("a token")
            .access_token()
            .expose_secret(),
        *tokens.iter().next().unwrap()
    );
    assert!(
        stored.in_flight.is_none(),
        "the record outlived the refresh"
    );
    assert!(stored.version > seeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_holder_killed_mid_refresh_is_taken_over_within_the_ttl() {
    let emulator = Emulator::builder()
        .with_demo_clients()
        .replay_window(true)
        .start()
        .await
        .expect("emulator");
    let store = support::store("sigkill").await;
    let (key, original, seeded) = seed_expired(&emulator, &store, "SIGKILL1").await;
    let url = test_support::postgres::shared().url().to_owned();
    let schema = schema_of(&store);
    let arg = format!("{} SIGKILL1", emulator.base_url());

    // The first refresh hangs at the server; the server still processes it
    // after the delay, like a real one whose client vanished.
    emulator.inject(
        Endpoint::FitbitToken,
        Fault::Delay(Duration::from_secs(4)),
        1,
    );
    let mut victim = ChildProcess::spawn("refresher", format!("{url} {schema}"), &arg);
    victim.expect_line("ready");
    victim.send("go");
    let deadline = Instant::now() + Duration::from_secs(30);
    while emulator.counters().fitbit_token_refresh == 0 {
        assert!(
            Instant::now() < deadline,
            "the victim's refresh never reached the server"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Its refresh is in flight, so it holds the lease: kill it.
    victim.kill();
    let killed_at = Instant::now();

    let mut successor = ChildProcess::spawn("refresher", format!("{url} {schema}"), &arg);
    successor.expect_line("ready");
    successor.send("go");
    let answer = successor.next_line();
    successor.finish();
    let took = killed_at.elapsed();
    let token = answer
        .strip_prefix("token ")
        .unwrap_or_else(|| panic!("the successor failed: {answer}"));
    assert_ne!(token, original.access_token().expose_secret());
    // Lease TTL plus the successor's start-up and refresh.
    let bound = LEASE_TTL + Duration::from_secs(7);
    assert!(
        took < bound,
        "takeover took {took:?}, the bound is {bound:?}"
    );

    let stored = store.load(&key).await.expect("load").expect("stored");
    assert_eq!(
        stored
            .token
            .as_ref()
            .expect("a token")
            .access_token()
            .expose_secret(),
        token
    );
    assert!(stored.in_flight.is_none(), "the record outlived the replay");
    // The victim wrote its record and saved nothing; the successor found
    // the record, marked it (a replay moves the record it finds, keeping
    // its first stamp), replayed the same refresh token (the server's
    // window answered with the pair it had issued) and saved once.
    let history: i64 = sqlx::query_scalar(&format!(
        "SELECT version FROM \"{schema}\".\"token_keeper_tokens\" WHERE provider = 'fitbit' AND account = 'SIGKILL1'"
    ))
    .fetch_one(store.pool())
    .await
    .expect("version");
    assert_eq!(
        history as u64,
        seeded.0 + 3,
        "not exactly the victim's record, the successor's mark and one save"
    );
    let counters = emulator.counters();
    assert_eq!(
        counters.reuse_detections, 0,
        "a refresh token was reused outside the window"
    );
    assert_eq!(counters.fitbit_token_refresh, 2);

    // The grant is alive: the stored refresh token is the server's current one.
    let here_store = support::builder(&schema)
        .lease_ttl(LEASE_TTL)
        .connect(&url)
        .await
        .expect("connect");
    let here = manager(here_store, emulator.base_url().as_str());
    let refreshed = here.refresh(&key).await.expect("the grant survived");
    assert_ne!(refreshed.secret(), token);
    assert_eq!(emulator.counters().reuse_detections, 0);
}
