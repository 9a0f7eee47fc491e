//! [`Connect`]: the configuration, and the router built from it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use auth_core::{AccountId, ProviderId, TokenManager};
use axum::Router;
use axum::extract::{FromRequestParts, OriginalUri};
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use axum::routing::{get, post};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::cookie::time;
use tower_sessions::{Expiry, MemoryStore, SessionManagerLayer, SessionStore};
use url::Url;

use crate::user::CurrentUser;

/// The session cookie's name.
pub(crate) const SESSION_COOKIE: &str = "token_keeper_connect";
/// How long a pending authorization may wait for its callback by default.
const DEFAULT_PENDING_TTL: Duration = Duration::from_secs(10 * 60);
/// How long an idle session lives in the store.
const SESSION_IDLE_DAYS: i64 = 1;

/// A configuration error of [`ConnectBuilder`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectError(String);

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConnectError {}

/// The connect routes of one app: build it once with [`Connect::builder`],
/// then mount [`router`](Self::router) (or
/// [`router_with_store`](Self::router_with_store)) where you like. Cheap to
/// clone.
#[derive(Clone)]
pub struct Connect {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) manager: TokenManager,
    pub(crate) user: Box<dyn CurrentUser>,
    pub(crate) redirect_uri: Url,
    pub(crate) pending_ttl: Duration,
    pub(crate) return_to: BTreeSet<String>,
    pub(crate) issuers: BTreeMap<ProviderId, String>,
    pub(crate) extra_scopes: BTreeMap<ProviderId, BTreeSet<String>>,
    pub(crate) names: BTreeMap<ProviderId, String>,
    /// The manager's providers in its order, listed once at build.
    pub(crate) providers: Vec<ProviderId>,
    pub(crate) page: bool,
    #[cfg(feature = "fitbit-migration")]
    pub(crate) migration: Option<crate::migration::FitbitMigration>,
}

impl fmt::Debug for Connect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connect")
            .field("redirect_uri", &self.inner.redirect_uri.as_str())
            .field("providers", &self.inner.manager.provider_ids())
            .field("pending_ttl", &self.inner.pending_ttl)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Connect`].
pub struct ConnectBuilder {
    inner: Inner,
}

impl Connect {
    /// Starts the configuration.
    ///
    /// - `manager` holds the providers (every registered provider gets a
    ///   row on the page) and the token store.
    /// - `redirect_uri` is the absolute URL of this router's `/callback`
    ///   route as the browser sees it, registered with every provider
    ///   exactly as written, for example
    ///   `https://app.example/accounts/callback` when the router is nested
    ///   at `/accounts`. Tokens are requested with it and the callback is
    ///   checked against it: the callback must arrive with this path, and
    ///   with this host in its `Host` header (so a reverse proxy in front
    ///   of the app must pass the browser's `Host` on).
    /// - `user` says who is signed in ([`CurrentUser`]).
    ///
    /// # Errors
    ///
    /// When `redirect_uri` is not an absolute http(s) URL whose path ends
    /// in `/callback`, or carries a query or fragment.
    pub fn builder(
        manager: TokenManager,
        redirect_uri: &str,
        user: impl CurrentUser,
    ) -> Result<ConnectBuilder, ConnectError> {
        let url = Url::parse(redirect_uri).map_err(|e| {
            ConnectError(format!(
                "the redirect URI {redirect_uri:?} is not an absolute URL ({e}); give the full \
                 address of the callback route, for example https://app.example/accounts/callback"
            ))
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(ConnectError(format!(
                "the redirect URI {redirect_uri:?} must be an http or https URL with a host"
            )));
        }
        if !url.path().ends_with("/callback") || url.query().is_some() || url.fragment().is_some() {
            return Err(ConnectError(format!(
                "the redirect URI {redirect_uri:?} must end in /callback (the router's callback \
                 route) and carry no query or fragment"
            )));
        }
        Ok(ConnectBuilder {
            inner: Inner {
                manager,
                user: Box::new(user),
                redirect_uri: url,
                pending_ttl: DEFAULT_PENDING_TTL,
                return_to: BTreeSet::new(),
                issuers: BTreeMap::new(),
                extra_scopes: BTreeMap::new(),
                names: BTreeMap::new(),
                providers: Vec::new(),
                page: true,
                #[cfg(feature = "fitbit-migration")]
                migration: None,
            },
        })
    }

    /// The routes with the defaults: [`builder`](Self::builder), then
    /// [`build`](ConnectBuilder::build).
    ///
    /// # Errors
    ///
    /// As for [`builder`](Self::builder).
    pub fn new(
        manager: TokenManager,
        redirect_uri: &str,
        user: impl CurrentUser,
    ) -> Result<Self, ConnectError> {
        Ok(Self::builder(manager, redirect_uri, user)?.build())
    }

    /// The routes, with sessions kept in this process's memory: right for
    /// one process. Apps on several hosts use
    /// [`router_with_store`](Self::router_with_store).
    pub fn router(&self) -> Router {
        self.router_with_store(MemoryStore::default())
    }

    /// The routes, with sessions kept in `store`. Pass a store that all
    /// hosts share (for example one of the `tower-sessions` stores for
    /// PostgreSQL or Redis) and a callback may land on any host:
    ///
    /// ```no_run
    /// # fn f(connect: auth_axum::Connect, shared: auth_axum::tower_sessions::MemoryStore) {
    /// let routes = connect.router_with_store(shared);
    /// # }
    /// ```
    ///
    /// The session cookie is `HttpOnly`, `SameSite=Lax` (the callback is a
    /// top-level navigation from the provider, which `Lax` allows) and
    /// `Secure` when the redirect URI is https.
    pub fn router_with_store<S>(&self, store: S) -> Router
    where
        S: SessionStore + Clone,
    {
        let sessions = SessionManagerLayer::new(store)
            .with_name(SESSION_COOKIE)
            .with_http_only(true)
            .with_same_site(SameSite::Lax)
            .with_secure(self.inner.redirect_uri.scheme() == "https")
            .with_path("/")
            .with_expiry(Expiry::OnInactivity(time::Duration::days(
                SESSION_IDLE_DAYS,
            )));
        let mut routes = Router::new()
            .route("/connect/{provider}", get(crate::begin::connect))
            .route("/callback", get(crate::callback::callback))
            .route(
                "/disconnect/{provider}",
                post(crate::disconnect::disconnect),
            )
            .route("/connections", get(crate::status::connections));
        if self.inner.page {
            routes = routes.route("/", get(crate::page::page));
        }
        #[cfg(feature = "fitbit-migration")]
        if self.inner.migration.is_some() {
            routes = routes.route("/move/{provider}", get(crate::migration::begin_move));
        }
        // Every answer of these routes is private to one user: never
        // cached, never sniffed as another type. Pages and redirects are
        // also never framed, and never sent on as a referrer (a callback's
        // address carries a code); the JSON of `/connections` is neither
        // shown nor followed, so it goes without those two.
        let private =
            |name, value| SetResponseHeaderLayer::overriding(name, HeaderValue::from_static(value));
        let document = |name, value: &'static str| {
            SetResponseHeaderLayer::overriding(name, move |response: &Response| {
                let json = response
                    .headers()
                    .get(header::CONTENT_TYPE)
                    .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
                (!json).then(|| HeaderValue::from_static(value))
            })
        };
        routes
            .layer(sessions)
            .layer(private(header::CACHE_CONTROL, "no-store"))
            .layer(private(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
            .layer(document(header::REFERRER_POLICY, "no-referrer"))
            .layer(document(header::X_FRAME_OPTIONS, "DENY"))
            .with_state(self.clone())
    }

    pub(crate) fn manager(&self) -> &TokenManager {
        &self.inner.manager
    }

    /// The name people read for `provider`, borrowed: every provider of
    /// the manager has one from the build on.
    pub(crate) fn name_of(&self, provider: &ProviderId) -> &str {
        self.inner.names.get(provider).map_or("", String::as_str)
    }

    /// The name people read for `provider`.
    pub(crate) fn display_name(&self, provider: &ProviderId) -> String {
        self.inner
            .names
            .get(provider)
            .cloned()
            .unwrap_or_else(|| default_name(provider))
    }
}

/// "google-health" → "Google Health".
fn default_name(provider: &ProviderId) -> String {
    provider
        .as_str()
        .split(['-', '_'])
        .filter(|word| !word.is_empty())
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_uppercase().chain(chars).collect::<String>()
            })
        })
        .collect::<Vec<_>>()
        .join(" ")
}

impl ConnectBuilder {
    /// How long a pending authorization waits for its callback (10 minutes
    /// by default). Keep it at most the manager's `pending_max_age`.
    #[must_use]
    pub fn pending_ttl(mut self, ttl: Duration) -> Self {
        self.inner.pending_ttl = ttl;
        self
    }

    /// Allows `?return_to=PATH` on `/connect/{provider}`: after the
    /// callback the browser goes to this exact path of the app (for
    /// example `/settings`). Paths not allowed here are refused, so the
    /// routes never redirect anywhere an attacker chose. Without
    /// `return_to`, the browser comes back to the page.
    #[must_use]
    pub fn allow_return_to(mut self, path: impl Into<String>) -> Self {
        self.inner.return_to.insert(path.into());
        self
    }

    /// The issuer `provider`'s callbacks must name when they carry `iss`
    /// (RFC 9207). A callback naming another issuer is refused before its
    /// code is sent anywhere (a mix-up attack).
    #[must_use]
    pub fn issuer(mut self, provider: &ProviderId, issuer: impl Into<String>) -> Self {
        self.inner.issuers.insert(provider.clone(), issuer.into());
        self
    }

    /// Scopes an app may ask `provider` for later with
    /// `/connect/{provider}?scope=NAME` (incremental authorization). The
    /// request then asks for these on top of what the account has already
    /// granted. Scopes not listed here are refused.
    #[must_use]
    pub fn extra_scopes<I, S>(mut self, provider: &ProviderId, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.inner
            .extra_scopes
            .entry(provider.clone())
            .or_default()
            .extend(scopes.into_iter().map(Into::into));
        self
    }

    /// The name shown for `provider` ("Google Health" rather than
    /// `google-health`). By default the id's words, capitalized.
    #[must_use]
    pub fn display_name(mut self, provider: &ProviderId, name: impl Into<String>) -> Self {
        self.inner.names.insert(provider.clone(), name.into());
        self
    }

    /// Leaves out the HTML page at `/` (an app with its own page built on
    /// `/connections`).
    #[must_use]
    pub fn without_page(mut self) -> Self {
        self.inner.page = false;
        self
    }

    /// Offers the move from legacy Fitbit to Google Health in the page.
    #[cfg(feature = "fitbit-migration")]
    #[must_use]
    pub fn fitbit_migration(mut self, migration: crate::migration::FitbitMigration) -> Self {
        self.inner.migration = Some(migration);
        self
    }

    /// The configured routes.
    pub fn build(mut self) -> Connect {
        // Every provider's name, worked out once.
        self.inner.providers = self.inner.manager.provider_ids();
        for provider in &self.inner.providers {
            let name = default_name(provider);
            self.inner.names.entry(provider.clone()).or_insert(name);
        }
        Connect {
            inner: Arc::new(self.inner),
        }
    }
}

/// The signed-in user of a request, as the app's [`CurrentUser`] says.
pub(crate) struct User(pub(crate) Option<AccountId>);

impl FromRequestParts<Connect> for User {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Connect,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(state.inner.user.current_user(parts).await))
    }
}

/// Where the app mounted the router: the path before its routes (empty at
/// the root), so that links and redirects work under `nest`.
pub(crate) struct Mount(pub(crate) String);

impl FromRequestParts<Connect> for Mount {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &Connect,
    ) -> Result<Self, Self::Rejection> {
        let inner = parts.uri.path();
        let original = parts
            .extensions
            .get::<OriginalUri>()
            .map_or(inner, |original| original.path());
        let prefix = original
            .strip_suffix(inner)
            .or_else(|| (inner == "/").then(|| original.trim_end_matches('/')))
            .unwrap_or_default();
        Ok(Self(prefix.trim_end_matches('/').to_owned()))
    }
}

impl Mount {
    /// The page's path: the mount point itself (axum's `nest` does not
    /// match it with a trailing slash), or `/` at the root.
    pub(crate) fn page(&self) -> String {
        if self.0.is_empty() {
            "/".to_owned()
        } else {
            self.0.clone()
        }
    }

    /// The path of one of the router's routes (`route` starts with `/`).
    pub(crate) fn path(&self, route: &str) -> String {
        format!("{}{route}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_redirect_uri_must_be_an_absolute_callback_url() {
        let manager =
            TokenManager::builder(Arc::new(store_memory::MemoryTokenStore::new())).build();
        let nobody = |_: &Parts| None;
        for bad in [
            "/accounts/callback",
            "ftp://app.example/callback",
            "https://app.example/accounts",
            "https://app.example/callback?from=x",
            "https://app.example/callback#x",
        ] {
            let error = Connect::new(manager.clone(), bad, nobody).unwrap_err();
            assert!(error.to_string().contains(bad), "{error}");
        }
        assert!(Connect::new(manager, "https://app.example/accounts/callback", nobody).is_ok());
    }

    #[test]
    fn default_names_are_the_ids_words_capitalized() {
        let id = |s| ProviderId::new(s).unwrap();
        assert_eq!(default_name(&id("google-health")), "Google Health");
        assert_eq!(default_name(&id("fitbit")), "Fitbit");
        assert_eq!(default_name(&id("my_oauth2")), "My Oauth2");
    }
}
