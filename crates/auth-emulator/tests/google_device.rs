//! Google's device flow: `/device/code` with Google's field names and scope
//! list, the person's `/device` page, and the device code grant on `/token`
//! with Google's error statuses.

mod support;

use std::time::Duration;

use auth_emulator::{Emulator, demo};
use reqwest::StatusCode;
use serde_json::Value;
use support::*;

const GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

async fn begin(http: &reqwest::Client, emu: &Emulator, scope: &str) -> (StatusCode, Value) {
    json(
        http.post(emu.google_endpoints().device_code)
            .form(&[
                ("client_id", demo::GOOGLE_CLIENT_ID),
                ("client_secret", demo::GOOGLE_CLIENT_SECRET),
                ("scope", scope),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn poll(http: &reqwest::Client, emu: &Emulator, device_code: &str) -> (StatusCode, Value) {
    json(
        http.post(emu.google_endpoints().token)
            .form(&[
                ("client_id", demo::GOOGLE_CLIENT_ID),
                ("client_secret", demo::GOOGLE_CLIENT_SECRET),
                ("grant_type", GRANT),
                ("device_code", device_code),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn enter_code(http: &reqwest::Client, emu: &Emulator, user_code: &str) -> String {
    let response = http
        .post(emu.google_endpoints().device_page)
        .form(&[("user_code", user_code)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.text().await.unwrap()
}

#[tokio::test]
async fn a_device_login_with_googles_field_names_and_errors() {
    let emu = start().await;
    let http = http();
    let (status, body) = begin(&http, &emu, "openid email").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let device_code = body["device_code"].as_str().unwrap().to_owned();
    let user_code = body["user_code"].as_str().unwrap().to_owned();
    assert_eq!(
        body["verification_url"].as_str().unwrap(),
        emu.google_endpoints().device_page.as_str(),
        "Google says verification_url"
    );
    assert!(body.get("verification_uri").is_none());
    assert!(body.get("verification_uri_complete").is_none());
    assert_eq!(body["expires_in"], 1800);
    assert_eq!(body["interval"], 5);

    // Nobody has entered the code yet: 428 authorization_pending.
    let (status, body) = poll(&http, &emu, &device_code).await;
    assert_eq!(status, StatusCode::PRECONDITION_REQUIRED, "{body}");
    assert_eq!(body["error"], "authorization_pending");
    // Polling again at once: 403 slow_down.
    let (status, body) = poll(&http, &emu, &device_code).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"], "slow_down");

    // The person enters the code (in lower case, as people type) and allows.
    let page = enter_code(&http, &emu, &user_code.to_lowercase()).await;
    assert!(page.contains("Success"), "{page}");
    emu.advance_time(Duration::from_secs(5));
    let (status, body) = poll(&http, &emu, &device_code).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["access_token"].as_str().unwrap().starts_with("ya29."));
    assert!(body["refresh_token"].is_string());
    assert_eq!(body["scope"], "openid email");
    assert_eq!(emu.counters().google_token_device_code, 3);
    assert_eq!(emu.counters().google_device_code, 1);

    // The device code is spent.
    emu.advance_time(Duration::from_secs(5));
    let (status, body) = poll(&http, &emu, &device_code).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn health_scopes_are_refused_on_the_device_flow() {
    let emu = start().await;
    let (status, body) = begin(&http(), &emu, &format!("openid {HEALTH_SLEEP}")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_scope");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains(HEALTH_SLEEP),
        "{body}"
    );
}

#[tokio::test]
async fn a_denial_and_an_expiry_are_googles_errors() {
    let emu = start().await;
    let http = http();
    let (_, body) = begin(&http, &emu, "profile").await;
    let device_code = body["device_code"].as_str().unwrap().to_owned();
    emu.deny_next_authorization();
    let page = enter_code(&http, &emu, body["user_code"].as_str().unwrap()).await;
    assert!(page.contains("denied"), "{page}");
    let (status, body) = poll(&http, &emu, &device_code).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"], "access_denied");

    let (_, body) = begin(&http, &emu, "profile").await;
    let device_code = body["device_code"].as_str().unwrap().to_owned();
    emu.advance_time(Duration::from_secs(1801));
    let (status, body) = poll(&http, &emu, &device_code).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "expired_token");
}

#[tokio::test]
async fn an_unknown_client_and_a_wrong_code_are_refused() {
    let emu = start().await;
    let http = http();
    let (status, body) = json(
        http.post(emu.google_endpoints().device_code)
            .form(&[("client_id", "nobody"), ("scope", "openid")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "invalid_client");
    let response = http
        .get(emu.google_endpoints().device_page)
        .query(&[("user_code", "BBBB-CCCC")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn discovery_names_the_device_endpoint() {
    let emu = start().await;
    let (_, body) = json(
        http()
            .get(emu.google_endpoints().discovery)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        body["device_authorization_endpoint"].as_str().unwrap(),
        emu.google_endpoints().device_code.as_str()
    );
}
