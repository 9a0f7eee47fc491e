//! Token responses rewritten into RFC 6749 terms, as a catalogue entry's
//! [`ResponseSpec`] and [`ErrorsSpec`] describe them.

use std::sync::Arc;

use auth_catalogue::{Envelope, ErrorFormat, ErrorsSpec, ExpiresIn, ResponseSpec};
use http::{HeaderValue, StatusCode};
use serde_json::{Map, Value};

use crate::http::ResponseMeta;

/// The token fields a nested user token (Slack's `authed_user`) carries.
const TOKEN_FIELDS: [&str; 5] = [
    "access_token",
    "refresh_token",
    "expires_in",
    "scope",
    "token_type",
];

/// Whether the entry's answers need any rewriting at all.
pub(crate) fn needs_rewrite(response: &ResponseSpec, errors: &ErrorsSpec) -> bool {
    response.expires_in != ExpiresIn::Number
        || response.default_expires_in.is_some()
        || response.envelope.is_some()
        || response.nested_token.is_some()
        || response.form_encoded_unless_json
        || response.errors_with_200
        || matches!(errors.format, ErrorFormat::Slack | ErrorFormat::Withings)
}

/// Rewrites one token endpoint answer. An answer that is neither a JSON
/// object nor a form is left as it is, for the classification to report.
pub(crate) fn rewrite(
    meta: ResponseMeta,
    response: &ResponseSpec,
    errors: &ErrorsSpec,
) -> ResponseMeta {
    let Some(mut object) = read_object(&meta, response) else {
        return meta;
    };
    let mut status = meta.status;
    if let Some(Envelope::Withings) = response.envelope {
        match unwrap_withings(object) {
            Ok(body) => object = body,
            Err((code, body)) => {
                status = code;
                object = body;
            }
        }
    }
    if status.is_success()
        && let Some(error) = error_sent_with_200(&object, errors.format)
    {
        status = StatusCode::BAD_REQUEST;
        object = error;
    }
    if status.is_success()
        && (object.contains_key("access_token") || object.contains_key(nested(response)))
    {
        if let Some(field) = &response.nested_token {
            lift_nested(&mut object, field);
        }
        fix_expires_in(&mut object, response);
        if object.contains_key("access_token") && !object.contains_key("token_type") {
            object.insert("token_type".to_owned(), Value::from("Bearer"));
        }
    }
    let body = serde_json::to_vec(&Value::Object(object)).unwrap_or_default();
    let mut headers = meta.headers;
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    ResponseMeta {
        status,
        headers,
        body: Arc::new(body),
    }
}

fn nested(response: &ResponseSpec) -> &str {
    response.nested_token.as_deref().unwrap_or("\u{0}")
}

fn read_object(meta: &ResponseMeta, response: &ResponseSpec) -> Option<Map<String, Value>> {
    let form = meta
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(&meta.body) {
        return Some(object);
    }
    if form || response.form_encoded_unless_json {
        let pairs: Map<String, Value> = url::form_urlencoded::parse(&meta.body)
            .map(|(k, v)| (k.into_owned(), Value::from(v.into_owned())))
            .collect();
        if !pairs.is_empty() {
            return Some(pairs);
        }
    }
    None
}

/// `{"status": 0, "body": {…}}` → the body; a non-zero status → an RFC 6749
/// error with an HTTP status that says what it is (601: rate limited).
fn unwrap_withings(
    mut object: Map<String, Value>,
) -> Result<Map<String, Value>, (StatusCode, Map<String, Value>)> {
    let status = object.get("status").and_then(Value::as_i64).unwrap_or(-1);
    if status == 0 {
        return match object.remove("body") {
            Some(Value::Object(body)) => Ok(body),
            _ => Ok(Map::new()),
        };
    }
    let http = match status {
        601 => StatusCode::TOO_MANY_REQUESTS,
        2555 => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    // The error text is sometimes an RFC 6749 code ("invalid_grant") and
    // sometimes a sentence ("Invalid Params: …"); a sentence is kept as the
    // description, and the status number becomes the code.
    let (code, description) = withings_code(status, object.get("error").and_then(Value::as_str));
    let mut error = Map::new();
    error.insert("error".to_owned(), Value::from(code));
    if let Some(text) = description {
        error.insert("error_description".to_owned(), Value::from(text));
    }
    Err((http, error))
}

/// A Withings error's code: its error text when that is an RFC 6749 code
/// (`invalid_grant`), else `status_N`, with the text as the description.
fn withings_code(status: i64, text: Option<&str>) -> (String, Option<String>) {
    let text = text.unwrap_or("");
    let is_code = !text.is_empty() && text.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    if is_code {
        (text.to_owned(), None)
    } else {
        (
            format!("status_{status}"),
            (!text.is_empty()).then(|| text.to_owned()),
        )
    }
}

/// An error answer sent with HTTP 200, as RFC 6749 error fields.
fn error_sent_with_200(
    object: &Map<String, Value>,
    format: ErrorFormat,
) -> Option<Map<String, Value>> {
    let code = match format {
        ErrorFormat::Slack if object.get("ok") == Some(&Value::Bool(false)) => object
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("unknown_error"),
        _ if !object.contains_key("access_token") => object.get("error")?.as_str()?,
        _ => return None,
    };
    let mut error = Map::new();
    error.insert("error".to_owned(), Value::from(code));
    if let Some(text) = object.get("error_description").and_then(Value::as_str) {
        error.insert("error_description".to_owned(), Value::from(text));
    }
    Some(error)
}

/// Takes the user's token out of a nested object (Slack's `authed_user`)
/// to the top level, so the token set holds it and the nested object no
/// longer holds any credential.
fn lift_nested(object: &mut Map<String, Value>, field: &str) {
    let Some(Value::Object(nested)) = object.get_mut(field) else {
        return;
    };
    if !nested.contains_key("access_token") {
        return;
    }
    let lifted: Vec<(String, Value)> = TOKEN_FIELDS
        .iter()
        .filter_map(|name| nested.remove(*name).map(|v| ((*name).to_owned(), v)))
        .collect();
    for name in TOKEN_FIELDS {
        object.remove(name);
    }
    object.extend(lifted);
}

fn fix_expires_in(object: &mut Map<String, Value>, response: &ResponseSpec) {
    match object.get("expires_in") {
        Some(Value::String(text)) => match text.trim().parse::<u64>() {
            Ok(n) => {
                object.insert("expires_in".to_owned(), Value::from(n));
            }
            Err(_) => {
                object.remove("expires_in");
            }
        },
        Some(_) => {}
        None => {}
    }
    if !object.contains_key("expires_in")
        && let Some(default) = response.default_expires_in
    {
        object.insert("expires_in".to_owned(), Value::from(default.0.as_secs()));
    }
}

/// The error code in a body written in `format`, if any.
pub(crate) fn error_code(body: &[u8], format: ErrorFormat) -> Option<(String, Option<String>)> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    match format {
        ErrorFormat::Fitbit => {
            if let Some(first) = value.get("errors").and_then(|e| e.get(0)) {
                return Some((text(first, "errorType")?, text(first, "message")));
            }
        }
        ErrorFormat::Withings => {
            if let Some(status) = value.get("status").and_then(Value::as_i64)
                && status != 0
            {
                return Some(withings_code(
                    status,
                    value.get("error").and_then(Value::as_str),
                ));
            }
        }
        ErrorFormat::Slack => {
            if value.get("ok") == Some(&Value::Bool(false)) {
                return Some((text(&value, "error")?, None));
            }
        }
        ErrorFormat::Rfc6749 | ErrorFormat::Github => {}
    }
    Some((text(&value, "error")?, text(&value, "error_description")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use auth_catalogue::lookup;
    use http::HeaderMap;

    fn meta(status: u16, content_type: &str, body: &str) -> ResponseMeta {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_str(content_type).unwrap(),
        );
        ResponseMeta {
            status: StatusCode::from_u16(status).unwrap(),
            headers,
            body: Arc::new(body.as_bytes().to_vec()),
        }
    }

    fn run(name: &str, m: ResponseMeta) -> (u16, Value) {
        let spec = lookup(name).unwrap();
        let out = rewrite(m, &spec.response, &spec.errors);
        (
            out.status.as_u16(),
            serde_json::from_slice(&out.body).unwrap(),
        )
    }

    #[test]
    fn withings_envelopes_are_opened_and_their_errors_become_errors() {
        let (status, body) = run(
            "withings",
            meta(
                200,
                "application/json",
                r#"{"status":0,"body":{"userid":"42","access_token":"a","refresh_token":"r","expires_in":"10800","scope":"user.info"}}"#,
            ),
        );
        assert_eq!(status, 200);
        assert_eq!(
            body["expires_in"], 10800,
            "a string expires_in becomes a number"
        );
        assert_eq!(
            body["token_type"], "Bearer",
            "a missing token type reads as Bearer"
        );
        assert_eq!(body["userid"], "42");
        let (status, body) = run(
            "withings",
            meta(
                200,
                "application/json",
                r#"{"status":503,"body":{},"error":"Invalid Params: invalid refresh_token"}"#,
            ),
        );
        assert_eq!(status, 400);
        assert_eq!(body["error"], "status_503");
        let (status, body) = run(
            "withings",
            meta(
                200,
                "application/json",
                r#"{"status":503,"body":{},"error":"invalid_grant"}"#,
            ),
        );
        assert_eq!(
            (status, &body["error"]),
            (400, &Value::from("invalid_grant"))
        );
        let (status, _) = run(
            "withings",
            meta(200, "application/json", r#"{"status":601,"body":{}}"#),
        );
        assert_eq!(status, 429);
    }

    #[test]
    fn github_answers_form_encoded_and_errors_with_200() {
        let (status, body) = run(
            "github",
            meta(
                200,
                "application/x-www-form-urlencoded",
                "access_token=a&refresh_token=r&expires_in=28800&token_type=bearer&scope=",
            ),
        );
        assert_eq!(status, 200);
        assert_eq!(body["access_token"], "a");
        assert_eq!(body["expires_in"], 28800);
        let (status, body) = run(
            "github",
            meta(
                200,
                "application/json",
                r#"{"error":"bad_refresh_token","error_description":"The refresh token passed is incorrect or expired."}"#,
            ),
        );
        assert_eq!(status, 400);
        assert_eq!(body["error"], "bad_refresh_token");
    }

    #[test]
    fn slack_user_tokens_are_lifted_and_leave_no_credential_behind() {
        let (status, body) = run(
            "slack",
            meta(
                200,
                "application/json",
                r#"{"ok":true,"access_token":"xoxb-bot","token_type":"bot","authed_user":{"id":"U1","access_token":"xoxp-user","refresh_token":"xoxe-r","expires_in":43200,"token_type":"user","scope":"chat:write"}}"#,
            ),
        );
        assert_eq!(status, 200);
        assert_eq!(body["access_token"], "xoxp-user");
        assert_eq!(body["refresh_token"], "xoxe-r");
        assert_eq!(body["authed_user"]["id"], "U1");
        assert!(body["authed_user"].get("access_token").is_none());
        assert!(
            !body.to_string().contains("xoxb-bot"),
            "the bot token is not kept"
        );
        let (status, body) = run(
            "slack",
            meta(
                200,
                "application/json",
                r#"{"ok":false,"error":"invalid_refresh_token"}"#,
            ),
        );
        assert_eq!(status, 400);
        assert_eq!(body["error"], "invalid_refresh_token");
    }

    #[test]
    fn a_missing_expires_in_gets_the_documented_default() {
        let (_, body) = run(
            "salesforce",
            meta(
                200,
                "application/json",
                r#"{"access_token":"a","instance_url":"https://x.my.salesforce.com","id":"https://login.salesforce.com/id/00D/005","token_type":"Bearer","issued_at":"1"}"#,
            ),
        );
        assert_eq!(body["expires_in"], 7200);
    }
}
