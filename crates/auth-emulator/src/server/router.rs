//! Routes every endpoint through one pipeline: count and record the request,
//! answer 410 in retired mode, apply an injected fault, then let the
//! provider handle it (the synchronous steps are `State::admit` and
//! `State::handle`). The state lock is taken twice (before and after
//! a possible delay) and never held across an await, nor while an answer is
//! held back.

use std::sync::Arc;

use axum::Router;
use axum::extract::State as AxumState;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use http::StatusCode;

use crate::oauth::endpoint::Endpoint;
use crate::oauth::request::Request;
use crate::server::fault::{Fault, Release};
use crate::server::serve::PeerAddr;
use crate::server::state::{Admission, Shared};

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
    let admitted = shared.lock().admit(endpoint, &request, parts.uri.path());
    let fault = match admitted {
        Admission::Proceed(fault) => fault,
        Admission::Answer(reply) => return reply.into_response(),
    };
    if let Some(Fault::Delay(delay)) = &fault {
        tokio::time::sleep(*delay).await;
    }
    let mut reply = shared.lock().handle(endpoint, &request);
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
