//! An HTTP client that calls an API on behalf of a user and never hands
//! it a stale token: a [`reqwest_middleware`] middleware that takes tokens
//! from a [`TokenManager`](auth_core::TokenManager).
//!
//! ```no_run
//! use std::sync::Arc;
//! use auth_core::{TokenKey, TokenManager};
//! use auth_fitbit::GoogleHealthProvider;
//! use auth_reqwest::{BearerAuth, auth_error};
//! use store_file::FileTokenStore;
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let google = GoogleHealthProvider::builder(
//!     "1234-abc.apps.googleusercontent.com",
//!     std::env::var("GOOGLE_CLIENT_SECRET")?,
//! )
//! .redirect_uri("https://app.example/callback")
//! .build()?;
//! let store = FileTokenStore::open("/var/lib/myapp/tokens")?;
//! let manager = TokenManager::builder(Arc::new(store))
//!     .provider(Arc::new(google))
//!     .build();
//!
//! // One client per user: their token goes to the Google Health API only.
//! let key = TokenKey::parse("google-health", "alice")?;
//! let auth = BearerAuth::new(manager, key).allow_origin("https://health.googleapis.com")?;
//! let client = auth_reqwest::client(auth)?;
//!
//! match client.get("https://health.googleapis.com/v4/users/me/identity").send().await {
//!     Ok(response) => println!("{}", response.text().await?),
//!     Err(err) => match auth_error(&err) {
//!         Some(e) if e.is_reauthorization_required() => { /* send the user to log in */ }
//!         Some(e) if e.is_transient() => { /* try again later */ }
//!         _ => return Err(err.into()),
//!     },
//! }
//! # Ok(())
//! # }
//! ```
//!
//! An app does not want a token, it wants to call the API. [`BearerAuth`]
//! adds the account's access token to each request for the origins you
//! allow, and when the API says the token is bad (a 401 that the provider's
//! [`rejects_token`](auth_core::TokenProvider::rejects_token) hook
//! recognises), it replaces the token through
//! [`TokenManager::force_refresh`](auth_core::TokenManager::force_refresh)
//! and retries once. A hundred requests rejected together make one refresh.
//!
//! - One account: [`BearerAuth::new`]. Many users: [`BearerAuth::per_request`]
//!   reads the [`TokenKey`](auth_core::TokenKey) from each request's
//!   extensions.
//! - No token goes to an origin that was not allowed, over plain http off
//!   loopback, or along a redirect to another origin.
//! - When no token can be had, the request is not sent and
//!   [`auth_error`] gives back the [`auth_core::Error`], so the app can send
//!   the user to log in again, move them to a successor provider, or retry.
//!
//! The refresh itself (once per account, across processes, saved before
//! use) is the [`TokenManager`](auth_core::TokenManager)'s, described in
//! its crate docs and in the repository's `ARCHITECTURE.md`.

mod bearer;
mod body;
mod client;
mod error;
mod origin;

pub use bearer::{BearerAuth, DEFAULT_BODY_PREFIX};
pub use client::{MAX_REDIRECTS, client, redirect_policy, reqwest_builder};
pub use error::auth_error;

/// Re-exported so apps build clients with the same version.
pub use reqwest_middleware;
