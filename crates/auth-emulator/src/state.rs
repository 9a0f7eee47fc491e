//! Everything the running emulator knows, behind one `std::sync::Mutex`.
//! Handlers take the lock, decide, and release it before any await: the lock
//! is never held across a suspension point, so the test-facing methods on
//! `Emulator` work while requests are in flight.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use http::{HeaderMap, Method};
use url::Url;

use crate::client_auth::Client;
use crate::clock::Clock;
use crate::counters::{Counters, RecordedRequest};
use crate::endpoint::Endpoint;
use crate::fault::{Fault, Holds};
use crate::grants::Authority;
use crate::params::Params;
use crate::rate_limit::RateLimiter;

/// Settings, fixed at start except for the switches tests may flip.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) fitbit_clients: HashMap<String, Client>,
    pub(crate) google_clients: HashMap<String, Client>,
    pub(crate) fitbit_access_lifetime: Duration,
    pub(crate) google_access_lifetime: Duration,
    pub(crate) google_refresh_lifetime: Option<Duration>,
    pub(crate) replay_window: bool,
    pub(crate) replay_window_duration: Duration,
    pub(crate) retired: bool,
    pub(crate) rate_limit_per_hour: u32,
    pub(crate) default_user: String,
    /// The base URL, `http://127.0.0.1:PORT/`.
    pub(crate) base_url: Url,
    /// The Google issuer: the base URL without its trailing slash.
    pub(crate) issuer: String,
    /// The polling interval of Google device logins (5 s at Google).
    pub(crate) google_device_interval: Duration,
}

/// What the next consent pages will do, as queued by tests.
#[derive(Debug, Default)]
pub(crate) struct ConsentQueue {
    pub(crate) deny: u32,
    pub(crate) users: VecDeque<String>,
    pub(crate) scopes: Option<Vec<String>>,
}

/// The outcome of one consent page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Consent {
    Denied,
    Granted {
        user_id: String,
        /// Restricts the granted scopes to these (the user unticked others).
        only: Option<Vec<String>>,
    },
}

/// The emulator's whole state.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) config: Config,
    pub(crate) clock: Clock,
    pub(crate) counters: Counters,
    pub(crate) last_requests: HashMap<Endpoint, RecordedRequest>,
    pub(crate) faults: HashMap<Endpoint, VecDeque<Fault>>,
    pub(crate) consent: ConsentQueue,
    pub(crate) rate: RateLimiter,
    pub(crate) fitbit: Authority,
    pub(crate) google: Authority,
    /// (client, user) pairs that already granted Google offline access.
    pub(crate) google_offline_consents: HashSet<(String, String)>,
    /// The legacy Fitbit id the identity endpoint gives for a Google user,
    /// where it is not the Google user id itself (`None`: no Fitbit
    /// history).
    pub(crate) legacy_user_ids: HashMap<String, Option<String>>,
    /// Google device logins in progress, by device code.
    pub(crate) google_devices: HashMap<String, crate::device::DeviceLogin>,
}

impl State {
    pub(crate) fn new(config: Config) -> Self {
        Self {
            config,
            clock: Clock::default(),
            counters: Counters::default(),
            last_requests: HashMap::new(),
            faults: HashMap::new(),
            consent: ConsentQueue::default(),
            rate: RateLimiter::default(),
            fitbit: Authority::default(),
            google: Authority::default(),
            google_offline_consents: HashSet::new(),
            legacy_user_ids: HashMap::new(),
            google_devices: HashMap::new(),
        }
    }

    /// Takes the next queued consent decision.
    pub(crate) fn next_consent(&mut self) -> Consent {
        if self.consent.deny > 0 {
            self.consent.deny -= 1;
            return Consent::Denied;
        }
        let user_id = self
            .consent
            .users
            .pop_front()
            .unwrap_or_else(|| self.config.default_user.clone());
        Consent::Granted {
            user_id,
            only: self.consent.scopes.take(),
        }
    }
}

/// The state shared by the server and the `Emulator` handle.
#[derive(Debug)]
pub(crate) struct Shared {
    state: Mutex<State>,
    /// Answers held back by `Fault::HoldAnswer`, outside the state lock so
    /// that waiting on them never touches it.
    pub(crate) holds: Holds,
}

impl Shared {
    pub(crate) fn new(config: Config) -> Self {
        Self {
            state: Mutex::new(State::new(config)),
            holds: Holds::default(),
        }
    }

    /// Locks the state. A panic while the lock was held (a bug, or a test
    /// helper's deliberate panic) leaves the state usable, so poisoning is
    /// ignored.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One request as the endpoint handlers see it.
#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) method: Method,
    pub(crate) headers: HeaderMap,
    pub(crate) query: String,
    pub(crate) body: String,
}

impl Request {
    /// The `Authorization` header, if present and readable.
    pub(crate) fn authorization(&self) -> Option<&str> {
        self.headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
    }

    /// The query parameters.
    pub(crate) fn query_params(&self) -> Result<Params, String> {
        Params::parse(&self.query)
    }

    /// The form body parameters. A non-empty body must be declared as
    /// `application/x-www-form-urlencoded`, as both servers require.
    pub(crate) fn form_params(&self) -> Result<Params, String> {
        if self.body.is_empty() {
            return Ok(Params::default());
        }
        let is_form = self
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("application/x-www-form-urlencoded")
            });
        if !is_form {
            return Err(String::from(
                "The request body must be application/x-www-form-urlencoded.",
            ));
        }
        Params::parse(&self.body).map_err(|name| format!("Repeated parameter: {name}"))
    }
}
