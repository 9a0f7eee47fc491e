//! What tests observe: counters by endpoint and by event, and the last
//! request each endpoint received. Observation never changes behaviour.

use crate::oauth::context::{Event, Observer};
use crate::oauth::endpoint::Endpoint;
use crate::providers::device;

/// A snapshot of the emulator's counters (see
/// [`Emulator::counters`](crate::Emulator::counters)).
///
/// Every request that reaches an endpoint is counted in that endpoint's
/// counter, including requests answered by an injected fault, by `410 Gone`
/// (retired mode) or by `429`. Token endpoint requests are split by
/// `grant_type`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counters {
    /// Requests to the legacy Fitbit consent page.
    pub fitbit_authorize: u64,
    /// Legacy Fitbit token requests with `grant_type=authorization_code`.
    pub fitbit_token_authorization_code: u64,
    /// Legacy Fitbit token requests with `grant_type=refresh_token`.
    pub fitbit_token_refresh: u64,
    /// Legacy Fitbit token requests with any other or no `grant_type`.
    pub fitbit_token_other: u64,
    /// Legacy Fitbit introspection requests.
    pub fitbit_introspect: u64,
    /// Legacy Fitbit revocation requests.
    pub fitbit_revoke: u64,
    /// Requests to the Google consent page.
    pub google_authorize: u64,
    /// Google token requests with `grant_type=authorization_code`.
    pub google_token_authorization_code: u64,
    /// Google token requests with `grant_type=refresh_token`.
    pub google_token_refresh: u64,
    /// Google token requests with any other or no `grant_type`.
    pub google_token_other: u64,
    /// Google tokeninfo requests.
    pub google_tokeninfo: u64,
    /// Google revocation requests.
    pub google_revoke: u64,
    /// Google discovery document requests.
    pub google_discovery: u64,
    /// Requests to the Fitbit profile resource endpoint.
    pub fitbit_profile: u64,
    /// Requests to the Google Health identity resource endpoint.
    pub google_health_identity: u64,
    /// Resource requests answered 200.
    pub resource_ok: u64,
    /// Google device authorization requests (`/device/code`).
    pub google_device_code: u64,
    /// Google token requests with the device code grant (polls).
    pub google_token_device_code: u64,
    /// Visits of Google's device page (`/device`).
    pub google_device_page: u64,
    /// Fitbit refreshes answered again with the identical earlier response,
    /// inside the replay window.
    pub replays: u64,
    /// Fitbit refresh tokens presented again after use, outside the replay
    /// window (or in strict mode): answered `invalid_grant`.
    pub reuse_detections: u64,
    /// Code exchanges refused because the PKCE verifier was missing, malformed
    /// or did not match the challenge.
    pub pkce_failures: u64,
    /// Requests refused because client authentication failed or used a
    /// forbidden method (for example a Fitbit server app's secret in the body).
    pub client_auth_failures: u64,
    /// Requests answered 429 (quota exhausted or an injected
    /// [`Fault::RateLimited`](crate::Fault::RateLimited)).
    pub rate_limited: u64,
    /// Requests that consumed an injected fault.
    pub faults_injected: u64,
    /// Legacy Fitbit requests answered `410 Gone` in retired mode.
    pub retired_rejections: u64,
}

impl Counters {
    /// Counts one request to `endpoint`; `grant_type` splits token requests.
    pub(crate) fn count_request(&mut self, endpoint: Endpoint, grant_type: Option<&str>) {
        let counter = match (endpoint, grant_type) {
            (Endpoint::FitbitAuthorize, _) => &mut self.fitbit_authorize,
            (Endpoint::FitbitToken, Some("authorization_code")) => {
                &mut self.fitbit_token_authorization_code
            }
            (Endpoint::FitbitToken, Some("refresh_token")) => &mut self.fitbit_token_refresh,
            (Endpoint::FitbitToken, _) => &mut self.fitbit_token_other,
            (Endpoint::FitbitIntrospect, _) => &mut self.fitbit_introspect,
            (Endpoint::FitbitRevoke, _) => &mut self.fitbit_revoke,
            (Endpoint::GoogleAuthorize, _) => &mut self.google_authorize,
            (Endpoint::GoogleToken, Some("authorization_code")) => {
                &mut self.google_token_authorization_code
            }
            (Endpoint::GoogleToken, Some("refresh_token")) => &mut self.google_token_refresh,
            (Endpoint::GoogleToken, Some(device::GRANT_TYPE)) => &mut self.google_token_device_code,
            (Endpoint::GoogleToken, _) => &mut self.google_token_other,
            (Endpoint::GoogleRevoke, _) => &mut self.google_revoke,
            (Endpoint::GoogleTokeninfo, _) => &mut self.google_tokeninfo,
            (Endpoint::GoogleDiscovery, _) => &mut self.google_discovery,
            (Endpoint::FitbitProfile, _) => &mut self.fitbit_profile,
            (Endpoint::GoogleHealthIdentity, _) => &mut self.google_health_identity,
            (Endpoint::GoogleDeviceCode, _) => &mut self.google_device_code,
            (Endpoint::GoogleDevicePage, _) => &mut self.google_device_page,
        };
        *counter += 1;
    }
}

impl Observer for Counters {
    fn record(&mut self, event: Event) {
        let counter = match event {
            Event::ClientAuthFailure => &mut self.client_auth_failures,
            Event::PkceFailure => &mut self.pkce_failures,
            Event::Replay => &mut self.replays,
            Event::ReuseDetection => &mut self.reuse_detections,
            Event::RateLimited => &mut self.rate_limited,
            Event::ResourceOk => &mut self.resource_ok,
        };
        *counter += 1;
    }
}

/// A request as an endpoint received it (see
/// [`Emulator::last_request`](crate::Emulator::last_request)).
///
/// It holds whatever the client sent, secrets included: it exists so that
/// tests can check where a client put its credentials.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordedRequest {
    /// The HTTP method, for example `POST`.
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The headers, names in lower case; a repeated header appears once per
    /// value.
    pub headers: Vec<(String, String)>,
    /// The raw body (a form body stays form-encoded), decoded as UTF-8 with
    /// invalid bytes replaced.
    pub body: String,
    /// The raw query string without the `?` (empty when there is none).
    pub query: String,
}

impl RecordedRequest {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The decoded form body parameters, in order.
    pub fn form(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(self.body.as_bytes())
            .into_owned()
            .collect()
    }

    /// The first value of a form body parameter.
    pub fn form_param(&self, name: &str) -> Option<String> {
        self.form()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// The first value of a query parameter.
    pub fn query_param(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(self.query.as_bytes())
            .into_owned()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }
}
