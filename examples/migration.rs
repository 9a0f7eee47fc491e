//! Run: cargo run -p examples --example migration
//!
//! The move from legacy Fitbit to Google Health with the dual-provider
//! bridge that Google's migration guide asks for. Both providers are
//! registered with one `TokenManager`, and each user keeps one account id
//! under both; the app reads every token through `migration::Bridge`, which
//! takes Google Health when the user has moved and legacy Fitbit otherwise.
//!
//! The story, against the in-process emulator:
//!
//! 1. Three users are on legacy Fitbit, one already signed up with Google
//!    Health; the bridge serves all four.
//! 2. `migration::plan` lists who still has to move, with the mapped Google
//!    scopes (and the legacy scopes that have no successor).
//! 3. One user moves: they consent at Google, and their legacy grant is
//!    revoked while Fitbit still answers.
//! 4. Retirement day: the emulator switches the legacy endpoints off (410),
//!    a day passes, and the bridge gives `ProviderRetired`, naming
//!    google-health, for a user who has not moved. Their stored token is
//!    kept; the moved user is unaffected.
//! 5. The others move one at a time; their legacy tokens are removed
//!    locally (revoking now fails with 410). Everyone ends on Google Health.
#![allow(
    clippy::print_stdout,
    reason = "an example reports to the person running it on stdout"
)]

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use auth_core::{
    AccountId, AuthorizeRequest, Callback, Error, ManualClock, ProviderId, TokenKey, TokenManager,
};
use auth_emulator::{Emulator, demo};
use auth_fitbit::migration::{self, Access, Bridge};
use auth_fitbit::{FitbitProvider, GoogleHealthProvider, Scope, scopes};
use examples::{check, play_browser};
use store_memory::MemoryTokenStore;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    examples::report(run().await)
}

async fn run() -> Result<(), Box<dyn StdError>> {
    let emulator = Emulator::builder().with_demo_clients().start().await?;
    // The app's clock, moved forward by the example instead of waiting a day.
    let clock = Arc::new(ManualClock::new(SystemTime::now()));
    let fitbit = FitbitProvider::builder(demo::FITBIT_SERVER_CLIENT_ID)
        .client_secret(demo::FITBIT_SERVER_CLIENT_SECRET)
        .redirect_uri(demo::REDIRECT_URI)
        .default_scopes([Scope::Activity, Scope::Heartrate, Scope::Sleep])
        .base_url(emulator.base_url())?
        .clock(clock.clone())
        .build()?;
    let google = GoogleHealthProvider::builder(demo::GOOGLE_CLIENT_ID, demo::GOOGLE_CLIENT_SECRET)
        .redirect_uri(demo::REDIRECT_URI)
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
    let bridge = Bridge::new(manager.clone(), legacy.clone(), health.clone());

    println!("1. three users on legacy Fitbit, one already on Google Health");
    for (user, legacy_scopes) in [
        ("A11CE1", &["activity", "sleep"][..]),
        ("B0B222", &["activity", "heartrate", "social"][..]),
        ("DA7E44", &["sleep", "weight"][..]),
    ] {
        emulator.set_next_user(user);
        let request = AuthorizeRequest::new().scopes(legacy_scopes.iter().copied());
        let key = log_in(&manager, &legacy, request).await?;
        println!("   {key} logged in with {legacy_scopes:?}");
    }
    let carol = AccountId::new("CA7013")?;
    emulator.set_next_user(carol.as_str());
    let request = AuthorizeRequest::new()
        .account(carol.clone())
        .scopes([scopes::SLEEP_READONLY]);
    println!("   {} signed up", log_in(&manager, &health, request).await?);
    for account in ["A11CE1", "B0B222", "DA7E44", "CA7013"] {
        let (provider, _token) = bridge.access_token(&AccountId::new(account)?).await?;
        println!("   the bridge serves {account} from {provider}");
    }
    check(
        on(&bridge, "CA7013").await? == health,
        "the new user is served by Google Health",
    )?;

    println!("2. who still has to move");
    let moves = migration::plan(&manager, &legacy, &health, Access::ReadOnly).await?;
    for step in &moves {
        let google: Vec<_> = step
            .google_scopes
            .iter()
            .map(|s| s.trim_start_matches(scopes::PREFIX))
            .collect();
        let unmapped: Vec<_> = step.unmapped.iter().map(ToString::to_string).collect();
        println!(
            "   {}: {} legacy scopes -> googlehealth.{{{}}}{}",
            step.account,
            step.legacy_scopes.len(),
            google.join(", "),
            if unmapped.is_empty() {
                String::new()
            } else {
                format!("; no successor for {}", unmapped.join(", "))
            }
        );
    }
    check(moves.len() == 3, "the plan lists the three legacy users")?;
    let bob = moves
        .iter()
        .find(|step| step.account.as_str() == "B0B222")
        .ok_or("B0B222 is not in the plan")?;
    check(
        bob.unmapped == [Scope::Social],
        "social has no Google Health successor",
    )?;

    println!("3. A11CE1 moves while legacy Fitbit still answers");
    let alice = moves.into_iter().next().ok_or("the plan is empty")?;
    emulator.set_next_user(alice.account.as_str());
    log_in(&manager, &health, alice.request).await?;
    check(
        on(&bridge, "A11CE1").await? == health,
        "the bridge now serves A11CE1 from Google Health",
    )?;
    manager
        .revoke(&TokenKey::new(legacy.clone(), alice.account.clone()))
        .await?;
    check(
        emulator.counters().fitbit_revoke == 1,
        "A11CE1's legacy grant is revoked at Fitbit",
    )?;

    println!("4. retirement day: the legacy endpoints answer 410 Gone");
    emulator.set_retired(true);
    let a_day = Duration::from_secs(24 * 3600);
    emulator.advance_time(a_day);
    clock.advance(a_day);
    let bob_id = AccountId::new("B0B222")?;
    let err = bridge
        .access_token(&bob_id)
        .await
        .err()
        .ok_or("a legacy refresh succeeded after retirement")?;
    println!("   B0B222: {err}");
    check(
        matches!(&err, Error::ProviderRetired { successor, .. } if successor == auth_fitbit::GOOGLE_HEALTH),
        "a user not yet moved gets ProviderRetired naming google-health",
    )?;
    let kept = manager
        .stored(&TokenKey::new(legacy.clone(), bob_id))
        .await?;
    check(
        kept.is_some(),
        "their legacy token is kept (it holds their scopes for the move)",
    )?;
    let (provider, _token) = bridge.access_token(&alice.account).await?;
    check(
        provider == health && emulator.counters().google_token_refresh == 1,
        "A11CE1 is unaffected: Google Health refreshed the day-old token",
    )?;

    println!("5. the others move, one at a time");
    for step in migration::plan(&manager, &legacy, &health, Access::ReadOnly).await? {
        emulator.set_next_user(step.account.as_str());
        let key = log_in(&manager, &health, step.request).await?;
        let old = TokenKey::new(legacy.clone(), step.account.clone());
        let revoked = manager.revoke(&old).await;
        check(
            matches!(revoked, Err(Error::ProviderRetired { .. })),
            &format!("{}: revoking at Fitbit is no longer possible", step.account),
        )?;
        manager.remove(&old).await?;
        println!("   {key} moved; its legacy token removed locally");
    }

    let left = migration::plan(&manager, &legacy, &health, Access::ReadOnly).await?;
    check(left.is_empty(), "nobody is left to move")?;
    check(
        manager.list(Some(&legacy)).await?.is_empty(),
        "no legacy token remains",
    )?;
    for account in ["A11CE1", "B0B222", "CA7013", "DA7E44"] {
        let (provider, _token) = bridge.access_token(&AccountId::new(account)?).await?;
        check(
            provider == health,
            &format!("{account} is on Google Health"),
        )?;
    }
    println!("migration: all checks passed");
    // Waits for refreshes and saves in progress, so none is cut off.
    manager.shutdown(Duration::from_secs(30)).await?;
    Ok(())
}

/// Sends one user through `provider`'s consent and stores the token.
async fn log_in(
    manager: &TokenManager,
    provider: &ProviderId,
    request: AuthorizeRequest,
) -> Result<TokenKey, Box<dyn StdError>> {
    let pending = manager.begin_authorization(provider, request)?;
    let callback = Callback::parse(&play_browser(&pending.authorize_url).await?)?;
    let (key, _token) = manager.complete_authorization(&pending, &callback).await?;
    Ok(key)
}

/// Which provider the bridge serves `account` from.
async fn on(bridge: &Bridge, account: &str) -> Result<ProviderId, Box<dyn StdError>> {
    let (provider, _token) = bridge.access_token(&AccountId::new(account)?).await?;
    Ok(provider)
}
