//! Connect your users' accounts at OAuth 2.0 providers from an axum app.
//!
//! [`Connect`] turns a [`TokenManager`](auth_core::TokenManager) into an
//! [`axum::Router`] that an app mounts wherever it likes:
//!
//! | route | what it does |
//! |---|---|
//! | `GET /` | a small server-rendered page: one row per provider with its state and buttons to Connect, Reconnect or Disconnect (no JavaScript) |
//! | `GET /connect/{provider}` | begins an authorization for the current user and redirects to the provider; `?scope=` asks for more scopes, `?return_to=` picks an allowed page to come back to |
//! | `GET /callback` | completes it, then redirects back |
//! | `POST /disconnect/{provider}` | revokes at the provider, then deletes the token here (CSRF protected) |
//! | `GET /connections` | the same rows as JSON, never a token |
//! | `GET /move/{provider}` | with the `fitbit-migration` feature: moves a legacy Fitbit account to Google Health, with the identity check |
//!
//! ```no_run
//! # async fn run(manager: auth_core::TokenManager) -> Result<(), Box<dyn std::error::Error>> {
//! use auth_axum::Connect;
//! use auth_core::AccountId;
//!
//! // Who is signed in comes from the app's own sign-in, never from here.
//! let current_user = |parts: &axum::http::request::Parts| {
//!     parts.extensions.get::<AccountId>().cloned()
//! };
//! let connect = Connect::builder(manager, "https://app.example/accounts/callback", current_user)?
//!     .build();
//! let app = axum::Router::new().nest("/accounts", connect.router());
//! # let _ = app; Ok(()) }
//! ```
//!
//! # Where the pending authorization lives
//!
//! Between the redirect to the provider and the callback, the pending
//! authorization (its `state` and PKCE verifier) is kept in a server-side
//! session ([`tower_sessions`]); the browser holds only a random session id
//! in an `HttpOnly` cookie, so it can neither read nor change it. The
//! default store is in memory, which serves one process; an app on several
//! hosts passes a shared store in one line,
//! [`Connect::router_with_store`]. A pending authorization:
//!
//! - is bound to the browser (the session) that began it, and to the user
//!   who was signed in then;
//! - is used at most once: the callback takes it out of the session before
//!   anything is sent to the provider;
//! - expires ([`ConnectBuilder::pending_ttl`], 10 minutes by default).
//!
//! The callback checks the `state` in constant time, the issuer (RFC 9207)
//! where the provider sends one and the app named it
//! ([`ConnectBuilder::issuer`]), and that the redirect URI is exactly the
//! configured one. A callback from another browser, a replay, a late one and
//! a denied consent each get a page that says what happened, and the stored
//! tokens are untouched. The session id is replaced after every callback,
//! against session fixation.
//!
//! # When the browser goes away
//!
//! A browser may close the connection while the callback waits for the
//! provider; axum then drops the handler. Once the code exchange has
//! started, it and the save run in a task of their own, so they finish
//! anyway and the next page load shows the account connected.
//!
//! # Secrets
//!
//! No page, JSON body, header or log line of this crate contains a token,
//! an authorization code, a `state` or a PKCE verifier.

mod begin;
mod callback;
mod connect;
mod csrf;
mod disconnect;
#[cfg(feature = "fitbit-migration")]
mod migration;
mod page;
mod parked;
mod problem;
mod status;
mod user;

pub use connect::{Connect, ConnectBuilder, ConnectError};
#[cfg(feature = "fitbit-migration")]
pub use migration::FitbitMigration;
pub use status::{Connection, ConnectionState, Connections};
pub use user::{CurrentUser, FromExtractor, UserFuture};

/// Re-exported so an app can name the session store it passes to
/// [`Connect::router_with_store`] with the same version this crate uses.
pub use tower_sessions;
