//! Legacy Fitbit tokens after issue: rotation, the replay window and strict
//! mode, introspection, revocation, rate limits and retired mode.

mod support;

use std::time::Duration;

use auth_emulator::{Emulator, Endpoint, demo};
use reqwest::StatusCode;
use support::*;

async fn refresh_json(
    http: &reqwest::Client,
    emu: &Emulator,
    app: App,
    token: &str,
) -> (StatusCode, serde_json::Value) {
    json(fitbit_refresh(http, emu, app, token).await).await
}

#[tokio::test]
async fn refresh_rotates_both_tokens() {
    let emu = start().await;
    let http = http();
    for app in [SERVER_APP, PUBLIC_APP] {
        let seeded = emu.seed_fitbit_grant(app.id(), "ROT001", &["activity", "sleep"]);
        let old = seeded.refresh_token.expect("a refresh token");
        let (status, body) = refresh_json(&http, &emu, app, &old).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_ne!(body["refresh_token"], old.as_str());
        assert_ne!(body["access_token"], seeded.access_token.as_str());
        assert_eq!(body["user_id"], "ROT001");
        assert_eq!(body["scope"], "activity sleep");
        assert_eq!(body["token_type"], "Bearer");
        let next = body["refresh_token"].as_str().expect("a new refresh token");
        let (status, _) = refresh_json(&http, &emu, app, next).await;
        assert_eq!(status, StatusCode::OK, "the new refresh token works");
    }
    assert_eq!(emu.counters().fitbit_token_refresh, 4);
    let recorded = emu.last_request(Endpoint::FitbitToken).expect("recorded");
    assert_eq!(
        recorded.form_param("client_id").as_deref(),
        Some(demo::FITBIT_PUBLIC_CLIENT_ID)
    );
}

#[tokio::test]
async fn identical_repeat_inside_the_window_gets_the_identical_answer() {
    let emu = start().await;
    let http = http();
    let seeded = emu.seed_fitbit_grant(demo::FITBIT_SERVER_CLIENT_ID, "REPLAY", &["sleep"]);
    let old = seeded.refresh_token.expect("a refresh token");
    let first = fitbit_refresh(&http, &emu, SERVER_APP, &old)
        .await
        .text()
        .await
        .expect("body");
    emu.advance_time(Duration::from_secs(119));
    let second = fitbit_refresh(&http, &emu, SERVER_APP, &old).await;
    assert_eq!(second.status(), StatusCode::OK);
    assert_eq!(second.text().await.expect("body"), first, "byte-identical");
    let counters = emu.counters();
    assert_eq!(counters.replays, 1);
    assert_eq!(counters.reuse_detections, 0);
}

/// The case the replay window exists for: two workers refresh the same
/// token at once, and both get the same new pair.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_identical_refreshes_get_the_same_answer() {
    let emu = start().await;
    let http = http();
    let old = emu
        .seed_fitbit_grant(demo::FITBIT_SERVER_CLIENT_ID, "RACE01", &["sleep"])
        .refresh_token
        .expect("a refresh token");
    let (a, b) = tokio::join!(
        fitbit_refresh(&http, &emu, SERVER_APP, &old),
        fitbit_refresh(&http, &emu, SERVER_APP, &old)
    );
    assert_eq!((a.status(), b.status()), (StatusCode::OK, StatusCode::OK));
    assert_eq!(a.text().await.expect("body"), b.text().await.expect("body"));
    assert_eq!(emu.counters().replays, 1);
}

#[tokio::test]
async fn replay_ends_when_the_new_access_token_is_used() {
    let emu = start().await;
    let http = http();
    let old = emu
        .seed_fitbit_grant(demo::FITBIT_SERVER_CLIENT_ID, "REPLAY", &["sleep"])
        .refresh_token
        .expect("a refresh token");
    let (_, body) = refresh_json(&http, &emu, SERVER_APP, &old).await;
    let new_access = body["access_token"].as_str().expect("access").to_owned();
    let new_refresh = body["refresh_token"].as_str().expect("refresh").to_owned();
    let (status, _) = json(fitbit_introspect(&http, &emu, &new_access, &new_access).await).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = refresh_json(&http, &emu, SERVER_APP, &old).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let message = fitbit_error(&body, "invalid_grant");
    assert!(
        message.contains(&old),
        "Fitbit echoes the presented token: {message}"
    );
    assert!(message.starts_with("Refresh token invalid: "), "{message}");
    let counters = emu.counters();
    assert_eq!((counters.replays, counters.reuse_detections), (0, 1));
    // With the window on, the chain survives the reuse.
    let (status, _) = refresh_json(&http, &emu, SERVER_APP, &new_refresh).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn replay_ends_when_the_new_refresh_token_is_used() {
    let emu = start().await;
    let http = http();
    let old = emu
        .seed_fitbit_grant(demo::FITBIT_SERVER_CLIENT_ID, "REPLAY", &["sleep"])
        .refresh_token
        .expect("a refresh token");
    let (_, body) = refresh_json(&http, &emu, SERVER_APP, &old).await;
    let next = body["refresh_token"].as_str().expect("refresh").to_owned();
    let (status, _) = refresh_json(&http, &emu, SERVER_APP, &next).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = refresh_json(&http, &emu, SERVER_APP, &old).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    fitbit_error(&body, "invalid_grant");
    assert_eq!(emu.counters().reuse_detections, 1);
}

#[tokio::test]
async fn replay_ends_with_the_window_duration() {
    let emu = Emulator::builder()
        .with_demo_clients()
        .replay_window_duration(Duration::from_secs(30))
        .start()
        .await
        .expect("starts");
    let http = http();
    let old = emu
        .seed_fitbit_grant(demo::FITBIT_SERVER_CLIENT_ID, "REPLAY", &["sleep"])
        .refresh_token
        .expect("a refresh token");
    let (_, body) = refresh_json(&http, &emu, SERVER_APP, &old).await;
    let next = body["refresh_token"].as_str().expect("refresh").to_owned();
    emu.advance_time(Duration::from_secs(31));
    let (status, body) = refresh_json(&http, &emu, SERVER_APP, &old).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(emu.counters().reuse_detections, 1);
    let (status, _) = refresh_json(&http, &emu, SERVER_APP, &next).await;
    assert_eq!(status, StatusCode::OK, "the chain is kept");
}

#[tokio::test]
async fn strict_mode_reuse_revokes_the_whole_grant() {
    let emu = Emulator::builder()
        .with_demo_clients()
        .replay_window(false)
        .start()
        .await
        .expect("starts");
    let http = http();
    let old = emu
        .seed_fitbit_grant(demo::FITBIT_SERVER_CLIENT_ID, "STRICT", &["sleep"])
        .refresh_token
        .expect("a refresh token");
    let (_, body) = refresh_json(&http, &emu, SERVER_APP, &old).await;
    let new_access = body["access_token"].as_str().expect("access").to_owned();
    let new_refresh = body["refresh_token"].as_str().expect("refresh").to_owned();
    assert!(fitbit_active(&http, &emu, &new_access).await);
    // Even an immediate identical repeat is reuse in strict mode.
    let (status, body) = refresh_json(&http, &emu, SERVER_APP, &old).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    fitbit_error(&body, "invalid_grant");
    let counters = emu.counters();
    assert_eq!((counters.replays, counters.reuse_detections), (0, 1));
    let (status, _) = refresh_json(&http, &emu, SERVER_APP, &new_refresh).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "the new refresh token died with the grant"
    );
    assert!(
        !fitbit_active(&http, &emu, &new_access).await,
        "so did the access token"
    );
}

#[tokio::test]
async fn replay_window_can_be_switched_while_running() {
    let emu = start().await;
    let http = http();
    emu.set_replay_window(false);
    let old = emu
        .seed_fitbit_grant(demo::FITBIT_SERVER_CLIENT_ID, "SWITCH", &["sleep"])
        .refresh_token
        .expect("a refresh token");
    refresh_json(&http, &emu, SERVER_APP, &old).await;
    let (status, _) = refresh_json(&http, &emu, SERVER_APP, &old).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    emu.set_replay_window(true);
    let old = emu
        .seed_fitbit_grant(demo::FITBIT_SERVER_CLIENT_ID, "SWITCH", &["sleep"])
        .refresh_token
        .expect("a refresh token");
    refresh_json(&http, &emu, SERVER_APP, &old).await;
    let (status, _) = refresh_json(&http, &emu, SERVER_APP, &old).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(emu.counters().replays, 1);
}

#[tokio::test]
async fn a_new_consent_supersedes_the_old_refresh_token() {
    let emu = start().await;
    let http = http();
    let first = emu.seed_fitbit_grant(demo::FITBIT_SERVER_CLIENT_ID, "TWICE1", &["sleep"]);
    let second = emu.seed_fitbit_grant(demo::FITBIT_SERVER_CLIENT_ID, "TWICE1", &["sleep"]);
    let (status, _) = refresh_json(
        &http,
        &emu,
        SERVER_APP,
        first.refresh_token.as_deref().expect("rt"),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "one active refresh token per user per app"
    );
    let (status, _) = refresh_json(
        &http,
        &emu,
        SERVER_APP,
        second.refresh_token.as_deref().expect("rt"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // A refresh token only works for the app it was issued to.
    let other = emu.seed_fitbit_grant(demo::FITBIT_PUBLIC_CLIENT_ID, "TWICE1", &["sleep"]);
    let (status, _) = refresh_json(
        &http,
        &emu,
        SERVER_APP,
        other.refresh_token.as_deref().expect("rt"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(emu.counters().reuse_detections, 0);
}

#[tokio::test]
async fn introspect_active_token_in_fitbit_format() {
    let emu = start().await;
    let http = http();
    let tokens = emu.seed_fitbit_grant(
        demo::FITBIT_SERVER_CLIENT_ID,
        "INTRO1",
        &["activity", "sleep"],
    );
    let before = emu
        .now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("epoch")
        .as_millis();
    let response = fitbit_introspect(&http, &emu, &tokens.access_token, &tokens.access_token).await;
    let text = response.text().await.expect("body");
    let body: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(body["active"], true);
    assert_eq!(body["scope"], "{ACTIVITY=READ_WRITE, SLEEP=READ_WRITE}");
    assert_eq!(body["client_id"], demo::FITBIT_SERVER_CLIENT_ID);
    assert_eq!(body["user_id"], "INTRO1");
    assert_eq!(body["token_type"], "access_token");
    let iat = u128::from(body["iat"].as_u64().expect("iat"));
    let exp = u128::from(body["exp"].as_u64().expect("exp"));
    assert!(
        iat + 5_000 >= before && iat <= before + 5_000,
        "iat is in milliseconds: {iat} vs {before}"
    );
    assert_eq!(exp - iat, 28_800_000, "exp is in milliseconds");
    assert!(text.starts_with(r#"{"active":true,"scope":"#), "{text}");
    assert_eq!(emu.counters().fitbit_introspect, 1);
}

#[tokio::test]
async fn introspect_requires_an_active_bearer_token() {
    let emu = start().await;
    let http = http();
    let tokens = emu.seed_fitbit_grant(demo::FITBIT_SERVER_CLIENT_ID, "INTRO1", &["sleep"]);
    let url = emu.fitbit_endpoints().introspect;
    let attempts = [
        http.post(url.clone())
            .form(&[("token", tokens.access_token.as_str())]),
        http.post(url.clone())
            .bearer_auth("not-a-token")
            .form(&[("token", tokens.access_token.as_str())]),
        http.post(url.clone())
            .basic_auth(
                demo::FITBIT_SERVER_CLIENT_ID,
                Some(demo::FITBIT_SERVER_CLIENT_SECRET),
            )
            .form(&[("token", tokens.access_token.as_str())]),
    ];
    for attempt in attempts {
        let (status, body) = json(attempt.send().await.expect("answered")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        fitbit_error(&body, "invalid_token");
    }
}

#[tokio::test]
async fn introspect_reports_unknown_expired_and_revoked_as_inactive() {
    let emu = start().await;
    let http = http();
    let short = emu.seed_fitbit_grant(demo::FITBIT_SERVER_CLIENT_ID, "EXPIRE", &["sleep"]);
    let revoked = emu.seed_fitbit_grant(demo::FITBIT_SERVER_CLIENT_ID, "REVOKE", &["sleep"]);
    assert!(fitbit_active(&http, &emu, &short.access_token).await);
    let response = post_as(
        &http,
        emu.fitbit_endpoints().revoke,
        SERVER_APP,
        &[("token", revoked.access_token.as_str())],
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    emu.advance_time(Duration::from_secs(28_801));
    for token in [
        short.access_token.as_str(),
        revoked.access_token.as_str(),
        "unknown-token",
    ] {
        let probe = emu.seed_fitbit_grant(demo::FITBIT_SERVER_CLIENT_ID, "PROBE2", &["sleep"]);
        let response = fitbit_introspect(&http, &emu, &probe.access_token, token).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.text().await.expect("body"), r#"{"active":false}"#);
    }
}

#[tokio::test]
async fn revoking_any_token_revokes_all_of_the_users_tokens_for_the_app() {
    let emu = start().await;
    let http = http();
    for app in [SERVER_APP, PUBLIC_APP] {
        let older = emu.seed_fitbit_grant(app.id(), "REVALL", &["sleep"]);
        let newer = emu.seed_fitbit_grant(app.id(), "REVALL", &["sleep"]);
        let bystander = emu.seed_fitbit_grant(app.id(), "OTHER1", &["sleep"]);
        let response = post_as(
            &http,
            emu.fitbit_endpoints().revoke,
            app,
            &[("token", newer.refresh_token.as_deref().expect("rt"))],
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.text().await.expect("body"), "", "an empty body");
        assert!(!fitbit_active(&http, &emu, &older.access_token).await);
        assert!(!fitbit_active(&http, &emu, &newer.access_token).await);
        let (status, _) = refresh_json(
            &http,
            &emu,
            app,
            newer.refresh_token.as_deref().expect("rt"),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            fitbit_active(&http, &emu, &bystander.access_token).await,
            "other users keep theirs"
        );
    }
    let recorded = emu.last_request(Endpoint::FitbitRevoke).expect("recorded");
    assert_eq!(
        recorded.header("authorization"),
        None,
        "the public app sent no Authorization"
    );
    assert_eq!(emu.counters().fitbit_revoke, 2);
}

#[tokio::test]
async fn revoke_authenticates_the_client() {
    let emu = start().await;
    let http = http();
    let tokens = emu.seed_fitbit_grant(demo::FITBIT_SERVER_CLIENT_ID, "REVAUT", &["sleep"]);
    // A server app without its Basic header.
    let (status, body) = json(
        http.post(emu.fitbit_endpoints().revoke)
            .form(&[
                ("token", tokens.access_token.as_str()),
                ("client_id", demo::FITBIT_SERVER_CLIENT_ID),
            ])
            .send()
            .await
            .expect("answered"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    fitbit_error(&body, "invalid_client");
    // Another app cannot revoke this app's tokens.
    let response = post_as(
        &http,
        emu.fitbit_endpoints().revoke,
        PUBLIC_APP,
        &[("token", tokens.access_token.as_str())],
    )
    .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(fitbit_active(&http, &emu, &tokens.access_token).await);
    // An unknown token is not an error (RFC 7009).
    let response = post_as(
        &http,
        emu.fitbit_endpoints().revoke,
        SERVER_APP,
        &[("token", "unknown")],
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn every_api_response_carries_rate_limit_headers() {
    let emu = start().await;
    let http = http();
    align_to_hour_start(&emu);
    let tokens = emu.seed_fitbit_grant(demo::FITBIT_SERVER_CLIENT_ID, "QUOTA1", &["sleep"]);
    let responses = [
        fitbit_refresh(&http, &emu, SERVER_APP, "unknown-refresh-token").await,
        fitbit_introspect(&http, &emu, &tokens.access_token, &tokens.access_token).await,
        fitbit_refresh(
            &http,
            &emu,
            SERVER_APP,
            tokens.refresh_token.as_deref().expect("rt"),
        )
        .await,
        post_as(
            &http,
            emu.fitbit_endpoints().revoke,
            SERVER_APP,
            &[("token", tokens.access_token.as_str())],
        )
        .await,
    ];
    let mut remaining = Vec::new();
    for response in &responses {
        assert_eq!(
            header(response, "fitbit-rate-limit-limit").as_deref(),
            Some("150")
        );
        let reset: u64 = header(response, "fitbit-rate-limit-reset")
            .expect("reset")
            .parse()
            .expect("seconds");
        assert!(
            (3500..=3600).contains(&reset),
            "seconds to the top of the hour: {reset}"
        );
        remaining.push(header(response, "fitbit-rate-limit-remaining").expect("remaining"));
    }
    // The unknown token spent the client's quota; the rest spent the user's.
    assert_eq!(remaining, ["149", "149", "148", "147"]);
}

#[tokio::test]
async fn quota_exhaustion_answers_429_until_the_top_of_the_hour() {
    let emu = Emulator::builder()
        .with_demo_clients()
        .rate_limit_per_hour(3)
        .start()
        .await
        .expect("starts");
    let http = http();
    align_to_hour_start(&emu);
    let tokens = emu.seed_fitbit_grant(demo::FITBIT_SERVER_CLIENT_ID, "QUOTA2", &["sleep"]);
    let bystander = emu.seed_fitbit_grant(demo::FITBIT_SERVER_CLIENT_ID, "QUOTA3", &["sleep"]);
    for _ in 0..3 {
        let response =
            fitbit_introspect(&http, &emu, &tokens.access_token, &tokens.access_token).await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    let response = fitbit_introspect(&http, &emu, &tokens.access_token, &tokens.access_token).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        header(&response, "fitbit-rate-limit-remaining").as_deref(),
        Some("0")
    );
    let retry_after: u64 = header(&response, "retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    let reset: u64 = header(&response, "fitbit-rate-limit-reset")
        .expect("reset")
        .parse()
        .expect("seconds");
    assert_eq!(retry_after, reset);
    assert!((3500..=3600).contains(&retry_after), "{retry_after}");
    let (_, body) = json(response).await;
    fitbit_error(&body, "system");
    assert_eq!(emu.counters().rate_limited, 1);
    assert_eq!(
        emu.counters().fitbit_introspect,
        4,
        "the 429 was counted too"
    );
    // Quotas are per user.
    let response = fitbit_introspect(
        &http,
        &emu,
        &bystander.access_token,
        &bystander.access_token,
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    // A new clock hour, a new quota.
    emu.advance_time(Duration::from_secs(retry_after));
    let response = fitbit_introspect(&http, &emu, &tokens.access_token, &tokens.access_token).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        header(&response, "fitbit-rate-limit-remaining").as_deref(),
        Some("2")
    );
}

#[tokio::test]
async fn retired_mode_answers_410_on_every_legacy_endpoint() {
    let emu = Emulator::builder()
        .with_demo_clients()
        .retired(true)
        .start()
        .await
        .expect("starts");
    let http = http();
    let tokens = emu.seed_fitbit_grant(demo::FITBIT_SERVER_CLIENT_ID, "RETIRE", &["sleep"]);
    let pkce = pkce();
    let responses = [
        fitbit_authorize(
            &http,
            &emu,
            &[
                ("client_id", demo::FITBIT_SERVER_CLIENT_ID),
                ("response_type", "code"),
                ("scope", "sleep"),
                ("code_challenge", &pkce.challenge),
            ],
        )
        .await,
        fitbit_refresh(
            &http,
            &emu,
            SERVER_APP,
            tokens.refresh_token.as_deref().expect("rt"),
        )
        .await,
        fitbit_introspect(&http, &emu, &tokens.access_token, &tokens.access_token).await,
        post_as(
            &http,
            emu.fitbit_endpoints().revoke,
            SERVER_APP,
            &[("token", tokens.access_token.as_str())],
        )
        .await,
    ];
    for response in responses {
        assert_eq!(response.status(), StatusCode::GONE);
        let (_, body) = json(response).await;
        let message = fitbit_error(&body, "request");
        assert!(
            message.contains("2026-11-02") && message.contains("Google Health API"),
            "{message}"
        );
    }
    let counters = emu.counters();
    assert_eq!(counters.retired_rejections, 4);
    assert_eq!(
        (
            counters.fitbit_authorize,
            counters.fitbit_token_refresh,
            counters.fitbit_introspect,
            counters.fitbit_revoke
        ),
        (1, 1, 1, 1),
        "410s are counted per endpoint"
    );
    // Google keeps working, and the switch can be turned off again.
    let response = http
        .get(emu.google_endpoints().discovery)
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), StatusCode::OK);
    emu.set_retired(false);
    let (status, _) = refresh_json(
        &http,
        &emu,
        SERVER_APP,
        tokens.refresh_token.as_deref().expect("rt"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "the retired answer changed nothing");
}
