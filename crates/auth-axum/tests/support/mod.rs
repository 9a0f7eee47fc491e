//! An app with the connect routes nested at `/accounts`, against the
//! emulator's Fitbit and Google servers, and browsers to drive it.
#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test binary uses part of the support"
)]

use std::future::IntoFuture as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use auth_axum::tower_sessions::MemoryStore;
use auth_axum::{Connect, FitbitMigration};
use auth_core::{AccountId, ProviderId, TokenKey, TokenManager, TokenProvider};
use auth_emulator::{ClientConfig, Emulator, demo};
use auth_fitbit::{FitbitProvider, GoogleHealthProvider, Scope, scopes};
use axum::Router;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use reqwest::cookie::CookieStore as _;
use store_memory::MemoryTokenStore;

pub const FITBIT: &str = "fitbit";
pub const GOOGLE: &str = "google-health";

/// The cookie the test app's own sign-in sets (a stand-in for the app's
/// real sign-in).
pub const USER_COOKIE: &str = "test_user";

/// Who is signed in: the test app's `test_user` cookie.
pub fn user_from_cookie(parts: &axum::http::request::Parts) -> Option<AccountId> {
    user_of(&parts.headers)
}

fn user_of(headers: &HeaderMap) -> Option<AccountId> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(USER_COOKIE)?.strip_prefix('='))
        .and_then(|name| AccountId::new(name).ok())
}

/// `GET /signin?user=NAME`: the test app's sign-in.
async fn signin(axum::extract::Query(q): axum::extract::Query<Vec<(String, String)>>) -> Response {
    let user = q
        .into_iter()
        .find(|(k, _)| k == "user")
        .map(|(_, v)| v)
        .unwrap_or_default();
    (
        [(
            header::SET_COOKIE,
            format!("{USER_COOKIE}={user}; Path=/; HttpOnly; SameSite=Lax"),
        )],
        axum::response::Redirect::to("/accounts"),
    )
        .into_response()
}

/// Wraps a provider.
pub type Wrap = Box<dyn FnOnce(Arc<dyn TokenProvider>) -> Arc<dyn TokenProvider>>;

/// Options of [`start`].
#[derive(Default)]
pub struct Options {
    /// Wraps the Fitbit provider (for the cancellation test).
    pub wrap_fitbit: Option<Wrap>,
    /// The pending authorizations' time to live.
    pub pending_ttl: Option<Duration>,
    /// A middleware around the whole app.
    pub layer: Option<Box<dyn FnOnce(Router) -> Router>>,
}

/// One app instance on its own port.
pub struct Instance {
    pub url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The app, the emulator behind it, and what the tests look at.
pub struct App {
    pub url: String,
    pub emulator: Emulator,
    pub manager: TokenManager,
    pub connect: Connect,
    pub sessions: MemoryStore,
    instance: Instance,
}

impl App {
    pub fn key(&self, provider: &str, user: &str) -> TokenKey {
        TokenKey::parse(provider, user).unwrap()
    }

    /// The stored token set's secrets (access, refresh), if stored.
    pub async fn secrets(&self, provider: &str, user: &str) -> Option<(String, Option<String>)> {
        use auth_core::secrecy::ExposeSecret as _;
        let stored = self
            .manager
            .stored(&self.key(provider, user))
            .await
            .unwrap()?;
        Some((
            stored.access_token().expose_secret().to_owned(),
            stored.refresh_token().map(|r| r.expose_secret().to_owned()),
        ))
    }

    /// Another app instance on another port, with the same manager and
    /// the same session store: another host behind the load balancer.
    pub async fn second_instance(&self) -> Instance {
        serve(app_router(
            self.connect.router_with_store(self.sessions.clone()),
        ))
        .await
        .1
    }
}

fn app_router(connect_routes: Router) -> Router {
    Router::new()
        .route("/signin", get(signin))
        .nest("/accounts", connect_routes)
}

async fn serve(router: Router) -> (String, Instance) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    serve_on(listener, router)
}

fn serve_on(listener: tokio::net::TcpListener, router: Router) -> (String, Instance) {
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .into_future(),
    );
    (
        url.clone(),
        Instance {
            url,
            stop: Some(stop),
        },
    )
}

pub async fn start() -> App {
    start_with(Options::default()).await
}

pub async fn start_with(options: Options) -> App {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let redirect_uri = format!("{url}/accounts/callback");
    let emulator = Emulator::builder()
        .fitbit_client(
            ClientConfig::server(
                demo::FITBIT_SERVER_CLIENT_ID,
                demo::FITBIT_SERVER_CLIENT_SECRET,
            )
            .redirect_uri(&redirect_uri),
        )
        .google_client(
            ClientConfig::server(demo::GOOGLE_CLIENT_ID, demo::GOOGLE_CLIENT_SECRET)
                .redirect_uri(&redirect_uri),
        )
        .start()
        .await
        .unwrap();
    let fitbit = FitbitProvider::builder(demo::FITBIT_SERVER_CLIENT_ID)
        .client_secret(demo::FITBIT_SERVER_CLIENT_SECRET)
        .redirect_uri(&redirect_uri)
        .default_scopes([Scope::Activity, Scope::Heartrate, Scope::Sleep])
        .base_url(emulator.base_url())
        .unwrap()
        .build()
        .unwrap();
    let google = GoogleHealthProvider::builder(demo::GOOGLE_CLIENT_ID, demo::GOOGLE_CLIENT_SECRET)
        .redirect_uri(&redirect_uri)
        .default_scopes([
            scopes::ACTIVITY_AND_FITNESS_READONLY,
            scopes::SLEEP_READONLY,
        ])
        .base_url(emulator.base_url())
        .unwrap()
        .build()
        .unwrap();
    let mut fitbit: Arc<dyn TokenProvider> = Arc::new(fitbit);
    if let Some(wrap) = options.wrap_fitbit {
        fitbit = wrap(fitbit);
    }
    let manager = TokenManager::builder(Arc::new(MemoryTokenStore::new()))
        .provider(fitbit)
        .provider(Arc::new(google.clone()))
        .build();
    let mut builder = Connect::builder(manager.clone(), &redirect_uri, user_from_cookie)
        .unwrap()
        .display_name(&ProviderId::new(GOOGLE).unwrap(), "Google Health")
        .issuer(
            &ProviderId::new(GOOGLE).unwrap(),
            emulator.base_url().as_str().trim_end_matches('/'),
        )
        .extra_scopes(&ProviderId::new(FITBIT).unwrap(), ["weight"])
        .allow_return_to("/signin?user=back")
        .fitbit_migration(FitbitMigration::new(
            manager.clone(),
            ProviderId::new(FITBIT).unwrap(),
            google,
        ));
    if let Some(ttl) = options.pending_ttl {
        builder = builder.pending_ttl(ttl);
    }
    let connect = builder.build();
    let sessions = MemoryStore::default();
    let mut router = app_router(connect.router_with_store(sessions.clone()));
    if let Some(layer) = options.layer {
        router = layer(router);
    }
    let (url, instance) = serve_on(listener, router);
    App {
        url,
        emulator,
        manager,
        connect,
        sessions,
        instance,
    }
}

/// Every response a [`Browser`] saw: status, headers and body, to search
/// for secrets.
#[derive(Default, Clone)]
pub struct Seen(pub Arc<Mutex<Vec<String>>>);

impl Seen {
    pub fn all(&self) -> String {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .join("\n")
    }
}

/// A browser without script: keeps cookies, follows redirects hop by hop.
pub struct Browser {
    pub client: reqwest::Client,
    pub jar: Arc<reqwest::cookie::Jar>,
    pub seen: Seen,
}

/// The last answer of a navigation.
pub struct Page {
    pub status: u16,
    pub url: url::Url,
    pub body: String,
    /// Every hop's URL, the first one included.
    pub trail: Vec<url::Url>,
}

impl Browser {
    pub fn new() -> Self {
        let jar = Arc::new(reqwest::cookie::Jar::default());
        let client = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Self {
            client,
            jar,
            seen: Seen::default(),
        }
    }

    /// Signs in to the test app as `user`.
    pub async fn sign_in(&self, app: &str, user: &str) {
        let page = self.get(&format!("{app}/signin?user={user}")).await;
        assert_eq!(page.status, 200, "{}", page.body);
    }

    /// The session cookie's value for `app`.
    pub fn session_cookie(&self, app: &str) -> Option<String> {
        let url = url::Url::parse(app).unwrap();
        let cookies = self.jar.cookies(&url)?;
        cookies
            .to_str()
            .unwrap()
            .split(';')
            .find_map(|pair| pair.trim().strip_prefix("token_keeper_connect="))
            .map(str::to_owned)
    }

    /// Sends one request and records the answer.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> (u16, HeaderMap, String) {
        let answer = request.send().await.unwrap();
        let status = answer.status().as_u16();
        let headers = answer.headers().clone();
        let body = answer.text().await.unwrap();
        let mut record = format!("{status}\n");
        for (name, value) in &headers {
            record.push_str(&format!(
                "{name}: {}\n",
                String::from_utf8_lossy(value.as_bytes())
            ));
        }
        record.push_str(&body);
        self.seen
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(record);
        (status, headers, body)
    }

    /// GET, following redirects (at most 8 hops).
    pub async fn get(&self, url: &str) -> Page {
        let mut url = url::Url::parse(url).unwrap();
        let mut trail = vec![url.clone()];
        for _ in 0..8 {
            let (status, headers, body) = self.send(self.client.get(url.as_str())).await;
            match headers.get(header::LOCATION) {
                Some(location) if (300..400).contains(&status) => {
                    url = url.join(location.to_str().unwrap()).unwrap();
                    trail.push(url.clone());
                }
                _ => {
                    return Page {
                        status,
                        url,
                        body,
                        trail,
                    };
                }
            }
        }
        panic!("too many redirects: {trail:?}");
    }

    /// GET one answer, without following a redirect: (status, headers, body).
    pub async fn fetch(&self, url: &str) -> (u16, HeaderMap, String) {
        self.send(self.client.get(url)).await
    }

    /// GET one hop, without following a redirect: (status, Location).
    pub async fn hop(&self, url: &str) -> (u16, Option<String>, String) {
        let (status, headers, body) = self.fetch(url).await;
        let location = headers
            .get(header::LOCATION)
            .map(|l| l.to_str().unwrap().to_owned());
        (status, location, body)
    }

    /// Starts a connection and lets the emulator consent; returns the
    /// callback URL without following it.
    pub async fn callback_url(&self, app: &str, start: &str) -> url::Url {
        let (status, location, body) = self.hop(&format!("{app}{start}")).await;
        assert_eq!(status, 303, "{body}");
        let authorize = location.unwrap();
        let (status, location, body) = self.hop(&authorize).await;
        assert!(
            (300..400).contains(&status),
            "the emulator consents: {status} {body}"
        );
        url::Url::parse(&location.unwrap()).unwrap()
    }

    /// POSTs a form, without following the redirect: (status, Location, body).
    pub async fn post(&self, url: &str, form: &[(&str, &str)]) -> (u16, Option<String>, String) {
        let (status, headers, body) = self.send(self.client.post(url).form(form)).await;
        let location = headers
            .get(header::LOCATION)
            .map(|l| l.to_str().unwrap().to_owned());
        (status, location, body)
    }
}

/// The CSRF token in a page's disconnect forms.
pub fn csrf_of(page: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = page.find(marker).expect("the page has a disconnect form") + marker.len();
    page[start..].split('"').next().unwrap().to_owned()
}
