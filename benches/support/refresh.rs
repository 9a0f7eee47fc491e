//! The refresh benchmarks' world: an in-process emulator in strict mode (no
//! replay window, so a second use of a refresh token would be caught as
//! reuse), the Fitbit provider and a manager over the memory store, and a
//! raw `oauth2` crate client against the same demo server app.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use auth_core::{RetryPolicy, TokenKey, TokenManager, TokenProvider, TokenSet};
use auth_emulator::{Emulator, demo};
use auth_fitbit::{FitbitProvider, Scope};
use auth_oauth2::OAuth2Provider;
use oauth2::basic::{BasicClient, BasicTokenResponse};
use oauth2::{
    AuthType, ClientId, ClientSecret, EndpointNotSet, EndpointSet, RefreshToken, TokenResponse,
    TokenUrl,
};
use store_memory::MemoryTokenStore;
use tokio::runtime::Runtime;

/// The scopes of every seeded grant.
pub const SCOPES: [&str; 2] = ["activity", "sleep"];

/// A `BasicClient` with only its token endpoint set.
pub type RawClient =
    BasicClient<EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// Everything a refresh benchmark needs, on one runtime. Shared as
/// `Arc<World>` with the timed tasks; the main thread keeps the last
/// reference, so the runtime is never dropped from inside itself.
pub struct World {
    /// Two workers, one per core of the benchmark machine.
    pub rt: Runtime,
    /// The emulator, serving on the same runtime.
    pub emulator: Emulator,
    /// The Fitbit provider (server app, Basic auth) against the emulator.
    pub provider: Arc<OAuth2Provider>,
    /// The store under the manager.
    pub store: MemoryTokenStore,
    /// A manager over `store` with `provider`, without retries.
    pub manager: TokenManager,
    /// The raw `oauth2` client for the same server app.
    pub raw: RawClient,
    /// The raw client's HTTP client, built once.
    pub http: reqwest::Client,
    next_user: AtomicU64,
}

impl World {
    /// Starts the runtime and the emulator and builds the clients.
    pub fn new() -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let emulator = rt.block_on(async {
            Emulator::builder()
                .with_demo_clients()
                .replay_window(false)
                // The benchmarks refresh thousands of times an hour; the
                // quota is not what they measure.
                .rate_limit_per_hour(u32::MAX)
                .start()
                .await
                .expect("the emulator starts")
        });
        let provider = Arc::new(
            FitbitProvider::builder(demo::FITBIT_SERVER_CLIENT_ID)
                .client_secret(demo::FITBIT_SERVER_CLIENT_SECRET)
                .redirect_uri(demo::REDIRECT_URI)
                .default_scopes([Scope::Activity, Scope::Sleep])
                .base_url(emulator.base_url())
                .expect("emulator endpoints")
                .build()
                .expect("the Fitbit provider"),
        );
        let store = MemoryTokenStore::new();
        let manager = TokenManager::builder(Arc::new(store.clone()))
            .provider(Arc::clone(&provider) as Arc<dyn TokenProvider>)
            // A failure must show, not be retried into a slower figure.
            .retry_policy(RetryPolicy::none())
            .build();
        let raw = BasicClient::new(ClientId::new(demo::FITBIT_SERVER_CLIENT_ID.to_owned()))
            .set_client_secret(ClientSecret::new(
                demo::FITBIT_SERVER_CLIENT_SECRET.to_owned(),
            ))
            .set_auth_type(AuthType::BasicAuth)
            .set_token_uri(TokenUrl::from_url(emulator.fitbit_endpoints().token));
        let http = http_client();
        Self {
            rt,
            emulator,
            provider,
            store,
            manager,
            raw,
            http,
            next_user: AtomicU64::new(0),
        }
    }

    /// Runs `task` as a task on the runtime and waits for its output. Every
    /// timed part runs this way, on a worker thread, as an app's request
    /// handler would: timing from the main thread would add a wake-up of a
    /// thread outside the runtime to every answer.
    pub fn in_task<T: Send + 'static>(&self, task: impl Future<Output = T> + Send + 'static) -> T {
        self.rt
            .block_on(self.rt.spawn(task))
            .expect("the benchmark task completes")
    }

    /// Refresh requests the emulator has received so far.
    pub fn refreshes(&self) -> u64 {
        self.emulator.counters().fitbit_token_refresh
    }

    /// A new Fitbit user with a fresh grant; returns the user id and the
    /// grant as a token set whose access token expired an hour ago.
    pub fn seed_expired(&self, prefix: &str) -> (String, TokenSet) {
        let n = self.next_user.fetch_add(1, Ordering::Relaxed);
        let user = format!("{prefix}-{n}");
        let issued = self
            .emulator
            .seed_fitbit_grant(demo::FITBIT_SERVER_CLIENT_ID, &user, &SCOPES);
        let now = SystemTime::now();
        let token = TokenSet::new(
            issued.access_token,
            "Bearer",
            now - Duration::from_secs(issued.expires_in + 3600),
        )
        .with_refresh_token(issued.refresh_token.expect("seeded grants have one"))
        .with_expires_at(Some(now - Duration::from_secs(3600)))
        .with_scopes(SCOPES)
        .with_extra(auth_fitbit::USER_ID, serde_json::json!(user));
        (user, token)
    }

    /// Seeds a grant as [`seed_expired`](Self::seed_expired) does and stores
    /// it for the manager; returns its key and the expired access token.
    pub fn store_expired(&self, prefix: &str) -> (TokenKey, String) {
        let (user, token) = self.seed_expired(prefix);
        let key = TokenKey::parse(auth_fitbit::FITBIT, &user).expect("a valid key");
        let old = auth_core::secrecy::ExposeSecret::expose_secret(token.access_token()).to_owned();
        self.rt
            .block_on(self.store.put(&key, &token))
            .expect("store the expired token");
        (key, old)
    }

    /// One refresh made directly with the `oauth2` crate, as an app without
    /// this library would write it.
    ///
    /// Boxed so that the future is checked for `Send` here, at concrete
    /// lifetimes: rustc cannot prove a spawned `async` block holding it
    /// `Send` otherwise (the "not general enough" limitation).
    pub fn raw_refresh<'a>(
        &'a self,
        refresh_token: &'a str,
    ) -> Pin<Box<dyn Future<Output = BasicTokenResponse> + Send + 'a>> {
        Box::pin(async move {
            let client = self.http.clone();
            let http = move |request: oauth2::HttpRequest| send(client.clone(), request);
            self.raw
                .exchange_refresh_token(&RefreshToken::new(refresh_token.to_owned()))
                .request_async(&http)
                .await
                .expect("the raw oauth2 refresh succeeds")
        })
    }
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}

/// The new refresh token of a raw response (Fitbit always rotates it).
pub fn rotated(response: &BasicTokenResponse) -> String {
    response
        .refresh_token()
        .expect("Fitbit rotates the refresh token")
        .secret()
        .clone()
}

/// The raw side's HTTP client, with the same settings as the provider's own
/// client (auth-oauth2's `HttpConfig::default()`): no redirects, the same
/// timeouts, and the same `User-Agent`, so that both sides send the server
/// the same request (the server's handling of that one header measured
/// about 1.5 µs per refresh, which is the server's work, not the library's).
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .user_agent(concat!("token-keeper/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("a reqwest client")
}

/// The `AsyncHttpClient` an app writes for `oauth2` with default features
/// off: the request through a shared `reqwest` client, the status, headers
/// and body back.
pub async fn send(
    client: reqwest::Client,
    request: oauth2::HttpRequest,
) -> Result<oauth2::HttpResponse, reqwest::Error> {
    let response = client.execute(reqwest::Request::try_from(request)?).await?;
    let mut builder = oauth2::http::Response::builder().status(response.status());
    for (name, value) in response.headers() {
        builder = builder.header(name, value);
    }
    let body = response.bytes().await?.to_vec();
    Ok(builder
        .body(body)
        .expect("status and headers came from a valid response"))
}
