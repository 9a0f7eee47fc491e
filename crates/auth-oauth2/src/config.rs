//! Configuration: endpoints, client authentication and HTTP limits.

use std::time::Duration;

use auth_core::{Error, Result};
use url::{Host, Url};

/// How the client authenticates at the token, revocation and introspection
/// endpoints (RFC 6749 §2.3, RFC 8414 `token_endpoint_auth_method`).
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
}

impl Endpoints {
    /// The two required endpoints.
    pub fn new(authorize: Url, token: Url) -> Self {
        Self {
            authorize,
            token,
            introspection: None,
            revocation: None,
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

    pub(crate) fn validate(&self) -> Result<()> {
        require_secure("authorize", &self.authorize)?;
        require_secure("token", &self.token)?;
        if let Some(url) = &self.introspection {
            require_secure("introspection", url)?;
        }
        if let Some(url) = &self.revocation {
            require_secure("revocation", url)?;
        }
        Ok(())
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
