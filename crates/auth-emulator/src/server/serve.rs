//! The HTTP/1.1 accept loop. It is our own (rather than `axum::serve`) for
//! one reason: `Fault::DropAfterProcessing` must close a connection after the
//! handler has run but before a single byte of the response is written, and
//! only the owner of the connection future can do that, by dropping it.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use crate::oauth::reply::DropConnection;

/// The client's address, put in every request's extensions (for
/// `Fault::HoldAnswer`'s list of held answers).
#[derive(Clone, Copy, Debug)]
pub(crate) struct PeerAddr(pub(crate) std::net::SocketAddr);

/// How long a graceful shutdown waits for requests in flight.
const GRACE: Duration = Duration::from_secs(5);

/// Serves `router` on `listener` until `shutdown` turns true (or its sender
/// is dropped). Dropping this future aborts every connection.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, router.clone(), shutdown.clone()));
                }
                // Out of file descriptors and the like: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let drained = async { while connections.join_next().await.is_some() {} };
    // Whatever is still running after the grace period is aborted when the
    // JoinSet drops.
    let _ = tokio::time::timeout(GRACE, drained).await;
}

async fn serve_connection(stream: TcpStream, router: Router, mut shutdown: watch::Receiver<bool>) {
    // Small request/response pairs: don't let Nagle delay them.
    let _ = stream.set_nodelay(true);
    let peer = stream.peer_addr().ok().map(PeerAddr);
    let kill = Arc::new(Notify::new());
    let service = {
        let kill = Arc::clone(&kill);
        let tower = TowerToHyperService::new(router);
        hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
            if let Some(peer) = peer {
                req.extensions_mut().insert(peer);
            }
            let handling = hyper::service::Service::call(&tower, req);
            let kill = Arc::clone(&kill);
            async move {
                // Spawned so the request is processed to the end even if the
                // client hangs up (hyper would drop an unfinished handler).
                let response: Response = match tokio::spawn(handling).await {
                    Ok(Ok(response)) => response,
                    Ok(Err(never)) => match never {},
                    Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
                };
                if response.extensions().get::<DropConnection>().is_some() {
                    kill.notify_one();
                    std::future::pending::<()>().await;
                }
                Ok::<_, Infallible>(response)
            }
        })
    };
    let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        () = kill.notified() => {}
        _ = shutdown.changed() => {
            conn.as_mut().graceful_shutdown();
            tokio::select! {
                _ = conn.as_mut() => {}
                () = kill.notified() => {}
            }
        }
    }
    // Returning drops the connection: the socket closes without a response.
}
