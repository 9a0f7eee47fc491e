//! The Fitbit provider's `rejects_token` hook behind the auth-reqwest
//! middleware: Fitbit's 401 bodies carry no RFC 6750 challenge, and still
//! get one refresh and one retry.

mod support;

use auth_core::AuthorizeRequest;
use auth_emulator::Endpoint;
use auth_fitbit::AppType;
use auth_reqwest::{BearerAuth, auth_error};
use support::{fitbit_id, world};

#[tokio::test]
async fn a_revoked_fitbit_token_is_refreshed_once_and_retried() {
    let w = world(AppType::Server).await;
    let key = support::login(
        &w,
        &fitbit_id(),
        AuthorizeRequest::new().scopes(["profile"]),
    )
    .await;
    let old = w.manager.access_token(&key).await.unwrap();
    let auth = BearerAuth::new(w.manager.clone(), key.clone())
        .allow_origin(w.emulator.base_url().as_str())
        .unwrap();
    let client = auth_reqwest::client(auth).unwrap();
    let url = w.emulator.endpoint_url(Endpoint::FitbitProfile);

    w.emulator.invalidate_access_token(old.secret());
    let answer = client.get(url.clone()).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    assert!(answer.headers().contains_key("fitbit-rate-limit-remaining"));
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["user"]["encodedId"], key.account.as_str());
    let counters = w.emulator.counters();
    assert_eq!(counters.fitbit_token_refresh, 1);
    assert_eq!(counters.fitbit_profile, 2);

    // A 410 from the retired API is not a rejected token: it goes back to
    // the caller as it is, with no refresh (the stored token is still valid).
    w.emulator.set_retired(true);
    let answer = client.get(url).send().await.unwrap();
    assert_eq!(answer.status(), 410);
    assert_eq!(w.emulator.counters().fitbit_token_refresh, 1);
}

#[tokio::test]
async fn a_retired_provider_is_an_error_of_its_class() {
    let w = world(AppType::Server).await;
    let issued = w.emulator.seed_fitbit_grant(
        auth_emulator::demo::FITBIT_SERVER_CLIENT_ID,
        "26FWFL",
        &["profile"],
    );
    let key = support::fitbit_key("26FWFL");
    support::store_expired(&w, &key, &issued).await;
    w.emulator.set_retired(true);
    let auth = BearerAuth::per_request(w.manager.clone())
        .allow_origin(w.emulator.base_url().as_str())
        .unwrap();
    let client = auth_reqwest::client(auth).unwrap();
    let err = client
        .get(w.emulator.endpoint_url(Endpoint::FitbitProfile))
        .with_extension(key)
        .send()
        .await
        .unwrap_err();
    assert!(
        matches!(
            auth_error(&err),
            Some(auth_core::Error::ProviderRetired { .. })
        ),
        "{err}"
    );
    assert_eq!(w.emulator.counters().fitbit_profile, 0);
}
