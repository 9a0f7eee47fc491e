//! The handle of a running emulator: addresses, test controls (switches,
//! consent, faults, clock, seeding) and observation. Every method takes the
//! state lock briefly and never awaits while holding it.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use url::Url;

use crate::oauth::endpoint::Endpoint;
use crate::oauth::grants::{IssuedTokens, Seed};
use crate::server::counters::{Counters, RecordedRequest};
use crate::server::fault::{Fault, HeldAnswer, Release};
use crate::server::state::Shared;

/// The legacy Fitbit endpoints of an emulator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FitbitEndpoints {
    /// The consent page, `GET /oauth2/authorize`.
    pub authorize: Url,
    /// The token endpoint, `POST /oauth2/token`.
    pub token: Url,
    /// Introspection, `POST /1.1/oauth2/introspect`.
    pub introspect: Url,
    /// Revocation, `POST /oauth2/revoke`.
    pub revoke: Url,
}

/// The Google endpoints of an emulator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoogleEndpoints {
    /// The issuer. As a [`Url`] it prints with a trailing slash
    /// (`http://127.0.0.1:PORT/`); the discovery document and the `iss`
    /// callback parameter spell it without one (`http://127.0.0.1:PORT`),
    /// the way Google's issuer is `https://accounts.google.com`.
    pub issuer: Url,
    /// The consent page, `GET /o/oauth2/v2/auth`.
    pub authorize: Url,
    /// The token endpoint, `POST /token`.
    pub token: Url,
    /// Revocation, `POST /revoke`.
    pub revoke: Url,
    /// Token information, `GET /tokeninfo?access_token=…`.
    pub tokeninfo: Url,
    /// The discovery document, `GET /.well-known/openid-configuration`.
    pub discovery: Url,
    /// Device authorization, `POST /device/code`.
    pub device_code: Url,
    /// The page where a person enters a device's user code, `/device`.
    pub device_page: Url,
}

/// A running emulator of the legacy Fitbit and Google authorization servers,
/// on 127.0.0.1.
///
/// Dropping it stops the server at once (connections are aborted);
/// [`shutdown`](Emulator::shutdown) stops it gracefully. It is `Send + Sync`,
/// and every `&self` method may be called while requests are in flight.
pub struct Emulator {
    shared: Arc<Shared>,
    base_url: Url,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl fmt::Debug for Emulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Emulator")
            .field("base_url", &self.base_url.as_str())
            .finish_non_exhaustive()
    }
}

impl Emulator {
    pub(crate) fn new(
        shared: Arc<Shared>,
        base_url: Url,
        shutdown: watch::Sender<bool>,
        task: JoinHandle<()>,
    ) -> Self {
        Self {
            shared,
            base_url,
            shutdown,
            task: Some(task),
        }
    }

    /// The base URL, `http://127.0.0.1:PORT/`.
    pub fn base_url(&self) -> &Url {
        &self.base_url
    }

    /// The URL of one endpoint (the resource endpoints included).
    pub fn endpoint_url(&self, endpoint: Endpoint) -> Url {
        self.url(endpoint)
    }

    fn url(&self, endpoint: Endpoint) -> Url {
        let mut url = self.base_url.clone();
        url.set_path(endpoint.path());
        url
    }

    /// The legacy Fitbit endpoints.
    pub fn fitbit_endpoints(&self) -> FitbitEndpoints {
        FitbitEndpoints {
            authorize: self.url(Endpoint::FitbitAuthorize),
            token: self.url(Endpoint::FitbitToken),
            introspect: self.url(Endpoint::FitbitIntrospect),
            revoke: self.url(Endpoint::FitbitRevoke),
        }
    }

    /// The Google endpoints.
    pub fn google_endpoints(&self) -> GoogleEndpoints {
        GoogleEndpoints {
            issuer: self.base_url.clone(),
            authorize: self.url(Endpoint::GoogleAuthorize),
            token: self.url(Endpoint::GoogleToken),
            revoke: self.url(Endpoint::GoogleRevoke),
            tokeninfo: self.url(Endpoint::GoogleTokeninfo),
            discovery: self.url(Endpoint::GoogleDiscovery),
            device_code: self.url(Endpoint::GoogleDeviceCode),
            device_page: self.url(Endpoint::GoogleDevicePage),
        }
    }

    /// Turns retired mode on or off: when on, every legacy Fitbit endpoint
    /// answers `410 Gone`.
    pub fn set_retired(&self, on: bool) {
        self.shared.lock().fitbit().set_retired(on);
    }

    /// Turns Fitbit's replay window on, or off (strict mode).
    pub fn set_replay_window(&self, on: bool) {
        self.shared.lock().fitbit().set_replay_window(on);
    }

    /// The next consent page (Fitbit or Google) redirects with
    /// `error=access_denied`. Calls add up: two calls deny two consents.
    pub fn deny_next_authorization(&self) {
        self.shared.lock().consents().deny_next();
    }

    /// The next consent page consents as this user (Fitbit `user_id`, Google
    /// `sub`). Calls queue up, first in first out.
    pub fn set_next_user(&self, user_id: &str) {
        self.shared.lock().consents().push_user(user_id.to_owned());
    }

    /// The next consent page grants only those requested scopes that are in
    /// `scopes`, like a user who unticks the others.
    pub fn set_next_granted_scopes(&self, scopes: &[&str]) {
        self.shared
            .lock()
            .consents()
            .restrict_next_scopes(scopes.iter().map(|s| (*s).to_owned()).collect());
    }

    /// The next `times` requests to `endpoint` suffer `fault`, after any
    /// faults already queued for it. In retired mode the legacy Fitbit
    /// endpoints answer `410 Gone` without consuming a fault.
    pub fn inject(&self, endpoint: Endpoint, fault: Fault, times: u32) {
        self.shared.lock().faults().push(endpoint, fault, times);
    }

    /// Removes every queued fault.
    pub fn clear_faults(&self) {
        self.shared.lock().faults().clear();
    }

    /// The answers held back by [`Fault::HoldAnswer`] now, oldest first.
    pub fn held_answers(&self) -> Vec<HeldAnswer> {
        self.shared.holds.list()
    }

    /// Waits until at least one answer is held back by
    /// [`Fault::HoldAnswer`], and lists those held.
    pub async fn wait_for_held(&self) -> Vec<HeldAnswer> {
        self.shared.holds.wait_any().await
    }

    /// Releases the held answer `id`: sends it, or closes the connection
    /// without one. Returns `false` if no such answer is held.
    pub fn release_held(&self, id: u64, how: Release) -> bool {
        self.shared.holds.release(id, how)
    }

    /// Releases every held answer the same way; returns how many there were.
    pub fn release_all_held(&self, how: Release) -> usize {
        self.shared.holds.release_all(how)
    }

    /// A snapshot of the counters.
    pub fn counters(&self) -> Counters {
        self.shared.lock().counters().clone()
    }

    /// Sets every counter back to zero.
    pub fn reset_counters(&self) {
        self.shared.lock().reset_counters();
    }

    /// The last request `endpoint` received, if any.
    pub fn last_request(&self, endpoint: Endpoint) -> Option<RecordedRequest> {
        self.shared.lock().last_request(endpoint).cloned()
    }

    /// Issues legacy Fitbit tokens as if `user_id` had consented to `scopes`
    /// for `client_id`. Like a real consent, it supersedes the refresh token
    /// of any earlier grant of that user for that client.
    ///
    /// # Panics
    ///
    /// If `client_id` is not a registered Fitbit client or a scope is not a
    /// Fitbit scope (a test helper fails loudly).
    pub fn seed_fitbit_grant(
        &self,
        client_id: &str,
        user_id: &str,
        scopes: &[&str],
    ) -> IssuedTokens {
        self.shared.lock().seed_fitbit(&Seed {
            client_id,
            user_id,
            scopes,
        })
    }

    /// Issues Google tokens, with a refresh token (an offline grant), as if
    /// `user_id` had consented to `scopes` for `client_id`.
    ///
    /// # Panics
    ///
    /// If `client_id` is not a registered Google client or a scope is not a
    /// Google Health or identity scope.
    pub fn seed_google_grant(
        &self,
        client_id: &str,
        user_id: &str,
        scopes: &[&str],
    ) -> IssuedTokens {
        self.shared.lock().seed_google(&Seed {
            client_id,
            user_id,
            scopes,
        })
    }

    /// Sets the legacy Fitbit id that the Google Health identity endpoint
    /// gives for the Google user `google_user`: another Fitbit user's id,
    /// or `None` for a Google account with no Fitbit history. By default it
    /// is the Google user id itself, so a user who consents to both servers
    /// under one id is the same person.
    pub fn set_legacy_user_id(&self, google_user: &str, legacy: Option<&str>) {
        self.shared
            .lock()
            .google()
            .set_legacy_user_id(google_user, legacy);
    }

    /// Makes one access token (Fitbit or Google) invalid at the server, as
    /// when a server drops a session, without touching its grant or refresh
    /// token: resource endpoints then answer 401 `invalid_token`, and a
    /// refresh still works.
    pub fn invalidate_access_token(&self, access_token: &str) {
        self.shared.lock().invalidate_access_token(access_token);
    }

    /// Moves the emulator's clock forward: code and token expiry, the replay
    /// window and the rate-limit hour all follow it.
    pub fn advance_time(&self, d: Duration) {
        self.shared.lock().clock().advance(d);
    }

    /// The emulator's current time (the wall clock plus every
    /// [`advance_time`](Emulator::advance_time)).
    pub fn now(&self) -> SystemTime {
        self.shared.lock().clock().now()
    }

    /// Stops accepting connections, lets requests in flight finish (for at
    /// most a few seconds), and returns when the server has stopped.
    /// Answers still held back are dropped first.
    pub async fn shutdown(mut self) {
        self.shared.holds.release_all(Release::Drop);
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.shared.holds.release_all(Release::Drop);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
