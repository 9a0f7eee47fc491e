//! Shared setup for auth-fitbit's tests: an emulator, both providers and a
//! manager over the memory store.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use auth_core::{
    AuthorizeRequest, Callback, ProviderId, RetryPolicy, TokenKey, TokenManager, TokenSet,
};
use auth_emulator::{Emulator, IssuedTokens, demo};
use auth_fitbit::{AppType, FitbitProvider, GoogleHealthProvider, Scope};
use auth_oauth2::OAuth2Provider;
use store_memory::MemoryTokenStore;

pub struct World {
    pub emulator: Emulator,
    pub store: MemoryTokenStore,
    pub manager: TokenManager,
    pub fitbit: Arc<OAuth2Provider>,
    pub google: Arc<OAuth2Provider>,
}

pub fn fitbit_id() -> ProviderId {
    "fitbit".parse().unwrap()
}

pub fn google_id() -> ProviderId {
    "google-health".parse().unwrap()
}

pub async fn world(app_type: AppType) -> World {
    world_with(Emulator::builder().with_demo_clients(), app_type).await
}

pub async fn world_with(builder: auth_emulator::EmulatorBuilder, app_type: AppType) -> World {
    let emulator = builder.start().await.expect("emulator");
    let mut fitbit = FitbitProvider::builder(match app_type {
        AppType::Server | AppType::Personal => demo::FITBIT_SERVER_CLIENT_ID,
        AppType::Client => demo::FITBIT_PUBLIC_CLIENT_ID,
    })
    .client_auth(app_type.client_auth())
    .redirect_uri(demo::REDIRECT_URI)
    .default_scopes([Scope::Activity, Scope::Sleep, Scope::Heartrate])
    .base_url(emulator.base_url())
    .unwrap();
    if app_type != AppType::Client {
        fitbit = fitbit.client_secret(demo::FITBIT_SERVER_CLIENT_SECRET);
    }
    let fitbit = Arc::new(fitbit.build().unwrap());
    let google = Arc::new(
        GoogleHealthProvider::builder(demo::GOOGLE_CLIENT_ID, demo::GOOGLE_CLIENT_SECRET)
            .redirect_uri(demo::REDIRECT_URI)
            .default_scopes([auth_fitbit::scopes::SLEEP_READONLY])
            .base_url(emulator.base_url())
            .unwrap()
            .build()
            .unwrap(),
    );
    let store = MemoryTokenStore::new();
    let manager = TokenManager::builder(Arc::new(store.clone()))
        .provider(fitbit.clone())
        .provider(google.clone())
        .retry_policy(RetryPolicy::new(4, Duration::from_millis(5)))
        .build();
    World {
        emulator,
        store,
        manager,
        fitbit,
        google,
    }
}

/// Plays the browser: the emulator consents, and we read the redirect.
pub async fn browse(url: &url::Url) -> Callback {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let answer = client.get(url.as_str()).send().await.unwrap();
    assert_eq!(
        answer.status().as_u16(),
        302,
        "the authorize page did not redirect"
    );
    let location = answer.headers()["location"].to_str().unwrap().to_owned();
    Callback::parse(&location).unwrap()
}

pub async fn login(world: &World, provider: &ProviderId, request: AuthorizeRequest) -> TokenKey {
    let pending = world
        .manager
        .begin_authorization(provider, request)
        .unwrap();
    let callback = browse(&pending.authorize_url).await;
    world
        .manager
        .complete_authorization(&pending, &callback)
        .await
        .unwrap()
        .0
}

/// Stores seeded tokens as if they had expired an hour ago.
pub async fn store_expired(world: &World, key: &TokenKey, issued: &IssuedTokens) {
    let mut token = TokenSet::new(
        issued.access_token.clone(),
        "Bearer",
        SystemTime::now() - Duration::from_secs(3 * 3600),
    )
    .with_expires_in(Duration::from_secs(3600))
    .with_scopes(issued.scopes.clone())
    .with_extra("user_id", serde_json::json!(issued.user_id));
    if let Some(refresh) = &issued.refresh_token {
        token = token.with_refresh_token(refresh.clone());
    }
    world.store.put(key, &token).await.unwrap();
}

pub fn fitbit_key(user: &str) -> TokenKey {
    TokenKey::new(fitbit_id(), user.parse().unwrap())
}

pub fn google_key(user: &str) -> TokenKey {
    TokenKey::new(google_id(), user.parse().unwrap())
}
