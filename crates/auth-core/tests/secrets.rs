//! No public type of auth-core shows a secret in `Debug` or `Display`.

use std::time::{Duration, SystemTime};

use auth_core::testing::FakeProvider;
use auth_core::{
    AccessToken, Callback, Error, PendingAuthorization, ProviderId, TokenKey, TokenManager,
    TokenSet,
};
use store_memory::MemoryTokenStore;

const SECRETS: [&str; 5] = [
    "ACCESS-c9f1e2d3b4a5",
    "REFRESH-7a6b5c4d3e2f",
    "CODE-0a1b2c3d4e5f",
    "STATE-f0e1d2c3b4a5",
    "VERIFIER-1234abcd5678",
];

fn assert_clean(label: &str, text: &str) {
    for secret in SECRETS {
        assert!(!text.contains(secret), "{label} shows {secret}: {text}");
    }
}

#[tokio::test]
async fn no_secret_in_debug_or_display() {
    let token = TokenSet::new(SECRETS[0], "Bearer", SystemTime::now())
        .with_refresh_token(SECRETS[1])
        .with_expires_in(Duration::from_secs(3600));
    assert_clean("TokenSet", &format!("{token:?}"));

    let store = MemoryTokenStore::new();
    let key = TokenKey::parse("fake", "a").unwrap();
    let lease = auth_core::TokenStore::lock(&store, &key, std::time::Duration::from_secs(1))
        .await
        .unwrap();
    lease
        .save_and_release(&token, auth_core::Expect::Absent, auth_core::Record::Clear)
        .await
        .unwrap();
    let manager = TokenManager::builder(std::sync::Arc::new(store.clone()))
        .provider(std::sync::Arc::new(FakeProvider::new("fake")))
        .build();
    let access: AccessToken = manager.access_token(&key).await.unwrap();
    assert_eq!(access.secret(), SECRETS[0]);
    assert_clean("AccessToken", &format!("{access:?}"));
    assert_clean("TokenManager", &format!("{manager:?}"));
    assert_clean("MemoryTokenStore", &format!("{store:?}"));

    let callback = Callback::parse(&format!("code={}&state={}", SECRETS[2], SECRETS[3])).unwrap();
    assert_clean("Callback", &format!("{callback:?}"));

    let pending = PendingAuthorization::new(
        ProviderId::new("fake").unwrap(),
        None,
        url::Url::parse(&format!("https://example.com/auth?state={}", SECRETS[3])).unwrap(),
        SECRETS[3],
        Some(SECRETS[4].to_owned()),
        None,
        vec![],
        SystemTime::now(),
    );
    assert_clean("PendingAuthorization", &format!("{pending:?}"));

    // A state mismatch names neither state.
    let other = Callback::parse("code=x&state=STATE-other").unwrap();
    let err = pending.verify_state(&other).unwrap_err();
    assert_clean("state mismatch", &format!("{err} {err:?}"));

    // A server message echoing a token is redacted before it becomes an error.
    let echoed = format!("Refresh token invalid: {}", SECRETS[1]);
    let err = Error::protocol(
        Some(400),
        "bad answer",
        auth_core::redact::redact(&echoed, &[SECRETS[1]]),
    );
    assert_clean("Error", &format!("{err} {err:?}"));
}
