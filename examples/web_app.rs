//! Run: cargo run -p examples --example web_app
//!
//! How a server that acts for many users, with several providers, uses the
//! library: an axum app with Fitbit and Google Health side by side, one
//! `TokenManager` for all users, and tokens keyed by the app's own user id.
//!
//! - `GET /login?user=alice&provider=fitbit|google-health` begins an
//!   authorization, parks the `PendingAuthorization` (serialized as JSON) in
//!   a server-side session named by a random cookie, and redirects to the
//!   provider.
//! - `GET /callback` takes the parked authorization out of the session (it
//!   serves once), and completes it: state check, code exchange, save.
//! - `GET /me` calls `access_token` for each provider of the session's user
//!   and answers a small JSON (never a token).
//!
//! By default the example drives the app itself, as three users with their
//! own browsers (cookie-keeping HTTP clients), then checks what `/me` says,
//! that a forged callback and a denied consent are refused, and exits.
//!
//! To try it in a browser, keep it running with
//! `cargo run -p examples --example web_app -- --serve`
//! and open the printed address; the emulator consents for you. Ctrl-C stops it.
//!
//! Here `?user=` stands for the app's own sign-in, which a real app has
//! before it connects anyone to a provider.
#![allow(
    clippy::print_stdout,
    reason = "an example reports to the person running it on stdout"
)]

use std::collections::{BTreeSet, HashMap};
use std::error::Error as StdError;
use std::future::IntoFuture as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use auth_core::{
    AccountId, AuthorizeRequest, Callback, Error, PendingAuthorization, ProviderId, TokenKey,
    TokenManager,
};
use auth_emulator::{ClientConfig, Emulator, demo};
use auth_fitbit::{
    AppType, FitbitEndpoints, FitbitProvider, GoogleEndpoints, GoogleHealthProvider, Scope, scopes,
};
use axum::extract::{Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use examples::check;
use rand::Rng as _;
use reqwest::redirect::Policy;
use serde::Deserialize;
use serde_json::{Value, json};
use store_file::FileTokenStore;

/// The session cookie's name.
const SESSION_COOKIE: &str = "sid";
/// How long a login may take between `/login` and `/callback`.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// The app's state, shared by every request.
#[derive(Clone)]
struct App {
    manager: TokenManager,
    /// Server-side sessions by cookie value. A real app would keep them in
    /// its session store and expire them.
    sessions: Arc<Mutex<HashMap<String, Session>>>,
}

struct Session {
    user: AccountId,
    /// The login in progress, as JSON. It holds the state and the PKCE
    /// verifier, so it stays on the server (or in an encrypted cookie).
    pending: Option<String>,
}

impl App {
    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn router(app: App) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/login", get(login))
        .route("/callback", get(callback))
        .route("/me", get(me))
        .with_state(app)
}

async fn index() -> &'static str {
    "Try /login?user=alice&provider=fitbit, /login?user=alice&provider=google-health, then /me\n"
}

#[derive(Deserialize)]
struct LoginQuery {
    user: String,
    #[serde(default = "default_provider")]
    provider: String,
}

fn default_provider() -> String {
    auth_fitbit::FITBIT.to_owned()
}

fn error_page(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, Json(json!({ "error": message.to_string() }))).into_response()
}

/// Begins a login: a fresh session (a new id at every login, against session
/// fixation) holding the parked authorization, and a redirect to the provider.
async fn login(
    State(app): State<App>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Response {
    let (user, provider) = match (AccountId::new(&q.user), ProviderId::new(&q.provider)) {
        (Ok(user), Ok(provider)) => (user, provider),
        (Err(e), _) | (_, Err(e)) => return error_page(StatusCode::BAD_REQUEST, e),
    };
    // Tokens are stored under the app's own user id, for every provider.
    let request = AuthorizeRequest::new().account(user.clone());
    let pending = match app.manager.begin_authorization(&provider, request) {
        Ok(pending) => pending,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, e),
    };
    let parked = match serde_json::to_string(&pending) {
        Ok(json) => json,
        Err(e) => return error_page(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    let session_id = new_session_id();
    let mut sessions = app.sessions();
    if let Some(old) = session_id_of(&headers) {
        sessions.remove(&old);
    }
    sessions.insert(
        session_id.clone(),
        Session {
            user,
            pending: Some(parked),
        },
    );
    drop(sessions);
    // `Secure` belongs here too once the app is served over https.
    let cookie = format!("{SESSION_COOKIE}={session_id}; Path=/; HttpOnly; SameSite=Lax");
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, pending.authorize_url.to_string()),
            (header::SET_COOKIE, cookie),
        ],
    )
        .into_response()
}

/// Completes the login parked in the session, then sends the user to `/me`.
async fn callback(
    State(app): State<App>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    // Take the parked authorization out: it serves one callback only.
    let parked = session_id_of(&headers).and_then(|id| app.sessions().get_mut(&id)?.pending.take());
    let Some(parked) = parked else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "no login in progress in this session; start again at /login",
        );
    };
    let pending: PendingAuthorization = match serde_json::from_str(&parked) {
        Ok(pending) => pending,
        Err(e) => return error_page(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    if pending.created_at.elapsed().unwrap_or_default() > LOGIN_TIMEOUT {
        return error_page(
            StatusCode::BAD_REQUEST,
            "the login took too long; start again",
        );
    }
    let callback = match Callback::parse(query.as_deref().unwrap_or_default()) {
        Ok(callback) => callback,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, e),
    };
    match app
        .manager
        .complete_authorization(&pending, &callback)
        .await
    {
        Ok(_) => (StatusCode::SEE_OTHER, [(header::LOCATION, "/me")]).into_response(),
        // The user said no at the provider.
        Err(e @ Error::AuthorizationDenied { .. }) => error_page(StatusCode::FORBIDDEN, e),
        // A state that does not match: a forged or stale callback.
        Err(e @ Error::InvalidInput { .. }) => error_page(StatusCode::BAD_REQUEST, e),
        Err(e) => error_page(StatusCode::BAD_GATEWAY, e),
    }
}

/// The session user's connections, with a valid token behind each; the
/// token itself never leaves the server.
async fn me(State(app): State<App>, headers: HeaderMap) -> Response {
    let user = session_id_of(&headers).and_then(|id| Some(app.sessions().get(&id)?.user.clone()));
    let Some(user) = user else {
        return error_page(StatusCode::UNAUTHORIZED, "not signed in; start at /login");
    };
    let mut connections = Vec::new();
    for provider in app.manager.provider_ids() {
        let key = TokenKey::new(provider.clone(), user.clone());
        // What an app calls before each API request: cached while valid.
        let entry = match app.manager.access_token(&key).await {
            Ok(token) => {
                let set = token.token_set();
                let expires_in = token
                    .expires_at()
                    .and_then(|at| at.duration_since(SystemTime::now()).ok())
                    .map(|left| left.as_secs());
                let mut entry = json!({
                    "provider": provider,
                    "status": "connected",
                    "scopes": set.scopes(),
                    "expires_in_secs": expires_in,
                });
                if let Some(fitbit_user) = auth_fitbit::user_id(set) {
                    entry["fitbit_user_id"] = json!(fitbit_user);
                }
                entry
            }
            Err(e) if e.is_reauthorization_required() => json!({
                "provider": provider,
                "status": "login required",
                "login": login_link(&user, &provider),
            }),
            Err(e) => {
                json!({ "provider": provider, "status": "unavailable", "error": e.to_string() })
            }
        };
        connections.push(entry);
    }
    Json(json!({ "user": user, "connections": connections })).into_response()
}

fn login_link(user: &AccountId, provider: &ProviderId) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("user", user.as_str())
        .append_pair("provider", provider.as_str())
        .finish();
    format!("/login?{query}")
}

fn new_session_id() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn session_id_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(SESSION_COOKIE)?.strip_prefix('='))
        .map(str::to_owned)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn StdError>> {
    let serve = std::env::args().skip(1).any(|arg| arg == "--serve");

    // Bind first: the providers must know the app's exact callback URL.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let app_url = format!("http://{}", listener.local_addr()?);
    let redirect_uri = format!("{app_url}/callback");

    // Both providers' servers, with this app registered as a client of each.
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
        .await?;
    let fitbit = FitbitProvider::builder(demo::FITBIT_SERVER_CLIENT_ID, AppType::Server)
        .client_secret(demo::FITBIT_SERVER_CLIENT_SECRET)
        .redirect_uri(&redirect_uri)
        .scopes([Scope::Activity, Scope::Heartrate, Scope::Sleep])
        .endpoints(FitbitEndpoints::with_base(emulator.base_url())?)
        .build()?;
    let google = GoogleHealthProvider::builder(demo::GOOGLE_CLIENT_ID, demo::GOOGLE_CLIENT_SECRET)
        .redirect_uri(&redirect_uri)
        .scopes([
            scopes::ACTIVITY_AND_FITNESS_READONLY,
            scopes::SLEEP_READONLY,
        ])
        .endpoints(GoogleEndpoints::with_base(emulator.base_url())?)
        .build()?;
    let tokens = tempfile::tempdir()?;
    let manager = TokenManager::builder(Arc::new(FileTokenStore::open(tokens.path())?))
        .provider(Arc::new(fitbit))
        .provider(Arc::new(google))
        .build();
    let app = App {
        manager: manager.clone(),
        sessions: Arc::default(),
    };

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        axum::serve(listener, router(app))
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .into_future(),
    );

    if serve {
        println!("serving on {app_url}/ (the emulator consents as user 26FWFL)");
        println!("  {app_url}/login?user=alice&provider=fitbit");
        println!("  {app_url}/login?user=alice&provider=google-health");
        println!("  {app_url}/me");
        println!("Ctrl-C stops it.");
        tokio::signal::ctrl_c().await?;
    } else {
        drive(&app_url, &emulator).await?;
        println!("web_app: all checks passed");
    }
    let _ = stop.send(());
    server.await??;
    // Waits for refreshes and saves in progress, so none is cut off.
    manager.shutdown(Duration::from_secs(30)).await?;
    Ok(())
}

/// Plays three users, each in their own browser, then a forger and a user
/// who says no, and checks what the app answered.
async fn drive(app: &str, emulator: &Emulator) -> Result<(), Box<dyn StdError>> {
    // (the app's user, the Fitbit user who consents, also connects Google Health)
    let users = [
        ("alice", "A11CE1", true),
        ("bob", "B0B222", false),
        ("carol", "CA7013", true),
    ];
    let mut browsers = Vec::new();
    for (user, fitbit_user, with_google) in users {
        let browser = new_browser()?;
        emulator.set_next_user(fitbit_user);
        let (status, _) = sign_in(&browser, app, user, "fitbit").await?;
        check(
            status == StatusCode::OK,
            &format!("{user} connected Fitbit"),
        )?;
        if with_google {
            emulator.set_next_user(fitbit_user);
            let (status, _) = sign_in(&browser, app, user, "google-health").await?;
            check(
                status == StatusCode::OK,
                &format!("{user} connected Google Health"),
            )?;
        }
        browsers.push((user, fitbit_user, with_google, browser));
    }

    // Everyone asks /me at once; the tokens come from the manager's cache.
    let before = emulator.counters();
    let mut requests = tokio::task::JoinSet::new();
    for (user, fitbit_user, with_google, browser) in &browsers {
        let (browser, url) = (browser.clone(), format!("{app}/me"));
        let expected = (*user, *fitbit_user, *with_google);
        requests.spawn(async move {
            let answer = browser.get(url).send().await?;
            Ok::<_, reqwest::Error>((expected, answer.status(), answer.json::<Value>().await?))
        });
    }
    let mut fitbit_users = BTreeSet::new();
    while let Some(joined) = requests.join_next().await {
        let ((user, fitbit_user, with_google), status, me) = joined??;
        println!("  /me for {user}: {me}");
        let connection = |provider: &str| {
            me["connections"]
                .as_array()
                .and_then(|all| all.iter().find(|c| c["provider"] == provider))
                .cloned()
                .unwrap_or_default()
        };
        let fitbit = connection("fitbit");
        let google = connection("google-health");
        check(
            status == StatusCode::OK && me["user"] == user,
            &format!("/me answers for {user}"),
        )?;
        check(
            fitbit["status"] == "connected" && fitbit["fitbit_user_id"] == fitbit_user,
            &format!("{user} is Fitbit user {fitbit_user}"),
        )?;
        let google_status = if with_google {
            "connected"
        } else {
            "login required"
        };
        check(
            google["status"] == google_status,
            &format!("{user}'s Google Health is {google_status}"),
        )?;
        fitbit_users.insert(fitbit["fitbit_user_id"].to_string());
    }
    check(fitbit_users.len() == 3, "three distinct Fitbit users")?;
    let after = emulator.counters();
    check(
        after.fitbit_token_refresh == before.fitbit_token_refresh
            && after.google_token_refresh == before.google_token_refresh,
        "/me used cached tokens: no token request",
    )?;

    // No session: no answer.
    let stranger = new_browser()?.get(format!("{app}/me")).send().await?;
    check(
        stranger.status() == StatusCode::UNAUTHORIZED,
        "/me without a session is refused",
    )?;

    // A forged callback (another state than the one parked) is refused
    // before any code reaches the provider.
    let forger = new_browser()?;
    forger
        .get(format!("{app}/login?user=mallory&provider=fitbit"))
        .send()
        .await?;
    let exchanges = emulator.counters().fitbit_token_authorization_code;
    let forged = forger
        .get(format!("{app}/callback?code=guessed&state=forged"))
        .send()
        .await?;
    println!("  forged callback: {}", forged.status());
    check(
        forged.status() == StatusCode::BAD_REQUEST
            && emulator.counters().fitbit_token_authorization_code == exchanges,
        "a callback with a forged state is refused without a code exchange",
    )?;

    // A user who clicks "deny" at the provider.
    emulator.deny_next_authorization();
    let (status, answer) = sign_in(&new_browser()?, app, "dave", "google-health").await?;
    check(
        status == StatusCode::FORBIDDEN && answer["error"].to_string().contains("access_denied"),
        "a denied consent ends in 403 access_denied",
    )?;
    Ok(())
}

/// A browser: keeps cookies, and lets us see each redirect.
fn new_browser() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(Policy::none())
        .build()
}

/// Logs `user` in with `provider` as a browser would, hop by hop, and
/// returns the last answer. Prints where each hop went, but never a query:
/// codes and states travel there.
async fn sign_in(
    browser: &reqwest::Client,
    app: &str,
    user: &str,
    provider: &str,
) -> Result<(StatusCode, Value), Box<dyn StdError>> {
    let mut url = url::Url::parse(&format!("{app}/login?user={user}&provider={provider}"))?;
    let app_origin = url.origin();
    let mut trail = vec![format!("{user}: app {}", url.path())];
    for _ in 0..5 {
        let answer = browser.get(url.as_str()).send().await?;
        let status = answer.status();
        if !status.is_redirection() {
            trail.push(status.as_u16().to_string());
            println!("  {}", trail.join(" -> "));
            return Ok((status, answer.json().await?));
        }
        let location = answer
            .headers()
            .get(header::LOCATION)
            .ok_or("a redirect without Location")?
            .to_str()?;
        url = url.join(location)?;
        let side = if url.origin() == app_origin {
            "app"
        } else {
            "provider"
        };
        trail.push(format!("{} -> {side} {}", status.as_u16(), url.path()));
    }
    Err("too many redirects".into())
}
