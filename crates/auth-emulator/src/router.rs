//! Routes every endpoint through one pipeline: count and record the request,
//! answer 410 in retired mode, apply an injected fault, then let the
//! provider module handle it. The state lock is taken twice (before and after
//! a possible delay) and never held across an await, nor while an answer is
//! held back.

use std::collections::VecDeque;
use std::sync::Arc;

use axum::Router;
use axum::extract::State as AxumState;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use http::StatusCode;

use crate::counters::RecordedRequest;
use crate::endpoint::Endpoint;
use crate::fault::{Fault, Release};
use crate::reply::Reply;
use crate::server::PeerAddr;
use crate::state::{Request, Shared, State};
use crate::{fitbit, google};

/// The largest request body accepted (both servers take small forms).
const MAX_BODY: usize = 64 * 1024;

/// The router of all endpoints.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let mut router = Router::new();
    for endpoint in Endpoint::ALL {
        let handler = move |AxumState(shared): AxumState<Arc<Shared>>,
                            req: axum::extract::Request| {
            dispatch(shared, endpoint, req)
        };
        let methods: MethodRouter<Arc<Shared>> = match endpoint {
            Endpoint::FitbitAuthorize
            | Endpoint::GoogleAuthorize
            | Endpoint::GoogleDiscovery
            | Endpoint::FitbitProfile
            | Endpoint::GoogleHealthIdentity => get(handler),
            Endpoint::GoogleTokeninfo | Endpoint::GoogleDevicePage => get(handler).post(handler),
            _ => post(handler),
        };
        router = router.route(endpoint.path(), methods);
    }
    router
        .fallback(|| async { (StatusCode::NOT_FOUND, "Not Found") })
        .with_state(shared)
}

/// The pipeline every request goes through.
async fn dispatch(
    shared: Arc<Shared>,
    endpoint: Endpoint,
    req: axum::extract::Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let request = Request {
        method: parts.method,
        headers: parts.headers,
        query: parts.uri.query().unwrap_or_default().to_owned(),
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    let admitted = {
        let mut state = shared.lock();
        admit(&mut state, endpoint, &request, parts.uri.path())
    };
    let fault = match admitted {
        Admission::Proceed(fault) => fault,
        Admission::Answer(reply) => return reply.into_response(),
    };
    if let Some(Fault::Delay(delay)) = &fault {
        tokio::time::sleep(*delay).await;
    }
    let mut reply = {
        let mut state = shared.lock();
        if endpoint.is_fitbit() {
            fitbit::handle(&mut state, endpoint, &request)
        } else {
            google::handle(&mut state, endpoint, &request)
        }
    };
    if fault == Some(Fault::DropAfterProcessing) {
        reply.drop_connection = true;
    }
    if fault == Some(Fault::HoldAnswer) {
        let peer = parts.extensions.get::<PeerAddr>().map(|p| p.0);
        let release = shared.holds.hold(endpoint, peer).await;
        if release != Ok(Release::Deliver) {
            reply.drop_connection = true;
        }
    }
    reply.into_response()
}

/// What happens to a request after it was counted.
enum Admission {
    /// Handle it, after the fault it consumed (a delay or a drop), if any.
    Proceed(Option<Fault>),
    /// Answer this instead (retired mode, an answering fault).
    Answer(Reply),
}

/// Counts and records the request, then either answers it at once (retired
/// mode, an answering fault) or lets it through with the fault it consumed.
fn admit(state: &mut State, endpoint: Endpoint, request: &Request, path: &str) -> Admission {
    let grant_type = match endpoint {
        Endpoint::FitbitToken | Endpoint::GoogleToken => request
            .form_params()
            .ok()
            .and_then(|p| p.get("grant_type").map(str::to_owned)),
        _ => None,
    };
    state
        .counters
        .count_request(endpoint, grant_type.as_deref());
    state.last_requests.insert(endpoint, record(request, path));
    if endpoint.is_fitbit() && state.config.retired {
        state.counters.retired_rejections += 1;
        return Admission::Answer(fitbit::retired());
    }
    let fault = state
        .faults
        .get_mut(&endpoint)
        .and_then(VecDeque::pop_front);
    let Some(fault) = fault else {
        return Admission::Proceed(None);
    };
    state.counters.faults_injected += 1;
    let Some(reply) = fault.immediate_reply(endpoint) else {
        return Admission::Proceed(Some(fault));
    };
    if matches!(fault, Fault::RateLimited { .. }) {
        state.counters.rate_limited += 1;
    }
    let reply = if endpoint.is_fitbit() && !matches!(fault, Fault::Html { .. }) {
        fitbit::with_quota_headers(state, endpoint, request, reply)
    } else {
        reply
    };
    Admission::Answer(reply)
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
