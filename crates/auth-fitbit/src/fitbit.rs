//! [`FitbitProvider`]: the legacy Fitbit OAuth 2.0 server (the seed's
//! AuthorizationApi: `/oauth2/token`, `/1.1/oauth2/introspect`,
//! `/oauth2/revoke`), switched off by Google on 2026-11-02.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use auth_core::{
    AccountId, AuthorizeRequest, Clock, Error, Introspection, ProviderId, Result, SystemClock,
    TokenSet,
};
use auth_oauth2::{
    ClientAuth, Hooks, HttpConfig, IntrospectionContext, OAuth2Provider, ResponseMeta, ServerError,
    parse_retry_after,
};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::error_body::parse_fitbit_error;
use crate::rate_limit::{RateLimit, RateLimitCell};
use crate::scope::{Prompt, Scope};

/// How long Fitbit answers a replay of a spent refresh token with the same
/// new pair (its documentation says "about two minutes").
const FITBIT_REPLAY_WINDOW: std::time::Duration = std::time::Duration::from_secs(120);

/// The provider id Fitbit tokens are stored under by default.
pub const FITBIT: &str = "fitbit";
/// The id of the provider that replaces Fitbit: see
/// [`GoogleHealthProvider`](crate::GoogleHealthProvider).
pub const GOOGLE_HEALTH: &str = "google-health";
/// What a 410 from a legacy Fitbit endpoint means.
pub const RETIREMENT_NOTICE: &str = "The legacy Fitbit Web API and its OAuth endpoints were switched off \
     on 2026-11-02; Fitbit data is now reached through the Google Health API with Google OAuth, and \
     every user must consent again";

/// The access token lifetimes (seconds) a token request may ask for with
/// `expires_in`, per Fitbit's API description.
pub const EXPIRES_IN_CHOICES: [u64; 2] = [3600, 28800];

/// The extra token field that names the Fitbit user.
pub const USER_ID: &str = "user_id";

/// How a Fitbit app authenticates (the "OAuth 2.0 Application Type" in
/// Fitbit's app settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppType {
    /// A "Server" app: `Authorization: Basic` with the client secret on
    /// token, refresh and revoke. The secret never goes in the body.
    Server,
    /// A "Client" (public) app: `client_id` in the body, no secret; PKCE
    /// protects it.
    Client,
    /// A "Personal" app: Basic when a secret is configured, else as a
    /// public client.
    Personal,
}

/// The legacy Fitbit endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FitbitEndpoints {
    /// `GET /oauth2/authorize`.
    pub authorize: Url,
    /// `POST /oauth2/token`.
    pub token: Url,
    /// `POST /1.1/oauth2/introspect`.
    pub introspect: Url,
    /// `POST /oauth2/revoke`.
    pub revoke: Url,
}

impl Default for FitbitEndpoints {
    /// The real endpoints (switched off since 2026-11-02: they answer 410).
    fn default() -> Self {
        Self {
            authorize: Url::parse("https://www.fitbit.com/oauth2/authorize").expect("static URL"),
            token: Url::parse("https://api.fitbit.com/oauth2/token").expect("static URL"),
            introspect: Url::parse("https://api.fitbit.com/1.1/oauth2/introspect")
                .expect("static URL"),
            revoke: Url::parse("https://api.fitbit.com/oauth2/revoke").expect("static URL"),
        }
    }
}

impl FitbitEndpoints {
    /// All four endpoints under one base URL, with Fitbit's paths (for a
    /// local emulator).
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
            authorize: join("oauth2/authorize")?,
            token: join("oauth2/token")?,
            introspect: join("1.1/oauth2/introspect")?,
            revoke: join("oauth2/revoke")?,
        })
    }
}

/// Fitbit's quirks, as [`Hooks`] on the standards provider.
#[derive(Debug)]
struct FitbitHooks {
    rate_limit: Arc<RateLimitCell>,
    clock: Arc<dyn Clock>,
}

impl Hooks for FitbitHooks {
    fn parse_error(&self, response: &ResponseMeta) -> Option<ServerError> {
        parse_fitbit_error(&response.body)
    }

    fn retry_after(&self, response: &ResponseMeta) -> Option<Duration> {
        let headers = &response.headers;
        let stated = parse_retry_after(headers, self.clock.now());
        if response.status != http::StatusCode::TOO_MANY_REQUESTS {
            return stated;
        }
        // Rate limited without Retry-After: the quota resets at the top of
        // the hour, which Fitbit-Rate-Limit-Reset counts down to. (On other
        // answers that header says nothing about when to retry.)
        stated.or_else(|| {
            let reset = headers.get("fitbit-rate-limit-reset")?.to_str().ok()?;
            reset.trim().parse().ok().map(Duration::from_secs)
        })
    }

    fn observe_response(&self, response: &ResponseMeta) {
        if let Some(limit) = RateLimit::from_headers(&response.headers, self.clock.now()) {
            self.rate_limit.set(limit);
        }
    }

    fn parse_scopes(&self, scopes: Vec<String>) -> Vec<String> {
        scopes.into_iter().map(normalize_scope).collect()
    }

    fn introspection_request(
        &self,
        context: &IntrospectionContext<'_>,
    ) -> Option<auth_oauth2::HttpRequest> {
        let access = context.token.access_token().expose_secret();
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("token", access)
            .finish();
        http::Request::post(context.endpoint.as_str())
            .header(http::header::AUTHORIZATION, format!("Bearer {access}"))
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(http::header::ACCEPT, "application/json")
            .body(body.into_bytes())
            .ok()
    }

    fn parse_introspection(&self, response: &ResponseMeta) -> Result<Introspection> {
        crate::introspection::parse(response)
    }

    fn account_for(&self, token: &TokenSet) -> Option<AccountId> {
        AccountId::new(token.extra_str(USER_ID)?).ok()
    }
}

/// A granted scope as [`Scope::parse`] names it: trimmed and lower-cased,
/// known or not. A scope already in that form, as token responses send
/// them, is kept as it is, without a copy.
fn normalize_scope(scope: String) -> String {
    let normal =
        scope.trim().len() == scope.len() && !scope.bytes().any(|b| b.is_ascii_uppercase());
    if normal {
        scope
    } else {
        Scope::parse(&scope).as_str().to_owned()
    }
}

/// The legacy Fitbit OAuth 2.0 provider.
///
/// It is [`OAuth2Provider`] plus Fitbit's hooks: the error bodies (both
/// shapes), `Fitbit-Rate-Limit-*` headers (see
/// [`last_rate_limit`](Self::last_rate_limit)), Bearer-authenticated v1.1
/// introspection with the `{ACTIVITY=READ_WRITE}` scope format, `user_id` as
/// the account, and 410 → [`Error::ProviderRetired`] naming
/// [`GOOGLE_HEALTH`]. PKCE S256 is always used.
///
/// **Revoking any token revokes all of that user's tokens for the app**:
/// [`TokenManager::revoke`](auth_core::TokenManager::revoke) ends the
/// user's whole Fitbit grant for this app, not one device's session.
///
/// ```
/// use auth_fitbit::{AppType, FitbitProvider, Scope};
/// let fitbit = FitbitProvider::builder("23ABCD", AppType::Server)
///     .client_secret("app-secret")
///     .redirect_uri("https://app.example/callback")
///     .scopes([Scope::Activity, Scope::Sleep])
///     .build()
///     .unwrap();
/// assert_eq!(auth_core::TokenProvider::id(&fitbit).as_str(), "fitbit");
/// ```
#[derive(Clone)]
pub struct FitbitProvider {
    inner: OAuth2Provider,
    app_type: AppType,
    rate_limit: Arc<RateLimitCell>,
}

impl fmt::Debug for FitbitProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FitbitProvider")
            .field("app_type", &self.app_type)
            .field("oauth2", &self.inner)
            .finish()
    }
}

/// Builds a [`FitbitProvider`].
pub struct FitbitProviderBuilder {
    id: String,
    client_id: String,
    app_type: AppType,
    client_secret: Option<SecretString>,
    redirect_uri: Option<String>,
    expires_in: Option<u64>,
    scopes: Vec<Scope>,
    endpoints: FitbitEndpoints,
    http: HttpConfig,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for FitbitProviderBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FitbitProviderBuilder")
            .field("id", &self.id)
            .field("client_id", &self.client_id)
            .field("app_type", &self.app_type)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

impl FitbitProviderBuilder {
    /// Registers under another provider id than `fitbit`.
    #[must_use]
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    /// The client secret (server and personal apps).
    #[must_use]
    pub fn client_secret(mut self, secret: impl Into<SecretString>) -> Self {
        self.client_secret = Some(secret.into());
        self
    }

    /// The access token lifetime to ask for on every token request:
    /// [`EXPIRES_IN_CHOICES`] (3600 or 28800 seconds). Any other value is
    /// refused by [`build`](Self::build), before anything is sent.
    #[must_use]
    pub fn expires_in(mut self, seconds: u64) -> Self {
        self.expires_in = Some(seconds);
        self
    }

    /// The redirect URI registered for the app, matched exactly.
    #[must_use]
    pub fn redirect_uri(mut self, uri: impl Into<String>) -> Self {
        self.redirect_uri = Some(uri.into());
        self
    }

    /// Scopes requested when an authorization names none.
    #[must_use]
    pub fn scopes(mut self, scopes: impl IntoIterator<Item = Scope>) -> Self {
        self.scopes = scopes.into_iter().collect();
        self
    }

    /// Other endpoints than the real ones (an emulator).
    #[must_use]
    pub fn endpoints(mut self, endpoints: FitbitEndpoints) -> Self {
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
    /// [`Error::Configuration`] when a server app has no secret, a client
    /// app has one, the id is invalid, or an endpoint is not https
    /// (loopback excepted).
    pub fn build(self) -> Result<FitbitProvider> {
        let id = ProviderId::new(&self.id)?;
        let auth = match (self.app_type, &self.client_secret) {
            (AppType::Server, Some(_)) | (AppType::Personal, Some(_)) => {
                ClientAuth::ClientSecretBasic
            }
            (AppType::Server, None) => {
                return Err(Error::configuration(format!(
                    "provider {id}: a Fitbit server app needs its client secret"
                )));
            }
            (AppType::Client, Some(_)) => {
                return Err(Error::configuration(format!(
                    "provider {id}: a Fitbit client (public) app must not be given a client secret; \
                     use the server app type if the app has one"
                )));
            }
            (AppType::Client, None) | (AppType::Personal, None) => ClientAuth::None,
        };
        let rate_limit = Arc::new(RateLimitCell::default());
        let hooks = FitbitHooks {
            rate_limit: Arc::clone(&rate_limit),
            clock: Arc::clone(&self.clock),
        };
        // The entry says everything but the app type's client
        // authentication and the scopes asked for by default.
        let mut spec = crate::entry(FITBIT)?;
        let e = &mut spec.endpoints;
        e.authorize = self.endpoints.authorize.to_string();
        e.token = self.endpoints.token.to_string();
        e.introspect = Some(self.endpoints.introspect.to_string());
        e.revoke = Some(self.endpoints.revoke.to_string());
        let mut builder = auth_oauth2::catalogue::builder(id.as_str(), &spec, self.client_id)?
            .client_auth(auth)
            .default_scopes(self.scopes.iter().map(|s| s.as_str().to_owned()))
            .hooks(Arc::new(hooks))
            .http_config(self.http)
            // Fitbit rotates refresh tokens and answers a replay of the
            // spent one with the same pair for about two minutes, or until
            // the new pair is first used.
            .refresh_rules(auth_core::RefreshRules::rotating_with_window(
                FITBIT_REPLAY_WINDOW,
                true,
            ))
            .clock(self.clock);
        if let Some(secret) = self.client_secret {
            builder = builder.client_secret(secret);
        }
        if let Some(uri) = self.redirect_uri {
            builder = builder.redirect_uri(uri);
        }
        if let Some(seconds) = self.expires_in {
            builder = builder.expires_in(seconds);
        }
        Ok(FitbitProvider {
            inner: builder.build()?,
            app_type: self.app_type,
            rate_limit,
        })
    }
}

impl FitbitProvider {
    /// Starts configuring a Fitbit app.
    pub fn builder(client_id: impl Into<String>, app_type: AppType) -> FitbitProviderBuilder {
        FitbitProviderBuilder {
            id: FITBIT.to_owned(),
            client_id: client_id.into(),
            app_type,
            client_secret: None,
            redirect_uri: None,
            expires_in: None,
            scopes: Vec::new(),
            endpoints: FitbitEndpoints::default(),
            http: HttpConfig::default(),
            clock: Arc::new(SystemClock),
        }
    }

    /// The app type.
    pub fn app_type(&self) -> AppType {
        self.app_type
    }

    /// The rate limit stated by the last response that carried one.
    pub fn last_rate_limit(&self) -> Option<RateLimit> {
        self.rate_limit.get()
    }

    /// The standards provider underneath.
    pub fn oauth2(&self) -> &OAuth2Provider {
        &self.inner
    }
}

/// The Fitbit user a token set belongs to, from its `user_id` field.
pub fn user_id(token: &TokenSet) -> Option<&str> {
    token.extra_str(USER_ID)
}

impl FitbitProvider {
    /// Fitbit shows invalid parameters on its own page and never redirects
    /// back, so a bad `prompt` is refused here, where the app can see why.
    fn check_prompt(&self, request: &AuthorizeRequest) -> Result<()> {
        if let Some(prompt) = &request.prompt
            && Prompt::parse(prompt).is_none()
        {
            return Err(Error::invalid_input(format!(
                "Fitbit does not accept prompt={prompt:?}; use none, consent, login or \"login consent\""
            )));
        }
        Ok(())
    }
}

impl FitbitProvider {
    /// RFC 6750's challenge, or Fitbit's documented 401 bodies
    /// (`expired_token`, `invalid_token`), which come without one.
    fn token_rejected(&self, response: &auth_core::ResourceResponse<'_>) -> bool {
        response.is_rfc6750_invalid_token()
            || (response.status == 401 && crate::error_body::rejects_token(response.body))
    }
}

crate::delegate::forward_token_provider!(FitbitProvider, check_authorize = check_prompt);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_constants_say_what_the_catalogue_entry_says() {
        let entry = auth_catalogue::lookup(FITBIT).unwrap();
        assert_eq!(entry.retirement_notice.as_deref(), Some(RETIREMENT_NOTICE));
        assert_eq!(entry.successor.as_deref(), Some(GOOGLE_HEALTH));
        assert_eq!(entry.response.expires_in_choices, EXPIRES_IN_CHOICES);
        assert_eq!(entry.account.field.as_deref(), Some(USER_ID));
        let defaults = FitbitEndpoints::default();
        assert_eq!(entry.endpoints.token, defaults.token.as_str());
        assert_eq!(entry.endpoints.authorize, defaults.authorize.as_str());
    }

    #[test]
    fn expires_in_is_refused_before_sending_unless_fitbit_takes_it() {
        let build = |seconds| {
            FitbitProvider::builder("23ABCD", AppType::Server)
                .client_secret("s")
                .expires_in(seconds)
                .build()
        };
        assert!(build(3600).is_ok());
        assert!(build(28800).is_ok());
        let err = build(7200).unwrap_err();
        assert!(matches!(err, Error::Configuration { .. }), "{err}");
        assert!(err.to_string().contains("3600 or 28800"), "{err}");
    }

    #[test]
    fn granted_scopes_are_normalized_as_scope_parse_names_them() {
        for raw in [
            "sleep",
            "activity",
            " Sleep",
            "HEARTRATE ",
            "new_scope",
            "New_Scope",
        ] {
            assert_eq!(
                normalize_scope(raw.to_owned()),
                Scope::parse(raw).as_str(),
                "{raw:?}"
            );
        }
    }
}
