//! Google OAuth 2.0: consent page and scopes, the offline and prompt=consent
//! rules, non-rotating refresh tokens, client authentication, PKCE,
//! tokeninfo, revocation and discovery.

mod support;

use std::time::Duration;

use auth_emulator::{Emulator, Endpoint, demo};
use reqwest::StatusCode;
use serde_json::Value;
use support::*;

fn assert_oauth_error(status: StatusCode, body: &Value, expected: StatusCode, error: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["error"], error, "{body}");
    assert!(body["error_description"].is_string(), "{body}");
}

#[tokio::test]
async fn consent_redirects_with_code_state_scope_and_issuer() {
    let emu = start().await;
    let http = http();
    let scope = format!("{HEALTH_SLEEP} {HEALTH_ACTIVITY} openid");
    let url = google_consent(&http, &emu, &[("scope", &scope)]).await;
    assert!(url.as_str().starts_with(demo::REDIRECT_URI), "{url}");
    assert_eq!(param(&url, "state").as_deref(), Some("g-state"));
    assert_eq!(param(&url, "scope").as_deref(), Some(scope.as_str()));
    let code = param(&url, "code").expect("a code");
    assert!(code.contains('/'), "Google codes contain a slash: {code}");
    let issuer = emu.google_endpoints().issuer;
    assert_eq!(
        param(&url, "iss").as_deref(),
        Some(issuer.as_str().trim_end_matches('/'))
    );
    assert_eq!(url.fragment(), None);
    assert_eq!(emu.counters().google_authorize, 1);
}

#[tokio::test]
async fn invalid_parameters_get_an_html_page_and_no_redirect() {
    let emu = start().await;
    let http = http();
    let cases: [(&str, &[(&str, &str)]); 8] = [
        ("legacy Fitbit scope", &[("scope", "sleep")]),
        (
            "unknown Health scope",
            &[(
                "scope",
                "https://www.googleapis.com/auth/googlehealth.steps.readonly",
            )],
        ),
        (
            "ecg has no read-write scope",
            &[("scope", "https://www.googleapis.com/auth/googlehealth.ecg")],
        ),
        (
            "other Google API",
            &[(
                "scope",
                "https://www.googleapis.com/auth/fitness.activity.read",
            )],
        ),
        (
            "redirect mismatch",
            &[("redirect_uri", "http://127.0.0.1:8976/callback?x=1")],
        ),
        (
            "unknown client",
            &[("client_id", "nobody.apps.googleusercontent.com")],
        ),
        ("bad access_type", &[("access_type", "forever")]),
        ("prompt none with consent", &[("prompt", "none consent")]),
    ];
    for (name, overrides) in cases {
        let mut query: Vec<(&str, &str)> = vec![
            ("client_id", demo::GOOGLE_CLIENT_ID),
            ("response_type", "code"),
            ("redirect_uri", demo::REDIRECT_URI),
            ("scope", HEALTH_SLEEP),
        ];
        for (k, v) in overrides {
            match query.iter_mut().find(|(qk, _)| qk == k) {
                Some(slot) => slot.1 = v,
                None => query.push((k, v)),
            }
        }
        let response = google_authorize(&http, &emu, &query).await;
        assert!(
            response.status().is_client_error(),
            "{name}: {}",
            response.status()
        );
        assert!(
            response.headers().get("location").is_none(),
            "{name}: must not redirect"
        );
        assert!(
            header(&response, "content-type").is_some_and(|c| c.starts_with("text/html")),
            "{name}"
        );
    }
    // Missing redirect_uri is an error at Google even with one registered.
    let response = google_authorize(
        &http,
        &emu,
        &[
            ("client_id", demo::GOOGLE_CLIENT_ID),
            ("response_type", "code"),
            ("scope", HEALTH_SLEEP),
        ],
    )
    .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.headers().get("location").is_none());
}

#[tokio::test]
async fn denied_consent_redirects_with_access_denied() {
    let emu = start().await;
    let http = http();
    emu.deny_next_authorization();
    let url = google_consent(&http, &emu, &[]).await;
    assert_eq!(param(&url, "error").as_deref(), Some("access_denied"));
    assert_eq!(param(&url, "state").as_deref(), Some("g-state"));
    assert_eq!(param(&url, "code"), None);
}

#[tokio::test]
async fn refresh_token_only_offline_and_on_first_consent_unless_prompt_consent() {
    let emu = start().await;
    let http = http();
    let online = google_consent(&http, &emu, &[]).await;
    let (status, body) = google_exchange(&http, &emu, &param(&online, "code").expect("code")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("refresh_token").is_none(), "online access: {body}");
    assert_eq!(body["expires_in"], 3599);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], HEALTH_SLEEP);

    let first = google_consent(&http, &emu, &[("access_type", "offline")]).await;
    let (_, body) = google_exchange(&http, &emu, &param(&first, "code").expect("code")).await;
    assert!(
        body["refresh_token"].is_string(),
        "first offline consent: {body}"
    );

    let again = google_consent(&http, &emu, &[("access_type", "offline")]).await;
    let (_, body) = google_exchange(&http, &emu, &param(&again, "code").expect("code")).await;
    assert!(
        body.get("refresh_token").is_none(),
        "second consent: {body}"
    );
    assert!(body["access_token"].is_string());

    let forced = google_consent(
        &http,
        &emu,
        &[("access_type", "offline"), ("prompt", "consent")],
    )
    .await;
    let (_, body) = google_exchange(&http, &emu, &param(&forced, "code").expect("code")).await;
    assert!(body["refresh_token"].is_string(), "prompt=consent: {body}");

    // Another user's first consent gets one too.
    emu.set_next_user("108000000000000000001");
    let other = google_consent(&http, &emu, &[("access_type", "offline")]).await;
    let (_, body) = google_exchange(&http, &emu, &param(&other, "code").expect("code")).await;
    assert!(body["refresh_token"].is_string(), "another user: {body}");
    assert_eq!(emu.counters().google_token_authorization_code, 5);
}

#[tokio::test]
async fn refresh_answers_without_refresh_token_and_the_old_one_stays_valid() {
    let emu = start().await;
    let http = http();
    let seeded = emu.seed_google_grant(demo::GOOGLE_CLIENT_ID, "1080001", &[HEALTH_SLEEP]);
    let refresh = seeded.refresh_token.expect("offline grant");
    let mut seen = vec![seeded.access_token];
    for _ in 0..3 {
        let (status, body) = google_refresh_json(&http, &emu, &refresh).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.get("refresh_token").is_none(), "{body}");
        assert_eq!(body["scope"], HEALTH_SLEEP);
        assert_eq!(body["expires_in"], 3599);
        let access = body["access_token"].as_str().expect("access").to_owned();
        assert!(!seen.contains(&access));
        seen.push(access);
    }
    assert_eq!(emu.counters().google_token_refresh, 3);
    assert_eq!(emu.counters().reuse_detections, 0);
}

#[tokio::test]
async fn client_secret_post_and_basic_are_both_accepted() {
    let emu = start().await;
    let http = http();
    let refresh = emu
        .seed_google_grant(demo::GOOGLE_CLIENT_ID, "1080002", &[HEALTH_SLEEP])
        .refresh_token
        .expect("offline grant");
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh.as_str()),
    ];
    let basic = http
        .post(emu.google_endpoints().token)
        .basic_auth(demo::GOOGLE_CLIENT_ID, Some(demo::GOOGLE_CLIENT_SECRET))
        .form(&form);
    let (status, body) = json(basic.send().await.expect("answered")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = json(google_token(&http, &emu, &form).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let recorded = emu.last_request(Endpoint::GoogleToken).expect("recorded");
    assert_eq!(
        recorded.form_param("client_secret").as_deref(),
        Some(demo::GOOGLE_CLIENT_SECRET)
    );

    let wrong = http.post(emu.google_endpoints().token).form(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh.as_str()),
        ("client_id", demo::GOOGLE_CLIENT_ID),
        ("client_secret", "wrong"),
    ]);
    let (status, body) = json(wrong.send().await.expect("answered")).await;
    assert_oauth_error(status, &body, StatusCode::UNAUTHORIZED, "invalid_client");
    assert_eq!(body["error_description"], "Unauthorized");
    let missing = http.post(emu.google_endpoints().token).form(&form);
    let (status, body) = json(missing.send().await.expect("answered")).await;
    assert_oauth_error(status, &body, StatusCode::UNAUTHORIZED, "invalid_client");
    assert_eq!(emu.counters().client_auth_failures, 2);
}

#[tokio::test]
async fn bad_grants_get_rfc6749_errors() {
    let emu = start().await;
    let http = http();
    let (status, body) = json(
        google_token(
            &http,
            &emu,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", "1//unknown"),
            ],
        )
        .await,
    )
    .await;
    assert_oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
    assert_eq!(
        body["error_description"],
        "Token has been expired or revoked."
    );

    let (status, body) = json(google_token(&http, &emu, &[("grant_type", "password")]).await).await;
    assert_oauth_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "unsupported_grant_type",
    );

    let url = google_consent(&http, &emu, &[]).await;
    let code = param(&url, "code").expect("code");
    let (status, body) = json(
        google_token(
            &http,
            &emu,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", "http://127.0.0.1:8976/other"),
            ],
        )
        .await,
    )
    .await;
    assert_oauth_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "redirect_uri_mismatch",
    );
    let (status, body) = google_exchange(&http, &emu, &code).await;
    assert_oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
}

#[tokio::test]
async fn code_expires_after_ten_minutes() {
    let emu = start().await;
    let http = http();
    let code = param(&google_consent(&http, &emu, &[]).await, "code").expect("code");
    emu.advance_time(Duration::from_secs(601));
    let (status, body) = google_exchange(&http, &emu, &code).await;
    assert_oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
}

#[tokio::test]
async fn pkce_is_verified_when_a_challenge_was_sent() {
    let emu = start().await;
    let http = http();
    let pkce = pkce();
    let challenge = [
        ("code_challenge", pkce.challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let exchange = |code: String, verifier: Option<String>| {
        let http = http.clone();
        let url = emu.google_endpoints().token;
        async move {
            let mut form = vec![
                ("grant_type", "authorization_code".to_owned()),
                ("code", code),
                ("redirect_uri", demo::REDIRECT_URI.to_owned()),
                ("client_id", demo::GOOGLE_CLIENT_ID.to_owned()),
                ("client_secret", demo::GOOGLE_CLIENT_SECRET.to_owned()),
            ];
            if let Some(v) = verifier {
                form.push(("code_verifier", v));
            }
            json(http.post(url).form(&form).send().await.expect("answered")).await
        }
    };
    let code = param(&google_consent(&http, &emu, &challenge).await, "code").expect("code");
    let (status, body) = exchange(code, Some(pkce.verifier.clone())).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let code = param(&google_consent(&http, &emu, &challenge).await, "code").expect("code");
    let (status, body) = exchange(code, Some(support::pkce().verifier)).await;
    assert_oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");

    let code = param(&google_consent(&http, &emu, &challenge).await, "code").expect("code");
    let (status, body) = exchange(code, None).await;
    assert_oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
    assert_eq!(emu.counters().pkce_failures, 2);
}

#[tokio::test]
async fn tokeninfo_describes_active_tokens_by_get_and_post() {
    let emu = start().await;
    let http = http();
    let tokens = emu.seed_google_grant(
        demo::GOOGLE_CLIENT_ID,
        "1080003",
        &[HEALTH_SLEEP, HEALTH_ACTIVITY],
    );
    let get = http
        .get(emu.google_endpoints().tokeninfo)
        .query(&[("access_token", tokens.access_token.as_str())]);
    let post = http
        .post(emu.google_endpoints().tokeninfo)
        .form(&[("access_token", tokens.access_token.as_str())]);
    let now = emu
        .now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("epoch")
        .as_secs();
    for request in [get, post] {
        let (status, body) = json(request.send().await.expect("answered")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["azp"], demo::GOOGLE_CLIENT_ID);
        assert_eq!(body["aud"], demo::GOOGLE_CLIENT_ID);
        assert_eq!(body["sub"], "1080003");
        assert_eq!(body["scope"], format!("{HEALTH_SLEEP} {HEALTH_ACTIVITY}"));
        assert_eq!(body["access_type"], "offline");
        let exp: u64 = body["exp"]
            .as_str()
            .expect("exp is a string")
            .parse()
            .expect("seconds");
        let expires_in: u64 = body["expires_in"]
            .as_str()
            .expect("a string")
            .parse()
            .expect("seconds");
        assert!((now + 3590..=now + 3600).contains(&exp), "{exp} vs {now}");
        assert!((3590..=3599).contains(&expires_in), "{expires_in}");
    }
    assert_eq!(emu.counters().google_tokeninfo, 2);
}

#[tokio::test]
async fn tokeninfo_rejects_unknown_and_expired_tokens() {
    let emu = start().await;
    let http = http();
    let tokens = emu.seed_google_grant(demo::GOOGLE_CLIENT_ID, "1080004", &[HEALTH_SLEEP]);
    emu.advance_time(Duration::from_secs(3600));
    for token in [tokens.access_token.as_str(), "ya29.unknown"] {
        let (status, body) = json(
            http.get(emu.google_endpoints().tokeninfo)
                .query(&[("access_token", token)])
                .send()
                .await
                .expect("answered"),
        )
        .await;
        assert_oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_token");
        assert_eq!(body["error_description"], "Invalid Value");
    }
}

#[tokio::test]
async fn revoking_either_token_revokes_the_grant() {
    let emu = start().await;
    let http = http();
    for revoke_refresh in [false, true] {
        let tokens = emu.seed_google_grant(demo::GOOGLE_CLIENT_ID, "1080005", &[HEALTH_SLEEP]);
        let refresh = tokens.refresh_token.expect("offline grant");
        let target = if revoke_refresh {
            refresh.as_str()
        } else {
            tokens.access_token.as_str()
        };
        let (status, body) = json(
            http.post(emu.google_endpoints().revoke)
                .form(&[("token", target)])
                .send()
                .await
                .expect("answered"),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body, serde_json::json!({}));
        let (status, body) = google_refresh_json(&http, &emu, &refresh).await;
        assert_oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
        let info = http
            .get(emu.google_endpoints().tokeninfo)
            .query(&[("access_token", tokens.access_token.as_str())])
            .send()
            .await
            .expect("answered");
        assert_eq!(info.status(), StatusCode::BAD_REQUEST);
    }
    let (status, body) = json(
        http.post(emu.google_endpoints().revoke)
            .form(&[("token", "ya29.unknown")])
            .send()
            .await
            .expect("answered"),
    )
    .await;
    assert_oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_token");
    assert_eq!(body["error_description"], "Token expired or revoked");
    assert_eq!(emu.counters().google_revoke, 3);
}

#[tokio::test]
async fn after_revocation_the_next_offline_consent_is_a_first_consent_again() {
    let emu = start().await;
    let http = http();
    let tokens = emu.seed_google_grant(
        demo::GOOGLE_CLIENT_ID,
        demo::DEFAULT_USER_ID,
        &[HEALTH_SLEEP],
    );
    let url = google_consent(&http, &emu, &[("access_type", "offline")]).await;
    let (_, body) = google_exchange(&http, &emu, &param(&url, "code").expect("code")).await;
    assert!(body.get("refresh_token").is_none(), "{body}");
    http.post(emu.google_endpoints().revoke)
        .form(&[("token", tokens.access_token.as_str())])
        .send()
        .await
        .expect("answered");
    let url = google_consent(&http, &emu, &[("access_type", "offline")]).await;
    let (_, body) = google_exchange(&http, &emu, &param(&url, "code").expect("code")).await;
    assert!(body["refresh_token"].is_string(), "{body}");
}

#[tokio::test]
async fn testing_status_refresh_tokens_expire() {
    let emu = Emulator::builder()
        .with_demo_clients()
        .google_refresh_token_lifetime(Duration::from_secs(7 * 24 * 3600))
        .start()
        .await
        .expect("starts");
    let http = http();
    let url = google_consent(&http, &emu, &[("access_type", "offline")]).await;
    let (_, body) = google_exchange(&http, &emu, &param(&url, "code").expect("code")).await;
    assert_eq!(body["refresh_token_expires_in"], 604_800, "{body}");
    let refresh = body["refresh_token"].as_str().expect("refresh").to_owned();
    emu.advance_time(Duration::from_secs(7 * 24 * 3600 - 60));
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh.as_str()),
    ];
    let (status, _) = json(google_token(&http, &emu, &form).await).await;
    assert_eq!(status, StatusCode::OK);
    emu.advance_time(Duration::from_secs(61));
    let (status, body) = json(google_token(&http, &emu, &form).await).await;
    assert_oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
}

#[tokio::test]
async fn discovery_points_at_the_emulator() {
    let emu = start().await;
    let http = http();
    let endpoints = emu.google_endpoints();
    let (status, body) = json(
        http.get(endpoints.discovery.clone())
            .send()
            .await
            .expect("answered"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["issuer"],
        emu.base_url().as_str().trim_end_matches('/')
    );
    assert_eq!(body["authorization_endpoint"], endpoints.authorize.as_str());
    assert_eq!(body["token_endpoint"], endpoints.token.as_str());
    assert_eq!(body["revocation_endpoint"], endpoints.revoke.as_str());
    assert_eq!(
        body["code_challenge_methods_supported"],
        serde_json::json!(["S256", "plain"])
    );
    assert_eq!(
        body["response_types_supported"],
        serde_json::json!(["code"])
    );
    let methods = body["token_endpoint_auth_methods_supported"]
        .as_array()
        .expect("array");
    assert!(
        methods.contains(&"client_secret_post".into())
            && methods.contains(&"client_secret_basic".into())
    );
    let scopes = body["scopes_supported"].as_array().expect("array");
    assert!(scopes.contains(&HEALTH_SLEEP.into()));
    assert_eq!(emu.counters().google_discovery, 1);
}
