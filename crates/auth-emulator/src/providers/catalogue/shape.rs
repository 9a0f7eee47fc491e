//! The shape of a profile's answers: token responses with the entry's
//! quirks, and error bodies in the entry's format.

use std::time::SystemTime;

use auth_catalogue::{AccountFrom, Envelope, ErrorFormat, ExpiresIn, ProviderSpec};
use http::StatusCode;
use serde_json::{Map, Value, json};

use crate::oauth::clock::epoch_seconds;
use crate::oauth::reply::Reply;

const FORM: &str = "application/x-www-form-urlencoded";

/// One issued pair, as the token endpoint reports it.
pub(super) struct Issued<'a> {
    pub(super) access_token: &'a str,
    pub(super) refresh_token: Option<&'a str>,
    pub(super) expires_in: u64,
    pub(super) scopes: &'a [String],
    pub(super) user: &'a str,
    pub(super) api_base: &'a str,
    /// The emulator's time of the answer (for an absolute `expires_at`).
    pub(super) now: SystemTime,
}

/// The account field's value at its path, as nested objects.
pub(super) fn account_object(spec: &ProviderSpec, user: &str) -> Map<String, Value> {
    let mut root = Map::new();
    let path = spec.account.path();
    if let Some((leaf, parents)) = path.split_last() {
        let mut here = &mut root;
        for part in parents {
            here = here
                .entry((*part).to_owned())
                .or_insert_with(|| Value::Object(Map::new()))
                .as_object_mut()
                .expect("just inserted an object");
        }
        here.insert((*leaf).to_owned(), Value::from(user));
    }
    root
}

fn merge(into: &mut Map<String, Value>, from: Map<String, Value>) {
    for (k, v) in from {
        match (into.get_mut(&k), v) {
            (Some(Value::Object(a)), Value::Object(b)) => merge(a, b),
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
}

/// A successful token response for `spec`, with its quirks.
pub(super) fn token_reply(spec: &ProviderSpec, issued: &Issued<'_>, accept: &str) -> Reply {
    let r = &spec.response;
    let mut token = Map::new();
    token.insert("access_token".into(), Value::from(issued.access_token));
    token.insert("token_type".into(), Value::from("Bearer"));
    match r.expires_in {
        ExpiresIn::Number => {
            token.insert("expires_in".into(), Value::from(issued.expires_in));
        }
        ExpiresIn::String => {
            token.insert(
                "expires_in".into(),
                Value::from(issued.expires_in.to_string()),
            );
        }
        ExpiresIn::Absent => {}
    }
    if let Some(refresh) = issued.refresh_token {
        token.insert("refresh_token".into(), Value::from(refresh));
    }
    token.insert(
        "scope".into(),
        Value::from(issued.scopes.join(&spec.scopes.separator)),
    );
    let mut body = Map::new();
    for extra in &r.keep_extras {
        let value = match extra.as_str() {
            "athlete" => json!({"firstname": "Emulated", "lastname": "User"}),
            "instance_url" => Value::from(issued.api_base.trim_end_matches('/')),
            "expires_at" => Value::from(epoch_seconds(issued.now) + issued.expires_in),
            "refresh_token_expires_in" => Value::from(15_897_600u64),
            "issued_at" => Value::from("1700000000000"),
            other => Value::from(format!("emulated {other}")),
        };
        body.insert(extra.clone(), value);
    }
    if spec.account.from == AccountFrom::Token {
        merge(&mut body, account_object(spec, issued.user));
    }
    match &r.nested_token {
        Some(field) => {
            // Slack: the bot token at the top, the user's token nested.
            body.insert("ok".into(), Value::Bool(true));
            body.insert(
                "access_token".into(),
                Value::from("xoxb-emulated-bot-token"),
            );
            body.insert("token_type".into(), Value::from("bot"));
            let nested = body
                .entry(field.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(nested) = nested {
                nested.extend(token);
            }
        }
        None => body.extend(token),
    }
    let body = match r.envelope {
        Some(Envelope::Withings) => json!({"status": 0, "body": Value::Object(body)}),
        None => Value::Object(body),
    };
    if r.form_encoded_unless_json && !accept.contains("json") {
        return form_reply(&body);
    }
    Reply::json(StatusCode::OK, &body)
}

fn form_reply(body: &Value) -> Reply {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    if let Value::Object(map) = body {
        for (k, v) in map {
            match v {
                Value::String(s) => form.append_pair(k, s),
                Value::Number(n) => form.append_pair(k, &n.to_string()),
                _ => &mut form,
            };
        }
    }
    let mut reply = Reply::empty(StatusCode::OK);
    reply.content_type = Some(FORM);
    reply.body = form.finish();
    reply
}

/// An error answer in the entry's format. `status` is what an RFC 6749
/// server would send; formats that answer errors with 200 do so.
pub(super) fn error_reply(
    spec: &ProviderSpec,
    status: StatusCode,
    code: &str,
    description: &str,
) -> Reply {
    match spec.errors.format {
        ErrorFormat::Rfc6749 => Reply::json(
            status,
            &json!({"error": code, "error_description": description}),
        ),
        ErrorFormat::Fitbit => Reply::json(
            status,
            &json!({"errors": [{"errorType": code, "message": description}], "success": false}),
        ),
        ErrorFormat::Withings => Reply::json(
            StatusCode::OK,
            &json!({"status": withings_status(status), "body": {}, "error": code}),
        ),
        ErrorFormat::Github => Reply::json(
            StatusCode::OK,
            &json!({"error": code, "error_description": description}),
        ),
        ErrorFormat::Slack => Reply::json(StatusCode::OK, &json!({"ok": false, "error": code})),
    }
}

fn withings_status(status: StatusCode) -> u16 {
    match status {
        StatusCode::TOO_MANY_REQUESTS => 601,
        s if s.is_server_error() => 2555,
        _ => 503,
    }
}

/// The answer of a resource or userinfo endpoint to a bad token.
pub(super) fn bad_token_reply(spec: &ProviderSpec) -> Reply {
    let errors = &spec.errors;
    let status = errors
        .bad_token_statuses
        .first()
        .and_then(|s| StatusCode::from_u16(*s).ok())
        .unwrap_or(StatusCode::UNAUTHORIZED);
    let code = errors
        .bad_token_codes
        .first()
        .map_or("invalid_token", String::as_str);
    let reply = if status == StatusCode::OK && errors.format == ErrorFormat::Slack {
        Reply::json(StatusCode::OK, &json!({"ok": false, "error": code}))
    } else if errors.format == ErrorFormat::Withings {
        let number = code
            .strip_prefix("status_")
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(401);
        Reply::json(
            StatusCode::OK,
            &json!({"status": number, "body": {}, "error": "Invalid access token"}),
        )
    } else {
        error_reply(
            spec,
            StatusCode::UNAUTHORIZED,
            code,
            "The access token is invalid.",
        )
    };
    let mut reply = reply;
    if reply.status == StatusCode::OK && status != StatusCode::OK {
        reply.status = status;
    }
    if errors.format == ErrorFormat::Rfc6749 {
        reply = reply.with_header(
            http::header::WWW_AUTHENTICATE,
            "Bearer error=\"invalid_token\"",
        );
    }
    reply
}
