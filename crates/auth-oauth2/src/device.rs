//! RFC 8628 device authorization: a login for a machine with no browser.
//!
//! [`OAuth2Provider::begin_device_authorization`] asks the server for a user
//! code and a verification URI to show the person;
//! [`OAuth2Provider::wait_for_device_token`] then polls the token endpoint
//! until the person has answered on another device. The caller saves the
//! token like any login, with
//! [`TokenManager::save_authorization`](auth_core::TokenManager::save_authorization).
//!
//! The poller must never poll faster than the server asked, and the device
//! code (a bearer credential until it is used) must never be shown: it is a
//! secret, redacted from `Debug`, errors and logs.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use auth_core::{Error, ProviderId, Result, TokenSet};
use secrecy::{ExposeSecret, SecretString};
use tokio::time::Instant;
use tracing::debug;

use crate::classify::excerpt;
use crate::http::{Exchange, ResponseMeta};
use crate::provider::OAuth2Provider;

/// The grant type of the device access token request (RFC 8628 §3.4).
pub const DEVICE_CODE_GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// The polling interval when the server names none (RFC 8628 §3.2).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

/// What `slow_down` adds to the interval, for that and every later poll
/// (RFC 8628 §3.5).
pub const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);

/// The shortest interval the poller uses, whatever the server says, so a
/// server that answers `0` is not hammered.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// The longest pause after failed polls (timeouts, 5xx, 429).
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// A device authorization in progress: what to show the person, and the
/// device code to poll with.
///
/// `Debug` never shows the device code.
pub struct DeviceAuthorization {
    provider: ProviderId,
    device_code: SecretString,
    user_code: String,
    verification_uri: String,
    verification_uri_complete: Option<String>,
    expires_in: Duration,
    interval: Duration,
    scopes: Vec<String>,
    received: Instant,
}

impl fmt::Debug for DeviceAuthorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceAuthorization")
            .field("provider", &self.provider)
            .field("device_code", &"[redacted]")
            .field("user_code", &self.user_code)
            .field("verification_uri", &self.verification_uri)
            .field("verification_uri_complete", &self.verification_uri_complete)
            .field("expires_in", &self.expires_in)
            .field("interval", &self.interval)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

impl DeviceAuthorization {
    /// The provider that issued it.
    pub fn provider(&self) -> &ProviderId {
        &self.provider
    }

    /// The code the person types at the verification URI.
    pub fn user_code(&self) -> &str {
        &self.user_code
    }

    /// Where the person goes to enter the code (Google calls it
    /// `verification_url`).
    pub fn verification_uri(&self) -> &str {
        &self.verification_uri
    }

    /// The verification URI with the code already in it, when the server
    /// sent one (for a QR code or a link).
    pub fn verification_uri_complete(&self) -> Option<&str> {
        self.verification_uri_complete.as_deref()
    }

    /// How long the codes live, counted from when the answer arrived.
    pub fn expires_in(&self) -> Duration {
        self.expires_in
    }

    /// The polling interval the server asked for (or the RFC default).
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The scopes that were asked for.
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    /// The device code. A secret: never show or log it.
    pub fn device_code(&self) -> &SecretString {
        &self.device_code
    }

    /// When the codes expire, on Tokio's clock.
    fn deadline(&self) -> Instant {
        self.received + self.expires_in
    }
}

/// The answer to one poll of the token endpoint.
#[derive(Debug)]
#[non_exhaustive]
pub enum DevicePoll {
    /// `authorization_pending`: the person has not answered yet.
    Pending,
    /// `slow_down`: poll less often (add [`SLOW_DOWN_STEP`] to the interval).
    SlowDown,
    /// The person approved: the token.
    Token(Box<TokenSet>),
}

impl OAuth2Provider {
    /// Starts a device authorization (RFC 8628 §3.1) for `scopes` (the
    /// default scopes when empty).
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] when no device authorization endpoint is
    /// configured or discovered; [`Error::Configuration`] for
    /// `invalid_client` and `invalid_scope` (a server may allow only some
    /// scopes on this flow, as Google does); [`Error::Transient`] and
    /// [`Error::Protocol`] as for any request.
    pub async fn begin_device_authorization(
        &self,
        scopes: &[String],
    ) -> Result<DeviceAuthorization> {
        let Some(endpoint) = self.endpoints().device_authorization.clone() else {
            return Err(Error::Unsupported {
                provider: self.id_ref().clone(),
                operation: "device authorization (no device authorization endpoint)",
            });
        };
        let scopes = if scopes.is_empty() {
            self.default_scopes().to_vec()
        } else {
            scopes.to_vec()
        };
        let scope = scopes.join(" ");
        let mut params = Vec::new();
        if !scope.is_empty() {
            params.push(("scope", scope.as_str()));
        }
        let request = self.client_form_request(&endpoint, &params)?;
        let exchange = Exchange::new(self.http_client());
        let secrets = [self.client_secret_str()];
        let ctx = self.context("device authorization", &secrets);
        let meta = self
            .send_observed(&exchange, request, &ctx, "device authorization")
            .await?;
        if !meta.status.is_success() {
            return Err(ctx.response(&meta));
        }
        let received = Instant::now();
        parse_authorization(self.id_ref(), &meta, scopes, received)
    }

    /// Polls the token endpoint once with the device code (RFC 8628 §3.4).
    ///
    /// # Errors
    ///
    /// [`Error::AuthorizationDenied`] with `access_denied` when the person
    /// refused, and with `expired_token` when the codes expired;
    /// [`Error::InvalidInput`] for an authorization of another provider;
    /// otherwise as classified for any token request.
    pub async fn poll_device_token(
        &self,
        authorization: &DeviceAuthorization,
    ) -> Result<DevicePoll> {
        if authorization.provider != *self.id_ref() {
            return Err(Error::invalid_input(format!(
                "this device authorization belongs to provider {}, not {}",
                authorization.provider,
                self.id_ref()
            )));
        }
        let device_code = authorization.device_code.expose_secret();
        let secrets = [device_code, self.client_secret_str()];
        let request = self.client_form_request(
            &self.endpoints().token,
            &[
                ("grant_type", DEVICE_CODE_GRANT_TYPE),
                ("device_code", device_code),
            ],
        )?;
        let exchange = Exchange::for_token(self.http_client(), self.hooks().as_ref());
        let ctx = self.context("token", &secrets);
        let meta = self
            .send_observed(&exchange, request, &ctx, "token")
            .await?;
        if meta.status.is_success() {
            let token = self.parse_token_response(&meta)?;
            return Ok(DevicePoll::Token(Box::new(token)));
        }
        device_error(self, &meta, &secrets).unwrap_or_else(|| Err(ctx.response(&meta)))
    }

    /// Polls until the person answers, the codes expire, or a hard error
    /// (RFC 8628 §3.4–3.5):
    ///
    /// - waits `interval` before every poll, and keeps polling on
    ///   `authorization_pending`;
    /// - adds 5 seconds to the interval on `slow_down`, for good;
    /// - backs off exponentially (up to a minute, and at least any
    ///   `Retry-After`) after a transient failure such as a timeout;
    /// - stops at `expires_in` with [`Error::AuthorizationDenied`]
    ///   `expired_token`, and ends on `access_denied` and `expired_token`
    ///   from the server.
    ///
    /// Cancel it by dropping the future (for example from a
    /// `tokio::select!`). Dropped between polls, nothing is lost; dropped
    /// while a poll is in flight, a token the server issued in that instant
    /// is lost and the person must start again.
    ///
    /// # Errors
    ///
    /// As above; the errors of [`poll_device_token`](Self::poll_device_token)
    /// that are not transient end the polling at once.
    pub async fn wait_for_device_token(
        &self,
        authorization: &DeviceAuthorization,
    ) -> Result<TokenSet> {
        run_poller(authorization.interval, authorization.deadline(), || {
            self.poll_device_token(authorization)
        })
        .await
    }
}

/// Reads the answer of the device authorization endpoint.
fn parse_authorization(
    provider: &ProviderId,
    meta: &ResponseMeta,
    scopes: Vec<String>,
    received: Instant,
) -> Result<DeviceAuthorization> {
    let status = Some(meta.status.as_u16());
    let body: serde_json::Value = serde_json::from_slice(&meta.body).map_err(|_| {
        Error::protocol(
            status,
            format!("the device authorization endpoint of {provider} sent a body that is not JSON"),
            // The device code cannot be picked out of an unreadable body,
            // so none of it is quoted.
            String::new(),
        )
    })?;
    let text = |name: &str| body.get(name).and_then(|v| v.as_str()).map(str::to_owned);
    let seconds = |name: &str| body.get(name).and_then(serde_json::Value::as_u64);
    let device_code = text("device_code");
    let secrets: Vec<&str> = device_code.iter().map(String::as_str).collect();
    let missing = |what: &str| {
        Error::protocol(
            status,
            format!("the device authorization response of {provider} has no {what}"),
            excerpt(&meta.body, &secrets),
        )
    };
    let device_code = device_code.clone().ok_or_else(|| missing("device_code"))?;
    let user_code = text("user_code").ok_or_else(|| missing("user_code"))?;
    // Google spells it `verification_url`.
    let verification_uri = text("verification_uri")
        .or_else(|| text("verification_url"))
        .ok_or_else(|| missing("verification_uri"))?;
    let expires_in = seconds("expires_in").ok_or_else(|| missing("expires_in"))?;
    let interval = seconds("interval")
        .map_or(DEFAULT_INTERVAL, Duration::from_secs)
        .max(MIN_INTERVAL);
    Ok(DeviceAuthorization {
        provider: provider.clone(),
        device_code: SecretString::from(device_code),
        user_code,
        verification_uri,
        verification_uri_complete: text("verification_uri_complete"),
        expires_in: Duration::from_secs(expires_in),
        interval,
        scopes,
        received,
    })
}

/// The RFC 8628 §3.5 answers of a poll, or `None` for the usual
/// classification. Google answers `authorization_pending` with 428 and
/// `slow_down` with 403, so the code decides, not the status; only 429 and
/// 5xx keep their transient meaning whatever the body says.
fn device_error(
    provider: &OAuth2Provider,
    meta: &ResponseMeta,
    secrets: &[&str],
) -> Option<Result<DevicePoll>> {
    if meta.status.as_u16() == 429 || meta.status.is_server_error() {
        return None;
    }
    let server = provider.hooks().parse_error(meta)?;
    let description = server
        .description
        .as_deref()
        .map(|d| auth_core::redact::redact(d, secrets));
    Some(match server.code.as_str() {
        "authorization_pending" => Ok(DevicePoll::Pending),
        "slow_down" => Ok(DevicePoll::SlowDown),
        "access_denied" => Err(Error::AuthorizationDenied {
            error: "access_denied".to_owned(),
            description: Some(description.unwrap_or_else(|| {
                "the person refused the device login at the verification page".to_owned()
            })),
        }),
        "expired_token" => Err(Error::AuthorizationDenied {
            error: "expired_token".to_owned(),
            description: Some(format!(
                "the device code expired before the person approved it{}; start the device \
                 login again",
                description.map(|d| format!(" ({d})")).unwrap_or_default()
            )),
        }),
        _ => return None,
    })
}

/// The polling loop, apart from HTTP so its timing can be tested on a
/// paused clock.
pub(crate) async fn run_poller<F, Fut>(
    interval: Duration,
    deadline: Instant,
    mut poll: F,
) -> Result<TokenSet>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<DevicePoll>>,
{
    let mut interval = interval.max(MIN_INTERVAL);
    let mut backoff: Option<Duration> = None;
    loop {
        let wait = backoff.unwrap_or(interval);
        if Instant::now() + wait >= deadline {
            return Err(Error::AuthorizationDenied {
                error: "expired_token".to_owned(),
                description: Some(
                    "the device code expired before the person approved it (no answer within \
                     its expires_in); start the device login again"
                        .to_owned(),
                ),
            });
        }
        tokio::time::sleep(wait).await;
        match poll().await {
            Ok(DevicePoll::Token(token)) => return Ok(*token),
            Ok(DevicePoll::Pending) => backoff = None,
            Ok(DevicePoll::SlowDown) => {
                interval += SLOW_DOWN_STEP;
                debug!(interval = ?interval, "device login: slow_down, polling less often");
                backoff = None;
            }
            Err(err) if err.is_transient() => {
                let next = backoff
                    .map_or(interval * 2, |b| b * 2)
                    .min(MAX_BACKOFF)
                    .max(interval)
                    .max(err.retry_after().unwrap_or_default());
                debug!(wait = ?next, error = %err, "device login: poll failed, backing off");
                backoff = Some(next);
            }
            Err(err) => return Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    fn token() -> DevicePoll {
        DevicePoll::Token(Box::new(TokenSet::new(
            "at".to_owned(),
            "Bearer",
            std::time::SystemTime::now(),
        )))
    }

    /// Runs the poller over scripted answers and returns the instants
    /// (seconds since start) of each poll, and the outcome.
    async fn script(
        interval: u64,
        expires_in: u64,
        answers: Vec<Result<DevicePoll>>,
    ) -> (Vec<u64>, Result<TokenSet>) {
        let start = Instant::now();
        let answers = Arc::new(Mutex::new(answers.into_iter()));
        let times = Arc::new(Mutex::new(Vec::new()));
        let outcome = run_poller(
            Duration::from_secs(interval),
            start + Duration::from_secs(expires_in),
            || {
                times.lock().unwrap().push(start.elapsed().as_secs());
                let next = answers.lock().unwrap().next();
                async move { next.unwrap_or(Ok(DevicePoll::Pending)) }
            },
        )
        .await;
        let times = times.lock().unwrap().clone();
        (times, outcome)
    }

    fn timeout() -> Error {
        Error::transient("timed out")
    }

    #[tokio::test(start_paused = true)]
    async fn obeys_the_interval_and_keeps_polling_while_pending() {
        let (times, outcome) = script(
            5,
            600,
            vec![
                Ok(DevicePoll::Pending),
                Ok(DevicePoll::Pending),
                Ok(token()),
            ],
        )
        .await;
        assert_eq!(times, [5, 10, 15]);
        assert_eq!(outcome.unwrap().access_token().expose_secret(), "at");
    }

    #[tokio::test(start_paused = true)]
    async fn slow_down_adds_five_seconds_for_good() {
        let (times, outcome) = script(
            5,
            600,
            vec![
                Ok(DevicePoll::SlowDown),
                Ok(DevicePoll::Pending),
                Ok(DevicePoll::SlowDown),
                Ok(DevicePoll::Pending),
                Ok(token()),
            ],
        )
        .await;
        assert_eq!(times, [5, 15, 25, 40, 55]);
        assert!(outcome.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn timeouts_back_off_exponentially_then_the_interval_resumes() {
        let (times, outcome) = script(
            5,
            600,
            vec![
                Err(timeout()),
                Err(timeout()),
                Err(timeout()),
                Ok(DevicePoll::Pending),
                Ok(token()),
            ],
        )
        .await;
        // 5, then +10, +20, +40, then the interval again.
        assert_eq!(times, [5, 15, 35, 75, 80]);
        assert!(outcome.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_is_capped_and_honours_retry_after() {
        let retry = Error::Transient {
            message: "429".into(),
            sent: auth_core::Sent::Unknown,
            status: Some(429),
            retry_after: Some(Duration::from_secs(90)),
            source: None,
        };
        let (times, _) = script(
            5,
            10_000,
            vec![
                Err(timeout()),
                Err(timeout()),
                Err(timeout()),
                Err(timeout()),
                Err(timeout()),
                Err(retry),
                Ok(token()),
            ],
        )
        .await;
        let gaps: Vec<u64> = times.windows(2).map(|w| w[1] - w[0]).collect();
        assert_eq!(gaps, [10, 20, 40, 60, 60, 90]);
    }

    #[tokio::test(start_paused = true)]
    async fn stops_at_expires_in_without_polling_past_it() {
        let (times, outcome) = script(5, 17, vec![]).await;
        assert_eq!(times, [5, 10, 15]);
        let err = outcome.unwrap_err();
        assert!(
            matches!(&err, Error::AuthorizationDenied { error, .. } if error == "expired_token"),
            "{err}"
        );
        assert!(
            err.to_string().contains("start the device login again"),
            "{err}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_hard_error_ends_at_once() {
        let denied = Error::AuthorizationDenied {
            error: "access_denied".into(),
            description: None,
        };
        let (times, outcome) = script(5, 600, vec![Ok(DevicePoll::Pending), Err(denied)]).await;
        assert_eq!(times, [5, 10]);
        assert!(matches!(
            outcome.unwrap_err(),
            Error::AuthorizationDenied { .. }
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn dropping_the_future_cancels_the_polling() {
        let polls = Arc::new(Mutex::new(0));
        let counted = Arc::clone(&polls);
        let poller = run_poller(
            Duration::from_secs(5),
            Instant::now() + Duration::from_secs(600),
            move || {
                *counted.lock().unwrap() += 1;
                async { Ok(DevicePoll::Pending) }
            },
        );
        let cancelled = tokio::time::timeout(Duration::from_secs(12), poller).await;
        assert!(cancelled.is_err());
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(*polls.lock().unwrap(), 2, "no poll after the drop");
    }

    #[test]
    fn debug_never_shows_the_device_code() {
        let auth = DeviceAuthorization {
            provider: "p".parse().unwrap(),
            device_code: SecretString::from("dc-secret-4f1e9a".to_owned()),
            user_code: "WDJB-MJHT".into(),
            verification_uri: "https://example.com/device".into(),
            verification_uri_complete: None,
            expires_in: Duration::from_secs(600),
            interval: DEFAULT_INTERVAL,
            scopes: vec![],
            received: Instant::now(),
        };
        let shown = format!("{auth:?}");
        assert!(!shown.contains("dc-secret-4f1e9a"), "{shown}");
        assert!(shown.contains("WDJB-MJHT"));
    }
}
