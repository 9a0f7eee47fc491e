//! One `[providers.NAME]` section: its typed shape per kind, the rules
//! between its keys, and the provider it builds. Never prints or reports a
//! client secret.
//!
//! A section is read in steps: its `kind` picks the shape; every other key
//! is checked against that kind's keys (so a key of another kind is named
//! as such); then the keys every kind takes and the kind's own keys are
//! deserialized into their typed structs, each refusing unknown fields.

mod build;
mod keys;
mod rules;
mod section;
mod shapes;

use std::fmt;

use auth_catalogue::{Catalogue, ProviderSpec};

use auth_core::ProviderId;
use auth_fitbit::AppType;
use auth_oauth2::ClientAuth;
use secrecy::SecretString;
use serde::de::DeserializeOwned;
use url::Url;

use crate::exit::{CliResult, Failure};
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
    /// Reads and checks the section `[providers.NAME]` of `file`, with the
    /// catalogue that resolves `kind = "ENTRY"`.
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

#[cfg(test)]
mod tests;
