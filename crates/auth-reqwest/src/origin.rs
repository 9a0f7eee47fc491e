//! Which origins get the token: an allow-list of exact origins (scheme, host,
//! port), and the rule that a token never travels over plain http except to
//! loopback. It must never widen a match: no suffix or prefix matching.

use std::net::IpAddr;

use auth_core::{Error, Result};
use url::{Host, Origin, Url};

/// The origins a [`BearerAuth`](crate::BearerAuth) sends its token to.
#[derive(Debug, Clone, Default)]
pub(crate) struct AllowedOrigins {
    origins: Vec<Origin>,
}

impl AllowedOrigins {
    /// Adds the origin of `url`, refusing plain http to anything but
    /// loopback and URLs without a host.
    pub(crate) fn allow(&mut self, url: &str) -> Result<()> {
        let parsed = Url::parse(url).map_err(|e| {
            Error::configuration(format!("cannot parse the allowed origin {url:?}: {e}"))
        })?;
        match parsed.scheme() {
            "https" => {}
            "http" if is_loopback(&parsed) => {}
            "http" => {
                return Err(Error::configuration(format!(
                    "refusing to send tokens to {}: plain http is allowed only to loopback \
                     (127.0.0.0/8, ::1, localhost); use https",
                    parsed.origin().ascii_serialization()
                )));
            }
            other => {
                return Err(Error::configuration(format!(
                    "refusing the origin {url:?}: scheme {other} is neither https nor http"
                )));
            }
        }
        let origin = parsed.origin();
        if !origin.is_tuple() {
            return Err(Error::configuration(format!(
                "the allowed origin {url:?} has no host"
            )));
        }
        if !self.origins.contains(&origin) {
            self.origins.push(origin);
        }
        Ok(())
    }

    /// Whether a request to `url` may carry the token. Checks the scheme
    /// again, so no configuration can send a token in clear off the host.
    pub(crate) fn permits(&self, url: &Url) -> bool {
        let secure = url.scheme() == "https" || (url.scheme() == "http" && is_loopback(url));
        secure && {
            let origin = url.origin();
            self.origins.contains(&origin)
        }
    }

    /// The allowed origins, serialized, for `Debug`.
    pub(crate) fn serialized(&self) -> Vec<String> {
        self.origins
            .iter()
            .map(Origin::ascii_serialization)
            .collect()
    }
}

/// Whether `url`'s host is on this machine: 127.0.0.0/8, `::1` or
/// `localhost`.
pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        Some(Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn only_exact_origins_match() {
        let mut allowed = AllowedOrigins::default();
        allowed.allow("https://api.example.com/some/path").unwrap();
        assert!(allowed.permits(&url("https://api.example.com/1/user")));
        assert!(allowed.permits(&url("https://api.example.com:443/x")));
        for other in [
            "https://api.example.com.evil.test/",
            "https://evil.test/api.example.com",
            "https://sub.api.example.com/",
            "https://api.example.com:8443/",
            "http://api.example.com/",
        ] {
            assert!(!allowed.permits(&url(other)), "{other}");
        }
    }

    #[test]
    fn plain_http_only_to_loopback() {
        let mut allowed = AllowedOrigins::default();
        let refused = allowed.allow("http://api.example.com").unwrap_err();
        assert!(matches!(refused, Error::Configuration { .. }), "{refused}");
        assert!(refused.to_string().contains("plain http"), "{refused}");
        for ok in [
            "http://127.0.0.1:8080",
            "http://127.9.9.9",
            "http://[::1]:1",
            "http://localhost:3000",
        ] {
            allowed.allow(ok).unwrap();
            assert!(allowed.permits(&url(ok)), "{ok}");
        }
        assert!(allowed.allow("ftp://127.0.0.1").is_err());
        assert!(allowed.allow("not a url").is_err());
    }
}
