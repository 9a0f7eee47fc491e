//! `authctl get`: an authenticated GET through the middleware, the body on
//! stdout, and the usual exit codes.

mod support;

use auth_emulator::Endpoint;
use support::{World, assert_code, stderr, stdout};

fn profile(world: &World) -> String {
    world
        .emulator
        .endpoint_url(Endpoint::FitbitProfile)
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_prints_the_body_and_replaces_a_rejected_token_once() {
    let world = World::start().await;
    let issued = world
        .seed_fitbit_scopes("default", false, &["profile"])
        .await;
    world.emulator.invalidate_access_token(&issued.access_token);
    let output = world.run(&["get", "fitbit", &profile(&world)]).await;
    assert_code(&output, 0);
    let body: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert!(body["user"]["encodedId"].is_string(), "{body}");
    let counters = world.emulator.counters();
    assert_eq!(counters.fitbit_token_refresh, 1);
    assert_eq!(counters.fitbit_profile, 2);
    world.assert_no_secrets(&output, false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_follows_the_exit_codes() {
    let world = World::start().await;
    let url = profile(&world);

    // No token stored: 3, and no request.
    let output = world
        .run(&["get", "fitbit", &url, "--account", "nobody"])
        .await;
    assert_code(&output, 3);
    assert!(
        stderr(&output).contains("authctl login fitbit"),
        "{}",
        stderr(&output)
    );
    assert_eq!(world.emulator.counters().fitbit_profile, 0);

    // Plain http off loopback: a usage error, and no request.
    world.seed_fitbit("default", false).await;
    let output = world
        .run(&["get", "fitbit", "http://api.example.com/x"])
        .await;
    assert_code(&output, 2);

    // A 403 is printed and exits 1.
    let output = world.run(&["get", "fitbit", &url]).await;
    assert_code(&output, 1);
    assert!(
        stdout(&output).contains("insufficient_scope"),
        "{}",
        stdout(&output)
    );

    // The retired API answers 410: 5.
    world.emulator.set_retired(true);
    let output = world.run(&["get", "fitbit", &url]).await;
    assert_code(&output, 5);
    world.assert_no_secrets(&output, false);
}
