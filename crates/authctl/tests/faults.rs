//! What a strict server and a new user found, as regression tests: faults
//! during `authctl refresh` and `authctl token` must never burn the grant,
//! and a token that is still valid is printed through an outage.

mod support;

use std::time::{Duration, SystemTime};

use auth_core::TokenKey;
use auth_core::secrecy::ExposeSecret as _;
use auth_emulator::{Emulator, Endpoint, Fault};
use support::{World, assert_code, stderr, stdout};

fn key() -> TokenKey {
    TokenKey::parse("fitbit", "default").expect("key")
}

/// The answer to `authctl refresh` is lost after the server rotated the
/// pair. The refresh is retried with the same refresh token inside the
/// replay window, so the rotated pair is saved and the next refresh, after
/// the window, works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_on_refresh_saves_the_rotated_pair() {
    let world = World::start().await;
    let issued = world.seed_fitbit("default", false).await;
    world
        .emulator
        .inject(Endpoint::FitbitToken, Fault::DropAfterProcessing, 1);
    let output = world.run(&["refresh", "fitbit"]).await;
    assert_code(&output, 0);
    world.remember_stored_tokens().await;
    let counters = world.emulator.counters();
    assert_eq!(counters.fitbit_token_refresh, 2, "{counters:?}");
    assert_eq!(
        counters.replays, 1,
        "the retry was not a replay: {counters:?}"
    );
    let stored = world.stored("fitbit", "default").await.expect("stored");
    assert_ne!(
        stored.refresh_token().map(|t| t.expose_secret().to_owned()),
        issued.refresh_token,
        "the spent pair was kept"
    );

    // After the replay window, the saved pair is the live one.
    world.emulator.advance_time(Duration::from_secs(600));
    let again = world.run(&["refresh", "fitbit"]).await;
    assert_code(&again, 0);
    world.remember_stored_tokens().await;
    assert_eq!(world.emulator.counters().reuse_detections, 0);
    world.assert_no_secrets(&output, false);
    world.assert_no_secrets(&again, false);
}

/// The token endpoint answers 503 for a while; a token still valid for 3
/// minutes (inside the 5-minute skew) is printed, and the next run inside
/// the cooldown does not ask the server again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_prints_the_still_valid_token() {
    let world = World::start().await;
    let issued = world.seed_fitbit("default", false).await;
    let mut token = world.stored("fitbit", "default").await.expect("stored");
    token = token.with_expires_at(Some(SystemTime::now() + Duration::from_secs(180)));
    world.put(&key(), &token).await;
    world
        .emulator
        .inject(Endpoint::FitbitToken, Fault::Status(503), 100);

    let output = world.run(&["token", "fitbit"]).await;
    assert_code(&output, 0);
    assert_eq!(stdout(&output), format!("{}\n", issued.access_token));
    let sent = world.emulator.counters().fitbit_token_refresh;
    assert!(sent >= 1, "no refresh was tried");

    let again = world.run(&["token", "fitbit"]).await;
    assert_code(&again, 0);
    assert_eq!(stdout(&again), format!("{}\n", issued.access_token));
    assert_eq!(
        world.emulator.counters().fitbit_token_refresh,
        sent,
        "the cooldown was not honoured by the next process"
    );
    world.assert_no_secrets(&output, true);
    world.assert_no_secrets(&again, true);
}

/// Persistent HTML 500s on a forced refresh: exit 4, the old pair kept,
/// and no success reported without a new token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_errors_on_a_forced_refresh_exit_4_and_keep_the_pair() {
    let world = World::start().await;
    let issued = world.seed_fitbit("default", false).await;
    world
        .emulator
        .inject(Endpoint::FitbitToken, Fault::Html { status: 500 }, 100);
    let output = world.run(&["refresh", "fitbit"]).await;
    assert_code(&output, 4);
    assert!(
        !stdout(&output).contains("refreshed"),
        "{}",
        stdout(&output)
    );
    let stored = world.stored("fitbit", "default").await.expect("kept");
    assert_eq!(stored.access_token().expose_secret(), issued.access_token);
    assert!(stored.reauthorization_required().is_none());
    world.assert_no_secrets(&output, false);
}

/// `clear-flag` un-flags an account an operator knows is fine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_flag_lets_a_wrongly_flagged_account_refresh_again() {
    let world = World::start().await;
    world.seed_fitbit("default", true).await;
    let token = world.stored("fitbit", "default").await.expect("stored");
    world
        .put(&key(), &token.flagged_for_reauthorization("a wrong flag"))
        .await;
    assert_code(&world.run(&["token", "fitbit"]).await, 3);
    let cleared = world.run(&["clear-flag", "fitbit"]).await;
    assert_code(&cleared, 0);
    assert!(stdout(&cleared).contains("cleared"), "{}", stdout(&cleared));
    let output = world.run(&["token", "fitbit"]).await;
    assert_code(&output, 0);
    world.remember_stored_tokens().await;
    world.assert_no_secrets(&cleared, false);
    let again = world.run(&["clear-flag", "fitbit"]).await;
    assert_code(&again, 0);
    assert!(
        stdout(&again).contains("nothing to do"),
        "{}",
        stdout(&again)
    );
}

/// Eight `authctl token` processes on one expired token, against a strict
/// server (no replay window), through 503s, a 429 with `Retry-After` and a
/// slow answer: one successful refresh, no refresh token used twice, and
/// every process prints the token that is stored and that the server
/// issued last.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_processes_through_faults_refresh_once_and_burn_nothing() {
    let world = World::with(Emulator::builder().replay_window(false)).await;
    let issued = world.seed_fitbit("default", true).await;
    let faults = [
        Fault::Status(503),
        Fault::RateLimited {
            retry_after: Duration::from_secs(1),
        },
        Fault::Html { status: 502 },
        Fault::Delay(Duration::from_millis(1500)),
    ];
    let injected = faults.len() as u64 - 1; // the delay still answers
    for fault in faults {
        world.emulator.inject(Endpoint::FitbitToken, fault, 1);
    }
    let outputs = world.run_concurrently(8, &["token", "fitbit"]).await;
    let counters = world.emulator.counters();
    for output in &outputs {
        assert_code(output, 0);
        world.assert_no_secrets(output, true);
    }
    let first = stdout(&outputs[0]);
    assert!(
        outputs.iter().all(|o| stdout(o) == first),
        "different tokens were printed: {:?}",
        outputs.iter().map(stderr).collect::<Vec<_>>()
    );
    assert_ne!(first.trim(), issued.access_token);
    assert_eq!(
        counters.reuse_detections, 0,
        "a refresh token was used twice: {counters:?}"
    );
    assert_eq!(
        counters.fitbit_token_refresh,
        injected + 1,
        "one refresh, retried through each fault: {counters:?}"
    );
    let stored = world.stored("fitbit", "default").await.expect("stored");
    assert_eq!(stored.access_token().expose_secret(), first.trim());
    assert!(stored.reauthorization_required().is_none());
}
