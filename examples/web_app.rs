//! Run: cargo run -p examples --example web_app
//!
//! A web app that connects its users' accounts at several providers, with
//! the connect routes of `auth-axum`: Fitbit, Google Health, and a
//! standards OAuth 2.0 server (here the emulator's Google server behind a
//! plain `OAuth2Provider`), one `TokenManager` for all users, tokens keyed
//! by the app's own user id.
//!
//! The app mounts `Connect::router()` at `/accounts`:
//! - `GET /accounts` is the page: a row per provider, Connect / Reconnect /
//!   Disconnect buttons, and the move from Fitbit to Google Health;
//! - `GET /accounts/connect/{provider}` and `GET /accounts/callback` run
//!   the authorization, its pending half kept in a server-side session;
//! - `POST /accounts/disconnect/{provider}` revokes and deletes;
//! - `GET /accounts/connections` is the page's data as JSON, never a token.
//!
//! By default the example drives the app itself, as three users each with
//! their own browser (cookie-keeping HTTP clients), checks what the routes
//! answer, including a forged callback, a denied consent and a refused
//! move, and exits.
//!
//! To try the page in a browser, keep it running with
//! `cargo run -p examples --example web_app -- --serve`
//! and open the address it prints; the emulator consents for you. Ctrl-C
//! stops it.
//!
//! `/signin?user=NAME` stands for the app's own sign-in, which a real app
//! has before it connects anyone to a provider: it sets a cookie the
//! `current_user` closure reads.
#![allow(
    clippy::print_stdout,
    reason = "an example reports to the person running it on stdout"
)]

use std::collections::BTreeSet;
use std::error::Error as StdError;
use std::future::IntoFuture as _;
use std::sync::Arc;
use std::time::Duration;

use auth_axum::{Connect, FitbitMigration};
use auth_core::{AccountId, ProviderId, TokenKey, TokenManager};
use auth_emulator::{ClientConfig, Emulator, demo};
use auth_fitbit::{FitbitProvider, GoogleHealthProvider, Scope, scopes};
use auth_oauth2::{Endpoints, OAuth2Provider};
use axum::Router;
use axum::extract::Query;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use examples::check;
use reqwest::redirect::Policy;
use serde::Deserialize;
use serde_json::Value;
use store_file::FileTokenStore;

/// The app's own sign-in cookie (a stand-in for a real sign-in).
const USER_COOKIE: &str = "example_user";
/// The standards OAuth 2.0 provider's id and client.
const GENERIC: &str = "example-oauth2";
const GENERIC_CLIENT_ID: &str = "example-oauth2-client";
const GENERIC_CLIENT_SECRET: &str = "example-oauth2-secret";

/// Who is signed in, as the app's own sign-in says: here its cookie.
fn signed_in_user(parts: &Parts) -> Option<AccountId> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(USER_COOKIE)?.strip_prefix('='))
        .and_then(|name| AccountId::new(name).ok())
}

#[derive(Deserialize)]
struct SignIn {
    user: String,
}

/// `GET /signin?user=NAME`: the app's sign-in, then its accounts page.
async fn sign_in(Query(q): Query<SignIn>) -> Response {
    if AccountId::new(&q.user).is_err() {
        return (
            StatusCode::BAD_REQUEST,
            "pick a user name of letters and digits",
        )
            .into_response();
    }
    let cookie = format!("{USER_COOKIE}={}; Path=/; HttpOnly; SameSite=Lax", q.user);
    ([(header::SET_COOKIE, cookie)], Redirect::to("/accounts")).into_response()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn StdError>> {
    let serve = std::env::args().skip(1).any(|arg| arg == "--serve");

    // Bind first: the providers must know the app's exact callback URL.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let app_url = format!("http://{}", listener.local_addr()?);
    let redirect_uri = format!("{app_url}/accounts/callback");

    // The providers' servers, with this app registered as a client of each.
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
        .google_client(
            ClientConfig::server(GENERIC_CLIENT_ID, GENERIC_CLIENT_SECRET)
                .redirect_uri(&redirect_uri),
        )
        .start()
        .await?;
    let fitbit = FitbitProvider::builder(demo::FITBIT_SERVER_CLIENT_ID)
        .client_secret(demo::FITBIT_SERVER_CLIENT_SECRET)
        .redirect_uri(&redirect_uri)
        .default_scopes([Scope::Activity, Scope::Heartrate, Scope::Sleep])
        .base_url(emulator.base_url())?
        .build()?;
    let google = GoogleHealthProvider::builder(demo::GOOGLE_CLIENT_ID, demo::GOOGLE_CLIENT_SECRET)
        .redirect_uri(&redirect_uri)
        .default_scopes([
            scopes::ACTIVITY_AND_FITNESS_READONLY,
            scopes::SLEEP_READONLY,
        ])
        .base_url(emulator.base_url())?
        .build()?;
    let base = emulator.base_url();
    let generic = OAuth2Provider::builder(ProviderId::new(GENERIC)?, GENERIC_CLIENT_ID)
        .client_secret(GENERIC_CLIENT_SECRET)
        .endpoints(
            Endpoints::new(base.join("o/oauth2/v2/auth")?, base.join("token")?)
                .with_revocation(base.join("revoke")?),
        )
        .redirect_uri(&redirect_uri)
        .default_scopes(["openid", "https://www.googleapis.com/auth/userinfo.email"])
        .authorize_param("access_type", "offline")
        .build()?;
    let tokens = tempfile::tempdir()?;
    let manager = TokenManager::builder(Arc::new(FileTokenStore::open(tokens.path())?))
        .provider(Arc::new(fitbit))
        .provider(Arc::new(google.clone()))
        .provider(Arc::new(generic))
        .build();

    // The connect routes, mounted at /accounts.
    let connect = Connect::builder(manager.clone(), &redirect_uri, signed_in_user)?
        .display_name(&ProviderId::new(GENERIC)?, "Example OAuth 2.0 server")
        .fitbit_migration(FitbitMigration::new(
            manager.clone(),
            ProviderId::new(auth_fitbit::FITBIT)?,
            google,
        ))
        .build();
    let app = Router::new()
        .route("/", get(|| async { Redirect::to("/accounts") }))
        .route("/signin", get(sign_in))
        .nest("/accounts", connect.router());

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .into_future(),
    );

    if serve {
        println!("Open {app_url}/signin?user=alice in a browser.");
        println!("  (the emulator consents at once, as Fitbit user 26FWFL unless told otherwise)");
        println!("  the page:  {app_url}/accounts");
        println!("  the JSON:  {app_url}/accounts/connections");
        println!("Ctrl-C stops it.");
        tokio::signal::ctrl_c().await?;
    } else {
        drive(&app_url, &emulator, &manager).await?;
        println!("web_app: all checks passed");
    }
    let _ = stop.send(());
    server.await??;
    // Waits for refreshes and saves in progress, so none is cut off.
    manager.shutdown(Duration::from_secs(30)).await?;
    Ok(())
}

/// Plays three users, each in their own browser, then a forger, a user who
/// says no, and a move to Google Health, and checks what the app answered.
async fn drive(
    app: &str,
    emulator: &Emulator,
    manager: &TokenManager,
) -> Result<(), Box<dyn StdError>> {
    // (the app's user, the Fitbit user who consents, the second provider)
    let users = [
        ("alice", "A11CE1", "google-health"),
        ("bob", "B0B222", GENERIC),
        ("carol", "CA7013", "google-health"),
    ];
    let mut browsers = Vec::new();
    for (user, fitbit_user, second) in users {
        let browser = Browser::new()?;
        browser.get(&format!("{app}/signin?user={user}")).await?;
        for provider in ["fitbit", second] {
            emulator.set_next_user(fitbit_user);
            let page = browser
                .get(&format!("{app}/accounts/connect/{provider}"))
                .await?;
            check(
                page.status == StatusCode::OK && page.body.contains("role=\"status\">Connected"),
                &format!("{user} connected {provider} and is back on the page"),
            )?;
        }
        browsers.push((user, fitbit_user, second, browser));
    }

    // Everyone asks for their connections; the tokens come from the cache.
    let before = emulator.counters();
    let mut fitbit_users = BTreeSet::new();
    for (user, fitbit_user, second, browser) in &browsers {
        let page = browser.get(&format!("{app}/accounts/connections")).await?;
        let json: Value = serde_json::from_str(&page.body)?;
        let state = |provider: &str| {
            json["connections"]
                .as_array()
                .and_then(|rows| rows.iter().find(|r| r["provider"] == provider))
                .map(|row| row["state"].as_str().unwrap_or_default().to_owned())
                .unwrap_or_default()
        };
        println!(
            "  {user}: fitbit {}, google-health {}, {GENERIC} {}",
            state("fitbit"),
            state("google-health"),
            state(GENERIC)
        );
        check(
            json["user"] == *user && state("fitbit") == "connected" && state(second) == "connected",
            &format!("/accounts/connections shows {user}'s two connections"),
        )?;
        let stored = manager
            .stored(&TokenKey::parse("fitbit", user)?)
            .await?
            .ok_or("no Fitbit token stored")?;
        check(
            auth_fitbit::user_id(&stored) == Some(*fitbit_user),
            &format!("{user} is Fitbit user {fitbit_user}"),
        )?;
        fitbit_users.insert(fitbit_user.to_owned());
    }
    check(fitbit_users.len() == 3, "three distinct Fitbit users")?;
    let after = emulator.counters();
    check(
        after.fitbit_token_refresh == before.fitbit_token_refresh
            && after.google_token_refresh == before.google_token_refresh,
        "the connections came from cached tokens: no token request",
    )?;

    // A forged callback (a state nobody issued) gets a page, and no code
    // reaches the provider.
    let (_, _, _, alice) = &browsers[0];
    let exchanges = emulator.counters().fitbit_token_authorization_code;
    let forged = alice
        .get(&format!(
            "{app}/accounts/callback?code=guessed&state=forged"
        ))
        .await?;
    check(
        forged.status == StatusCode::BAD_REQUEST
            && forged.body.contains("cannot be finished here")
            && emulator.counters().fitbit_token_authorization_code == exchanges,
        "a forged callback gets a page and no code exchange",
    )?;

    // A user who clicks "deny" at the provider.
    let dave = Browser::new()?;
    dave.get(&format!("{app}/signin?user=dave")).await?;
    emulator.deny_next_authorization();
    let denied = dave
        .get(&format!("{app}/accounts/connect/google-health"))
        .await?;
    check(
        denied.status == StatusCode::FORBIDDEN && denied.body.contains("You chose not to"),
        "a denied consent gets a page that says so",
    )?;

    // Bob disconnects the OAuth 2.0 server with the page's button (the
    // form carries the page's CSRF token).
    let (_, _, _, bob) = &browsers[1];
    let page = bob.get(&format!("{app}/accounts")).await?;
    let csrf = page
        .body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .ok_or("no disconnect form")?
        .to_owned();
    let answer = bob
        .client
        .post(format!("{app}/accounts/disconnect/{GENERIC}"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await?;
    check(
        answer.status() == StatusCode::SEE_OTHER
            && manager
                .stored(&TokenKey::parse(GENERIC, "bob")?)
                .await?
                .is_none(),
        "bob disconnected the OAuth 2.0 server: revoked there, deleted here",
    )?;

    // Bob moves from Fitbit to Google Health. Picking another Google
    // account (another Fitbit user's) is refused; his own goes through.
    check(
        page.body.contains("Move to Google Health"),
        "the page offers bob the move to Google Health",
    )?;
    emulator.set_next_user("0THER1");
    let refused = bob.get(&format!("{app}/accounts/move/fitbit")).await?;
    check(
        refused.status == StatusCode::FORBIDDEN && refused.body.contains("was not moved"),
        "a move with another person's Google account is refused",
    )?;
    emulator.set_next_user("B0B222");
    let moved = bob.get(&format!("{app}/accounts/move/fitbit")).await?;
    check(
        moved.body.contains("Moved to Google Health")
            && manager
                .stored(&TokenKey::parse("google-health", "bob")?)
                .await?
                .is_some(),
        "bob moved to Google Health",
    )?;
    Ok(())
}

/// A browser without script: keeps cookies, follows redirects hop by hop.
struct Browser {
    client: reqwest::Client,
}

struct Page {
    status: StatusCode,
    body: String,
}

impl Browser {
    fn new() -> reqwest::Result<Self> {
        Ok(Self {
            client: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(Policy::none())
                .build()?,
        })
    }

    /// Follows redirects to the last page. Prints no query: codes and
    /// states travel there.
    async fn get(&self, url: &str) -> Result<Page, Box<dyn StdError>> {
        let mut url = url::Url::parse(url)?;
        for _ in 0..8 {
            let answer = self.client.get(url.as_str()).send().await?;
            let status = answer.status();
            if !status.is_redirection() {
                return Ok(Page {
                    status,
                    body: answer.text().await?,
                });
            }
            let location = answer
                .headers()
                .get(header::LOCATION)
                .ok_or("a redirect without Location")?
                .to_str()?;
            url = url.join(location)?;
        }
        Err("too many redirects".into())
    }
}
