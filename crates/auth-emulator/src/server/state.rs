//! What the running emulator holds, behind one `std::sync::Mutex`: the two
//! providers (each owning its state), the clock, the consent queue, the
//! counters, the last requests and the queued faults. Handlers take the lock,
//! decide, and release it before any await: the lock is never held across a
//! suspension point, so the test-facing methods on `Emulator` work while
//! requests are in flight.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use crate::oauth::clock::Clock;
use crate::oauth::consent::Consents;
use crate::oauth::context::Cx;
use crate::oauth::endpoint::Endpoint;
use crate::oauth::grants::{IssuedTokens, Seed};
use crate::oauth::reply::Reply;
use crate::oauth::request::Request;
use crate::providers::fitbit::{self, Fitbit, FitbitSettings};
use crate::providers::google::{Google, GoogleSettings};
use crate::server::counters::{Counters, RecordedRequest};
use crate::server::fault::{Fault, Faults, Holds};

/// The emulator's state: the parts, each behind its own type.
#[derive(Debug)]
pub(crate) struct State {
    clock: Clock,
    consents: Consents,
    counters: Counters,
    last_requests: HashMap<Endpoint, RecordedRequest>,
    faults: Faults,
    fitbit: Fitbit,
    google: Google,
}

/// What happens to a request after it was counted.
pub(crate) enum Admission {
    /// Handle it, after the fault it consumed (a delay or a drop), if any.
    Proceed(Option<Fault>),
    /// Answer this instead (retired mode, an answering fault).
    Answer(Reply),
}

impl State {
    /// A fresh emulator: no grants, no faults, counters at zero.
    pub(crate) fn new(
        fitbit: FitbitSettings,
        google: GoogleSettings,
        default_user: String,
    ) -> Self {
        Self {
            clock: Clock::default(),
            consents: Consents::new(default_user),
            counters: Counters::default(),
            last_requests: HashMap::new(),
            faults: Faults::default(),
            fitbit: Fitbit::new(fitbit),
            google: Google::new(google),
        }
    }

    /// The legacy Fitbit server.
    pub(crate) fn fitbit(&mut self) -> &mut Fitbit {
        &mut self.fitbit
    }

    /// The Google server.
    pub(crate) fn google(&mut self) -> &mut Google {
        &mut self.google
    }

    /// The next consent decisions.
    pub(crate) fn consents(&mut self) -> &mut Consents {
        &mut self.consents
    }

    /// The queued faults.
    pub(crate) fn faults(&mut self) -> &mut Faults {
        &mut self.faults
    }

    /// The emulator's clock.
    pub(crate) fn clock(&mut self) -> &mut Clock {
        &mut self.clock
    }

    /// The counters so far.
    pub(crate) fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Sets every counter back to zero.
    pub(crate) fn reset_counters(&mut self) {
        self.counters = Counters::default();
    }

    /// The last request `endpoint` received.
    pub(crate) fn last_request(&self, endpoint: Endpoint) -> Option<&RecordedRequest> {
        self.last_requests.get(&endpoint)
    }

    /// Seeds a Fitbit grant (see `Emulator::seed_fitbit_grant`).
    pub(crate) fn seed_fitbit(&mut self, seed: &Seed<'_>) -> IssuedTokens {
        let now = self.clock.now();
        self.fitbit.seed(seed, now)
    }

    /// Seeds a Google grant (see `Emulator::seed_google_grant`).
    pub(crate) fn seed_google(&mut self, seed: &Seed<'_>) -> IssuedTokens {
        let now = self.clock.now();
        self.google.seed(seed, now)
    }

    /// Forgets one access token, Fitbit or Google.
    pub(crate) fn invalidate_access_token(&mut self, token: &str) {
        self.fitbit.invalidate_access(token);
        self.google.invalidate_access(token);
    }

    /// Counts and records the request, then either answers it at once
    /// (retired mode, an answering fault) or lets it through with the fault
    /// it consumed.
    pub(crate) fn admit(&mut self, endpoint: Endpoint, request: &Request, path: &str) -> Admission {
        let grant_type = match endpoint {
            Endpoint::FitbitToken | Endpoint::GoogleToken => request
                .form_params()
                .ok()
                .and_then(|p| p.get("grant_type").map(str::to_owned)),
            _ => None,
        };
        self.counters.count_request(endpoint, grant_type.as_deref());
        self.last_requests.insert(endpoint, record(request, path));
        if endpoint.is_fitbit() && self.fitbit.is_retired() {
            self.counters.retired_rejections += 1;
            return Admission::Answer(fitbit::retired());
        }
        let Some(fault) = self.faults.next(endpoint) else {
            return Admission::Proceed(None);
        };
        self.counters.faults_injected += 1;
        let Some(reply) = fault.immediate_reply(endpoint) else {
            return Admission::Proceed(Some(fault));
        };
        if matches!(fault, Fault::RateLimited { .. }) {
            self.counters.rate_limited += 1;
        }
        let reply = if endpoint.is_fitbit() && !matches!(fault, Fault::Html { .. }) {
            let now = self.clock.now();
            self.fitbit
                .with_quota_headers(endpoint, request, reply, now)
        } else {
            reply
        };
        Admission::Answer(reply)
    }

    /// Lets the endpoint's provider answer the request.
    pub(crate) fn handle(&mut self, endpoint: Endpoint, request: &Request) -> Reply {
        let mut cx = Cx {
            now: self.clock.now(),
            consents: &mut self.consents,
            events: &mut self.counters,
        };
        if endpoint.is_fitbit() {
            self.fitbit.handle(endpoint, request, &mut cx)
        } else {
            self.google.handle(endpoint, request, &mut cx)
        }
    }
}

fn record(request: &Request, path: &str) -> RecordedRequest {
    RecordedRequest {
        method: request.method.to_string(),
        path: path.to_owned(),
        headers: request
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_ascii_lowercase(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: request.body.clone(),
        query: request.query.clone(),
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
    pub(crate) fn new(state: State) -> Self {
        Self {
            state: Mutex::new(state),
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
