//! The resource servers behind the two authorization servers, one endpoint
//! each, so clients call a real API shape: Fitbit's profile
//! (`GET /1/user/-/profile.json`) and Google Health's identity
//! (`GET /v4/users/me/identity`, which names the user's legacy Fitbit id).
//!
//! Everything here runs under the server's lock and must never block or await.

use std::collections::HashMap;

use http::StatusCode;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::oauth::context::{Cx, Event};
use crate::oauth::error_body::{self, FITBIT_DOCS_HINT};
use crate::oauth::grants::Authority;
use crate::oauth::reply::Reply;
use crate::oauth::request::Request;

/// The Fitbit scope the profile endpoint needs.
const PROFILE_SCOPE: &str = "profile";

/// The legacy Fitbit id the identity endpoint gives for a Google user, where
/// it is not the Google user id itself (`None`: no Fitbit history).
#[derive(Debug, Default)]
pub(crate) struct Identities {
    legacy_user_ids: HashMap<String, Option<String>>,
}

impl Identities {
    /// Sets the legacy Fitbit id of `google_user`.
    pub(crate) fn set_legacy_user_id(&mut self, google_user: &str, legacy: Option<&str>) {
        self.legacy_user_ids
            .insert(google_user.to_owned(), legacy.map(str::to_owned));
    }

    /// The legacy Fitbit id of `google_user`: by default the same id.
    fn legacy_user_id(&self, google_user: &str) -> Option<String> {
        match self.legacy_user_ids.get(google_user) {
            Some(set) => set.clone(),
            None => Some(google_user.to_owned()),
        }
    }
}

/// `GET /1/user/-/profile.json`: the current user's profile. 401 with
/// Fitbit's `invalid_token` or `expired_token` error bodies, 403 without the
/// `profile` scope. (Quota and the retired switch are applied by callers.)
pub(crate) fn fitbit_profile(records: &mut Authority, req: &Request, cx: &mut Cx<'_>) -> Reply {
    let Some(token) = req.bearer() else {
        return error_body::fitbit(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            &format!("Authorization header required. {FITBIT_DOCS_HINT}"),
        );
    };
    let Some(access) = records.access.get(token) else {
        return error_body::fitbit(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            &format!("Access token invalid: {token}. {FITBIT_DOCS_HINT}"),
        );
    };
    let grant = records.grants.get(&access.grant);
    if grant.is_none_or(|g| g.revoked) {
        return error_body::fitbit(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            &format!("Access token invalid: {token}. {FITBIT_DOCS_HINT}"),
        );
    }
    if cx.now >= access.expires_at {
        return error_body::fitbit(
            StatusCode::UNAUTHORIZED,
            "expired_token",
            &format!("Access token expired: {token}. {FITBIT_DOCS_HINT}"),
        );
    }
    let grant = grant.expect("checked above").clone();
    if let Some(a) = records.access.get_mut(token) {
        a.used = true;
    }
    if !grant.scopes.iter().any(|s| s == PROFILE_SCOPE) {
        return error_body::fitbit(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            "This application does not have permission to access profile data. \
             Visit https://dev.fitbit.com/docs/oauth2 for more information on the Fitbit Web API authorization process.",
        );
    }
    cx.report(Event::ResourceOk);
    Reply::json(
        StatusCode::OK,
        &json!({
            "user": {
                "encodedId": grant.user_id,
                "displayName": format!("Emulated {}", grant.user_id),
                "timezone": "UTC",
            }
        }),
    )
}

/// The `WWW-Authenticate` challenge Google's APIs send with a 401.
const GOOGLE_CHALLENGE: &str =
    r#"Bearer realm="https://accounts.google.com/", error="invalid_token""#;

/// `GET /v4/users/me/identity`: the user's `legacyUserId` (their Fitbit
/// user id, absent for a Google account with no Fitbit history) and
/// `healthUserId`. A bad token gets Google's 401: the RFC 6750 challenge and
/// a Google API error body.
pub(crate) fn google_identity(
    records: &Authority,
    identities: &Identities,
    req: &Request,
    cx: &mut Cx<'_>,
) -> Reply {
    let now = cx.now;
    let grant = req
        .bearer()
        .and_then(|token| records.active_access(token, now));
    let Some((_, grant)) = grant else {
        return error_body::google_api(
            StatusCode::UNAUTHORIZED,
            "Request had invalid authentication credentials. Expected OAuth 2 access token, \
             login cookie or other valid authentication credential.",
        )
        .with_header(http::header::WWW_AUTHENTICATE, GOOGLE_CHALLENGE);
    };
    let user = grant.user_id.clone();
    let legacy = identities.legacy_user_id(&user);
    cx.report(Event::ResourceOk);
    let mut body = json!({ "healthUserId": health_user_id(&user) });
    if let Some(legacy) = legacy {
        body["legacyUserId"] = json!(legacy);
    }
    Reply::json(StatusCode::OK, &body)
}

/// A stable, opaque Google Health id for an emulated Google user.
fn health_user_id(user: &str) -> String {
    let digest = Sha256::digest(user.as_bytes());
    let mut n = [0u8; 8];
    n.copy_from_slice(&digest[..8]);
    format!("{:020}", u64::from_be_bytes(n))
}
