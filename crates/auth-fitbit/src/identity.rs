//! The Google Health identity endpoint (`GET /v4/users/me/identity`): who a
//! Google Health token belongs to, and which legacy Fitbit user that is.
//! It reads; it never stores or logs the token it is given.

use auth_core::{Error, Result, TokenSet};
use auth_oauth2::{HttpClient, ResponseMeta};
use secrecy::ExposeSecret;
use serde::Deserialize;
use url::Url;

/// The identity of a Google Health user, as the Google Health API gives it
/// (Google's migration guide, "Data Access").
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HealthIdentity {
    /// `legacyUserId`: the user's Fitbit user id. `None` when this Google
    /// account has no Fitbit history.
    pub legacy_user_id: Option<String>,
    /// `healthUserId`: the user's Google Health id.
    pub health_user_id: String,
}

#[derive(Deserialize)]
struct Body {
    #[serde(default, rename = "legacyUserId")]
    legacy_user_id: Option<String>,
    #[serde(rename = "healthUserId")]
    health_user_id: String,
}

/// Asks `endpoint` who `token` belongs to.
pub(crate) async fn fetch(
    http: &HttpClient,
    endpoint: &Url,
    token: &TokenSet,
) -> Result<HealthIdentity> {
    let access = token.access_token().expose_secret();
    let request = http::Request::get(endpoint.as_str())
        .header(http::header::AUTHORIZATION, format!("Bearer {access}"))
        .header(http::header::ACCEPT, "application/json")
        .body(Vec::new())
        .map_err(|e| {
            Error::configuration(format!(
                "cannot build the identity request to {endpoint}: {e}"
            ))
        })?;
    let response = http.execute(request).await.map_err(|e| {
        Error::transient(format!(
            "the Google Health identity endpoint {endpoint} could not be reached"
        ))
        .with_source(e)
    })?;
    parse(&response, access, endpoint)
}

fn parse(response: &ResponseMeta, access: &str, endpoint: &Url) -> Result<HealthIdentity> {
    let status = response.status.as_u16();
    let excerpt = || {
        let text = String::from_utf8_lossy(&response.body);
        auth_core::redact::redact(&text.chars().take(200).collect::<String>(), &[access])
    };
    if response.status.is_server_error() || status == 429 {
        return Err(Error::Transient {
            message: format!("the Google Health identity endpoint {endpoint} failed"),
            sent: auth_core::Sent::Unknown,
            status: Some(status),
            retry_after: None,
            source: None,
        });
    }
    if !response.status.is_success() {
        return Err(Error::protocol(
            Some(status),
            format!("the Google Health identity endpoint {endpoint} refused the new token"),
            excerpt(),
        ));
    }
    let body: Body = serde_json::from_slice(&response.body).map_err(|e| {
        Error::protocol(
            Some(status),
            format!("the Google Health identity answer is not the documented JSON ({e})"),
            excerpt(),
        )
    })?;
    Ok(HealthIdentity {
        legacy_user_id: body.legacy_user_id.filter(|id| !id.is_empty()),
        health_user_id: body.health_user_id,
    })
}
