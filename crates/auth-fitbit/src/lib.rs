//! Fitbit's two OAuth faces for [`auth_core`], and the move between them.
//!
//! Both are catalogue entries (`auth-catalogue`) on the generic
//! [`auth_oauth2::OAuth2Provider`]: [`FitbitProvider::builder`] and
//! [`GoogleHealthProvider::builder`] return its builder with the entry's
//! facts set, so everything else is the generic builder's own methods.
//!
//! ```no_run
//! # use std::error::Error;
//! use std::sync::Arc;
//! use auth_core::{AuthorizeRequest, TokenManager};
//! use auth_fitbit::{GoogleHealthProvider, scopes};
//! use store_file::FileTokenStore;
//!
//! # fn main() -> Result<(), Box<dyn Error>> {
//! let google = GoogleHealthProvider::builder("1234.apps.googleusercontent.com", "client-secret")
//!     .redirect_uri("https://app.example/oauth/callback")
//!     .default_scopes([scopes::SLEEP_READONLY, scopes::ACTIVITY_AND_FITNESS_READONLY])
//!     .build()?;
//! let store = FileTokenStore::open(FileTokenStore::default_root()?)?;
//! let manager = TokenManager::builder(Arc::new(store))
//!     .provider(Arc::new(google))
//!     .build();
//! let pending = manager.begin_authorization(&"google-health".parse()?, AuthorizeRequest::new())?;
//! println!("open {}", pending.authorize_url);
//! # Ok(())
//! # }
//! ```
//!
//! - [`FitbitProvider`]: the legacy Fitbit OAuth 2.0 server (the seed's
//!   AuthorizationApi: `oauth_token`, `introspect`, `revoke`), with server
//!   and client app types, PKCE, [`Scope`]s, `user_id` as the account, an
//!   `expires_in` of 3600 or 28800 seconds, and [`FitbitHooks`] for both
//!   error-body shapes, rate-limit headers and v1.1 introspection. **Google
//!   switched these endpoints off on 2026-11-02**: they now answer 410,
//!   which becomes [`auth_core::Error::ProviderRetired`] naming
//!   `google-health`, because the catalogue entry says it is retired and
//!   names that successor.
//! - [`GoogleHealthProvider`]: Google OAuth 2.0 for the Google Health API,
//!   which now guards the same data, and its identity endpoint.
//! - [`migration`]: the scope mapping, a per-user move plan, and the
//!   dual-provider [`Bridge`](migration::Bridge) Google's migration guide
//!   asks for.
//!
//! Every URL defaults to the real one;
//! [`base_url`](auth_oauth2::OAuth2ProviderBuilder::base_url) serves them
//! all from a local emulator, and
//! [`endpoints`](auth_oauth2::OAuth2ProviderBuilder::endpoints) sets them
//! one by one.
//!
//! # The dual-provider bridge, end to end
//!
//! Against the local emulator (`auth-emulator`), which plays both servers:
//!
//! ```
//! # use std::error::Error;
//! use std::sync::Arc;
//! use auth_core::{AuthorizeRequest, Callback, ProviderId, TokenManager};
//! use auth_emulator::{Emulator, demo};
//! use auth_fitbit::migration::{self, Access, Bridge};
//! use auth_fitbit::{FitbitProvider, GoogleHealthProvider, Scope};
//! use store_memory::MemoryTokenStore;
//!
//! # async fn browse(url: &url::Url) -> Result<String, Box<dyn Error>> {
//! #     let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
//! #     let answer = client.get(url.as_str()).send().await?;
//! #     Ok(answer.headers()["location"].to_str()?.to_owned())
//! # }
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn Error>> {
//! let emulator = Emulator::builder().with_demo_clients().start().await?;
//!
//! let fitbit = FitbitProvider::builder(demo::FITBIT_SERVER_CLIENT_ID)
//!     .client_secret(demo::FITBIT_SERVER_CLIENT_SECRET)
//!     .redirect_uri(demo::REDIRECT_URI)
//!     .default_scopes([Scope::Activity, Scope::Sleep])
//!     .base_url(emulator.base_url())?
//!     .build()?;
//! let google = GoogleHealthProvider::builder(demo::GOOGLE_CLIENT_ID, demo::GOOGLE_CLIENT_SECRET)
//!     .redirect_uri(demo::REDIRECT_URI)
//!     .base_url(emulator.base_url())?
//!     .build()?;
//! let manager = TokenManager::builder(Arc::new(MemoryTokenStore::new()))
//!     .provider(Arc::new(fitbit))
//!     .provider(Arc::new(google.clone()))
//!     .build();
//! let (legacy, health): (ProviderId, ProviderId) = ("fitbit".parse()?, "google-health".parse()?);
//!
//! // A user logs in with legacy Fitbit; the account is their Fitbit user_id.
//! let pending = manager.begin_authorization(&legacy, AuthorizeRequest::new())?;
//! let callback = Callback::parse(&browse(&pending.authorize_url).await?)?;
//! let (key, _) = manager.complete_authorization(&pending, &callback).await?;
//!
//! // The app asks the bridge, never a provider: this user is on Fitbit.
//! let bridge = Bridge::new(manager.clone(), legacy.clone(), health.clone())
//!     .with_identity_check(google);
//! assert_eq!(bridge.access_token(&key.account).await?.0, legacy);
//!
//! // Move every legacy user to Google Health, under the same account id,
//! // once the Google account proves to be the same Fitbit user.
//! for step in migration::plan(&manager, &legacy, &health, Access::ReadOnly).await? {
//!     assert_eq!(step.expected_legacy_user_id, key.account.as_str());
//!     let pending = manager.begin_authorization(&health, step.request)?;
//!     let callback = Callback::parse(&browse(&pending.authorize_url).await?)?;
//!     let linked = bridge.link(&pending, &callback).await?;
//!     assert_eq!(linked.identity.legacy_user_id.as_deref(), Some(key.account.as_str()));
//! }
//! assert_eq!(bridge.access_token(&key.account).await?.0, health);
//! # Ok(())
//! # }
//! ```

mod error_body;
mod fitbit;
mod google;
mod identity;
mod introspection;
pub mod migration;
mod rate_limit;
mod scope;

pub use error_body::parse_fitbit_error;
pub use fitbit::{
    AppType, EXPIRES_IN_CHOICES, FITBIT, FitbitHooks, FitbitProvider, GOOGLE_HEALTH, USER_ID,
    user_id,
};
pub use google::{GoogleHealthProvider, IDENTITY_PATH, scopes};
pub use identity::HealthIdentity;
pub use introspection::parse_braces_scopes;
pub use rate_limit::RateLimit;
pub use scope::{Prompt, Scope};

/// What [`FitbitProvider::builder`] returns: the generic builder.
pub type FitbitProviderBuilder = auth_oauth2::OAuth2ProviderBuilder;
/// What [`GoogleHealthProvider::builder`] returns: the generic builder.
pub type GoogleHealthProviderBuilder = auth_oauth2::OAuth2ProviderBuilder;
