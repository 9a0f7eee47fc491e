//! The commands on stored tokens (token, refresh, introspect, revoke,
//! status, logout), every exit code, and eight processes refreshing one
//! expired token.

mod support;

use std::time::{Duration, SystemTime};

use auth_core::TokenKey;
use auth_core::TokenSet;
use auth_core::secrecy::ExposeSecret as _;
use auth_emulator::{Emulator, Endpoint, Fault};
use support::{USER, World, assert_code, stderr, stdout};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_prints_the_access_token_and_nothing_else() {
    let world = World::start().await;
    let issued = world.seed_fitbit("default", false).await;
    let output = world.run(&["token", "fitbit"]).await;
    assert_code(&output, 0);
    assert_eq!(stdout(&output), format!("{}\n", issued.access_token));
    assert_eq!(stderr(&output), "");
    assert_eq!(world.emulator.counters().fitbit_token_refresh, 0);
    world.assert_no_secrets(&output, true);
}

/// Issue 21, step 3: a refresh was sent and processed, and its process died
/// before it saved the answer. The stored token is still valid, but its
/// refresh token is spent: `authctl token` must not print it from its fast
/// path (which reads the file directly), and the manager must recover the
/// rotated pair by replaying the refresh inside Fitbit's window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_never_serves_a_token_whose_refresh_is_in_flight() {
    let world = World::start().await;
    let issued = world.seed_fitbit("default", false).await;
    let key = TokenKey::parse("fitbit", "default").expect("key");

    // The dead process: it wrote the record, sent the refresh, and the
    // server rotated the pair; the answer never reached the store.
    let store = world.open_store().await;
    let lease = store
        .lock(&key, Duration::from_secs(10))
        .await
        .expect("lock");
    let row = lease.load().await.expect("load").expect("a row");
    lease.mark_in_flight(row.version).await.expect("mark");
    drop(lease);
    let answer: serde_json::Value = reqwest::Client::new()
        .post(world.emulator.fitbit_endpoints().token.as_str())
        .basic_auth(support::FITBIT_CLIENT_ID, Some(support::FITBIT_SECRET))
        .form(&[
            ("grant_type", "refresh_token"),
            (
                "refresh_token",
                issued.refresh_token.as_deref().expect("a refresh token"),
            ),
        ])
        .send()
        .await
        .expect("the refresh reaches the server")
        .json()
        .await
        .expect("a token answer");
    let rotated = answer["access_token"].as_str().expect("an access token");
    world.remember(rotated);
    if let Some(refresh) = answer["refresh_token"].as_str() {
        world.remember(refresh);
    }

    // The first run finishes the refresh; the second is served the saved
    // pair (from the file, the record being cleared).
    for run in 0..2 {
        let output = world.run(&["token", "fitbit"]).await;
        assert_code(&output, 0);
        assert_ne!(
            stdout(&output).trim(),
            issued.access_token,
            "run {run}: printed the token whose refresh was in flight"
        );
        assert_eq!(
            stdout(&output).trim(),
            rotated,
            "run {run}: the rotated pair was not recovered"
        );
        world.assert_no_secrets(&output, true);
    }
    let row = store.load(&key).await.expect("load").expect("a row");
    assert!(row.in_flight.is_none(), "the record was not cleared");
    let stored = row.token.expect("a token");
    assert_eq!(stored.access_token().expose_secret(), rotated);
    assert_eq!(
        stored
            .refresh_token()
            .map(|t| t.expose_secret().to_owned())
            .as_deref(),
        answer["refresh_token"].as_str(),
        "the rotated refresh token was not saved"
    );
    // The lost request and one replay; the second run was served from the
    // file, the record being cleared.
    assert_eq!(world.emulator.counters().fitbit_token_refresh, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_refreshes_an_expired_token_once() {
    let world = World::start().await;
    let issued = world.seed_fitbit("default", true).await;
    let first = world.run(&["token", "fitbit"]).await;
    assert_code(&first, 0);
    let fresh = stdout(&first);
    assert_ne!(fresh.trim(), issued.access_token);
    assert_eq!(world.emulator.counters().fitbit_token_refresh, 1);
    let stored = world.stored("fitbit", "default").await.expect("stored");
    assert_eq!(stored.access_token().expose_secret(), fresh.trim());
    assert_ne!(
        stored.refresh_token().map(|t| t.expose_secret().to_owned()),
        issued.refresh_token,
        "the rotated refresh token was not saved"
    );

    let again = world.run(&["token", "fitbit"]).await;
    assert_code(&again, 0);
    assert_eq!(stdout(&again), fresh);
    assert_eq!(world.emulator.counters().fitbit_token_refresh, 1);
    world.assert_no_secrets(&first, true);
    world.assert_no_secrets(&again, true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_forces_a_refresh_and_prints_a_summary() {
    let world = World::start().await;
    let issued = world.seed_fitbit("default", false).await;
    let output = world.run(&["refresh", "fitbit"]).await;
    assert_code(&output, 0);
    let out = stdout(&output);
    assert!(out.contains("refreshed: fitbit/default"), "{out}");
    assert!(out.contains(&format!("user_id   {USER}")), "{out}");
    assert!(out.contains("activity sleep"), "{out}");
    assert_eq!(world.emulator.counters().fitbit_token_refresh, 1);
    let stored = world.stored("fitbit", "default").await.expect("stored");
    assert_ne!(stored.access_token().expose_secret(), issued.access_token);
    world.assert_no_secrets(&output, false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspect_shows_the_servers_view_as_text_and_json() {
    let world = World::start().await;
    world.seed_fitbit("default", false).await;
    let text = world.run(&["introspect", "fitbit"]).await;
    assert_code(&text, 0);
    let out = stdout(&text).to_ascii_lowercase();
    assert!(out.contains("active      yes"), "{out}");
    assert!(out.contains("activity") && out.contains("sleep"), "{out}");
    world.assert_no_secrets(&text, false);

    let json = world.run(&["introspect", "fitbit", "--json"]).await;
    assert_code(&json, 0);
    let value: serde_json::Value = serde_json::from_str(&stdout(&json)).expect("JSON");
    assert_eq!(value["active"], true);
    assert_eq!(value["provider"], "fitbit");
    let names: Vec<String> = value["scopes"]
        .as_array()
        .expect("scopes")
        .iter()
        .map(|s| s["name"].as_str().unwrap_or_default().to_ascii_lowercase())
        .collect();
    assert!(
        names.contains(&"activity".to_owned()) && names.contains(&"sleep".to_owned()),
        "{names:?}"
    );
    assert_eq!(world.emulator.counters().fitbit_introspect, 2);
    world.assert_no_secrets(&json, false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_lists_tokens_without_secrets() {
    let world = World::start().await;
    world.seed_fitbit("default", false).await;
    world.seed_fitbit("bob", true).await;

    let table = world.run(&["status"]).await;
    assert_code(&table, 0);
    let out = stdout(&table);
    assert!(out.contains("PROVIDER") && out.contains("ACCOUNT"), "{out}");
    assert!(out.contains("default") && out.contains("bob"), "{out}");
    assert!(out.contains("expired, refreshable"), "{out}");
    world.assert_no_secrets(&table, false);

    let json = world.run(&["status", "--json"]).await;
    assert_code(&json, 0);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&stdout(&json)).expect("JSON");
    assert_eq!(rows.len(), 2);
    for row in &rows {
        assert_eq!(row["provider"], "fitbit");
        assert_eq!(row["user_id"], USER);
        assert_eq!(row["needs_reauthorization"], false);
        assert!(row["expires_at"].is_string(), "{row}");
        assert!(
            row["scopes"].as_array().is_some_and(|s| s.len() == 2),
            "{row}"
        );
    }
    let bob = rows.iter().find(|r| r["account"] == "bob").expect("bob");
    assert_eq!(bob["expired"], true);
    world.assert_no_secrets(&json, false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_revokes_at_the_server_then_deletes_locally() {
    let world = World::start().await;
    world.seed_fitbit("default", false).await;
    let output = world.run(&["revoke", "fitbit"]).await;
    assert_code(&output, 0);
    assert!(
        stdout(&output).contains("revoked fitbit/default"),
        "{}",
        stdout(&output)
    );
    assert_eq!(world.emulator.counters().fitbit_revoke, 1);
    assert!(world.stored("fitbit", "default").await.is_none());
    world.assert_no_secrets(&output, false);

    let after = world.run(&["token", "fitbit"]).await;
    assert_code(&after, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_deletes_locally_only() {
    let world = World::start().await;
    world.seed_fitbit("default", false).await;
    let output = world.run(&["logout", "fitbit"]).await;
    assert_code(&output, 0);
    assert!(
        stdout(&output).contains("logged out"),
        "{}",
        stdout(&output)
    );
    assert!(world.stored("fitbit", "default").await.is_none());
    assert_eq!(world.emulator.counters().fitbit_revoke, 0);
    world.assert_no_secrets(&output, false);

    let again = world.run(&["logout", "fitbit"]).await;
    assert_code(&again, 0);
    assert!(
        stdout(&again).contains("nothing to do"),
        "{}",
        stdout(&again)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_errors_exit_2() {
    let world = World::start().await;
    for args in [
        &[][..],
        &["token"][..],
        &["frobnicate"][..],
        &["login", "fitbit", "--timeout", "soon"][..],
        &["status", "--colour"][..],
    ] {
        let output = world.run(args).await;
        assert_code(&output, 2);
        assert!(!stderr(&output).is_empty(), "no message for {args:?}");
    }
    let help = world.run(&["--help"]).await;
    assert_code(&help, 0);
    assert!(stdout(&help).contains("Exit codes"), "{}", stdout(&help));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_stored_token_exits_3_and_says_how_to_log_in() {
    let world = World::start().await;
    let output = world.run(&["token", "fitbit"]).await;
    assert_code(&output, 3);
    assert!(
        stderr(&output).contains("run: authctl login fitbit"),
        "{}",
        stderr(&output)
    );
    assert_eq!(stdout(&output), "");

    let bob = world.run(&["token", "fitbit", "--account", "bob"]).await;
    assert_code(&bob, 3);
    assert!(
        stderr(&bob).contains("run: authctl login fitbit --account bob"),
        "{}",
        stderr(&bob)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_refresh_token_exits_3_and_flags_the_account() {
    let world = World::start().await;
    let now = SystemTime::now();
    let dead = TokenSet::new(
        "dead-access-token-value",
        "Bearer",
        now - Duration::from_secs(9 * 3600),
    )
    .with_refresh_token("dead-refresh-token-value-not-known-to-the-server")
    .with_expires_at(Some(now - Duration::from_secs(60)));
    world
        .put(&TokenKey::parse("fitbit", "default").expect("key"), &dead)
        .await;

    let output = world.run(&["token", "fitbit"]).await;
    assert_code(&output, 3);
    assert!(
        stderr(&output).contains("run: authctl login fitbit"),
        "{}",
        stderr(&output)
    );
    assert_eq!(world.emulator.counters().fitbit_token_refresh, 1);
    world.assert_no_secrets(&output, false);

    let status = world.run(&["status", "--json"]).await;
    let rows: Vec<serde_json::Value> = serde_json::from_str(&stdout(&status)).expect("JSON");
    assert_eq!(rows[0]["needs_reauthorization"], true, "{rows:?}");

    // Flagged: no second attempt at the server.
    let again = world.run(&["token", "fitbit"]).await;
    assert_code(&again, 3);
    assert_eq!(world.emulator.counters().fitbit_token_refresh, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_that_outlast_the_retries_exit_4() {
    let world = World::start().await;
    let issued = world.seed_fitbit("default", true).await;
    world
        .emulator
        .inject(Endpoint::FitbitToken, Fault::Status(503), 20);
    let output = world.run(&["token", "fitbit"]).await;
    assert_code(&output, 4);
    assert!(stderr(&output).contains("try again"), "{}", stderr(&output));
    assert!(
        world.emulator.counters().fitbit_token_refresh >= 2,
        "no retry"
    );
    let stored = world.stored("fitbit", "default").await.expect("kept");
    assert_eq!(stored.access_token().expose_secret(), issued.access_token);
    assert!(stored.reauthorization_required().is_none());
    world.assert_no_secrets(&output, false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retired_provider_exits_5_and_names_the_successor() {
    let world = World::start().await;
    world.seed_fitbit("default", true).await;
    world.emulator.set_retired(true);
    let output = world.run(&["token", "fitbit"]).await;
    assert_code(&output, 5);
    let err = stderr(&output);
    assert!(err.contains("retired"), "{err}");
    assert!(err.contains("authctl login google-health"), "{err}");
    assert!(world.emulator.counters().retired_rejections >= 1);
    assert!(
        world.stored("fitbit", "default").await.is_some(),
        "the token was deleted"
    );
    world.assert_no_secrets(&output, false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_token_file_exits_1() {
    let world = World::start().await;
    world.seed_fitbit("default", false).await;
    let key = TokenKey::parse("fitbit", "default").expect("key");
    let path = world.file_store().token_path(&key);
    std::fs::write(&path, "{ not json").expect("damage the file");
    let output = world.run(&["token", "fitbit"]).await;
    assert_code(&output, 1);
    assert!(stderr(&output).contains("corrupt"), "{}", stderr(&output));
    let status = world.run(&["status"]).await;
    assert_code(&status, 1);
    assert!(
        stdout(&status).contains("unreadable"),
        "{}",
        stdout(&status)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_processes_on_an_expired_token_refresh_once() {
    // Strict mode: a second use of the refresh token would burn the grant.
    let world = World::with(Emulator::builder().replay_window(false)).await;
    let issued = world.seed_fitbit("default", true).await;
    let outputs = world.run_concurrently(8, &["token", "fitbit"]).await;
    for output in &outputs {
        assert_code(output, 0);
        world.assert_no_secrets(output, true);
    }
    let first = stdout(&outputs[0]);
    assert!(
        outputs.iter().all(|o| stdout(o) == first),
        "different tokens were printed"
    );
    assert_ne!(first.trim(), issued.access_token);
    let counters = world.emulator.counters();
    assert_eq!(counters.fitbit_token_refresh, 1, "{counters:?}");
    assert_eq!(counters.reuse_detections, 0, "{counters:?}");
    let stored = world.stored("fitbit", "default").await.expect("stored");
    assert_eq!(stored.access_token().expose_secret(), first.trim());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_most_verbose_logs_carry_no_secret() {
    let world = World::start().await;
    world.seed_fitbit("default", true).await;
    let output = world.run(&["-vvv", "token", "fitbit"]).await;
    assert_code(&output, 0);
    let err = stderr(&output);
    assert!(err.contains("refresh"), "no refresh was logged:\n{err}");
    world.assert_no_secrets(&output, true);
    let output = world.run(&["-vvv", "introspect", "fitbit"]).await;
    assert_code(&output, 0);
    world.assert_no_secrets(&output, false);
}

/// On a fresh machine `authctl status` reports that no token is stored and
/// creates nothing: no store directory, no config directory.
#[test]
fn status_on_a_fresh_home_creates_no_directory() {
    let home = tempfile::tempdir().expect("a temporary home");
    for args in [&["status"][..], &["status", "--json"][..]] {
        let output = support::authctl(home.path())
            .args(args)
            .output()
            .expect("authctl runs");
        assert_code(&output, 0);
        if args.len() == 2 {
            assert_eq!(stdout(&output).trim(), "[]");
        } else {
            assert!(stdout(&output).contains("no tokens stored"));
        }
    }
    let left: Vec<_> = std::fs::read_dir(home.path())
        .expect("read the home")
        .map(|entry| entry.expect("an entry").path())
        .collect();
    assert!(left.is_empty(), "status created {left:?}");
}
