//! What a checked section holds, by its kind. Each kind's type has the
//! settings that kind takes and no other, so the code that builds a
//! provider reads only what its kind has: a Fitbit section has no issuer, a
//! Google section always has a secret, `audience` exists only with the
//! client credentials grant, and an `oauth2` section has either an issuer
//! or the endpoints it needs.

use auth_catalogue::ProviderSpec;
use auth_fitbit::AppType;
use auth_oauth2::{ClientAuth, Endpoints};
use url::Url;

use super::ProviderKind;
use super::secret::Secret;

/// A checked section's own settings, by its kind.
#[derive(Debug)]
pub(super) enum KindConfig {
    /// `kind = "fitbit"`.
    Fitbit(Fitbit),
    /// `kind = "google-health"`.
    GoogleHealth(GoogleHealth),
    /// `kind = "oauth2"`.
    OAuth2(OAuth2),
    /// A catalogue entry's kind.
    Catalogue(CatalogueEntry),
}

impl KindConfig {
    /// The kind.
    pub(super) fn kind(&self) -> ProviderKind {
        match self {
            Self::Fitbit(_) => ProviderKind::Fitbit,
            Self::GoogleHealth(_) => ProviderKind::GoogleHealth,
            Self::OAuth2(_) => ProviderKind::OAuth2,
            Self::Catalogue(_) => ProviderKind::Catalogue,
        }
    }

    /// The `kind` as the section wrote it.
    pub(super) fn written(&self) -> &str {
        match self {
            Self::Catalogue(c) => &c.name,
            other => other.kind().as_str(),
        }
    }

    /// The client secret, for the kinds and clients that have one.
    pub(super) fn secret(&self) -> Option<&Secret> {
        match self {
            Self::Fitbit(f) => f.app.secret(),
            Self::GoogleHealth(g) => Some(&g.secret),
            Self::OAuth2(o) => o.client.secret(),
            Self::Catalogue(c) => c.secret.as_ref(),
        }
    }
}

/// The endpoint URLs a section gives (Google's `tokeninfo_url` is its
/// introspection). For a kind with a catalogue entry they replace the
/// entry's.
#[derive(Debug, Default)]
pub(super) struct EndpointUrls {
    /// `authorize_url`.
    pub(super) authorize: Option<Url>,
    /// `token_url`.
    pub(super) token: Option<Url>,
    /// `introspect_url`, or Google's `tokeninfo_url`.
    pub(super) introspect: Option<Url>,
    /// `revoke_url`.
    pub(super) revoke: Option<Url>,
}

impl EndpointUrls {
    /// Each URL given.
    pub(super) fn given(&self) -> impl Iterator<Item = &Url> {
        [&self.authorize, &self.token, &self.introspect, &self.revoke]
            .into_iter()
            .flatten()
    }

    /// `spec` with these URLs in place of its own.
    pub(super) fn apply(&self, mut spec: ProviderSpec) -> ProviderSpec {
        let e = &mut spec.endpoints;
        if let Some(url) = &self.authorize {
            e.authorize = url.to_string();
        }
        if let Some(url) = &self.token {
            e.token = url.to_string();
        }
        if let Some(url) = &self.revoke {
            e.revoke = Some(url.to_string());
        }
        if let Some(url) = &self.introspect {
            e.introspect = Some(url.to_string());
        }
        spec
    }
}

/// `kind = "fitbit"`.
#[derive(Debug)]
pub(super) struct Fitbit {
    /// The app type, with the secret of a server app.
    pub(super) app: FitbitApp,
    /// The URLs in place of the `fitbit` entry's.
    pub(super) urls: EndpointUrls,
    /// The access token lifetime to ask for.
    pub(super) expires_in: Option<u64>,
}

/// A Fitbit app type.
#[derive(Debug)]
pub(super) enum FitbitApp {
    /// `server`: a confidential client, with its secret.
    Server(Secret),
    /// `public`: no secret; PKCE protects the code.
    Public,
}

impl FitbitApp {
    /// The library's app type.
    pub(super) fn app_type(&self) -> AppType {
        match self {
            Self::Server(_) => AppType::Server,
            Self::Public => AppType::Client,
        }
    }

    /// A server app's secret.
    pub(super) fn secret(&self) -> Option<&Secret> {
        match self {
            Self::Server(secret) => Some(secret),
            Self::Public => None,
        }
    }
}

/// `kind = "google-health"`: a web client, with its secret.
#[derive(Debug)]
pub(super) struct GoogleHealth {
    /// The client secret.
    pub(super) secret: Secret,
    /// The URLs in place of the `google-health` entry's.
    pub(super) urls: EndpointUrls,
    /// The issuer checked in the callback, as written.
    pub(super) issuer: Option<String>,
}

/// `kind = "oauth2"`.
#[derive(Debug)]
pub(super) struct OAuth2 {
    /// How the client authenticates.
    pub(super) client: OAuth2Client,
    /// The grant the tokens come from.
    pub(super) grant: OAuth2Grant,
    /// Where the endpoints come from.
    pub(super) server: Server,
}

/// An `oauth2` client: public, or confidential with its secret.
#[derive(Debug)]
pub(super) enum OAuth2Client {
    /// `auth_method = "none"`: no secret.
    Public,
    /// `client_secret_basic` or `client_secret_post`, with the secret.
    Confidential {
        /// The method.
        method: ClientAuth,
        /// The secret.
        secret: Secret,
    },
}

impl OAuth2Client {
    /// The client authentication method.
    pub(super) fn auth(&self) -> ClientAuth {
        match self {
            Self::Public => ClientAuth::None,
            Self::Confidential { method, .. } => *method,
        }
    }

    /// A confidential client's secret.
    pub(super) fn secret(&self) -> Option<&Secret> {
        match self {
            Self::Public => None,
            Self::Confidential { secret, .. } => Some(secret),
        }
    }
}

/// The grant an `oauth2` provider gets its tokens with.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum OAuth2Grant {
    /// A person logs in.
    AuthorizationCode,
    /// The client acts as itself.
    ClientCredentials {
        /// Sent as `audience`.
        audience: Option<String>,
        /// Sent as `resource` (RFC 8707).
        resource: Option<String>,
    },
}

/// Where an `oauth2` provider's endpoints come from.
#[derive(Debug)]
pub(super) enum Server {
    /// The issuer's discovery document.
    Discovery(Url),
    /// The section's URLs.
    Endpoints(Box<Endpoints>),
}

/// A catalogue entry's kind.
#[derive(Debug)]
pub(super) struct CatalogueEntry {
    /// The entry's name: the `kind` as written.
    pub(super) name: String,
    /// The entry, its placeholders filled.
    pub(super) entry: Box<ProviderSpec>,
    /// The client secret, unless the entry's clients are public.
    pub(super) secret: Option<Secret>,
    /// The URLs in place of the entry's.
    pub(super) urls: EndpointUrls,
    /// The issuer in place of the entry's, as written.
    pub(super) issuer: Option<String>,
    /// The access token lifetime to ask for.
    pub(super) expires_in: Option<u64>,
}
