//! [`OAuth2Provider`]: a standards provider on the `oauth2` crate.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use auth_core::{
    AccountId, AuthorizeRequest, Callback, Clock, Error, Introspection, PendingAuthorization,
    ProviderId, Result, SystemClock, TokenKey, TokenProvider, TokenSet,
};
use oauth2::basic::{BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenType};
use oauth2::{
    AccessToken, AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, ExtraTokenFields, IntrospectionUrl,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken, RevocationUrl, Scope,
    StandardRevocableToken, StandardTokenIntrospectionResponse, StandardTokenResponse,
    TokenResponse, TokenUrl,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::classify::Context;
use crate::config::{ClientAuth, ClientCredentials, Endpoints, HttpConfig, require_secure};
use crate::discovery::{Metadata, discover};
use crate::hooks::{Hooks, IntrospectionContext, RevocationToken, StandardHooks};
use crate::http::{Exchange, HttpClient, ResponseMeta};

/// Every token-response field the `oauth2` crate does not model.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExtraFields {
    /// The fields, by name.
    #[serde(flatten)]
    pub fields: serde_json::Map<String, serde_json::Value>,
}

impl ExtraTokenFields for ExtraFields {}

type TokenResponseWithExtras = StandardTokenResponse<ExtraFields, BasicTokenType>;

type Client = oauth2::Client<
    BasicErrorResponse,
    TokenResponseWithExtras,
    StandardTokenIntrospectionResponse<oauth2::EmptyExtraTokenFields, BasicTokenType>,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
    EndpointSet,
>;

/// A standards OAuth 2.0 provider: authorization code with PKCE S256,
/// refresh with rotation, RFC 7662 introspection and RFC 7009 revocation,
/// configured by endpoints or by discovery, with [`Hooks`] for quirks.
///
/// Build one with [`OAuth2Provider::builder`] or [`OAuth2Provider::discover`].
#[derive(Clone)]
pub struct OAuth2Provider {
    inner: Arc<Inner>,
}

struct Inner {
    id: ProviderId,
    client: Client,
    client_id: String,
    client_secret: Option<SecretString>,
    auth: ClientAuth,
    endpoints: Endpoints,
    redirect_uri: Option<String>,
    default_scopes: Vec<String>,
    extra_authorize_params: Vec<(String, String)>,
    client_credentials: Option<ClientCredentials>,
    issuer: Option<String>,
    require_iss: bool,
    hooks: Arc<dyn Hooks>,
    http: HttpClient,
    clock: Arc<dyn Clock>,
    refresh_rules: auth_core::RefreshRules,
    request: RequestShape,
    api_base_urls: Vec<String>,
    userinfo_account: Option<(Url, Vec<String>)>,
}

/// How requests are shaped beyond RFC 6749's defaults: what a catalogue
/// entry says about scopes, PKCE and extra parameters.
#[derive(Debug, Clone)]
struct RequestShape {
    pkce: bool,
    scope_separator: String,
    always_scopes: Vec<String>,
    token_params: Vec<(String, String)>,
    refresh_params: Vec<(String, String)>,
    echo_state: bool,
}

impl Default for RequestShape {
    fn default() -> Self {
        Self {
            pkce: true,
            scope_separator: " ".to_owned(),
            always_scopes: Vec::new(),
            token_params: Vec::new(),
            refresh_params: Vec::new(),
            echo_state: false,
        }
    }
}

impl fmt::Debug for OAuth2Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("OAuth2Provider")
            .field("id", &i.id)
            .field("client_id", &i.client_id)
            .field(
                "client_secret",
                &i.client_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("auth", &i.auth)
            .field("endpoints", &i.endpoints)
            .field("redirect_uri", &i.redirect_uri)
            .field("client_credentials", &i.client_credentials)
            .field("issuer", &i.issuer)
            .field("hooks", &i.hooks)
            .finish_non_exhaustive()
    }
}

/// Builds an [`OAuth2Provider`].
pub struct OAuth2ProviderBuilder {
    id: ProviderId,
    client_id: String,
    client_secret: Option<SecretString>,
    auth: ClientAuth,
    endpoints: Option<Endpoints>,
    redirect_uri: Option<String>,
    default_scopes: Vec<String>,
    extra_authorize_params: Vec<(String, String)>,
    client_credentials: Option<ClientCredentials>,
    issuer: Option<String>,
    require_iss: bool,
    hooks: Arc<dyn Hooks>,
    http_config: HttpConfig,
    http: Option<HttpClient>,
    clock: Arc<dyn Clock>,
    refresh_rules: auth_core::RefreshRules,
    request: RequestShape,
    api_base_urls: Vec<String>,
    expires_in: Option<u64>,
    expires_in_choices: Vec<u64>,
    userinfo_account: Option<(Url, Vec<String>)>,
    endpoint_urls: EndpointUrls,
}

/// Single endpoints set on the builder, which replace the configured ones
/// at [`build`](OAuth2ProviderBuilder::build).
#[derive(Debug, Default)]
struct EndpointUrls {
    authorize: Option<Url>,
    token: Option<Url>,
    revocation: Option<Url>,
    introspection: Option<Url>,
}

impl EndpointUrls {
    /// `endpoints` with these URLs in place; with none configured, the
    /// authorize and token URLs set here, if both are.
    fn apply(self, endpoints: Option<Endpoints>) -> Option<Endpoints> {
        let mut endpoints = match (endpoints, &self.authorize, &self.token) {
            (Some(endpoints), _, _) => endpoints,
            (None, Some(authorize), Some(token)) => {
                Endpoints::new(authorize.clone(), token.clone())
            }
            (None, _, _) => return None,
        };
        if let Some(url) = self.authorize {
            endpoints.authorize = url;
        }
        if let Some(url) = self.token {
            endpoints.token = url;
        }
        if let Some(url) = self.revocation {
            endpoints.revocation = Some(url);
        }
        if let Some(url) = self.introspection {
            endpoints.introspection = Some(url);
        }
        Some(endpoints)
    }
}

impl fmt::Debug for OAuth2ProviderBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuth2ProviderBuilder")
            .field("id", &self.id)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("auth", &self.auth)
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

impl OAuth2ProviderBuilder {
    /// Sets the client secret (for `client_secret_basic` and `_post`).
    #[must_use]
    pub fn client_secret(mut self, secret: impl Into<SecretString>) -> Self {
        self.client_secret = Some(secret.into());
        self
    }

    /// Whether to send a PKCE S256 challenge (the default, `true`). Turn it
    /// off only for a server that refuses PKCE parameters.
    #[must_use]
    pub fn pkce(mut self, send: bool) -> Self {
        self.request.pkce = send;
        self
    }

    /// What joins scopes in the `scope` parameter (default a space; Strava,
    /// Withings and Slack want a comma). Granted scopes are split on it too.
    #[must_use]
    pub fn scope_separator(mut self, separator: impl Into<String>) -> Self {
        self.request.scope_separator = separator.into();
        self
    }

    /// Scopes added to every authorization, whatever else is asked for (the
    /// `offline_access` a refresh token needs).
    #[must_use]
    pub fn always_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.request.always_scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// A parameter added to every token request (code exchange and refresh).
    #[must_use]
    pub fn token_param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.request.token_params.push((name.into(), value.into()));
        self
    }

    /// A parameter added to refresh requests only.
    #[must_use]
    pub fn refresh_param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.request
            .refresh_params
            .push((name.into(), value.into()));
        self
    }

    /// Sends the authorization's `state` again with the code exchange, for
    /// servers that take it there (legacy Fitbit).
    #[must_use]
    pub fn echo_state_on_exchange(mut self, echo: bool) -> Self {
        self.request.echo_state = echo;
        self
    }

    /// The origins of the provider's APIs (a leading `*.` in the host
    /// matches any subdomain). See [`OAuth2Provider::allows_api_url`].
    #[must_use]
    pub fn api_base_urls<I, S>(mut self, urls: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.api_base_urls = urls.into_iter().map(Into::into).collect();
        self
    }

    /// Where the account id is read when the token response does not name
    /// it: a userinfo endpoint and the field (a dotted path) of its answer.
    /// See [`OAuth2Provider::userinfo_account`].
    #[must_use]
    pub fn userinfo_account(mut self, endpoint: Url, field: &str) -> Self {
        self.userinfo_account = Some((endpoint, field.split('.').map(str::to_owned).collect()));
        self
    }

    /// The access token lifetime to ask for on every token request
    /// (`expires_in`), for servers that take one; it must be one of
    /// [`expires_in_choices`](Self::expires_in_choices), else
    /// [`build`](Self::build) refuses it before anything is sent.
    #[must_use]
    pub fn expires_in(mut self, seconds: u64) -> Self {
        self.expires_in = Some(seconds);
        self
    }

    /// The `expires_in` values the server accepts (legacy Fitbit: 3600 and
    /// 28800). Empty (the default): the server takes none.
    #[must_use]
    pub fn expires_in_choices(mut self, choices: impl IntoIterator<Item = u64>) -> Self {
        self.expires_in_choices = choices.into_iter().collect();
        self
    }

    /// The refresh facts of the provider as a catalogue entry states them
    /// (unknown facts already read safely): whether refresh tokens rotate,
    /// the replay window and whether the first use of a new pair ends it.
    /// They become [`TokenProvider::refresh_rules`].
    #[must_use]
    pub fn catalogue_refresh_rules(self, rules: auth_catalogue::RefreshRules) -> Self {
        let rules = match (rules.rotating, rules.replay_window) {
            (false, _) => auth_core::RefreshRules::NOT_ROTATING,
            (true, None) => auth_core::RefreshRules::ROTATING,
            (true, Some(window)) => {
                auth_core::RefreshRules::rotating_with_window(window, rules.first_use_ends_window)
            }
        };
        self.refresh_rules(rules)
    }

    /// Sets how the client authenticates (default `client_secret_basic`).
    #[must_use]
    pub fn client_auth(mut self, auth: ClientAuth) -> Self {
        self.auth = auth;
        self
    }

    /// Sets the endpoints.
    #[must_use]
    pub fn endpoints(mut self, endpoints: Endpoints) -> Self {
        self.endpoints = Some(endpoints);
        self
    }

    /// Sets the authorize endpoint alone, in place of the configured one
    /// (with [`token_url`](Self::token_url), enough without
    /// [`endpoints`](Self::endpoints)).
    #[must_use]
    pub fn authorize_url(mut self, url: Url) -> Self {
        self.endpoint_urls.authorize = Some(url);
        self
    }

    /// Sets the token endpoint alone, in place of the configured one.
    #[must_use]
    pub fn token_url(mut self, url: Url) -> Self {
        self.endpoint_urls.token = Some(url);
        self
    }

    /// Sets the RFC 7009 revocation endpoint alone.
    #[must_use]
    pub fn revocation_url(mut self, url: Url) -> Self {
        self.endpoint_urls.revocation = Some(url);
        self
    }

    /// Sets the introspection endpoint alone (RFC 7662, or the provider's
    /// equivalent that its hooks speak).
    #[must_use]
    pub fn introspection_url(mut self, url: Url) -> Self {
        self.endpoint_urls.introspection = Some(url);
        self
    }

    /// Sets the default redirect URI, registered with the provider.
    #[must_use]
    pub fn redirect_uri(mut self, uri: impl Into<String>) -> Self {
        self.redirect_uri = Some(uri.into());
        self
    }

    /// Scopes requested when an [`AuthorizeRequest`] names none.
    #[must_use]
    pub fn default_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.default_scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// A query parameter added to every authorize URL.
    #[must_use]
    pub fn authorize_param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra_authorize_params
            .push((name.into(), value.into()));
        self
    }

    /// Configures the client credentials grant (RFC 6749 §4.4): the provider
    /// then mints tokens with no user ([`TokenProvider::can_mint`] is
    /// `true`), and [`TokenManager::access_token`](auth_core::TokenManager::access_token)
    /// works with no login. The client must be confidential.
    #[must_use]
    pub fn client_credentials(mut self, grant: ClientCredentials) -> Self {
        self.client_credentials = Some(grant);
        self
    }

    /// The issuer identifier. With `require_iss`, callbacks must carry an
    /// `iss` equal to it (RFC 9207); discovery sets both from the metadata.
    #[must_use]
    pub fn issuer(mut self, issuer: impl Into<String>, require_iss: bool) -> Self {
        self.issuer = Some(issuer.into());
        self.require_iss = require_iss;
        self
    }

    /// Serves every configured endpoint, the issuer, the userinfo
    /// endpoint and the API base URLs from `base` instead, each keeping its
    /// path: for a local server (the emulator) that mirrors the provider's
    /// paths. Call it after the endpoints are set (a catalogue builder has
    /// them already); endpoints set alone (`token_url`, …) stay as given.
    ///
    /// # Errors
    ///
    /// [`Error::Configuration`] when no endpoints are set yet, or a path
    /// cannot be joined to `base`.
    pub fn base_url(mut self, base: &Url) -> Result<Self> {
        let id = &self.id;
        let rebase = |url: &Url| -> Result<Url> {
            let mut moved = base.join(url.path().trim_start_matches('/')).map_err(|e| {
                Error::configuration(format!(
                    "provider {id}: cannot join {} to {base}: {e}",
                    url.path()
                ))
            })?;
            moved.set_query(url.query());
            Ok(moved)
        };
        let Some(endpoints) = &self.endpoints else {
            return Err(Error::configuration(format!(
                "provider {id}: no endpoints to serve from {base}; set them first"
            )));
        };
        let moved = Endpoints {
            authorize: rebase(&endpoints.authorize)?,
            token: rebase(&endpoints.token)?,
            introspection: endpoints.introspection.as_ref().map(rebase).transpose()?,
            revocation: endpoints.revocation.as_ref().map(rebase).transpose()?,
            device_authorization: endpoints
                .device_authorization
                .as_ref()
                .map(rebase)
                .transpose()?,
        };
        if let Some(issuer) = &self.issuer {
            let path = Url::parse(issuer)
                .map(|u| u.path().trim_matches('/').to_owned())
                .unwrap_or_default();
            let moved = base.join(&path).map_err(|e| {
                Error::configuration(format!("provider {id}: cannot join {path} to {base}: {e}"))
            })?;
            self.issuer = Some(moved.as_str().trim_end_matches('/').to_owned());
        }
        if let Some((userinfo, field)) = self.userinfo_account.take() {
            self.userinfo_account = Some((rebase(&userinfo)?, field));
        }
        let mut bases = Vec::with_capacity(self.api_base_urls.len());
        for api in &self.api_base_urls {
            // A wildcard origin (`https://*.example.com`) has no path.
            let moved = match Url::parse(api) {
                Ok(url) => rebase(&url)?,
                Err(_) => base.clone(),
            };
            let moved = moved.as_str().trim_end_matches('/').to_owned();
            if !bases.contains(&moved) {
                bases.push(moved);
            }
        }
        self.api_base_urls = bases;
        self.endpoints = Some(moved);
        Ok(self)
    }

    /// The provider's quirks.
    #[must_use]
    pub fn hooks(mut self, hooks: Arc<dyn Hooks>) -> Self {
        self.hooks = hooks;
        self
    }

    /// HTTP timeouts and body cap.
    #[must_use]
    pub fn http_config(mut self, config: HttpConfig) -> Self {
        self.http_config = config;
        self
    }

    /// Shares an existing HTTP client (and its connection pool); its own
    /// configuration then applies.
    #[must_use]
    pub fn http_client(mut self, http: HttpClient) -> Self {
        self.http = Some(http);
        self
    }

    /// Whether the server may rotate refresh tokens (the default, `true`,
    /// with no replay window: the safe reading). A server that never does
    /// (Google) needs no write-ahead record before a refresh
    /// ([`TokenProvider::refresh_rules`] answers
    /// [`RefreshRules::NOT_ROTATING`](auth_core::RefreshRules::NOT_ROTATING)).
    #[must_use]
    pub fn rotating_refresh_tokens(mut self, rotating: bool) -> Self {
        self.refresh_rules = if rotating {
            auth_core::RefreshRules::ROTATING
        } else {
            auth_core::RefreshRules::NOT_ROTATING
        };
        self
    }

    /// How the server treats refresh tokens: rotation, the replay window,
    /// and whether first use ends it ([`TokenProvider::refresh_rules`]).
    #[must_use]
    pub fn refresh_rules(mut self, rules: auth_core::RefreshRules) -> Self {
        self.refresh_rules = rules;
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
    /// [`Error::Configuration`] when endpoints are missing or not https
    /// (loopback excepted), a secret is missing for a confidential method,
    /// or the redirect URI is not a URL.
    pub fn build(self) -> Result<OAuth2Provider> {
        let endpoints = self.endpoint_urls.apply(self.endpoints).ok_or_else(|| {
            Error::configuration(format!(
                "provider {}: no endpoints configured; set them or use discovery",
                self.id
            ))
        })?;
        endpoints.validate()?;
        let has_secret = self
            .client_secret
            .as_ref()
            .is_some_and(|s| !s.expose_secret().is_empty());
        if self.auth != ClientAuth::None && !has_secret {
            return Err(Error::configuration(format!(
                "provider {}: client authentication {} needs a client secret, and none or an \
                 empty one was given",
                self.id,
                self.auth.as_str()
            )));
        }
        if self.auth == ClientAuth::None && has_secret {
            return Err(Error::configuration(format!(
                "provider {}: a public client (client authentication none) was given a client \
                 secret; remove the secret, or set client_secret_basic or client_secret_post",
                self.id
            )));
        }
        if self.client_credentials.is_some() && self.auth == ClientAuth::None {
            return Err(Error::configuration(format!(
                "provider {}: the client credentials grant needs a confidential client \
                 (RFC 6749 §4.4); set a client secret and client_secret_basic or client_secret_post",
                self.id
            )));
        }
        if self.client_id.is_empty() {
            return Err(Error::configuration(format!(
                "provider {}: the client id is empty",
                self.id
            )));
        }
        if let Some(uri) = &self.redirect_uri {
            RedirectUrl::new(uri.clone()).map_err(|e| {
                Error::configuration(format!(
                    "provider {}: redirect URI {uri:?} is not a URL ({e})",
                    self.id
                ))
            })?;
        }
        let mut request = self.request;
        if let Some(seconds) = self.expires_in {
            if !self.expires_in_choices.contains(&seconds) {
                let choices = self
                    .expires_in_choices
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>();
                return Err(Error::configuration(if choices.is_empty() {
                    format!(
                        "provider {}: the server takes no expires_in on its token requests; \
                         remove expires_in = {seconds}",
                        self.id
                    )
                } else {
                    format!(
                        "provider {}: expires_in = {seconds} is not one the server accepts; \
                         use {}",
                        self.id,
                        choices.join(" or ")
                    )
                }));
            }
            request
                .token_params
                .push(("expires_in".to_owned(), seconds.to_string()));
        }
        for origin in &self.api_base_urls {
            let parsed = Url::parse(&origin.replacen("*.", "wildcard.", 1)).map_err(|e| {
                Error::configuration(format!(
                    "provider {}: API base URL {origin:?} is not a URL ({e})",
                    self.id
                ))
            })?;
            require_secure("API base", &parsed)?;
        }
        let http = match self.http {
            Some(http) => http,
            None => HttpClient::new(&self.http_config)?,
        };
        let mut client = oauth2::Client::new(ClientId::new(self.client_id.clone()))
            .set_auth_uri(AuthUrl::from_url(endpoints.authorize.clone()))
            .set_token_uri(TokenUrl::from_url(endpoints.token.clone()))
            .set_introspection_url_option(
                endpoints
                    .introspection
                    .clone()
                    .map(IntrospectionUrl::from_url),
            )
            .set_revocation_url_option(endpoints.revocation.clone().map(RevocationUrl::from_url))
            .set_auth_type(match self.auth {
                ClientAuth::ClientSecretPost | ClientAuth::None => AuthType::RequestBody,
                ClientAuth::ClientSecretBasic => AuthType::BasicAuth,
            });
        if self.auth != ClientAuth::None
            && let Some(secret) = &self.client_secret
        {
            client = client.set_client_secret(ClientSecret::new(secret.expose_secret().to_owned()));
        }
        Ok(OAuth2Provider {
            inner: Arc::new(Inner {
                id: self.id,
                client,
                client_id: self.client_id,
                client_secret: self.client_secret,
                auth: self.auth,
                endpoints,
                redirect_uri: self.redirect_uri,
                default_scopes: self.default_scopes,
                extra_authorize_params: self.extra_authorize_params,
                client_credentials: self.client_credentials,
                issuer: self.issuer,
                require_iss: self.require_iss,
                hooks: self.hooks,
                http,
                clock: self.clock,
                refresh_rules: self.refresh_rules,
                request,
                api_base_urls: self.api_base_urls,
                userinfo_account: self.userinfo_account,
            }),
        })
    }
}

impl OAuth2Provider {
    /// Starts configuring a provider by hand.
    pub fn builder(id: ProviderId, client_id: impl Into<String>) -> OAuth2ProviderBuilder {
        OAuth2ProviderBuilder {
            id,
            client_id: client_id.into(),
            client_secret: None,
            auth: ClientAuth::default(),
            endpoints: None,
            redirect_uri: None,
            default_scopes: Vec::new(),
            extra_authorize_params: Vec::new(),
            client_credentials: None,
            issuer: None,
            require_iss: false,
            hooks: Arc::new(StandardHooks),
            http_config: HttpConfig::default(),
            http: None,
            clock: Arc::new(SystemClock),
            refresh_rules: auth_core::RefreshRules::ROTATING,
            request: RequestShape::default(),
            api_base_urls: Vec::new(),
            expires_in: None,
            expires_in_choices: Vec::new(),
            userinfo_account: None,
            endpoint_urls: EndpointUrls::default(),
        }
    }

    /// Fetches the server's metadata (RFC 8414, then OpenID discovery) from
    /// `issuer` and returns a builder with its endpoints and issuer set.
    ///
    /// # Errors
    ///
    /// [`Error::Configuration`] when the issuer is not https (loopback
    /// excepted) or the metadata names another issuer; [`Error::Transient`]
    /// when the server cannot be reached; [`Error::Protocol`] for malformed
    /// metadata.
    pub async fn discover(
        id: ProviderId,
        client_id: impl Into<String>,
        issuer: &Url,
        http_config: HttpConfig,
    ) -> Result<OAuth2ProviderBuilder> {
        require_secure("issuer", issuer)?;
        let http = HttpClient::new(&http_config)?;
        let Metadata {
            issuer: canonical,
            endpoints,
            iss_parameter_supported,
        } = discover(&http, &id, issuer).await?;
        Ok(Self::builder(id, client_id)
            .endpoints(endpoints)
            .issuer(canonical, iss_parameter_supported)
            .http_client(http))
    }

    /// The endpoints in use.
    pub fn endpoints(&self) -> &Endpoints {
        &self.inner.endpoints
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.inner.client_id
    }

    /// The client authentication method.
    pub fn client_auth(&self) -> ClientAuth {
        self.inner.auth
    }

    /// The hooks in use.
    pub fn hooks(&self) -> &Arc<dyn Hooks> {
        &self.inner.hooks
    }

    /// The shared HTTP client.
    pub fn http_client(&self) -> &HttpClient {
        &self.inner.http
    }

    /// The account `token` belongs to, from the configured userinfo
    /// endpoint (for providers whose token response does not name it).
    /// `Ok(None)` when no userinfo endpoint is configured or its answer
    /// lacks the field.
    ///
    /// # Errors
    ///
    /// Classified like every other request: [`Error::Transient`] when the
    /// endpoint cannot be reached, [`Error::Configuration`] or
    /// [`Error::Protocol`] for other refusals.
    pub async fn userinfo_account(&self, token: &TokenSet) -> Result<Option<AccountId>> {
        let Some((endpoint, path)) = &self.inner.userinfo_account else {
            return Ok(None);
        };
        require_secure("userinfo", endpoint)?;
        let access = token.access_token().expose_secret();
        let secrets = [access];
        let request = http::Request::get(endpoint.as_str())
            .header(http::header::AUTHORIZATION, format!("Bearer {access}"))
            .header(http::header::ACCEPT, "application/json")
            .body(Vec::new())
            .map_err(|e| Error::configuration(format!("cannot build a userinfo request: {e}")))?;
        let ctx = self.context("userinfo", &secrets);
        let meta = self
            .inner
            .http
            .execute(request)
            .await
            .map_err(|e| ctx.transport(&e))?;
        if !meta.status.is_success() {
            return Err(ctx.response(&meta));
        }
        let value: serde_json::Value = serde_json::from_slice(&meta.body).map_err(|e| {
            Error::protocol(
                Some(meta.status.as_u16()),
                format!("the userinfo answer of {} is not JSON ({e})", self.inner.id),
                "",
            )
        })?;
        let mut here = &value;
        for part in path {
            match here.get(part) {
                Some(next) => here = next,
                None => return Ok(None),
            }
        }
        let id = match here {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            _ => return Ok(None),
        };
        Ok(AccountId::new(id).ok())
    }

    /// The origins of the provider's APIs, as configured.
    pub fn api_base_urls(&self) -> &[String] {
        &self.inner.api_base_urls
    }

    /// Whether `url` is under one of the provider's API base URLs: same
    /// scheme, same host (a `*.` base matches any subdomain), same port, and
    /// a path under the base's path. With no base URLs configured, every
    /// URL is allowed (the provider does not say where its APIs are).
    pub fn allows_api_url(&self, url: &Url) -> bool {
        api_url_allowed(&self.inner.api_base_urls, url)
    }

    pub(crate) fn id_ref(&self) -> &ProviderId {
        &self.inner.id
    }

    pub(crate) fn default_scopes(&self) -> &[String] {
        &self.inner.default_scopes
    }

    /// Reads a successful token response that did not come through the
    /// `oauth2` crate. Nothing of an unreadable body is quoted: it may hold
    /// new tokens that no redaction list knows yet.
    pub(crate) fn parse_token_response(&self, meta: &ResponseMeta) -> Result<TokenSet> {
        let response: TokenResponseWithExtras =
            serde_json::from_slice(&meta.body).map_err(|e| {
                Error::protocol(
                    Some(meta.status.as_u16()),
                    format!(
                        "the token endpoint of {} sent a success response this client cannot \
                         read (line {}, column {})",
                        self.inner.id,
                        e.line(),
                        e.column()
                    ),
                    "",
                )
            })?;
        Ok(self.token_set(&response))
    }

    pub(crate) fn context<'a>(
        &'a self,
        endpoint: &'static str,
        secrets: &'a [&'a str],
    ) -> Context<'a> {
        Context {
            provider: &self.inner.id,
            endpoint,
            hooks: self.inner.hooks.as_ref(),
            secrets,
        }
    }

    /// Sends one request built here rather than by the `oauth2` crate and
    /// hands back its response, whatever the status, once the hooks have
    /// observed it. A transport failure is classified by `ctx`; no response
    /// at all is a protocol error "no {`operation`} response".
    pub(crate) async fn send_observed(
        &self,
        exchange: &Exchange<'_>,
        request: oauth2::HttpRequest,
        ctx: &Context<'_>,
        operation: &str,
    ) -> Result<ResponseMeta> {
        exchange
            .send(request)
            .await
            .map_err(|e| ctx.transport(&e))?;
        let meta = exchange
            .take_last()
            .ok_or_else(|| Error::protocol(None, format!("no {operation} response"), ""))?;
        self.inner.hooks.observe_response(&meta);
        Ok(meta)
    }

    pub(crate) fn client_secret_str(&self) -> &str {
        self.inner
            .client_secret
            .as_ref()
            .map_or("", |s| s.expose_secret())
    }

    /// Classifies the outcome of one `oauth2` request made through
    /// `exchange`, with the full response when there was one.
    fn finish<T, E>(
        &self,
        endpoint: &'static str,
        secrets: &[&str],
        outcome: std::result::Result<T, oauth2::RequestTokenError<crate::http::HttpError, E>>,
        exchange: &Exchange<'_>,
    ) -> Result<(T, ResponseMeta)>
    where
        E: oauth2::ErrorResponse + 'static,
    {
        let meta = exchange.take_last();
        if let Some(meta) = &meta {
            self.inner.hooks.observe_response(meta);
        }
        let ctx = self.context(endpoint, secrets);
        match (outcome, meta) {
            (Ok(value), Some(meta)) if meta.status.is_success() => Ok((value, meta)),
            (Err(oauth2::RequestTokenError::Request(err)), _) => Err(ctx.transport(&err)),
            (_, Some(meta)) => Err(ctx.response(&meta)),
            (Ok(_), None) => Err(Error::protocol(
                None,
                format!(
                    "the {endpoint} request of {} produced no response",
                    self.inner.id
                ),
                "",
            )),
            (Err(err), None) => Err(Error::configuration(format!(
                "the {endpoint} request of {} could not be made: {}",
                self.inner.id,
                auth_core::redact::redact(&err.to_string(), secrets)
            ))),
        }
    }

    /// A form POST to `url` with this client's authentication, as the
    /// `oauth2` crate would send it (RFC 6749 §2.3.1 encoding for Basic).
    pub(crate) fn client_form_request(
        &self,
        url: &Url,
        params: &[(&str, &str)],
    ) -> Result<oauth2::HttpRequest> {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in params {
            form.append_pair(name, value);
        }
        let mut builder = http::Request::post(url.as_str())
            .header(http::header::ACCEPT, "application/json")
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            );
        match (self.inner.auth, &self.inner.client_secret) {
            (ClientAuth::ClientSecretBasic, Some(secret)) => {
                use base64::Engine as _;
                let encode = |v: &str| {
                    url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()
                };
                let pair = format!(
                    "{}:{}",
                    encode(&self.inner.client_id),
                    encode(secret.expose_secret())
                );
                let value = format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                );
                builder = builder.header(http::header::AUTHORIZATION, value);
            }
            (ClientAuth::ClientSecretPost, Some(secret)) => {
                form.append_pair("client_id", &self.inner.client_id);
                form.append_pair("client_secret", secret.expose_secret());
            }
            _ => {
                form.append_pair("client_id", &self.inner.client_id);
            }
        }
        builder
            .body(form.finish().into_bytes())
            .map_err(|e| Error::configuration(format!("cannot build a request to {url}: {e}")))
    }

    fn token_set(&self, response: &TokenResponseWithExtras) -> TokenSet {
        let hooks = &self.inner.hooks;
        let mut token = TokenSet::new(
            response.access_token().secret().clone(),
            token_type_name(response.token_type()),
            self.inner.clock.now(),
        );
        if let Some(refresh) = response.refresh_token() {
            token = token.with_refresh_token(refresh.secret().clone());
        }
        if let Some(expires_in) = response.expires_in() {
            token = token.with_expires_in(expires_in);
        }
        if let Some(scopes) = response.scopes() {
            let names = scopes.iter().map(|s| s.as_str().to_owned()).collect();
            token = token.with_scopes(hooks.parse_scopes(names));
        }
        for (name, value) in hooks.token_extras(&response.extra_fields().fields) {
            token = token.with_extra(name, value);
        }
        token
    }

    fn check_iss(&self, callback: &Callback) -> Result<()> {
        match (&self.inner.issuer, callback.iss()) {
            (Some(expected), Some(got)) if got != expected => Err(Error::invalid_input(format!(
                "the callback's iss {got:?} is not this provider's issuer {expected:?} (RFC 9207); \
                 the response may come from another server (mix-up attack); start the authorization again"
            ))),
            (Some(_), None) if self.inner.require_iss => Err(Error::invalid_input(
                "the callback carries no iss although the server promises one (RFC 9207); \
                 start the authorization again",
            )),
            _ => Ok(()),
        }
    }
}

fn token_type_name(token_type: &BasicTokenType) -> String {
    match token_type {
        BasicTokenType::Bearer => "Bearer".to_owned(),
        BasicTokenType::Mac => "MAC".to_owned(),
        BasicTokenType::Extension(other) => other.clone(),
    }
}

#[async_trait]
impl TokenProvider for OAuth2Provider {
    fn id(&self) -> &ProviderId {
        &self.inner.id
    }

    fn authorize(&self, request: AuthorizeRequest) -> Result<PendingAuthorization> {
        self.inner.hooks.check_authorize(&request)?;
        let mut scopes = if request.scopes.is_empty() {
            self.inner.default_scopes.clone()
        } else {
            request.scopes.clone()
        };
        let shape = &self.inner.request;
        for scope in &shape.always_scopes {
            if !scopes.contains(scope) {
                scopes.push(scope.clone());
            }
        }
        let redirect_uri = request
            .redirect_uri
            .clone()
            .or_else(|| self.inner.redirect_uri.clone());
        let state = match &request.state {
            Some(state) => CsrfToken::new(state.clone()),
            None => CsrfToken::new_random(),
        };
        let mut auth = self.inner.client.authorize_url(|| state);
        if shape.scope_separator == " " {
            auth = auth.add_scopes(scopes.iter().cloned().map(Scope::new));
        } else if !scopes.is_empty() {
            auth = auth.add_extra_param("scope", scopes.join(&shape.scope_separator));
        }
        let verifier = if shape.pkce {
            let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
            auth = auth.set_pkce_challenge(challenge);
            Some(verifier)
        } else {
            None
        };
        let redirect = redirect_uri
            .as_ref()
            .map(|uri| {
                RedirectUrl::new(uri.clone()).map_err(|e| {
                    Error::invalid_input(format!("redirect URI {uri:?} is not a URL ({e})"))
                })
            })
            .transpose()?;
        if let Some(redirect) = redirect {
            auth = auth.set_redirect_uri(Cow::Owned(redirect));
        }
        if let Some(prompt) = &request.prompt {
            auth = auth.add_extra_param("prompt", prompt.clone());
        }
        for (name, value) in self
            .inner
            .extra_authorize_params
            .iter()
            .cloned()
            .chain(self.inner.hooks.authorize_params(&request))
            .chain(request.extra_params.iter().cloned())
        {
            auth = auth.add_extra_param(name, value);
        }
        let (url, state) = auth.url();
        Ok(PendingAuthorization::new(
            self.inner.id.clone(),
            request.account,
            url,
            state.secret().clone(),
            verifier.map(|v| v.secret().clone()),
            redirect_uri,
            scopes,
            self.inner.clock.now(),
        ))
    }

    async fn exchange_code(
        &self,
        pending: &PendingAuthorization,
        callback: &Callback,
    ) -> Result<TokenSet> {
        let code = callback.code_or_error()?;
        pending.verify_state(callback)?;
        self.check_iss(callback)?;
        let code = code.expose_secret();
        let verifier = pending
            .pkce_verifier()
            .map(|v| v.expose_secret().to_owned());
        let redirect = pending
            .redirect_uri
            .as_ref()
            .map(|uri| {
                RedirectUrl::new(uri.clone()).map_err(|e| {
                    Error::invalid_input(format!("redirect URI {uri:?} is not a URL ({e})"))
                })
            })
            .transpose()?;
        let secrets = [code, self.client_secret_str()];
        let client = &self.inner.client;
        let mut request = client.exchange_code(AuthorizationCode::new(code.to_owned()));
        if let Some(verifier) = verifier {
            request = request.set_pkce_verifier(PkceCodeVerifier::new(verifier));
        }
        if let Some(redirect) = redirect {
            request = request.set_redirect_uri(Cow::Owned(redirect));
        }
        let shape = &self.inner.request;
        for (name, value) in &shape.token_params {
            request = request.add_extra_param(name.as_str(), value.as_str());
        }
        if shape.echo_state {
            request = request.add_extra_param("state", pending.state().expose_secret());
        }
        let exchange = Exchange::for_token(&self.inner.http, self.inner.hooks.as_ref());
        let outcome = request.request_async(&exchange).await;
        let (response, _) = self.finish("token", &secrets, outcome, &exchange)?;
        Ok(self.token_set(&response))
    }

    async fn refresh(&self, current: &TokenSet) -> Result<TokenSet> {
        let refresh = current.refresh_token().ok_or_else(|| {
            Error::reauthorization_required(None, "the token has no refresh token")
        })?;
        let refresh = refresh.expose_secret();
        let secrets = [
            refresh,
            current.access_token().expose_secret(),
            self.client_secret_str(),
        ];
        let client = &self.inner.client;
        let token = RefreshToken::new(refresh.to_owned());
        let exchange = Exchange::for_token(&self.inner.http, self.inner.hooks.as_ref());
        let shape = &self.inner.request;
        let mut request = client.exchange_refresh_token(&token);
        for (name, value) in shape.token_params.iter().chain(&shape.refresh_params) {
            request = request.add_extra_param(name.as_str(), value.as_str());
        }
        let outcome = request.request_async(&exchange).await;
        let (response, _) = self.finish("token", &secrets, outcome, &exchange)?;
        Ok(self.token_set(&response))
    }

    async fn revoke(&self, token: &TokenSet) -> Result<()> {
        if self.inner.endpoints.revocation.is_none() {
            return Err(Error::Unsupported {
                provider: self.inner.id.clone(),
                operation: "revoke",
            });
        }
        let (value, hint) = match self.inner.hooks.revocation_token(token) {
            RevocationToken::Access(t) => (t, "access_token"),
            RevocationToken::Refresh(t) => (t, "refresh_token"),
        };
        let refresh = token.refresh_token().map_or("", |t| t.expose_secret());
        let secrets = [
            token.access_token().expose_secret(),
            refresh,
            self.client_secret_str(),
        ];
        let endpoint = self
            .inner
            .endpoints
            .revocation
            .as_ref()
            .unwrap_or(&self.inner.endpoints.token);
        // RFC 7009 by hand: the oauth2 crate refuses non-https revocation
        // URLs outright, which would rule out loopback test servers.
        let request =
            self.client_form_request(endpoint, &[("token", value), ("token_type_hint", hint)])?;
        let exchange = Exchange::new(&self.inner.http);
        let outcome: std::result::Result<(), oauth2::RequestTokenError<_, BasicErrorResponse>> =
            exchange
                .send(request)
                .await
                .map(|_| ())
                .map_err(oauth2::RequestTokenError::Request);
        match self.finish("revocation", &secrets, outcome, &exchange) {
            Ok(_) => Ok(()),
            // The token is already dead: the grant is gone, which is what
            // revocation wanted.
            Err(err) if err.is_reauthorization_required() => Ok(()),
            Err(err) => Err(err),
        }
    }

    async fn introspect(&self, token: &TokenSet) -> Result<Introspection> {
        let Some(endpoint) = &self.inner.endpoints.introspection else {
            return Err(Error::Unsupported {
                provider: self.inner.id.clone(),
                operation: "introspect",
            });
        };
        let access = token.access_token().expose_secret();
        let secrets = [access, self.client_secret_str()];
        let hooks = &self.inner.hooks;
        let custom = hooks.introspection_request(&IntrospectionContext {
            endpoint,
            token,
            client_id: &self.inner.client_id,
        });
        let client = &self.inner.client;
        let access_token = AccessToken::new(access.to_owned());
        let meta = match custom {
            Some(request) => {
                let exchange = Exchange::new(&self.inner.http);
                let ctx = self.context("introspection", &secrets);
                let meta = self
                    .send_observed(&exchange, request, &ctx, "introspection")
                    .await?;
                if !meta.status.is_success() {
                    if hooks.introspection_error_means_inactive(&meta) {
                        return Ok(Introspection::inactive());
                    }
                    return Err(ctx.response(&meta));
                }
                meta
            }
            None => {
                // oauth2 builds the RFC 7662 request; the hooks read the raw
                // answer, which may be richer than its typed response.
                let request = client
                    .introspect(&access_token)
                    .map_err(|e| {
                        Error::configuration(format!(
                            "provider {}: cannot introspect ({e})",
                            self.inner.id
                        ))
                    })?
                    .set_token_type_hint("access_token");
                let exchange = Exchange::new(&self.inner.http);
                let outcome = match request.request_async(&exchange).await {
                    // A body oauth2 cannot type is still for the hooks to read.
                    Err(oauth2::RequestTokenError::Parse(..)) => Ok(()),
                    other => other.map(|_| ()),
                };
                self.finish("introspection", &secrets, outcome, &exchange)?
                    .1
            }
        };
        hooks.parse_introspection(&meta).map_err(|e| match e {
            Error::Protocol {
                status,
                message,
                excerpt,
            } => Error::Protocol {
                status,
                message,
                excerpt: auth_core::redact::redact(&excerpt, &secrets),
            },
            other => other,
        })
    }

    fn account_for(&self, token: &TokenSet) -> Option<AccountId> {
        self.inner.hooks.account_for(token)
    }

    fn can_mint(&self) -> bool {
        self.inner.client_credentials.is_some()
    }

    fn refresh_rules(&self) -> auth_core::RefreshRules {
        self.inner.refresh_rules
    }

    fn rejects_token(&self, response: &auth_core::ResourceResponse<'_>) -> bool {
        self.inner.hooks.rejects_token(response)
    }

    /// One client credentials token request (RFC 6749 §4.4.2) with the
    /// configured scopes and parameters, and the key's account as the
    /// configured parameter. `invalid_client` is
    /// [`Configuration`](Error::Configuration), like every answer about the
    /// client; nothing here can flag an account.
    async fn mint(&self, key: &TokenKey) -> Result<TokenSet> {
        let Some(grant) = &self.inner.client_credentials else {
            return Err(Error::Unsupported {
                provider: self.inner.id.clone(),
                operation: "mint (no client credentials grant is configured)",
            });
        };
        let secrets = [self.client_secret_str()];
        let mut request = self
            .inner
            .client
            .exchange_client_credentials()
            .add_scopes(grant.scopes.iter().cloned().map(Scope::new));
        for (name, value) in &grant.params {
            request = request.add_extra_param(name.as_str(), value.as_str());
        }
        if let Some(name) = &grant.account_param {
            request = request.add_extra_param(name.as_str(), key.account.as_str());
        }
        let exchange = Exchange::for_token(&self.inner.http, self.inner.hooks.as_ref());
        let outcome = request.request_async(&exchange).await;
        let (response, _) = self.finish("token", &secrets, outcome, &exchange)?;
        Ok(self.token_set(&response))
    }
}

/// Whether `url` lies under one of `bases`: same scheme, host (a `*.` base
/// matches any subdomain) and port, and a path under the base's path. No
/// bases at all allows every URL.
pub fn api_url_allowed(bases: &[String], url: &Url) -> bool {
    bases.is_empty() || bases.iter().any(|base| url_is_under(url, base))
}

/// Whether `url` lies under `base` (see [`OAuth2Provider::allows_api_url`]).
fn url_is_under(url: &Url, base: &str) -> bool {
    let (wildcard, text) = match base.split_once("://*.") {
        Some((scheme, rest)) => (true, format!("{scheme}://{rest}")),
        None => (false, base.to_owned()),
    };
    let Ok(base) = Url::parse(&text) else {
        return false;
    };
    let (Some(host), Some(base_host)) = (url.host_str(), base.host_str()) else {
        return false;
    };
    let host_ok = if wildcard {
        host.len() > base_host.len()
            && host.ends_with(base_host)
            && host.as_bytes()[host.len() - base_host.len() - 1] == b'.'
    } else {
        host.eq_ignore_ascii_case(base_host)
    };
    let base_path = base.path().trim_end_matches('/');
    let path = url.path();
    url.scheme() == base.scheme()
        && host_ok
        && url.port_or_known_default() == base.port_or_known_default()
        && (path == base_path || path.starts_with(&format!("{base_path}/")) || base_path.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_moves_every_endpoint_and_keeps_its_path() {
        let spec = auth_catalogue::lookup("google-health").unwrap();
        let local = Url::parse("http://127.0.0.1:9/").unwrap();
        let google = crate::catalogue::builder("google-health", spec, "id")
            .unwrap()
            .client_secret("secret")
            .base_url(&local)
            .unwrap()
            .build()
            .unwrap();
        let e = google.endpoints();
        assert_eq!(e.authorize.as_str(), "http://127.0.0.1:9/o/oauth2/v2/auth");
        assert_eq!(e.token.as_str(), "http://127.0.0.1:9/token");
        let tokeninfo = e.introspection.as_ref().unwrap();
        assert_eq!(tokeninfo.as_str(), "http://127.0.0.1:9/tokeninfo");
        let revoke = e.revocation.as_ref().unwrap();
        assert_eq!(revoke.as_str(), "http://127.0.0.1:9/revoke");
        assert_eq!(google.inner.issuer.as_deref(), Some("http://127.0.0.1:9"));
        assert_eq!(google.api_base_urls(), ["http://127.0.0.1:9"]);

        let strava =
            crate::catalogue::builder("strava", auth_catalogue::lookup("strava").unwrap(), "1")
                .unwrap()
                .client_secret("s")
                .base_url(&Url::parse("http://127.0.0.1:9/mirror/").unwrap())
                .unwrap()
                .build()
                .unwrap();
        assert_eq!(strava.api_base_urls(), ["http://127.0.0.1:9/mirror/api/v3"]);
        let err = OAuth2Provider::builder("x".parse().unwrap(), "id")
            .base_url(&local)
            .unwrap_err();
        assert!(err.to_string().contains("no endpoints"), "{err}");
    }

    #[test]
    fn single_endpoints_replace_the_configured_ones_or_stand_alone() {
        let url = |path: &str| Url::parse(&format!("https://id.example/{path}")).unwrap();
        let strava =
            crate::catalogue::builder("strava", auth_catalogue::lookup("strava").unwrap(), "1")
                .unwrap()
                .client_secret("s")
                .token_url(url("token"))
                .revocation_url(url("revoke"))
                .build()
                .unwrap();
        let e = strava.endpoints();
        assert_eq!(e.token, url("token"));
        assert_eq!(e.revocation, Some(url("revoke")));
        assert_eq!(
            e.authorize.as_str(),
            "https://www.strava.com/oauth/authorize"
        );

        let alone = OAuth2Provider::builder("x".parse().unwrap(), "id")
            .client_auth(ClientAuth::None)
            .authorize_url(url("authorize"))
            .token_url(url("token"))
            .introspection_url(url("introspect"))
            .build()
            .unwrap();
        assert_eq!(alone.endpoints().introspection, Some(url("introspect")));
        let err = OAuth2Provider::builder("x".parse().unwrap(), "id")
            .client_auth(ClientAuth::None)
            .token_url(url("token"))
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("no endpoints"), "{err}");
    }

    #[test]
    fn secrets_must_fit_the_client_authentication() {
        let builder = || {
            OAuth2Provider::builder("x".parse().unwrap(), "id").endpoints(Endpoints::new(
                Url::parse("https://id.example/authorize").unwrap(),
                Url::parse("https://id.example/token").unwrap(),
            ))
        };
        let public_with_secret = builder()
            .client_auth(ClientAuth::None)
            .client_secret("s")
            .build()
            .unwrap_err();
        assert!(
            public_with_secret.to_string().contains("public client"),
            "{public_with_secret}"
        );
        let empty = builder().client_secret("").build().unwrap_err();
        assert!(
            empty.to_string().contains("needs a client secret"),
            "{empty}"
        );
        assert!(builder().client_auth(ClientAuth::None).build().is_ok());
        assert!(builder().client_secret("s").build().is_ok());
    }

    #[test]
    fn the_check_authorize_hook_can_refuse_a_request() {
        #[derive(Debug)]
        struct NoPrompt;
        impl Hooks for NoPrompt {
            fn check_authorize(&self, request: &AuthorizeRequest) -> Result<()> {
                match &request.prompt {
                    Some(_) => Err(Error::invalid_input("no prompt here")),
                    None => Ok(()),
                }
            }
        }
        let provider = OAuth2Provider::builder("x".parse().unwrap(), "id")
            .client_auth(ClientAuth::None)
            .endpoints(Endpoints::new(
                Url::parse("https://id.example/authorize").unwrap(),
                Url::parse("https://id.example/token").unwrap(),
            ))
            .redirect_uri("https://app.example/cb")
            .hooks(Arc::new(NoPrompt))
            .build()
            .unwrap();
        assert!(provider.authorize(AuthorizeRequest::new()).is_ok());
        let err = provider
            .authorize(AuthorizeRequest::new().prompt("login"))
            .unwrap_err();
        assert!(err.to_string().contains("no prompt here"), "{err}");
    }

    #[test]
    fn api_urls_must_lie_under_a_base() {
        let bases = vec![
            "https://www.strava.com/api/v3".to_owned(),
            "https://*.my.salesforce.com".to_owned(),
        ];
        let allowed = |u: &str| api_url_allowed(&bases, &Url::parse(u).unwrap());
        assert!(allowed("https://www.strava.com/api/v3/athlete"));
        assert!(allowed("https://www.strava.com/api/v3"));
        assert!(allowed("https://acme.my.salesforce.com/services/data"));
        assert!(
            !allowed("https://www.strava.com/api/v30/athlete"),
            "a sibling path"
        );
        assert!(!allowed("https://www.strava.com/oauth/token"));
        assert!(
            !allowed("http://www.strava.com/api/v3/athlete"),
            "another scheme"
        );
        assert!(
            !allowed("https://www.strava.com:8443/api/v3/athlete"),
            "another port"
        );
        assert!(!allowed("https://evil.example/api/v3"));
        assert!(
            !allowed("https://my.salesforce.com/x"),
            "the wildcard needs a subdomain"
        );
        assert!(!allowed("https://evilmy.salesforce.com/x"));
        assert!(api_url_allowed(
            &[],
            &Url::parse("https://anything.example/").unwrap()
        ));
    }
}
