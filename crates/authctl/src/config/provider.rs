//! One `[providers.NAME]` section: its typed shape per kind, the rules
//! between its keys, and the provider it builds. Never prints or reports a
//! client secret.
//!
//! A section is read in steps: its `kind` picks the shape; every other key
//! is checked against that kind's keys (so a key of another kind is named
//! as such); then the keys every kind takes and the kind's own keys are
//! deserialized into their typed structs, each refusing unknown fields.
//! Last, the rules between the keys turn the kind's shape into its checked
//! settings ([`kinds::KindConfig`]): the rest of authctl reads those, so it
//! can read only the settings a section's kind has.

mod build;
mod keys;
mod kinds;
mod rules;
mod secret;
mod section;
mod shapes;

use auth_catalogue::Catalogue;
use auth_core::ProviderId;
use serde::de::DeserializeOwned;
use url::Url;

use crate::exit::{CliResult, Failure};
use kinds::{CatalogueEntry, EndpointUrls, Fitbit, GoogleHealth, KindConfig};
use secret::Secret;
use section::Section;
use shapes::{Common, Shape};

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

/// One checked `[providers.NAME]` section: what every kind has, and its
/// kind's own settings.
#[derive(Debug)]
pub(crate) struct ProviderConfig {
    /// The config file, as shown.
    file: String,
    /// The section's name.
    id: ProviderId,
    /// The client id the provider gave.
    client_id: String,
    /// Where the provider sends the browser back.
    redirect_uri: Url,
    /// The scopes to ask for.
    scopes: Vec<String>,
    /// Where the provider's APIs are (empty: anywhere).
    api_base_urls: Vec<String>,
    /// The kind, with its own settings.
    kind: KindConfig,
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
        let id = ProviderId::new(name).map_err(|e| {
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
        let secret = Secret::of(&section, &common)?;
        let authorize = section.endpoint("authorize_url", common.authorize_url.as_deref())?;
        let token = section.endpoint("token_url", common.token_url.as_deref())?;
        let introspect = section.endpoint("introspect_url", shape.introspect_url())?;
        let revoke = section.endpoint("revoke_url", common.revoke_url.as_deref())?;
        let tokeninfo = section.endpoint("tokeninfo_url", shape.tokeninfo_url())?;
        let device =
            section.endpoint("device_authorization_url", shape.device_authorization_url())?;
        let issuer = section.endpoint("issuer", shape.issuer())?;
        // At most one of the two is given: Google's tokeninfo is its
        // introspection.
        let urls = EndpointUrls {
            authorize,
            token,
            introspect: introspect.or(tokeninfo),
            revoke,
        };
        let kind = match shape {
            Shape::Fitbit(s) => {
                let app = rules::fitbit(&section, s.app_type, secret)?;
                rules::expires_in(&section, s.expires_in, catalogue.get("fitbit"))?;
                KindConfig::Fitbit(Fitbit {
                    app,
                    urls,
                    expires_in: s.expires_in,
                })
            }
            Shape::GoogleHealth(s) => KindConfig::GoogleHealth(GoogleHealth {
                secret: rules::google_health(&section, secret)?,
                urls,
                issuer: s.issuer,
            }),
            Shape::OAuth2(s) => {
                KindConfig::OAuth2(rules::oauth2(&section, &s, secret, urls, device, issuer)?)
            }
            Shape::Catalogue(s, spec) => {
                let secret = rules::catalogue(&section, &written, secret, spec)?;
                let entry =
                    rules::fill_placeholders(&section, &written, s.placeholders.as_ref(), spec)?;
                rules::expires_in(&section, s.expires_in, Some(&entry))?;
                KindConfig::Catalogue(CatalogueEntry {
                    name: written,
                    entry: Box::new(entry),
                    secret,
                    urls,
                    issuer: s.issuer,
                    expires_in: s.expires_in,
                })
            }
        };
        let api_base_urls = match common.api_base_urls {
            Some(urls) => {
                for url in &urls {
                    section.endpoint("api_base_urls", Some(&url.replacen("*.", "wildcard.", 1)))?;
                }
                urls
            }
            None => default_api_base_urls(&kind, catalogue),
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
            id,
            client_id: common.client_id,
            redirect_uri,
            scopes: common.scopes,
            api_base_urls,
            kind,
        })
    }

    /// Where this provider's APIs are (empty: anywhere). `authctl get`
    /// refuses other URLs before sending a token.
    pub(crate) fn api_base_urls(&self) -> &[String] {
        &self.api_base_urls
    }

    /// Whether the secret is written in the file itself.
    pub(super) fn has_inline_secret(&self) -> bool {
        self.kind.secret().is_some_and(Secret::is_inline)
    }

    /// The provider name (the provider id).
    pub(crate) fn name(&self) -> &str {
        self.id.as_str()
    }

    /// The kind.
    pub(crate) fn kind(&self) -> ProviderKind {
        self.kind.kind()
    }

    /// The kind for messages: `kind = "oauth2"`, or `kind = "strava" (a
    /// catalogue entry)`.
    pub(crate) fn describe_kind(&self) -> String {
        keys::describe(self.kind(), self.kind.written())
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
fn default_api_base_urls(kind: &KindConfig, catalogue: &Catalogue) -> Vec<String> {
    let (entry, urls) = match kind {
        KindConfig::Fitbit(f) => (catalogue.get("fitbit"), &f.urls),
        KindConfig::GoogleHealth(g) => (catalogue.get("google-health"), &g.urls),
        KindConfig::Catalogue(c) => (Some(&*c.entry), &c.urls),
        KindConfig::OAuth2(_) => return Vec::new(),
    };
    let Some(entry) = entry else {
        return Vec::new();
    };
    let mut bases = entry.endpoints.api_base_urls.clone();
    for url in urls.given() {
        let origin = format!("{}/", url.origin().ascii_serialization());
        if !bases.contains(&origin) {
            bases.push(origin);
        }
    }
    bases
}

#[cfg(test)]
mod tests;
