//! Runnable examples for app builders. The examples are the point, each a
//! single file to read and copy; this library holds only the two helpers
//! they share: playing the user's browser, and checking a claim.
//!
//! Every example runs offline against the in-process emulator
//! (`auth-emulator`) (`multi_host` also needs a PostgreSQL database), needs no input, and exits 0 only if what it shows
//! actually happened. None of them ever prints a token.
//!
//! | Example | Run | What it shows |
//! |---|---|---|
//! | `quickstart` | `cargo run -p examples --example quickstart` | a `TokenManager` with the Fitbit provider and the file store: login, access token, forced refresh |
//! | `custom_provider` | `cargo run -p examples --example custom_provider` | a new provider from `auth-oauth2` hooks, against a small server with its own error body |
//! | `custom_store` | `cargo run -p examples --example custom_store` | a `TokenStore` written from scratch that passes the conformance suite, then drives a manager |
//! | `web_app` | `cargo run -p examples --example web_app` | an axum app on `auth-axum`: its users connect Fitbit, Google Health and a standards OAuth 2.0 server from one page, and move from Fitbit to Google Health (`-- --serve` keeps it running) |
//! | `multi_host` | `TOKEN_KEEPER_PG_URL=postgres://… cargo run -p examples --example multi_host` | two hosts (managers with separate pools) on one PostgreSQL database refresh the same users at once: one refresh per user |
//! | `migration` | `cargo run -p examples --example migration` | the dual-provider bridge: users moved from legacy Fitbit to Google Health one at a time |
//!
//! `cargo test -p examples` builds and runs each of them (the test
//! `run_examples`), checking its exit status and that it printed no secret.

#![allow(clippy::print_stdout)] // `check` reports each claim it verified on stdout

use std::error::Error;

/// Plays the user's browser: opens the authorize URL (the emulator consents
/// at once) and returns where it redirects to, the app's callback URL with
/// the code and state.
///
/// # Errors
///
/// When the request fails or the page does not redirect.
pub async fn play_browser(authorize_url: &url::Url) -> Result<String, Box<dyn Error>> {
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let answer = browser.get(authorize_url.as_str()).send().await?;
    let location = answer
        .headers()
        .get(reqwest::header::LOCATION)
        .ok_or_else(|| {
            format!(
                "the consent page answered {} without a redirect",
                answer.status()
            )
        })?;
    Ok(location.to_str()?.to_owned())
}

/// Fails the run unless `ok`: an example exits 0 only if what it shows
/// happened. Prints `ok: what` when it did.
///
/// # Errors
///
/// When `ok` is false, naming `what`.
pub fn check(ok: bool, what: &str) -> Result<(), Box<dyn Error>> {
    if ok {
        println!("  ok: {what}");
        Ok(())
    } else {
        Err(format!("check failed: {what}").into())
    }
}
