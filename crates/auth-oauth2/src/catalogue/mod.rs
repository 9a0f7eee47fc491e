//! Providers built from catalogue entries ([`auth_catalogue`]).
//!
//! One line builds a provider from a built-in entry:
//!
//! ```
//! # fn main() -> auth_core::Result<()> {
//! let strava = auth_oauth2::catalogue::provider("strava", "12345", "client-secret")?;
//! assert_eq!(auth_core::TokenProvider::id(&strava).as_str(), "strava");
//! # Ok(())
//! # }
//! ```
//!
//! [`builder`] returns the [`OAuth2ProviderBuilder`] with everything the
//! entry says already set, to add a redirect URI, point the endpoints at a
//! local server, or wrap the hooks:
//!
//! ```
//! # fn main() -> auth_core::Result<()> {
//! let spec = auth_catalogue::lookup("withings").expect("a built-in entry");
//! let withings = auth_oauth2::catalogue::builder("withings", spec, "client-id")?
//!     .client_secret("client-secret")
//!     .redirect_uri("https://app.example/callback")
//!     .build()?;
//! let pending = auth_core::TokenProvider::authorize(&withings, auth_core::AuthorizeRequest::new())?;
//! // Withings takes comma-separated scopes and no PKCE.
//! assert!(pending.authorize_url.as_str().contains("scope=user.info%2Cuser.metrics"));
//! assert!(!pending.authorize_url.as_str().contains("code_challenge"));
//! # Ok(())
//! # }
//! ```

mod hooks;
mod response;

use std::sync::Arc;

use auth_catalogue::{AccountFrom, ClientAuthMethod, Pkce, ProviderSpec};
use auth_core::{Error, ProviderId, Result};
use secrecy::SecretString;
use url::Url;

pub use hooks::CatalogueHooks;

use crate::config::{ClientAuth, Endpoints};
use crate::provider::{OAuth2Provider, OAuth2ProviderBuilder};

/// The built-in entry `name`, built with its real endpoints.
///
/// For a confidential client give the secret; for a public one (an entry
/// whose client authentication is `none`), give an empty secret.
///
/// # Errors
///
/// [`Error::Configuration`] when there is no such entry, the entry is a
/// template (see [`builder`] and
/// [`ProviderSpec::instantiate`](auth_catalogue::ProviderSpec::instantiate)),
/// or the credentials do not fit the entry.
pub fn provider(
    name: &str,
    client_id: impl Into<String>,
    client_secret: impl Into<SecretString>,
) -> Result<OAuth2Provider> {
    let spec = auth_catalogue::lookup(name).ok_or_else(|| unknown_entry(name))?;
    let secret: SecretString = client_secret.into();
    let mut builder = builder(name, spec, client_id)?;
    if spec.client.auth != ClientAuthMethod::None {
        builder = builder.client_secret(secret);
    }
    builder.build()
}

/// A builder for `spec`, registered under the provider id `name`, with
/// every fact of the entry set: endpoints, client authentication, PKCE,
/// scopes and their separator, the parameters a refresh token needs, the
/// refresh rules, the API base URLs and the entry's hooks
/// ([`CatalogueHooks`], which also say whether the entry is retired and
/// for what).
///
/// # Errors
///
/// [`Error::Configuration`] when `name` is not a valid provider id, the
/// entry is a template with unfilled placeholders, or one of its URLs is not
/// a URL.
pub fn builder(
    name: &str,
    spec: &ProviderSpec,
    client_id: impl Into<String>,
) -> Result<OAuth2ProviderBuilder> {
    let id = ProviderId::new(name)?;
    if spec.is_template() {
        return Err(Error::configuration(format!(
            "provider {name}: the catalogue entry is a template; give {} first",
            spec.endpoints
                .placeholders
                .iter()
                .map(|p| format!("{p} = \"…\""))
                .collect::<Vec<_>>()
                .join(" and ")
        )));
    }
    let url = |what: &str, text: &str| {
        Url::parse(text).map_err(|e| {
            Error::configuration(format!(
                "provider {name}: the catalogue's {what} URL {text:?} is not a URL ({e})"
            ))
        })
    };
    let e = &spec.endpoints;
    let mut endpoints = Endpoints::new(url("authorize", &e.authorize)?, url("token", &e.token)?);
    if let Some(u) = &e.revoke {
        endpoints = endpoints.with_revocation(url("revoke", u)?);
    }
    if let Some(u) = &e.introspect {
        endpoints = endpoints.with_introspection(url("introspect", u)?);
    }
    if let Some(u) = &e.device_authorization {
        endpoints = endpoints.with_device_authorization(url("device authorization", u)?);
    }
    let shared = Arc::new(spec.clone());
    let mut builder = OAuth2Provider::builder(id, client_id)
        .client_auth(client_auth(spec.client.auth))
        .endpoints(endpoints)
        .pkce(spec.client.pkce != Pkce::Unsupported)
        .echo_state_on_exchange(spec.client.echo_state)
        .scope_separator(spec.scopes.separator.clone())
        .default_scopes(spec.scopes.default.iter().cloned())
        .always_scopes(spec.scopes.offline.iter().cloned())
        .catalogue_refresh_rules(spec.refresh_rules())
        .api_base_urls(e.api_base_urls.iter().cloned())
        .expires_in_choices(spec.response.expires_in_choices.iter().copied())
        .hooks(Arc::new(CatalogueHooks::new(shared)));
    for (k, v) in &spec.scopes.authorize_params {
        builder = builder.authorize_param(k, v);
    }
    for (k, v) in &spec.scopes.token_params {
        builder = builder.token_param(k, v);
    }
    for (k, v) in &spec.scopes.refresh_params {
        builder = builder.refresh_param(k, v);
    }
    if let Some(seconds) = spec.response.requested_expires_in {
        builder = builder.expires_in(seconds);
    }
    if let Some(issuer) = &e.issuer {
        builder = builder.issuer(issuer.clone(), false);
    }
    if spec.account.from == AccountFrom::Userinfo
        && let (Some(userinfo), Some(field)) = (&e.userinfo, &spec.account.field)
    {
        builder = builder.userinfo_account(url("userinfo", userinfo)?, field);
    }
    Ok(builder)
}

/// The client authentication a catalogue method names.
pub fn client_auth(method: ClientAuthMethod) -> ClientAuth {
    match method {
        ClientAuthMethod::ClientSecretBasic => ClientAuth::ClientSecretBasic,
        ClientAuthMethod::ClientSecretPost => ClientAuth::ClientSecretPost,
        ClientAuthMethod::None => ClientAuth::None,
    }
}

fn unknown_entry(name: &str) -> Error {
    let names: Vec<&str> = auth_catalogue::Catalogue::builtin().names().collect();
    Error::configuration(format!(
        "there is no provider {name:?} in the catalogue; the catalogue has {}",
        names.join(", ")
    ))
}
