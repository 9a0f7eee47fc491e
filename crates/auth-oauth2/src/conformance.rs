//! The provider conformance suite: functions any
//! [`TokenProvider`] can run against a server
//! that plays a catalogue entry (the emulator's catalogue profiles), one
//! function per clause of what the entry promises. Each panics with a
//! message naming the entry and the clause when the provider breaks it.
//!
//! [`run_all`] runs every clause in order: login, refresh (rotation
//! honoured, the old refresh token kept when a refresh leaves it out),
//! revocation and introspection where the entry has them, and error
//! classification.

use auth_catalogue::{AccountFrom, Fact, IntrospectStyle, ProviderSpec};
use auth_core::{AuthorizeRequest, Callback, Error, ResourceResponse, TokenProvider, TokenSet};
use secrecy::ExposeSecret;
use url::Url;

/// A server playing one catalogue entry.
#[derive(Debug, Clone)]
pub struct Target {
    /// The entry's name, for messages.
    pub name: String,
    /// The entry as the server serves it (its URLs point at the server).
    pub spec: ProviderSpec,
    /// A redirect URI the server accepts.
    pub redirect_uri: String,
    /// A resource that answers any valid access token.
    pub resource: Option<Url>,
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a plain HTTP client builds")
}

/// GETs `url` with `token` as a Bearer token; the status, the challenge and
/// the body.
async fn call_resource(url: &Url, token: &str) -> (u16, Option<String>, Vec<u8>) {
    let answer = browser()
        .get(url.as_str())
        .bearer_auth(token)
        .send()
        .await
        .expect("the resource endpoint answers");
    let status = answer.status().as_u16();
    let challenge = answer
        .headers()
        .get(http::header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = answer.bytes().await.expect("a body").to_vec();
    (status, challenge, body)
}

/// Login: authorize, consent (the server consents at once), exchange the
/// code; the token set has what the entry promises (a refresh token, the
/// extra fields to keep, the account id), and the resource accepts it.
pub async fn login(provider: &dyn TokenProvider, target: &Target) -> TokenSet {
    let name = &target.name;
    let pending = provider
        .authorize(AuthorizeRequest::new().redirect_uri(target.redirect_uri.clone()))
        .unwrap_or_else(|e| panic!("{name}: authorize: {e}"));
    let answer = browser()
        .get(pending.authorize_url.as_str())
        .send()
        .await
        .unwrap_or_else(|e| panic!("{name}: the authorize endpoint: {e}"));
    let status = answer.status();
    let location = answer
        .headers()
        .get(http::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let Some(location) = location else {
        let body = answer.text().await.unwrap_or_default();
        panic!("{name}: the authorize endpoint refused the request ({status}): {body}");
    };
    let callback = Callback::parse(&location).unwrap_or_else(|e| panic!("{name}: callback: {e}"));
    let token = provider
        .exchange_code(&pending, &callback)
        .await
        .unwrap_or_else(|e| panic!("{name}: code exchange: {e}"));
    assert!(
        token.refresh_token().is_some(),
        "{name}: the login brought no refresh token; the entry's offline scopes and \
         parameters were not sent"
    );
    for extra in &target.spec.response.keep_extras {
        assert!(
            token.extras().contains_key(extra),
            "{name}: the extra field {extra} was not kept"
        );
    }
    assert!(
        !format!("{:?}", token.extras()).contains("xoxb-"),
        "{name}: a credential was kept among the extra fields"
    );
    if target.spec.account.from == AccountFrom::Token {
        let account = provider
            .account_for(&token)
            .unwrap_or_else(|| panic!("{name}: no account id from the token response"));
        assert!(!account.as_str().is_empty(), "{name}: an empty account id");
    }
    if let Some(resource) = &target.resource {
        let (status, _, _) = call_resource(resource, token.access_token().expose_secret()).await;
        assert_eq!(status, 200, "{name}: the resource refused a fresh token");
    }
    token
}

/// Refresh: rotation as the entry states it (unknown read as rotating), the
/// old refresh token dead once the entry says so, and a refresh answer that
/// leaves the refresh token out only where the entry allows it. Returns the
/// token set to go on with (the old refresh token kept when left out, as the
/// token manager does).
pub async fn refresh(provider: &dyn TokenProvider, target: &Target, token: &TokenSet) -> TokenSet {
    let name = &target.name;
    let rules = target.spec.refresh_rules();
    let old_refresh = token
        .refresh_token()
        .map(|t| t.expose_secret().to_owned())
        .expect("a token set with a refresh token");
    let new = provider
        .refresh(token)
        .await
        .unwrap_or_else(|e| panic!("{name}: refresh: {e}"));
    if target.spec.response.unchanged_access_token_on_refresh {
        assert_eq!(
            new.access_token().expose_secret(),
            token.access_token().expose_secret(),
            "{name}: the unchanged access token was not taken as it came"
        );
    } else {
        assert_ne!(
            new.access_token().expose_secret(),
            token.access_token().expose_secret(),
            "{name}: the refresh brought no new access token"
        );
    }
    let new_refresh = new.refresh_token().map(|t| t.expose_secret().to_owned());
    if rules.rotating {
        let new_refresh = new_refresh
            .unwrap_or_else(|| panic!("{name}: a rotating refresh brought no refresh token"));
        assert_ne!(
            new_refresh, old_refresh,
            "{name}: the refresh token did not rotate"
        );
        let dies = target.spec.refresh.old_token_dies_at_once.or(true);
        if rules.replay_window.is_none() && dies {
            let err = provider
                .refresh(token)
                .await
                .expect_err("the old refresh token is dead");
            assert!(
                err.is_reauthorization_required(),
                "{name}: the dead old refresh token gave {err:?}, not a request to log in again"
            );
        }
        new
    } else {
        match new_refresh {
            None => {
                assert_eq!(
                    target.spec.refresh.may_omit_refresh_token,
                    Fact::Known(true),
                    "{name}: the refresh token was left out though the entry does not allow it"
                );
                // Keep the old one, as the token manager does.
                new.with_refresh_token(old_refresh)
            }
            Some(same) => {
                assert_eq!(
                    same, old_refresh,
                    "{name}: a non-rotating refresh token changed"
                );
                new
            }
        }
    }
}

/// Revocation and introspection, where the entry has them: introspection
/// says a fresh token is active; after revocation the grant is gone and
/// introspection says so. Without the endpoints, the provider says
/// "unsupported".
pub async fn revoke_and_introspect(
    provider: &dyn TokenProvider,
    target: &Target,
    token: &TokenSet,
) {
    let name = &target.name;
    let endpoints = &target.spec.endpoints;
    if endpoints.introspect.is_some() {
        let info = provider
            .introspect(token)
            .await
            .unwrap_or_else(|e| panic!("{name}: introspect: {e}"));
        assert!(info.active, "{name}: a fresh token introspects as inactive");
    } else {
        assert!(
            matches!(
                provider.introspect(token).await,
                Err(Error::Unsupported { .. })
            ),
            "{name}: introspection without an endpoint is not unsupported"
        );
    }
    if endpoints.revoke.is_some() {
        provider
            .revoke(token)
            .await
            .unwrap_or_else(|e| panic!("{name}: revoke: {e}"));
        let err = provider
            .refresh(token)
            .await
            .expect_err("a revoked grant does not refresh");
        assert!(
            err.is_reauthorization_required(),
            "{name}: refreshing a revoked grant gave {err:?}"
        );
        if endpoints.introspect.is_some() {
            match provider.introspect(token).await {
                Ok(info) => assert!(
                    !info.active,
                    "{name}: a revoked token introspects as active"
                ),
                // Bearer-authenticated introspection (legacy Fitbit) is asked
                // with the token itself, which revocation ended.
                Err(_) if endpoints.introspect_style == IntrospectStyle::Bearer => {}
                Err(e) => panic!("{name}: introspect after revoke: {e}"),
            }
        }
    } else {
        assert!(
            matches!(provider.revoke(token).await, Err(Error::Unsupported { .. })),
            "{name}: revocation without an endpoint is not unsupported"
        );
    }
}

/// Error classification: a refresh token the server does not know means
/// "log in again"; a client the server does not accept means a
/// configuration error (no account flagged); the resource's answer to a bad
/// token is recognized as one, and its answer to a good token is not.
pub async fn classifies_errors(
    provider: &dyn TokenProvider,
    bad_client: &dyn TokenProvider,
    target: &Target,
    token: &TokenSet,
) {
    let name = &target.name;
    const UNKNOWN: &str = "not-a-refresh-token-this-server-issued";
    let access = token.access_token().expose_secret();
    let refresh = token.refresh_token().map_or("", |t| t.expose_secret());
    let unknown = token.clone().with_refresh_token(UNKNOWN);
    let err = provider
        .refresh(&unknown)
        .await
        .expect_err("an unknown refresh token fails");
    assert!(
        err.is_reauthorization_required(),
        "{name}: an unknown refresh token gave {err:?}, not a request to log in again"
    );
    assert_no_secret(name, &err, &[UNKNOWN, access]);
    let err = bad_client
        .refresh(token)
        .await
        .expect_err("a bad client fails");
    assert!(
        matches!(err, Error::Configuration { .. }),
        "{name}: a bad client gave {err:?}, not a configuration error"
    );
    assert_no_secret(name, &err, &[refresh, access]);
    let shown = format!("{token:?}");
    assert!(
        !shown.contains(access) && (refresh.is_empty() || !shown.contains(refresh)),
        "{name}: a token set's Debug shows a token: {shown}"
    );
    if let Some(resource) = &target.resource {
        let (status, challenge, body) = call_resource(resource, "not-a-valid-access-token").await;
        let answer = ResourceResponse::new(status)
            .with_www_authenticate(challenge.as_deref())
            .with_body(&body);
        assert!(
            provider.rejects_token(&answer),
            "{name}: the resource's answer to a bad token ({status}) was not seen as one"
        );
        let (status, challenge, body) =
            call_resource(resource, token.access_token().expose_secret()).await;
        let answer = ResourceResponse::new(status)
            .with_www_authenticate(challenge.as_deref())
            .with_body(&body);
        assert!(
            !provider.rejects_token(&answer),
            "{name}: the resource's answer to a good token ({status}) was seen as a bad token"
        );
    }
}

/// Every clause, in order, on one fresh login.
pub async fn run_all(
    provider: &dyn TokenProvider,
    bad_client: &dyn TokenProvider,
    target: &Target,
) {
    let token = login(provider, target).await;
    let token = refresh(provider, target, &token).await;
    classifies_errors(provider, bad_client, target, &token).await;
    revoke_and_introspect(provider, target, &token).await;
}

/// Neither `Debug` nor `Display` of `err` holds any of `secrets`.
fn assert_no_secret(name: &str, err: &Error, secrets: &[&str]) {
    let text = format!("{err:?} {err}");
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        assert!(
            !text.contains(secret),
            "{name}: an error shows a secret: {text}"
        );
    }
}
