//! `authctl token` with the client credentials grant (against
//! oidc-provider, the certified peer of test-support) and
//! `authctl login --device` (against the emulator's Google device flow).

mod support;

use std::time::Duration;

use auth_core::secrecy::ExposeSecret as _;
use auth_emulator::Emulator;
use support::*;
use test_support::oidc_provider::{OidcProvider, SERVICE_CLIENT_ID, SERVICE_CLIENT_SECRET};

const SERVICE_SECRET_ENV: &str = "TEST_AUTHCTL_SERVICE_SECRET";

#[tokio::test]
async fn token_with_client_credentials_needs_no_login() {
    let server = OidcProvider::start().await;
    let world = World::start().await;
    world.remember(SERVICE_CLIENT_SECRET);
    world.write_config(&format!(
        r#"{}
[providers.service]
kind = "oauth2"
grant = "client_credentials"
client_id = "{SERVICE_CLIENT_ID}"
client_secret_env = "{SERVICE_SECRET_ENV}"
issuer = "{}"
scopes = ["api:read"]
"#,
        world.config_text(),
        server.issuer_str()
    ));
    let run = |args: &'static [&'static str]| {
        let mut cmd = world.command(args);
        cmd.env(SERVICE_SECRET_ENV, SERVICE_CLIENT_SECRET);
        support::run(cmd)
    };
    let before = server.token_requests().await;
    let first = run(&["token", "service"]).await;
    assert_code(&first, 0);
    world.remember_stored_tokens().await;
    let token = stdout(&first).trim().to_owned();
    let stored = world.stored("service", "default").await.expect("saved");
    assert_eq!(stored.access_token().expose_secret(), token);
    assert!(stored.refresh_token().is_none());
    world.assert_no_secrets(&first, true);
    // The stored token is still fresh: no second request.
    let second = run(&["token", "service"]).await;
    assert_code(&second, 0);
    assert_eq!(stdout(&second).trim(), token);
    assert_eq!(server.token_requests().await - before, 1);

    // A wrong secret is a configuration error (exit 2), never a login prompt.
    let mut cmd = world.command(&["token", "service", "--account", "other"]);
    cmd.env(SERVICE_SECRET_ENV, "wrong-secret-0a9b8c7d");
    let wrong = support::run(cmd).await;
    assert_code(&wrong, 2);
    assert!(
        stderr(&wrong).contains("invalid_client"),
        "{}",
        stderr(&wrong)
    );
    assert!(!stderr(&wrong).contains("wrong-secret-0a9b8c7d"));
}

async fn device_world() -> World {
    let world =
        World::with(Emulator::builder().google_device_interval(Duration::from_secs(1))).await;
    let issuer = world.emulator.google_endpoints().issuer;
    world.write_config(&format!(
        r#"{}
[providers.tv]
kind = "oauth2"
client_id = "{GOOGLE_CLIENT_ID}"
client_secret_env = "{GOOGLE_SECRET_ENV}"
auth_method = "client_secret_post"
issuer = "{}"
scopes = ["openid", "email"]
"#,
        world.config_text(),
        issuer.as_str().trim_end_matches('/')
    ));
    world
}

#[tokio::test]
async fn login_device_prints_the_code_and_the_uri_and_saves_the_token() {
    let world = device_world().await;
    let mut running = Running::spawn(world.command(&["login", "tv", "--device"]));
    let uri = running.authorize_url().await;
    assert_eq!(uri, world.emulator.google_endpoints().device_page);
    let line = running.line_containing("enter the code").await;
    let code = line.rsplit(' ').next().unwrap().to_owned();
    // The person, on their phone.
    let page = browser()
        .get(uri)
        .query(&[("user_code", code.as_str())])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Success"), "{page}");
    let output = running.finish().await;
    assert_code(&output, 0);
    let said = format!("{}{}", stdout(&output), stderr(&output));
    assert!(said.contains("logged in"), "{said}");
    let stored = world.stored("tv", "default").await.expect("saved");
    assert!(stored.refresh_token().is_some());
    world.remember_stored_tokens().await;
    world.assert_no_secrets(&output, false);
    // Then `token` serves it like any login.
    let token = world.run(&["token", "tv"]).await;
    assert_code(&token, 0);
    assert_eq!(stdout(&token).trim(), stored.access_token().expose_secret());
}

#[tokio::test]
async fn login_device_ends_with_a_clear_error_when_the_person_refuses() {
    let world = device_world().await;
    world.emulator.deny_next_authorization();
    let mut running = Running::spawn(world.command(&["login", "tv", "--device"]));
    let uri = running.authorize_url().await;
    let line = running.line_containing("enter the code").await;
    let code = line.rsplit(' ').next().unwrap().to_owned();
    browser()
        .get(uri)
        .query(&[("user_code", code.as_str())])
        .send()
        .await
        .unwrap();
    let output = running.finish().await;
    assert_ne!(code_of(&output), 0);
    assert!(
        stderr(&output).contains("access_denied"),
        "{}",
        stderr(&output)
    );
    assert!(world.stored("tv", "default").await.is_none());
}

#[tokio::test]
async fn login_device_refuses_health_scopes_as_google_does() {
    let world = device_world().await;
    let output = world
        .run(&[
            "login",
            "tv",
            "--device",
            "--scope",
            "https://www.googleapis.com/auth/googlehealth.sleep.readonly",
        ])
        .await;
    assert_code(&output, 2);
    assert!(
        stderr(&output).contains("invalid_scope"),
        "{}",
        stderr(&output)
    );
}

fn code_of(output: &std::process::Output) -> i32 {
    support::code(output)
}
