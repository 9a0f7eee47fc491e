//! The demo's stand-in for a person at a browser: it opens the authorize
//! URL (the emulator consents at once), reads the redirect's `Location`
//! without following it, and then visits that callback URL, which is
//! authctl's own loopback server.
//!
//! The `Location` carries the authorization code, so it is never printed.

use reqwest::redirect::Policy;
use url::Url;

/// What the browser saw.
#[derive(Debug)]
pub(crate) struct Visit {
    /// Where the provider redirected to, without its query (no code).
    pub(crate) redirected_to: String,
    /// The HTTP status of authctl's callback page.
    pub(crate) callback_status: u16,
}

/// A browser that never follows redirects by itself.
#[derive(Debug, Clone)]
pub(crate) struct Browser {
    client: reqwest::Client,
}

impl Browser {
    /// A new browser.
    pub(crate) fn new() -> Result<Self, String> {
        reqwest::Client::builder()
            .redirect(Policy::none())
            .build()
            .map(|client| Self { client })
            .map_err(|e| format!("cannot build an HTTP client: {e}"))
    }

    /// Opens `authorize`, then follows its one redirect to the callback.
    pub(crate) async fn log_in(&self, authorize: Url) -> Result<Visit, String> {
        let consent = self
            .client
            .get(authorize.as_str())
            .send()
            .await
            .map_err(|e| format!("the consent page did not answer: {e}"))?;
        if !consent.status().is_redirection() {
            return Err(format!(
                "the consent page answered {} instead of redirecting back",
                consent.status()
            ));
        }
        let location = consent
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or("the consent page redirected without a Location")?;
        let callback = Url::parse(location)
            .map_err(|e| format!("the consent page redirected to an invalid URL ({e})"))?;
        let redirected_to = crate::login::endpoint_only(&callback);
        let page = self
            .client
            .get(callback.as_str())
            .send()
            .await
            .map_err(|e| format!("authctl's callback page did not answer: {e}"))?;
        Ok(Visit {
            redirected_to,
            callback_status: page.status().as_u16(),
        })
    }
}
