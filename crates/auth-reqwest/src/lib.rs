//! An authenticated HTTP client: a [`reqwest_middleware`] middleware that
//! takes tokens from a [`TokenManager`](auth_core::TokenManager).
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
//! # Example
//!
//! ```no_run
//! use std::sync::Arc;
//! use auth_core::{TokenKey, TokenManager};
//! use auth_reqwest::{BearerAuth, auth_error};
//! use store_memory::MemoryTokenStore;
//!
//! # async fn run(provider: Arc<dyn auth_core::TokenProvider>) -> Result<(), Box<dyn std::error::Error>> {
//! let manager = TokenManager::builder(Arc::new(MemoryTokenStore::new()))
//!     .provider(provider)
//!     .build();
//! let key = TokenKey::parse("fitbit", "26FWFL")?;
//! let auth = BearerAuth::new(manager, key).allow_origin("https://api.fitbit.com")?;
//! let client = auth_reqwest::client(auth)?;
//!
//! match client.get("https://api.fitbit.com/1/user/-/profile.json").send().await {
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
