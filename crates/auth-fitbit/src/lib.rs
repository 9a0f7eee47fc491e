//! Fitbit's two OAuth faces for [`auth_core`], and the move between them.
//!
//! - [`FitbitProvider`]: the legacy Fitbit OAuth 2.0 server (the seed's
//!   AuthorizationApi: `oauth_token`, `introspect`, `revoke`), with server
//!   and client app types, PKCE, [`Scope`]s, `user_id` as the account, both
//!   error-body shapes, rate-limit headers and v1.1 introspection. **Google
//!   switched these endpoints off on 2026-11-02**: they now answer 410, which
//!   becomes [`auth_core::Error::ProviderRetired`] naming `google-health`.
//! - [`GoogleHealthProvider`]: Google OAuth 2.0 for the Google Health API,
//!   which now guards the same data.
//! - [`migration`]: the scope mapping, a per-user move plan, and the
//!   dual-provider [`Bridge`](migration::Bridge) Google's migration guide
//!   asks for.
//!
//! Both providers are [`auth_oauth2::OAuth2Provider`] plus hooks; every URL
//! defaults to the real one and can be overridden.
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
//! use auth_fitbit::{AppType, FitbitEndpoints, FitbitProvider, GoogleEndpoints, GoogleHealthProvider, Scope};
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
//! let fitbit = FitbitProvider::builder(demo::FITBIT_SERVER_CLIENT_ID, AppType::Server)
//!     .client_secret(demo::FITBIT_SERVER_CLIENT_SECRET)
//!     .redirect_uri(demo::REDIRECT_URI)
//!     .scopes([Scope::Activity, Scope::Sleep])
//!     .endpoints(FitbitEndpoints::with_base(emulator.base_url())?)
//!     .build()?;
//! let google = GoogleHealthProvider::builder(demo::GOOGLE_CLIENT_ID, demo::GOOGLE_CLIENT_SECRET)
//!     .redirect_uri(demo::REDIRECT_URI)
//!     .endpoints(GoogleEndpoints::with_base(emulator.base_url())?)
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

mod delegate;
mod error_body;
mod fitbit;
mod google;
mod identity;
mod introspection;
pub mod migration;
mod rate_limit;
mod scope;

pub use error_body::parse_fitbit_error;

/// The built-in catalogue entry `name` (`fitbit`, `google-health`).
fn entry(name: &str) -> auth_core::Result<auth_catalogue::ProviderSpec> {
    auth_catalogue::lookup(name).cloned().ok_or_else(|| {
        auth_core::Error::configuration(format!("the provider catalogue has no entry {name:?}"))
    })
}
pub use fitbit::{
    AppType, EXPIRES_IN_CHOICES, FITBIT, FitbitEndpoints, FitbitProvider, FitbitProviderBuilder,
    GOOGLE_HEALTH, RETIREMENT_NOTICE, USER_ID, user_id,
};
pub use google::{GoogleEndpoints, GoogleHealthProvider, GoogleHealthProviderBuilder, scopes};
pub use identity::HealthIdentity;
pub use introspection::parse_braces_scopes;
pub use rate_limit::RateLimit;
pub use scope::{Prompt, Scope};
