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
//! Everything here runs under the server's lock and must never block or await.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use http::StatusCode;
use serde_json::json;

use crate::oauth::consent::{Consent, grant_scopes};
use crate::oauth::context::Cx;
use crate::oauth::error_body::{self, oauth_bad_request as bad_request};
use crate::oauth::params::Params;
use crate::oauth::reply::{Reply, escape_html};
use crate::oauth::request::Request;
use crate::oauth::scopes;
use crate::oauth::token;

/// The grant type of the device token request (RFC 8628 §3.4).
pub(crate) const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// How long device and user codes live (Google answers `expires_in: 1800`).
const LIFETIME: Duration = Duration::from_secs(1800);

/// One device login in progress.
#[derive(Clone, Debug)]
struct DeviceLogin {
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

/// The device logins in progress of one server, by device code.
#[derive(Debug, Default)]
pub(crate) struct DeviceLogins {
    logins: HashMap<String, DeviceLogin>,
}

/// A device login the person approved: whose tokens to issue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Approved {
    pub(crate) user_id: String,
    pub(crate) scopes: Vec<String>,
}

impl DeviceLogins {
    /// `POST /device/code` after client authentication: checks `scope` and
    /// starts a login of `client_id`.
    pub(crate) fn start(
        &mut self,
        client_id: &str,
        params: &Params,
        now: SystemTime,
        interval: Duration,
        verification_url: String,
    ) -> Reply {
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
        self.logins.insert(
            device_code.clone(),
            DeviceLogin {
                client_id: client_id.to_owned(),
                user_code: user_code.clone(),
                scopes: requested,
                expires_at: now + LIFETIME,
                last_poll: None,
                answer: Answer::Pending,
            },
        );
        Reply::json(
            StatusCode::OK,
            &json!({
                "device_code": device_code,
                "user_code": user_code,
                "expires_in": LIFETIME.as_secs(),
                "interval": interval.as_secs(),
                "verification_url": verification_url,
            }),
        )
    }

    // ---- /device: the person's page ----

    /// `GET /device` shows the code form; with `user_code` (query or form) the
    /// person has signed in and answers the consent screen, as the next queued
    /// consent decides ([`Emulator::deny_next_authorization`](crate::Emulator::deny_next_authorization),
    /// [`Emulator::set_next_user`](crate::Emulator::set_next_user)).
    pub(crate) fn page(&mut self, req: &Request, cx: &mut Cx<'_>) -> Reply {
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
        let now = cx.now;
        let found = self.logins.values().any(|d| {
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
        let consent = cx.consents.next();
        let login = self
            .logins
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
}

/// Codes are compared without case, spaces or dashes, as a person types them.
fn normalize(code: &str) -> String {
    code.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

// ---- /token with the device code grant ----

impl DeviceLogins {
    /// One poll of `client_id`'s device: `Ok` once the person approved (the
    /// caller issues the tokens), else Google's answer: `authorization_pending`
    /// with 428, `slow_down` and `access_denied` with 403, `expired_token`
    /// with 400.
    pub(crate) fn poll(
        &mut self,
        client_id: &str,
        params: &Params,
        now: SystemTime,
        interval: Duration,
    ) -> Result<Approved, Reply> {
        let Some(code) = params.get("device_code") else {
            return Err(bad_request(
                "invalid_request",
                "Missing required parameter: device_code",
            ));
        };
        let Some(login) = self.logins.get_mut(code) else {
            return Err(bad_request("invalid_grant", "Malformed auth code."));
        };
        if login.client_id != client_id {
            return Err(bad_request("invalid_grant", "Malformed auth code."));
        }
        if now >= login.expires_at {
            return Err(bad_request("expired_token", "Bad Request"));
        }
        let too_soon = login
            .last_poll
            .is_some_and(|last| now.duration_since(last).unwrap_or_default() + SLACK < interval);
        login.last_poll = Some(now);
        if too_soon {
            return Err(error_body::oauth(
                StatusCode::FORBIDDEN,
                "slow_down",
                "Forbidden",
            ));
        }
        match login.answer.clone() {
            Answer::Pending => Err(error_body::oauth(
                StatusCode::PRECONDITION_REQUIRED,
                "authorization_pending",
                "Precondition Required",
            )),
            Answer::Denied => Err(error_body::oauth(
                StatusCode::FORBIDDEN,
                "access_denied",
                "Forbidden",
            )),
            Answer::Used => Err(bad_request("invalid_grant", "Bad Request")),
            Answer::Approved { user_id, scopes } => {
                login.answer = Answer::Used;
                Ok(Approved { user_id, scopes })
            }
        }
    }
}

/// Polls this much early still count as on time: timers and networks jitter.
const SLACK: Duration = Duration::from_millis(250);
