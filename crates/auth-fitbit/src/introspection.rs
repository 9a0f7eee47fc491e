//! Fitbit's v1.1 introspection response and its braces scope format.

use std::time::SystemTime;

use auth_core::{Error, GrantedScope, Introspection, Result};
use auth_oauth2::{ResponseMeta, epoch_seconds_or_millis};

/// Parses Fitbit's scope format, `{ACTIVITY=READ_WRITE, SLEEP=READ}`, into
/// scope and access pairs (names lower-cased, as in token responses).
///
/// Only a single-scope example is documented, so parsing is lenient: braces
/// are optional, separators may be commas or spaces, and a scope without
/// `=ACCESS` is kept without an access level. Never fails.
pub fn parse_braces_scopes(raw: &str) -> Vec<GrantedScope> {
    let inner = raw.trim().trim_start_matches('{').trim_end_matches('}');
    inner
        .split(|c: char| c == ',' || c.is_whitespace())
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| match part.split_once('=') {
            Some((name, access)) if !access.trim().is_empty() => {
                GrantedScope::with_access(name.trim().to_ascii_lowercase(), access.trim())
            }
            Some((name, _)) => GrantedScope::new(name.trim().to_ascii_lowercase()),
            None => GrantedScope::new(part.to_ascii_lowercase()),
        })
        .filter(|scope| !scope.name.is_empty())
        .collect()
}

/// Parses a v1.1 introspection answer; `exp`/`iat` may be seconds or
/// milliseconds.
pub(crate) fn parse(response: &ResponseMeta) -> Result<Introspection> {
    let value: serde_json::Value = serde_json::from_slice(&response.body).map_err(|e| {
        Error::protocol(
            Some(response.status.as_u16()),
            format!("Fitbit's introspection answer is not JSON ({e})"),
            auth_core::redact::redact(&String::from_utf8_lossy(&response.body), &[]),
        )
    })?;
    let Some(active) = value.get("active").and_then(serde_json::Value::as_bool) else {
        return Err(Error::protocol(
            Some(response.status.as_u16()),
            "Fitbit's introspection answer has no boolean `active`",
            auth_core::redact::redact(&String::from_utf8_lossy(&response.body), &[]),
        ));
    };
    if !active {
        return Ok(Introspection::inactive());
    }
    let text = |name: &str| {
        value
            .get(name)
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
    };
    let mut info = Introspection::active(
        text("scope")
            .map(|s| parse_braces_scopes(&s))
            .unwrap_or_default(),
    );
    info.client_id = text("client_id");
    info.subject = text("user_id");
    info.token_type = text("token_type");
    info.expires_at = value.get("exp").and_then(epoch_seconds_or_millis);
    info.issued_at = value.get("iat").and_then(epoch_seconds_or_millis);
    let _: Option<SystemTime> = info.expires_at;
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_single_scope() {
        assert_eq!(
            parse_braces_scopes("{ACTIVITY=READ_WRITE}"),
            vec![GrantedScope::with_access("activity", "READ_WRITE")]
        );
    }

    #[test]
    fn several_scopes_and_lenient_forms() {
        let got = parse_braces_scopes("{ACTIVITY=READ_WRITE, SLEEP=READ,HEARTRATE}");
        assert_eq!(
            got,
            vec![
                GrantedScope::with_access("activity", "READ_WRITE"),
                GrantedScope::with_access("sleep", "READ"),
                GrantedScope::new("heartrate"),
            ]
        );
        assert!(parse_braces_scopes("{}").is_empty());
        assert!(parse_braces_scopes("").is_empty());
        assert_eq!(parse_braces_scopes("sleep weight").len(), 2);
        assert_eq!(parse_braces_scopes("{=READ}").len(), 0);
    }
}
