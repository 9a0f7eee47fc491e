//! auth-oauth2 against oidc-provider, an OpenID Certified server, on loopback.
//!
//! oidc-provider revokes the whole grant when a rotated refresh token is
//! reused, so any double refresh in these flows fails loudly.

use std::sync::Arc;

use auth_core::secrecy::ExposeSecret;
use auth_core::{AuthorizeRequest, Callback, Error, TokenKey, TokenManager, TokenProvider};
use auth_oauth2::{ClientAuth, HttpConfig, OAuth2Provider};
use store_memory::MemoryTokenStore;
use test_support::oidc_provider::{OidcProvider, browser_login};

async fn provider(
    server: &OidcProvider,
    client_id: &str,
    secret: Option<&str>,
    auth: ClientAuth,
) -> OAuth2Provider {
    let mut builder = OAuth2Provider::discover(
        "oidc".parse().unwrap(),
        client_id,
        &server.issuer,
        HttpConfig::default(),
    )
    .await
    .expect("discovery")
    .client_auth(auth)
    .redirect_uri(&server.redirect_uri)
    .default_scopes(["openid", "api:read"]);
    if let Some(secret) = secret {
        builder = builder.client_secret(secret);
    }
    builder.build().expect("provider")
}

async fn confidential(server: &OidcProvider) -> OAuth2Provider {
    provider(
        server,
        &server.confidential_client_id,
        Some(&server.confidential_client_secret),
        ClientAuth::ClientSecretBasic,
    )
    .await
}

fn manager(provider: OAuth2Provider) -> (TokenManager, MemoryTokenStore) {
    let store = MemoryTokenStore::new();
    let manager = TokenManager::builder(Arc::new(store.clone()))
        .provider(Arc::new(provider))
        .build();
    (manager, store)
}

fn key() -> TokenKey {
    TokenKey::parse("oidc", "user-1").unwrap()
}

/// Logs in through the manager and returns the key.
async fn login(manager: &TokenManager, server: &OidcProvider) -> TokenKey {
    let pending = manager
        .begin_authorization(
            &"oidc".parse().unwrap(),
            AuthorizeRequest::new().account(key().account),
        )
        .unwrap();
    let callback = browser_login(&pending.authorize_url, &server.redirect_uri).await;
    let callback = Callback::parse(callback.as_str()).unwrap();
    manager
        .complete_authorization(&pending, &callback)
        .await
        .unwrap()
        .0
}

#[tokio::test]
async fn discovery_finds_every_endpoint_and_the_issuer() {
    let server = OidcProvider::start().await;
    let p = confidential(&server).await;
    let e = p.endpoints();
    assert!(e.authorize.as_str().starts_with(server.issuer_str()));
    assert!(e.token.as_str().starts_with(server.issuer_str()));
    assert!(
        e.introspection.is_some(),
        "introspection endpoint discovered"
    );
    assert!(e.revocation.is_some(), "revocation endpoint discovered");
}

#[tokio::test]
async fn confidential_client_full_lifecycle() {
    let server = OidcProvider::start().await;
    let (manager, store) = manager(confidential(&server).await);
    let key = login(&manager, &server).await;

    let first = manager.access_token(&key).await.unwrap();
    let first_refresh = store_refresh(&store, &key).await;
    assert!(first.token_set().scopes().contains("openid"));

    // Refresh with rotation: a new access and refresh token.
    let second = manager.refresh(&key).await.unwrap();
    assert_ne!(second.secret(), first.secret());
    let second_refresh = store_refresh(&store, &key).await;
    assert_ne!(second_refresh, first_refresh, "the refresh token rotated");

    // Introspection sees the new token as active.
    let info = manager.introspect(&key).await.unwrap();
    assert!(info.active);
    assert_eq!(
        info.client_id.as_deref(),
        Some(server.confidential_client_id.as_str())
    );

    // Another refresh still works: the grant is healthy, so nothing was
    // ever refreshed twice with one token.
    manager.refresh(&key).await.unwrap();

    // Revocation, then the grant is dead at the server.
    let token = store_token(&store, &key).await;
    manager.revoke(&key).await.unwrap();
    assert!(
        manager.stored(&key).await.unwrap().is_none(),
        "deleted locally"
    );
    let err = manager
        .provider(&key.provider)
        .unwrap()
        .refresh(&token)
        .await
        .unwrap_err();
    assert!(err.is_reauthorization_required(), "{err}");
}

#[tokio::test]
async fn public_client_logs_in_and_refreshes_with_pkce_only() {
    let server = OidcProvider::start().await;
    let p = provider(&server, &server.public_client_id, None, ClientAuth::None).await;
    let (manager, _) = manager(p);
    let key = login(&manager, &server).await;
    let before = manager.access_token(&key).await.unwrap();
    let after = manager.refresh(&key).await.unwrap();
    assert_ne!(before.secret(), after.secret());
}

#[tokio::test]
async fn client_secret_post_works() {
    let server = OidcProvider::start().await;
    let p = provider(
        &server,
        &server.post_client_id,
        Some(test_support::oidc_provider::POST_CLIENT_SECRET),
        ClientAuth::ClientSecretPost,
    )
    .await;
    let (manager, _) = manager(p);
    let key = login(&manager, &server).await;
    manager.refresh(&key).await.unwrap();
}

#[tokio::test]
async fn a_wrong_client_secret_is_a_configuration_error_without_the_secret() {
    let server = OidcProvider::start().await;
    let wrong = "wrong-secret-3f9a8b7c6d5e4f3a2b1c";
    let p = provider(
        &server,
        &server.confidential_client_id,
        Some(wrong),
        ClientAuth::ClientSecretBasic,
    )
    .await;
    let pending = p.authorize(AuthorizeRequest::new()).unwrap();
    let callback = Callback::parse(
        browser_login(&pending.authorize_url, &server.redirect_uri)
            .await
            .as_str(),
    )
    .unwrap();
    let err = p.exchange_code(&pending, &callback).await.unwrap_err();
    assert!(matches!(err, Error::Configuration { .. }), "{err}");
    assert!(err.to_string().contains("invalid_client"), "{err}");
    assert!(!format!("{err} {err:?}").contains(wrong));
}

#[tokio::test]
async fn a_wrong_state_is_rejected_before_any_token_request() {
    let server = OidcProvider::start().await;
    let p = confidential(&server).await;
    let pending = p.authorize(AuthorizeRequest::new()).unwrap();
    let callback_url = browser_login(&pending.authorize_url, &server.redirect_uri).await;
    let forged = with_param(&callback_url, "state", Some("forged"));
    let err = p
        .exchange_code(&pending, &Callback::parse(forged.as_str()).unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    // Codes are single use: if the forged callback had reached the token
    // endpoint, this exchange would fail.
    p.exchange_code(&pending, &Callback::parse(callback_url.as_str()).unwrap())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_tampered_iss_is_rejected_before_any_token_request() {
    let server = OidcProvider::start().await;
    let p = confidential(&server).await;
    let pending = p.authorize(AuthorizeRequest::new()).unwrap();
    let callback_url = browser_login(&pending.authorize_url, &server.redirect_uri).await;
    assert!(
        callback_url.query_pairs().any(|(k, _)| k == "iss"),
        "the server sends iss"
    );
    let tampered = with_param(&callback_url, "iss", Some("https://evil.example"));
    let err = p
        .exchange_code(&pending, &Callback::parse(tampered.as_str()).unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    assert!(err.to_string().contains("RFC 9207"), "{err}");
    // A missing iss is refused too, since the server promises one.
    let stripped = with_param(&callback_url, "iss", None);
    assert!(
        p.exchange_code(&pending, &Callback::parse(stripped.as_str()).unwrap())
            .await
            .is_err()
    );
    p.exchange_code(&pending, &Callback::parse(callback_url.as_str()).unwrap())
        .await
        .unwrap();
}

#[tokio::test]
async fn reusing_a_rotated_refresh_token_is_reauthorization_required() {
    // Shows the peer is strict, so the lifecycle tests above prove that the
    // manager never refreshes twice with one token.
    let server = OidcProvider::start().await;
    let p = confidential(&server).await;
    let pending = p.authorize(AuthorizeRequest::new()).unwrap();
    let callback = Callback::parse(
        browser_login(&pending.authorize_url, &server.redirect_uri)
            .await
            .as_str(),
    )
    .unwrap();
    let token = p.exchange_code(&pending, &callback).await.unwrap();
    p.refresh(&token).await.unwrap();
    let err = p.refresh(&token).await.unwrap_err();
    assert!(err.is_reauthorization_required(), "{err}");
    let refresh = token.refresh_token().unwrap().expose_secret().to_owned();
    assert!(
        !format!("{err} {err:?}").contains(&refresh),
        "the error shows the refresh token"
    );
}

async fn store_refresh(store: &MemoryTokenStore, key: &TokenKey) -> String {
    store_token(store, key)
        .await
        .refresh_token()
        .unwrap()
        .expose_secret()
        .to_owned()
}

async fn store_token(store: &MemoryTokenStore, key: &TokenKey) -> auth_core::TokenSet {
    auth_core::TokenStore::load(store, key)
        .await
        .unwrap()
        .unwrap()
        .token
        .unwrap()
}

/// The callback URL with one parameter replaced, or removed with `None`.
fn with_param(url: &url::Url, name: &str, value: Option<&str>) -> url::Url {
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .filter_map(|(k, v)| match (k == name, value) {
            (true, Some(new)) => Some((k.into_owned(), new.to_owned())),
            (true, None) => None,
            (false, _) => Some((k.into_owned(), v.into_owned())),
        })
        .collect();
    let mut changed = url.clone();
    changed.query_pairs_mut().clear().extend_pairs(pairs);
    changed
}
