//! The endpoints the emulator serves: one name per (provider, operation),
//! used to inject faults, read counters and read the last request.

use std::fmt;

/// One endpoint of one emulated server.
///
/// Legacy Fitbit endpoints live under the paths of `www.fitbit.com` and
/// `api.fitbit.com`; Google endpoints under the paths of `accounts.google.com`
/// and `oauth2.googleapis.com`. All of them are served from the emulator's one
/// base URL.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[non_exhaustive]
pub enum Endpoint {
    /// `GET /oauth2/authorize` (legacy Fitbit consent page).
    FitbitAuthorize,
    /// `POST /oauth2/token` (legacy Fitbit code exchange and refresh).
    FitbitToken,
    /// `POST /1.1/oauth2/introspect` (legacy Fitbit token introspection).
    FitbitIntrospect,
    /// `POST /oauth2/revoke` (legacy Fitbit revocation).
    FitbitRevoke,
    /// `GET /o/oauth2/v2/auth` (Google consent page).
    GoogleAuthorize,
    /// `POST /token` (Google code exchange and refresh).
    GoogleToken,
    /// `POST /revoke` (Google revocation).
    GoogleRevoke,
    /// `GET` or `POST /tokeninfo` (Google access-token information).
    GoogleTokeninfo,
    /// `GET /.well-known/openid-configuration` (Google discovery document).
    GoogleDiscovery,
    /// `GET /1/user/-/profile.json` (legacy Fitbit Web API: the user's
    /// profile, a resource endpoint).
    FitbitProfile,
    /// `GET /v4/users/me/identity` (Google Health API: the user's legacy
    /// Fitbit id and Google Health id, a resource endpoint).
    GoogleHealthIdentity,
    /// `POST /device/code` (Google device authorization, RFC 8628).
    GoogleDeviceCode,
    /// `GET` or `POST /device` (Google's page where a person enters a device's
    /// user code; `https://www.google.com/device` for real).
    GoogleDevicePage,
}

impl Endpoint {
    /// Every endpoint, Fitbit first.
    pub const ALL: [Endpoint; 13] = [
        Endpoint::FitbitAuthorize,
        Endpoint::FitbitToken,
        Endpoint::FitbitIntrospect,
        Endpoint::FitbitRevoke,
        Endpoint::GoogleAuthorize,
        Endpoint::GoogleToken,
        Endpoint::GoogleRevoke,
        Endpoint::GoogleTokeninfo,
        Endpoint::GoogleDiscovery,
        Endpoint::FitbitProfile,
        Endpoint::GoogleHealthIdentity,
        Endpoint::GoogleDeviceCode,
        Endpoint::GoogleDevicePage,
    ];

    /// The path this endpoint is served at, relative to the base URL.
    pub const fn path(self) -> &'static str {
        match self {
            Endpoint::FitbitAuthorize => "/oauth2/authorize",
            Endpoint::FitbitToken => "/oauth2/token",
            Endpoint::FitbitIntrospect => "/1.1/oauth2/introspect",
            Endpoint::FitbitRevoke => "/oauth2/revoke",
            Endpoint::GoogleAuthorize => "/o/oauth2/v2/auth",
            Endpoint::GoogleToken => "/token",
            Endpoint::GoogleRevoke => "/revoke",
            Endpoint::GoogleTokeninfo => "/tokeninfo",
            Endpoint::GoogleDiscovery => "/.well-known/openid-configuration",
            Endpoint::FitbitProfile => "/1/user/-/profile.json",
            Endpoint::GoogleHealthIdentity => "/v4/users/me/identity",
            Endpoint::GoogleDeviceCode => "/device/code",
            Endpoint::GoogleDevicePage => "/device",
        }
    }

    /// Whether this is one of the legacy Fitbit endpoints (the ones that the
    /// retired switch turns off).
    pub const fn is_fitbit(self) -> bool {
        matches!(
            self,
            Endpoint::FitbitAuthorize
                | Endpoint::FitbitToken
                | Endpoint::FitbitIntrospect
                | Endpoint::FitbitRevoke
                | Endpoint::FitbitProfile
        )
    }

    /// Whether this endpoint is a page a browser visits (its errors are HTML
    /// pages), as opposed to an API called by the app's back end.
    pub const fn is_browser_page(self) -> bool {
        matches!(
            self,
            Endpoint::FitbitAuthorize | Endpoint::GoogleAuthorize | Endpoint::GoogleDevicePage
        )
    }

    /// Whether this is a resource (data API) endpoint rather than part of
    /// the authorization server.
    pub const fn is_resource(self) -> bool {
        matches!(
            self,
            Endpoint::FitbitProfile | Endpoint::GoogleHealthIdentity
        )
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let provider = if self.is_fitbit() { "fitbit" } else { "google" };
        write!(f, "{provider} {}", self.path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_unique() {
        let mut paths: Vec<_> = Endpoint::ALL.iter().map(|e| e.path()).collect();
        paths.sort_unstable();
        paths.dedup();
        assert_eq!(paths.len(), Endpoint::ALL.len());
    }
}
