//! Google's device authorization flow (RFC 8628 as Google runs it, from
//! "OAuth 2.0 for TV and Limited-Input Device Applications"): `/device/code`
//! hands out a device code and a user code, a person enters the user code
//! at `/device` (`https://www.google.com/device` for real), and the device
//! polls `/token` with the device code grant.
//!
//! Where Google differs from the RFC, the emulator follows Google:
//! `verification_url` instead of `verification_uri`, no
//! `verification_uri_complete`, and only a short list of scopes: any other
//! is answered `invalid_scope`, so the emulator never teaches a flow that
//! fails in production.
//!
//! Everything here runs under the state lock and must never block or await.

use std::time::{Duration, SystemTime};

use http::StatusCode;
use serde_json::json;

use crate::client_auth::{self, Client, Rules};
use crate::error_body;
use crate::fitbit::grant_scopes;
use crate::google::{bad_request, grant_reply};
use crate::params::Params;
use crate::reply::{Reply, escape_html};
use crate::scopes;
use crate::state::{Consent, Request, State};
use crate::token;

/// The grant type of the device token request (RFC 8628 §3.4).
pub(crate) const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// How long device and user codes live (Google answers `expires_in: 1800`).
const LIFETIME: Duration = Duration::from_secs(1800);

/// One device login in progress.
#[derive(Clone, Debug)]
pub(crate) struct DeviceLogin {
    client_id: String,
    user_code: String,
    scopes: Vec<String>,
    expires_at: SystemTime,
    /// When the device last polled, for `slow_down`.
    last_poll: Option<SystemTime>,
    answer: Answer,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Answer {
    Pending,
    Approved {
        user_id: String,
        scopes: Vec<String>,
    },
    Denied,
    /// The tokens were handed out; the device code is spent.
    Used,
}

// ---- /device/code ----

/// `POST /device/code`: `client_id` (and the secret, by body or Basic) and
/// `scope`.
pub(crate) fn device_code(state: &mut State, req: &Request) -> Reply {
    let params = match req.form_params() {
        Ok(p) => p,
        Err(message) => return bad_request("invalid_request", &message),
    };
    let client = match client_auth::authenticate(
        &state.config.google_clients,
        req.authorization(),
        &params,
        Rules::Google,
    ) {
        Ok(c) => c.clone(),
        Err(_) => {
            state.counters.client_auth_failures += 1;
            return error_body::oauth(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "The OAuth client was not found.",
            );
        }
    };
    let requested = scopes::split(params.get("scope").unwrap_or_default());
    if requested.is_empty() {
        return bad_request("invalid_scope", "Missing required parameter: scope");
    }
    let refused: Vec<&str> = requested
        .iter()
        .filter(|s| !scopes::is_google_device(s))
        .map(String::as_str)
        .collect();
    if !refused.is_empty() {
        return bad_request(
            "invalid_scope",
            &format!(
                "Some requested scopes cannot be used with the device flow: {}",
                refused.join(" ")
            ),
        );
    }
    let device_code = token::google_device_code();
    let user_code = token::google_user_code();
    let interval = state.config.google_device_interval.as_secs();
    state.google_devices.insert(
        device_code.clone(),
        DeviceLogin {
            client_id: client.id.clone(),
            user_code: user_code.clone(),
            scopes: requested,
            expires_at: state.clock.now() + LIFETIME,
            last_poll: None,
            answer: Answer::Pending,
        },
    );
    let verification_url = state
        .config
        .base_url
        .join("device")
        .map(String::from)
        .unwrap_or_default();
    Reply::json(
        StatusCode::OK,
        &json!({
            "device_code": device_code,
            "user_code": user_code,
            "expires_in": LIFETIME.as_secs(),
            "interval": interval,
            "verification_url": verification_url,
        }),
    )
}

// ---- /device: the person's page ----

/// `GET /device` shows the code form; with `user_code` (query or form) the
/// person has signed in and answers the consent screen, as the next queued
/// consent decides ([`Emulator::deny_next_authorization`](crate::Emulator::deny_next_authorization),
/// [`Emulator::set_next_user`](crate::Emulator::set_next_user)).
pub(crate) fn device_page(state: &mut State, req: &Request) -> Reply {
    let mut params = req.query_params().unwrap_or_default();
    if req.method == http::Method::POST
        && let Ok(form) = req.form_params()
    {
        params = form.merged_with(params);
    }
    let Some(entered) = params.get("user_code").map(normalize) else {
        return Reply::html_raw(
            StatusCode::OK,
            String::from(
                "<!DOCTYPE html><html><head><title>Connect a device</title></head><body>\
                 <h1>Enter the code displayed on your device</h1>\
                 <form method=\"post\" action=\"/device\"><input type=\"text\" name=\"user_code\"/>\
                 <button type=\"submit\">Next</button></form></body></html>",
            ),
        );
    };
    let now = state.clock.now();
    let found = state.google_devices.values().any(|d| {
        normalize(&d.user_code) == entered && d.answer == Answer::Pending && now < d.expires_at
    });
    if !found {
        return Reply::html_page(
            StatusCode::BAD_REQUEST,
            "Invalid code",
            &[&format!(
                "The code {} is not valid or has expired. Check the code on your device and try again.",
                escape_html(&entered)
            )],
        );
    }
    let consent = state.next_consent();
    let login = state
        .google_devices
        .values_mut()
        .find(|d| normalize(&d.user_code) == entered && d.answer == Answer::Pending)
        .expect("found above, under the same lock");
    match consent {
        Consent::Denied => {
            login.answer = Answer::Denied;
            Reply::html_page(
                StatusCode::OK,
                "Access denied",
                &["You denied access to the device."],
            )
        }
        Consent::Granted { user_id, only } => {
            login.answer = Answer::Approved {
                user_id,
                scopes: grant_scopes(login.scopes.clone(), only),
            };
            Reply::html_page(
                StatusCode::OK,
                "Success!",
                &["Your device is connected. You can close this page."],
            )
        }
    }
}

/// Codes are compared without case, spaces or dashes, as a person types them.
fn normalize(code: &str) -> String {
    code.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

// ---- /token with the device code grant ----

/// One poll. Google's answers: `authorization_pending` with 428,
/// `slow_down` and `access_denied` with 403, `expired_token` with 400.
pub(crate) fn poll(state: &mut State, client: &Client, params: &Params) -> Reply {
    let Some(code) = params.get("device_code") else {
        return bad_request("invalid_request", "Missing required parameter: device_code");
    };
    let now = state.clock.now();
    let interval = state.config.google_device_interval;
    let Some(login) = state.google_devices.get_mut(code) else {
        return bad_request("invalid_grant", "Malformed auth code.");
    };
    if login.client_id != client.id {
        return bad_request("invalid_grant", "Malformed auth code.");
    }
    if now >= login.expires_at {
        return bad_request("expired_token", "Bad Request");
    }
    let too_soon = login
        .last_poll
        .is_some_and(|last| now.duration_since(last).unwrap_or_default() + SLACK < interval);
    login.last_poll = Some(now);
    if too_soon {
        return error_body::oauth(StatusCode::FORBIDDEN, "slow_down", "Forbidden");
    }
    match login.answer.clone() {
        Answer::Pending => error_body::oauth(
            StatusCode::PRECONDITION_REQUIRED,
            "authorization_pending",
            "Precondition Required",
        ),
        Answer::Denied => error_body::oauth(StatusCode::FORBIDDEN, "access_denied", "Forbidden"),
        Answer::Used => bad_request("invalid_grant", "Bad Request"),
        Answer::Approved { user_id, scopes } => {
            login.answer = Answer::Used;
            let grant = state.google.new_grant(&client.id, &user_id, scopes, true);
            grant_reply(state, grant, true)
        }
    }
}

/// Polls this much early still count as on time: timers and networks jitter.
const SLACK: Duration = Duration::from_millis(250);
