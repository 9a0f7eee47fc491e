//! The resource endpoints: Fitbit's profile and Google Health's identity.

use auth_emulator::{Emulator, Endpoint, demo};

async fn get(url: url::Url, token: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn fitbit_profile_checks_the_bearer_token() {
    let emu = Emulator::builder()
        .with_demo_clients()
        .start()
        .await
        .unwrap();
    let url = emu.endpoint_url(Endpoint::FitbitProfile);
    let tokens = emu.seed_fitbit_grant(demo::FITBIT_SERVER_CLIENT_ID, "26FWFL", &["profile"]);

    let ok = get(url.clone(), Some(&tokens.access_token)).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["fitbit-rate-limit-limit"], "150");
    assert!(ok.headers().contains_key("fitbit-rate-limit-remaining"));
    assert!(ok.headers().contains_key("fitbit-rate-limit-reset"));
    let body: serde_json::Value = ok.json().await.unwrap();
    assert_eq!(body["user"]["encodedId"], "26FWFL");

    for token in [None, Some("not-a-token")] {
        let answer = get(url.clone(), token).await;
        assert_eq!(answer.status(), 401);
        assert!(!answer.headers().contains_key("www-authenticate"));
        let body: serde_json::Value = answer.json().await.unwrap();
        assert_eq!(body["errors"][0]["errorType"], "invalid_token");
        assert_eq!(body["success"], false);
    }

    emu.invalidate_access_token(&tokens.access_token);
    let answer = get(url.clone(), Some(&tokens.access_token)).await;
    assert_eq!(answer.status(), 401);

    let fresh = emu.seed_fitbit_grant(demo::FITBIT_SERVER_CLIENT_ID, "26FWFL", &["profile"]);
    emu.advance_time(std::time::Duration::from_secs(9 * 3600));
    let answer = get(url.clone(), Some(&fresh.access_token)).await;
    assert_eq!(answer.status(), 401);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["errors"][0]["errorType"], "expired_token");

    let no_scope = emu.seed_fitbit_grant(demo::FITBIT_SERVER_CLIENT_ID, "OTHER1", &["sleep"]);
    assert_eq!(
        get(url.clone(), Some(&no_scope.access_token))
            .await
            .status(),
        403
    );

    emu.set_retired(true);
    assert_eq!(get(url, Some(&no_scope.access_token)).await.status(), 410);
    assert_eq!(emu.counters().fitbit_profile, 7);
    emu.shutdown().await;
}

#[tokio::test]
async fn fitbit_profile_spends_the_quota() {
    let emu = Emulator::builder()
        .with_demo_clients()
        .rate_limit_per_hour(2)
        .start()
        .await
        .unwrap();
    let url = emu.endpoint_url(Endpoint::FitbitProfile);
    let tokens = emu.seed_fitbit_grant(demo::FITBIT_SERVER_CLIENT_ID, "26FWFL", &["profile"]);
    assert_eq!(
        get(url.clone(), Some(&tokens.access_token)).await.status(),
        200
    );
    let second = get(url.clone(), Some(&tokens.access_token)).await;
    assert_eq!(second.headers()["fitbit-rate-limit-remaining"], "0");
    let third = get(url, Some(&tokens.access_token)).await;
    assert_eq!(third.status(), 429);
    let body: serde_json::Value = third.json().await.unwrap();
    assert_eq!(body["errors"][0]["errorType"], "system");
    emu.shutdown().await;
}

#[tokio::test]
async fn google_identity_names_the_legacy_fitbit_user() {
    let emu = Emulator::builder()
        .with_demo_clients()
        .start()
        .await
        .unwrap();
    let url = emu.endpoint_url(Endpoint::GoogleHealthIdentity);
    let scope = "https://www.googleapis.com/auth/googlehealth.profile.readonly";

    let same = emu.seed_google_grant(demo::GOOGLE_CLIENT_ID, "26FWFL", &[scope]);
    let body: serde_json::Value = get(url.clone(), Some(&same.access_token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["legacyUserId"], "26FWFL");
    let health = body["healthUserId"].as_str().unwrap().to_owned();
    assert_eq!(health.len(), 20);

    emu.set_legacy_user_id("spouse", Some("9XYZ99"));
    let other = emu.seed_google_grant(demo::GOOGLE_CLIENT_ID, "spouse", &[scope]);
    let body: serde_json::Value = get(url.clone(), Some(&other.access_token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["legacyUserId"], "9XYZ99");
    assert_ne!(body["healthUserId"], health.as_str());

    emu.set_legacy_user_id("newcomer", None);
    let new = emu.seed_google_grant(demo::GOOGLE_CLIENT_ID, "newcomer", &[scope]);
    let body: serde_json::Value = get(url.clone(), Some(&new.access_token))
        .await
        .json()
        .await
        .unwrap();
    assert!(body.get("legacyUserId").is_none(), "{body}");

    let denied = get(url, Some("not-a-token")).await;
    assert_eq!(denied.status(), 401);
    let challenge = denied.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );
    let body: serde_json::Value = denied.json().await.unwrap();
    assert_eq!(body["error"]["status"], "UNAUTHENTICATED");
    assert_eq!(emu.counters().google_health_identity, 4);
    emu.shutdown().await;
}
