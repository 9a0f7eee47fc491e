//! Configuration before start: registered clients, lifetimes, switches and
//! quotas. Nothing here touches the network until `start`.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use url::Url;

use crate::demo;
use crate::error::EmulatorError;
use crate::oauth::client_auth::Client;
use crate::providers::fitbit::FitbitSettings;
use crate::providers::google::GoogleSettings;
use crate::server::emulator::Emulator;
use crate::server::state::{Shared, State};
use crate::server::{router, serve};

/// A client (an app) registered with one of the emulated servers.
///
/// Its `Debug` output never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientConfig {
    id: String,
    secret: Option<String>,
    redirect_uris: Vec<String>,
}

impl ClientConfig {
    /// A confidential client: a Fitbit "Server" app (which must authenticate
    /// with HTTP Basic) or a Google web client (Basic or `client_secret_post`).
    pub fn server(id: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            secret: Some(secret.into()),
            redirect_uris: Vec::new(),
        }
    }

    /// A public client without a secret: a Fitbit "Client" app, which sends
    /// `client_id` in the form body and relies on PKCE.
    pub fn public(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            secret: None,
            redirect_uris: Vec::new(),
        }
    }

    /// Registers a redirect URI. Call it once per URI; the consent pages
    /// compare the requested URI with this list exactly, character for
    /// character. A URI must be absolute and have no fragment.
    pub fn redirect_uri(mut self, uri: impl Into<String>) -> Self {
        self.redirect_uris.push(uri.into());
        self
    }

    /// The client id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether this is a public client (no secret).
    pub fn is_public(&self) -> bool {
        self.secret.is_none()
    }

    /// The registered redirect URIs.
    pub fn redirect_uris(&self) -> &[String] {
        &self.redirect_uris
    }

    fn into_client(self) -> Result<Client, EmulatorError> {
        for uri in &self.redirect_uris {
            let invalid = |reason: String| EmulatorError::InvalidRedirectUri {
                client_id: self.id.clone(),
                uri: uri.clone(),
                reason,
            };
            let parsed = Url::parse(uri).map_err(|e| invalid(e.to_string()))?;
            if parsed.fragment().is_some() {
                return Err(invalid(
                    "a redirect URI must not have a fragment (RFC 6749 3.1.2)".into(),
                ));
            }
        }
        Ok(Client {
            id: self.id,
            secret: self.secret,
            redirect_uris: self.redirect_uris,
        })
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("id", &self.id)
            .field("secret", &self.secret.as_ref().map(|_| "[redacted]"))
            .field("redirect_uris", &self.redirect_uris)
            .finish()
    }
}

// Defined here, next to the builder, so that the handle's module does not
// import the builder's: the builder makes handles.
impl Emulator {
    /// A builder with the defaults (no clients, port 0).
    pub fn builder() -> EmulatorBuilder {
        EmulatorBuilder::default()
    }
}

/// Configures and starts an [`Emulator`] (see [`Emulator::builder`]).
#[derive(Clone, Debug)]
pub struct EmulatorBuilder {
    fitbit_clients: Vec<ClientConfig>,
    google_clients: Vec<ClientConfig>,
    fitbit_access_lifetime: Duration,
    google_access_lifetime: Duration,
    google_refresh_lifetime: Option<Duration>,
    replay_window: bool,
    replay_window_duration: Duration,
    retired: bool,
    rate_limit_per_hour: u32,
    default_user: String,
    port: u16,
    google_device_interval: Duration,
}

impl Default for EmulatorBuilder {
    fn default() -> Self {
        Self {
            fitbit_clients: Vec::new(),
            google_clients: Vec::new(),
            fitbit_access_lifetime: Duration::from_secs(28_800),
            google_access_lifetime: Duration::from_secs(3_599),
            google_refresh_lifetime: None,
            replay_window: true,
            replay_window_duration: Duration::from_secs(120),
            retired: false,
            rate_limit_per_hour: 150,
            default_user: String::from(demo::DEFAULT_USER_ID),
            port: 0,
            google_device_interval: Duration::from_secs(5),
        }
    }
}

impl EmulatorBuilder {
    /// Registers a legacy Fitbit app. A later registration with the same id
    /// replaces an earlier one.
    pub fn fitbit_client(mut self, c: ClientConfig) -> Self {
        self.fitbit_clients.push(c);
        self
    }

    /// Registers a Google OAuth client. A later registration with the same id
    /// replaces an earlier one.
    pub fn google_client(mut self, c: ClientConfig) -> Self {
        self.google_clients.push(c);
        self
    }

    /// Registers the three demo clients of [`demo`], each with
    /// [`demo::REDIRECT_URI`].
    pub fn with_demo_clients(self) -> Self {
        self.fitbit_client(
            ClientConfig::server(
                demo::FITBIT_SERVER_CLIENT_ID,
                demo::FITBIT_SERVER_CLIENT_SECRET,
            )
            .redirect_uri(demo::REDIRECT_URI),
        )
        .fitbit_client(
            ClientConfig::public(demo::FITBIT_PUBLIC_CLIENT_ID).redirect_uri(demo::REDIRECT_URI),
        )
        .google_client(
            ClientConfig::server(demo::GOOGLE_CLIENT_ID, demo::GOOGLE_CLIENT_SECRET)
                .redirect_uri(demo::REDIRECT_URI),
        )
    }

    /// Lifetime of legacy Fitbit access tokens when the client does not ask
    /// for one with `expires_in`. Default 8 hours (28800 s). Sub-second parts
    /// are dropped.
    pub fn fitbit_access_token_lifetime(mut self, d: Duration) -> Self {
        self.fitbit_access_lifetime = whole_seconds(d);
        self
    }

    /// Lifetime of Google access tokens. Default 3599 s. Sub-second parts are
    /// dropped.
    pub fn google_access_token_lifetime(mut self, d: Duration) -> Self {
        self.google_access_lifetime = whole_seconds(d);
        self
    }

    /// Makes Google refresh tokens expire this long after issue, like those of
    /// apps in "Testing" publishing status (7 days at Google), and adds
    /// `refresh_token_expires_in` to code exchange answers. Default: they
    /// never expire.
    pub fn google_refresh_token_lifetime(mut self, d: Duration) -> Self {
        self.google_refresh_lifetime = Some(whole_seconds(d));
        self
    }

    /// Fitbit's replay window: an identical repeat of a refresh answers the
    /// same response again until the new tokens are used. Default on. Off is
    /// strict mode: any reuse revokes the whole grant.
    pub fn replay_window(mut self, on: bool) -> Self {
        self.replay_window = on;
        self
    }

    /// How long the replay window stays open after a refresh. Default 120 s.
    pub fn replay_window_duration(mut self, d: Duration) -> Self {
        self.replay_window_duration = d;
        self
    }

    /// Starts in retired mode: every legacy Fitbit endpoint answers
    /// `410 Gone`, as after 2026-11-02. Default off.
    pub fn retired(mut self, on: bool) -> Self {
        self.retired = on;
        self
    }

    /// Legacy Fitbit API quota per user per clock hour. Default 150.
    pub fn rate_limit_per_hour(mut self, n: u32) -> Self {
        self.rate_limit_per_hour = n;
        self
    }

    /// Who consents on the consent pages when no next user is queued with
    /// [`Emulator::set_next_user`]; used as Fitbit `user_id` and Google `sub`.
    /// Default `"26FWFL"`.
    pub fn default_user(mut self, fitbit_user_id: &str) -> Self {
        fitbit_user_id.clone_into(&mut self.default_user);
        self
    }

    /// The port to listen on, on 127.0.0.1. Default 0: any free port.
    pub fn port(mut self, p: u16) -> Self {
        self.port = p;
        self
    }

    /// The polling interval Google device logins ask for (default 5 s, as
    /// Google sends; whole seconds, at least 1). Tests and examples shorten
    /// it; polls sooner than it are answered `slow_down`.
    pub fn google_device_interval(mut self, d: Duration) -> Self {
        self.google_device_interval = whole_seconds(d).max(Duration::from_secs(1));
        self
    }

    /// Binds 127.0.0.1 and starts serving on the current tokio runtime.
    ///
    /// # Errors
    ///
    /// [`EmulatorError::InvalidRedirectUri`] for a registered redirect URI
    /// that is not an absolute URL without fragment, and
    /// [`EmulatorError::Bind`] when the port cannot be bound.
    pub async fn start(self) -> Result<Emulator, EmulatorError> {
        let fitbit_clients = registry(self.fitbit_clients)?;
        let google_clients = registry(self.google_clients)?;
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .await
            .map_err(|source| EmulatorError::Bind {
                port: self.port,
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|source| EmulatorError::Bind {
                port: self.port,
                source,
            })?;
        let base_url = Url::parse(&format!("http://{addr}/")).map_err(|e| EmulatorError::Bind {
            port: self.port,
            source: std::io::Error::other(e),
        })?;
        let fitbit = FitbitSettings {
            clients: fitbit_clients,
            access_lifetime: self.fitbit_access_lifetime,
            replay_window: self.replay_window,
            replay_window_duration: self.replay_window_duration,
            retired: self.retired,
            rate_limit_per_hour: self.rate_limit_per_hour,
        };
        let google = GoogleSettings {
            clients: google_clients,
            access_lifetime: self.google_access_lifetime,
            refresh_lifetime: self.google_refresh_lifetime,
            issuer: base_url.as_str().trim_end_matches('/').to_owned(),
            device_interval: self.google_device_interval,
            base_url: base_url.clone(),
        };
        let state = State::new(fitbit, google, self.default_user);
        let shared = Arc::new(Shared::new(state));
        let (shutdown, shutdown_rx) = watch::channel(false);
        let task = tokio::spawn(serve::serve(
            listener,
            router::router(Arc::clone(&shared)),
            shutdown_rx,
        ));
        Ok(Emulator::new(shared, base_url, shutdown, task))
    }
}

fn registry(clients: Vec<ClientConfig>) -> Result<HashMap<String, Client>, EmulatorError> {
    let mut map = HashMap::new();
    for c in clients {
        let client = c.into_client()?;
        map.insert(client.id.clone(), client);
    }
    Ok(map)
}

fn whole_seconds(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_the_secret() {
        let c =
            ClientConfig::server("ID", "super-secret-value").redirect_uri("http://127.0.0.1/cb");
        let text = format!("{c:?}");
        assert!(!text.contains("super-secret-value"), "{text}");
        assert!(text.contains("[redacted]"));
        let builder = format!("{:?}", EmulatorBuilder::default().fitbit_client(c));
        assert!(!builder.contains("super-secret-value"), "{builder}");
    }

    #[test]
    fn redirect_uri_with_fragment_is_refused() {
        let c = ClientConfig::public("P").redirect_uri("http://127.0.0.1/cb#frag");
        assert!(matches!(
            c.into_client(),
            Err(EmulatorError::InvalidRedirectUri { .. })
        ));
    }
}
