//! `authctl login` with the test playing the browser: the loopback
//! callback, `--manual`, a denied consent, a forged state, a timeout and a
//! busy port.

mod support;

use support::{Running, USER, World, assert_code, browser, consent, stderr, stdout};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_through_the_loopback_callback_stores_the_token() {
    let world = World::start().await;
    let mut login = Running::spawn(world.command(&[
        "login",
        "fitbit",
        "--no-browser",
        "--scope",
        "sleep",
        "--scope",
        "activity",
    ]));
    let authorize = login.authorize_url().await;
    assert!(
        authorize
            .query_pairs()
            .any(|(k, v)| k == "scope" && v == "sleep activity"),
        "--scope did not replace the configured scopes: {authorize}"
    );
    assert!(
        authorize
            .as_str()
            .starts_with(world.emulator.base_url().as_str()),
        "{authorize}"
    );
    assert!(
        authorize
            .query_pairs()
            .any(|(k, v)| k == "code_challenge_method" && v == "S256"),
        "{authorize}"
    );
    let callback = consent(&world, &authorize).await;
    assert!(
        callback.as_str().starts_with(&world.redirect_uri),
        "{callback}"
    );
    let page = browser()
        .get(callback.as_str())
        .send()
        .await
        .expect("authctl's callback page answers");
    assert_eq!(page.status(), 200);
    assert!(page.text().await.expect("a page").contains("Logged in"));

    let output = login.finish().await;
    assert_code(&output, 0);
    let out = stdout(&output);
    assert!(out.contains("logged in: fitbit/default"), "{out}");
    assert!(out.contains(&format!("user_id   {USER}")), "{out}");
    assert!(out.contains("scopes    activity sleep\n"), "{out}");
    assert!(out.contains("expires"), "{out}");

    let stored = world
        .stored("fitbit", "default")
        .await
        .expect("the token is stored under the default account");
    assert_eq!(user_id(&stored), Some(USER));
    assert_eq!(world.emulator.counters().fitbit_token_authorization_code, 1);
    world.remember_stored_tokens().await;
    world.assert_no_secrets(&output, false);
}

fn user_id(token: &auth_core::TokenSet) -> Option<&str> {
    token.extra_str("user_id")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_login_reads_the_redirected_url_from_stdin() {
    let world = World::start().await;
    let mut login = Running::spawn(world.command(&[
        "login",
        "google-health",
        "--manual",
        "--account",
        "alice",
    ]));
    let authorize = login.authorize_url().await;
    assert!(
        authorize
            .query_pairs()
            .any(|(k, v)| k == "prompt" && v == "consent"),
        "{authorize}"
    );
    let callback = consent(&world, &authorize).await;
    // Nothing listens with --manual: the browser's visit would fail.
    assert!(browser().get(callback.as_str()).send().await.is_err());
    login.type_line(callback.as_str());
    let output = login.finish().await;
    assert_code(&output, 0);
    assert!(
        stdout(&output).contains("logged in: google-health/alice"),
        "{}",
        stdout(&output)
    );
    let stored = world
        .stored("google-health", "alice")
        .await
        .expect("stored under --account");
    assert!(stored.refresh_token().is_some());
    world.remember_stored_tokens().await;
    world.assert_no_secrets(&output, false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_consent_exits_3_and_the_browser_is_told() {
    let world = World::start().await;
    world.emulator.deny_next_authorization();
    let mut login = Running::spawn(world.command(&["login", "fitbit", "--no-browser"]));
    let authorize = login.authorize_url().await;
    let callback = consent(&world, &authorize).await;
    let page = browser()
        .get(callback.as_str())
        .send()
        .await
        .expect("the page answers");
    assert_eq!(page.status(), 400);
    assert!(page.text().await.expect("a page").contains("Login failed"));
    let output = login.finish().await;
    assert_code(&output, 3);
    let err = stderr(&output);
    assert!(err.contains("access_denied"), "{err}");
    assert!(err.contains("run: authctl login fitbit"), "{err}");
    assert!(world.stored("fitbit", "default").await.is_none());
    world.assert_no_secrets(&output, false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_with_another_state_is_refused() {
    let world = World::start().await;
    let mut login = Running::spawn(world.command(&["login", "fitbit", "--no-browser"]));
    let authorize = login.authorize_url().await;
    let callback = consent(&world, &authorize).await;
    let mut forged = callback.clone();
    let pairs: Vec<(String, String)> = callback
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "state" { "forged".into() } else { v };
            (k.into_owned(), v.into_owned())
        })
        .collect();
    forged.query_pairs_mut().clear().extend_pairs(pairs);
    let page = browser()
        .get(forged.as_str())
        .send()
        .await
        .expect("the page answers");
    assert_eq!(page.status(), 400);
    let output = login.finish().await;
    assert_code(&output, 3);
    assert!(stderr(&output).contains("state"), "{}", stderr(&output));
    assert!(world.stored("fitbit", "default").await.is_none());
    assert_eq!(
        world.emulator.counters().fitbit_token_authorization_code,
        0,
        "the code was sent despite the wrong state"
    );
    world.assert_no_secrets(&output, false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_that_times_out_says_so() {
    let world = World::start().await;
    let mut login =
        Running::spawn(world.command(&["login", "fitbit", "--no-browser", "--timeout", "1"]));
    login.authorize_url().await;
    let output = login.finish().await;
    assert_code(&output, 3);
    let err = stderr(&output);
    assert!(err.contains("within 1s"), "{err}");
    assert!(err.contains("--timeout"), "{err}");
    assert!(world.stored("fitbit", "default").await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_callback_port_is_a_usage_error_that_suggests_manual() {
    let world = World::start().await;
    let port = url::Url::parse(&world.redirect_uri)
        .expect("a URL")
        .port()
        .expect("a port");
    let _busy = std::net::TcpListener::bind(("127.0.0.1", port)).expect("hold the port");
    let output = world.run(&["login", "fitbit", "--no-browser"]).await;
    assert_code(&output, 2);
    let err = stderr(&output);
    assert!(
        err.contains(&port.to_string()) && err.contains("--manual"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_expires_in_is_asked_for_and_the_state_echoed() {
    let world = World::start().await;
    world.write_config(&world.config_text().replace(
        "app_type = \"server\"\n",
        "app_type = \"server\"\nexpires_in = 3600\n",
    ));
    let mut login = Running::spawn(world.command(&["login", "fitbit", "--no-browser"]));
    let authorize = login.authorize_url().await;
    let state = authorize
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .expect("the authorize URL carries a state");
    let callback = consent(&world, &authorize).await;
    let page = browser()
        .get(callback.as_str())
        .send()
        .await
        .expect("authctl's callback page answers");
    assert_eq!(page.status(), 200);
    let output = login.finish().await;
    assert_code(&output, 0);

    let sent = world
        .emulator
        .last_request(auth_emulator::Endpoint::FitbitToken)
        .expect("a token request");
    assert_eq!(sent.form_param("expires_in").as_deref(), Some("3600"));
    assert_eq!(sent.form_param("state"), Some(state));
    let stored = world
        .stored("fitbit", "default")
        .await
        .expect("the token is stored");
    let lifetime = stored
        .expires_at()
        .expect("an expiry")
        .duration_since(stored.issued_at())
        .expect("after issue");
    assert_eq!(lifetime.as_secs(), 3600);
    world.remember_stored_tokens().await;
    world.assert_no_secrets(&output, false);
}
