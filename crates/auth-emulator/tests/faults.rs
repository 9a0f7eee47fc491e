//! Fault injection: each kind of fault, its provider-shaped body, counting,
//! queueing, and the lost-response case (processed, then dropped).

mod support;

use std::time::{Duration, Instant};

use auth_emulator::{Emulator, Endpoint, Fault, demo};
use reqwest::StatusCode;
use support::*;

#[tokio::test]
async fn status_fault_answers_in_the_fitbit_shape_and_changes_nothing() {
    let emu = start().await;
    let http = http();
    let refresh = emu
        .seed_fitbit_grant(demo::FITBIT_SERVER_CLIENT_ID, "FAULT1", &[SLEEP])
        .refresh_token
        .expect("rt");
    emu.inject(Endpoint::FitbitToken, Fault::Status(500), 1);
    emu.inject(Endpoint::FitbitToken, Fault::Status(503), 1);
    for expected in [
        StatusCode::INTERNAL_SERVER_ERROR,
        StatusCode::SERVICE_UNAVAILABLE,
    ] {
        let response = fitbit_refresh(&http, &emu, SERVER_APP, &refresh).await;
        assert_eq!(response.status(), expected);
        assert!(header(&response, "fitbit-rate-limit-remaining").is_some());
        let (_, body) = json(response).await;
        fitbit_error(&body, "system");
    }
    // The faults were consumed and the token was never rotated.
    let (status, body) = json(fitbit_refresh(&http, &emu, SERVER_APP, &refresh).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let counters = emu.counters();
    assert_eq!(counters.faults_injected, 2);
    assert_eq!(
        counters.fitbit_token_refresh, 3,
        "faulted requests are counted"
    );
    assert_eq!(counters.replays, 0);
}

#[tokio::test]
async fn status_fault_answers_in_the_rfc6749_shape_on_google() {
    let emu = start().await;
    let http = http();
    emu.inject(Endpoint::GoogleToken, Fault::Status(503), 1);
    emu.inject(Endpoint::GoogleTokeninfo, Fault::Status(500), 1);
    let (status, body) = google_refresh_json(&http, &emu, "x").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"], "temporarily_unavailable");
    let (status, body) = json(
        http.get(emu.google_endpoints().tokeninfo)
            .query(&[("access_token", "x")])
            .send()
            .await
            .expect("answered"),
    )
    .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["error"], "server_error");
    assert_eq!(emu.counters().google_token_refresh, 1);
    assert_eq!(emu.counters().google_tokeninfo, 1);
}

#[tokio::test]
async fn html_fault_sends_a_proxy_error_page() {
    let emu = start().await;
    let http = http();
    let tokens = emu.seed_fitbit_grant(demo::FITBIT_SERVER_CLIENT_ID, "FAULT2", &[SLEEP]);
    emu.inject(Endpoint::FitbitIntrospect, Fault::Html { status: 502 }, 1);
    emu.inject(Endpoint::GoogleRevoke, Fault::Html { status: 504 }, 1);
    let response = fitbit_introspect(&http, &emu, &tokens.access_token, &tokens.access_token).await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert!(header(&response, "content-type").is_some_and(|c| c.starts_with("text/html")));
    assert!(
        header(&response, "fitbit-rate-limit-limit").is_none(),
        "a proxy page has no API headers"
    );
    let page = response.text().await.expect("body");
    assert!(
        page.contains("502 Bad Gateway")
            && serde_json::from_str::<serde_json::Value>(&page).is_err()
    );
    let response = http
        .post(emu.google_endpoints().revoke)
        .form(&[("token", "x")])
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    assert!(header(&response, "content-type").is_some_and(|c| c.starts_with("text/html")));
}

#[tokio::test]
async fn faults_on_consent_pages_are_html_and_never_redirect() {
    let emu = start().await;
    let http = http();
    emu.inject(Endpoint::FitbitAuthorize, Fault::Status(503), 1);
    emu.inject(Endpoint::GoogleAuthorize, Fault::Status(500), 1);
    let fitbit =
        fitbit_authorize(&http, &emu, &[("client_id", demo::FITBIT_SERVER_CLIENT_ID)]).await;
    let google = google_authorize(&http, &emu, &[("client_id", demo::GOOGLE_CLIENT_ID)]).await;
    for (response, status) in [(fitbit, 503), (google, 500)] {
        assert_eq!(response.status().as_u16(), status);
        assert!(response.headers().get("location").is_none());
        assert!(header(&response, "content-type").is_some_and(|c| c.starts_with("text/html")));
    }
}

#[tokio::test]
async fn delay_fault_answers_normally_but_late() {
    let emu = start().await;
    emu.inject(
        Endpoint::GoogleDiscovery,
        Fault::Delay(Duration::from_secs(30)),
        1,
    );
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .expect("client");
    let error = impatient
        .get(emu.google_endpoints().discovery)
        .send()
        .await
        .expect_err("the answer comes too late");
    assert!(error.is_timeout(), "{error}");

    emu.inject(
        Endpoint::GoogleDiscovery,
        Fault::Delay(Duration::from_millis(150)),
        1,
    );
    let started = Instant::now();
    let response = http()
        .get(emu.google_endpoints().discovery)
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(150));
    let (_, body) = json(response).await;
    assert!(
        body["issuer"].is_string(),
        "a normal answer after the delay"
    );
    assert_eq!(emu.counters().faults_injected, 2);
}

/// The lost-refresh-response case: the server rotated, the client never heard.
#[tokio::test]
async fn drop_after_processing_rotates_and_sends_no_response() {
    let emu = start().await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let old = emu
        .seed_fitbit_grant(demo::FITBIT_SERVER_CLIENT_ID, "LOST01", &[SLEEP])
        .refresh_token
        .expect("rt");
    emu.inject(Endpoint::FitbitToken, Fault::DropAfterProcessing, 1);
    let error = http
        .post(emu.fitbit_endpoints().token)
        .basic_auth(
            demo::FITBIT_SERVER_CLIENT_ID,
            Some(demo::FITBIT_SERVER_CLIENT_SECRET),
        )
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", old.as_str()),
        ])
        .send()
        .await
        .expect_err("no HTTP response at all");
    assert!(!error.is_timeout() && error.status().is_none(), "{error:?}");
    // The server did rotate: retrying the same token promptly is a replay of
    // the lost answer, which carries the new pair.
    let (status, body) = json(fitbit_refresh(&http, &emu, SERVER_APP, &old).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(emu.counters().replays, 1);
    let new_refresh = body["refresh_token"].as_str().expect("rt");
    assert_ne!(new_refresh, old);
    let (status, _) = json(fitbit_refresh(&http, &emu, SERVER_APP, new_refresh).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(emu.counters().fitbit_token_refresh, 3);
}

#[tokio::test]
async fn drop_after_processing_in_strict_mode_loses_the_grant() {
    let emu = Emulator::builder()
        .with_demo_clients()
        .replay_window(false)
        .start()
        .await
        .expect("starts");
    let http = http();
    let old = emu
        .seed_fitbit_grant(demo::FITBIT_PUBLIC_CLIENT_ID, "LOST02", &[SLEEP])
        .refresh_token
        .expect("rt");
    emu.inject(Endpoint::FitbitToken, Fault::DropAfterProcessing, 1);
    let lost = http
        .post(emu.fitbit_endpoints().token)
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", old.as_str()),
            ("client_id", demo::FITBIT_PUBLIC_CLIENT_ID),
        ])
        .send()
        .await;
    assert!(lost.is_err());
    let (status, body) = json(fitbit_refresh(&http, &emu, PUBLIC_APP, &old).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    fitbit_error(&body, "invalid_grant");
    assert_eq!(emu.counters().reuse_detections, 1);
}

#[tokio::test]
async fn drop_after_processing_works_on_google_too() {
    let emu = start().await;
    let http = http();
    let tokens = emu.seed_google_grant(demo::GOOGLE_CLIENT_ID, "1080010", &[HEALTH_SLEEP]);
    emu.inject(Endpoint::GoogleRevoke, Fault::DropAfterProcessing, 1);
    let lost = http
        .post(emu.google_endpoints().revoke)
        .form(&[("token", tokens.access_token.as_str())])
        .send()
        .await;
    assert!(lost.is_err());
    let refresh = tokens.refresh_token.expect("rt");
    let (status, body) = google_refresh_json(&http, &emu, &refresh).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "the revocation was processed: {body}"
    );
}

#[tokio::test]
async fn rate_limited_fault_answers_429_with_retry_after() {
    let emu = start().await;
    let http = http();
    emu.inject(
        Endpoint::FitbitToken,
        Fault::RateLimited {
            retry_after: Duration::from_secs(30),
        },
        1,
    );
    emu.inject(
        Endpoint::GoogleToken,
        Fault::RateLimited {
            retry_after: Duration::from_millis(1500),
        },
        1,
    );
    let response = fitbit_refresh(&http, &emu, SERVER_APP, "whatever").await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&response, "retry-after").as_deref(), Some("30"));
    assert_eq!(
        header(&response, "fitbit-rate-limit-remaining").as_deref(),
        Some("0")
    );
    assert_eq!(
        header(&response, "fitbit-rate-limit-reset").as_deref(),
        Some("30")
    );
    let (_, body) = json(response).await;
    fitbit_error(&body, "system");
    let response = google_token(
        &http,
        &emu,
        &[("grant_type", "refresh_token"), ("refresh_token", "x")],
    )
    .await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        header(&response, "retry-after").as_deref(),
        Some("2"),
        "rounded up"
    );
    let (_, body) = json(response).await;
    assert!(body["error"].is_string());
    let counters = emu.counters();
    assert_eq!((counters.rate_limited, counters.faults_injected), (2, 2));
}

#[tokio::test]
async fn google_api_error_fault_uses_the_google_shape() {
    let emu = start().await;
    let http = http();
    emu.inject(
        Endpoint::FitbitToken,
        Fault::GoogleApiError { status: 403 },
        1,
    );
    let (status, body) = json(fitbit_refresh(&http, &emu, SERVER_APP, "whatever").await).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], 403);
    assert_eq!(body["error"]["status"], "PERMISSION_DENIED");
    assert!(body["error"]["message"].is_string());
}

#[tokio::test]
async fn faults_queue_per_endpoint_in_order() {
    let emu = start().await;
    let http = http();
    let tokens = emu.seed_fitbit_grant(demo::FITBIT_SERVER_CLIENT_ID, "FAULT3", &[SLEEP]);
    emu.inject(Endpoint::FitbitIntrospect, Fault::Status(500), 2);
    emu.inject(Endpoint::FitbitIntrospect, Fault::Status(503), 1);
    emu.inject(Endpoint::FitbitIntrospect, Fault::Status(502), 0);
    let other = http
        .get(emu.google_endpoints().discovery)
        .send()
        .await
        .expect("answered");
    assert_eq!(
        other.status(),
        StatusCode::OK,
        "other endpoints are untouched"
    );
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(
            fitbit_introspect(&http, &emu, &tokens.access_token, &tokens.access_token)
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses, [500, 500, 503, 200]);
    emu.inject(Endpoint::FitbitIntrospect, Fault::Status(500), 5);
    emu.clear_faults();
    let response = fitbit_introspect(&http, &emu, &tokens.access_token, &tokens.access_token).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(emu.counters().faults_injected, 3);
}

/// `HoldAnswer` processes first: while the answer is held, the rotation has
/// happened (a replay of the old token gets the new pair), and the released
/// answer carries that same pair.
#[tokio::test]
async fn hold_answer_processes_then_holds_until_released() {
    let emu = std::sync::Arc::new(start().await);
    let http = http();
    let old = emu
        .seed_fitbit_grant(demo::FITBIT_SERVER_CLIENT_ID, "HOLD01", &[SLEEP])
        .refresh_token
        .expect("rt");
    emu.inject(Endpoint::FitbitToken, Fault::HoldAnswer, 1);
    let held_call = {
        let (http, emu, old) = (http.clone(), std::sync::Arc::clone(&emu), old.clone());
        tokio::spawn(async move { json(fitbit_refresh(&http, &emu, SERVER_APP, &old).await).await })
    };
    let held = emu.wait_for_held().await;
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].endpoint, Endpoint::FitbitToken);
    let peer = held[0].peer.expect("the client's address");
    assert!(peer.ip().is_loopback(), "{peer}");
    assert!(!held_call.is_finished(), "the answer is held back");
    // Processed already: the same token now replays the rotated pair.
    let (status, replayed) = json(fitbit_refresh(&http, &emu, SERVER_APP, &old).await).await;
    assert_eq!(status, StatusCode::OK, "{replayed}");
    assert_eq!(emu.counters().replays, 1);
    assert!(emu.release_held(held[0].id, auth_emulator::Release::Deliver));
    assert!(
        !emu.release_held(held[0].id, auth_emulator::Release::Deliver),
        "an answer is released once"
    );
    let (status, body) = held_call.await.expect("the held call");
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["refresh_token"], replayed["refresh_token"]);
    assert!(emu.held_answers().is_empty());
}

/// Released with `Drop`, a held answer never arrives: the client sees a
/// connection error, though the server rotated the pair.
#[tokio::test]
async fn hold_answer_released_as_drop_closes_the_connection() {
    let emu = std::sync::Arc::new(
        Emulator::builder()
            .with_demo_clients()
            .replay_window(false)
            .start()
            .await
            .expect("starts"),
    );
    let http = http();
    let old = emu
        .seed_fitbit_grant(demo::FITBIT_SERVER_CLIENT_ID, "HOLD02", &[SLEEP])
        .refresh_token
        .expect("rt");
    emu.inject(Endpoint::FitbitToken, Fault::HoldAnswer, 1);
    let held_call = {
        let (http, emu, old) = (http.clone(), std::sync::Arc::clone(&emu), old.clone());
        tokio::spawn(async move {
            http.post(emu.fitbit_endpoints().token)
                .basic_auth(
                    demo::FITBIT_SERVER_CLIENT_ID,
                    Some(demo::FITBIT_SERVER_CLIENT_SECRET),
                )
                .form(&[("grant_type", "refresh_token"), ("refresh_token", &old)])
                .send()
                .await
        })
    };
    let held = emu.wait_for_held().await;
    assert_eq!(emu.release_all_held(auth_emulator::Release::Drop), 1);
    let error = held_call
        .await
        .expect("the held call")
        .expect_err("no HTTP response at all");
    assert!(error.status().is_none(), "{error:?}");
    assert!(!emu.release_held(held[0].id, auth_emulator::Release::Deliver));
    // Strict mode: the rotated pair is lost, and the old token burns.
    let (status, body) = json(fitbit_refresh(&http, &emu, SERVER_APP, &old).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    fitbit_error(&body, "invalid_grant");
}

/// A client that goes away while its answer is held never gets it, and
/// releasing the answer afterwards is harmless.
#[tokio::test]
async fn hold_answer_outlives_a_client_that_went_away() {
    let emu = std::sync::Arc::new(start().await);
    let http = http();
    let old = emu
        .seed_fitbit_grant(demo::FITBIT_SERVER_CLIENT_ID, "HOLD03", &[SLEEP])
        .refresh_token
        .expect("rt");
    emu.inject(Endpoint::FitbitToken, Fault::HoldAnswer, 1);
    let held_call = {
        let (http, emu, old) = (http.clone(), std::sync::Arc::clone(&emu), old.clone());
        tokio::spawn(async move { fitbit_refresh(&http, &emu, SERVER_APP, &old).await })
    };
    let held = emu.wait_for_held().await;
    held_call.abort();
    assert!(held_call.await.is_err_and(|e| e.is_cancelled()));
    assert!(emu.release_held(held[0].id, auth_emulator::Release::Deliver));
    // The server still works, and still replays the lost answer.
    let (status, body) = json(fitbit_refresh(&http, &emu, SERVER_APP, &old).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(emu.counters().replays, 1);
}

/// Dropping the emulator drops what it holds: no request hangs.
#[tokio::test]
async fn dropping_the_emulator_drops_held_answers() {
    let emu = start().await;
    let http = http();
    let old = emu
        .seed_fitbit_grant(demo::FITBIT_SERVER_CLIENT_ID, "HOLD04", &[SLEEP])
        .refresh_token
        .expect("rt");
    emu.inject(Endpoint::FitbitToken, Fault::HoldAnswer, 1);
    let token_url = emu.fitbit_endpoints().token;
    let held_call = tokio::spawn(async move {
        http.post(token_url)
            .basic_auth(
                demo::FITBIT_SERVER_CLIENT_ID,
                Some(demo::FITBIT_SERVER_CLIENT_SECRET),
            )
            .form(&[("grant_type", "refresh_token"), ("refresh_token", &old)])
            .send()
            .await
    });
    emu.wait_for_held().await;
    drop(emu);
    let answer = held_call.await.expect("the held call");
    assert!(answer.is_err(), "{answer:?}");
}
