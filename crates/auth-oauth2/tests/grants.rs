//! Client credentials (RFC 6749 §4.4) and device authorization (RFC 8628)
//! against oidc-provider, an OpenID Certified server, on loopback.
//!
//! The device logins are completed as a person would: through the server's
//! own pages (enter the user code, sign in, consent), with a cookie jar.
//! The only waiting on real time is the polling interval the server asks
//! for (1 s here, and 5 s more after `slow_down`), as RFC 8628 requires.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use auth_core::secrecy::ExposeSecret;
use auth_core::{Error, TokenKey, TokenManager, TokenSet, TokenStore};
use auth_oauth2::{ClientAuth, ClientCredentials, DeviceAuthorization, HttpConfig, OAuth2Provider};
use store_memory::MemoryTokenStore;
use test_support::oidc_provider::{
    API_RESOURCE, DEVICE_CLIENT_ID, DeviceDecision, OidcProvider, SERVICE_CLIENT_ID,
    SERVICE_CLIENT_SECRET, device_browser,
};

async fn service(server: &OidcProvider, secret: &str, grant: ClientCredentials) -> OAuth2Provider {
    OAuth2Provider::discover(
        "service".parse().unwrap(),
        SERVICE_CLIENT_ID,
        &server.issuer,
        HttpConfig::default(),
    )
    .await
    .expect("discovery")
    .client_secret(secret)
    .client_auth(ClientAuth::ClientSecretBasic)
    .client_credentials(grant)
    .build()
    .expect("provider")
}

async fn device(server: &OidcProvider) -> OAuth2Provider {
    OAuth2Provider::discover(
        "device".parse().unwrap(),
        DEVICE_CLIENT_ID,
        &server.issuer,
        HttpConfig::default(),
    )
    .await
    .expect("discovery")
    .client_auth(ClientAuth::None)
    .default_scopes(["openid", "api:read"])
    .build()
    .expect("provider")
}

fn manager(provider: OAuth2Provider) -> (TokenManager, MemoryTokenStore) {
    let store = MemoryTokenStore::new();
    let manager = TokenManager::builder(Arc::new(store.clone()))
        .provider(Arc::new(provider))
        .build();
    (manager, store)
}

fn service_key() -> TokenKey {
    TokenKey::parse("service", SERVICE_CLIENT_ID).unwrap()
}

fn device_key() -> TokenKey {
    TokenKey::parse("device", "user-1").unwrap()
}

// ---- client credentials ---------------------------------------------------

#[tokio::test]
async fn client_credentials_issue_a_token_with_no_login() {
    let server = OidcProvider::start().await;
    let grant = ClientCredentials::new().scopes(["api:read"]);
    let (manager, store) = manager(service(&server, SERVICE_CLIENT_SECRET, grant).await);
    let key = service_key();

    let token = manager.access_token(&key).await.unwrap();
    assert!(token.token_set().scopes().contains("api:read"));
    assert!(token.token_set().refresh_token().is_none());
    assert!(token.expires_at().is_some());
    let stored = store.load(&key).await.unwrap().expect("saved");
    assert_eq!(
        stored
            .token
            .as_ref()
            .unwrap()
            .access_token()
            .expose_secret(),
        token.secret()
    );

    // The server knows the token, and whose it is.
    let info = manager.introspect(&key).await;
    // The service client may not introspect (it has no such grant); a
    // refusal is a configuration answer, never a flag.
    if let Ok(info) = info {
        assert!(info.active);
    }
    // Cached: a second call makes no request.
    let before = server.token_requests().await;
    manager.access_token(&key).await.unwrap();
    assert_eq!(server.token_requests().await, before);
}

#[tokio::test]
async fn client_credentials_send_the_resource_parameter() {
    let server = OidcProvider::start().await;
    let grant = ClientCredentials::new()
        .scopes(["api:read", "api:write"])
        .resource(API_RESOURCE);
    let provider = service(&server, SERVICE_CLIENT_SECRET, grant).await;
    let token = auth_core::TokenProvider::mint(&provider, &service_key())
        .await
        .unwrap();
    // oidc-provider narrows the scopes to the resource server's and
    // answers with them.
    assert!(token.scopes().contains("api:read"), "{:?}", token.scopes());
    // An unknown resource is refused by the server as a configuration
    // problem.
    let wrong = ClientCredentials::new().resource("https://unknown.example.test/");
    let provider = service(&server, SERVICE_CLIENT_SECRET, wrong).await;
    let err = auth_core::TokenProvider::mint(&provider, &service_key())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Configuration { .. } | Error::Protocol { .. }),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_callers_on_an_expired_client_credentials_token_make_one_request() {
    let server = OidcProvider::start().await;
    let grant = ClientCredentials::new().scopes(["api:read"]);
    let (manager, store) = manager(service(&server, SERVICE_CLIENT_SECRET, grant).await);
    let key = service_key();

    // Nothing stored yet: a hundred callers, one token request.
    let before = server.token_requests().await;
    let first = hundred_callers(&manager, &key).await;
    assert_eq!(server.token_requests().await - before, 1);

    // An expired token stored (another process's, say): one request again.
    let expired = TokenSet::new(
        "expired-access-token".to_owned(),
        "Bearer",
        SystemTime::now() - Duration::from_secs(7200),
    )
    .with_expires_at(Some(SystemTime::now() - Duration::from_secs(3600)));
    store.put(&key, &expired).await.unwrap();
    manager.invalidate(&key);
    let before = server.token_requests().await;
    let second = hundred_callers(&manager, &key).await;
    assert_eq!(server.token_requests().await - before, 1);
    assert_ne!(first, second);
    assert_ne!(second, "expired-access-token");
    let stored = store.load(&key).await.unwrap().unwrap();
    assert_eq!(
        stored
            .token
            .as_ref()
            .unwrap()
            .access_token()
            .expose_secret(),
        second
    );
}

/// A hundred concurrent `access_token` calls; they must all get one token.
async fn hundred_callers(manager: &TokenManager, key: &TokenKey) -> String {
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let manager = manager.clone();
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            manager
                .access_token(&key)
                .await
                .map(|t| t.secret().to_owned())
        }));
    }
    let mut secrets = std::collections::HashSet::new();
    for task in tasks {
        secrets.insert(task.await.unwrap().unwrap());
    }
    assert_eq!(secrets.len(), 1, "callers got different tokens");
    secrets.into_iter().next().unwrap()
}

#[tokio::test]
async fn a_wrong_client_secret_is_configuration_and_flags_nothing() {
    let server = OidcProvider::start().await;
    let wrong = "wrong-service-secret-7d1c9e";
    let grant = ClientCredentials::new().scopes(["api:read"]);
    let (manager, store) = manager(service(&server, wrong, grant).await);
    let key = service_key();
    let err = manager.access_token(&key).await.unwrap_err();
    assert!(matches!(err, Error::Configuration { .. }), "{err}");
    assert!(err.to_string().contains("invalid_client"), "{err}");
    assert!(!format!("{err} {err:?}").contains(wrong));
    assert!(store.load(&key).await.unwrap().is_none(), "nothing stored");
    // Again: still a configuration error, never "reauthorization required".
    let again = manager.access_token(&key).await.unwrap_err();
    assert!(matches!(again, Error::Configuration { .. }), "{again}");
}

#[tokio::test]
async fn a_public_client_cannot_be_configured_for_client_credentials() {
    let err = OAuth2Provider::builder("svc".parse().unwrap(), "id")
        .endpoints(auth_oauth2::Endpoints::new(
            "https://id.example/authorize".parse().unwrap(),
            "https://id.example/token".parse().unwrap(),
        ))
        .client_auth(ClientAuth::None)
        .client_credentials(ClientCredentials::new())
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::Configuration { .. }), "{err}");
}

// ---- device authorization --------------------------------------------------

fn shows_no_device_code(auth: &DeviceAuthorization, text: &str) {
    let code = auth.device_code().expose_secret();
    assert!(!text.contains(code), "the device code leaked: {text}");
}

#[tokio::test]
async fn a_device_login_through_the_servers_pages_is_saved_and_refreshed() {
    let server = OidcProvider::start().await;
    let provider = device(&server).await;
    assert!(
        provider.endpoints().device_authorization.is_some(),
        "discovered"
    );
    let (manager, store) = manager(provider.clone());

    let auth = provider.begin_device_authorization(&[]).await.unwrap();
    assert!(!auth.user_code().is_empty());
    assert!(auth.verification_uri().starts_with(server.issuer_str()));
    assert!(
        auth.verification_uri_complete()
            .is_some_and(|u| u.contains("user_code=")),
        "{auth:?}"
    );
    assert_eq!(auth.interval(), Duration::from_secs(1));
    assert!(auth.expires_in() > Duration::from_secs(500));
    shows_no_device_code(&auth, &format!("{auth:?}"));

    // The device polls while the person signs in on "another device".
    let polling = provider.wait_for_device_token(&auth);
    let person = async {
        let page = device_browser(
            auth.verification_uri(),
            auth.user_code(),
            DeviceDecision::Approve,
        )
        .await;
        assert!(page.contains("Sign-in Success"), "{page}");
    };
    let (token, ()) = tokio::join!(polling, person);
    let token = token.unwrap();
    assert!(token.refresh_token().is_some());
    assert!(token.scopes().contains("api:read"));

    let key = device_key();
    let saved = manager.save_authorization(&key, token).await.unwrap();
    assert_eq!(
        manager.access_token(&key).await.unwrap().secret(),
        saved.secret()
    );
    let first_refresh = refresh_of(&store, &key).await;

    // Later: a refresh, with rotation, through the manager.
    let refreshed = manager.refresh(&key).await.unwrap();
    assert_ne!(refreshed.secret(), saved.secret());
    assert_ne!(refresh_of(&store, &key).await, first_refresh);
    let info = manager.introspect(&key).await.unwrap();
    assert!(info.active);
    assert_eq!(info.subject.as_deref(), Some("user-1"));
}

#[tokio::test]
async fn the_complete_verification_uri_works_too() {
    let server = OidcProvider::start().await;
    let provider = device(&server).await;
    let auth = provider
        .begin_device_authorization(&["openid".to_owned()])
        .await
        .unwrap();
    let complete = auth.verification_uri_complete().unwrap().to_owned();
    // The person never types the code: it is in the link.
    let page = device_browser(&complete, "", DeviceDecision::Approve).await;
    assert!(page.contains("Sign-in Success"), "{page}");
    let token = provider.wait_for_device_token(&auth).await.unwrap();
    assert!(token.scopes().contains("openid"));
}

#[tokio::test]
async fn slow_down_adds_five_seconds_to_the_interval() {
    let server = OidcProvider::start().await;
    let provider = device(&server).await;
    let auth = provider.begin_device_authorization(&[]).await.unwrap();
    let page = device_browser(
        auth.verification_uri(),
        auth.user_code(),
        DeviceDecision::Approve,
    )
    .await;
    assert!(page.contains("Sign-in Success"), "{page}");
    server.slow_down_next(1).await;
    let before = server.token_requests().await;
    let started = Instant::now();
    let token = provider.wait_for_device_token(&auth).await.unwrap();
    let took = started.elapsed();
    assert!(token.refresh_token().is_some());
    // 1 s, slow_down, then 1 + 5 s: two polls, at least 7 s.
    assert_eq!(server.token_requests().await - before, 2);
    assert!(took >= Duration::from_secs(7), "{took:?}");
}

#[tokio::test]
async fn a_person_who_aborts_ends_the_polling_with_access_denied() {
    let server = OidcProvider::start().await;
    let provider = device(&server).await;
    let auth = provider.begin_device_authorization(&[]).await.unwrap();
    let polling = provider.wait_for_device_token(&auth);
    let person = device_browser(
        auth.verification_uri(),
        auth.user_code(),
        DeviceDecision::Abort,
    );
    let (outcome, page) = tokio::join!(polling, person);
    assert!(page.contains("AbortedError"), "{page}");
    let err = outcome.unwrap_err();
    assert!(
        matches!(&err, Error::AuthorizationDenied { error, .. } if error == "access_denied"),
        "{err}"
    );
    shows_no_device_code(&auth, &format!("{err} {err:?}"));
}

#[tokio::test]
async fn an_expired_device_code_ends_the_polling_with_expired_token() {
    let server = OidcProvider::start().await;
    let provider = device(&server).await;
    let auth = provider.begin_device_authorization(&[]).await.unwrap();
    server.expire_device_codes().await;
    let err = provider.wait_for_device_token(&auth).await.unwrap_err();
    assert!(
        matches!(&err, Error::AuthorizationDenied { error, .. } if error == "expired_token"),
        "{err}"
    );
    assert!(
        err.to_string().contains("start the device login again"),
        "{err}"
    );
    shows_no_device_code(&auth, &format!("{err} {err:?}"));
}

#[tokio::test]
async fn polling_can_be_cancelled() {
    let server = OidcProvider::start().await;
    let provider = device(&server).await;
    let auth = provider.begin_device_authorization(&[]).await.unwrap();
    let (cancel, cancelled) = tokio::sync::oneshot::channel::<()>();
    let before = server.token_requests().await;
    let polling = provider.wait_for_device_token(&auth);
    tokio::spawn(async move {
        // The user pressed Ctrl-C before the first poll was due.
        let _ = cancel.send(());
    });
    tokio::select! {
        _ = polling => panic!("the poller finished without an answer from the person"),
        _ = cancelled => {}
    }
    assert_eq!(
        server.token_requests().await,
        before,
        "no poll after cancelling"
    );
}

async fn refresh_of(store: &MemoryTokenStore, key: &TokenKey) -> String {
    store
        .load(key)
        .await
        .unwrap()
        .unwrap()
        .token
        .unwrap()
        .refresh_token()
        .unwrap()
        .expose_secret()
        .to_owned()
}
