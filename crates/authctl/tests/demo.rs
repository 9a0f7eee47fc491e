//! `authctl demo` (the main job) and `authctl emulator`.

mod support;

use std::io::{BufRead as _, BufReader};
use std::process::Stdio;
use std::time::Duration;

use auth_emulator::demo;
use support::{
    KillOnDrop, Running, assert_code, assert_no_opaque_strings, authctl, consent_at, stderr,
    stdout, write_private,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_passes_every_step_without_config_and_prints_no_secret() {
    let home = tempfile::tempdir().expect("tempdir");
    let store = home.path().join("must-not-be-created");
    let mut cmd = authctl(home.path());
    // Neither a config nor a store setting is read.
    cmd.arg("demo")
        .env("AUTHCTL_CONFIG", home.path().join("no-such-config.toml"))
        .env("AUTHCTL_STORE", &store);
    let output = support::run(cmd).await;
    assert_code(&output, 0);
    let out = stdout(&output);
    for step in 1..=9 {
        assert!(
            out.contains(&format!("[{step}/9]")),
            "step {step} missing:\n{out}"
        );
    }
    assert_eq!(out.matches("\n      ok\n").count(), 9, "{out}");
    for story in [
        "HTTP Basic",
        "S256",
        "user_id",
        "introspect",
        "410 Gone",
        "google-health",
        "googlehealth.activity_and_fitness.readonly",
        "the stored one was kept",
        "revoked",
        "All 9 steps behaved as expected",
    ] {
        assert!(
            out.contains(story),
            "the demo does not tell {story:?}:\n{out}"
        );
    }
    let all = format!("{out}{}", stderr(&output));
    for secret in [
        demo::FITBIT_SERVER_CLIENT_SECRET,
        demo::GOOGLE_CLIENT_SECRET,
    ] {
        assert!(!all.contains(secret), "a client secret was printed:\n{all}");
    }
    assert_no_opaque_strings(&all);
    assert!(!store.exists(), "the demo wrote to AUTHCTL_STORE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emulator_prints_config_sections_that_work_as_pasted() {
    let home = tempfile::tempdir().expect("tempdir");
    let mut emulator = KillOnDrop(
        authctl(home.path())
            .args(["emulator", "--port", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("authctl emulator starts"),
    );
    let out = emulator.0.stdout.take().expect("piped stdout");
    let read = tokio::task::spawn_blocking(move || {
        let mut text = String::new();
        for line in BufReader::new(out).lines() {
            let line = line.expect("a line");
            text.push_str(&line);
            text.push('\n');
            if line.starts_with("# end of the authctl config") {
                break;
            }
        }
        text
    });
    let text = tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .expect("the config was printed in time")
        .expect("the reader thread");
    // Its own sections, its own store, the profile scope, and how to use it.
    assert!(text.contains("[providers.emulator-fitbit]"), "{text}");
    assert!(
        text.contains("[providers.emulator-fitbit-public]"),
        "{text}"
    );
    assert!(
        text.contains("[providers.emulator-google-health]"),
        "{text}"
    );
    assert!(!text.contains("[providers.fitbit]"), "{text}");
    assert!(
        text.contains("[store]\npath = \"emulator-tokens\""),
        "{text}"
    );
    assert!(text.contains("\"profile\""), "{text}");
    assert!(text.contains("/1/user/-/profile.json"), "{text}");
    assert!(text.contains("authctl emulator > emulator.toml"), "{text}");
    assert!(text.contains("AUTHCTL_CONFIG=emulator.toml"), "{text}");
    assert!(!text.contains(demo::FITBIT_SERVER_CLIENT_SECRET), "{text}");

    let config = home.path().join("emulator.toml");
    write_private(&config, &text);
    let mut cmd = authctl(home.path());
    cmd.arg("--config")
        .arg(&config)
        .args(["login", "emulator-fitbit", "--manual"])
        .env("AUTHCTL_STORE", home.path().join("tokens"))
        .env(
            "AUTHCTL_DEMO_FITBIT_SECRET",
            demo::FITBIT_SERVER_CLIENT_SECRET,
        );
    let mut login = Running::spawn(cmd);
    let authorize = login.authorize_url().await;
    let callback = consent_at(&authorize).await;
    assert!(
        callback.as_str().starts_with(demo::REDIRECT_URI),
        "{callback}"
    );
    login.type_line(callback.as_str());
    let output = login.finish().await;
    assert_code(&output, 0);
    let summary = stdout(&output);
    assert!(
        summary.contains("logged in: emulator-fitbit/default"),
        "{summary}"
    );
    assert!(
        summary.contains(&format!("user_id   {}", demo::DEFAULT_USER_ID)),
        "{summary}"
    );
}

/// Reads the config `authctl emulator` prints, up to its end marker.
async fn printed_config(emulator: &mut KillOnDrop) -> String {
    let out = emulator.0.stdout.take().expect("piped stdout");
    let read = tokio::task::spawn_blocking(move || {
        let mut text = String::new();
        for line in BufReader::new(out).lines() {
            let line = line.expect("a line");
            text.push_str(&line);
            text.push('\n');
            if line.starts_with("# end of the authctl config") {
                break;
            }
        }
        text
    });
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .expect("the config was printed in time")
        .expect("the reader thread")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catalogue_profile_works_as_pasted_and_get_stays_within_its_apis() {
    let home = tempfile::tempdir().expect("tempdir");
    let mut emulator = KillOnDrop(
        authctl(home.path())
            .args([
                "emulator",
                "--port",
                "0",
                "--provider",
                "strava",
                "--provider",
                "withings",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("authctl emulator starts"),
    );
    let text = printed_config(&mut emulator).await;
    assert!(
        text.contains("[providers.emulator-strava]\nkind = \"strava\""),
        "{text}"
    );
    assert!(
        text.contains("[providers.emulator-withings]\nkind = \"withings\""),
        "{text}"
    );
    assert!(
        text.contains("[store]\npath = \"emulator-tokens\""),
        "{text}"
    );
    assert!(
        !text.contains(auth_emulator::profile::PROFILE_CLIENT_SECRET),
        "{text}"
    );
    let config = home.path().join("emulator.toml");
    write_private(&config, &text);
    let secret = (
        "AUTHCTL_EMULATOR_SECRET",
        auth_emulator::profile::PROFILE_CLIENT_SECRET,
    );

    let mut cmd = authctl(home.path());
    cmd.env("AUTHCTL_CONFIG", &config)
        .args(["login", "emulator-strava", "--manual"])
        .env(secret.0, secret.1);
    let mut login = Running::spawn(cmd);
    let authorize = login.authorize_url().await;
    assert!(
        authorize
            .as_str()
            .contains("scope=read%2Cactivity%3Aread_all"),
        "{authorize}"
    );
    let callback = consent_at(&authorize).await;
    login.type_line(callback.as_str());
    let output = login.finish().await;
    assert_code(&output, 0);
    assert_no_opaque_strings(&stdout(&output));
    assert!(
        home.path().join("emulator-tokens").exists(),
        "the emulator's tokens go to its own store"
    );

    let api = text
        .lines()
        .find(|l| l.contains("/strava/api/"))
        .and_then(|l| l.trim_start_matches('#').split_whitespace().next())
        .expect("the printed config lists the strava API")
        .to_owned();
    let mut cmd = authctl(home.path());
    cmd.env("AUTHCTL_CONFIG", &config)
        .args(["get", "emulator-strava", &api])
        .env(secret.0, secret.1);
    let output = support::run(cmd).await;
    assert_code(&output, 0);
    assert!(
        stdout(&output).contains("\"ok\":true"),
        "{}",
        stdout(&output)
    );
    assert_no_opaque_strings(&format!("{}{}", stdout(&output), stderr(&output)));

    // Another provider's API: refused before anything is sent.
    let withings_api = api.replace("/strava/", "/withings/");
    let mut cmd = authctl(home.path());
    cmd.env("AUTHCTL_CONFIG", &config)
        .args(["get", "emulator-strava", &withings_api])
        .env(secret.0, secret.1);
    let output = support::run(cmd).await;
    assert_code(&output, 2);
    assert!(
        stderr(&output).contains("is not an API of provider emulator-strava"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn providers_lists_the_catalogue_and_shows_an_entry_with_its_sources() {
    let home = tempfile::tempdir().expect("tempdir");
    let mut cmd = authctl(home.path());
    cmd.arg("providers");
    let output = support::run(cmd).await;
    assert_code(&output, 0);
    let list = stdout(&output);
    let count = auth_catalogue::Catalogue::builtin().len();
    assert!(list.contains(&format!("{count} providers")), "{list}");
    assert!(list.lines().any(|l| l.starts_with("strava ")), "{list}");

    let mut cmd = authctl(home.path());
    cmd.args(["providers", "show", "withings"]);
    let output = support::run(cmd).await;
    assert_code(&output, 0);
    let shown = stdout(&output);
    assert!(shown.contains("replay window           8h"), "{shown}");
    assert!(shown.contains("https://developer.withings.com/"), "{shown}");

    let mut cmd = authctl(home.path());
    cmd.args(["providers", "show", "no-such-provider"]);
    let output = support::run(cmd).await;
    assert_code(&output, 2);
    assert!(
        stderr(&output).contains("no-such-provider"),
        "{}",
        stderr(&output)
    );
}
