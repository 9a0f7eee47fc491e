//! One `[providers.NAME]` section: its fields, the rules per kind, and
//! the provider it builds. Never prints or reports a client secret.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use auth_catalogue::{Catalogue, ClientAuthMethod, ProviderSpec};

use auth_core::{ProviderId, TokenProvider};
use auth_fitbit::{AppType, FitbitProvider, Scope};
use auth_oauth2::{
    ClientAuth, ClientCredentials, Endpoints, HttpConfig, OAuth2Provider, OAuth2ProviderBuilder,
    is_loopback,
};
use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

use crate::exit::{CliResult, Failure, Target};

/// The redirect URI used when a provider names none: the loopback callback
/// registered for the emulator's demo clients (RFC 8252).
pub(crate) const DEFAULT_REDIRECT_URI: &str = "http://127.0.0.1:8976/callback";

/// One `[providers.NAME]` table, as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    kind: String,
    client_id: String,
    client_secret_env: Option<String>,
    /// Read as a raw value so that a mistyped secret is never echoed by a
    /// type error.
    client_secret: Option<toml::Value>,
    app_type: Option<String>,
    redirect_uri: Option<String>,
    scopes: Option<Vec<String>>,
    issuer: Option<String>,
    auth_method: Option<String>,
    authorize_url: Option<String>,
    token_url: Option<String>,
    introspect_url: Option<String>,
    revoke_url: Option<String>,
    tokeninfo_url: Option<String>,
    /// `oauth2` only: `authorization_code` (the default) or
    /// `client_credentials`.
    grant: Option<String>,
    /// `oauth2` only: the RFC 8628 endpoint when there is no discovery.
    device_authorization_url: Option<String>,
    /// `oauth2` with `client_credentials`: sent as `audience`.
    audience: Option<String>,
    /// `oauth2` with `client_credentials`: sent as `resource` (RFC 8707).
    resource: Option<String>,
    /// The access token lifetime to ask for, where the provider takes one
    /// (legacy Fitbit: 3600 or 28800).
    expires_in: Option<u64>,
    /// A catalogue template's values (`domain`, `tenant`, `host`, `realm`).
    placeholders: Option<BTreeMap<String, String>>,
    /// Where the provider's APIs are: `authctl get` sends tokens there only.
    api_base_urls: Option<Vec<String>>,
}

/// Which grant an `oauth2` provider gets its tokens with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Grant {
    /// A person logs in (`authctl login`, or `login --device`).
    AuthorizationCode,
    /// The client acts as itself: `authctl token` works with no login.
    ClientCredentials,
}

/// The kinds of provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProviderKind {
    /// An entry of the provider catalogue (`kind = "strava"`).
    Catalogue,
    /// The legacy Fitbit server.
    Fitbit,
    /// Google OAuth for the Google Health API.
    GoogleHealth,
    /// Any standards OAuth 2.0 server.
    OAuth2,
}

impl ProviderKind {
    fn parse(value: &str) -> Option<Self> {
        match value {
            "fitbit" => Some(Self::Fitbit),
            "google-health" => Some(Self::GoogleHealth),
            "oauth2" => Some(Self::OAuth2),
            _ => None,
        }
    }

    /// The name used in the config.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Fitbit => "fitbit",
            Self::GoogleHealth => "google-health",
            Self::OAuth2 => "oauth2",
            Self::Catalogue => "catalogue",
        }
    }
}

/// Where the client secret comes from.
enum SecretSource {
    None,
    Env(String),
    Inline(SecretString),
}

/// Endpoint URLs given in the config.
#[derive(Debug, Default, Clone)]
struct Urls {
    authorize: Option<Url>,
    token: Option<Url>,
    introspect: Option<Url>,
    revoke: Option<Url>,
    tokeninfo: Option<Url>,
    device: Option<Url>,
}

/// One checked `[providers.NAME]` section.
pub(crate) struct ProviderConfig {
    file: String,
    name: String,
    kind: ProviderKind,
    client_id: String,
    secret: SecretSource,
    app_type: AppType,
    redirect_uri: Url,
    scopes: Vec<String>,
    issuer: Option<String>,
    auth_method: ClientAuth,
    urls: Urls,
    grant: Grant,
    audience: Option<String>,
    resource: Option<String>,
    expires_in: Option<u64>,
    /// The catalogue entry of a `kind = "NAME"` section, placeholders filled.
    entry: Option<Box<ProviderSpec>>,
    api_base_urls: Vec<String>,
}

impl fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secret = match &self.secret {
            SecretSource::None => "none".to_owned(),
            SecretSource::Env(name) => format!("env {name}"),
            SecretSource::Inline(_) => "[redacted]".to_owned(),
        };
        f.debug_struct("ProviderConfig")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("client_id", &self.client_id)
            .field("client_secret", &secret)
            .field("redirect_uri", &self.redirect_uri.as_str())
            .field("scopes", &self.scopes)
            .field("grant", &self.grant)
            .finish_non_exhaustive()
    }
}

/// Names the file and provider in every message about a section.
struct Section<'a> {
    file: &'a str,
    name: &'a str,
}

impl Section<'_> {
    fn error(&self, field: &str, problem: impl fmt::Display) -> Failure {
        Failure::usage(
            format!(
                "{}: [providers.{}] {field}: {problem}",
                self.file, self.name
            ),
            format!(
                "fix `{field}` in the [providers.{}] section of {}",
                self.name, self.file
            ),
        )
    }

    fn not_for_kind(&self, field: &str, value: bool, kind: ProviderKind) -> CliResult {
        if value {
            Err(self.error(
                field,
                format!("does not apply to kind = \"{}\"; remove it", kind.as_str()),
            ))
        } else {
            Ok(())
        }
    }

    fn parse_url(&self, field: &str, value: &str) -> CliResult<Url> {
        let url = Url::parse(value)
            .map_err(|e| self.error(field, format!("{value:?} is not a valid URL ({e})")))?;
        if url.fragment().is_some() {
            return Err(self.error(field, format!("{value:?} must not have a #fragment")));
        }
        Ok(url)
    }

    /// An endpoint URL: https, or http to a loopback host.
    fn endpoint(&self, field: &str, value: Option<&str>) -> CliResult<Option<Url>> {
        let url = value.map(|v| self.parse_url(field, v)).transpose()?;
        if let Some(url) = &url {
            let secure = url.scheme() == "https" || (url.scheme() == "http" && is_loopback(url));
            if !secure {
                return Err(self.error(
                    field,
                    format!(
                        "{url} uses {}://; only https:// is allowed, or http:// to a loopback \
                         host (127.0.0.1, [::1], localhost)",
                        url.scheme()
                    ),
                ));
            }
        }
        Ok(url)
    }
}

/// Turns a serde error from one section into a message naming the field.
fn field_error(section: &Section<'_>, err: &toml::de::Error) -> Failure {
    let text = err.to_string();
    let mut problem = Vec::new();
    let mut field = None;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        match line.strip_prefix("in `").and_then(|l| l.strip_suffix('`')) {
            Some(name) => field = Some(name.to_owned()),
            None => problem.push(line),
        }
    }
    let problem = problem.join(" ");
    match field {
        Some(field) => section.error(&field, problem),
        None => Failure::usage(
            format!("{}: [providers.{}]: {problem}", section.file, section.name),
            format!(
                "fix the [providers.{}] section of {}",
                section.name, section.file
            ),
        ),
    }
}

impl ProviderConfig {
    pub(super) fn from_table(
        file: &str,
        name: &str,
        table: toml::Table,
        catalogue: &Catalogue,
    ) -> CliResult<Self> {
        let section = Section { file, name };
        let raw: RawProvider = RawProvider::deserialize(toml::Value::Table(table))
            .map_err(|e| field_error(&section, &e))?;
        ProviderId::new(name).map_err(|e| {
            Failure::usage(
                format!("{file}: [providers.{name}]: the name is not a valid provider id ({e})"),
                format!("rename the section in {file}"),
            )
        })?;
        let kind = match ProviderKind::parse(&raw.kind) {
            Some(kind) => kind,
            None if catalogue.get(&raw.kind).is_some() => ProviderKind::Catalogue,
            None => {
                return Err(section.error(
                    "kind",
                    format!(
                        "{:?} is not a provider kind; use \"fitbit\", \"google-health\", \
                         \"oauth2\" or a catalogue entry (`authctl providers` lists them)",
                        raw.kind
                    ),
                ));
            }
        };
        if raw.client_id.trim().is_empty() {
            return Err(section.error("client_id", "must not be empty"));
        }
        let secret = secret_source(&section, &raw)?;
        let urls = Urls {
            authorize: section.endpoint("authorize_url", raw.authorize_url.as_deref())?,
            token: section.endpoint("token_url", raw.token_url.as_deref())?,
            introspect: section.endpoint("introspect_url", raw.introspect_url.as_deref())?,
            revoke: section.endpoint("revoke_url", raw.revoke_url.as_deref())?,
            tokeninfo: section.endpoint("tokeninfo_url", raw.tokeninfo_url.as_deref())?,
            device: section.endpoint(
                "device_authorization_url",
                raw.device_authorization_url.as_deref(),
            )?,
        };
        if let Some(issuer) = raw.issuer.as_deref() {
            section.endpoint("issuer", Some(issuer))?;
        }
        let has_secret = !matches!(secret, SecretSource::None);
        let grant = grant_rules(&section, &raw, kind)?;
        let (app_type, auth_method) = match kind {
            ProviderKind::Fitbit => (
                fitbit_rules(&section, &raw, has_secret)?,
                ClientAuth::ClientSecretBasic,
            ),
            ProviderKind::GoogleHealth => {
                google_rules(&section, &raw, has_secret)?;
                (AppType::Server, ClientAuth::ClientSecretPost)
            }
            ProviderKind::OAuth2 => (
                AppType::Server,
                oauth2_rules(&section, &raw, has_secret, &urls, grant)?,
            ),
            ProviderKind::Catalogue => {
                let spec = catalogue.get(&raw.kind).expect("checked above");
                (
                    AppType::Server,
                    catalogue_rules(&section, &raw, has_secret, spec)?,
                )
            }
        };
        let entry = match kind {
            ProviderKind::Catalogue => {
                let spec = catalogue.get(&raw.kind).expect("checked above");
                Some(Box::new(fill_placeholders(&section, &raw, spec)?))
            }
            _ => {
                if raw.placeholders.is_some() {
                    return Err(section.error(
                        "placeholders",
                        "applies only to catalogue templates (okta, auth0, keycloak, entra); \
                         remove it",
                    ));
                }
                None
            }
        };
        let expires_in_entry = match kind {
            ProviderKind::Fitbit => catalogue.get("fitbit"),
            _ => entry.as_deref(),
        };
        if let Some(seconds) = raw.expires_in {
            let choices = expires_in_entry
                .map(|e| e.response.expires_in_choices.clone())
                .unwrap_or_default();
            if !choices.contains(&seconds) {
                return Err(section.error(
                    "expires_in",
                    if choices.is_empty() {
                        "this provider takes no expires_in on its token requests; remove it"
                            .to_owned()
                    } else {
                        format!(
                            "{seconds} is not a lifetime this provider accepts; use {}",
                            choices
                                .iter()
                                .map(u64::to_string)
                                .collect::<Vec<_>>()
                                .join(" or ")
                        )
                    },
                ));
            }
        }
        let api_base_urls = match &raw.api_base_urls {
            Some(urls) => {
                for url in urls {
                    section.endpoint("api_base_urls", Some(&url.replacen("*.", "wildcard.", 1)))?;
                }
                urls.clone()
            }
            None => default_api_base_urls(kind, entry.as_deref(), catalogue, &urls),
        };
        let redirect_uri = section.parse_url(
            "redirect_uri",
            raw.redirect_uri.as_deref().unwrap_or(DEFAULT_REDIRECT_URI),
        )?;
        Ok(Self {
            file: file.to_owned(),
            name: name.to_owned(),
            kind,
            client_id: raw.client_id,
            secret,
            app_type,
            redirect_uri,
            scopes: raw.scopes.unwrap_or_default(),
            issuer: raw.issuer,
            auth_method,
            urls,
            grant,
            audience: raw.audience,
            resource: raw.resource,
            expires_in: raw.expires_in,
            entry,
            api_base_urls,
        })
    }

    /// Where this provider's APIs are (empty: anywhere). `authctl get`
    /// refuses other URLs before sending a token.
    pub(crate) fn api_base_urls(&self) -> &[String] {
        &self.api_base_urls
    }

    /// Whether the secret is written in the file itself.
    pub(super) fn has_inline_secret(&self) -> bool {
        matches!(self.secret, SecretSource::Inline(_))
    }

    /// The provider name (the provider id).
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The kind.
    pub(crate) fn kind(&self) -> ProviderKind {
        self.kind
    }

    /// The redirect URI registered with the provider.
    pub(crate) fn redirect_uri(&self) -> &Url {
        &self.redirect_uri
    }

    fn section(&self) -> Section<'_> {
        Section {
            file: &self.file,
            name: &self.name,
        }
    }

    /// Reads the client secret, from the environment if so configured.
    fn client_secret(&self) -> CliResult<Option<SecretString>> {
        match &self.secret {
            SecretSource::None => Ok(None),
            SecretSource::Inline(secret) => Ok(Some(secret.clone())),
            SecretSource::Env(var) => match std::env::var(var) {
                Ok(value) if !value.is_empty() => Ok(Some(SecretString::from(value))),
                _ => Err(Failure::usage(
                    format!(
                        "{}: [providers.{}] client_secret_env: the environment variable {var} is \
                         not set (or is empty)",
                        self.file, self.name
                    ),
                    format!("export {var}=<the client secret> and run the command again"),
                )),
            },
        }
    }

    /// Fails as [`build`](Self::build) would on a client secret missing from
    /// the environment, without building anything.
    pub(crate) fn check_secret(&self) -> CliResult<()> {
        let secret = self.client_secret()?;
        if self.kind == ProviderKind::GoogleHealth && secret.is_none() {
            return Err(self.google_secret_missing());
        }
        Ok(())
    }

    /// The error for a Google section without a client secret.
    fn google_secret_missing(&self) -> Failure {
        self.section()
            .error("client_secret_env", "missing: the Google client secret")
    }

    /// Builds the provider. For `oauth2` with an issuer this fetches the
    /// server's metadata.
    pub(crate) async fn build(&self) -> CliResult<Arc<dyn TokenProvider>> {
        let secret = self.client_secret()?;
        let target = Target {
            provider: &self.name,
            account: None,
        };
        let library = |e: auth_core::Error| {
            Failure::from_auth(&e, &target)
                .context(format!("{}: [providers.{}]", self.file, self.name))
        };
        let provider: Arc<dyn TokenProvider> = match self.kind {
            ProviderKind::Fitbit => Arc::new(self.fitbit(secret).map_err(library)?),
            ProviderKind::GoogleHealth => {
                let secret = secret.ok_or_else(|| self.google_secret_missing())?;
                Arc::new(self.google_health(secret).map_err(library)?)
            }
            ProviderKind::OAuth2 => Arc::new(self.oauth2(secret.as_ref()).await?),
            ProviderKind::Catalogue => Arc::new(self.catalogue(secret).map_err(library)?),
        };
        Ok(provider)
    }

    /// `spec` with the section's endpoint URLs and issuer in place of the
    /// entry's.
    fn with_overrides(&self, mut spec: ProviderSpec) -> ProviderSpec {
        let urls = &self.urls;
        let e = &mut spec.endpoints;
        if let Some(url) = &urls.authorize {
            e.authorize = url.to_string();
        }
        if let Some(url) = &urls.token {
            e.token = url.to_string();
        }
        if let Some(url) = &urls.revoke {
            e.revoke = Some(url.to_string());
        }
        // Google's tokeninfo is its introspection.
        if let Some(url) = urls.introspect.as_ref().or(urls.tokeninfo.as_ref()) {
            e.introspect = Some(url.to_string());
        }
        if let Some(url) = &urls.device {
            e.device_authorization = Some(url.to_string());
        }
        if let Some(issuer) = &self.issuer {
            e.issuer = Some(issuer.clone());
        }
        spec
    }

    /// The section's redirect URI, API base URLs, scopes, secret and
    /// `expires_in` on `builder`.
    fn configure(
        &self,
        mut builder: OAuth2ProviderBuilder,
        secret: Option<SecretString>,
    ) -> OAuth2ProviderBuilder {
        builder = builder
            .redirect_uri(self.redirect_uri.as_str())
            .api_base_urls(self.api_base_urls.clone());
        if !self.scopes.is_empty() {
            builder = builder.default_scopes(self.scopes.clone());
        }
        if let Some(secret) = secret {
            builder = builder.client_secret(secret);
        }
        if let Some(seconds) = self.expires_in {
            builder = builder.expires_in(seconds);
        }
        builder
    }

    /// The built-in entry `name`.
    fn builtin(name: &str) -> auth_core::Result<ProviderSpec> {
        auth_catalogue::lookup(name).cloned().ok_or_else(|| {
            auth_core::Error::configuration(format!("the provider catalogue has no entry {name:?}"))
        })
    }

    /// Builds a `kind = "fitbit"` provider: the `fitbit` entry with the
    /// section's URLs, the app type's client authentication and Fitbit's
    /// hooks; scope names as [`Scope::parse`] writes them.
    fn fitbit(&self, secret: Option<SecretString>) -> auth_core::Result<OAuth2Provider> {
        let spec = self.with_overrides(Self::builtin("fitbit")?);
        let builder = FitbitProvider::from_entry(&self.name, &spec, &self.client_id)?
            .client_auth(self.app_type.client_auth());
        let mut builder = self.configure(builder, secret);
        if !self.scopes.is_empty() {
            builder = builder.default_scopes(self.scopes.iter().map(|s| Scope::parse(s)));
        }
        builder.build()
    }

    /// Builds a `kind = "google-health"` provider: the `google-health`
    /// entry with the section's URLs. Google's issuer is the origin of its
    /// authorize endpoint; the same holds for the emulator.
    fn google_health(&self, secret: SecretString) -> auth_core::Result<OAuth2Provider> {
        let mut spec = self.with_overrides(Self::builtin("google-health")?);
        match (&self.issuer, &self.urls.authorize) {
            (Some(issuer), _) => {
                spec.endpoints.issuer = Some(issuer.trim_end_matches('/').to_owned());
            }
            (None, Some(authorize)) => {
                spec.endpoints.issuer = Some(authorize.origin().ascii_serialization());
            }
            (None, None) => {}
        }
        let builder = auth_oauth2::catalogue::builder(&self.name, &spec, &self.client_id)?;
        self.configure(builder, Some(secret)).build()
    }

    /// Builds a catalogue provider: the entry, with the section's endpoint
    /// overrides, scopes, redirect URI and secret.
    fn catalogue(&self, secret: Option<SecretString>) -> auth_core::Result<OAuth2Provider> {
        let spec = self.with_overrides(
            self.entry
                .as_deref()
                .expect("a catalogue section has its entry")
                .clone(),
        );
        let builder = auth_oauth2::catalogue::builder(&self.name, &spec, &self.client_id)?;
        self.configure(builder, secret).build()
    }

    /// Builds a `kind = "oauth2"` provider (for `login --device`, which
    /// needs the device flow of this concrete type).
    pub(crate) async fn build_oauth2(&self) -> CliResult<OAuth2Provider> {
        let secret = self.client_secret()?;
        self.oauth2(secret.as_ref()).await
    }

    async fn oauth2(&self, secret: Option<&SecretString>) -> CliResult<OAuth2Provider> {
        let target = Target {
            provider: &self.name,
            account: None,
        };
        let library = |e: auth_core::Error| {
            Failure::from_auth(&e, &target)
                .context(format!("{}: [providers.{}]", self.file, self.name))
        };
        let urls = self.urls.clone();
        let id = ProviderId::new(&self.name).map_err(library)?;
        // A client credentials provider never sends anyone to authorize:
        // its token URL stands in for the authorize URL it has no use for.
        let authorize = match (urls.authorize, self.grant) {
            (None, Grant::ClientCredentials) => urls.token.clone(),
            (authorize, _) => authorize,
        };
        let mut builder = match (&self.issuer, authorize, urls.token) {
            (Some(issuer), _, _) => {
                let issuer = Url::parse(issuer).map_err(|e| {
                    self.section()
                        .error("issuer", format!("not a valid URL ({e})"))
                })?;
                OAuth2Provider::discover(id, &self.client_id, &issuer, HttpConfig::default())
                    .await
                    .map_err(library)?
            }
            (None, Some(authorize), Some(token)) => {
                let mut endpoints = Endpoints::new(authorize, token);
                if let Some(url) = urls.introspect {
                    endpoints = endpoints.with_introspection(url);
                }
                if let Some(url) = urls.revoke {
                    endpoints = endpoints.with_revocation(url);
                }
                if let Some(url) = urls.device {
                    endpoints = endpoints.with_device_authorization(url);
                }
                OAuth2Provider::builder(id, &self.client_id).endpoints(endpoints)
            }
            _ => {
                return Err(self.section().error(
                    "token_url",
                    "missing: give issuer, or authorize_url and token_url",
                ));
            }
        };
        builder = builder
            .client_auth(self.auth_method)
            .redirect_uri(self.redirect_uri.as_str())
            .default_scopes(self.scopes.clone());
        if self.grant == Grant::ClientCredentials {
            let mut grant = ClientCredentials::new().scopes(self.scopes.clone());
            if let Some(audience) = &self.audience {
                grant = grant.audience(audience);
            }
            if let Some(resource) = &self.resource {
                grant = grant.resource(resource);
            }
            builder = builder.client_credentials(grant);
        }
        if let Some(secret) = secret {
            builder = builder.client_secret(secret.clone());
        }
        builder.build().map_err(library)
    }
}

/// Where the secret comes from; at most one of the two keys.
fn secret_source(section: &Section<'_>, raw: &RawProvider) -> CliResult<SecretSource> {
    match (&raw.client_secret_env, &raw.client_secret) {
        (Some(_), Some(_)) => Err(section.error(
            "client_secret",
            "give either client_secret_env or client_secret, not both (prefer client_secret_env)",
        )),
        (Some(var), None) => {
            if var.is_empty() || var.contains(['=', '\0']) {
                return Err(section.error(
                    "client_secret_env",
                    format!("{var:?} is not an environment variable name"),
                ));
            }
            Ok(SecretSource::Env(var.clone()))
        }
        (None, Some(toml::Value::String(secret))) => {
            Ok(SecretSource::Inline(SecretString::from(secret.clone())))
        }
        (None, Some(_)) => Err(section.error("client_secret", "must be a string")),
        (None, None) => Ok(SecretSource::None),
    }
}

/// A catalogue entry's kind: the entry decides the client authentication,
/// so the section gives only the id, the secret (unless the entry's clients
/// are public) and the redirect URI.
fn catalogue_rules(
    section: &Section<'_>,
    raw: &RawProvider,
    has_secret: bool,
    spec: &ProviderSpec,
) -> CliResult<ClientAuth> {
    let kind = ProviderKind::Catalogue;
    section.not_for_kind("app_type", raw.app_type.is_some(), kind)?;
    section.not_for_kind("auth_method", raw.auth_method.is_some(), kind)?;
    section.not_for_kind("tokeninfo_url", raw.tokeninfo_url.is_some(), kind)?;
    section.not_for_kind("grant", raw.grant.is_some(), kind)?;
    let auth = auth_oauth2::catalogue::client_auth(spec.client.auth);
    match (spec.client.auth, has_secret) {
        (ClientAuthMethod::None, true) => Err(section.error(
            "client_secret",
            format!(
                "{} clients are public and have no secret; remove it",
                raw.kind
            ),
        )),
        (ClientAuthMethod::None, false) | (_, true) => Ok(auth),
        (_, false) => Err(section.error(
            "client_secret_env",
            format!(
                "missing: {} authenticates clients with {}; name the environment variable \
                 that holds the client secret",
                raw.kind,
                spec.client.auth.as_str()
            ),
        )),
    }
}

/// A template entry's placeholders, from `placeholders = { domain = "…" }`.
fn fill_placeholders(
    section: &Section<'_>,
    raw: &RawProvider,
    spec: &ProviderSpec,
) -> CliResult<ProviderSpec> {
    let values = raw.placeholders.clone().unwrap_or_default();
    if !spec.is_template() {
        if raw.placeholders.is_some() {
            return Err(section.error(
                "placeholders",
                format!("{} is not a template; remove it", raw.kind),
            ));
        }
        return Ok(spec.clone());
    }
    for name in values.keys() {
        if !spec.endpoints.placeholders.contains(name) {
            return Err(section.error(
                "placeholders",
                format!(
                    "{name:?} is not a placeholder of {}; it takes {}",
                    raw.kind,
                    spec.endpoints.placeholders.join(", ")
                ),
            ));
        }
    }
    spec.instantiate(&values)
        .map_err(|e| section.error("placeholders", e))
}

/// The API origins when the section names none: the catalogue entry's (for
/// `fitbit` and `google-health`, their built-in entries), plus the origin of
/// any endpoint the section points elsewhere (a local emulator serves both).
/// A plain `oauth2` section allows any URL.
fn default_api_base_urls(
    kind: ProviderKind,
    entry: Option<&ProviderSpec>,
    catalogue: &Catalogue,
    urls: &Urls,
) -> Vec<String> {
    let entry = match kind {
        ProviderKind::Catalogue => entry,
        ProviderKind::Fitbit => catalogue.get("fitbit"),
        ProviderKind::GoogleHealth => catalogue.get("google-health"),
        ProviderKind::OAuth2 => None,
    };
    let Some(entry) = entry else {
        return Vec::new();
    };
    let mut bases = entry.endpoints.api_base_urls.clone();
    for url in [
        &urls.authorize,
        &urls.token,
        &urls.introspect,
        &urls.revoke,
        &urls.tokeninfo,
        &urls.device,
    ]
    .into_iter()
    .flatten()
    {
        let origin = format!("{}/", url.origin().ascii_serialization());
        if !bases.contains(&origin) {
            bases.push(origin);
        }
    }
    bases
}

/// `kind = "fitbit"`: the app type decides whether there is a secret.
fn fitbit_rules(section: &Section<'_>, raw: &RawProvider, has_secret: bool) -> CliResult<AppType> {
    let kind = ProviderKind::Fitbit;
    section.not_for_kind("issuer", raw.issuer.is_some(), kind)?;
    section.not_for_kind("auth_method", raw.auth_method.is_some(), kind)?;
    section.not_for_kind("tokeninfo_url", raw.tokeninfo_url.is_some(), kind)?;
    let app_type = match raw.app_type.as_deref() {
        None | Some("server") => AppType::Server,
        Some("public") => AppType::Client,
        Some(other) => {
            return Err(section.error(
                "app_type",
                format!("{other:?} is not an app type; use \"server\" or \"public\""),
            ));
        }
    };
    match (app_type, has_secret) {
        (AppType::Server, false) => Err(section.error(
            "client_secret_env",
            "missing: a Fitbit server app needs its client secret; name the environment \
             variable that holds it (or set app_type = \"public\")",
        )),
        (AppType::Client, true) => Err(section.error(
            "app_type",
            "a public app has no client secret; remove client_secret_env / client_secret, or \
             use app_type = \"server\"",
        )),
        _ => Ok(app_type),
    }
}

/// `kind = "google-health"`: a web client with a secret; tokeninfo is its
/// introspection.
fn google_rules(section: &Section<'_>, raw: &RawProvider, has_secret: bool) -> CliResult {
    let kind = ProviderKind::GoogleHealth;
    section.not_for_kind("app_type", raw.app_type.is_some(), kind)?;
    section.not_for_kind("auth_method", raw.auth_method.is_some(), kind)?;
    section.not_for_kind("introspect_url", raw.introspect_url.is_some(), kind)?;
    if has_secret {
        Ok(())
    } else {
        Err(section.error(
            "client_secret_env",
            "missing: a Google web client needs its client secret; name the environment \
             variable that holds it",
        ))
    }
}

/// `kind = "oauth2"`: discovery or explicit endpoints, and a secret that
/// matches the client authentication method.
fn oauth2_rules(
    section: &Section<'_>,
    raw: &RawProvider,
    has_secret: bool,
    urls: &Urls,
    grant: Grant,
) -> CliResult<ClientAuth> {
    let kind = ProviderKind::OAuth2;
    if grant == Grant::ClientCredentials && raw.auth_method.as_deref() == Some("none") {
        return Err(section.error(
            "auth_method",
            "the client credentials grant needs a confidential client (RFC 6749 §4.4); use \
             client_secret_basic or client_secret_post, with its secret",
        ));
    }
    section.not_for_kind("app_type", raw.app_type.is_some(), kind)?;
    section.not_for_kind("tokeninfo_url", raw.tokeninfo_url.is_some(), kind)?;
    let auth_method = match raw.auth_method.as_deref() {
        None => ClientAuth::ClientSecretBasic,
        Some(method) => method.parse::<ClientAuth>().map_err(|_| {
            section.error(
                "auth_method",
                format!(
                    "{method:?} is not supported; use \"client_secret_basic\", \
                     \"client_secret_post\" or \"none\""
                ),
            )
        })?,
    };
    match (auth_method, has_secret) {
        (ClientAuth::None, true) => {
            return Err(section.error(
                "auth_method",
                "\"none\" is for public clients, which have no secret; remove the secret or \
                 choose client_secret_basic / client_secret_post",
            ));
        }
        (ClientAuth::None, false) | (_, true) => {}
        (_, false) => {
            return Err(section.error(
                "client_secret_env",
                format!(
                    "missing: auth_method {} needs a client secret; name the environment \
                     variable that holds it (or use auth_method = \"none\")",
                    auth_method.as_str()
                ),
            ));
        }
    }
    let endpoints = [
        ("authorize_url", urls.authorize.is_some()),
        ("token_url", urls.token.is_some()),
        ("introspect_url", urls.introspect.is_some()),
        ("revoke_url", urls.revoke.is_some()),
        ("device_authorization_url", urls.device.is_some()),
    ];
    if raw.issuer.is_some() {
        if let Some((field, _)) = endpoints.iter().find(|(_, set)| *set) {
            return Err(section.error(
                field,
                "the endpoints come from discovery when issuer is set; give either issuer or \
                 the endpoint URLs",
            ));
        }
    } else if grant == Grant::ClientCredentials {
        if urls.token.is_none() {
            return Err(section.error(
                "token_url",
                "missing: a client credentials provider needs issuer (for discovery) or token_url",
            ));
        }
    } else if let Some((field, _)) = endpoints[..2].iter().find(|(_, set)| !*set) {
        return Err(section.error(
            field,
            "missing: an oauth2 provider needs issuer (for discovery) or authorize_url and \
             token_url",
        ));
    }
    Ok(auth_method)
}

/// `grant`, `audience` and `resource`: only for `oauth2`, and the last two
/// only with `client_credentials`.
fn grant_rules(section: &Section<'_>, raw: &RawProvider, kind: ProviderKind) -> CliResult<Grant> {
    if kind != ProviderKind::OAuth2 {
        section.not_for_kind("grant", raw.grant.is_some(), kind)?;
        section.not_for_kind(
            "device_authorization_url",
            raw.device_authorization_url.is_some(),
            kind,
        )?;
    }
    let grant = match raw.grant.as_deref() {
        None | Some("authorization_code") => Grant::AuthorizationCode,
        Some("client_credentials") => Grant::ClientCredentials,
        Some(other) => {
            return Err(section.error(
                "grant",
                format!(
                    "{other:?} is not a grant; use \"authorization_code\" (the default) or \
                     \"client_credentials\""
                ),
            ));
        }
    };
    if grant != Grant::ClientCredentials {
        for (field, set) in [
            ("audience", raw.audience.is_some()),
            ("resource", raw.resource.is_some()),
        ] {
            if set {
                return Err(section.error(
                    field,
                    "applies only to grant = \"client_credentials\"; remove it",
                ));
            }
        }
    }
    Ok(grant)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    fn parse(text: &str) -> CliResult<Config> {
        Config::parse(text, Path::new("/etc/authctl.toml"))
    }

    fn message(text: &str) -> String {
        let err = parse(text).unwrap_err();
        assert_eq!(err.kind().code(), 2);
        err.message().to_owned()
    }

    const FITBIT: &str = r#"
[store]
path = "tokens"

[providers.fitbit]
kind = "fitbit"
client_id = "23ABCD"
client_secret_env = "FITBIT_SECRET"
app_type = "server"
redirect_uri = "http://127.0.0.1:8976/callback"
scopes = ["activity", "sleep"]
token_url = "http://127.0.0.1:9/oauth2/token"
"#;

    #[test]
    fn a_good_file_parses() {
        let config = parse(FITBIT).unwrap();
        let p = config.provider("fitbit").unwrap();
        assert_eq!(p.kind(), ProviderKind::Fitbit);
        assert_eq!(p.scopes, ["activity", "sleep"]);
        assert_eq!(
            config.store,
            Some(super::super::StoreLocation::Path("/etc/tokens".into()))
        );
    }

    #[test]
    fn unknown_keys_name_file_provider_and_field() {
        let m = message(&FITBIT.replace("app_type", "app_typo"));
        assert!(m.contains("/etc/authctl.toml"), "{m}");
        assert!(m.contains("[providers.fitbit]"), "{m}");
        assert!(m.contains("app_typo"), "{m}");
        let m = message(&format!("{FITBIT}\n[stor]\npath = \"x\"\n"));
        assert!(m.contains("stor"), "{m}");
    }

    #[test]
    fn missing_fields_and_bad_values_are_named() {
        let m = message(&FITBIT.replace("client_id = \"23ABCD\"", ""));
        assert!(
            m.contains("client_id") && m.contains("[providers.fitbit]"),
            "{m}"
        );
        let m = message(&FITBIT.replace("http://127.0.0.1:9/oauth2/token", "not a url"));
        assert!(m.contains("token_url") && m.contains("not a url"), "{m}");
        let m = message(&FITBIT.replace("http://127.0.0.1:9/", "http://example.com/"));
        assert!(m.contains("token_url") && m.contains("https"), "{m}");
        let m = message(&FITBIT.replace("\"server\"", "\"desktop\""));
        assert!(m.contains("app_type"), "{m}");
        let m = message(&FITBIT.replace("client_id = \"23ABCD\"", "client_id = 5"));
        assert!(m.contains("client_id") && m.contains("integer"), "{m}");
        let m = message(&FITBIT.replace("kind = \"fitbit\"", "kind = \"fitbot\""));
        assert!(m.contains("kind") && m.contains("fitbot"), "{m}");
    }

    #[test]
    fn kind_specific_rules() {
        let m = message(&FITBIT.replace("app_type = \"server\"", "issuer = \"https://x\""));
        assert!(m.contains("issuer") && m.contains("does not apply"), "{m}");
        let m = message(&FITBIT.replace("client_secret_env = \"FITBIT_SECRET\"", ""));
        assert!(m.contains("client_secret_env"), "{m}");
        let public = FITBIT
            .replace("client_secret_env = \"FITBIT_SECRET\"", "")
            .replace("\"server\"", "\"public\"");
        assert_eq!(
            parse(&public).unwrap().provider("fitbit").unwrap().app_type,
            AppType::Client
        );
        let m = message(
            "[providers.acme]\nkind = \"oauth2\"\nclient_id = \"x\"\nauth_method = \"none\"\n",
        );
        assert!(m.contains("authorize_url"), "{m}");
        let m = message(
            "[providers.acme]\nkind = \"oauth2\"\nclient_id = \"x\"\nissuer = \"https://id.example\"\n",
        );
        assert!(m.contains("client_secret_env"), "{m}");
    }

    #[test]
    fn a_mistyped_secret_is_not_echoed() {
        let text = FITBIT.replace(
            "client_secret_env = \"FITBIT_SECRET\"",
            "client_secret = 123456789",
        );
        let m = message(&text);
        assert!(!m.contains("123456789"), "{m}");
        assert!(m.contains("client_secret"), "{m}");
    }

    #[test]
    fn debug_hides_an_inline_secret() {
        let text = FITBIT.replace(
            "client_secret_env = \"FITBIT_SECRET\"",
            "client_secret = \"inline-secret-value\"",
        );
        let config = parse(&text).unwrap();
        let dbg = format!("{config:?}");
        assert!(!dbg.contains("inline-secret-value"), "{dbg}");
    }

    #[test]
    fn a_catalogue_kind_needs_only_the_client() {
        let config = parse(
            "[providers.strava]\nkind = \"strava\"\nclient_id = \"123\"\n\
             client_secret_env = \"STRAVA_SECRET\"\nredirect_uri = \"http://127.0.0.1:8976/callback\"\n",
        )
        .unwrap();
        let p = config.provider("strava").unwrap();
        assert_eq!(p.kind(), ProviderKind::Catalogue);
        assert_eq!(p.api_base_urls(), ["https://www.strava.com/api/v3"]);
        let m = message("[providers.strava]\nkind = \"strava\"\nclient_id = \"123\"\n");
        assert!(
            m.contains("client_secret_env") && m.contains("client_secret_post"),
            "{m}"
        );
        let m = message("[providers.x]\nkind = \"stravaa\"\nclient_id = \"1\"\n");
        assert!(m.contains("authctl providers"), "{m}");
        let m = message(
            "[providers.strava]\nkind = \"strava\"\nclient_id = \"1\"\nclient_secret_env = \"S\"\n\
             auth_method = \"none\"\n",
        );
        assert!(
            m.contains("auth_method") && m.contains("does not apply"),
            "{m}"
        );
    }

    #[test]
    fn overridden_endpoints_join_the_api_origins() {
        let config = parse(
            "[providers.strava]\nkind = \"strava\"\nclient_id = \"1\"\nclient_secret_env = \"S\"\n\
             token_url = \"http://127.0.0.1:9/strava/token\"\n",
        )
        .unwrap();
        let apis = config.provider("strava").unwrap().api_base_urls();
        assert!(apis.contains(&"http://127.0.0.1:9/".to_owned()), "{apis:?}");
        let config = parse(
            "[providers.strava]\nkind = \"strava\"\nclient_id = \"1\"\nclient_secret_env = \"S\"\n\
             api_base_urls = [\"https://proxy.example/strava\"]\n",
        )
        .unwrap();
        assert_eq!(
            config.provider("strava").unwrap().api_base_urls(),
            ["https://proxy.example/strava"]
        );
    }

    #[test]
    fn templates_take_their_placeholders() {
        let okta =
            "[providers.okta]\nkind = \"okta\"\nclient_id = \"1\"\nclient_secret_env = \"S\"\n";
        let config = parse(&format!(
            "{okta}placeholders = {{ domain = \"dev-1.okta.com\" }}\n"
        ))
        .unwrap();
        assert_eq!(
            config.provider("okta").unwrap().api_base_urls(),
            ["https://dev-1.okta.com"]
        );
        let m = message(okta);
        assert!(m.contains("placeholders") && m.contains("domain"), "{m}");
        let m = message(&format!("{okta}placeholders = {{ tenant = \"x\" }}\n"));
        assert!(m.contains("tenant") && m.contains("domain"), "{m}");
    }

    #[test]
    fn expires_in_is_one_the_provider_accepts() {
        assert!(parse(&format!("{FITBIT}expires_in = 3600\n")).is_ok());
        let m = message(&format!("{FITBIT}expires_in = 7200\n"));
        assert!(
            m.contains("expires_in") && m.contains("3600 or 28800"),
            "{m}"
        );
        let m = message(
            "[providers.strava]\nkind = \"strava\"\nclient_id = \"1\"\nclient_secret_env = \"S\"\n\
             expires_in = 3600\n",
        );
        assert!(m.contains("expires_in") && m.contains("takes no"), "{m}");
    }

    #[test]
    fn a_users_catalogue_adds_entries_and_its_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let entry = auth_catalogue::BUILTIN_TOML
            .split("\n[strava]\n")
            .nth(1)
            .and_then(|rest| rest.split("\n[whoop]\n").next())
            .unwrap()
            .replace("[strava.", "[acme.");
        std::fs::write(dir.path().join("mine.toml"), format!("[acme]\n{entry}")).unwrap();
        let config_path = dir.path().join("authctl.toml");
        let text = "catalogue = \"mine.toml\"\n[providers.acme]\nkind = \"acme\"\n\
                    client_id = \"1\"\nclient_secret_env = \"S\"\n";
        let config = Config::parse(text, &config_path).unwrap();
        assert_eq!(
            config.provider("acme").unwrap().kind(),
            ProviderKind::Catalogue
        );
        assert!(config.catalogue().get("acme").is_some());
        std::fs::write(
            dir.path().join("mine.toml"),
            format!(
                "[acme]\n{}",
                entry.replace("rotates = true", "rotate = true")
            ),
        )
        .unwrap();
        let err = Config::parse(text, &config_path).unwrap_err();
        let m = err.message();
        assert!(
            m.contains("mine.toml") && m.contains("[acme]") && m.contains("rotate"),
            "{m}"
        );
    }

    #[test]
    fn missing_provider_says_how_to_add_it() {
        let err = parse(FITBIT)
            .unwrap()
            .provider("google-health")
            .unwrap_err();
        assert!(
            err.next().contains("[providers.google-health]"),
            "{}",
            err.next()
        );
    }
}
