//! Run: cargo run -p examples --example api_client
//!
//! An app calls the API, not the token endpoint. One `reqwest` client with
//! the `auth-reqwest` middleware serves every user of the app and both
//! Fitbit faces: each request names its account in its extensions, and the
//! middleware adds that account's token, for the allowed origin only.
//!
//! The story, against the in-process emulator's resource endpoints
//! (`GET /1/user/-/profile.json` on legacy Fitbit, `GET
//! /v4/users/me/identity` on Google Health):
//!
//! 1. Two users: A11CE1 on legacy Fitbit, B0B222 on Google Health. One
//!    client reads both, with no refresh.
//! 2. The Fitbit server drops A11CE1's access token. The API answers 401
//!    with Fitbit's `invalid_token` body; the middleware refreshes once,
//!    retries once, and the app sees only the 200.
//! 3. The same happens to B0B222 at Google (a 401 with RFC 6750's
//!    `error="invalid_token"` challenge).
//! 4. Retirement: legacy Fitbit answers 410. The API's 410 comes back as it
//!    is; once A11CE1's token expires, the middleware sends nothing and
//!    returns `ProviderRetired` naming google-health, while B0B222 is
//!    unaffected.
#![allow(
    clippy::print_stdout,
    reason = "an example reports to the person running it on stdout"
)]

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use auth_core::{
    AuthorizeRequest, Callback, Error, ManualClock, ProviderId, TokenKey, TokenManager,
};
use auth_emulator::{Emulator, Endpoint, demo};
use auth_fitbit::{FitbitProvider, GoogleHealthProvider, Scope, scopes};
use auth_reqwest::{BearerAuth, auth_error};
use examples::{check, play_browser};
use store_memory::MemoryTokenStore;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    examples::report(run().await)
}

async fn run() -> Result<(), Box<dyn StdError>> {
    let emulator = Emulator::builder().with_demo_clients().start().await?;
    // The app's clock, moved forward by the example instead of waiting.
    let clock = Arc::new(ManualClock::new(SystemTime::now()));
    let fitbit = FitbitProvider::builder(demo::FITBIT_SERVER_CLIENT_ID)
        .client_secret(demo::FITBIT_SERVER_CLIENT_SECRET)
        .redirect_uri(demo::REDIRECT_URI)
        .default_scopes([Scope::Profile, Scope::Sleep])
        .base_url(emulator.base_url())?
        .clock(clock.clone())
        .build()?;
    let google = GoogleHealthProvider::builder(demo::GOOGLE_CLIENT_ID, demo::GOOGLE_CLIENT_SECRET)
        .redirect_uri(demo::REDIRECT_URI)
        .default_scopes([scopes::PROFILE_READONLY])
        .base_url(emulator.base_url())?
        .clock(clock.clone())
        .build()?;
    let manager = TokenManager::builder(Arc::new(MemoryTokenStore::new()))
        .provider(Arc::new(fitbit))
        .provider(Arc::new(google))
        .clock(clock.clone())
        .build();
    let legacy = ProviderId::new(auth_fitbit::FITBIT)?;
    let health = ProviderId::new(auth_fitbit::GOOGLE_HEALTH)?;

    // One client for everyone. The emulator plays api.fitbit.com and
    // health.googleapis.com on one loopback origin; a real app allows
    // https://api.fitbit.com and https://health.googleapis.com.
    let auth =
        BearerAuth::per_request(manager.clone()).allow_origin(emulator.base_url().as_str())?;
    let client = auth_reqwest::client(auth)?;
    let profile = emulator.endpoint_url(Endpoint::FitbitProfile);
    let identity = emulator.endpoint_url(Endpoint::GoogleHealthIdentity);

    println!("1. two users, two providers, one client");
    emulator.set_next_user("A11CE1");
    let alice = log_in(&manager, &legacy, AuthorizeRequest::new()).await?;
    emulator.set_next_user("B0B222");
    let bob = log_in(
        &manager,
        &health,
        AuthorizeRequest::new().account("B0B222".parse()?),
    )
    .await?;
    let body: serde_json::Value = client
        .get(profile.clone())
        .with_extension(alice.clone())
        .send()
        .await?
        .json()
        .await?;
    println!(
        "   {alice}: profile of Fitbit user {}",
        body["user"]["encodedId"]
    );
    check(
        body["user"]["encodedId"] == "A11CE1",
        "Alice reads her own Fitbit profile",
    )?;
    let body: serde_json::Value = client
        .get(identity.clone())
        .with_extension(bob.clone())
        .send()
        .await?
        .json()
        .await?;
    println!(
        "   {bob}: Google Health user {}, legacy Fitbit id {}",
        body["healthUserId"], body["legacyUserId"]
    );
    check(
        body["legacyUserId"] == "B0B222",
        "Bob reads his own identity",
    )?;
    let counters = emulator.counters();
    check(
        counters.fitbit_token_refresh + counters.google_token_refresh == 0,
        "fresh tokens need no refresh",
    )?;

    println!("2. Fitbit drops A11CE1's access token: 401 -> one refresh -> one retry");
    let before = manager.access_token(&alice).await?;
    emulator.invalidate_access_token(before.secret());
    let answer = client
        .get(profile.clone())
        .with_extension(alice.clone())
        .send()
        .await?;
    let status = answer.status();
    println!("   the app sees HTTP {status}");
    let counters = emulator.counters();
    println!(
        "   the server saw {} profile requests and {} refresh",
        counters.fitbit_profile, counters.fitbit_token_refresh
    );
    check(status == 200, "the retried request succeeds")?;
    check(
        counters.fitbit_profile == 3,
        "one rejected request and one retry",
    )?;
    check(counters.fitbit_token_refresh == 1, "exactly one refresh")?;

    println!("3. Google drops B0B222's access token: the same, through RFC 6750's challenge");
    let before = manager.access_token(&bob).await?;
    emulator.invalidate_access_token(before.secret());
    let status = client
        .get(identity.clone())
        .with_extension(bob.clone())
        .send()
        .await?
        .status();
    println!("   the app sees HTTP {status}");
    check(status == 200, "the retried request succeeds")?;
    check(
        emulator.counters().google_token_refresh == 1,
        "exactly one Google refresh",
    )?;

    println!("4. retirement day: legacy Fitbit answers 410");
    emulator.set_retired(true);
    let status = client
        .get(profile.clone())
        .with_extension(alice.clone())
        .send()
        .await?
        .status();
    println!("   with a still-valid token, the API's own answer comes back: HTTP {status}");
    check(status == 410, "the API's 410 is returned as it is")?;
    clock.advance(Duration::from_secs(9 * 3600));
    let requests = emulator.counters().fitbit_profile;
    let err = client
        .get(profile)
        .with_extension(alice.clone())
        .send()
        .await
        .err()
        .ok_or("the request should have failed")?;
    let retired = matches!(auth_error(&err), Some(Error::ProviderRetired { .. }));
    println!("   once the token expires, the middleware sends nothing: {err}");
    check(retired, "the error keeps its class: ProviderRetired")?;
    check(
        emulator.counters().fitbit_profile == requests,
        "no request went out without a token",
    )?;
    let status = client
        .get(identity)
        .with_extension(bob.clone())
        .send()
        .await?
        .status();
    check(status == 200, "Google Health users are unaffected")?;
    println!("   {bob} still reads Google Health: HTTP {status}");

    manager.shutdown(Duration::from_secs(5)).await?;
    emulator.shutdown().await;
    println!("api_client: all checks passed");
    Ok(())
}

/// Logs a user in, playing the browser.
async fn log_in(
    manager: &TokenManager,
    provider: &ProviderId,
    request: AuthorizeRequest,
) -> Result<TokenKey, Box<dyn StdError>> {
    let pending = manager.begin_authorization(provider, request)?;
    let callback = Callback::parse(&play_browser(&pending.authorize_url).await?)?;
    Ok(manager.complete_authorization(&pending, &callback).await?.0)
}
