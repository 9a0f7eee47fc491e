//! The HTTP client under the `oauth2` crate: one shared `reqwest` client with
//! redirects off, timeouts set and a cap on response bodies, which records
//! each response's status, headers and body so errors can be classified with
//! all of them (a 429's `Retry-After` included).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use auth_core::{Error, Result};
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
    /// Connecting, sending or receiving failed, or timed out. The outcome at
    /// the server is unknown.
    #[error("{0}")]
    Transport(String),
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
    pub async fn execute(&self, request: HttpRequest) -> Result<ResponseMeta, HttpError> {
        let (parts, body) = request.into_parts();
        let url = parts.uri.to_string();
        let mut builder = self.client.request(parts.method, url).body(body);
        for (name, value) in &parts.headers {
            builder = builder.header(name, value);
        }
        // Never let reqwest's error text carry the URL: a tokeninfo URL holds
        // the access token in its query.
        let mut response = builder
            .send()
            .await
            .map_err(|e| HttpError::Transport(describe(&e)))?;
        let status = response.status();
        let headers = response.headers().clone();
        if let Some(len) = response.content_length()
            && len > self.max_body_bytes as u64
        {
            return Err(HttpError::BodyTooLarge {
                limit: self.max_body_bytes,
            });
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| HttpError::Transport(describe(&e)))?
        {
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

fn describe(err: &reqwest::Error) -> String {
    use std::error::Error as _;
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "could not connect"
    } else if err.is_body() || err.is_decode() {
        "the connection broke while reading the response"
    } else if err.is_request() {
        "the request failed"
    } else {
        "HTTP failure"
    };
    let mut text = kind.to_owned();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// One operation's view of the client: it records the last response so the
/// caller can classify an error with its status, headers and body.
#[derive(Debug)]
pub(crate) struct Exchange {
    http: HttpClient,
    last: Mutex<Option<ResponseMeta>>,
}

impl Exchange {
    pub(crate) fn new(http: &HttpClient) -> Self {
        Self {
            http: http.clone(),
            last: Mutex::new(None),
        }
    }

    pub(crate) async fn send(
        &self,
        request: oauth2::HttpRequest,
    ) -> Result<oauth2::HttpResponse, HttpError> {
        let meta = self.http.execute(request).await?;
        let mut builder = http::Response::builder().status(meta.status);
        for (name, value) in &meta.headers {
            builder = builder.header(name, value);
        }
        let response = builder
            .body(meta.body.as_ref().clone())
            .map_err(|e| HttpError::InvalidRequest(e.to_string()))?;
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(meta);
        Ok(response)
    }

    pub(crate) fn last(&self) -> Option<ResponseMeta> {
        self.last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

type SendFuture<'c> =
    Pin<Box<dyn Future<Output = Result<oauth2::HttpResponse, HttpError>> + Send + 'c>>;

impl<'c> oauth2::AsyncHttpClient<'c> for Exchange {
    type Error = HttpError;
    type Future = SendFuture<'c>;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(self.send(request))
    }
}
