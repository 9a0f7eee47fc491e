//! [`GoogleHealthProvider`]: Google OAuth 2.0 for the Google Health API,
//! which replaced the legacy Fitbit Web API on 2026-11-02. It is the
//! catalogue entry `google-health` on the generic provider, with no hooks
//! of its own: the identity endpoint is an API call, not OAuth.

use auth_core::{Error, Result, TokenSet};
use auth_oauth2::{OAuth2Provider, OAuth2ProviderBuilder};
use secrecy::SecretString;

use crate::fitbit::GOOGLE_HEALTH;

/// The Google Health API's identity endpoint, under the provider's first
/// API base URL (`https://health.googleapis.com`).
pub const IDENTITY_PATH: &str = "v4/users/me/identity";

/// Google Health API scopes (`https://www.googleapis.com/auth/googlehealth.*`).
pub mod scopes {
    /// The common prefix of every Google Health scope.
    pub const PREFIX: &str = "https://www.googleapis.com/auth/googlehealth.";
    /// Activity and fitness, read.
    pub const ACTIVITY_AND_FITNESS_READONLY: &str =
        "https://www.googleapis.com/auth/googlehealth.activity_and_fitness.readonly";
    /// Activity and fitness, write.
    pub const ACTIVITY_AND_FITNESS_WRITEONLY: &str =
        "https://www.googleapis.com/auth/googlehealth.activity_and_fitness.writeonly";
    /// Health metrics and measurements, read.
    pub const HEALTH_METRICS_AND_MEASUREMENTS_READONLY: &str =
        "https://www.googleapis.com/auth/googlehealth.health_metrics_and_measurements.readonly";
    /// Health metrics and measurements, write.
    pub const HEALTH_METRICS_AND_MEASUREMENTS_WRITEONLY: &str =
        "https://www.googleapis.com/auth/googlehealth.health_metrics_and_measurements.writeonly";
    /// Location, read.
    pub const LOCATION_READONLY: &str =
        "https://www.googleapis.com/auth/googlehealth.location.readonly";
    /// Nutrition, read.
    pub const NUTRITION_READONLY: &str =
        "https://www.googleapis.com/auth/googlehealth.nutrition.readonly";
    /// Nutrition, write.
    pub const NUTRITION_WRITEONLY: &str =
        "https://www.googleapis.com/auth/googlehealth.nutrition.writeonly";
    /// Profile, read.
    pub const PROFILE_READONLY: &str =
        "https://www.googleapis.com/auth/googlehealth.profile.readonly";
    /// Profile, write.
    pub const PROFILE_WRITEONLY: &str =
        "https://www.googleapis.com/auth/googlehealth.profile.writeonly";
    /// Settings, read.
    pub const SETTINGS_READONLY: &str =
        "https://www.googleapis.com/auth/googlehealth.settings.readonly";
    /// Settings, write.
    pub const SETTINGS_WRITEONLY: &str =
        "https://www.googleapis.com/auth/googlehealth.settings.writeonly";
    /// Sleep, read.
    pub const SLEEP_READONLY: &str = "https://www.googleapis.com/auth/googlehealth.sleep.readonly";
    /// Sleep, write.
    pub const SLEEP_WRITEONLY: &str =
        "https://www.googleapis.com/auth/googlehealth.sleep.writeonly";
    /// Electrocardiogram readings, read.
    pub const ECG_READONLY: &str = "https://www.googleapis.com/auth/googlehealth.ecg.readonly";
    /// Irregular rhythm notifications, read.
    pub const IRN_READONLY: &str = "https://www.googleapis.com/auth/googlehealth.irn.readonly";
}

/// Google OAuth 2.0 for the Google Health API: the catalogue entry
/// `google-health` on the generic [`OAuth2Provider`].
///
/// This type only starts configurations: [`builder`](Self::builder) returns
/// the generic [`OAuth2ProviderBuilder`] with the entry's facts set:
/// `client_secret_post`, `access_type=offline` on every authorization (else
/// Google issues no refresh token), `tokeninfo` as introspection, the
/// issuer, and refresh tokens that do not rotate. Pass `prompt("consent")`
/// in the [`AuthorizeRequest`](auth_core::AuthorizeRequest) to get a refresh
/// token again for a user who already consented. Refresh responses carry
/// no refresh token: the [`TokenManager`](auth_core::TokenManager) keeps the
/// stored one.
///
/// Google does not name the user in its token response, so give the
/// account in the [`AuthorizeRequest`](auth_core::AuthorizeRequest) (the
/// migration helper uses the legacy Fitbit account id), or ask
/// [`identity`](Self::identity).
///
/// ```
/// use auth_fitbit::{GoogleHealthProvider, scopes};
/// let google = GoogleHealthProvider::builder("1234.apps.googleusercontent.com", "client-secret")
///     .redirect_uri("https://app.example/callback")
///     .default_scopes([scopes::SLEEP_READONLY])
///     .build()
///     .unwrap();
/// assert_eq!(auth_core::TokenProvider::id(&google).as_str(), "google-health");
/// ```
#[derive(Debug, Clone, Copy)]
pub enum GoogleHealthProvider {}

impl GoogleHealthProvider {
    /// Starts configuring a Google OAuth client (a "Web application"
    /// client) from the built-in `google-health` entry.
    ///
    /// # Panics
    ///
    /// Never: the built-in catalogue always holds a valid `google-health`
    /// entry (the catalogue's tests check it).
    pub fn builder(
        client_id: impl Into<String>,
        client_secret: impl Into<SecretString>,
    ) -> OAuth2ProviderBuilder {
        let spec = auth_catalogue::lookup(GOOGLE_HEALTH)
            .expect("the built-in catalogue has google-health");
        auth_oauth2::catalogue::builder(GOOGLE_HEALTH, spec, client_id)
            .expect("the built-in google-health entry builds")
            .client_secret(client_secret)
    }

    /// Asks the Google Health API, through `google`'s HTTP client, who
    /// `token` belongs to: the user's `legacyUserId` (their Fitbit user id,
    /// if they have Fitbit history) and `healthUserId`. The token is sent to
    /// the identity endpoint only: [`IDENTITY_PATH`] under `google`'s first
    /// API base URL.
    ///
    /// # Errors
    ///
    /// [`Error::Configuration`] when `google` has no API base URL;
    /// [`Error::Transient`] when the endpoint cannot be reached or answers
    /// 5xx or 429; [`Error::Protocol`] for other answers.
    pub async fn identity(
        google: &OAuth2Provider,
        token: &TokenSet,
    ) -> Result<crate::HealthIdentity> {
        let endpoint = identity_endpoint(google)?;
        crate::identity::fetch(google.http_client(), &endpoint, token).await
    }
}

/// [`IDENTITY_PATH`] under the provider's first API base URL.
fn identity_endpoint(google: &OAuth2Provider) -> Result<url::Url> {
    let id = auth_core::TokenProvider::id(google);
    let base = google.api_base_urls().first().ok_or_else(|| {
        Error::configuration(format!(
            "provider {id}: no API base URL, so no Google Health identity endpoint"
        ))
    })?;
    let base = url::Url::parse(&format!("{}/", base.trim_end_matches('/')))
        .map_err(|e| Error::configuration(format!("provider {id}: API base URL {base:?}: {e}")))?;
    base.join(IDENTITY_PATH).map_err(|e| {
        Error::configuration(format!(
            "provider {id}: cannot join {IDENTITY_PATH} to {base}: {e}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_identity_endpoint_is_under_the_api_base_url() {
        let google = GoogleHealthProvider::builder("id", "secret")
            .build()
            .unwrap();
        assert_eq!(
            identity_endpoint(&google).unwrap().as_str(),
            "https://health.googleapis.com/v4/users/me/identity"
        );
        let local: url::Url = "http://127.0.0.1:9/".parse().unwrap();
        let google = GoogleHealthProvider::builder("id", "secret")
            .base_url(&local)
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(
            identity_endpoint(&google).unwrap().as_str(),
            "http://127.0.0.1:9/v4/users/me/identity"
        );
    }

    #[test]
    fn an_empty_secret_is_refused() {
        let err = GoogleHealthProvider::builder("id", "").build().unwrap_err();
        assert!(matches!(err, Error::Configuration { .. }), "{err}");
    }
}
