//! Run: cargo run -p examples --example device_login
//!
//! A login from a machine with no browser: the device authorization grant
//! (RFC 8628), against the emulated Google server. The program shows a code
//! and a URL, a person enters the code there on any device (played here by
//! a plain HTTP request to the emulator's device page), and the program's
//! poller, which waits as the server asks, gets the token; the manager
//! saves it like any login and refreshes it later. Google allows only a
//! few scopes on this flow (sign-in, Drive's app files, YouTube): the
//! Google Health scopes are refused with `invalid_scope`, and the emulator
//! does the same. It never prints a token or the device code.
#![allow(
    clippy::print_stdout,
    reason = "an example reports to the person running it on stdout"
)]

use std::error::Error;
use std::sync::Arc;
use std::time::Duration;

use auth_core::{Error as AuthError, TokenKey, TokenManager};
use auth_emulator::{Emulator, demo};
use auth_oauth2::{ClientAuth, HttpConfig, OAuth2Provider};
use examples::check;
use store_memory::MemoryTokenStore;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    examples::report(run().await)
}

async fn run() -> Result<(), Box<dyn Error>> {
    // Google asks for a 5 s interval; the emulator is told 1 s to keep this short.
    let emulator = Emulator::builder()
        .with_demo_clients()
        .google_device_interval(Duration::from_secs(1))
        .start()
        .await?;
    let issuer = emulator.google_endpoints().issuer;
    // Discovery finds the device authorization endpoint.
    let provider = OAuth2Provider::discover(
        "google".parse()?,
        demo::GOOGLE_CLIENT_ID,
        &issuer,
        HttpConfig::default(),
    )
    .await?
    .client_secret(demo::GOOGLE_CLIENT_SECRET)
    .client_auth(ClientAuth::ClientSecretPost)
    .default_scopes(["openid", "email"])
    .build()?;
    let manager = TokenManager::builder(Arc::new(MemoryTokenStore::new()))
        .provider(Arc::new(provider.clone()))
        .build();

    // Health scopes are not allowed on the device flow, here as at Google.
    let health = ["https://www.googleapis.com/auth/googlehealth.sleep.readonly".to_owned()];
    let refused = provider.begin_device_authorization(&health).await;
    check(
        matches!(&refused, Err(AuthError::Configuration { message, .. }) if message.contains("invalid_scope")),
        "Google Health scopes are refused on the device flow",
    )?;

    let authorization = provider.begin_device_authorization(&[]).await?;
    println!("To sign in, open {}", authorization.verification_uri());
    println!("and enter the code {}", authorization.user_code());

    // The person, on their phone, while the device polls.
    let person = async {
        reqwest::Client::new()
            .post(authorization.verification_uri())
            .form(&[("user_code", authorization.user_code())])
            .send()
            .await?
            .error_for_status()
            .map(|_| ())
    };
    let (token, person) = tokio::join!(provider.wait_for_device_token(&authorization), person);
    person?;
    let token = token?;
    let key = TokenKey::parse("google", "tv-in-the-lounge")?;
    let saved = manager.save_authorization(&key, token).await?;
    println!(
        "signed in: {key}, access token [redacted, {} chars]",
        saved.secret().len()
    );
    check(
        emulator.counters().google_token_device_code >= 1,
        "the device polled the token endpoint",
    )?;

    // Later, a refresh through the manager, as for any login.
    let refreshed = manager.refresh(&key).await?;
    check(
        refreshed.secret() != saved.secret(),
        "the token was refreshed",
    )?;
    check(
        emulator.counters().google_token_refresh == 1,
        "with one refresh request",
    )?;
    println!("device_login: all checks passed");
    manager.shutdown(Duration::from_secs(30)).await?;
    emulator.shutdown().await;
    Ok(())
}
