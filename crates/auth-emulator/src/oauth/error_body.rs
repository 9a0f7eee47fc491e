//! The error bodies the real servers send (docs/providers-facts.md, "Legacy Fitbit OAuth 2.0" and "Google OAuth 2.0"):
//! Fitbit's own `{"errors":[…],"success":false}`, RFC 6749's
//! `{"error","error_description"}` used by Google OAuth, and the Google API
//! shape `{"error":{"code","message","status"}}` that some Fitbit responses
//! have used since 2026.

use http::StatusCode;
use serde_json::json;

use crate::oauth::reply::Reply;

/// The text Fitbit appends to its OAuth error messages.
pub(crate) const FITBIT_DOCS_HINT: &str = "Visit https://dev.fitbit.com/docs/oauth2 for more information on the Fitbit Web API authorization process.";

/// A Fitbit error body: one error of `error_type` with `message`.
pub(crate) fn fitbit(status: StatusCode, error_type: &str, message: &str) -> Reply {
    Reply::json(
        status,
        &json!({
            "errors": [{ "errorType": error_type, "message": message }],
            "success": false,
        }),
    )
}

/// The Fitbit `errorType` normally sent with `status`.
pub(crate) fn fitbit_error_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "invalid_request",
        401 => "invalid_token",
        403 => "insufficient_permissions",
        404 => "not_found",
        409 => "request",
        429 => "system",
        s if s >= 500 => "system",
        _ => "request",
    }
}

/// An RFC 6749 error body, as Google's OAuth endpoints send it.
pub(crate) fn oauth(status: StatusCode, error: &str, description: &str) -> Reply {
    Reply::json(
        status,
        &json!({ "error": error, "error_description": description }),
    )
}

/// An RFC 6749 error body with status 400.
pub(crate) fn oauth_bad_request(error: &str, description: &str) -> Reply {
    oauth(StatusCode::BAD_REQUEST, error, description)
}

/// The RFC 6749 `error` code and description normally sent with `status`.
pub(crate) fn oauth_error_for(status: StatusCode) -> (&'static str, &'static str) {
    match status.as_u16() {
        400 => ("invalid_request", "Bad Request"),
        401 => ("invalid_client", "Unauthorized"),
        403 => ("access_denied", "Forbidden"),
        404 => ("invalid_request", "Not Found"),
        429 => ("rate_limit_exceeded", "Rate Limit Exceeded"),
        503 => ("temporarily_unavailable", "Service Unavailable"),
        s if s >= 500 => ("server_error", "Internal Server Error"),
        _ => ("invalid_request", "Bad Request"),
    }
}

/// A Google API error body (`{"error":{"code","message","status"}}`).
pub(crate) fn google_api(status: StatusCode, message: &str) -> Reply {
    let canonical = match status.as_u16() {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        501 => "UNIMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ if status.is_server_error() => "INTERNAL",
        _ => "FAILED_PRECONDITION",
    };
    Reply::json(
        status,
        &json!({ "error": { "code": status.as_u16(), "message": message, "status": canonical } }),
    )
}
