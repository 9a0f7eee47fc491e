//! One `[providers.NAME]` section: its typed shape per kind, the rules
//! between its keys, and the provider it builds. Never prints or reports a
//! client secret.
//!
//! A section is read in steps: its `kind` picks the shape; every other key
//! is checked against that kind's keys (so a key of another kind is named
//! as such); then the keys every kind takes and the kind's own keys are
//! deserialized into their typed structs, each refusing unknown fields.

mod keys;
mod rules;
mod section;
mod shapes;

use std::fmt;
use std::sync::Arc;

use auth_catalogue::{Catalogue, ProviderSpec};

use auth_core::{ProviderId, TokenProvider};
use auth_fitbit::{
    AppType, FitbitEndpoints, FitbitProvider, GoogleEndpoints, GoogleHealthProvider, Scope,
};
use auth_oauth2::{ClientAuth, ClientCredentials, Endpoints, HttpConfig, OAuth2Provider};
use secrecy::SecretString;
use serde::de::DeserializeOwned;
use url::Url;

use crate::exit::{CliResult, Failure, Target};
use section::Section;
use shapes::{Common, Grant, Shape};

/// The redirect URI used when a provider names none: the loopback callback
/// registered for the emulator's demo clients (RFC 8252).
pub(crate) const DEFAULT_REDIRECT_URI: &str = "http://127.0.0.1:8976/callback";

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
    /// Every kind.
    pub(crate) const ALL: [Self; 4] = [
        Self::Fitbit,
        Self::GoogleHealth,
        Self::OAuth2,
        Self::Catalogue,
    ];

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
    /// The `kind` as written: a catalogue entry's own name.
    kind_name: String,
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

/// Takes `kind` out of the section: it must be there, and be a string.
fn take_kind(section: &Section<'_>, table: &mut toml::Table) -> CliResult<String> {
    match table.remove("kind") {
        Some(toml::Value::String(kind)) => Ok(kind),
        Some(other) => Err(section.error(
            "kind",
            format!("must be a string, not {} {other}", an(other.type_str())),
        )),
        None => Err(section.error(
            "kind",
            "missing; name the kind: \"fitbit\", \"google-health\", \"oauth2\" or a catalogue \
             entry (`authctl providers` lists them)",
        )),
    }
}

/// `a string`, `an integer`.
fn an(noun: &str) -> String {
    let article = if noun.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {noun}")
}

/// Deserializes `table` into the typed struct `T`, naming the field of any
/// error.
fn typed<T: DeserializeOwned>(section: &Section<'_>, table: toml::Table) -> CliResult<T> {
    T::deserialize(toml::Value::Table(table)).map_err(|e| section.serde_error(&e))
}

impl ProviderConfig {
    pub(super) fn from_table(
        file: &str,
        name: &str,
        mut table: toml::Table,
        catalogue: &Catalogue,
    ) -> CliResult<Self> {
        let section = Section { file, name };
        let written = take_kind(&section, &mut table)?;
        ProviderId::new(name).map_err(|e| {
            Failure::usage(
                format!("{file}: [providers.{name}]: the name is not a valid provider id ({e})"),
                format!("rename the section in {file}"),
            )
        })?;
        let kind = match ProviderKind::parse(&written) {
            Some(kind) => kind,
            None if catalogue.get(&written).is_some() => ProviderKind::Catalogue,
            None => {
                return Err(section.error(
                    "kind",
                    format!(
                        "{written:?} is not a provider kind; use \"fitbit\", \"google-health\", \
                         \"oauth2\" or a catalogue entry (`authctl providers` lists them)"
                    ),
                ));
            }
        };
        keys::check(&section, kind, &written, &table)?;
        let (common, own): (toml::Table, toml::Table) = table
            .into_iter()
            .partition(|(key, _)| keys::common_keys().contains(&key.as_str()));
        let common: Common = typed(&section, common)?;
        let shape = match kind {
            ProviderKind::Fitbit => Shape::Fitbit(typed(&section, own)?),
            ProviderKind::GoogleHealth => Shape::GoogleHealth(typed(&section, own)?),
            ProviderKind::OAuth2 => Shape::OAuth2(typed(&section, own)?),
            ProviderKind::Catalogue => {
                let spec = catalogue.get(&written).expect("checked above");
                Shape::Catalogue(typed(&section, own)?, spec)
            }
        };
        if common.client_id.trim().is_empty() {
            return Err(section.error("client_id", "must not be empty"));
        }
        let secret = rules::secret_source(&section, &common)?;
        let urls = Urls {
            authorize: section.endpoint("authorize_url", common.authorize_url.as_deref())?,
            token: section.endpoint("token_url", common.token_url.as_deref())?,
            introspect: section.endpoint("introspect_url", shape.introspect_url())?,
            revoke: section.endpoint("revoke_url", common.revoke_url.as_deref())?,
            tokeninfo: section.endpoint("tokeninfo_url", shape.tokeninfo_url())?,
            device: section
                .endpoint("device_authorization_url", shape.device_authorization_url())?,
        };
        if let Some(issuer) = shape.issuer() {
            section.endpoint("issuer", Some(issuer))?;
        }
        let has_secret = !matches!(secret, SecretSource::None);
        let mut app_type = AppType::Server;
        let mut grant = Grant::AuthorizationCode;
        let (mut audience, mut resource) = (None, None);
        let mut entry = None;
        let auth_method = match &shape {
            Shape::Fitbit(s) => {
                app_type = rules::fitbit(&section, s.app_type, has_secret)?;
                ClientAuth::ClientSecretBasic
            }
            Shape::GoogleHealth(_) => {
                rules::google_health(&section, has_secret)?;
                ClientAuth::ClientSecretPost
            }
            Shape::OAuth2(s) => {
                let method = rules::oauth2(&section, s, has_secret, &urls)?;
                grant = s.grant;
                audience.clone_from(&s.audience);
                resource.clone_from(&s.resource);
                method
            }
            Shape::Catalogue(s, spec) => {
                let method = rules::catalogue(&section, &written, has_secret, spec)?;
                entry = Some(Box::new(rules::fill_placeholders(
                    &section,
                    &written,
                    s.placeholders.as_ref(),
                    spec,
                )?));
                method
            }
        };
        let expires_in_entry = match kind {
            ProviderKind::Fitbit => catalogue.get("fitbit"),
            _ => entry.as_deref(),
        };
        rules::expires_in(&section, shape.expires_in(), expires_in_entry)?;
        let api_base_urls = match &common.api_base_urls {
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
            common
                .redirect_uri
                .as_deref()
                .unwrap_or(DEFAULT_REDIRECT_URI),
        )?;
        Ok(Self {
            file: file.to_owned(),
            name: name.to_owned(),
            kind,
            kind_name: written,
            client_id: common.client_id,
            secret,
            app_type,
            redirect_uri,
            scopes: common.scopes,
            issuer: shape.issuer().map(str::to_owned),
            auth_method,
            urls,
            grant,
            audience,
            resource,
            expires_in: shape.expires_in(),
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

    /// The kind for messages: `kind = "oauth2"`, or `kind = "strava" (a
    /// catalogue entry)`.
    pub(crate) fn describe_kind(&self) -> String {
        keys::describe(self.kind, &self.kind_name)
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
        let urls = self.urls.clone();
        let provider: Arc<dyn TokenProvider> = match self.kind {
            ProviderKind::Fitbit => {
                let mut endpoints = FitbitEndpoints::default();
                override_url(&mut endpoints.authorize, urls.authorize);
                override_url(&mut endpoints.token, urls.token);
                override_url(&mut endpoints.introspect, urls.introspect);
                override_url(&mut endpoints.revoke, urls.revoke);
                let mut builder = FitbitProvider::builder(&self.client_id, self.app_type)
                    .id(&self.name)
                    .redirect_uri(self.redirect_uri.as_str())
                    .scopes(self.scopes.iter().map(|s| Scope::parse(s)))
                    .endpoints(endpoints);
                if let Some(secret) = &secret {
                    builder = builder.client_secret(secret.clone());
                }
                if let Some(seconds) = self.expires_in {
                    builder = builder.expires_in(seconds);
                }
                Arc::new(builder.build().map_err(library)?)
            }
            ProviderKind::GoogleHealth => {
                let mut endpoints = GoogleEndpoints::default();
                if let Some(authorize) = &urls.authorize {
                    // Google's issuer is the origin of its authorize
                    // endpoint; the same holds for the emulator.
                    endpoints.issuer = authorize.origin().ascii_serialization();
                }
                override_url(&mut endpoints.authorize, urls.authorize);
                override_url(&mut endpoints.token, urls.token);
                override_url(&mut endpoints.revoke, urls.revoke);
                override_url(&mut endpoints.tokeninfo, urls.tokeninfo);
                if let Some(issuer) = &self.issuer {
                    endpoints.issuer = issuer.trim_end_matches('/').to_owned();
                }
                let secret = secret.ok_or_else(|| self.google_secret_missing())?;
                let builder = GoogleHealthProvider::builder(&self.client_id, secret)
                    .id(&self.name)
                    .redirect_uri(self.redirect_uri.as_str())
                    .scopes(self.scopes.clone())
                    .endpoints(endpoints);
                Arc::new(builder.build().map_err(library)?)
            }
            ProviderKind::OAuth2 => Arc::new(self.oauth2(secret.as_ref()).await?),
            ProviderKind::Catalogue => Arc::new(self.catalogue(secret).map_err(library)?),
        };
        Ok(provider)
    }

    /// Builds a catalogue provider: the entry, with the section's endpoint
    /// overrides, scopes, redirect URI and secret.
    fn catalogue(&self, secret: Option<SecretString>) -> auth_core::Result<OAuth2Provider> {
        let mut spec = self
            .entry
            .as_deref()
            .expect("a catalogue section has its entry")
            .clone();
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
        if let Some(url) = &urls.introspect {
            e.introspect = Some(url.to_string());
        }
        if let Some(url) = &urls.device {
            e.device_authorization = Some(url.to_string());
        }
        if let Some(issuer) = &self.issuer {
            e.issuer = Some(issuer.clone());
        }
        let mut builder = auth_oauth2::catalogue::builder(&self.name, &spec, &self.client_id)?
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
        builder.build()
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

fn override_url(slot: &mut Url, value: Option<Url>) {
    if let Some(value) = value {
        *slot = value;
    }
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

    /// The error for `text`, which must be refused with exit code 2.
    fn failure(text: &str) -> Failure {
        let err = parse(text).unwrap_err();
        assert_eq!(err.kind().code(), 2);
        err
    }

    #[test]
    fn an_unknown_key_lists_the_keys_of_its_kind_and_a_near_one() {
        let err = failure(&FITBIT.replace("app_type", "app_typo"));
        assert_eq!(
            err.message(),
            "/etc/authctl.toml: [providers.fitbit] app_typo: unknown field (did you mean \
             `app_type`?); kind = \"fitbit\" accepts `kind`, `client_id`, `client_secret_env`, \
             `client_secret`, `redirect_uri`, `scopes`, `authorize_url`, `token_url`, \
             `revoke_url`, `api_base_urls`, `app_type`, `introspect_url`, `expires_in`"
        );
        assert_eq!(
            err.next(),
            "fix or remove `app_typo` in the [providers.fitbit] section of /etc/authctl.toml"
        );
        let m = message(
            "[providers.strava]\nkind = \"strava\"\nclient_id = \"1\"\nclient_secret_env = \"S\"\n\
             zz_unknown = 1\n",
        );
        assert!(
            m.contains(
                "[providers.strava] zz_unknown: unknown field; kind = \"strava\" (a catalogue \
                 entry) accepts `kind`, `client_id`,"
            ) && m.ends_with("`issuer`, `introspect_url`, `expires_in`, `placeholders`"),
            "{m}"
        );
    }

    #[test]
    fn a_key_of_another_kind_names_the_kinds_it_belongs_to() {
        let err = failure(&FITBIT.replace("app_type = \"server\"", "issuer = \"https://x\""));
        assert_eq!(
            err.message(),
            "/etc/authctl.toml: [providers.fitbit] issuer: does not apply to kind = \"fitbit\"; \
             it is a field of kind = \"google-health\", kind = \"oauth2\" or catalogue entries; \
             remove it"
        );
        assert_eq!(
            err.next(),
            "remove `issuer` from the [providers.fitbit] section of /etc/authctl.toml, or change \
             its kind"
        );
        let strava = "[providers.strava]\nkind = \"strava\"\nclient_id = \"1\"\n\
                      client_secret_env = \"S\"\n";
        let m = message(&format!("{strava}grant = \"authorization_code\"\n"));
        assert!(
            m.ends_with(
                "grant: does not apply to kind = \"strava\" (a catalogue entry); it is a field \
                 of kind = \"oauth2\"; remove it"
            ),
            "{m}"
        );
        let m = message(&format!("{FITBIT}audience = \"https://api\"\n"));
        assert!(
            m.ends_with(
                "audience: does not apply to kind = \"fitbit\"; it is a field of kind = \
                 \"oauth2\"; remove it"
            ),
            "{m}"
        );
        let oauth2 = "[providers.acme]\nkind = \"oauth2\"\nclient_id = \"x\"\n\
                      client_secret_env = \"S\"\nissuer = \"https://id.example\"\n";
        let m = message(&format!("{oauth2}placeholders = {{ domain = \"x\" }}\n"));
        assert!(
            m.ends_with(
                "placeholders: does not apply to kind = \"oauth2\"; it is a field of catalogue \
                 entries; remove it"
            ),
            "{m}"
        );
        let m = message(&format!("{oauth2}expires_in = 3600\n"));
        assert!(
            m.ends_with(
                "expires_in: does not apply to kind = \"oauth2\"; it is a field of kind = \
                 \"fitbit\" or catalogue entries; remove it"
            ),
            "{m}"
        );
        let m = message(&format!("{oauth2}tokeninfo_url = \"https://x\"\n"));
        assert!(
            m.ends_with(
                "tokeninfo_url: does not apply to kind = \"oauth2\"; it is a field of kind = \
                 \"google-health\"; remove it"
            ),
            "{m}"
        );
    }

    #[test]
    fn a_missing_or_mistyped_kind_and_a_missing_client_id_are_named() {
        let err = failure("[providers.acme]\nclient_id = \"x\"\n");
        assert_eq!(
            err.message(),
            "/etc/authctl.toml: [providers.acme] kind: missing; name the kind: \"fitbit\", \
             \"google-health\", \"oauth2\" or a catalogue entry (`authctl providers` lists them)"
        );
        assert_eq!(
            err.next(),
            "fix `kind` in the [providers.acme] section of /etc/authctl.toml"
        );
        let m = message("[providers.acme]\nkind = 5\nclient_id = \"x\"\n");
        assert_eq!(
            m,
            "/etc/authctl.toml: [providers.acme] kind: must be a string, not an integer 5"
        );
        let m = message("[providers.acme]\nkind = [\"oauth2\"]\nclient_id = \"x\"\n");
        assert!(
            m.ends_with("kind: must be a string, not an array [\"oauth2\"]"),
            "{m}"
        );
        let err = failure(&FITBIT.replace("client_id = \"23ABCD\"", ""));
        assert_eq!(
            err.message(),
            "/etc/authctl.toml: [providers.fitbit] client_id: missing; this field is required"
        );
        assert_eq!(
            err.next(),
            "fix `client_id` in the [providers.fitbit] section of /etc/authctl.toml"
        );
    }

    #[test]
    fn typed_values_keep_their_messages() {
        let m = message(&FITBIT.replace("\"server\"", "\"desktop\""));
        assert!(
            m.ends_with("app_type: \"desktop\" is not an app type; use \"server\" or \"public\""),
            "{m}"
        );
        let oauth2 = "[providers.acme]\nkind = \"oauth2\"\nclient_id = \"x\"\n\
                      client_secret_env = \"S\"\nissuer = \"https://id.example\"\n";
        let m = message(&format!("{oauth2}grant = \"password\"\n"));
        assert!(
            m.ends_with(
                "grant: \"password\" is not a grant; use \"authorization_code\" (the default) \
                 or \"client_credentials\""
            ),
            "{m}"
        );
        let m = message(&format!("{oauth2}auth_method = \"private_key_jwt\"\n"));
        assert!(
            m.ends_with(
                "auth_method: \"private_key_jwt\" is not supported; use \
                 \"client_secret_basic\", \"client_secret_post\" or \"none\""
            ),
            "{m}"
        );
        let m = message(&format!("{oauth2}audience = \"https://api\"\n"));
        assert!(
            m.ends_with("audience: applies only to grant = \"client_credentials\"; remove it"),
            "{m}"
        );
        let m = message(&FITBIT.replace("[\"activity\", \"sleep\"]", "\"activity\""));
        assert!(
            m.ends_with("scopes: invalid type: string \"activity\", expected a sequence"),
            "{m}"
        );
    }

    #[test]
    fn the_kinds_of_oauth2_parse_into_their_settings() {
        let config = parse(
            "[providers.svc]\nkind = \"oauth2\"\ngrant = \"client_credentials\"\n\
             client_id = \"svc\"\nclient_secret_env = \"S\"\nauth_method = \"client_secret_post\"\n\
             token_url = \"https://id.example/token\"\naudience = \"https://api.example\"\n\
             resource = \"https://api.example/r\"\n",
        )
        .unwrap();
        let p = config.provider("svc").unwrap();
        assert_eq!(p.grant, Grant::ClientCredentials);
        assert_eq!(p.auth_method, ClientAuth::ClientSecretPost);
        assert_eq!(p.audience.as_deref(), Some("https://api.example"));
        assert_eq!(p.resource.as_deref(), Some("https://api.example/r"));
        assert!(p.api_base_urls().is_empty());
        let config = parse(
            "[providers.g]\nkind = \"google-health\"\nclient_id = \"x\"\n\
             client_secret_env = \"S\"\nissuer = \"https://accounts.example\"\n\
             tokeninfo_url = \"https://t.example/tokeninfo\"\n",
        )
        .unwrap();
        let p = config.provider("g").unwrap();
        assert_eq!(p.auth_method, ClientAuth::ClientSecretPost);
        assert_eq!(p.issuer.as_deref(), Some("https://accounts.example"));
        assert!(p.urls.tokeninfo.is_some());
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
