//! Configuration: endpoints, client authentication and HTTP limits.

use std::time::Duration;

use auth_core::{Error, Result};
use url::{Host, Url};

/// How the client authenticates at the token, revocation and introspection
/// endpoints (RFC 6749 §2.3, RFC 8414 `token_endpoint_auth_method`).
///
/// The enum is `#[non_exhaustive]` so that `private_key_jwt` (RFC 7523 §2.2,
/// a signed client assertion instead of a shared secret) can join it as one
/// more variant, configured with its signing key on the builder the way a
/// secret is; every request path already builds its client authentication
/// in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ClientAuth {
    /// `Authorization: Basic` with the form-encoded id and secret
    /// (RFC 6749 §2.3.1). The secret never travels in the body.
    #[default]
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
    /// A public client: `client_id` in the body and no secret. PKCE
    /// protects the code exchange.
    None,
}

impl ClientAuth {
    /// The RFC 8414 name of the method.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::None => "none",
        }
    }
}

impl std::str::FromStr for ClientAuth {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "client_secret_basic" => Ok(Self::ClientSecretBasic),
            "client_secret_post" => Ok(Self::ClientSecretPost),
            "none" => Ok(Self::None),
            other => Err(Error::configuration(format!(
                "unknown client authentication method {other:?}; use client_secret_basic, \
                 client_secret_post or none"
            ))),
        }
    }
}

/// The server's endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Endpoints {
    /// Where users are sent to authorize.
    pub authorize: Url,
    /// Where codes and refresh tokens are exchanged.
    pub token: Url,
    /// RFC 7662 introspection (or the provider's equivalent), if any.
    pub introspection: Option<Url>,
    /// RFC 7009 revocation, if any.
    pub revocation: Option<Url>,
    /// RFC 8628 device authorization, if any.
    pub device_authorization: Option<Url>,
}

impl Endpoints {
    /// The two required endpoints.
    pub fn new(authorize: Url, token: Url) -> Self {
        Self {
            authorize,
            token,
            introspection: None,
            revocation: None,
            device_authorization: None,
        }
    }

    /// Adds an introspection endpoint.
    #[must_use]
    pub fn with_introspection(mut self, url: Url) -> Self {
        self.introspection = Some(url);
        self
    }

    /// Adds a revocation endpoint.
    #[must_use]
    pub fn with_revocation(mut self, url: Url) -> Self {
        self.revocation = Some(url);
        self
    }

    /// Adds an RFC 8628 device authorization endpoint.
    #[must_use]
    pub fn with_device_authorization(mut self, url: Url) -> Self {
        self.device_authorization = Some(url);
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        require_secure("authorize", &self.authorize)?;
        require_secure("token", &self.token)?;
        if let Some(url) = &self.introspection {
            require_secure("introspection", url)?;
        }
        if let Some(url) = &self.revocation {
            require_secure("revocation", url)?;
        }
        if let Some(url) = &self.device_authorization {
            require_secure("device authorization", url)?;
        }
        Ok(())
    }
}

/// The client credentials grant (RFC 6749 §4.4): the client gets tokens for
/// itself, with no user. Give it to
/// [`OAuth2ProviderBuilder::client_credentials`](crate::OAuth2ProviderBuilder::client_credentials).
///
/// No refresh token is issued for this grant, so each "refresh" is a new
/// token request; the [`TokenManager`](auth_core::TokenManager) makes it
/// through [`TokenProvider::mint`](auth_core::TokenProvider::mint), under the
/// key's lease, once for all concurrent callers.
///
/// The key's account names what the token is for: the client itself (any
/// name will do, for example the client id) or, with
/// [`account_as`](Self::account_as), an audience or resource sent with the
/// request, so one provider serves tokens for several APIs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientCredentials {
    /// The scopes asked for (none: the server's default for the client).
    pub scopes: Vec<String>,
    /// Extra token request parameters, sent with every request, in order.
    pub params: Vec<(String, String)>,
    /// The parameter that carries the key's account, if any (for example
    /// `audience` or `resource`).
    pub account_param: Option<String>,
}

impl ClientCredentials {
    /// The grant with no scopes and no extra parameters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the scopes.
    #[must_use]
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Adds a token request parameter.
    #[must_use]
    pub fn param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.push((name.into(), value.into()));
        self
    }

    /// Adds `audience` (Auth0, Okta and others).
    #[must_use]
    pub fn audience(self, audience: impl Into<String>) -> Self {
        self.param("audience", audience)
    }

    /// Adds `resource` (RFC 8707 resource indicators).
    #[must_use]
    pub fn resource(self, resource: impl Into<String>) -> Self {
        self.param("resource", resource)
    }

    /// Sends the key's account as the parameter `name` (for example
    /// `audience` or `resource`), so each account of the provider is a token
    /// for another audience.
    #[must_use]
    pub fn account_as(mut self, name: impl Into<String>) -> Self {
        self.account_param = Some(name.into());
        self
    }
}

/// Limits of the HTTP client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpConfig {
    /// The bound on establishing a connection (default 10 s).
    pub connect_timeout: Duration,
    /// The bound on a whole request, body included (default 30 s).
    pub timeout: Duration,
    /// The largest response body accepted (default 1 MiB).
    pub max_body_bytes: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(30),
            max_body_bytes: 1024 * 1024,
        }
    }
}

impl HttpConfig {
    /// Sets both timeouts.
    #[must_use]
    pub fn with_timeouts(mut self, connect: Duration, total: Duration) -> Self {
        self.connect_timeout = connect;
        self.timeout = total;
        self
    }

    /// Sets the body cap.
    #[must_use]
    pub fn with_max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }
}

/// Whether `url` is on this machine: `localhost`, 127.0.0.0/8 or `[::1]`.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Refuses anything but `https://`, except `http://` to a loopback host
/// (local test servers, RFC 8252 redirects).
///
/// # Errors
///
/// [`Error::Configuration`] naming the endpoint.
pub fn require_secure(name: &str, url: &Url) -> Result<()> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(url) => Ok(()),
        scheme => Err(Error::configuration(format!(
            "the {name} endpoint {url} uses {scheme}://; tokens may only travel over https \
             (plain http is allowed for loopback hosts only)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_or_loopback_only() {
        for ok in [
            "https://example.com/t",
            "http://127.0.0.1:8080/t",
            "http://localhost/t",
            "http://[::1]:9/t",
            "http://127.9.9.9/t",
        ] {
            assert!(
                require_secure("token", &Url::parse(ok).unwrap()).is_ok(),
                "{ok}"
            );
        }
        for bad in [
            "http://example.com/t",
            "http://10.0.0.1/t",
            "ftp://127.0.0.1/t",
            "http://localhost.evil.com/t",
        ] {
            let err = require_secure("token", &Url::parse(bad).unwrap()).unwrap_err();
            assert!(matches!(err, Error::Configuration { .. }), "{bad}");
            assert!(err.to_string().contains("token endpoint"), "{err}");
        }
    }

    #[test]
    fn auth_method_names_round_trip() {
        for m in [
            ClientAuth::ClientSecretBasic,
            ClientAuth::ClientSecretPost,
            ClientAuth::None,
        ] {
            assert_eq!(m.as_str().parse::<ClientAuth>().unwrap(), m);
        }
        assert!("private_key_jwt".parse::<ClientAuth>().is_err());
    }
}
