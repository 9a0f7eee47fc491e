//! Fitbit's error bodies, in both shapes, normalized to RFC 6749 codes.
//!
//! The classic shape:
//! `{"errors":[{"errorType":"invalid_grant","message":"…"}],"success":false}`.
//! Since 2026 some answers come in Google's shape:
//! `{"error":{"code":403,"message":"…","status":"PERMISSION_DENIED"}}`.
//! An RFC 6749 body is accepted too.

use auth_oauth2::{ServerError, parse_rfc6749_error};
use serde::Deserialize;

#[derive(Deserialize)]
struct Classic {
    errors: Vec<ClassicItem>,
}

#[derive(Deserialize)]
struct ClassicItem {
    #[serde(rename = "errorType")]
    error_type: String,
    #[serde(default)]
    message: Option<String>,
    #[serde(default, rename = "fieldName")]
    field_name: Option<String>,
}

#[derive(Deserialize)]
struct GoogleShape {
    error: GoogleError,
}

#[derive(Deserialize)]
struct GoogleError {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    code: Option<u16>,
}

/// Maps a Fitbit `errorType` to the RFC 6749 code the taxonomy knows.
fn normalize(error_type: &str) -> String {
    match error_type {
        // Fitbit says `system` for rate limiting and internal failures.
        "system" => "temporarily_unavailable",
        "authorization" | "oauth" => "invalid_token",
        "request" | "validation" => "invalid_request",
        "insufficient_permissions" => "insufficient_scope",
        other => other,
    }
    .to_owned()
}

/// Parses any of the three shapes. Returns `None` for anything else.
pub fn parse_fitbit_error(body: &[u8]) -> Option<ServerError> {
    if let Ok(classic) = serde_json::from_slice::<Classic>(body) {
        let first = classic.errors.into_iter().next()?;
        let description = match (first.message, first.field_name) {
            (Some(m), Some(f)) if f != "n/a" => Some(format!("{m} (field {f})")),
            (m, _) => m,
        };
        return Some(ServerError {
            code: normalize(&first.error_type),
            description,
        });
    }
    if let Ok(google) = serde_json::from_slice::<GoogleShape>(body) {
        let code = match google.error.status.as_deref() {
            Some("UNAUTHENTICATED") => "invalid_token".to_owned(),
            Some("PERMISSION_DENIED") => "insufficient_scope".to_owned(),
            Some("INVALID_ARGUMENT") => "invalid_request".to_owned(),
            Some("RESOURCE_EXHAUSTED") | Some("UNAVAILABLE") => {
                "temporarily_unavailable".to_owned()
            }
            Some(other) => other.to_ascii_lowercase(),
            None => format!("http_{}", google.error.code.unwrap_or(0)),
        };
        return Some(ServerError {
            code,
            description: google.error.message,
        });
    }
    parse_rfc6749_error(body)
}

/// Whether a resource server's 401 body is one of Fitbit's documented
/// answers to a bad access token: errorType `expired_token` or
/// `invalid_token` (docs/providers-facts.md, "Legacy Fitbit OAuth 2.0"), or the Google-shaped `UNAUTHENTICATED`.
/// Reads the raw `errorType`, not the normalized code: `authorization` and
/// `oauth` are not documented as token rejections. `body` may be a prefix;
/// one cut short of valid JSON is still searched for the errorType.
pub(crate) fn rejects_token(body: &[u8]) -> bool {
    const REJECTING: [&str; 2] = ["expired_token", "invalid_token"];
    if let Ok(classic) = serde_json::from_slice::<Classic>(body) {
        return classic
            .errors
            .iter()
            .any(|e| REJECTING.contains(&e.error_type.as_str()));
    }
    if let Ok(google) = serde_json::from_slice::<GoogleShape>(body) {
        return google.error.status.as_deref() == Some("UNAUTHENTICATED");
    }
    let text = String::from_utf8_lossy(body);
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    REJECTING
        .iter()
        .any(|t| compact.contains(&format!("\"errorType\":\"{t}\"")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_token_rejections() {
        for body in [
            &br#"{"errors":[{"errorType":"expired_token","message":"Access token expired: x"}],"success":false}"#[..],
            br#"{"errors":[{"errorType":"invalid_token","message":"Access token invalid: x"}],"success":false}"#,
            br#"{"error":{"code":401,"message":"bad","status":"UNAUTHENTICATED"}}"#,
            br#"{"errors":[{"errorType": "expired_token", "message":"cut sh"#,
        ] {
            assert!(rejects_token(body), "{}", String::from_utf8_lossy(body));
        }
        for body in [
            &br#"{"errors":[{"errorType":"insufficient_scope","message":"no"}],"success":false}"#[..],
            br#"{"errors":[{"errorType":"authorization","message":"no"}],"success":false}"#,
            br#"{"error":{"code":403,"message":"no","status":"PERMISSION_DENIED"}}"#,
            b"",
            b"<html>401</html>",
        ] {
            assert!(!rejects_token(body), "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn classic_shape() {
        let e = parse_fitbit_error(
            br#"{"errors":[{"errorType":"invalid_grant","message":"Refresh token invalid: abc"}],"success":false}"#,
        )
        .unwrap();
        assert_eq!(e.code, "invalid_grant");
        assert_eq!(e.description.as_deref(), Some("Refresh token invalid: abc"));
    }

    #[test]
    fn system_is_temporarily_unavailable() {
        let e = parse_fitbit_error(br#"{"errors":[{"errorType":"system","fieldName":"n/a","message":"Too Many Requests"}],"success":false}"#).unwrap();
        assert_eq!(e.code, "temporarily_unavailable");
        assert_eq!(e.description.as_deref(), Some("Too Many Requests"));
    }

    #[test]
    fn google_shape() {
        let e = parse_fitbit_error(
            br#"{"error":{"code":403,"message":"denied","status":"PERMISSION_DENIED"}}"#,
        )
        .unwrap();
        assert_eq!(e.code, "insufficient_scope");
    }

    #[test]
    fn rfc_shape_and_garbage() {
        assert_eq!(
            parse_fitbit_error(br#"{"error":"invalid_client"}"#)
                .unwrap()
                .code,
            "invalid_client"
        );
        assert!(parse_fitbit_error(b"<html>502</html>").is_none());
        assert!(parse_fitbit_error(br#"{"errors":[]}"#).is_none());
    }
}
