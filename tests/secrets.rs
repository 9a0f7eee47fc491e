//! No secret in `Debug`, `Display` or TRACE-level logs, across every crate.
//!
//! This test builds every public type that can hold a secret and drives every
//! failure path it can reach against the emulator, with a tracing subscriber
//! (and the `log` bridge, which catches reqwest and hyper) capturing
//! everything at TRACE. Then it looks for the secrets in all of it.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use auth_core::secrecy::ExposeSecret;
use auth_core::{
    AuthorizeRequest, Callback, Error, Expect, PendingAuthorization, Record, TokenKey,
    TokenProvider, TokenSet,
};
use auth_emulator::{Endpoint, Fault, demo};
use auth_fitbit::{FitbitProvider, GoogleHealthProvider};
use auth_oauth2::{Endpoints, OAuth2Provider};
use support::*;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Seen {
    texts: Vec<(String, String)>,
    secrets: Vec<String>,
}

impl Seen {
    fn show(&mut self, label: &str, value: &(impl std::fmt::Debug + ?Sized)) {
        self.texts.push((label.to_owned(), format!("{value:?}")));
    }
    fn error(&mut self, label: &str, err: &Error) {
        self.texts
            .push((label.to_owned(), format!("{err} | {err:?}")));
    }
    fn secret(&mut self, s: impl Into<String>) {
        let s = s.into();
        if !s.is_empty() {
            self.secrets.push(s);
        }
    }
    fn token(&mut self, t: &TokenSet) {
        self.secret(t.access_token().expose_secret());
        if let Some(r) = t.refresh_token() {
            self.secret(r.expose_secret());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_debug_display_or_trace_logs() {
    let capture = Capture::default();
    let writer = capture.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .try_init()
        .expect("the only subscriber in this test binary");

    let mut seen = Seen {
        texts: Vec::new(),
        secrets: Vec::new(),
    };
    for s in [
        demo::FITBIT_SERVER_CLIENT_SECRET,
        demo::GOOGLE_CLIENT_SECRET,
    ] {
        seen.secret(s);
    }

    let w = world(
        StoreKind::File,
        Options {
            timeout: Duration::from_millis(500),
            ..Options::default()
        },
    )
    .await;
    seen.show("FitbitProvider", w.provider.as_ref());
    seen.show("FileTokenStore", w.store.as_ref());
    seen.show("TokenManager", &w.manager);
    seen.show(
        "FitbitProviderBuilder",
        &FitbitProvider::builder("id").client_secret(demo::FITBIT_SERVER_CLIENT_SECRET),
    );
    let google = GoogleHealthProvider::builder(demo::GOOGLE_CLIENT_ID, demo::GOOGLE_CLIENT_SECRET)
        .redirect_uri(demo::REDIRECT_URI)
        .base_url(w.emulator.base_url())
        .unwrap();
    seen.show("GoogleHealthProviderBuilder", &google);
    let google = google.build().unwrap();
    seen.show("GoogleHealthProvider", &google);
    // The hooks the Fitbit provider carries, and the configuration errors
    // that name a secret's role: neither shows the secret.
    seen.show("FitbitHooks", w.provider.hooks());
    let public_with_secret = FitbitProvider::builder(demo::FITBIT_PUBLIC_CLIENT_ID)
        .client_auth(auth_fitbit::AppType::Client.client_auth())
        .client_secret(demo::FITBIT_SERVER_CLIENT_SECRET)
        .build()
        .unwrap_err();
    seen.error("a public Fitbit app given a secret", &public_with_secret);
    let refused_lifetime = FitbitProvider::builder(demo::FITBIT_SERVER_CLIENT_ID)
        .client_secret(demo::FITBIT_SERVER_CLIENT_SECRET)
        .expires_in(7200)
        .build()
        .unwrap_err();
    seen.error("an expires_in Fitbit does not take", &refused_lifetime);
    let oauth2 = OAuth2Provider::builder("generic".parse().unwrap(), "client")
        .client_secret("generic-secret-5d4c3b2a19f8e7d6")
        .endpoints(Endpoints::new(
            w.emulator.fitbit_endpoints().authorize,
            w.emulator.fitbit_endpoints().token,
        ));
    seen.secret("generic-secret-5d4c3b2a19f8e7d6");
    seen.show("OAuth2ProviderBuilder", &oauth2);
    seen.show("OAuth2Provider", &oauth2.build().unwrap());

    // A login: pending authorization, callback, tokens.
    let pending = w
        .manager
        .begin_authorization(&"fitbit".parse().unwrap(), AuthorizeRequest::new())
        .unwrap();
    seen.secret(pending.state().expose_secret());
    seen.secret(pending.pkce_verifier().unwrap().expose_secret());
    seen.show("PendingAuthorization", &pending);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let location = client
        .get(pending.authorize_url.as_str())
        .send()
        .await
        .unwrap()
        .headers()["location"]
        .to_str()
        .unwrap()
        .to_owned();
    let callback = Callback::parse(&location).unwrap();
    seen.secret(callback.code().unwrap().expose_secret());
    seen.show("Callback", &callback);
    let forged = Callback::parse(&location.replace("state=", "state=x")).unwrap();
    seen.error(
        "state mismatch",
        &w.manager
            .complete_authorization(&pending, &forged)
            .await
            .unwrap_err(),
    );
    let (key, token) = w
        .manager
        .complete_authorization(&pending, &callback)
        .await
        .unwrap();
    seen.token(token.token_set());
    seen.show("AccessToken", &token);
    seen.show("TokenSet", token.token_set().as_ref());
    let replayed = w
        .manager
        .complete_authorization(&pending, &callback)
        .await
        .unwrap_err();
    seen.error("code replay", &replayed);

    // Refresh, introspection, events.
    let refreshed = w.manager.refresh(&key).await.unwrap();
    seen.token(refreshed.token_set());
    seen.show("Introspection", &w.manager.introspect(&key).await.unwrap());
    let old = token.token_set().as_ref().clone();

    // Every fault class on the token endpoint.
    for (label, fault) in [
        ("500", Fault::Status(500)),
        ("html", Fault::Html { status: 502 }),
        ("slow", Fault::Delay(Duration::from_secs(2))),
        ("dropped", Fault::DropAfterProcessing),
        (
            "429",
            Fault::RateLimited {
                retry_after: Duration::from_secs(3600),
            },
        ),
    ] {
        w.emulator.inject(Endpoint::FitbitToken, fault, 1);
        let current = w
            .store
            .load(&key)
            .await
            .unwrap()
            .unwrap()
            .token
            .expect("a token");
        match w.provider.refresh(&current).await {
            Ok(fresh) => seen.token(&fresh),
            Err(err) => seen.error(label, &err),
        }
        w.emulator.clear_faults();
    }
    // invalid_grant: Fitbit's message quotes the refresh token it refused.
    let err = w.provider.refresh(&old).await.unwrap_err();
    assert!(err.is_reauthorization_required(), "{err}");
    seen.error("invalid_grant", &err);
    // invalid_client: a wrong secret.
    let wrong = FitbitProvider::builder(demo::FITBIT_SERVER_CLIENT_ID)
        .client_secret("wrong-secret-0f1e2d3c4b5a6978")
        .base_url(w.emulator.base_url())
        .unwrap()
        .build()
        .unwrap();
    seen.secret("wrong-secret-0f1e2d3c4b5a6978");
    let current = w
        .store
        .load(&key)
        .await
        .unwrap()
        .unwrap()
        .token
        .expect("a token");
    seen.token(&current);
    seen.error(
        "invalid_client",
        &wrong.refresh(&current).await.unwrap_err(),
    );
    // Retired.
    w.emulator.set_retired(true);
    seen.error("retired", &w.provider.refresh(&current).await.unwrap_err());
    seen.error(
        "retired introspect",
        &w.provider.introspect(&current).await.unwrap_err(),
    );
    w.emulator.set_retired(false);
    // Google: tokeninfo puts the token in a request; its errors and logs must not.
    let gtokens = w.emulator.seed_google_grant(
        demo::GOOGLE_CLIENT_ID,
        "g-user",
        &[auth_fitbit::scopes::SLEEP_READONLY],
    );
    let gset = token_from(
        &auth_emulator::IssuedTokens { ..gtokens.clone() },
        SystemTime::now(),
    );
    seen.token(&gset);
    seen.show(
        "google introspect",
        &google.introspect(&gset).await.unwrap(),
    );
    google.revoke(&gset).await.unwrap();
    seen.error(
        "google refresh after revoke",
        &google.refresh(&gset).await.unwrap_err(),
    );
    // Store errors name files, not tokens.
    let missing = TokenKey::parse("fitbit", "nobody").unwrap();
    seen.error(
        "no token",
        &w.manager.access_token(&missing).await.unwrap_err(),
    );
    seen.error("conflict", &{
        let lease = w.store.lock(&key, Duration::from_secs(5)).await.unwrap();
        lease
            .save_and_release(&current, Expect::Absent, Record::Clear)
            .await
            .unwrap_err()
    });

    // Revoke at the end.
    w.manager.revoke(&key).await.unwrap();
    let _unused: Option<PendingAuthorization> = None;

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("TRACE") || logs.contains("DEBUG"),
        "the capture saw nothing; the test would prove nothing"
    );
    seen.texts.push(("trace logs".into(), logs));
    let mut leaks = Vec::new();
    for (label, text) in &seen.texts {
        for secret in &seen.secrets {
            if text.contains(secret.as_str()) {
                leaks.push(format!("{label} shows a secret ({} chars)", secret.len()));
            }
        }
    }
    assert!(leaks.is_empty(), "{leaks:#?}");
    assert!(
        seen.secrets.len() >= 12,
        "too few secrets collected: {}",
        seen.secrets.len()
    );
}
