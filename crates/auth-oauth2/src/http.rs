//! The HTTP client under the `oauth2` crate: one shared `reqwest` client with
//! redirects off, timeouts set and a cap on response bodies, which records
//! each response's status, headers and body so errors can be classified with
//! all of them (a 429's `Retry-After` included).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use auth_core::{Error, Result};
use futures::FutureExt as _;
use http::{HeaderMap, StatusCode};

use crate::config::HttpConfig;

/// A request a hook builds: the `http` crate's own type, named here rather
/// than re-exported from the `oauth2` crate (whose aliases these are), so
/// that `oauth2` stays a private dependency and a new major version of it
/// changes nothing in this crate's API.
pub type HttpRequest = http::Request<Vec<u8>>;

/// A response as the `http` crate types it; see [`HttpRequest`].
pub type HttpResponse = http::Response<Vec<u8>>;

/// A transport failure: no complete HTTP response was received.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// Sending or receiving failed, or timed out. The outcome at the server
    /// is unknown.
    #[error("{0}")]
    Transport(String),
    /// No connection could be made: nothing was sent.
    #[error("{0}")]
    Connect(String),
    /// The response body was larger than the cap.
    #[error("the response body exceeds the {limit}-byte limit")]
    BodyTooLarge {
        /// The cap, in bytes.
        limit: usize,
    },
    /// The request could not be built.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

/// What came back from one request.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ResponseMeta {
    /// The HTTP status.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The body (at most the configured cap).
    pub body: Arc<Vec<u8>>,
}

/// One shared HTTP client. Cloning shares the connection pool.
#[derive(Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    max_body_bytes: usize,
    targets: Arc<Targets>,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("max_body_bytes", &self.max_body_bytes)
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    /// Builds a client: rustls, no redirects (the `oauth2` crate's SSRF
    /// advice), the configured timeouts.
    ///
    /// # Errors
    ///
    /// [`Error::Configuration`] when the TLS backend cannot start.
    pub fn new(config: &HttpConfig) -> Result<Self> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.connect_timeout)
            .timeout(config.timeout)
            .user_agent(concat!("token-keeper/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                Error::configuration("could not build the HTTP client").with_source(e.without_url())
            })?;
        Ok(Self {
            client,
            max_body_bytes: config.max_body_bytes,
            targets: Arc::default(),
        })
    }

    /// The response body cap.
    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    /// Sends one request and reads the whole response, up to the cap.
    ///
    /// # Errors
    ///
    /// [`HttpError`] when no complete response arrived or it was too big.
    pub fn execute(
        &self,
        request: HttpRequest,
    ) -> impl Future<Output = Result<ResponseMeta, HttpError>> + Send + '_ {
        // The request is converted before the future is made, so that the
        // future keeps only what `reqwest` takes, not the request's parts
        // too: it stays small enough (with the exchange around it) for the
        // allocator's per-thread cache when boxed (BENCHMARKS.md §9).
        // Nothing is sent, and no timer armed, before the first poll.
        let outgoing = self.outgoing(request);
        async move {
            // Never let reqwest's error text carry the URL: a tokeninfo URL
            // holds the access token in its query.
            let mut response = self
                .client
                .execute(outgoing?)
                .await
                .map_err(transport_error)?;
            let status = response.status();
            // Moved out, not copied: the body is read without them.
            let headers = std::mem::take(response.headers_mut());
            let mut body = match response.content_length() {
                Some(len) if len > self.max_body_bytes as u64 => {
                    return Err(HttpError::BodyTooLarge {
                        limit: self.max_body_bytes,
                    });
                }
                // The length is within the cap here.
                Some(len) => Vec::with_capacity(usize::try_from(len).unwrap_or(0)),
                None => Vec::new(),
            };
            while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
                if body.len() + chunk.len() > self.max_body_bytes {
                    return Err(HttpError::BodyTooLarge {
                        limit: self.max_body_bytes,
                    });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(ResponseMeta {
                status,
                headers,
                body: Arc::new(body),
            })
        }
    }

    /// `request` as `reqwest` wants it.
    fn outgoing(&self, request: HttpRequest) -> Result<reqwest::Request, HttpError> {
        let (parts, body) = request.into_parts();
        let mut outgoing = reqwest::Request::new(parts.method, self.targets.url(&parts.uri)?);
        *outgoing.headers_mut() = parts.headers;
        *outgoing.body_mut() = Some(body.into());
        Ok(outgoing)
    }
}

/// Request targets already converted from the `http::Uri` the `oauth2`
/// crate builds to the `Url` that `reqwest` wants. A provider sends nearly
/// all its requests to the same few endpoints, and parsing the same URL
/// again took about a tenth of the client's own work per refresh. Targets
/// with a query are never kept (a query may carry a token, as Google's
/// tokeninfo URL does), nor with user info (it may carry a password):
/// nothing secret is kept here. At most [`MAX_TARGETS`], the oldest dropped
/// first.
#[derive(Default)]
struct Targets(Mutex<Vec<(http::Uri, reqwest::Url)>>);

/// How many request targets [`Targets`] keeps.
const MAX_TARGETS: usize = 8;

impl Targets {
    fn known(&self) -> std::sync::MutexGuard<'_, Vec<(http::Uri, reqwest::Url)>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The `Url` of `uri`, parsed once per target.
    fn url(&self, uri: &http::Uri) -> Result<reqwest::Url, HttpError> {
        let keep = uri.query().is_none()
            && uri
                .authority()
                .is_some_and(|authority| !authority.as_str().contains('@'));
        if !keep {
            return parse_uri(uri);
        }
        if let Some((_, url)) = self
            .known()
            .iter()
            .find(|(known, _)| same_target(known, uri))
        {
            return Ok(url.clone());
        }
        let url = parse_uri(uri)?;
        let mut known = self.known();
        if known.len() >= MAX_TARGETS {
            known.remove(0);
        }
        known.push((uri.clone(), url.clone()));
        Ok(url)
    }
}

/// Whether two URIs are the same text: `Uri`'s own `==` ignores the case of
/// the scheme and the authority.
fn same_target(a: &http::Uri, b: &http::Uri) -> bool {
    a.scheme_str() == b.scheme_str()
        && a.authority().map(http::uri::Authority::as_str)
            == b.authority().map(http::uri::Authority::as_str)
        && a.path() == b.path()
        && a.query() == b.query()
}

fn parse_uri(uri: &http::Uri) -> Result<reqwest::Url, HttpError> {
    // The parse error names what is wrong, never the URL itself.
    reqwest::Url::parse(&uri.to_string())
        .map_err(|e| HttpError::InvalidRequest(format!("the request URL is not valid ({e})")))
}

/// A failed request as an [`HttpError`], its cause in words and without
/// its URL. A timeout counts as unknown even while connecting.
fn transport_error(err: reqwest::Error) -> HttpError {
    let err = err.without_url();
    let cause = network_cause(&err);
    if err.is_timeout() {
        HttpError::Transport(format!("timed out: {cause}"))
    } else if err.is_connect() {
        HttpError::Connect(format!("could not connect: {cause}"))
    } else if err.is_body() || err.is_decode() {
        HttpError::Transport(format!(
            "the connection broke while reading the response: {cause}"
        ))
    } else if err.is_request() {
        HttpError::Transport(format!("the request failed: {cause}"))
    } else {
        HttpError::Transport(format!("HTTP failure: {cause}"))
    }
}

/// The root cause of a failed HTTP request, in words a person reads once:
/// nothing listens at the address, the host name does not resolve, the
/// connection broke or timed out, or the secure connection could not be set
/// up. Otherwise the innermost error's own message, never a generic "error
/// sending request". It names no URL of its own; pass a `reqwest::Error`
/// through [`reqwest::Error::without_url`] to keep its URL out too (a
/// URL's query may hold a token).
///
/// ```
/// let err = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
/// assert_eq!(
///     auth_oauth2::network_cause(&err),
///     "connection refused: nothing is listening at that address and port"
/// );
/// ```
pub fn network_cause(err: &(dyn std::error::Error + 'static)) -> String {
    use std::io::ErrorKind;
    let mut chain = vec![err];
    while let Some(source) = chain.last().and_then(|e| e.source()) {
        chain.push(source);
    }
    for e in &chain {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            match io.kind() {
                ErrorKind::ConnectionRefused => {
                    return "connection refused: nothing is listening at that address and port"
                        .to_owned();
                }
                ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted => {
                    return "the server closed the connection before it answered".to_owned();
                }
                ErrorKind::TimedOut => return "the connection timed out".to_owned(),
                _ => {}
            }
        }
    }
    let text = chain
        .iter()
        .map(|e| e.to_string().to_lowercase())
        .collect::<Vec<_>>()
        .join(": ");
    if text.contains("dns error")
        || text.contains("failed to lookup address")
        || text.contains("name or service not known")
    {
        return "the host name could not be resolved (DNS lookup failed)".to_owned();
    }
    if text.contains("timed out") || text.contains("timeout") {
        return "no answer within the time limit".to_owned();
    }
    if text.contains("certificate") || text.contains("tls") {
        return format!(
            "the secure connection could not be set up ({})",
            chain.last().map_or_else(String::new, ToString::to_string)
        );
    }
    chain.last().map_or_else(String::new, ToString::to_string)
}

/// One operation's view of the client: it keeps the last response so the
/// caller can classify an error with its status, headers and body.
#[derive(Debug)]
pub(crate) struct Exchange<'h> {
    http: &'h HttpClient,
    normalize: Option<&'h dyn crate::hooks::Hooks>,
    last: Mutex<Option<ResponseMeta>>,
}

impl<'h> Exchange<'h> {
    pub(crate) fn new(http: &'h HttpClient) -> Self {
        Self {
            http,
            normalize: None,
            last: Mutex::new(None),
        }
    }

    /// An exchange with a token endpoint: each answer passes through
    /// [`Hooks::normalize_token_response`](crate::Hooks::normalize_token_response)
    /// before anything reads it.
    pub(crate) fn for_token(http: &'h HttpClient, hooks: &'h dyn crate::hooks::Hooks) -> Self {
        Self {
            http,
            normalize: Some(hooks),
            last: Mutex::new(None),
        }
    }

    /// Sends `request`, keeps the response, and hands the `oauth2` crate
    /// its own copy, which it consumes. (Not an `async fn`, which would keep
    /// the request beside the future it goes into: see
    /// [`HttpClient::execute`].)
    pub(crate) fn send(
        &self,
        request: oauth2::HttpRequest,
    ) -> impl Future<Output = Result<oauth2::HttpResponse, HttpError>> + Send + '_ {
        self.http
            .execute(request)
            .map(|answer| answer.and_then(|meta| self.keep(meta)))
    }

    /// Keeps `meta` as the last response and makes the `oauth2` crate's copy.
    fn keep(&self, mut meta: ResponseMeta) -> Result<oauth2::HttpResponse, HttpError> {
        if let Some(hooks) = self.normalize {
            meta = hooks.normalize_token_response(meta);
        }
        let mut response = http::Response::new(meta.body.as_ref().clone());
        *response.status_mut() = meta.status;
        // The `oauth2` crate reads one header of a response, Content-Type
        // (`check_response_body`); the hooks and the error classification
        // read the rest from the meta kept below. Copying only that one
        // spares a copy of the whole map (and its drop) on every request.
        if let Some(content_type) = meta.headers.get(http::header::CONTENT_TYPE) {
            response
                .headers_mut()
                .insert(http::header::CONTENT_TYPE, content_type.clone());
        }
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(meta);
        Ok(response)
    }

    /// The last response, taken out: each operation classifies once.
    pub(crate) fn take_last(&self) -> Option<ResponseMeta> {
        self.last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

type SendFuture<'c> =
    Pin<Box<dyn Future<Output = Result<oauth2::HttpResponse, HttpError>> + Send + 'c>>;

impl<'c> oauth2::AsyncHttpClient<'c> for Exchange<'_> {
    type Error = HttpError;
    type Future = SendFuture<'c>;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(self.send(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Making the future of a request sends nothing and arms no timer (as
    /// an `async fn`'s would not): it can be made and dropped outside a
    /// runtime, where arming `reqwest`'s timeout would panic.
    #[test]
    fn a_request_starts_when_first_polled() {
        let client = HttpClient::new(&HttpConfig::default()).expect("a client");
        let request = http::Request::post("http://127.0.0.1:9/token")
            .body(b"grant_type=refresh_token".to_vec())
            .expect("a request");
        let exchange = Exchange::new(&client);
        drop(client.execute(request.clone()));
        drop(exchange.send(request));
    }

    async fn send(url: &str) -> reqwest::Error {
        reqwest::Client::new()
            .get(url)
            .send()
            .await
            .expect_err("the request must fail")
    }

    #[tokio::test]
    async fn a_refused_connection_is_named_in_words() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let err = send(&format!("http://127.0.0.1:{port}/x")).await;
        let cause = network_cause(&err);
        assert!(cause.starts_with("connection refused"), "{cause}");
        assert!(!cause.contains("error sending request"), "{cause}");
    }

    #[tokio::test]
    async fn a_host_that_does_not_resolve_is_named_in_words() {
        // `.invalid` never resolves (RFC 6761).
        let err = send("http://token-keeper-test.invalid/x").await;
        let cause = network_cause(&err);
        assert_eq!(
            cause, "the host name could not be resolved (DNS lookup failed)",
            "{err:?}"
        );
    }

    fn uri(text: &str) -> http::Uri {
        text.parse().expect("a valid URI")
    }

    #[test]
    fn targets_are_parsed_once_and_never_kept_with_a_query_or_user_info() {
        let targets = Targets::default();
        let token = uri("https://api.example/oauth2/token");
        assert_eq!(
            targets.url(&token).unwrap().as_str(),
            "https://api.example/oauth2/token"
        );
        assert_eq!(
            targets.url(&token).unwrap().as_str(),
            "https://api.example/oauth2/token"
        );
        assert_eq!(targets.known().len(), 1);
        // Another case is another text, and gets its own entry.
        assert_eq!(
            targets
                .url(&uri("https://API.example/oauth2/token"))
                .unwrap()
                .as_str(),
            "https://api.example/oauth2/token"
        );
        assert_eq!(targets.known().len(), 2);
        let secret = "https://api.example/tokeninfo?access_token=SECRET";
        assert_eq!(targets.url(&uri(secret)).unwrap().as_str(), secret);
        let user = "https://client:PASSWORD@api.example/oauth2/token";
        assert_eq!(targets.url(&uri(user)).unwrap().as_str(), user);
        assert_eq!(targets.known().len(), 2, "no query or user info is kept");
        for n in 0..(2 * MAX_TARGETS) {
            targets
                .url(&uri(&format!("https://api.example/endpoint/{n}")))
                .unwrap();
        }
        let known = targets.known();
        assert_eq!(known.len(), MAX_TARGETS);
        assert_eq!(
            known.last().unwrap().1.as_str(),
            format!("https://api.example/endpoint/{}", 2 * MAX_TARGETS - 1)
        );
    }
}
