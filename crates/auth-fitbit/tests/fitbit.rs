//! The legacy Fitbit provider against the emulator, through a TokenManager.

mod support;

use std::collections::HashSet;

use auth_core::secrecy::ExposeSecret;
use auth_core::{AuthorizeRequest, Error, TokenProvider, TokenStore};
use auth_emulator::{Emulator, Endpoint, Fault, demo};
use auth_fitbit::{AppType, FitbitProvider, Prompt, Scope};
use support::*;

#[tokio::test]
async fn server_app_full_lifecycle() {
    let w = world(AppType::Server).await;
    w.emulator.set_next_user("ABC123");
    let key = login(&w, &fitbit_id(), AuthorizeRequest::new()).await;
    // user_id is the default account, and is kept.
    assert_eq!(key, fitbit_key("ABC123"));
    let first = w.manager.access_token(&key).await.unwrap();
    assert_eq!(auth_fitbit::user_id(first.token_set()), Some("ABC123"));
    assert!(first.token_set().scopes().contains("sleep"));
    let expires_in = first
        .expires_at()
        .unwrap()
        .duration_since(first.token_set().issued_at())
        .unwrap();
    assert_eq!(
        expires_in.as_secs(),
        28_800,
        "expires_in stamped as an absolute expiry"
    );

    // Basic auth on the token request; the secret never in the body.
    let exchange = w.emulator.last_request(Endpoint::FitbitToken).unwrap();
    assert!(
        exchange
            .header("authorization")
            .unwrap()
            .starts_with("Basic ")
    );
    assert!(!exchange.body.contains(demo::FITBIT_SERVER_CLIENT_SECRET));
    assert!(!exchange.body.contains("client_secret"));
    assert!(
        exchange.body.contains("code_verifier="),
        "PKCE is always used"
    );

    // A refresh rotates both tokens.
    let old_refresh = stored_refresh(&w, &key).await;
    let second = w.manager.refresh(&key).await.unwrap();
    assert_ne!(second.secret(), first.secret());
    assert_ne!(stored_refresh(&w, &key).await, old_refresh);
    let refresh_request = w.emulator.last_request(Endpoint::FitbitToken).unwrap();
    assert!(
        refresh_request
            .header("authorization")
            .unwrap()
            .starts_with("Basic ")
    );
    assert!(
        !refresh_request
            .body
            .contains(demo::FITBIT_SERVER_CLIENT_SECRET)
    );

    // Introspection: Bearer auth, braces scopes parsed into pairs.
    let info = w.manager.introspect(&key).await.unwrap();
    assert!(info.active);
    assert_eq!(info.subject.as_deref(), Some("ABC123"));
    let sleep = info
        .scopes
        .iter()
        .find(|s| s.name == "sleep")
        .expect("sleep scope");
    assert_eq!(sleep.access.as_deref(), Some("READ_WRITE"));
    assert!(info.expires_at.is_some());
    let introspect = w.emulator.last_request(Endpoint::FitbitIntrospect).unwrap();
    assert_eq!(
        introspect.header("authorization").unwrap(),
        format!("Bearer {}", second.secret())
    );

    // Rate limits are exposed.
    let limit = FitbitProvider::last_rate_limit(&w.fitbit).expect("rate-limit headers seen");
    assert_eq!(limit.limit, 150);
    assert!(limit.remaining < 150);

    // Revoke kills every token of the user.
    let token = w.store.load(&key).await.unwrap().unwrap().token.unwrap();
    w.manager.revoke(&key).await.unwrap();
    // A tombstone is left: it refuses logins begun before the revoke.
    let stone = w.store.load(&key).await.unwrap().expect("a tombstone");
    assert!(stone.token.is_none(), "the token is gone");
    let revoke = w.emulator.last_request(Endpoint::FitbitRevoke).unwrap();
    assert!(
        revoke
            .header("authorization")
            .unwrap()
            .starts_with("Basic ")
    );
    let dead = w.fitbit.introspect(&token).await;
    assert!(
        dead.is_err() || !dead.unwrap().active,
        "the access token still works after revoke"
    );
    let err = w.fitbit.refresh(&token).await.unwrap_err();
    assert!(err.is_reauthorization_required(), "{err}");
    assert!(
        !format!("{err}").contains(token.refresh_token().unwrap().expose_secret()),
        "{err}"
    );
}

#[tokio::test]
async fn public_app_sends_client_id_and_no_authorization_header() {
    let w = world(AppType::Client).await;
    let key = login(&w, &fitbit_id(), AuthorizeRequest::new()).await;
    let exchange = w.emulator.last_request(Endpoint::FitbitToken).unwrap();
    assert!(exchange.header("authorization").is_none());
    assert_eq!(
        exchange.form_param("client_id").as_deref(),
        Some(demo::FITBIT_PUBLIC_CLIENT_ID)
    );
    assert!(exchange.form_param("code_verifier").is_some());
    w.manager.refresh(&key).await.unwrap();
    let refresh = w.emulator.last_request(Endpoint::FitbitToken).unwrap();
    assert!(refresh.header("authorization").is_none());
    assert_eq!(
        refresh.form_param("client_id").as_deref(),
        Some(demo::FITBIT_PUBLIC_CLIENT_ID)
    );
    w.manager.revoke(&key).await.unwrap();
    let revoke = w.emulator.last_request(Endpoint::FitbitRevoke).unwrap();
    assert!(revoke.header("authorization").is_none());
}

#[tokio::test]
async fn a_server_app_without_secret_and_a_public_app_with_one_are_refused() {
    assert!(
        auth_fitbit::FitbitProvider::builder("x")
            .client_auth(AppType::Server.client_auth())
            .build()
            .is_err()
    );
    let err = auth_fitbit::FitbitProvider::builder("x")
        .client_auth(AppType::Client.client_auth())
        .client_secret("s")
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::Configuration { .. }));
}

#[tokio::test]
async fn prompt_values_are_checked() {
    let w = world(AppType::Server).await;
    let p = w
        .fitbit
        .authorize(AuthorizeRequest::new().prompt(Prompt::LoginConsent.as_str()))
        .unwrap();
    assert!(
        p.authorize_url
            .query_pairs()
            .any(|(k, v)| k == "prompt" && v == "login consent")
    );
    assert!(
        w.fitbit
            .authorize(AuthorizeRequest::new().prompt("select_account"))
            .is_err()
    );
}

#[tokio::test]
async fn a_user_granting_fewer_scopes_is_fine() {
    let w = world(AppType::Server).await;
    w.emulator.set_next_granted_scopes(&["sleep"]);
    let key = login(
        &w,
        &fitbit_id(),
        AuthorizeRequest::new().scopes(["sleep", "activity", "heartrate"]),
    )
    .await;
    let token = w.manager.access_token(&key).await.unwrap();
    assert_eq!(
        token.token_set().scopes().iter().collect::<Vec<_>>(),
        vec!["sleep"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_callers_on_an_expired_token_make_one_refresh() {
    let w = world_with(
        Emulator::builder().with_demo_clients().replay_window(false),
        AppType::Server,
    )
    .await;
    let issued = w
        .emulator
        .seed_fitbit_grant(demo::FITBIT_SERVER_CLIENT_ID, "STAMPD", &["sleep"]);
    let key = fitbit_key("STAMPD");
    store_expired(&w, &key, &issued).await;
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let manager = w.manager.clone();
        let key = key.clone();
        tasks.push(tokio::spawn(
            async move { manager.access_token(&key).await },
        ));
    }
    let mut tokens = HashSet::new();
    for task in tasks {
        tokens.insert(task.await.unwrap().unwrap().secret().to_owned());
    }
    assert_eq!(w.emulator.counters().fitbit_token_refresh, 1);
    assert_eq!(w.emulator.counters().reuse_detections, 0);
    assert_eq!(tokens.len(), 1);
    assert!(!tokens.contains(&issued.access_token));
}

#[tokio::test]
async fn a_lost_refresh_response_is_recovered_inside_the_replay_window() {
    let w = world(AppType::Server).await;
    let issued = w
        .emulator
        .seed_fitbit_grant(demo::FITBIT_SERVER_CLIENT_ID, "LOSTRS", &["sleep"]);
    let key = fitbit_key("LOSTRS");
    store_expired(&w, &key, &issued).await;
    // The server rotates the token, then the connection drops: we never hear.
    w.emulator
        .inject(Endpoint::FitbitToken, Fault::DropAfterProcessing, 1);
    let token = w
        .manager
        .access_token(&key)
        .await
        .expect("recovered without reauthorization");
    let c = w.emulator.counters();
    assert_eq!(c.fitbit_token_refresh, 2, "one lost request, one retry");
    assert_eq!(c.replays, 1, "the retry got the same answer again");
    assert_eq!(c.reuse_detections, 0);
    // The recovered pair is the live one: it refreshes again fine.
    assert!(
        w.manager
            .stored(&key)
            .await
            .unwrap()
            .unwrap()
            .reauthorization_required()
            .is_none()
    );
    let next = w.manager.refresh(&key).await.unwrap();
    assert_ne!(next.secret(), token.secret());
}

#[tokio::test]
async fn rate_limited_is_transient_with_retry_after() {
    let w = world(AppType::Server).await;
    let issued = w
        .emulator
        .seed_fitbit_grant(demo::FITBIT_SERVER_CLIENT_ID, "RATE01", &["sleep"]);
    let key = fitbit_key("RATE01");
    store_expired(&w, &key, &issued).await;
    w.emulator.inject(
        Endpoint::FitbitToken,
        Fault::RateLimited {
            retry_after: std::time::Duration::from_secs(1200),
        },
        1,
    );
    let err = w.manager.access_token(&key).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert_eq!(
        err.retry_after(),
        Some(std::time::Duration::from_secs(1200))
    );
    assert_eq!(err.http_status(), Some(429));
    // Every process honours the server's wait: the cooldown is stored with
    // the token, and the next call sends nothing.
    let requests = w.emulator.counters().fitbit_token_refresh;
    let err = w.manager.access_token(&key).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(
        err.retry_after().unwrap() > std::time::Duration::from_secs(1100),
        "{err}"
    );
    assert_eq!(w.emulator.counters().fitbit_token_refresh, requests);
    // Nothing was lost: once an operator clears the cooldown, it refreshes.
    assert!(w.manager.clear_reauthorization(&key).await.unwrap().any());
    w.manager.access_token(&key).await.unwrap();
    assert_eq!(w.emulator.counters().fitbit_token_refresh, requests + 1);
}

#[tokio::test]
async fn retired_mode_names_google_health_and_the_date() {
    let w = world(AppType::Server).await;
    let issued = w
        .emulator
        .seed_fitbit_grant(demo::FITBIT_SERVER_CLIENT_ID, "RETIRE", &["sleep"]);
    let key = fitbit_key("RETIRE");
    store_expired(&w, &key, &issued).await;
    w.emulator.set_retired(true);
    let err = w.manager.access_token(&key).await.unwrap_err();
    match &err {
        Error::ProviderRetired {
            successor,
            provider,
            ..
        } => {
            assert_eq!(successor, "google-health");
            assert_eq!(provider.as_str(), "fitbit");
        }
        other => panic!("expected ProviderRetired, got {other}"),
    }
    let text = err.to_string();
    assert!(text.contains("2026-11-02"), "{text}");
    assert!(text.contains("google-health"), "{text}");
    assert!(
        w.store.load(&key).await.unwrap().is_some(),
        "the token is kept"
    );
}

#[tokio::test]
async fn invalid_grant_keeps_and_flags_the_token() {
    let w = world(AppType::Server).await;
    let issued = w
        .emulator
        .seed_fitbit_grant(demo::FITBIT_SERVER_CLIENT_ID, "GRANT1", &["sleep"]);
    // A newer grant for the same user makes the first refresh token invalid.
    let _newer = w
        .emulator
        .seed_fitbit_grant(demo::FITBIT_SERVER_CLIENT_ID, "GRANT1", &["sleep"]);
    let key = fitbit_key("GRANT1");
    store_expired(&w, &key, &issued).await;
    let err = w.manager.access_token(&key).await.unwrap_err();
    assert!(err.is_reauthorization_required(), "{err}");
    assert!(
        !err.to_string()
            .contains(issued.refresh_token.as_deref().unwrap()),
        "{err}"
    );
    let stored = w.store.load(&key).await.unwrap().expect("kept");
    assert_eq!(
        stored
            .token
            .as_ref()
            .unwrap()
            .refresh_token()
            .unwrap()
            .expose_secret(),
        issued.refresh_token.as_deref().unwrap()
    );
    assert!(
        stored
            .token
            .as_ref()
            .unwrap()
            .reauthorization_required()
            .is_some()
    );
    assert_eq!(w.emulator.counters().fitbit_token_refresh, 1, "not retried");
}

#[tokio::test]
async fn a_denied_login_is_a_clear_error() {
    let w = world(AppType::Server).await;
    w.emulator.deny_next_authorization();
    let pending = w
        .manager
        .begin_authorization(&fitbit_id(), AuthorizeRequest::new())
        .unwrap();
    let callback = browse(&pending.authorize_url).await;
    let err = w
        .manager
        .complete_authorization(&pending, &callback)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AuthorizationDenied { .. }), "{err}");
    assert_eq!(w.emulator.counters().fitbit_token_authorization_code, 0);
}

async fn stored_refresh(w: &World, key: &auth_core::TokenKey) -> String {
    w.store
        .load(key)
        .await
        .unwrap()
        .unwrap()
        .token
        .unwrap()
        .refresh_token()
        .unwrap()
        .expose_secret()
        .to_owned()
}

#[tokio::test]
async fn the_code_exchange_echoes_the_state_and_asks_for_the_lifetime() {
    let world = world(AppType::Server).await;
    let fitbit = FitbitProvider::builder(demo::FITBIT_SERVER_CLIENT_ID)
        .client_secret(demo::FITBIT_SERVER_CLIENT_SECRET)
        .redirect_uri(demo::REDIRECT_URI)
        .default_scopes([Scope::Activity])
        .base_url(world.emulator.base_url())
        .unwrap()
        .expires_in(3600)
        .build()
        .unwrap();
    let pending = auth_core::TokenProvider::authorize(
        &fitbit,
        AuthorizeRequest::new().state("state-from-the-app"),
    )
    .unwrap();
    let callback = browse(&pending.authorize_url).await;
    let token = auth_core::TokenProvider::exchange_code(&fitbit, &pending, &callback)
        .await
        .unwrap();
    let sent = world
        .emulator
        .last_request(Endpoint::FitbitToken)
        .expect("a token request");
    assert_eq!(
        sent.form_param("state").as_deref(),
        Some("state-from-the-app"),
        "{}",
        sent.body
    );
    assert_eq!(sent.form_param("expires_in").as_deref(), Some("3600"));
    assert_eq!(lifetime(&token), 3600, "the server gave what was asked");

    // The refresh asks for the same lifetime.
    let refreshed = auth_core::TokenProvider::refresh(&fitbit, &token)
        .await
        .unwrap();
    let sent = world.emulator.last_request(Endpoint::FitbitToken).unwrap();
    assert_eq!(
        sent.form_param("grant_type").as_deref(),
        Some("refresh_token")
    );
    assert_eq!(sent.form_param("expires_in").as_deref(), Some("3600"));
    assert_eq!(lifetime(&refreshed), 3600);
}

/// The access token lifetime the server stated, in seconds.
fn lifetime(token: &auth_core::TokenSet) -> u64 {
    token
        .expires_at()
        .unwrap()
        .duration_since(token.issued_at())
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn without_a_lifetime_asked_for_none_is_sent_and_fitbit_s_default_applies() {
    let w = world(AppType::Server).await;
    let key = login(&w, &fitbit_id(), AuthorizeRequest::new()).await;
    let sent = w.emulator.last_request(Endpoint::FitbitToken).unwrap();
    assert_eq!(sent.form_param("expires_in"), None, "{}", sent.body);
    assert!(
        sent.form_param("state").is_some(),
        "the state is always echoed"
    );
    let token = w.manager.access_token(&key).await.unwrap();
    assert_eq!(lifetime(token.token_set()), 28_800);
}

#[tokio::test]
async fn a_catalogue_entry_can_ask_for_the_lifetime_and_the_builder_can_replace_it() {
    let world = world(AppType::Server).await;
    let mut entry = auth_catalogue::lookup("fitbit").unwrap().clone();
    entry.response.requested_expires_in = Some(3600);
    let build = |expires_in: Option<u64>| {
        let mut builder =
            FitbitProvider::from_entry("fitbit", &entry, demo::FITBIT_SERVER_CLIENT_ID)
                .unwrap()
                .client_secret(demo::FITBIT_SERVER_CLIENT_SECRET)
                .redirect_uri(demo::REDIRECT_URI)
                .base_url(world.emulator.base_url())
                .unwrap();
        if let Some(seconds) = expires_in {
            builder = builder.expires_in(seconds);
        }
        builder.build().unwrap()
    };
    for (asked, expected) in [(None, "3600"), (Some(28_800), "28800")] {
        let fitbit = build(asked);
        let pending =
            auth_core::TokenProvider::authorize(&fitbit, AuthorizeRequest::new()).unwrap();
        let callback = browse(&pending.authorize_url).await;
        auth_core::TokenProvider::exchange_code(&fitbit, &pending, &callback)
            .await
            .unwrap();
        let sent = world.emulator.last_request(Endpoint::FitbitToken).unwrap();
        let sent: Vec<_> = url::form_urlencoded::parse(sent.body.as_bytes())
            .filter(|(k, _)| k == "expires_in")
            .map(|(_, v)| v.into_owned())
            .collect();
        assert_eq!(sent, vec![expected.to_owned()], "asked {asked:?}");
    }
    // An entry asking for a lifetime Fitbit does not take is refused
    // before anything is sent.
    entry.response.requested_expires_in = Some(7200);
    let err = FitbitProvider::from_entry("fitbit", &entry, "x")
        .unwrap()
        .client_secret("s")
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("3600 or 28800"), "{err}");
}

#[tokio::test]
async fn google_health_sends_no_state_and_no_lifetime_on_its_exchange() {
    let w = world(AppType::Server).await;
    login(
        &w,
        &google_id(),
        AuthorizeRequest::new()
            .state("state-from-the-app")
            .account("u1".parse().unwrap()),
    )
    .await;
    let sent = w.emulator.last_request(Endpoint::GoogleToken).unwrap();
    assert_eq!(sent.form_param("state"), None, "{}", sent.body);
    assert_eq!(sent.form_param("expires_in"), None, "{}", sent.body);
}
