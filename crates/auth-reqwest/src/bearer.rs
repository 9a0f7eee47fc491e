//! [`BearerAuth`]: the middleware. It adds the manager's access token to
//! requests for allowed origins and, when the server says that token is bad,
//! replaces it once through `force_refresh` and retries once. It must never
//! send a token to an origin that was not allowed, nor over plain http off
//! loopback, nor refresh unless the provider says the token was rejected.

use std::fmt;

use async_trait::async_trait;
use auth_core::{AccessToken, Error, ResourceResponse, Result, TokenKey, TokenManager};
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{Extensions, HeaderValue, StatusCode};
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next};
use tracing::debug;

use crate::body::peek;
use crate::origin::AllowedOrigins;

/// How much of a 401's body is read to decide whether the token was
/// rejected, by default. Fitbit's error bodies are a few hundred bytes.
pub const DEFAULT_BODY_PREFIX: usize = 8 * 1024;

/// Where the middleware takes the account from.
#[derive(Debug, Clone)]
enum Account {
    /// Always this one.
    Fixed(TokenKey),
    /// The [`TokenKey`] in each request's extensions.
    PerRequest,
}

/// A [`reqwest_middleware::Middleware`] that authenticates requests with
/// tokens from a [`TokenManager`].
///
/// - It adds `Authorization: Bearer <token>` only to requests whose origin
///   (scheme, host and port) was allowed with
///   [`allow_origin`](Self::allow_origin); other requests pass through
///   untouched. Plain-http origins are refused unless they are loopback.
///   A request that already has an `Authorization` header is left alone.
/// - On a 401 that the provider's
///   [`rejects_token`](auth_core::TokenProvider::rejects_token) hook calls a
///   bad token (RFC 6750 `error="invalid_token"` by default, Fitbit's
///   `expired_token`/`invalid_token` bodies for Fitbit), it calls
///   [`TokenManager::force_refresh`] with the rejected token and sends the
///   request once more with the new one, if the request can be cloned
///   (a streaming body cannot). A second 401 goes back to the caller as it
///   is. To decide, it reads at most about
///   [`body_prefix`](Self::body_prefix) bytes of the 401's body; the caller
///   still gets the whole body.
/// - When no token can be had, the request is not sent and the call fails
///   with [`reqwest_middleware::Error::Middleware`] wrapping the
///   [`auth_core::Error`], whose class
///   ([`is_reauthorization_required`](auth_core::Error::is_reauthorization_required),
///   [`ProviderRetired`](auth_core::Error::ProviderRetired),
///   [`is_transient`](auth_core::Error::is_transient)) tells the app what
///   to do; get it back with [`auth_error`](crate::auth_error).
///
/// Redirects happen inside reqwest, below any middleware. reqwest removes
/// `Authorization` when a redirect changes the scheme, host or port, so a
/// token never follows a redirect to another origin (this crate's tests
/// hold reqwest to that); [`client()`](crate::client()) also stops at any
/// cross-origin redirect and hands it back to the caller.
#[derive(Clone)]
pub struct BearerAuth {
    manager: TokenManager,
    account: Account,
    origins: AllowedOrigins,
    body_prefix: usize,
}

impl fmt::Debug for BearerAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerAuth")
            .field("account", &self.account)
            .field("origins", &self.origins.serialized())
            .field("body_prefix", &self.body_prefix)
            .field("manager", &self.manager)
            .finish()
    }
}

impl BearerAuth {
    /// Authenticates every request as the one account `key`.
    pub fn new(manager: TokenManager, key: TokenKey) -> Self {
        Self::with_account(manager, Account::Fixed(key))
    }

    /// Authenticates each request as the account whose [`TokenKey`] is in
    /// the request's extensions, so one client serves every user of an
    /// app:
    ///
    /// ```no_run
    /// # async fn f(client: reqwest_middleware::ClientWithMiddleware, key: auth_core::TokenKey) -> Result<(), reqwest_middleware::Error> {
    /// let profile = client
    ///     .get("https://api.fitbit.com/1/user/-/profile.json")
    ///     .with_extension(key)
    ///     .send()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    ///
    /// A request to an allowed origin without a key fails with
    /// [`Error::InvalidInput`] and is not sent.
    pub fn per_request(manager: TokenManager) -> Self {
        Self::with_account(manager, Account::PerRequest)
    }

    fn with_account(manager: TokenManager, account: Account) -> Self {
        Self {
            manager,
            account,
            origins: AllowedOrigins::default(),
            body_prefix: DEFAULT_BODY_PREFIX,
        }
    }

    /// Sends the token to the origin (scheme, host and port) of `url`. The
    /// path is ignored.
    ///
    /// # Errors
    ///
    /// [`Error::Configuration`] when `url` does not parse, has no host, or
    /// is plain http to anything but loopback (127.0.0.0/8, `::1`,
    /// `localhost`).
    pub fn allow_origin(mut self, url: &str) -> Result<Self> {
        self.origins.allow(url)?;
        Ok(self)
    }

    /// How many bytes of a 401's body to read, at most about, to decide
    /// whether the token was rejected ([`DEFAULT_BODY_PREFIX`] by default).
    #[must_use]
    pub fn body_prefix(mut self, bytes: usize) -> Self {
        self.body_prefix = bytes;
        self
    }

    /// The account for `extensions`' request.
    fn key<'a>(&'a self, extensions: &'a Extensions) -> Result<&'a TokenKey> {
        match &self.account {
            Account::Fixed(key) => Ok(key),
            Account::PerRequest => extensions.get::<TokenKey>().ok_or_else(|| {
                Error::invalid_input(
                    "this client authenticates per request, and the request carries no TokenKey \
                     in its extensions; add one with RequestBuilder::with_extension",
                )
            }),
        }
    }

    /// Whether `response` says `key`'s token was rejected. Returns the
    /// response with its body whole.
    async fn rejected(
        &self,
        key: &TokenKey,
        response: Response,
    ) -> reqwest::Result<(bool, Response)> {
        let (prefix, response) = peek(response, self.body_prefix).await?;
        let prefix = &prefix[..prefix.len().min(self.body_prefix)];
        let challenge = response
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok());
        let answer = ResourceResponse::new(response.status().as_u16())
            .with_www_authenticate(challenge)
            .with_body(prefix);
        let rejected = match self.manager.provider(&key.provider) {
            Some(provider) => provider.rejects_token(&answer),
            None => answer.is_rfc6750_invalid_token(),
        };
        Ok((rejected, response))
    }
}

/// Sets the `Authorization` header, marked sensitive so that `http` and
/// reqwest never print it.
fn authorize(request: &mut Request, token: &AccessToken) -> Result<()> {
    let mut value = HeaderValue::try_from(format!("Bearer {}", token.secret())).map_err(|_| {
        Error::protocol(
            None,
            "the access token contains characters that cannot go in an HTTP header",
            "",
        )
    })?;
    value.set_sensitive(true);
    request.headers_mut().insert(AUTHORIZATION, value);
    Ok(())
}

fn middleware_error(err: Error) -> reqwest_middleware::Error {
    reqwest_middleware::Error::middleware(err)
}

#[async_trait]
impl Middleware for BearerAuth {
    async fn handle(
        &self,
        mut request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        if !self.origins.permits(request.url()) || request.headers().contains_key(AUTHORIZATION) {
            return next.run(request, extensions).await;
        }
        let key = self.key(extensions).map_err(middleware_error)?.clone();
        let token = self
            .manager
            .access_token(&key)
            .await
            .map_err(|e| middleware_error(e.for_key(&key)))?;
        authorize(&mut request, &token).map_err(middleware_error)?;
        // The copy for a retry is boxed, as is the rare path below: each
        // would otherwise make every request's future too big for the
        // allocator's per-thread cache (BENCHMARKS.md §9).
        let retry = request.try_clone().map(Box::new);
        let response = next.clone().run(request, extensions).await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        Box::pin(self.after_unauthorized(key, token, retry, response, extensions, next)).await
    }
}

impl BearerAuth {
    /// A 401 came back for `token`: if the token was rejected, replaces it
    /// and sends `retry` once with the new one (when the body allowed a
    /// copy); otherwise hands the response back.
    async fn after_unauthorized(
        &self,
        key: TokenKey,
        token: AccessToken,
        retry: Option<Box<Request>>,
        response: Response,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let (rejected, response) = self.rejected(&key, response).await?;
        if !rejected {
            return Ok(response);
        }
        let Some(mut retry) = retry else {
            // Replace the token for the next request, but send nothing twice.
            debug!(%key, "the token was rejected, but the request body cannot be sent twice; not retrying");
            if let Err(err) = self.manager.force_refresh(&key, &token).await {
                debug!(%key, error = %err, "replacing the rejected token failed");
            }
            return Ok(response);
        };
        let fresh = self
            .manager
            .force_refresh(&key, &token)
            .await
            .map_err(|e| middleware_error(e.for_key(&key)))?;
        debug!(%key, "the token was rejected; retrying once with a new one");
        authorize(&mut retry, &fresh).map_err(middleware_error)?;
        next.run(*retry, extensions).await
    }
}
