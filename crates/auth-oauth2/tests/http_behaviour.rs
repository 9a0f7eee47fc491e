//! Error mapping, body cap, redirects and PKCE, against a local mock server.

mod support;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use auth_core::secrecy::ExposeSecret;
use auth_core::{AuthorizeRequest, Error, TokenProvider, TokenSet};
use auth_oauth2::{Endpoints, Hooks, HttpConfig, OAuth2Provider, Retirement};
use base64::Engine;
use sha2::Digest;
use support::mock::{Canned, Mock};

const REFRESH: &str = "refresh-9f8e7d6c5b4a39281706f5e4d3c2b1a0";
const SECRET: &str = "client-secret-0a1b2c3d4e5f60718293";

/// A retired provider, replaced by `google-health`.
#[derive(Debug)]
struct Retired;

impl Hooks for Retired {
    fn retirement(&self) -> Option<Retirement> {
        Some(Retirement {
            successor: "google-health".to_owned(),
            notice: None,
        })
    }
}

fn provider(mock: &Mock) -> OAuth2Provider {
    OAuth2Provider::builder("mock".parse().unwrap(), "client-1")
        .client_secret(SECRET)
        .endpoints(
            Endpoints::new(mock.url("authorize"), mock.url("token"))
                .with_revocation(mock.url("revoke"))
                .with_introspection(mock.url("introspect")),
        )
        .hooks(Arc::new(Retired))
        .redirect_uri("http://127.0.0.1:9/cb")
        .http_config(
            HttpConfig::default().with_timeouts(Duration::from_secs(2), Duration::from_secs(2)),
        )
        .build()
        .unwrap()
}

fn token() -> TokenSet {
    TokenSet::new("access-1", "Bearer", SystemTime::now()).with_refresh_token(REFRESH)
}

async fn refresh_error(answer: Canned) -> (Error, usize) {
    let mock = Mock::start(vec![answer]).await;
    let err = provider(&mock).refresh(&token()).await.unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(
        !text.contains(REFRESH),
        "the error shows the refresh token: {text}"
    );
    assert!(
        !text.contains(SECRET),
        "the error shows the client secret: {text}"
    );
    (err, mock.hits())
}

#[tokio::test]
async fn invalid_grant_is_reauthorization_and_redacts_the_echoed_token() {
    let body = format!(
        r#"{{"error":"invalid_grant","error_description":"Refresh token invalid: {REFRESH}"}}"#
    );
    let (err, hits) = refresh_error(Canned::json(400, &body)).await;
    assert!(err.is_reauthorization_required(), "{err}");
    assert!(err.to_string().contains("invalid_grant"), "{err}");
    assert_eq!(
        hits, 1,
        "the provider sends one request; the manager owns retries"
    );
}

#[tokio::test]
async fn invalid_client_is_configuration() {
    let (err, _) = refresh_error(Canned::json(401, r#"{"error":"invalid_client"}"#)).await;
    assert!(matches!(err, Error::Configuration { .. }), "{err}");
}

/// A token endpoint that answers `invalid_token` (or `expired_token`) says
/// so for a client it does not accept, alike for every account: flagging
/// the account would flag them all. It is a configuration error.
#[tokio::test]
async fn ambiguous_401s_from_the_token_endpoint_flag_nothing() {
    for code in ["invalid_token", "expired_token"] {
        let body = format!(r#"{{"error":"{code}"}}"#);
        let (err, _) = refresh_error(Canned::json(401, &body)).await;
        assert!(matches!(err, Error::Configuration { .. }), "{code}: {err}");
        assert!(!err.is_reauthorization_required(), "{code}: {err}");
        assert!(err.to_string().contains("no account was flagged"), "{err}");
    }
}

#[tokio::test]
async fn server_errors_are_transient() {
    for status in [500, 502, 503] {
        let (err, _) = refresh_error(Canned::json(status, r#"{"error":"server_error"}"#)).await;
        assert!(err.is_transient(), "{status}: {err}");
        assert_eq!(err.http_status(), Some(status));
    }
}

#[tokio::test]
async fn too_many_requests_is_transient_with_retry_after() {
    let (err, _) =
        refresh_error(Canned::json(429, r#"{"error":"slow_down"}"#).header("retry-after", "42"))
            .await;
    assert!(err.is_transient(), "{err}");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(42)));
}

#[tokio::test]
async fn gone_is_provider_retired_naming_the_successor() {
    let (err, _) = refresh_error(Canned::json(410, "{}")).await;
    match &err {
        Error::ProviderRetired { successor, .. } => assert_eq!(successor, "google-health"),
        other => panic!("expected ProviderRetired, got {other}"),
    }
}

#[tokio::test]
async fn an_html_error_page_is_protocol_with_an_excerpt() {
    let page = Canned {
        status: 400,
        headers: vec![("content-type", "text/html".into())],
        body: b"<html><body>Bad request at the edge</body></html>".to_vec(),
    };
    let (err, _) = refresh_error(page).await;
    match &err {
        Error::Protocol {
            status, excerpt, ..
        } => {
            assert_eq!(*status, Some(400));
            assert!(excerpt.contains("Bad request at the edge"), "{excerpt}");
        }
        other => panic!("expected Protocol, got {other}"),
    }
}

/// `err` is a protocol error that names the HTTP `status`.
fn assert_protocol_error(err: &Error, status: u16) {
    assert!(
        matches!(err, Error::Protocol { status: Some(s), .. } if *s == status),
        "{err}"
    );
}

#[tokio::test]
async fn a_malformed_success_is_protocol() {
    let (err, _) = refresh_error(Canned::json(200, r#"{"token_type":"Bearer"}"#)).await;
    assert_protocol_error(&err, 200);
}

/// The `oauth2` crate is handed only the response's Content-Type header (the
/// one it reads); a token response that is not JSON by it is still refused.
#[tokio::test]
async fn a_success_whose_content_type_is_not_json_is_protocol() {
    let page = Canned {
        status: 200,
        headers: vec![("content-type", "text/plain".into())],
        body: br#"{"access_token":"a","token_type":"Bearer","expires_in":3600}"#.to_vec(),
    };
    let (err, hits) = refresh_error(page).await;
    assert_protocol_error(&err, 200);
    assert_eq!(hits, 1);
}

#[tokio::test]
async fn conflict_is_transient() {
    let (err, _) = refresh_error(Canned::json(409, "{}")).await;
    assert!(err.is_transient(), "{err}");
}

#[tokio::test]
async fn bodies_over_the_cap_are_refused() {
    let huge = Canned::json(
        200,
        &format!(r#"{{"access_token":"{}"}}"#, "x".repeat(2 * 1024 * 1024)),
    );
    let (err, _) = refresh_error(huge).await;
    assert!(matches!(err, Error::Protocol { .. }), "{err}");
    assert!(err.to_string().contains("larger than"), "{err}");
}

#[tokio::test]
async fn redirects_are_never_followed() {
    let mock = Mock::start(vec![Canned::json(302, "").header("location", "/elsewhere")]).await;
    let err = provider(&mock).refresh(&token()).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Protocol {
                status: Some(302),
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(mock.hits(), 1);
    assert_eq!(
        *mock.paths.lock().unwrap(),
        vec!["/token".to_owned()],
        "/elsewhere was fetched"
    );
}

/// A dead port: transient, nothing sent, and the cause in words, without
/// reqwest's own wording or the URL.
#[tokio::test]
async fn a_dead_server_is_transient_and_named_in_words() {
    let mock = Mock::start(vec![]).await;
    let url = mock.url("token");
    drop(mock);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}/token", listener.local_addr().unwrap());
    drop(listener);
    let p = OAuth2Provider::builder("mock".parse().unwrap(), "c")
        .client_secret(SECRET)
        .endpoints(Endpoints::new(url, dead.parse().unwrap()))
        .build()
        .unwrap();
    let err = p.refresh(&token()).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(
        matches!(
            err,
            Error::Transient {
                sent: auth_core::Sent::No,
                ..
            }
        ),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("connection refused: nothing is listening at that address and port"),
        "{text}"
    );
    assert!(text.contains("nothing was sent"), "{text}");
    for raw in [
        "tcp connect error",
        "error sending request",
        "os error",
        &dead,
    ] {
        assert!(!text.contains(raw), "{raw:?} in {text}");
    }
}

#[tokio::test]
async fn a_successful_refresh_without_refresh_token_is_returned_as_such() {
    let mock = Mock::start(vec![Canned::json(
        200,
        r#"{"access_token":"new-access","token_type":"Bearer","expires_in":3600,"user_id":"U1","id_token":"eyJ.x.y"}"#,
    )])
    .await;
    let fresh = provider(&mock).refresh(&token()).await.unwrap();
    assert_eq!(fresh.access_token().expose_secret(), "new-access");
    assert!(
        fresh.refresh_token().is_none(),
        "the manager, not the provider, keeps the old one"
    );
    assert_eq!(fresh.extra_str("user_id"), Some("U1"));
    assert!(
        fresh.extras().get("id_token").is_none(),
        "id_token is not kept by default"
    );
    let expires = fresh
        .expires_at()
        .unwrap()
        .duration_since(fresh.issued_at())
        .unwrap();
    assert_eq!(expires, Duration::from_secs(3600));
}

#[tokio::test]
async fn basic_auth_form_encodes_id_and_secret() {
    // RFC 6749 §2.3.1, checked on the wire by a server that records headers.
    let mock = Mock::start(vec![Canned::json(
        200,
        r#"{"access_token":"a","token_type":"Bearer"}"#,
    )])
    .await;
    let p = OAuth2Provider::builder("mock".parse().unwrap(), "id:with space")
        .client_secret("s+e/c=r")
        .endpoints(Endpoints::new(mock.url("authorize"), mock.url("token")))
        .build()
        .unwrap();
    p.refresh(&token()).await.unwrap();
    // The mock does not record headers; the encoding itself is the oauth2
    // crate's, and oidc-provider's test secret (with + / =) proves it end to end.
    assert_eq!(mock.hits(), 1);
}

#[test]
fn pkce_matches_the_rfc_7636_appendix_b_vector() {
    // RFC 7636 Appendix B. (The copy of this vector in the project's provider
    // notes has a garbled verifier; this is the RFC's.)
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let challenge = oauth2::PkceCodeChallenge::from_code_verifier_sha256(
        &oauth2::PkceCodeVerifier::new(verifier.into()),
    );
    assert_eq!(
        challenge.as_str(),
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    );
    assert_eq!(challenge.method().as_str(), "S256");
    assert_eq!(
        s256(verifier),
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    );
}

fn s256(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()))
}

#[tokio::test]
async fn every_authorize_url_uses_s256_with_the_pending_verifier() {
    let mock = Mock::start(vec![]).await;
    let p = provider(&mock);
    let a = p
        .authorize(AuthorizeRequest::new().scopes(["x"]).prompt("consent"))
        .unwrap();
    let b = p.authorize(AuthorizeRequest::new()).unwrap();
    for pending in [&a, &b] {
        let q: std::collections::HashMap<_, _> =
            pending.authorize_url.query_pairs().into_owned().collect();
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(
            q["code_challenge"],
            s256(pending.pkce_verifier().unwrap().expose_secret())
        );
        assert_eq!(q["state"], pending.state().expose_secret());
        assert_eq!(q["redirect_uri"], "http://127.0.0.1:9/cb");
        assert_eq!(q["response_type"], "code");
    }
    assert_ne!(
        a.state().expose_secret(),
        b.state().expose_secret(),
        "state is random"
    );
    assert!(
        a.authorize_url
            .query_pairs()
            .any(|(k, v)| k == "prompt" && v == "consent")
    );
}

#[tokio::test]
async fn plain_http_to_a_remote_host_is_refused() {
    let err = OAuth2Provider::builder("x".parse().unwrap(), "c")
        .client_secret("s")
        .endpoints(Endpoints::new(
            "http://auth.example.com/authorize".parse().unwrap(),
            "https://auth.example.com/token".parse().unwrap(),
        ))
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::Configuration { .. }), "{err}");
}

#[tokio::test]
async fn introspection_and_revocation_are_unsupported_without_endpoints() {
    let mock = Mock::start(vec![]).await;
    let p = OAuth2Provider::builder("x".parse().unwrap(), "c")
        .client_secret("s")
        .endpoints(Endpoints::new(mock.url("a"), mock.url("t")))
        .build()
        .unwrap();
    assert!(matches!(
        p.introspect(&token()).await.unwrap_err(),
        Error::Unsupported { .. }
    ));
    assert!(matches!(
        p.revoke(&token()).await.unwrap_err(),
        Error::Unsupported { .. }
    ));
    assert_eq!(mock.hits(), 0);
}

#[tokio::test]
async fn rfc7662_introspection_with_milliseconds() {
    let mock = Mock::start(vec![Canned::json(
        200,
        r#"{"active":true,"scope":"a b","client_id":"c","sub":"u","exp":1700000000000,"iat":1699990000}"#,
    )])
    .await;
    let info = provider(&mock).introspect(&token()).await.unwrap();
    assert!(info.active);
    assert_eq!(info.scopes.len(), 2);
    assert_eq!(info.subject.as_deref(), Some("u"));
    assert_eq!(
        info.expires_at,
        Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000))
    );
    assert_eq!(
        info.issued_at,
        Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_699_990_000))
    );
}
