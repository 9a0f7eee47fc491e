//! Every command on a PostgreSQL store (`AUTHCTL_STORE=postgres://…` or
//! `[store] url`), behaving as on the file store; and the store's own
//! failures: `path` with `url`, a malformed URL (exit 2), an unreachable
//! database (exit 4, naming it). No output ever shows the database
//! password.

#![cfg(unix)]

mod support;

use std::net::TcpListener;

use auth_core::secrecy::ExposeSecret as _;
use auth_emulator::Emulator;
use support::{USER, World, assert_code, stderr, stdout};

async fn world() -> World {
    World::with_postgres(Emulator::builder()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_token_refresh_introspect_logout_and_revoke_work_on_postgres() {
    let world = world().await;
    let empty = world.run(&["status"]).await;
    assert_code(&empty, 0);
    let out = stdout(&empty);
    assert!(
        out.contains("no tokens stored in PostgreSQL 127.0.0.1:"),
        "{out}"
    );

    // A seeded grant supersedes the user's earlier ones: default's last.
    world.seed_fitbit("bob", false).await;
    let issued = world.seed_fitbit("default", true).await;
    let status = world.run(&["status", "--json"]).await;
    assert_code(&status, 0);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&stdout(&status)).expect("JSON");
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r["user_id"] == USER));
    world.assert_no_secrets(&status, false);

    let token = world.run(&["token", "fitbit"]).await;
    assert_code(&token, 0);
    let fresh = stdout(&token);
    assert_ne!(fresh.trim(), issued.access_token);
    assert_eq!(world.emulator.counters().fitbit_token_refresh, 1);
    let stored = world.stored("fitbit", "default").await.expect("stored");
    assert_eq!(stored.access_token().expose_secret(), fresh.trim());
    world.assert_no_secrets(&token, true);
    // The lease of the first run was released before it exited: the next
    // run does not wait for it to expire.
    let started = std::time::Instant::now();
    let refresh = world.run(&["refresh", "fitbit"]).await;
    assert_code(&refresh, 0);
    assert!(stdout(&refresh).contains("refreshed: fitbit/default"));
    assert!(started.elapsed() < std::time::Duration::from_secs(8));
    assert_eq!(world.emulator.counters().fitbit_token_refresh, 2);
    world.assert_no_secrets(&refresh, false);

    let introspect = world.run(&["introspect", "fitbit"]).await;
    assert_code(&introspect, 0);
    world.assert_no_secrets(&introspect, false);

    let logout = world.run(&["logout", "fitbit", "--account", "bob"]).await;
    assert_code(&logout, 0);
    assert!(
        stdout(&logout).contains("PostgreSQL 127.0.0.1:"),
        "{}",
        stdout(&logout)
    );
    assert!(world.stored("fitbit", "bob").await.is_none());
    world.assert_no_secrets(&logout, false);

    let revoke = world.run(&["revoke", "fitbit"]).await;
    assert_code(&revoke, 0);
    assert!(world.stored("fitbit", "default").await.is_none());
    let after = world.run(&["token", "fitbit"]).await;
    assert_code(&after, 3);
    world.assert_no_secrets(&after, false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_processes_on_an_expired_token_refresh_once_through_postgres() {
    let world = World::with_postgres(Emulator::builder().replay_window(false)).await;
    let issued = world.seed_fitbit("default", true).await;
    let outputs = world.run_concurrently(4, &["token", "fitbit"]).await;
    for output in &outputs {
        assert_code(output, 0);
        world.assert_no_secrets(output, true);
    }
    let first = stdout(&outputs[0]);
    assert!(outputs.iter().all(|o| stdout(o) == first));
    assert_ne!(first.trim(), issued.access_token);
    assert_eq!(world.emulator.counters().fitbit_token_refresh, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_in_the_config_is_used_and_path_with_url_is_refused() {
    let world = world().await;
    let url = world.store_url.clone().expect("a postgres world");
    world.seed_fitbit("default", false).await;
    let text = format!("{}\n[store]\nurl = \"{url}\"\n", world.config_text());
    world.write_config(&text);
    let output = world
        .command(&["status"])
        .env_remove("AUTHCTL_STORE")
        .output()
        .expect("authctl runs");
    assert_code(&output, 0);
    assert!(stdout(&output).contains("default"), "{}", stdout(&output));
    world.assert_no_secrets(&output, false);

    let both = format!(
        "{}\n[store]\nurl = \"{url}\"\npath = \"tokens\"\n",
        world.config_text()
    );
    world.write_config(&both);
    let output = world
        .command(&["status"])
        .env_remove("AUTHCTL_STORE")
        .output()
        .expect("authctl runs");
    assert_code(&output, 2);
    assert!(
        stderr(&output).contains("both path and url"),
        "{}",
        stderr(&output)
    );
    world.assert_no_secrets(&output, false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_url_exits_2_without_the_password() {
    let world = World::start().await;
    for url in [
        "postgres://app:hunter2-pw@127.0.0.1:notaport/db",
        "postgres://app:hunter2-pw@127.0.0.1/db?sslmode=sometimes",
    ] {
        let output = world
            .command(&["status"])
            .env("AUTHCTL_STORE", url)
            .output()
            .expect("authctl runs");
        assert_code(&output, 2);
        let err = stderr(&output);
        assert!(!err.contains("hunter2-pw"), "{err}");
        assert!(err.contains("URL"), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_exits_4_and_names_it() {
    let world = World::start().await;
    world.seed_fitbit("default", false).await;
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let url = format!("postgres://app:hunter2-pw@127.0.0.1:{port}/tokens");
    for args in [&["status"][..], &["token", "fitbit"][..]] {
        let output = world
            .command(args)
            .env("AUTHCTL_STORE", &url)
            .output()
            .expect("authctl runs");
        assert_code(&output, 4);
        let err = stderr(&output);
        assert!(err.contains(&format!("127.0.0.1:{port}/tokens")), "{err}");
        assert!(!err.contains("hunter2-pw"), "{err}");
    }
}
