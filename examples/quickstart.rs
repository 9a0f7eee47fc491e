//! Run: cargo run -p examples --example quickstart
//!
//! The shortest useful program: a `TokenManager` with the legacy Fitbit
//! provider (a "server" app) over the file store. It logs a user in, gets a
//! valid access token, shows whose it is and when it expires, and forces a
//! refresh. It runs against the in-process emulator, which consents at once,
//! and it never prints a token.
#![allow(
    clippy::print_stdout,
    reason = "an example reports to the person running it on stdout"
)]

use std::error::Error;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use auth_core::{AuthorizeRequest, Callback, TokenManager, TokenStore};
use auth_emulator::{Emulator, demo};
use auth_fitbit::{FitbitProvider, Scope};
use examples::{check, play_browser};
use secrecy::ExposeSecret as _;
use store_file::FileTokenStore;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    examples::report(run().await)
}

async fn run() -> Result<(), Box<dyn Error>> {
    // Fitbit's servers, played locally; a token directory that goes away at exit.
    let emulator = Emulator::builder().with_demo_clients().start().await?;
    let dir = tempfile::tempdir()?;

    let fitbit = FitbitProvider::builder(demo::FITBIT_SERVER_CLIENT_ID)
        .client_secret(demo::FITBIT_SERVER_CLIENT_SECRET)
        .redirect_uri(demo::REDIRECT_URI)
        .default_scopes([Scope::Activity, Scope::Sleep])
        .base_url(emulator.base_url())?
        .build()?;
    let store = FileTokenStore::open(dir.path().join("tokens"))?;
    let manager = TokenManager::builder(Arc::new(store))
        .provider(Arc::new(fitbit))
        .build();

    // Log in: send the user to the authorize URL, and finish with where they come back.
    let pending = manager.begin_authorization(&"fitbit".parse()?, AuthorizeRequest::new())?;
    let callback = Callback::parse(&play_browser(&pending.authorize_url).await?)?;
    let (key, _) = manager.complete_authorization(&pending, &callback).await?;
    println!("logged in: {key}");

    // The call an app makes before every API request: served from the cache
    // while valid, refreshed first when it is about to expire.
    let token = manager.access_token(&key).await?;
    let user_id = auth_fitbit::user_id(token.token_set()).ok_or("the token names no user")?;
    let expires_at = token.expires_at().ok_or("the token has no expiry")?;
    let left = expires_at.duration_since(SystemTime::now())?;
    println!(
        "access token [redacted, {} chars] for user_id {user_id}, expires in {}",
        token.secret().len(),
        humantime::format_duration(Duration::from_secs(left.as_secs()))
    );

    // Force a refresh, as after an API answered 401. Fitbit rotates the pair;
    // the manager saves the new one before handing it out.
    let refreshed = manager.force_refresh(&key, &token).await?;
    check(
        refreshed.secret() != token.secret(),
        "the refresh brought a new access token",
    )?;
    check(
        emulator.counters().fitbit_token_refresh == 1,
        "it took exactly one refresh request",
    )?;

    // The next run of the program (a new store over the same directory) finds the new pair.
    let reopened = FileTokenStore::open(dir.path().join("tokens"))?;
    let stored = reopened
        .load(&key)
        .await?
        .ok_or("the token was not saved")?;
    let same = stored
        .token
        .as_ref()
        .is_some_and(|t| t.access_token().expose_secret() == refreshed.secret());
    check(same, "the refreshed pair is on disk")?;
    println!("quickstart: all checks passed");
    // Waits for refreshes and saves in progress, so none is cut off.
    manager.shutdown(Duration::from_secs(30)).await?;
    Ok(())
}
