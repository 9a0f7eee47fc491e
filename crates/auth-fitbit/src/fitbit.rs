//! [`FitbitProvider`]: the legacy Fitbit OAuth 2.0 server (the seed's
//! AuthorizationApi: `/oauth2/token`, `/1.1/oauth2/introspect`,
//! `/oauth2/revoke`), switched off by Google on 2026-11-02.
//!
//! Everything the catalogue entry `fitbit` can say is data there; what it
//! cannot is [`FitbitHooks`] on the generic provider.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use auth_catalogue::ProviderSpec;
use auth_core::{
    AccountId, AuthorizeRequest, Clock, Error, Introspection, ResourceResponse, Result,
    SystemClock, TokenSet,
};
use auth_oauth2::catalogue::CatalogueHooks;
use auth_oauth2::{
    ClientAuth, ErrorMeaning, Hooks, IntrospectionContext, OAuth2Provider, OAuth2ProviderBuilder,
    ResponseMeta, Retirement, RevocationToken, ServerError, parse_retry_after,
};

use crate::error_body::parse_fitbit_error;
use crate::rate_limit::{RateLimit, RateLimitCell};
use crate::scope::{Prompt, Scope};

/// The provider id Fitbit tokens are stored under by default, and the name
/// of its catalogue entry.
pub const FITBIT: &str = "fitbit";
/// The id of the provider that replaces Fitbit, as the `fitbit` catalogue
/// entry names it: see [`GoogleHealthProvider`](crate::GoogleHealthProvider).
pub const GOOGLE_HEALTH: &str = "google-health";

/// The access token lifetimes (seconds) a token request may ask for with
/// `expires_in`, per Fitbit's API description (the catalogue entry's
/// `response.expires_in_choices`).
pub const EXPIRES_IN_CHOICES: [u64; 2] = [3600, 28800];

/// The extra token field that names the Fitbit user.
pub const USER_ID: &str = "user_id";

/// How a Fitbit app authenticates (the "OAuth 2.0 Application Type" in
/// Fitbit's app settings), as the generic builder's
/// [`client_auth`](OAuth2ProviderBuilder::client_auth) takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppType {
    /// A "Server" app: `Authorization: Basic` with the client secret on
    /// token, refresh and revoke. The secret never goes in the body.
    Server,
    /// A "Client" (public) app: `client_id` in the body, no secret; PKCE
    /// protects it.
    Client,
    /// A "Personal" app with its client secret, authenticated as a server
    /// app. A personal app used without its secret is a [`Client`](Self::Client).
    Personal,
}

impl AppType {
    /// The client authentication an app of this type uses.
    ///
    /// ```
    /// use auth_fitbit::{AppType, FitbitProvider};
    /// let public = FitbitProvider::builder("23ABCD")
    ///     .client_auth(AppType::Client.client_auth())
    ///     .redirect_uri("https://app.example/callback")
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(public.client_auth(), auth_oauth2::ClientAuth::None);
    /// ```
    pub fn client_auth(self) -> ClientAuth {
        match self {
            Self::Server | Self::Personal => ClientAuth::ClientSecretBasic,
            Self::Client => ClientAuth::None,
        }
    }
}

/// Fitbit's quirks beyond its catalogue entry, as [`Hooks`] on the generic
/// provider: both error-body shapes, the `Fitbit-Rate-Limit-*` headers (kept
/// for [`last_rate_limit`](Self::last_rate_limit)), a 429's wait until the
/// quota resets, the `{ACTIVITY=READ_WRITE}` introspection scopes, scope
/// names normalized as [`Scope::parse`] names them, the `prompt` values
/// Fitbit takes, and the Google-shaped 401. Everything else (retirement
/// and successor, Bearer introspection, `user_id` as the account, token
/// response handling) is the entry's [`CatalogueHooks`].
pub struct FitbitHooks {
    entry: CatalogueHooks,
    rate_limit: RateLimitCell,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for FitbitHooks {
    /// The entry's title and the last rate limit; the whole entry would
    /// crowd every provider's `Debug`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FitbitHooks")
            .field("entry", &self.entry.spec().title)
            .field("last_rate_limit", &self.last_rate_limit())
            .finish_non_exhaustive()
    }
}

impl FitbitHooks {
    /// The hooks for `spec` (the `fitbit` entry, perhaps with other URLs),
    /// reading the time from `clock`.
    pub fn new(spec: &ProviderSpec, clock: Arc<dyn Clock>) -> Self {
        Self {
            entry: CatalogueHooks::new(Arc::new(spec.clone())),
            rate_limit: RateLimitCell::default(),
            clock,
        }
    }

    /// The rate limit stated by the last response that carried one.
    pub fn last_rate_limit(&self) -> Option<RateLimit> {
        self.rate_limit.get()
    }
}

impl Hooks for FitbitHooks {
    /// Fitbit shows invalid parameters on its own page and never redirects
    /// back, so a bad `prompt` is refused here, where the app can see why.
    fn check_authorize(&self, request: &AuthorizeRequest) -> Result<()> {
        if let Some(prompt) = &request.prompt
            && Prompt::parse(prompt).is_none()
        {
            return Err(Error::invalid_input(format!(
                "Fitbit does not accept prompt={prompt:?}; use none, consent, login or \"login consent\""
            )));
        }
        Ok(())
    }

    fn retirement(&self) -> Option<Retirement> {
        self.entry.retirement()
    }

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

    fn token_extras(
        &self,
        extras: &serde_json::Map<String, serde_json::Value>,
    ) -> std::collections::BTreeMap<String, serde_json::Value> {
        self.entry.token_extras(extras)
    }

    fn parse_scopes(&self, scopes: Vec<String>) -> Vec<String> {
        scopes.into_iter().map(normalize_scope).collect()
    }

    fn authorize_params(&self, request: &AuthorizeRequest) -> Vec<(String, String)> {
        self.entry.authorize_params(request)
    }

    fn introspection_request(
        &self,
        context: &IntrospectionContext<'_>,
    ) -> Option<auth_oauth2::HttpRequest> {
        self.entry.introspection_request(context)
    }

    fn parse_introspection(&self, response: &ResponseMeta) -> Result<Introspection> {
        crate::introspection::parse(response)
    }

    fn introspection_error_means_inactive(&self, response: &ResponseMeta) -> bool {
        self.entry.introspection_error_means_inactive(response)
    }

    fn account_for(&self, token: &TokenSet) -> Option<AccountId> {
        self.entry.account_for(token)
    }

    fn normalize_token_response(&self, response: ResponseMeta) -> ResponseMeta {
        self.entry.normalize_token_response(response)
    }

    fn error_meaning(&self, code: &str) -> Option<ErrorMeaning> {
        self.entry.error_meaning(code)
    }

    /// The entry's codes, or Fitbit's documented 401 bodies
    /// (`expired_token`, `invalid_token`, Google's `UNAUTHENTICATED`),
    /// which come without RFC 6750's challenge.
    fn rejects_token(&self, response: &ResourceResponse<'_>) -> bool {
        self.entry.rejects_token(response)
            || (response.status == 401 && crate::error_body::rejects_token(response.body))
    }

    fn revocation_token<'t>(&self, token: &'t TokenSet) -> RevocationToken<'t> {
        self.entry.revocation_token(token)
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

/// The legacy Fitbit OAuth 2.0 provider: the catalogue entry `fitbit` on
/// the generic [`OAuth2Provider`], with [`FitbitHooks`].
///
/// This type only starts configurations: [`builder`](Self::builder) returns
/// the generic [`OAuth2ProviderBuilder`], so the client secret, redirect
/// URI, scopes, `expires_in`, endpoints (`token_url`, `base_url`, …) and
/// clock are set with its own methods, and [`build`](OAuth2ProviderBuilder::build) returns an
/// [`OAuth2Provider`]. PKCE S256 is always used, and a 410 from Fitbit's
/// switched-off endpoints becomes [`Error::ProviderRetired`] naming
/// [`GOOGLE_HEALTH`], as the entry says.
///
/// **Revoking any token revokes all of that user's tokens for the app**:
/// [`TokenManager::revoke`](auth_core::TokenManager::revoke) ends the
/// user's whole Fitbit grant for this app, not one device's session.
///
/// ```
/// use auth_fitbit::{FitbitProvider, Scope};
/// let fitbit = FitbitProvider::builder("23ABCD")
///     .client_secret("app-secret")
///     .redirect_uri("https://app.example/callback")
///     .default_scopes([Scope::Activity, Scope::Sleep])
///     .expires_in(3600)
///     .build()
///     .unwrap();
/// assert_eq!(auth_core::TokenProvider::id(&fitbit).as_str(), "fitbit");
/// ```
#[derive(Debug, Clone, Copy)]
pub enum FitbitProvider {}

impl FitbitProvider {
    /// Starts configuring a Fitbit server app (or a personal app with its
    /// secret): the built-in `fitbit` entry with [`FitbitHooks`]. For a
    /// client (public) app, add
    /// `.client_auth(AppType::Client.client_auth())` and give no secret.
    ///
    /// # Panics
    ///
    /// Never: the built-in catalogue always holds a valid `fitbit` entry
    /// (the catalogue's tests check it).
    pub fn builder(client_id: impl Into<String>) -> OAuth2ProviderBuilder {
        let spec = auth_catalogue::lookup(FITBIT).expect("the built-in catalogue has fitbit");
        Self::from_entry(FITBIT, spec, client_id).expect("the built-in fitbit entry builds")
    }

    /// Starts configuring a Fitbit app from `spec`, a `fitbit` entry that
    /// may have other URLs or facts (a user's catalogue file), registered
    /// under the provider id `id`, with [`FitbitHooks`] on the system
    /// clock. (For another clock, build the hooks with
    /// [`FitbitHooks::new`] and give them to
    /// [`hooks`](OAuth2ProviderBuilder::hooks).)
    ///
    /// # Errors
    ///
    /// [`Error::Configuration`] when `id` is not a valid provider id or one
    /// of the entry's URLs is not a URL.
    pub fn from_entry(
        id: &str,
        spec: &ProviderSpec,
        client_id: impl Into<String>,
    ) -> Result<OAuth2ProviderBuilder> {
        let hooks = FitbitHooks::new(spec, Arc::new(SystemClock));
        Ok(auth_oauth2::catalogue::builder(id, spec, client_id)?.hooks(Arc::new(hooks)))
    }

    /// The rate limit stated by the last response to `provider` that
    /// carried one; `None` too when `provider` was not built with
    /// [`FitbitHooks`].
    pub fn last_rate_limit(provider: &OAuth2Provider) -> Option<RateLimit> {
        let hooks: &dyn Any = provider.hooks().as_ref();
        hooks.downcast_ref::<FitbitHooks>()?.last_rate_limit()
    }
}

/// The Fitbit user a token set belongs to, from its `user_id` field.
pub fn user_id(token: &TokenSet) -> Option<&str> {
    token.extra_str(USER_ID)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_constants_say_what_the_catalogue_entry_says() {
        let entry = auth_catalogue::lookup(FITBIT).unwrap();
        assert_eq!(entry.successor.as_deref(), Some(GOOGLE_HEALTH));
        assert_eq!(entry.response.expires_in_choices, EXPIRES_IN_CHOICES);
        assert_eq!(entry.account.field.as_deref(), Some(USER_ID));
    }

    #[test]
    fn retirement_is_the_entry_s() {
        let hooks = FitbitHooks::new(
            auth_catalogue::lookup(FITBIT).unwrap(),
            Arc::new(SystemClock),
        );
        let retirement = hooks.retirement().expect("the fitbit entry is retired");
        assert_eq!(retirement.successor, GOOGLE_HEALTH);
        assert!(retirement.notice.unwrap().contains("2026-11-02"));
        let debug = format!("{hooks:?}");
        assert!(
            debug.starts_with("FitbitHooks { entry: \"Fitbit"),
            "{debug}"
        );
    }

    #[test]
    fn expires_in_is_refused_before_sending_unless_fitbit_takes_it() {
        let build = |seconds| {
            FitbitProvider::builder("23ABCD")
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
    fn the_rate_limit_is_read_back_only_from_fitbit_hooks() {
        let fitbit = FitbitProvider::builder("23ABCD")
            .client_secret("s")
            .build()
            .unwrap();
        assert_eq!(FitbitProvider::last_rate_limit(&fitbit), None);
        let strava = auth_oauth2::catalogue::provider("strava", "1", "s").unwrap();
        assert_eq!(FitbitProvider::last_rate_limit(&strava), None);
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
