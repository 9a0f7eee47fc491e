//! The server of catalogue profiles: one [`ProfileEmulator`] serves several
//! [`Profile`]s on 127.0.0.1, each under its own path
//! (`http://127.0.0.1:PORT/NAME/`), each behind its own lock, on one clock
//! of its own (the machine's wall clock plus what tests move it forward).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use auth_catalogue::{Catalogue, ProviderSpec};
use axum::Router;
use axum::extract::State as AxumState;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use url::Url;

use crate::error::EmulatorError;
use crate::oauth::clock::Clock;
use crate::oauth::request::Request;
use crate::providers::catalogue::{self, Profile, ProfileCounters};
use crate::server::serve;

/// The largest request body accepted.
const MAX_BODY: usize = 64 * 1024;

/// Configures a [`ProfileEmulator`].
#[derive(Debug, Default, Clone)]
pub struct ProfileEmulatorBuilder {
    profiles: BTreeMap<String, ProviderSpec>,
    port: u16,
}

impl ProfileEmulatorBuilder {
    /// Serves `spec` as the profile `name`. A template's placeholders are
    /// filled with emulator values.
    #[must_use]
    pub fn profile(mut self, name: impl Into<String>, spec: ProviderSpec) -> Self {
        self.profiles.insert(name.into(), spec);
        self
    }

    /// Serves the built-in catalogue entry `name`.
    ///
    /// # Errors
    ///
    /// [`EmulatorError::UnknownProfile`] when the catalogue has no such entry.
    pub fn catalogue_profile(self, name: &str) -> Result<Self, EmulatorError> {
        let spec = Catalogue::builtin()
            .get(name)
            .ok_or_else(|| EmulatorError::UnknownProfile {
                name: name.to_owned(),
            })?
            .clone();
        Ok(self.profile(name, spec))
    }

    /// Serves every entry of the built-in catalogue.
    #[must_use]
    pub fn whole_catalogue(mut self) -> Self {
        for (name, spec) in Catalogue::builtin().iter() {
            self.profiles.insert(name.to_owned(), spec.clone());
        }
        self
    }

    /// Listens on this port (default 0: any free port).
    #[must_use]
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Binds 127.0.0.1 and starts serving.
    ///
    /// # Errors
    ///
    /// [`EmulatorError::Bind`] when the port cannot be bound.
    pub async fn start(self) -> Result<ProfileEmulator, EmulatorError> {
        let bind = |source| EmulatorError::Bind {
            port: self.port,
            source,
        };
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .await
            .map_err(bind)?;
        let addr = listener.local_addr().map_err(bind)?;
        let base_url =
            Url::parse(&format!("http://{addr}/")).map_err(|e| bind(std::io::Error::other(e)))?;
        let mut profiles = HashMap::new();
        for (name, spec) in self.profiles {
            let profile = Profile::new(name.clone(), &base_url, &spec);
            profiles.insert(name, Mutex::new(profile));
        }
        let shared = Arc::new(ProfileShared {
            profiles,
            clock: Mutex::new(Clock::default()),
        });
        let (shutdown, shutdown_rx) = watch::channel(false);
        let router = Router::new()
            .fallback(dispatch)
            .with_state(Arc::clone(&shared));
        let task = tokio::spawn(serve::serve(listener, router, shutdown_rx));
        Ok(ProfileEmulator {
            shared,
            base_url,
            shutdown,
            task: Some(task),
        })
    }
}

/// A running emulator of catalogue profiles, on 127.0.0.1. Dropping it
/// stops the server.
pub struct ProfileEmulator {
    shared: Arc<ProfileShared>,
    base_url: Url,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl fmt::Debug for ProfileEmulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&String> = self.shared.profiles.keys().collect();
        names.sort();
        f.debug_struct("ProfileEmulator")
            .field("base_url", &self.base_url.as_str())
            .field("profiles", &names)
            .finish_non_exhaustive()
    }
}

impl Drop for ProfileEmulator {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl ProfileEmulator {
    /// A builder with no profiles.
    pub fn builder() -> ProfileEmulatorBuilder {
        ProfileEmulatorBuilder::default()
    }

    /// The base URL, `http://127.0.0.1:PORT/`.
    pub fn base_url(&self) -> &Url {
        &self.base_url
    }

    /// The profiles served, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.shared.profiles.keys().cloned().collect();
        names.sort();
        names
    }

    /// The entry as this emulator serves it: every endpoint, the issuer and
    /// the API base URL point here. `None` for a profile not served.
    pub fn spec(&self, name: &str) -> Option<ProviderSpec> {
        self.with(name, |p| p.spec().clone())
    }

    /// The client id registered with every profile.
    pub fn client_id(&self, name: &str) -> String {
        catalogue::client_id(name)
    }

    /// The client secret registered with every profile.
    pub fn client_secret(&self, name: &str) -> String {
        catalogue::client_secret(name)
    }

    /// The resource endpoint of a profile: the entry's resource path under
    /// its API base URL.
    pub fn resource_url(&self, name: &str) -> Option<Url> {
        let spec = self.spec(name)?;
        let base = Url::parse(spec.endpoints.api_base_urls.first()?).ok()?;
        base.join(spec.endpoints.resource.as_deref().unwrap_or("resource"))
            .ok()
    }

    /// What clients of a profile asked so far.
    pub fn counters(&self, name: &str) -> Option<ProfileCounters> {
        self.with(name, |p| p.counters())
    }

    /// Ends the grant a token belongs to, as a user revoking access would.
    pub fn revoke_grant_of(&self, name: &str, token: &str) {
        self.with(name, |p| p.revoke_grant_of(token));
    }

    /// Moves the emulator's clock forward for every profile: access-token
    /// expiry and replay windows follow it.
    pub fn advance_time(&self, d: Duration) {
        self.shared.clock().advance(d);
    }

    /// The emulator's current time (the wall clock plus every
    /// [`advance_time`](ProfileEmulator::advance_time)).
    pub fn now(&self) -> SystemTime {
        self.shared.clock().now()
    }

    fn with<T>(&self, name: &str, f: impl FnOnce(&mut Profile) -> T) -> Option<T> {
        let profile = self.shared.profiles.get(name)?;
        let mut guard = profile.lock().unwrap_or_else(PoisonError::into_inner);
        Some(f(&mut guard))
    }
}

struct ProfileShared {
    profiles: HashMap<String, Mutex<Profile>>,
    /// The one clock of every profile, behind its own lock (held only to
    /// read or move it).
    clock: Mutex<Clock>,
}

impl ProfileShared {
    fn clock(&self) -> MutexGuard<'_, Clock> {
        self.clock.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

async fn dispatch(
    AxumState(shared): AxumState<Arc<ProfileShared>>,
    req: axum::extract::Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let path = parts.uri.path().trim_start_matches('/').to_owned();
    let (name, rest) = path.split_once('/').unwrap_or((path.as_str(), ""));
    let Some(profile) = shared.profiles.get(name) else {
        return (StatusCode::NOT_FOUND, "no such profile").into_response();
    };
    let request = Request {
        method: parts.method,
        headers: parts.headers,
        query: parts.uri.query().unwrap_or_default().to_owned(),
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    let now = shared.clock().now();
    let mut profile = profile.lock().unwrap_or_else(PoisonError::into_inner);
    profile.handle(rest, &request, now).into_response()
}
