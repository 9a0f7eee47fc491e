//! Runnable examples for app builders: pick the one closest to your app,
//! run it, then copy the file.
//!
//! | you are building | read | run |
//! |---|---|---|
//! | any app: the first few lines | `quickstart`: the Fitbit provider over the file store; log in, get a token, refresh | `cargo run -p examples --example quickstart` |
//! | an app that calls an API for its users | `api_client`: one `reqwest` client with the `auth-reqwest` middleware for every user; a rejected token is refreshed once and the request retried | `cargo run -p examples --example api_client` |
//! | a web app where users connect their accounts | `web_app`: the `auth-axum` connect routes and page with Fitbit, Google Health and a standards provider (`-- --serve` prints the address to open) | `cargo run -p examples --example web_app` |
//! | a service on several hosts | `multi_host`: two hosts on one PostgreSQL database ask for the same users at once; one refresh per user | `TOKEN_KEEPER_PG_URL=postgres://… cargo run -p examples --example multi_host` |
//! | the move off legacy Fitbit | `migration`: the dual-provider bridge, users moved to Google Health one at a time | `cargo run -p examples --example migration` |
//! | a service acting as itself | `service_token`: the client credentials grant | `cargo run -p examples --example service_token` |
//! | a tool on a machine with no browser | `device_login`: the device flow (RFC 8628) | `cargo run -p examples --example device_login` |
//! | support for a provider with quirks | `custom_provider`: `auth-oauth2` hooks for a server with its own error body | `cargo run -p examples --example custom_provider` |
//! | your own store over your own database | `custom_store`: a `TokenStore` from scratch that passes the conformance suite | `cargo run -p examples --example custom_store` |
//!
//! Every example runs offline against the in-process emulator
//! (`auth-emulator`), needs no input, and exits 0 only if what it shows
//! actually happened; `multi_host` also needs a PostgreSQL database. None of
//! them ever prints a token. `cargo test -p examples` builds and runs each
//! of them (the test `run_examples`), checking its exit status and that it
//! printed no secret.
//!
//! This library holds only the helpers the examples share: playing the
//! user's browser, checking a claim, and reporting an error.

#![allow(clippy::print_stdout, clippy::print_stderr)] // `check` reports each claim on stdout, `report` an error on stderr

use std::error::Error;
use std::process::ExitCode;

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

/// An error as a person reads it: its message, then each underlying cause
/// on a line of its own (`caused by: connection refused`), never Rust's
/// `Debug` form.
pub fn error_text(err: &(dyn Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let line = cause.to_string();
        // Some errors repeat their cause in their own message.
        if !text.contains(&line) {
            text.push_str("\n  caused by: ");
            text.push_str(&line);
        }
        source = cause.source();
    }
    text
}

/// The end of an example's `main`: exit 0 on success; on failure print
/// `error: ` and the [`error_text`] on stderr and exit 1.
pub fn report(result: Result<(), Box<dyn Error>>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", error_text(err.as_ref()));
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(std::io::Error);

    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("the token store cannot be reached")
        }
    }

    impl Error for Outer {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn an_error_reads_as_words_with_its_root_cause() {
        let err = Outer(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "connection refused",
        ));
        assert_eq!(
            error_text(&err),
            "the token store cannot be reached\n  caused by: connection refused"
        );
        assert!(!error_text(&err).contains("Outer"), "Debug form leaked");
    }
}
