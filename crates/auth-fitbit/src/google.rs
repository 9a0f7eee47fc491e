//! [`GoogleHealthProvider`]: Google OAuth 2.0 for the Google Health API,
//! which replaced the legacy Fitbit Web API on 2026-11-02.

use std::fmt;
use std::sync::Arc;

use auth_core::{Clock, Error, ProviderId, Result, SystemClock};
use auth_oauth2::{HttpConfig, OAuth2Provider};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::fitbit::GOOGLE_HEALTH;

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

/// Google's OAuth endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoogleEndpoints {
    /// The issuer identifier, checked against the callback's `iss`.
    pub issuer: String,
    /// `https://accounts.google.com/o/oauth2/v2/auth`.
    pub authorize: Url,
    /// `https://oauth2.googleapis.com/token`.
    pub token: Url,
    /// `https://oauth2.googleapis.com/revoke`.
    pub revoke: Url,
    /// `https://oauth2.googleapis.com/tokeninfo`.
    pub tokeninfo: Url,
    /// The Google Health API's identity endpoint,
    /// `https://health.googleapis.com/v4/users/me/identity`.
    pub identity: Url,
}

impl Default for GoogleEndpoints {
    fn default() -> Self {
        Self {
            issuer: "https://accounts.google.com".to_owned(),
            authorize: Url::parse("https://accounts.google.com/o/oauth2/v2/auth")
                .expect("static URL"),
            token: Url::parse("https://oauth2.googleapis.com/token").expect("static URL"),
            revoke: Url::parse("https://oauth2.googleapis.com/revoke").expect("static URL"),
            tokeninfo: Url::parse("https://oauth2.googleapis.com/tokeninfo").expect("static URL"),
            identity: Url::parse("https://health.googleapis.com/v4/users/me/identity")
                .expect("static URL"),
        }
    }
}

impl GoogleEndpoints {
    /// All endpoints under one base URL, with Google's paths (for a local
    /// emulator); the issuer is the base URL without its trailing slash.
    ///
    /// # Errors
    ///
    /// [`Error::Configuration`] when `base` cannot be joined.
    pub fn with_base(base: &Url) -> Result<Self> {
        let join = |path: &str| {
            base.join(path)
                .map_err(|e| Error::configuration(format!("cannot join {path} to {base}: {e}")))
        };
        Ok(Self {
            issuer: base.as_str().trim_end_matches('/').to_owned(),
            authorize: join("o/oauth2/v2/auth")?,
            token: join("token")?,
            revoke: join("revoke")?,
            tokeninfo: join("tokeninfo")?,
            identity: join("v4/users/me/identity")?,
        })
    }
}

/// Google OAuth 2.0 for the Google Health API.
///
/// Always asks for `access_type=offline` (else Google issues no refresh
/// token); pass `prompt("consent")` in the [`AuthorizeRequest`](auth_core::AuthorizeRequest) to get a
/// refresh token again for a user who already consented. Refresh responses
/// carry no refresh token: the [`TokenManager`](auth_core::TokenManager)
/// keeps the stored one. Google's `tokeninfo` serves as introspection.
///
/// Google does not name the user in its token response, so give the
/// account in the [`AuthorizeRequest`](auth_core::AuthorizeRequest) (the migration helper uses the
/// legacy Fitbit account id).
#[derive(Clone)]
pub struct GoogleHealthProvider {
    inner: OAuth2Provider,
    identity: Url,
}

impl fmt::Debug for GoogleHealthProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GoogleHealthProvider")
            .field("oauth2", &self.inner)
            .finish()
    }
}

/// Builds a [`GoogleHealthProvider`].
pub struct GoogleHealthProviderBuilder {
    id: String,
    client_id: String,
    client_secret: SecretString,
    redirect_uri: Option<String>,
    scopes: Vec<String>,
    endpoints: GoogleEndpoints,
    http: HttpConfig,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for GoogleHealthProviderBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GoogleHealthProviderBuilder")
            .field("id", &self.id)
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

impl GoogleHealthProviderBuilder {
    /// Registers under another provider id than `google-health`.
    #[must_use]
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    /// The redirect URI registered for the client, matched exactly.
    #[must_use]
    pub fn redirect_uri(mut self, uri: impl Into<String>) -> Self {
        self.redirect_uri = Some(uri.into());
        self
    }

    /// Scopes requested when an authorization names none; see [`scopes`].
    #[must_use]
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Other endpoints than Google's (an emulator).
    #[must_use]
    pub fn endpoints(mut self, endpoints: GoogleEndpoints) -> Self {
        self.endpoints = endpoints;
        self
    }

    /// HTTP timeouts and body cap.
    #[must_use]
    pub fn http_config(mut self, http: HttpConfig) -> Self {
        self.http = http;
        self
    }

    /// Stamps tokens with this clock (for tests).
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Checks the configuration and builds the provider.
    ///
    /// # Errors
    ///
    /// [`Error::Configuration`] for an invalid id, an empty secret or a
    /// non-https endpoint (loopback excepted).
    pub fn build(self) -> Result<GoogleHealthProvider> {
        let id = ProviderId::new(&self.id)?;
        if self.client_secret.expose_secret().is_empty() {
            return Err(Error::configuration(format!(
                "provider {id}: the Google client secret is empty"
            )));
        }
        // Everything but the scopes asked for by default is the catalogue
        // entry's: client_secret_post, access_type=offline, tokeninfo as
        // introspection, and refresh tokens that do not rotate (so a
        // refreshed access token may be used before its save lands).
        let mut spec = crate::entry(GOOGLE_HEALTH)?;
        let e = &mut spec.endpoints;
        e.authorize = self.endpoints.authorize.to_string();
        e.token = self.endpoints.token.to_string();
        e.revoke = Some(self.endpoints.revoke.to_string());
        e.introspect = Some(self.endpoints.tokeninfo.to_string());
        e.issuer = Some(self.endpoints.issuer.clone());
        let mut builder = auth_oauth2::catalogue::builder(id.as_str(), &spec, self.client_id)?
            .client_secret(self.client_secret)
            .default_scopes(self.scopes)
            .http_config(self.http)
            .clock(self.clock);
        if let Some(uri) = self.redirect_uri {
            builder = builder.redirect_uri(uri);
        }
        auth_oauth2::require_secure("identity", &self.endpoints.identity)?;
        Ok(GoogleHealthProvider {
            inner: builder.build()?,
            identity: self.endpoints.identity,
        })
    }
}

impl GoogleHealthProvider {
    /// Starts configuring a Google OAuth client (a "Web application" client).
    pub fn builder(
        client_id: impl Into<String>,
        client_secret: impl Into<SecretString>,
    ) -> GoogleHealthProviderBuilder {
        GoogleHealthProviderBuilder {
            id: GOOGLE_HEALTH.to_owned(),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            redirect_uri: None,
            scopes: Vec::new(),
            endpoints: GoogleEndpoints::default(),
            http: HttpConfig::default(),
            clock: Arc::new(SystemClock),
        }
    }

    /// The standards provider underneath.
    pub fn oauth2(&self) -> &OAuth2Provider {
        &self.inner
    }

    /// Asks the Google Health API who `token` belongs to: the user's
    /// `legacyUserId` (their Fitbit user id, if they have Fitbit history)
    /// and `healthUserId`. The token is sent to the identity endpoint only.
    ///
    /// # Errors
    ///
    /// [`Error::Transient`] when the endpoint cannot be reached or answers
    /// 5xx or 429; [`Error::Protocol`] for other answers.
    pub async fn identity(&self, token: &auth_core::TokenSet) -> Result<crate::HealthIdentity> {
        crate::identity::fetch(self.inner.http_client(), &self.identity, token).await
    }

    /// RFC 6750's challenge, which Google's APIs send with a 401.
    fn token_rejected(&self, response: &auth_core::ResourceResponse<'_>) -> bool {
        response.is_rfc6750_invalid_token()
    }
}

crate::delegate::forward_token_provider!(GoogleHealthProvider);
