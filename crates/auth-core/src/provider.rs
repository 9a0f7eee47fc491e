//! The [`TokenProvider`] trait: one authorization server, seen from the
//! token manager.

use std::fmt::Debug;

use async_trait::async_trait;

use crate::authorization::{AuthorizeRequest, Callback, PendingAuthorization};
use crate::error::Result;
use crate::id::{AccountId, ProviderId};
use crate::introspection::Introspection;
use crate::token::TokenSet;

/// One OAuth 2.0 authorization server with one client registration.
///
/// Implementations live in their own crates (`auth-oauth2`, `auth-fitbit`)
/// and are used as `Arc<dyn TokenProvider>`.
///
/// # Contract
///
/// - [`id`](Self::id) is constant for the provider's lifetime.
/// - [`authorize`](Self::authorize) does no I/O. It **must** generate a fresh
///   random `state` (unless the request gives one) and a PKCE S256 verifier.
/// - [`exchange_code`](Self::exchange_code) **must** check the callback
///   against the pending authorization (state, and `iss` where the server
///   supports RFC 9207) before sending anything to the server.
/// - [`refresh`](Self::refresh) sends exactly one refresh request per call
///   (the [`TokenManager`](crate::TokenManager) owns retries) and returns the
///   server's answer as received: a response without a refresh token is
///   returned without one, and the manager keeps the old one.
/// - Errors are classified per [`Error`](crate::Error): `invalid_grant` is
///   [`ReauthorizationRequired`](crate::Error::ReauthorizationRequired), an
///   outcome the client cannot know (a dropped connection, a timeout, a 5xx,
///   a 429) is [`Transient`](crate::Error::Transient), and so on.
/// - No error message, log line or `Debug` output contains a token, code,
///   verifier or client secret.
/// - [`revoke`](Self::revoke) and [`introspect`](Self::introspect) return
///   [`Unsupported`](crate::Error::Unsupported) when the server has no such
///   endpoint.
#[async_trait]
pub trait TokenProvider: Debug + Send + Sync {
    /// The provider's id, under which tokens are stored.
    fn id(&self) -> &ProviderId;

    /// Builds the authorize URL and what the callback must match. No I/O.
    fn authorize(&self, request: AuthorizeRequest) -> Result<PendingAuthorization>;

    /// Exchanges the callback's code for tokens.
    async fn exchange_code(
        &self,
        pending: &PendingAuthorization,
        callback: &Callback,
    ) -> Result<TokenSet>;

    /// Uses `current`'s refresh token once.
    async fn refresh(&self, current: &TokenSet) -> Result<TokenSet>;

    /// Revokes the grant at the server.
    async fn revoke(&self, token: &TokenSet) -> Result<()>;

    /// Asks the server about the access token.
    async fn introspect(&self, token: &TokenSet) -> Result<Introspection>;

    /// The account a new token belongs to, when the app did not choose one
    /// (for example Fitbit's `user_id`). The default knows none.
    fn account_for(&self, token: &TokenSet) -> Option<AccountId> {
        let _ = token;
        None
    }
}
