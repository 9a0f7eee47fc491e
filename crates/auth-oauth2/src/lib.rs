//! A standards OAuth 2.0 provider for [`auth_core`], on the [`oauth2`] crate.
//!
//! [`OAuth2Provider`] implements [`auth_core::TokenProvider`] for any server
//! that follows the standards:
//!
//! - authorization code flow with PKCE S256 on every request (RFC 7636),
//!   a random `state`, exact redirect URIs;
//! - RFC 9207: where the server advertises it, the callback's `iss` must be
//!   the issuer;
//! - client authentication `client_secret_basic` (id and secret form-encoded
//!   before Basic encoding, RFC 6749 §2.3.1), `client_secret_post` or `none`;
//! - refresh with rotation, RFC 7662 introspection and RFC 7009 revocation;
//! - configuration by endpoints or by RFC 8414 / OpenID discovery;
//! - `https://` only, except loopback hosts.
//!
//! Its HTTP client ([`HttpClient`]) is one shared `reqwest` client with
//! redirects off, connect and total timeouts, and a 1 MiB cap on response
//! bodies. It keeps each response's status and headers, so a 429's
//! `Retry-After` reaches [`auth_core::Error::Transient`].
//!
//! Errors are classified: `invalid_grant` → `ReauthorizationRequired`,
//! `invalid_client` → `Configuration`, 5xx and 429 → `Transient`, 410 →
//! `ProviderRetired` (naming the successor [`Hooks::retirement`] gives: a
//! retired catalogue entry's), an unreadable body → `Protocol` with the
//! status and a short redacted excerpt.
//!
//! # Providers from the catalogue
//!
//! [`catalogue::provider`] builds a provider from an entry of the provider
//! catalogue (`auth-catalogue`) in one line, with the entry's endpoints,
//! client authentication, PKCE, scopes, refresh rules and response quirks;
//! [`catalogue::builder`] returns the builder to adjust. With the
//! `conformance` feature, `conformance` holds the provider conformance
//! suite that proves a provider against the emulator's profile of an entry.
//!
//! # Custom providers from hooks
//!
//! A provider with quirks overrides only those, through [`Hooks`]. Here, a
//! server whose errors look like `{"errors":[{"type":…,"text":…}]}`, which
//! returns a `uid` field that names the account, and which wants
//! `audience=api` on its authorize URL:
//!
//! ```
//! use std::sync::Arc;
//! use auth_core::{AccountId, AuthorizeRequest, ProviderId, TokenSet};
//! use auth_oauth2::{Endpoints, Hooks, OAuth2Provider, ResponseMeta, ServerError};
//!
//! #[derive(Debug)]
//! struct AcmeHooks;
//!
//! impl Hooks for AcmeHooks {
//!     fn parse_error(&self, response: &ResponseMeta) -> Option<ServerError> {
//!         let body: serde_json::Value = serde_json::from_slice(&response.body).ok()?;
//!         let first = body.get("errors")?.get(0)?;
//!         Some(ServerError {
//!             code: first.get("type")?.as_str()?.to_owned(),
//!             description: first.get("text").and_then(|t| t.as_str()).map(str::to_owned),
//!         })
//!     }
//!
//!     fn account_for(&self, token: &TokenSet) -> Option<AccountId> {
//!         AccountId::new(token.extra_str("uid")?).ok()
//!     }
//!
//!     fn authorize_params(&self, _: &AuthorizeRequest) -> Vec<(String, String)> {
//!         vec![("audience".into(), "api".into())]
//!     }
//! }
//!
//! # fn main() -> auth_core::Result<()> {
//! let endpoints = Endpoints::new(
//!     "https://id.acme.example/authorize".parse().unwrap(),
//!     "https://id.acme.example/token".parse().unwrap(),
//! )
//! .with_revocation("https://id.acme.example/revoke".parse().unwrap());
//!
//! let acme = OAuth2Provider::builder(ProviderId::new("acme")?, "my-client-id")
//!     .client_secret("my-client-secret")
//!     .endpoints(endpoints)
//!     .redirect_uri("http://127.0.0.1:8976/callback")
//!     .default_scopes(["read"])
//!     .hooks(Arc::new(AcmeHooks))
//!     .build()?;
//!
//! let pending = auth_core::TokenProvider::authorize(&acme, AuthorizeRequest::new())?;
//! assert!(pending.authorize_url.as_str().contains("audience=api"));
//! assert!(pending.authorize_url.as_str().contains("code_challenge_method=S256"));
//! # Ok(())
//! # }
//! ```
//!
//! Register it with a [`auth_core::TokenManager`] like any other provider.

pub mod catalogue;
mod classify;
mod config;
#[cfg(feature = "conformance")]
pub mod conformance;
mod device;
mod discovery;
mod hooks;
mod http;
mod provider;

pub use config::{
    ClientAuth, ClientCredentials, Endpoints, HttpConfig, is_loopback, require_secure,
};
pub use device::{
    DEFAULT_INTERVAL, DEVICE_CODE_GRANT_TYPE, DeviceAuthorization, DevicePoll, MAX_BACKOFF,
    MIN_INTERVAL, SLOW_DOWN_STEP,
};
pub use hooks::{
    ErrorMeaning, Hooks, IntrospectionContext, Retirement, RevocationToken, ServerError,
    StandardHooks, epoch_seconds_or_millis, parse_retry_after, parse_rfc6749_error, parse_rfc7662,
};
pub use http::{HttpClient, HttpError, HttpRequest, HttpResponse, ResponseMeta, network_cause};
pub use provider::{ExtraFields, OAuth2Provider, OAuth2ProviderBuilder, api_url_allowed};
