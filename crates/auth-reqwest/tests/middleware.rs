//! The middleware against a loopback resource server: where the token goes,
//! the refresh-and-retry on a rejected token, and the errors it returns.

mod support;

use std::time::{Duration, SystemTime};

use auth_core::testing::Scripted;
use auth_core::{Error, TokenSet};
use auth_reqwest::{BearerAuth, auth_error};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use support::{accounts, key, long_401_body, server};

/// A client over reqwest's default client (redirects followed).
fn default_client(auth: BearerAuth) -> ClientWithMiddleware {
    ClientBuilder::new(reqwest::Client::new())
        .with(auth)
        .build()
}

#[tokio::test]
async fn the_header_goes_only_to_allowed_origins() {
    let allowed = server().await;
    let other = server().await;
    let a = accounts(&["alice"]).await;
    let auth = BearerAuth::new(a.manager.clone(), key("alice"))
        .allow_origin(&allowed.base)
        .unwrap();
    let client = auth_reqwest::client(auth).unwrap();

    let ok = client
        .get(format!("{}/resource", allowed.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let elsewhere = client
        .get(format!("{}/resource", other.base))
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), 401);

    assert_eq!(
        allowed.seen.authorizations(),
        [Some("Bearer old-alice".to_owned())]
    );
    assert_eq!(other.seen.authorizations(), [None]);
}

#[tokio::test]
async fn no_token_over_plain_http_off_loopback() {
    let a = accounts(&["alice"]).await;
    let refused = BearerAuth::new(a.manager.clone(), key("alice"))
        .allow_origin("http://api.example.com")
        .unwrap_err();
    assert!(matches!(refused, Error::Configuration { .. }), "{refused}");

    // An https origin on loopback does not let the token go over http on
    // the same host and port.
    let server = server().await;
    let https_twin = server.base.replacen("http://", "https://", 1);
    let auth = BearerAuth::new(a.manager.clone(), key("alice"))
        .allow_origin(&https_twin)
        .unwrap();
    let client = auth_reqwest::client(auth).unwrap();
    let answer = client
        .get(format!("{}/resource", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
    assert_eq!(server.seen.authorizations(), [None]);
}

#[tokio::test]
async fn reqwest_strips_the_token_on_a_cross_origin_redirect() {
    let allowed = server().await;
    let other = server().await;
    let a = accounts(&["alice"]).await;
    let auth = BearerAuth::new(a.manager.clone(), key("alice"))
        .allow_origin(&allowed.base)
        .unwrap();
    let client = default_client(auth);

    // Same origin: reqwest follows and keeps the header.
    let same = format!("{}/redirect?to={}/resource", allowed.base, allowed.base);
    assert_eq!(client.get(same).send().await.unwrap().status(), 200);
    assert_eq!(
        allowed.seen.authorizations(),
        [
            Some("Bearer old-alice".to_owned()),
            Some("Bearer old-alice".to_owned())
        ]
    );

    // Another origin: reqwest follows, without the header.
    let away = format!("{}/redirect?to={}/resource", allowed.base, other.base);
    assert_eq!(client.get(away).send().await.unwrap().status(), 401);
    assert_eq!(allowed.seen.requests(), 3);
    assert_eq!(other.seen.authorizations(), [None]);
}

#[tokio::test]
async fn the_recommended_client_stops_at_a_cross_origin_redirect() {
    let allowed = server().await;
    let other = server().await;
    let a = accounts(&["alice"]).await;
    let auth = BearerAuth::new(a.manager.clone(), key("alice"))
        .allow_origin(&allowed.base)
        .unwrap();
    let client = auth_reqwest::client(auth).unwrap();

    let same = format!("{}/redirect?to={}/resource", allowed.base, allowed.base);
    assert_eq!(client.get(same).send().await.unwrap().status(), 200);
    let away = format!("{}/redirect?to={}/resource", allowed.base, other.base);
    let answer = client.get(away).send().await.unwrap();
    assert_eq!(answer.status(), 302);
    assert_eq!(other.seen.requests(), 0);
}

#[tokio::test]
async fn a_rejected_token_is_refreshed_once_and_the_request_retried_once() {
    let server = server().await;
    server.seen.reject("old-alice");
    let a = accounts(&["alice"]).await;
    let auth = BearerAuth::new(a.manager.clone(), key("alice"))
        .allow_origin(&server.base)
        .unwrap();
    let client = auth_reqwest::client(auth).unwrap();

    let answer = client
        .get(format!("{}/resource", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().await.unwrap(), "hello");
    assert_eq!(a.provider.refresh_calls(), 1);
    let seen = server.seen.authorizations();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].as_deref(), Some("Bearer old-alice"));
    assert_ne!(seen[1], seen[0]);

    // The new token is stored and used from now on, with no more refreshes.
    client
        .get(format!("{}/resource", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(a.provider.refresh_calls(), 1);
    assert_eq!(server.seen.requests(), 3);
}

#[tokio::test]
async fn a_second_401_goes_back_whole_and_as_it_is() {
    let server = server().await;
    *server.seen.reject_all.lock().unwrap() = true;
    let a = accounts(&["alice"]).await;
    let auth = BearerAuth::new(a.manager.clone(), key("alice"))
        .allow_origin(&server.base)
        .unwrap();
    let client = auth_reqwest::client(auth).unwrap();

    let answer = client
        .get(format!("{}/resource", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
    assert!(
        answer.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    assert_eq!(answer.text().await.unwrap(), long_401_body());
    assert_eq!(a.provider.refresh_calls(), 1);
    assert_eq!(server.seen.requests(), 2);
}

#[tokio::test]
async fn a_401_that_does_not_reject_the_token_is_not_retried() {
    let server = server().await;
    let a = accounts(&["alice"]).await;
    let auth = BearerAuth::new(a.manager.clone(), key("alice"))
        .allow_origin(&server.base)
        .unwrap();
    let client = auth_reqwest::client(auth).unwrap();
    // The caller's own Authorization header is left alone, and the 401
    // (a challenge without invalid_token) is not the middleware's business.
    let answer = client
        .get(format!("{}/resource", server.base))
        .header("authorization", "Basic dXNlcg==")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
    assert_eq!(
        server.seen.authorizations(),
        [Some("Basic dXNlcg==".to_owned())]
    );
    assert_eq!(a.provider.refresh_calls(), 0);
}

#[tokio::test]
async fn a_body_that_cannot_be_cloned_is_not_sent_twice() {
    let server = server().await;
    server.seen.reject("old-alice");
    let a = accounts(&["alice"]).await;
    let auth = BearerAuth::new(a.manager.clone(), key("alice"))
        .allow_origin(&server.base)
        .unwrap();
    let client = auth_reqwest::client(auth).unwrap();

    let streaming = reqwest::Body::wrap(String::from("a streamed upload"));
    let answer = client
        .post(format!("{}/resource", server.base))
        .body(streaming)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
    assert_eq!(server.seen.requests(), 1);
    // The rejected token was still replaced, for the next request.
    assert_eq!(a.provider.refresh_calls(), 1);
    let retry = client
        .post(format!("{}/resource", server.base))
        .body("bytes can be sent twice")
        .send()
        .await
        .unwrap();
    assert_eq!(retry.status(), 200);
    assert_eq!(server.seen.requests(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_401s_make_one_refresh() {
    let server = server().await;
    server.seen.reject("old-alice");
    let a = accounts(&["alice"]).await;
    let auth = BearerAuth::new(a.manager.clone(), key("alice"))
        .allow_origin(&server.base)
        .unwrap();
    let client = auth_reqwest::client(auth).unwrap();
    let url = format!("{}/resource", server.base);
    let answers = futures::future::join_all((0..100).map(|_| {
        let client = client.clone();
        let url = url.clone();
        tokio::spawn(async move { client.get(url).send().await.unwrap().status() })
    }))
    .await;
    for answer in answers {
        assert_eq!(answer.unwrap(), 200);
    }
    assert_eq!(a.provider.refresh_calls(), 1);
    let rejected = server
        .seen
        .authorizations()
        .iter()
        .filter(|a| a.as_deref() == Some("Bearer old-alice"))
        .count();
    assert_eq!(server.seen.requests(), 100 + rejected);
}

#[tokio::test]
async fn many_users_share_one_client() {
    let server = server().await;
    let a = accounts(&["alice", "bob"]).await;
    let auth = BearerAuth::per_request(a.manager.clone())
        .allow_origin(&server.base)
        .unwrap();
    let client = auth_reqwest::client(auth).unwrap();
    let url = format!("{}/resource", server.base);
    for name in ["alice", "bob"] {
        let answer = client
            .get(&url)
            .with_extension(key(name))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
    }
    assert_eq!(
        server.seen.authorizations(),
        [
            Some("Bearer old-alice".to_owned()),
            Some("Bearer old-bob".to_owned())
        ]
    );
    let err = client.get(&url).send().await.unwrap_err();
    assert!(
        matches!(auth_error(&err), Some(Error::InvalidInput { .. })),
        "{err}"
    );
    assert_eq!(
        server.seen.requests(),
        2,
        "a request without a key is not sent"
    );
}

#[tokio::test]
async fn errors_keep_their_class() {
    let server = server().await;
    let a = accounts(&[]).await;
    let expired = TokenSet::new(
        "expired",
        "Bearer",
        SystemTime::now() - Duration::from_secs(7200),
    )
    .with_refresh_token("refresh")
    .with_expires_in(Duration::from_secs(3600));
    let auth = BearerAuth::per_request(a.manager.clone())
        .allow_origin(&server.base)
        .unwrap();
    let client = auth_reqwest::client(auth).unwrap();
    let url = format!("{}/resource", server.base);

    // Nothing stored: reauthorization.
    let err = client
        .get(&url)
        .with_extension(key("nobody"))
        .send()
        .await
        .unwrap_err();
    let class = auth_error(&err).expect("a token error");
    assert!(class.is_reauthorization_required(), "{class}");

    // Retired provider.
    a.store.put(&key("retired"), &expired).await.unwrap();
    a.provider
        .script_refresh(Scripted::Fail(Error::ProviderRetired {
            provider: "fake".parse().unwrap(),
            successor: "fake-2".into(),
            message: "switched off".into(),
        }));
    let err = client
        .get(&url)
        .with_extension(key("retired"))
        .send()
        .await
        .unwrap_err();
    assert!(
        matches!(auth_error(&err), Some(Error::ProviderRetired { .. })),
        "{err}"
    );

    // Transient.
    a.store.put(&key("flaky"), &expired).await.unwrap();
    for _ in 0..10 {
        a.provider
            .script_refresh(Scripted::Fail(Error::transient("connection reset")));
    }
    let err = client
        .get(&url)
        .with_extension(key("flaky"))
        .send()
        .await
        .unwrap_err();
    let class = auth_error(&err).expect("a token error");
    assert!(class.is_transient(), "{class}");

    assert_eq!(
        server.seen.requests(),
        0,
        "no request goes out without a token"
    );
    assert!(err.is_middleware());
}

#[tokio::test]
async fn no_secret_in_debug_or_errors() {
    let server = server().await;
    *server.seen.reject_all.lock().unwrap() = true;
    let a = accounts(&["alice"]).await;
    let auth = BearerAuth::new(a.manager.clone(), key("alice"))
        .allow_origin(&server.base)
        .unwrap();
    let debug = format!("{auth:?}");
    assert!(debug.contains("127.0.0.1"), "{debug}");
    let client = auth_reqwest::client(auth).unwrap();
    let answer = client
        .get(format!("{}/resource", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
    let current = a.manager.access_token(&key("alice")).await.unwrap();
    let response_debug = format!("{answer:?}");
    for secret in ["old-alice", "refresh-alice", current.secret()] {
        assert!(!debug.contains(secret), "{debug}");
        assert!(!response_debug.contains(secret), "{response_debug}");
        assert!(!format!("{client:?}").contains(secret));
    }

    // A request whose token cannot be had: its error names the key only.
    a.manager.remove(&key("alice")).await.unwrap();
    let err = client
        .get(format!("{}/resource", server.base))
        .send()
        .await
        .unwrap_err();
    for text in [err.to_string(), format!("{err:?}")] {
        assert!(
            text.contains("fake/alice") || text.contains("alice"),
            "{text}"
        );
        for secret in ["old-alice", "refresh-alice", current.secret()] {
            assert!(!text.contains(secret), "{text}");
        }
    }
}
