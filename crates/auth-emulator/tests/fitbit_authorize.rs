//! Legacy Fitbit consent page and code exchange: parameters, exact redirect
//! URIs, HTML error pages, consent decisions, PKCE, client authentication of
//! both app types, and code lifetime.

mod support;

use std::time::Duration;

use auth_emulator::{ClientConfig, Emulator, Endpoint, demo};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::StatusCode;
use support::*;

type Query<'a> = Vec<(&'a str, &'a str)>;
/// Turns a valid consent query into an invalid one.
type Spoil = fn(&mut Query<'_>);

fn valid_query(pkce: &Pkce) -> Query<'_> {
    vec![
        ("client_id", demo::FITBIT_SERVER_CLIENT_ID),
        ("response_type", "code"),
        ("scope", "activity sleep"),
        ("redirect_uri", demo::REDIRECT_URI),
        ("code_challenge", &pkce.challenge),
        ("code_challenge_method", "S256"),
        ("state", "a state/with+odd&chars"),
    ]
}

#[tokio::test]
async fn consent_redirects_with_code_state_and_fitbit_fragment() {
    let emu = start().await;
    let http = http();
    let pkce = pkce();
    let response = fitbit_authorize(&http, &emu, &valid_query(&pkce)).await;
    let url = location(&response);
    assert!(url.as_str().starts_with(demo::REDIRECT_URI), "{url}");
    assert_eq!(
        param(&url, "state").as_deref(),
        Some("a state/with+odd&chars")
    );
    assert!(param(&url, "code").is_some_and(|c| c.len() >= 40));
    assert_eq!(url.fragment(), Some("_=_"));
    assert_eq!(emu.counters().fitbit_authorize, 1);
    let recorded = emu
        .last_request(Endpoint::FitbitAuthorize)
        .expect("recorded");
    assert_eq!(recorded.method, "GET");
    assert_eq!(recorded.path, "/oauth2/authorize");
    assert_eq!(
        recorded.query_param("scope").as_deref(),
        Some("activity sleep")
    );
}

/// Every invalid parameter gets Fitbit's own HTML page: status 400, no
/// `Location`, never a redirect back to the app.
#[tokio::test]
async fn invalid_parameters_get_an_html_page_and_no_redirect() {
    let emu = start().await;
    let http = http();
    let pkce = pkce();
    let cases: Vec<(&str, Spoil)> = vec![
        ("unknown client", |q| q[0].1 = "NOPE"),
        ("missing client", |q| q.retain(|(k, _)| *k != "client_id")),
        ("implicit grant", |q| q[1].1 = "token"),
        ("unknown scope", |q| q[2].1 = "activity steps"),
        ("Google scope", |q| q[2].1 = HEALTH_SLEEP),
        ("empty scope", |q| q[2].1 = " "),
        ("redirect with trailing slash", |q| {
            q[3].1 = "http://127.0.0.1:8976/callback/"
        }),
        ("redirect on another port", |q| {
            q[3].1 = "http://127.0.0.1:8977/callback"
        }),
        ("redirect as localhost", |q| {
            q[3].1 = "http://localhost:8976/callback"
        }),
        ("PKCE method unknown", |q| q[5].1 = "S512"),
        ("PKCE challenge too short", |q| q[4].1 = "abc"),
        ("PKCE method without challenge", |q| {
            q.retain(|(k, _)| *k != "code_challenge")
        }),
        ("bad prompt", |q| q.push(("prompt", "always"))),
        ("repeated parameter", |q| q.push(("scope", "sleep"))),
    ];
    for (name, mutate) in cases {
        let mut query = valid_query(&pkce);
        mutate(&mut query);
        let response = fitbit_authorize(&http, &emu, &query).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{name}");
        assert!(
            response.headers().get("location").is_none(),
            "{name}: must not redirect"
        );
        let content_type = header(&response, "content-type").unwrap_or_default();
        assert!(
            content_type.starts_with("text/html"),
            "{name}: {content_type}"
        );
        let page = response.text().await.expect("a page");
        assert!(page.contains("Developer information"), "{name}: {page}");
    }
}

#[tokio::test]
async fn redirect_uri_may_be_omitted_only_when_exactly_one_is_registered() {
    let emu = Emulator::builder()
        .fitbit_client(ClientConfig::public("ONE").redirect_uri("http://127.0.0.1:9000/one"))
        .fitbit_client(
            ClientConfig::public("TWO")
                .redirect_uri("http://127.0.0.1:9000/a")
                .redirect_uri("http://127.0.0.1:9000/b"),
        )
        .start()
        .await
        .expect("starts");
    let http = http();
    let base = [("response_type", "code"), ("scope", "sleep")];
    let mut one = base.to_vec();
    one.push(("client_id", "ONE"));
    let url = location(&fitbit_authorize(&http, &emu, &one).await);
    assert!(
        url.as_str().starts_with("http://127.0.0.1:9000/one?"),
        "{url}"
    );

    let mut two = base.to_vec();
    two.push(("client_id", "TWO"));
    let response = fitbit_authorize(&http, &emu, &two).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.headers().get("location").is_none());

    two.push(("redirect_uri", "http://127.0.0.1:9000/b"));
    let url = location(&fitbit_authorize(&http, &emu, &two).await);
    assert!(
        url.as_str().starts_with("http://127.0.0.1:9000/b?"),
        "{url}"
    );
}

#[tokio::test]
async fn denied_consent_redirects_with_access_denied_and_state() {
    let emu = start().await;
    let http = http();
    let pkce = pkce();
    emu.deny_next_authorization();
    let url = location(&fitbit_authorize(&http, &emu, &valid_query(&pkce)).await);
    assert_eq!(param(&url, "error").as_deref(), Some("access_denied"));
    assert!(param(&url, "error_description").is_some());
    assert_eq!(
        param(&url, "state").as_deref(),
        Some("a state/with+odd&chars")
    );
    assert_eq!(param(&url, "code"), None);
    // Only the next one is denied.
    let url = location(&fitbit_authorize(&http, &emu, &valid_query(&pkce)).await);
    assert!(param(&url, "code").is_some());
}

#[tokio::test]
async fn server_app_exchanges_with_basic_and_never_a_body_secret() {
    let emu = start().await;
    let http = http();
    let pkce = pkce();
    let code = fitbit_code(&http, &emu, SERVER_APP, &pkce, "activity heartrate sleep").await;
    let (status, body) =
        json(fitbit_exchange(&http, &emu, SERVER_APP, &code, &pkce.verifier).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["access_token"].as_str().is_some_and(|t| t.len() >= 40));
    assert!(
        body["refresh_token"]
            .as_str()
            .is_some_and(|t| t.len() >= 40)
    );
    assert_eq!(body["expires_in"], 28_800);
    assert_eq!(body["scope"], "activity heartrate sleep");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["user_id"], demo::DEFAULT_USER_ID);
    let recorded = emu.last_request(Endpoint::FitbitToken).expect("recorded");
    assert!(
        recorded
            .header("authorization")
            .is_some_and(|h| h.starts_with("Basic "))
    );
    assert_eq!(recorded.form_param("client_secret"), None);
    assert!(!recorded.body.contains(demo::FITBIT_SERVER_CLIENT_SECRET));
    assert_eq!(emu.counters().fitbit_token_authorization_code, 1);
}

#[tokio::test]
async fn server_app_secret_in_the_body_is_refused() {
    let emu = start().await;
    let http = http();
    let pkce = pkce();
    let code = fitbit_code(&http, &emu, SERVER_APP, &pkce, SLEEP).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", demo::REDIRECT_URI),
        ("code_verifier", pkce.verifier.as_str()),
        ("client_id", demo::FITBIT_SERVER_CLIENT_ID),
        ("client_secret", demo::FITBIT_SERVER_CLIENT_SECRET),
    ];
    // Secret in the body only, and secret in the body next to a valid header.
    for with_header in [false, true] {
        let mut request = http.post(emu.fitbit_endpoints().token).form(&form);
        if with_header {
            request = request.basic_auth(
                demo::FITBIT_SERVER_CLIENT_ID,
                Some(demo::FITBIT_SERVER_CLIENT_SECRET),
            );
        }
        let (status, body) = json(request.send().await.expect("answered")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        fitbit_error(&body, "invalid_client");
    }
    assert_eq!(emu.counters().client_auth_failures, 2);
    // The refused attempts did not use the code up.
    let (status, _) =
        json(fitbit_exchange(&http, &emu, SERVER_APP, &code, &pkce.verifier).await).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn wrong_or_missing_client_credentials_are_invalid_client() {
    let emu = start().await;
    let http = http();
    let url = emu.fitbit_endpoints().token;
    let form = [("grant_type", "refresh_token"), ("refresh_token", "x")];
    let attempts = [
        http.post(url.clone())
            .basic_auth(demo::FITBIT_SERVER_CLIENT_ID, Some("wrong"))
            .form(&form),
        http.post(url.clone())
            .basic_auth("UNKNOWN", Some("x"))
            .form(&form),
        http.post(url.clone())
            .header("authorization", "Basic !!!")
            .form(&form),
        http.post(url.clone()).form(&form),
        // A public app must not send a Basic header.
        http.post(url.clone())
            .basic_auth(demo::FITBIT_PUBLIC_CLIENT_ID, Some(""))
            .form(&form),
    ];
    for (i, attempt) in attempts.into_iter().enumerate() {
        let (status, body) = json(attempt.send().await.expect("answered")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "attempt {i}: {body}");
        fitbit_error(&body, "invalid_client");
    }
    assert_eq!(emu.counters().client_auth_failures, 5);
}

/// RFC 6749 2.3.1: the id and secret are form-encoded before Base64.
#[tokio::test]
async fn basic_credentials_are_form_decoded() {
    let emu = Emulator::builder()
        .fitbit_client(ClientConfig::server("ID:1 +", "s%cr t").redirect_uri(demo::REDIRECT_URI))
        .start()
        .await
        .expect("starts");
    let http = http();
    let tokens = emu.seed_fitbit_grant("ID:1 +", "USER01", &[SLEEP]);
    let encoded = STANDARD.encode("ID%3A1+%2B:s%25cr+t");
    let (status, body) = json(
        http.post(emu.fitbit_endpoints().token)
            .header("authorization", format!("Basic {encoded}"))
            .form(&[
                ("grant_type", "refresh_token"),
                (
                    "refresh_token",
                    tokens.refresh_token.as_deref().unwrap_or_default(),
                ),
            ])
            .send()
            .await
            .expect("answered"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn public_app_sends_client_id_in_the_body_and_no_authorization() {
    let emu = start().await;
    let http = http();
    let pkce = pkce();
    let code = fitbit_code(&http, &emu, PUBLIC_APP, &pkce, SLEEP).await;
    let (status, body) =
        json(fitbit_exchange(&http, &emu, PUBLIC_APP, &code, &pkce.verifier).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let recorded = emu.last_request(Endpoint::FitbitToken).expect("recorded");
    assert_eq!(recorded.header("authorization"), None);
    assert_eq!(
        recorded.form_param("client_id").as_deref(),
        Some(demo::FITBIT_PUBLIC_CLIENT_ID)
    );
    assert_eq!(recorded.form_param("client_secret"), None);
    // A code is bound to its client: the other app cannot redeem one.
    let other = fitbit_code(&http, &emu, PUBLIC_APP, &pkce, SLEEP).await;
    let (status, body) =
        json(fitbit_exchange(&http, &emu, SERVER_APP, &other, &pkce.verifier).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    fitbit_error(&body, "invalid_grant");
}

#[tokio::test]
async fn pkce_s256_and_plain_verify_and_mismatch_fails() {
    let emu = start().await;
    let http = http();
    // RFC 7636 Appendix B: the verifier is the base64url of its listed octets.
    let rfc = Pkce {
        verifier: "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".into(),
        challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
    };
    let code = fitbit_code(&http, &emu, PUBLIC_APP, &rfc, SLEEP).await;
    let (status, body) =
        json(fitbit_exchange(&http, &emu, PUBLIC_APP, &code, &rfc.verifier).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let plain = pkce();
    let url = location(
        &fitbit_authorize(
            &http,
            &emu,
            &[
                ("client_id", demo::FITBIT_PUBLIC_CLIENT_ID),
                ("response_type", "code"),
                ("scope", SLEEP),
                ("code_challenge", &plain.verifier),
                ("code_challenge_method", "plain"),
            ],
        )
        .await,
    );
    let code = param(&url, "code").expect("a code");
    let (status, body) =
        json(fitbit_exchange(&http, &emu, PUBLIC_APP, &code, &plain.verifier).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(emu.counters().pkce_failures, 0);

    let good = pkce();
    let code = fitbit_code(&http, &emu, PUBLIC_APP, &good, SLEEP).await;
    let (status, body) =
        json(fitbit_exchange(&http, &emu, PUBLIC_APP, &code, &pkce().verifier).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    fitbit_error(&body, "invalid_grant");

    let code = fitbit_code(&http, &emu, PUBLIC_APP, &good, SLEEP).await;
    let response = post_as(
        &http,
        emu.fitbit_endpoints().token,
        PUBLIC_APP,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", demo::REDIRECT_URI),
        ],
    )
    .await;
    let (status, body) = json(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    fitbit_error(&body, "invalid_grant");
    assert_eq!(emu.counters().pkce_failures, 2);
}

#[tokio::test]
async fn code_is_single_use() {
    let emu = start().await;
    let http = http();
    let pkce = pkce();
    let code = fitbit_code(&http, &emu, SERVER_APP, &pkce, SLEEP).await;
    let (first, _) =
        json(fitbit_exchange(&http, &emu, SERVER_APP, &code, &pkce.verifier).await).await;
    assert_eq!(first, StatusCode::OK);
    let (second, body) =
        json(fitbit_exchange(&http, &emu, SERVER_APP, &code, &pkce.verifier).await).await;
    assert_eq!(second, StatusCode::BAD_REQUEST);
    fitbit_error(&body, "invalid_grant");
}

#[tokio::test]
async fn code_expires_after_ten_minutes() {
    let emu = start().await;
    let http = http();
    let pkce = pkce();
    let fresh = fitbit_code(&http, &emu, SERVER_APP, &pkce, SLEEP).await;
    let stale = fitbit_code(&http, &emu, SERVER_APP, &pkce, SLEEP).await;
    emu.advance_time(Duration::from_secs(9 * 60 + 50));
    let (status, body) =
        json(fitbit_exchange(&http, &emu, SERVER_APP, &fresh, &pkce.verifier).await).await;
    assert_eq!(status, StatusCode::OK, "still valid at 9m50s: {body}");
    emu.advance_time(Duration::from_secs(20));
    let (status, body) =
        json(fitbit_exchange(&http, &emu, SERVER_APP, &stale, &pkce.verifier).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(fitbit_error(&body, "invalid_grant").contains("expired"));
}

#[tokio::test]
async fn redirect_uri_at_exchange_must_equal_the_one_sent_to_authorize() {
    let emu = start().await;
    let http = http();
    let pkce = pkce();
    for redirect in [None, Some("http://127.0.0.1:8976/other")] {
        let code = fitbit_code(&http, &emu, SERVER_APP, &pkce, SLEEP).await;
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("code_verifier", pkce.verifier.as_str()),
        ];
        if let Some(r) = redirect {
            form.push(("redirect_uri", r));
        }
        let (status, body) =
            json(post_as(&http, emu.fitbit_endpoints().token, SERVER_APP, &form).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{redirect:?}");
        fitbit_error(&body, "invalid_grant");
    }
}

#[tokio::test]
async fn next_user_and_unticked_scopes_shape_the_grant() {
    let emu = start().await;
    let http = http();
    let pkce = pkce();
    emu.set_next_user("ALICE1");
    emu.set_next_granted_scopes(&["sleep", "weight"]);
    let code = fitbit_code(&http, &emu, SERVER_APP, &pkce, "activity sleep").await;
    let (_, body) =
        json(fitbit_exchange(&http, &emu, SERVER_APP, &code, &pkce.verifier).await).await;
    assert_eq!(body["user_id"], "ALICE1");
    assert_eq!(body["scope"], "sleep");
    // The queue is used up: the default user consents to everything again.
    let code = fitbit_code(&http, &emu, SERVER_APP, &pkce, "activity sleep").await;
    let (_, body) =
        json(fitbit_exchange(&http, &emu, SERVER_APP, &code, &pkce.verifier).await).await;
    assert_eq!(body["user_id"], demo::DEFAULT_USER_ID);
    assert_eq!(body["scope"], "activity sleep");
}

#[tokio::test]
async fn requested_expires_in_sets_the_lifetime_and_bad_values_are_refused() {
    let emu = start().await;
    let http = http();
    let pkce = pkce();
    let code = fitbit_code(&http, &emu, SERVER_APP, &pkce, SLEEP).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", demo::REDIRECT_URI),
        ("code_verifier", pkce.verifier.as_str()),
        ("expires_in", "3600"),
    ];
    let (status, body) =
        json(post_as(&http, emu.fitbit_endpoints().token, SERVER_APP, &form).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["expires_in"], 3600);
    let refresh = body["refresh_token"].as_str().expect("a refresh token");
    let (status, body) = json(
        post_as(
            &http,
            emu.fitbit_endpoints().token,
            SERVER_APP,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh),
                ("expires_in", "soon"),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    fitbit_error(&body, "invalid_request");
}

#[tokio::test]
async fn unsupported_grant_type_and_non_form_body_are_invalid_request() {
    let emu = start().await;
    let http = http();
    let (status, body) = json(
        post_as(
            &http,
            emu.fitbit_endpoints().token,
            SERVER_APP,
            &[("grant_type", "password")],
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    fitbit_error(&body, "invalid_request");
    let (status, body) = json(
        http.post(emu.fitbit_endpoints().token)
            .basic_auth(
                demo::FITBIT_SERVER_CLIENT_ID,
                Some(demo::FITBIT_SERVER_CLIENT_SECRET),
            )
            .header("content-type", "application/json")
            .body(r#"{"grant_type":"refresh_token"}"#)
            .send()
            .await
            .expect("answered"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    fitbit_error(&body, "invalid_request");
    assert_eq!(emu.counters().fitbit_token_other, 2);
}
