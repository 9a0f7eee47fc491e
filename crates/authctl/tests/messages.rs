//! What authctl says when things go wrong, read as a new user reads it:
//! each failure once, the root cause in words, the right exit code with
//! one hint, and next steps that work when pasted.

mod support;

use auth_emulator::{Endpoint, Fault};
use support::{Running, World, assert_code, free_port, stderr, stdout};

/// The lines of `text` that contain `needle`.
fn count(text: &str, needle: &str) -> usize {
    text.lines().filter(|line| line.contains(needle)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_refresh_is_reported_once_and_logs_only_under_verbose() {
    let world = World::start().await;
    world.seed_fitbit("default", false).await;
    world
        .emulator
        .inject(Endpoint::FitbitToken, Fault::Status(503), 100);
    let output = world.run(&["refresh", "fitbit"]).await;
    assert_code(&output, 4);
    let err = stderr(&output);
    assert_eq!(count(&err, "error:"), 1, "{err}");
    assert!(!err.contains("WARN"), "log lines without -v:\n{err}");
    assert_eq!(
        err.lines().count(),
        2,
        "more than the error and its next step:\n{err}"
    );

    // The failure set a cooldown; clear it so the next run asks again.
    assert_code(&world.run(&["clear-flag", "fitbit"]).await, 0);
    let verbose = world.run(&["-v", "refresh", "fitbit"]).await;
    assert_code(&verbose, 4);
    assert!(
        stderr(&verbose).contains("WARN"),
        "no log lines under -v:\n{}",
        stderr(&verbose)
    );
    world.assert_no_secrets(&output, false);
    world.assert_no_secrets(&verbose, false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_names_a_refused_connection_in_words() {
    let world = World::start().await;
    world.seed_fitbit("default", false).await;
    let port = free_port();
    // The dead port is one of the provider's API origins, so `get` sends
    // (a URL outside them is refused before sending, with exit 2).
    let config = world.config_text().replacen(
        "revoke_url = ",
        &format!("api_base_urls = [\"http://127.0.0.1:{port}\"]\nrevoke_url = "),
        1,
    );
    world.write_config(&config);
    let url = format!("http://127.0.0.1:{port}/1/user/-/profile.json");
    let output = world.run(&["get", "fitbit", &url, "-vv"]).await;
    assert_code(&output, 4);
    let err = stderr(&output);
    assert!(
        err.contains("connection refused: nothing is listening at that address and port"),
        "{err}"
    );
    assert!(!err.contains("error sending request"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_directory_that_cannot_be_used_exits_2_with_one_hint() {
    let world = World::start().await;
    let file = world.dir.path().join("not-a-directory");
    std::fs::write(&file, "x").expect("write a file");
    let store = file.join("tokens");
    let output = support::run({
        let mut cmd = world.command(&["token", "fitbit"]);
        cmd.env("AUTHCTL_STORE", &store);
        cmd
    })
    .await;
    assert_code(&output, 2);
    let err = stderr(&output);
    assert!(
        err.contains(&format!(
            "cannot use the token store directory {}",
            store.display()
        )),
        "{err}"
    );
    assert_eq!(count(&err, "AUTHCTL_STORE"), 1, "{err}");
    assert_eq!(err.lines().count(), 2, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_with_no_stored_token_does_not_ask_for_a_login() {
    let world = World::start().await;
    let output = world.run(&["revoke", "fitbit"]).await;
    assert_code(&output, 0);
    assert_eq!(
        stdout(&output),
        "no token stored for fitbit/default; nothing to revoke\n"
    );
    assert!(!stderr(&output).contains("login"), "{}", stderr(&output));
    assert_eq!(world.emulator.counters().fitbit_revoke, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_with_the_server_unreachable_keeps_the_token_and_mentions_logout() {
    let world = World::start().await;
    let revoke = world.emulator.fitbit_endpoints().revoke;
    let unreachable = format!("http://127.0.0.1:{}/oauth2/revoke", free_port());
    world.write_config(&world.config_text().replace(
        &format!("revoke_url = \"{revoke}\""),
        &format!("revoke_url = \"{unreachable}\""),
    ));
    world.seed_fitbit("default", false).await;
    let output = world.run(&["revoke", "fitbit"]).await;
    assert_code(&output, 4);
    let err = stderr(&output);
    assert!(err.contains("run: authctl logout fitbit"), "{err}");
    assert!(
        err.trim_end().ends_with("run: authctl logout fitbit"),
        "{err}"
    );
    assert!(world.stored("fitbit", "default").await.is_some());
    world.assert_no_secrets(&output, false);
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_during_a_login_exits_130_without_talk_of_a_refresh() {
    let world = World::start().await;
    let mut login = Running::spawn(world.command(&["login", "fitbit", "--no-browser"]));
    login.authorize_url().await;
    login.interrupt();
    let output = login.finish().await;
    assert_code(&output, 130);
    let err = stderr(&output);
    assert!(err.contains("the login stops here"), "{err}");
    assert!(!err.contains("refresh"), "{err}");
    assert!(world.stored("fitbit", "default").await.is_none());
}
