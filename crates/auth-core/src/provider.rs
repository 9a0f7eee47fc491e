//! The [`TokenProvider`] trait: one authorization server, seen from the
//! token manager.

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;

use crate::authorization::{AuthorizeRequest, Callback, PendingAuthorization};
use crate::error::Error;
use crate::error::Result;
use crate::id::{AccountId, ProviderId, TokenKey};
use crate::introspection::Introspection;
use crate::resource::ResourceResponse;
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

    /// How the server treats refresh tokens: whether they rotate, how long
    /// a replay of a spent one is forgiven, and whether the first use of the
    /// new pair ends that forgiveness. The manager writes a write-ahead
    /// record before sending a rotating refresh token, and replays it after
    /// a lost answer only inside the window.
    ///
    /// The default is the safe reading: rotating, with no replay window.
    fn refresh_rules(&self) -> RefreshRules {
        RefreshRules::ROTATING
    }

    /// Whether [`mint`](Self::mint) can get a token without any stored grant.
    /// The default is `false`.
    fn can_mint(&self) -> bool {
        false
    }

    /// Gets a new token for `key` with no stored grant and no refresh token,
    /// for grants where the client acts as itself (client credentials,
    /// RFC 6749 §4.4). The manager calls it, under the key's lease, where it
    /// would otherwise fail because no token is stored or the stored one has
    /// no refresh token. The default answers
    /// [`Unsupported`](crate::Error::Unsupported).
    async fn mint(&self, key: &TokenKey) -> Result<TokenSet> {
        let _ = key;
        Err(Error::Unsupported {
            provider: self.id().clone(),
            operation: "mint",
        })
    }

    /// Whether a resource server's answer says that the access token sent
    /// with the request is bad (expired or revoked), so that a refresh and
    /// one retry may help.
    ///
    /// The default follows RFC 6750 §3.1: HTTP 401 with a `Bearer` challenge
    /// carrying `error="invalid_token"`. Providers add their documented
    /// answers (Fitbit's `expired_token` and `invalid_token` error bodies).
    fn rejects_token(&self, response: &ResourceResponse<'_>) -> bool {
        response.is_rfc6750_invalid_token()
    }
}

/// How a server treats refresh tokens, from [`TokenProvider::refresh_rules`].
///
/// A rotating server hands out a new refresh token with each refresh and
/// makes the old one invalid. Some forgive a replay of the old one for a
/// while (Fitbit: about two minutes, answering with the same new pair), which
/// is the only way to recover a pair whose answer was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshRules {
    rotates: bool,
    replay_window: Option<Duration>,
    first_use_ends_window: bool,
}

impl RefreshRules {
    /// Rotating, with no replay window: the safe default for a server whose
    /// rules are unknown.
    pub const ROTATING: Self = Self {
        rotates: true,
        replay_window: None,
        first_use_ends_window: false,
    };

    /// A server whose refresh tokens do not rotate (Google): the same refresh
    /// token works again, so a lost answer costs nothing and no write-ahead
    /// record is needed.
    pub const NOT_ROTATING: Self = Self {
        rotates: false,
        replay_window: None,
        first_use_ends_window: false,
    };

    /// A rotating server that answers a replay of the spent refresh token
    /// with the same new pair for `window`, or until the new pair is first
    /// used when `first_use_ends_window` (Fitbit).
    pub const fn rotating_with_window(window: Duration, first_use_ends_window: bool) -> Self {
        Self {
            rotates: true,
            replay_window: Some(window),
            first_use_ends_window,
        }
    }

    /// Whether each refresh hands out a new refresh token and spends the old.
    pub const fn rotates(&self) -> bool {
        self.rotates
    }

    /// How long a replay of a spent refresh token is answered with the same
    /// new pair; `None` when it is never forgiven (or the tokens do not
    /// rotate).
    pub const fn replay_window(&self) -> Option<Duration> {
        self.replay_window
    }

    /// Whether the first use of the new pair ends the replay window. While
    /// it does, the manager never serves a new access token before the pair
    /// is saved.
    pub const fn first_use_ends_window(&self) -> bool {
        self.first_use_ends_window
    }
}

impl Default for RefreshRules {
    fn default() -> Self {
        Self::ROTATING
    }
}
