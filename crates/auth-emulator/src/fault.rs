//! Fault injection: what a test can make the next requests to an endpoint
//! suffer. Faults are queued per endpoint and consumed one per request, before
//! normal handling, so a fault never depends on what the request contains.

use std::time::Duration;

use http::StatusCode;

use crate::endpoint::Endpoint;
use crate::error_body;
use crate::reply::Reply;

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
    /// (`Delay` and `DropAfterProcessing` let the request be handled).
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
            Fault::Delay(_) | Fault::DropAfterProcessing => None,
        }
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

    #[test]
    fn invalid_status_becomes_500() {
        let reply = Fault::Status(1000)
            .immediate_reply(Endpoint::GoogleToken)
            .expect("a status fault answers");
        assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    }
}
