//! What a provider's handler borrows from the server for one request: the
//! emulator's time, the consent queue, and where to report what happened.
//! Providers report [`Event`]s; the server counts them. So providers never
//! see the server's counters, and the server never reaches into a provider.

use std::time::SystemTime;

use crate::oauth::consent::Consents;

/// Something a provider reports for the server's counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// Client authentication failed or used a forbidden method.
    ClientAuthFailure,
    /// A code exchange failed its PKCE check.
    PkceFailure,
    /// A Fitbit refresh was answered again inside the replay window.
    Replay,
    /// A used Fitbit refresh token came back outside the window.
    ReuseDetection,
    /// A request was answered 429 for its quota.
    RateLimited,
    /// A resource request was answered 200.
    ResourceOk,
}

/// Where events go.
pub(crate) trait Observer {
    /// Records one event.
    fn record(&mut self, event: Event);
}

/// The server's side of one provider call.
pub(crate) struct Cx<'a> {
    /// The emulator's clock, read once for the request.
    pub(crate) now: SystemTime,
    /// The next consent decisions.
    pub(crate) consents: &'a mut Consents,
    /// Where the provider reports events.
    pub(crate) events: &'a mut dyn Observer,
}

impl Cx<'_> {
    /// Reports one event.
    pub(crate) fn report(&mut self, event: Event) {
        self.events.record(event);
    }
}
