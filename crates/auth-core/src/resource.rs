//! [`ResourceResponse`]: what a resource server answered, as far as deciding
//! whether the access token was rejected needs to know.
//!
//! auth-core does no HTTP, so this is a borrowed view an HTTP integration
//! (such as `auth-reqwest`) fills in from its own response type. The body is
//! a bounded prefix: never hand it a whole download.

/// A resource server's answer to a request that carried an access token.
///
/// ```
/// use auth_core::ResourceResponse;
/// let answer = ResourceResponse::new(401)
///     .with_www_authenticate(Some(r#"Bearer realm="api", error="invalid_token""#));
/// assert!(answer.is_rfc6750_invalid_token());
/// assert!(!ResourceResponse::new(403).is_rfc6750_invalid_token());
/// ```
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ResourceResponse<'a> {
    /// The HTTP status.
    pub status: u16,
    /// The `WWW-Authenticate` header, when present and valid UTF-8.
    pub www_authenticate: Option<&'a str>,
    /// The start of the body (the integration decides how much it buffers).
    pub body: &'a [u8],
}

impl<'a> ResourceResponse<'a> {
    /// An answer with this status, no challenge and no body.
    pub fn new(status: u16) -> Self {
        Self {
            status,
            www_authenticate: None,
            body: &[],
        }
    }

    /// Sets the `WWW-Authenticate` header.
    #[must_use]
    pub fn with_www_authenticate(mut self, value: Option<&'a str>) -> Self {
        self.www_authenticate = value;
        self
    }

    /// Sets the buffered start of the body.
    #[must_use]
    pub fn with_body(mut self, body: &'a [u8]) -> Self {
        self.body = body;
        self
    }

    /// RFC 6750 §3.1: a 401 whose `Bearer` challenge says
    /// `error="invalid_token"`.
    pub fn is_rfc6750_invalid_token(&self) -> bool {
        self.status == 401
            && self
                .www_authenticate
                .is_some_and(|challenge| bearer_error(challenge) == Some("invalid_token"))
    }
}

/// The `error` parameter of the `Bearer` challenge in a `WWW-Authenticate`
/// value, if there is one. Tolerates several challenges, quoted or bare
/// values and any letter case in the scheme and parameter names.
fn bearer_error(header: &str) -> Option<&str> {
    let start = header
        .char_indices()
        .find(|&(i, _)| {
            header[i..]
                .get(..6)
                .is_some_and(|s| s.eq_ignore_ascii_case("bearer"))
                && (i == 0 || header[..i].ends_with([' ', ',']))
        })
        .map(|(i, _)| i + 6)?;
    let mut rest = &header[start..];
    loop {
        rest = rest.trim_start_matches([' ', ',']);
        let (name, after) = rest.split_once('=')?;
        let name = name.trim();
        if name.contains(' ') {
            // A new challenge (`Basic realm=…`): the Bearer one had no error.
            return None;
        }
        let after = after.trim_start();
        let (value, next) = match after.strip_prefix('"') {
            Some(quoted) => {
                let end = quoted.find('"')?;
                (&quoted[..end], &quoted[end + 1..])
            }
            None => {
                let end = after.find(',').unwrap_or(after.len());
                (after[..end].trim(), &after[end..])
            }
        };
        if name.eq_ignore_ascii_case("error") {
            return Some(value);
        }
        rest = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_bearer_error() {
        for (header, want) in [
            (r#"Bearer error="invalid_token""#, Some("invalid_token")),
            (
                r#"Bearer realm="example", error="invalid_token", error_description="expired""#,
                Some("invalid_token"),
            ),
            ("bearer error=invalid_token", Some("invalid_token")),
            (
                r#"Basic realm="x", Bearer error="insufficient_scope""#,
                Some("insufficient_scope"),
            ),
            (r#"Bearer realm="example""#, None),
            (r#"Bearer realm="a", Basic error="invalid_token""#, None),
            (r#"Basic realm="x""#, None),
            ("", None),
            ("Bearer error=\"unterminated", None),
        ] {
            assert_eq!(bearer_error(header), want, "{header}");
        }
    }

    #[test]
    fn only_a_401_with_invalid_token_counts() {
        let challenge = Some(r#"Bearer error="invalid_token""#);
        assert!(
            ResourceResponse::new(401)
                .with_www_authenticate(challenge)
                .is_rfc6750_invalid_token()
        );
        assert!(
            !ResourceResponse::new(403)
                .with_www_authenticate(challenge)
                .is_rfc6750_invalid_token()
        );
        assert!(!ResourceResponse::new(401).is_rfc6750_invalid_token());
        assert!(
            !ResourceResponse::new(401)
                .with_www_authenticate(Some(r#"Bearer error="insufficient_scope""#))
                .is_rfc6750_invalid_token()
        );
    }
}
