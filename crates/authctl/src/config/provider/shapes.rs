//! The typed `[providers.NAME]` sections: the keys every kind takes, and
//! one shape per built-in kind plus one for catalogue entries. Each shape
//! refuses keys it does not know; [`super::keys`] checks them first, to say
//! which kind a stray key belongs to.

use std::collections::BTreeMap;

use auth_catalogue::ProviderSpec;
use auth_oauth2::ClientAuth;
use serde::Deserialize;

/// The keys every kind takes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Common {
    /// The client id the provider gave.
    pub(super) client_id: String,
    /// The environment variable holding the client secret.
    pub(super) client_secret_env: Option<String>,
    /// The secret itself. Read as a raw value so that a mistyped secret is
    /// never echoed by a type error.
    pub(super) client_secret: Option<toml::Value>,
    /// Where the provider sends the browser back.
    pub(super) redirect_uri: Option<String>,
    /// The scopes to ask for.
    #[serde(default)]
    pub(super) scopes: Vec<String>,
    /// Overrides the authorize endpoint.
    pub(super) authorize_url: Option<String>,
    /// Overrides the token endpoint.
    pub(super) token_url: Option<String>,
    /// Overrides the revocation endpoint.
    pub(super) revoke_url: Option<String>,
    /// Where the provider's APIs are: `authctl get` sends tokens there only.
    pub(super) api_base_urls: Option<Vec<String>>,
}

/// `kind = "fitbit"`: the legacy Fitbit server.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FitbitSection {
    /// `server` (the default; has a secret) or `public`.
    #[serde(default)]
    pub(super) app_type: FitbitAppType,
    /// Overrides the introspection endpoint.
    pub(super) introspect_url: Option<String>,
    /// The access token lifetime to ask for (3600 or 28800).
    pub(super) expires_in: Option<u64>,
}

/// `kind = "google-health"`: Google OAuth for the Google Health API.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct GoogleHealthSection {
    /// The issuer checked in the callback.
    pub(super) issuer: Option<String>,
    /// Overrides Google's tokeninfo endpoint (its introspection).
    pub(super) tokeninfo_url: Option<String>,
}

/// `kind = "oauth2"`: any standards OAuth 2.0 server, by discovery or by
/// its endpoint URLs, with the authorization code, device or client
/// credentials grant.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OAuth2Section {
    /// The issuer whose discovery document gives the endpoints.
    pub(super) issuer: Option<String>,
    /// How the client authenticates (default `client_secret_basic`).
    pub(super) auth_method: Option<AuthMethod>,
    /// The introspection endpoint.
    pub(super) introspect_url: Option<String>,
    /// The grant the tokens come from.
    #[serde(default)]
    pub(super) grant: Grant,
    /// The RFC 8628 endpoint when there is no discovery.
    pub(super) device_authorization_url: Option<String>,
    /// With `client_credentials`: sent as `audience`.
    pub(super) audience: Option<String>,
    /// With `client_credentials`: sent as `resource` (RFC 8707).
    pub(super) resource: Option<String>,
}

/// `kind = "NAME"` for an entry of the provider catalogue: the entry
/// supplies the rest.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CatalogueSection {
    /// Overrides the entry's issuer.
    pub(super) issuer: Option<String>,
    /// Overrides the introspection endpoint.
    pub(super) introspect_url: Option<String>,
    /// The access token lifetime to ask for, where the entry takes one.
    pub(super) expires_in: Option<u64>,
    /// A template's values (`domain`, `tenant`, `host`, `realm`).
    pub(super) placeholders: Option<BTreeMap<String, String>>,
}

/// A Fitbit app type, as the config names it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub(super) enum FitbitAppType {
    /// `server`: a confidential client with a secret.
    #[default]
    Server,
    /// `public`: no secret; PKCE protects the code.
    Public,
}

impl TryFrom<String> for FitbitAppType {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        match value.as_str() {
            "server" => Ok(Self::Server),
            "public" => Ok(Self::Public),
            other => Err(format!(
                "{other:?} is not an app type; use \"server\" or \"public\""
            )),
        }
    }
}

/// An `oauth2` client authentication method, as the config names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub(super) struct AuthMethod(pub(super) ClientAuth);

impl TryFrom<String> for AuthMethod {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        value.parse::<ClientAuth>().map(Self).map_err(|_| {
            format!(
                "{value:?} is not supported; use \"client_secret_basic\", \
                 \"client_secret_post\" or \"none\""
            )
        })
    }
}

/// Which grant an `oauth2` provider gets its tokens with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub(super) enum Grant {
    /// A person logs in (`authctl login`, or `login --device`).
    #[default]
    AuthorizationCode,
    /// The client acts as itself: `authctl token` works with no login.
    ClientCredentials,
}

impl TryFrom<String> for Grant {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        match value.as_str() {
            "authorization_code" => Ok(Self::AuthorizationCode),
            "client_credentials" => Ok(Self::ClientCredentials),
            other => Err(format!(
                "{other:?} is not a grant; use \"authorization_code\" (the default) or \
                 \"client_credentials\""
            )),
        }
    }
}

/// A section's own keys, by its kind.
pub(super) enum Shape<'c> {
    /// `kind = "fitbit"`.
    Fitbit(FitbitSection),
    /// `kind = "google-health"`.
    GoogleHealth(GoogleHealthSection),
    /// `kind = "oauth2"`.
    OAuth2(OAuth2Section),
    /// A catalogue entry's kind, with the entry.
    Catalogue(CatalogueSection, &'c ProviderSpec),
}

impl Shape<'_> {
    /// `issuer`, where the kind takes one.
    pub(super) fn issuer(&self) -> Option<&str> {
        match self {
            Self::Fitbit(_) => None,
            Self::GoogleHealth(s) => s.issuer.as_deref(),
            Self::OAuth2(s) => s.issuer.as_deref(),
            Self::Catalogue(s, _) => s.issuer.as_deref(),
        }
    }

    /// `introspect_url`, where the kind takes one.
    pub(super) fn introspect_url(&self) -> Option<&str> {
        match self {
            Self::Fitbit(s) => s.introspect_url.as_deref(),
            Self::GoogleHealth(_) => None,
            Self::OAuth2(s) => s.introspect_url.as_deref(),
            Self::Catalogue(s, _) => s.introspect_url.as_deref(),
        }
    }

    /// `tokeninfo_url` (Google only).
    pub(super) fn tokeninfo_url(&self) -> Option<&str> {
        match self {
            Self::GoogleHealth(s) => s.tokeninfo_url.as_deref(),
            _ => None,
        }
    }

    /// `device_authorization_url` (`oauth2` only).
    pub(super) fn device_authorization_url(&self) -> Option<&str> {
        match self {
            Self::OAuth2(s) => s.device_authorization_url.as_deref(),
            _ => None,
        }
    }
}
