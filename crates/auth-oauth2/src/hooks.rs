//! [`Hooks`]: the quirks of a provider, so that it needs no fork.
//!
//! Every method has the standards behaviour as its default; a provider
//! overrides only what its server does differently. A catalogue entry's
//! facts are [`CatalogueHooks`](crate::catalogue::CatalogueHooks); legacy
//! Fitbit in `auth-fitbit` wraps those in hooks of its own.

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::time::{Duration, SystemTime};

use auth_core::{
    AuthorizeRequest, Error, GrantedScope, Introspection, ResourceResponse, Result, TokenSet,
};
use http::HeaderMap;
use secrecy::ExposeSecret;
use serde::Deserialize;

use crate::http::ResponseMeta;

/// An error the server stated in its body, normalized to RFC 6749 terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError {
    /// The error code, for example `invalid_grant`.
    pub code: String,
    /// The server's description. It may quote what we sent: it is redacted
    /// before it reaches an error message.
    pub description: Option<String>,
}

/// What a provider's own error code means, when it is not an RFC 6749 code
/// (GitHub's `bad_refresh_token`, Slack's `invalid_refresh_token`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorMeaning {
    /// The grant is gone: the user must log in again (as `invalid_grant`).
    Reauthorize,
    /// The client is wrong: its id, secret or method (as `invalid_client`).
    BadClient,
}

/// What an introspection hook gets to build its request.
#[derive(Debug)]
#[non_exhaustive]
pub struct IntrospectionContext<'a> {
    /// The configured introspection endpoint.
    pub endpoint: &'a url::Url,
    /// The token set whose access token is to be inspected.
    pub token: &'a TokenSet,
    /// The client id.
    pub client_id: &'a str,
}

/// What a retired provider's 410 Gone answers turn into: the provider that
/// replaces it, and what to tell users. A catalogue entry with
/// `status = "retired"` states both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retirement {
    /// The id of the provider that replaces this one.
    pub successor: String,
    /// When and why the provider was shut down, if it says.
    pub notice: Option<String>,
}

/// A provider's quirks. Every method defaults to the standards behaviour.
///
/// Hooks are `'static` ([`Any`]), so code that knows the concrete type can
/// get it back from [`OAuth2Provider::hooks`](crate::OAuth2Provider::hooks)
/// with `downcast_ref` (legacy Fitbit's last rate limit is read so).
pub trait Hooks: Any + Debug + Send + Sync {
    /// Checks an authorization request before anything is built from it,
    /// for servers that show a bad parameter on their own page and never
    /// redirect back. The default accepts every request.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] (or another error) to refuse the request.
    fn check_authorize(&self, request: &AuthorizeRequest) -> Result<()> {
        let _ = request;
        Ok(())
    }

    /// Whether the provider is retired, and by what: a 410 Gone answer
    /// then becomes [`Error::ProviderRetired`] naming the successor. The
    /// default: not retired, and a 410 names no successor.
    fn retirement(&self) -> Option<Retirement> {
        None
    }

    /// Parses an error body. The default reads RFC 6749 §5.2
    /// `{"error": …, "error_description": …}`.
    fn parse_error(&self, response: &ResponseMeta) -> Option<ServerError> {
        parse_rfc6749_error(&response.body)
    }

    /// How long the server asked us to wait before trying again, from a
    /// 429, 409 or 5xx answer. The default reads `Retry-After` (seconds or
    /// an HTTP date).
    fn retry_after(&self, response: &ResponseMeta) -> Option<Duration> {
        parse_retry_after(&response.headers, SystemTime::now())
    }

    /// Called with every response, for providers that expose headers such as
    /// rate limits to the app. The default does nothing.
    fn observe_response(&self, response: &ResponseMeta) {
        let _ = response;
    }

    /// Which extra token-response fields to keep in the token set. The
    /// default keeps every field except `id_token`. Never keep a credential.
    fn token_extras(
        &self,
        extras: &serde_json::Map<String, serde_json::Value>,
    ) -> BTreeMap<String, serde_json::Value> {
        extras
            .iter()
            .filter(|(name, _)| name.as_str() != "id_token")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Normalizes granted scopes as the token response listed them. The
    /// default keeps them as they are.
    fn parse_scopes(&self, scopes: Vec<String>) -> Vec<String> {
        scopes
    }

    /// Extra query parameters for the authorize URL, for this request. The
    /// default adds none.
    fn authorize_params(&self, request: &AuthorizeRequest) -> Vec<(String, String)> {
        let _ = request;
        Vec::new()
    }

    /// Builds a non-standard introspection request. `None` (the default)
    /// sends RFC 7662: a form `token=` with the configured client
    /// authentication.
    fn introspection_request(
        &self,
        context: &IntrospectionContext<'_>,
    ) -> Option<crate::HttpRequest> {
        let _ = context;
        None
    }

    /// Parses a successful introspection response. The default reads
    /// RFC 7662.
    fn parse_introspection(&self, response: &ResponseMeta) -> Result<Introspection> {
        parse_rfc7662(response)
    }

    /// Whether an error answer to a custom introspection request means "not
    /// active" rather than a failure (Google's tokeninfo answers 400
    /// `invalid_token` for a dead token). The default: never.
    fn introspection_error_means_inactive(&self, response: &ResponseMeta) -> bool {
        let _ = response;
        false
    }

    /// The account a new token belongs to. The default knows none.
    fn account_for(&self, token: &TokenSet) -> Option<auth_core::AccountId> {
        let _ = token;
        None
    }

    /// Rewrites a token endpoint's answer into RFC 6749 terms before it is
    /// read: a provider that wraps its answer in an envelope, sends errors
    /// with HTTP 200, answers form-encoded or sends `expires_in` as a
    /// string. The error classification then sees the rewritten answer.
    /// The default keeps the answer as it is.
    fn normalize_token_response(&self, response: ResponseMeta) -> ResponseMeta {
        response
    }

    /// What a non-standard error code means. The default knows none, and
    /// the RFC 6749 codes keep their meaning.
    fn error_meaning(&self, code: &str) -> Option<ErrorMeaning> {
        let _ = code;
        None
    }

    /// Whether a resource server's answer says the access token is bad (so
    /// one refresh and one retry may help). The default reads RFC 6750's
    /// `WWW-Authenticate: Bearer error="invalid_token"`.
    fn rejects_token(&self, response: &ResourceResponse<'_>) -> bool {
        response.is_rfc6750_invalid_token()
    }

    /// Which token to send to the revocation endpoint. The default sends the
    /// refresh token when there is one (RFC 7009 §2.1: revoking it ends the
    /// grant), else the access token.
    fn revocation_token<'t>(&self, token: &'t TokenSet) -> RevocationToken<'t> {
        match token.refresh_token() {
            Some(refresh) => RevocationToken::Refresh(refresh.expose_secret()),
            None => RevocationToken::Access(token.access_token().expose_secret()),
        }
    }
}

/// A token to revoke, and its kind.
#[derive(Clone, Copy)]
pub enum RevocationToken<'t> {
    /// An access token.
    Access(&'t str),
    /// A refresh token.
    Refresh(&'t str),
}

impl Debug for RevocationToken<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Access(_) => "Access([redacted])",
            Self::Refresh(_) => "Refresh([redacted])",
        })
    }
}

/// The standards behaviour, with nothing overridden.
#[derive(Debug, Clone, Copy, Default)]
pub struct StandardHooks;

impl Hooks for StandardHooks {}

/// Parses an RFC 6749 §5.2 error body.
pub fn parse_rfc6749_error(body: &[u8]) -> Option<ServerError> {
    #[derive(Deserialize)]
    struct Body {
        error: String,
        error_description: Option<String>,
    }
    let body: Body = serde_json::from_slice(body).ok()?;
    Some(ServerError {
        code: body.error,
        description: body.error_description,
    })
}

/// Parses `Retry-After` as delay-seconds or an HTTP date relative to `now`.
pub fn parse_retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Reads a time that may be in seconds or milliseconds since the epoch (a
/// number above 10^11 is taken as milliseconds: that many seconds is the
/// year 5138).
pub fn epoch_seconds_or_millis(value: &serde_json::Value) -> Option<SystemTime> {
    let n = match value {
        serde_json::Value::Number(n) => n.as_f64()?,
        serde_json::Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    if !n.is_finite() || n < 0.0 {
        return None;
    }
    let secs = if n > 1e11 { n / 1000.0 } else { n };
    SystemTime::UNIX_EPOCH.checked_add(Duration::try_from_secs_f64(secs).ok()?)
}

/// Parses an RFC 7662 introspection response.
///
/// # Errors
///
/// [`Error::Protocol`] when the body is not a JSON object with `active`.
pub fn parse_rfc7662(response: &ResponseMeta) -> Result<Introspection> {
    let value: serde_json::Value = serde_json::from_slice(&response.body).map_err(|e| {
        Error::protocol(
            Some(response.status.as_u16()),
            format!("the introspection response is not JSON ({e})"),
            crate::classify::excerpt(&response.body, &[]),
        )
    })?;
    let Some(active) = value.get("active").and_then(serde_json::Value::as_bool) else {
        return Err(Error::protocol(
            Some(response.status.as_u16()),
            "the introspection response has no boolean `active`",
            crate::classify::excerpt(&response.body, &[]),
        ));
    };
    if !active {
        return Ok(Introspection::inactive());
    }
    let str_field = |name: &str| {
        value
            .get(name)
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
    };
    let mut info = Introspection::active(
        str_field("scope")
            .unwrap_or_default()
            .split_whitespace()
            .map(GrantedScope::new)
            .collect(),
    );
    info.client_id = str_field("client_id");
    info.subject = str_field("sub").or_else(|| str_field("username"));
    info.token_type = str_field("token_type");
    info.expires_at = value.get("exp").and_then(epoch_seconds_or_millis);
    info.issued_at = value.get("iat").and_then(epoch_seconds_or_millis);
    if let serde_json::Value::Object(map) = &value {
        const KNOWN: [&str; 7] = [
            "active",
            "scope",
            "client_id",
            "sub",
            "token_type",
            "exp",
            "iat",
        ];
        info.extras = map
            .iter()
            .filter(|(k, _)| !KNOWN.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", "120".parse().unwrap());
        assert_eq!(
            parse_retry_after(&h, SystemTime::now()),
            Some(Duration::from_secs(120))
        );
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        h.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:30 GMT".parse().unwrap(),
        );
        assert_eq!(parse_retry_after(&h, now), Some(Duration::from_secs(30)));
        h.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(parse_retry_after(&h, now), None);
    }

    #[test]
    fn epoch_units_are_detected() {
        let s = epoch_seconds_or_millis(&serde_json::json!(1_700_000_000)).unwrap();
        let ms = epoch_seconds_or_millis(&serde_json::json!(1_700_000_000_000u64)).unwrap();
        assert_eq!(s, ms);
        assert_eq!(
            epoch_seconds_or_millis(&serde_json::json!("1700000000")),
            Some(s)
        );
        assert_eq!(epoch_seconds_or_millis(&serde_json::json!(-1)), None);
    }

    #[test]
    fn rfc6749_error_body() {
        let e = parse_rfc6749_error(br#"{"error":"invalid_grant","error_description":"Token has been expired or revoked."}"#).unwrap();
        assert_eq!(e.code, "invalid_grant");
        assert!(parse_rfc6749_error(b"<html>").is_none());
    }
}
