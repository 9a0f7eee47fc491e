//! Fault injection: what a test can make the next requests to an endpoint
//! suffer. Faults are queued per endpoint and consumed one per request, before
//! normal handling, so a fault never depends on what the request contains.
//!
//! [`Fault::HoldAnswer`] also keeps the answers it holds back here
//! ([`Holds`]), until a test releases them.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use http::StatusCode;
use tokio::sync::{oneshot, watch};

use crate::oauth::endpoint::Endpoint;
use crate::oauth::error_body;
use crate::oauth::reply::Reply;

/// A fault to inject into the next requests to an endpoint (see
/// [`Emulator::inject`](crate::Emulator::inject)).
///
/// Every request answered by a fault still counts in its endpoint counter and
/// in [`Counters::faults_injected`](crate::Counters::faults_injected).
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this HTTP status and the provider's normal error body: the
    /// Fitbit error shape on legacy Fitbit APIs, the RFC 6749 shape on Google
    /// OAuth APIs, an HTML page on the two consent pages. A status that is not
    /// a valid HTTP status becomes 500.
    Status(u16),
    /// Answer with this status and an HTML page (`text/html`), like a proxy or
    /// CDN in front of the server would.
    Html {
        /// The HTTP status of the page.
        status: u16,
    },
    /// Answer normally, but only after this delay. The request is processed
    /// after the delay even if the client has given up by then.
    Delay(Duration),
    /// Process the request fully (for example rotate the refresh token), then
    /// close the connection without sending any HTTP response: the client
    /// sees a connection error and never learns the result.
    DropAfterProcessing,
    /// Process the request fully (for example rotate the refresh token), then
    /// hold the answer back until the test releases it with
    /// [`Emulator::release_held`](crate::Emulator::release_held): sent as it
    /// was, or the connection closed without a response. A client that dies
    /// or gives up meanwhile never learns the result. This is the moment in
    /// which a killed client loses a rotated pair that only the server knows.
    /// [`Emulator::held_answers`](crate::Emulator::held_answers) lists what is
    /// held, with each client's address.
    HoldAnswer,
    /// Answer 429 with the provider's error body (errorType `system` on Fitbit)
    /// and a `Retry-After` header of this many seconds (rounded up, at least 1).
    /// Also counts in [`Counters::rate_limited`](crate::Counters::rate_limited).
    RateLimited {
        /// The value of `Retry-After` (and of `Fitbit-Rate-Limit-Reset`).
        retry_after: Duration,
    },
    /// Answer with this status and the Google API error shape
    /// `{"error":{"code":…,"message":"…","status":"…"}}`, which some legacy
    /// Fitbit responses have used since 2026 (docs/providers-facts.md, "Legacy Fitbit OAuth 2.0").
    GoogleApiError {
        /// The HTTP status (and `code` in the body).
        status: u16,
    },
}

impl Fault {
    /// The answer this fault gives instead of normal handling, if any
    /// (`Delay`, `DropAfterProcessing` and `HoldAnswer` let the request be
    /// handled).
    pub(crate) fn immediate_reply(&self, endpoint: Endpoint) -> Option<Reply> {
        match self {
            Fault::Status(status) => Some(status_reply(endpoint, status_code(*status))),
            Fault::Html { status } => Some(proxy_page(status_code(*status))),
            Fault::RateLimited { retry_after } => {
                let seconds = whole_seconds_up(*retry_after);
                Some(
                    status_reply(endpoint, StatusCode::TOO_MANY_REQUESTS).with_retry_after(seconds),
                )
            }
            Fault::GoogleApiError { status } => {
                let status = status_code(*status);
                Some(error_body::google_api(
                    status,
                    status.canonical_reason().unwrap_or("Error"),
                ))
            }
            Fault::Delay(_) | Fault::DropAfterProcessing | Fault::HoldAnswer => None,
        }
    }
}

/// The faults queued for each endpoint, first in first out.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    queues: HashMap<Endpoint, VecDeque<Fault>>,
}

impl Faults {
    /// Queues `fault` for the next `times` requests to `endpoint`.
    pub(crate) fn push(&mut self, endpoint: Endpoint, fault: Fault, times: u32) {
        let queue = self.queues.entry(endpoint).or_default();
        for _ in 0..times {
            queue.push_back(fault.clone());
        }
    }

    /// Takes the next fault queued for `endpoint`.
    pub(crate) fn next(&mut self, endpoint: Endpoint) -> Option<Fault> {
        self.queues.get_mut(&endpoint).and_then(VecDeque::pop_front)
    }

    /// Removes every queued fault.
    pub(crate) fn clear(&mut self) {
        self.queues.clear();
    }
}

/// An answer held back by [`Fault::HoldAnswer`]: the request was processed,
/// and its client has not heard back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldAnswer {
    /// Names this answer in [`Emulator::release_held`](crate::Emulator::release_held).
    pub id: u64,
    /// The endpoint that processed the request.
    pub endpoint: Endpoint,
    /// The client's address (its local port tells which client it is).
    pub peer: Option<SocketAddr>,
}

/// What [`Emulator::release_held`](crate::Emulator::release_held) does with
/// a held answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Release {
    /// Send the answer as it was (a client that went away gets nothing).
    Deliver,
    /// Close the connection without a response.
    Drop,
}

/// The answers held back by [`Fault::HoldAnswer`], each with the channel its
/// request handler waits on.
#[derive(Debug)]
pub(crate) struct Holds {
    held: Mutex<HeldSet>,
    /// How many answers are held; tests wait on it.
    count: watch::Sender<usize>,
}

#[derive(Debug, Default)]
struct HeldSet {
    next_id: u64,
    answers: BTreeMap<u64, (HeldAnswer, oneshot::Sender<Release>)>,
}

impl Default for Holds {
    fn default() -> Self {
        Self {
            held: Mutex::default(),
            count: watch::Sender::new(0),
        }
    }
}

impl Holds {
    fn lock(&self) -> MutexGuard<'_, HeldSet> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Holds one processed answer; the handler awaits the receiver. A
    /// dropped sender (the emulator went away) counts as [`Release::Drop`].
    pub(crate) fn hold(
        &self,
        endpoint: Endpoint,
        peer: Option<SocketAddr>,
    ) -> oneshot::Receiver<Release> {
        let (tx, rx) = oneshot::channel();
        let mut set = self.lock();
        set.next_id += 1;
        let id = set.next_id;
        set.answers
            .insert(id, (HeldAnswer { id, endpoint, peer }, tx));
        self.count.send_replace(set.answers.len());
        rx
    }

    /// What is held now, oldest first.
    pub(crate) fn list(&self) -> Vec<HeldAnswer> {
        self.lock()
            .answers
            .values()
            .map(|(a, _)| a.clone())
            .collect()
    }

    /// Releases one answer; `false` if it is not held (any more).
    pub(crate) fn release(&self, id: u64, how: Release) -> bool {
        let mut set = self.lock();
        let Some((_, tx)) = set.answers.remove(&id) else {
            return false;
        };
        self.count.send_replace(set.answers.len());
        // A handler that is gone (the server stopped) needs no answer.
        let _ = tx.send(how);
        true
    }

    /// Releases every held answer; returns how many there were.
    pub(crate) fn release_all(&self, how: Release) -> usize {
        let answers = {
            let mut set = self.lock();
            let answers = std::mem::take(&mut set.answers);
            self.count.send_replace(0);
            answers
        };
        let n = answers.len();
        for (_, (_, tx)) in answers {
            let _ = tx.send(how);
        }
        n
    }

    /// Waits until at least one answer is held, and lists them.
    pub(crate) async fn wait_any(&self) -> Vec<HeldAnswer> {
        let mut count = self.count.subscribe();
        // The sender lives as long as `self`, so this cannot fail.
        let _ = count.wait_for(|n| *n > 0).await;
        self.list()
    }
}

/// Seconds, rounded up, at least 1 (for `Retry-After`).
pub(crate) fn whole_seconds_up(d: Duration) -> u64 {
    let mut s = d.as_secs();
    if d.subsec_nanos() > 0 {
        s += 1;
    }
    s.max(1)
}

fn status_code(status: u16) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// The provider's own error answer for `status` at `endpoint`.
fn status_reply(endpoint: Endpoint, status: StatusCode) -> Reply {
    let reason = status.canonical_reason().unwrap_or("Error");
    if endpoint.is_browser_page() {
        let title = format!("{} {reason}", status.as_u16());
        return Reply::html_page(
            status,
            &title,
            &["Something went wrong. Please try again later."],
        );
    }
    if endpoint.is_fitbit() {
        let message = if status == StatusCode::TOO_MANY_REQUESTS {
            "Too Many Requests".to_owned()
        } else {
            format!("{reason}. Please try again later.")
        };
        error_body::fitbit(status, error_body::fitbit_error_type(status), &message)
    } else {
        let (error, description) = error_body::oauth_error_for(status);
        error_body::oauth(status, error, description)
    }
}

/// An error page as a reverse proxy or CDN would send it.
fn proxy_page(status: StatusCode) -> Reply {
    let line = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error")
    );
    Reply::html_raw(
        status,
        format!(
            "<html>\r\n<head><title>{line}</title></head>\r\n<body>\r\n<center><h1>{line}</h1></center>\r\n<hr><center>edge-proxy</center>\r\n</body>\r\n</html>\r\n"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(whole_seconds_up(Duration::from_millis(1500)), 2);
        assert_eq!(whole_seconds_up(Duration::ZERO), 1);
        assert_eq!(whole_seconds_up(Duration::from_secs(30)), 30);
    }

    #[tokio::test]
    async fn held_answers_are_listed_released_and_waited_for() {
        let holds = Holds::default();
        let first = holds.hold(Endpoint::FitbitToken, None);
        let second = holds.hold(Endpoint::GoogleToken, None);
        let listed = holds.wait_any().await;
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].endpoint, Endpoint::FitbitToken);
        assert!(holds.release(listed[0].id, Release::Deliver));
        assert!(
            !holds.release(listed[0].id, Release::Deliver),
            "released twice"
        );
        assert_eq!(first.await, Ok(Release::Deliver));
        assert_eq!(holds.release_all(Release::Drop), 1);
        assert_eq!(second.await, Ok(Release::Drop));
        assert!(holds.list().is_empty());
    }

    #[test]
    fn invalid_status_becomes_500() {
        let reply = Fault::Status(1000)
            .immediate_reply(Endpoint::GoogleToken)
            .expect("a status fault answers");
        assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    }
}
