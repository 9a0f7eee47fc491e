//! A tiny HTTP server on the loopback redirect URI (RFC 8252 §7.3) that
//! receives the provider's redirect and answers the browser with a small
//! page saying how the login ended.
//!
//! The server decides nothing: every request to the callback path is handed
//! to the login flow as an [`Arrival`], and the browser waits until the
//! flow has exchanged the code and replied with a [`Page`]. So the page
//! tells the truth about the whole login, not just that a redirect came
//! in. It listens on loopback addresses only and never echoes the code or
//! the state.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use url::{Host, Url};

use crate::exit::{CliResult, Failure};

/// How long shutting down may wait for the last page to be sent.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A request that reached the callback path.
#[derive(Debug)]
pub(crate) struct Arrival {
    query: String,
    reply: oneshot::Sender<Page>,
}

impl Arrival {
    /// The raw query string (without `?`); it holds the code: never log it.
    pub(crate) fn query(&self) -> &str {
        &self.query
    }

    /// Answers the browser.
    pub(crate) fn reply(self, page: Page) {
        // The browser may have gone away; nothing is lost then.
        let _ = self.reply.send(page);
    }
}

/// What the browser is shown at the end.
#[derive(Debug, Clone)]
pub(crate) enum Page {
    /// The login worked.
    Success(String),
    /// It did not; the text says why (never with a secret).
    Failure(String),
}

impl Page {
    fn render(&self) -> Response {
        let (status, title, text) = match self {
            Page::Success(text) => (StatusCode::OK, "Logged in", text),
            Page::Failure(text) => (StatusCode::BAD_REQUEST, "Login failed", text),
        };
        let body = format!(
            "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>authctl: {title}</title></head>\
             <body style=\"font-family: sans-serif; margin: 3em\"><h1>{title}</h1><p>{}</p>\
             <p>You can close this window and go back to the terminal.</p></body></html>\n",
            escape(text)
        );
        let mut response = (status, axum::response::Html(body)).into_response();
        // One request per connection: the server stops right after.
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        response
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The loopback server for one login (or several in a row).
#[derive(Debug)]
pub(crate) struct CallbackServer {
    redirect_uri: Url,
    arrivals: mpsc::Receiver<Arrival>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// The socket address a loopback redirect URI names.
fn loopback_addr(redirect: &Url) -> Result<SocketAddr, String> {
    if redirect.scheme() != "http" {
        return Err(format!(
            "uses {}://, and authctl can only receive http:// on a loopback address",
            redirect.scheme()
        ));
    }
    let ip: IpAddr = match redirect.host() {
        Some(Host::Ipv4(ip)) if ip.is_loopback() => ip.into(),
        Some(Host::Ipv6(ip)) if ip.is_loopback() => ip.into(),
        // RFC 8252 §8.3 prefers the IP literal; localhost is served on it.
        Some(Host::Domain(d)) if d.eq_ignore_ascii_case("localhost") => Ipv4Addr::LOCALHOST.into(),
        _ => {
            return Err("is not on a loopback address (127.0.0.1, [::1] or localhost)".to_owned());
        }
    };
    let port = redirect.port_or_known_default().unwrap_or(80);
    Ok(SocketAddr::new(ip, port))
}

impl CallbackServer {
    /// Listens on the host and port of `redirect`, for its path. Port 0
    /// picks a free port; [`redirect_uri`](Self::redirect_uri) then tells
    /// which.
    pub(crate) async fn bind(redirect: &Url, provider: &str) -> CliResult<Self> {
        let addr = loopback_addr(redirect).map_err(|why| {
            Failure::usage(
                format!("the redirect URI {redirect} of provider {provider} {why}"),
                format!(
                    "run: authctl login {provider} --manual (and paste the URL the browser ends \
                     on), or register a loopback redirect_uri such as http://127.0.0.1:8976/callback"
                ),
            )
        })?;
        let listener = TcpListener::bind(addr).await.map_err(|e| {
            Failure::usage(
                format!("cannot listen on {addr} for the redirect URI {redirect}: {e}"),
                format!(
                    "stop whatever uses port {} (another `authctl login`?), or run: authctl \
                     login {provider} --manual",
                    addr.port()
                ),
            )
        })?;
        let bound = listener.local_addr().map_err(|e| {
            Failure::unexpected(
                format!("cannot read the listening address: {e}"),
                "try again",
            )
        })?;
        let mut redirect_uri = redirect.clone();
        if redirect_uri.set_port(Some(bound.port())).is_err() {
            return Err(Failure::unexpected(
                format!("cannot set the port of {redirect}"),
                "try again",
            ));
        }
        let path = match redirect.path() {
            "" => "/".to_owned(),
            path => path.to_owned(),
        };
        let (arrivals_tx, arrivals) = mpsc::channel(4);
        let app = Router::new()
            .route(&path, get(callback))
            .fallback(not_found)
            .with_state(arrivals_tx);
        let (shutdown, stop) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop.await;
                })
                .await;
            if let Err(e) = served {
                tracing::warn!(error = %e, "the callback server stopped with an error");
            }
        });
        Ok(Self {
            redirect_uri,
            arrivals,
            shutdown: Some(shutdown),
            task: Some(task),
        })
    }

    /// The redirect URI served, with the actual port.
    pub(crate) fn redirect_uri(&self) -> &Url {
        &self.redirect_uri
    }

    /// The next request to the callback path.
    pub(crate) async fn next(&mut self) -> Option<Arrival> {
        self.arrivals.recv().await
    }

    /// Stops listening, after sending pages already answered.
    pub(crate) async fn shutdown(mut self) {
        self.arrivals.close();
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(SHUTDOWN_GRACE, task).await.is_err() {
                abort.abort();
            }
        }
    }
}

impl Drop for CallbackServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn callback(
    State(arrivals): State<mpsc::Sender<Arrival>>,
    RawQuery(query): RawQuery,
) -> Response {
    let (reply, answer) = oneshot::channel();
    let arrival = Arrival {
        query: query.unwrap_or_default(),
        reply,
    };
    if arrivals.send(arrival).await.is_err() {
        return Page::Failure("authctl is no longer waiting for this login.".to_owned()).render();
    }
    match answer.await {
        Ok(page) => page.render(),
        Err(_) => Page::Failure("authctl stopped before finishing the login.".to_owned()).render(),
    }
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not the authctl callback\n").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_http_is_served() {
        let ok = |u: &str| loopback_addr(&Url::parse(u).unwrap());
        assert_eq!(
            ok("http://127.0.0.1:8976/callback").unwrap(),
            "127.0.0.1:8976".parse().unwrap()
        );
        assert_eq!(ok("http://[::1]:9/cb").unwrap(), "[::1]:9".parse().unwrap());
        assert_eq!(
            ok("http://localhost:7/cb").unwrap(),
            "127.0.0.1:7".parse().unwrap()
        );
        assert!(ok("https://127.0.0.1:8976/callback").is_err());
        assert!(ok("http://app.example/callback").is_err());
        assert!(ok("http://10.0.0.1/callback").is_err());
    }

    #[test]
    fn pages_escape_text() {
        assert_eq!(escape("<b>&\""), "&lt;b&gt;&amp;&quot;");
    }
}
