//! The connect routes without a browser: the flows, the checks of the
//! callback, CSRF, the session, and that no secret leaves the server.

mod support;

use std::time::{Duration, SystemTime};

use auth_core::{Expect, Record, TokenSet};

use support::{Browser, FITBIT, GOOGLE, csrf_of};

#[tokio::test]
async fn disconnect_needs_the_pages_csrf_token() {
    let app = support::start().await;
    let browser = Browser::new();
    browser.sign_in(&app.url, "bob").await;
    browser
        .get(&format!("{}/accounts/connect/{FITBIT}", app.url))
        .await;
    let before = app.secrets(FITBIT, "bob").await.expect("connected");
    let action = format!("{}/accounts/disconnect/{FITBIT}", app.url);

    // A cross-site form (no token, or a made-up one) is refused.
    for form in [&[][..], &[("csrf", "guessed")][..]] {
        let (status, _, body) = browser.post(&action, form).await;
        assert_eq!(status, 403, "{body}");
        assert!(body.contains("not sent from your accounts page"), "{body}");
    }
    assert_eq!(
        app.secrets(FITBIT, "bob").await,
        Some(before),
        "the token is untouched"
    );
    assert_eq!(app.emulator.counters().fitbit_revoke, 0);

    // Another browser's token does not work in this one.
    let other = Browser::new();
    other.sign_in(&app.url, "bob").await;
    let other_csrf = csrf_of(&other.get(&format!("{}/accounts", app.url)).await.body);
    let (status, _, _) = browser.post(&action, &[("csrf", &other_csrf)]).await;
    assert_eq!(status, 403);

    // The page's own form works: revoked there, deleted here.
    let page = browser.get(&format!("{}/accounts", app.url)).await;
    let (status, location, _) = browser
        .post(&action, &[("csrf", &csrf_of(&page.body))])
        .await;
    assert_eq!((status, location.as_deref()), (303, Some("/accounts")));
    assert_eq!(app.secrets(FITBIT, "bob").await, None);
    assert_eq!(app.emulator.counters().fitbit_revoke, 1);
    let page = browser.get(&format!("{}/accounts", app.url)).await;
    assert!(page.body.contains("Disconnected Fitbit."), "{}", page.body);
    assert!(page.body.contains("Connect Fitbit"));
}

#[tokio::test]
async fn the_pending_authorization_stays_on_the_server() {
    let app = support::start().await;
    let browser = Browser::new();
    browser.sign_in(&app.url, "carol").await;
    let (status, location, _) = browser
        .hop(&format!("{}/accounts/connect/{FITBIT}", app.url))
        .await;
    assert_eq!(status, 303);
    let authorize = url::Url::parse(&location.unwrap()).unwrap();
    let state = authorize
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    // The browser holds only a random id: 128 bits, base64url, no state.
    let cookie = browser.session_cookie(&app.url).expect("a session cookie");
    assert_eq!(cookie.len(), 22, "{cookie}");
    assert!(!cookie.contains(&state));
    let seen = browser.seen.all();
    let set_cookie: Vec<&str> = seen
        .lines()
        .filter(|l| l.starts_with("set-cookie: "))
        .collect();
    assert!(!set_cookie.is_empty());
    assert!(set_cookie.iter().all(|l| !l.contains(&state)));
    assert!(
        seen.to_ascii_lowercase().contains("httponly") && seen.contains("SameSite=Lax"),
        "{seen}"
    );
    // Private answers: never cached, never passed on as a referrer.
    assert!(
        seen.contains("cache-control: no-store") && seen.contains("referrer-policy: no-referrer"),
        "{seen}"
    );

    // A browser that changes its cookie finds nothing: the callback is
    // refused before any code is exchanged.
    let (status, callback, _) = browser.hop(authorize.as_str()).await;
    assert!((300..400).contains(&status));
    let callback = callback.unwrap();
    let mut altered = cookie.clone().into_bytes();
    altered[5] = if altered[5] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();
    let forger = Browser::new();
    forger.sign_in(&app.url, "carol").await;
    let answer = forger
        .send(forger.client.get(&callback).header(
            "cookie",
            format!("token_keeper_connect={altered}; test_user=carol"),
        ))
        .await;
    assert_eq!(answer.0, 400, "{}", answer.2);
    assert!(answer.2.contains("cannot be finished here"), "{}", answer.2);
    assert_eq!(app.emulator.counters().fitbit_token_authorization_code, 0);

    // The real browser still finishes.
    let page = browser.get(&callback).await;
    assert!(page.body.contains("Connected Fitbit."), "{}", page.body);
}

#[tokio::test]
async fn the_session_id_changes_at_the_callback() {
    let app = support::start().await;
    let browser = Browser::new();
    browser.sign_in(&app.url, "dave").await;
    let callback = browser
        .callback_url(&app.url, &format!("/accounts/connect/{FITBIT}"))
        .await;
    let before = browser.session_cookie(&app.url).unwrap();
    let (status, location, _) = browser.hop(callback.as_str()).await;
    assert_eq!((status, location.as_deref()), (303, Some("/accounts")));
    let after = browser.session_cookie(&app.url).unwrap();
    assert_ne!(before, after, "a new session id after the callback");
    // The old id is gone from the store: presenting it finds no session.
    let old = Browser::new();
    let answer = old
        .send(old.client.get(format!("{}/accounts", app.url)).header(
            "cookie",
            format!("token_keeper_connect={before}; test_user=dave"),
        ))
        .await;
    let page = browser.get(&format!("{}/accounts", app.url)).await;
    assert!(
        !answer.2.contains(&csrf_of(&page.body)),
        "the old session is not the new one"
    );
}

#[tokio::test]
async fn replays_other_browsers_late_and_denied_callbacks_get_pages_and_change_nothing() {
    let app = support::start_with(support::Options::default()).await;
    let browser = Browser::new();
    browser.sign_in(&app.url, "erin").await;
    browser
        .get(&format!("{}/accounts/connect/{FITBIT}", app.url))
        .await;
    let stored = app.secrets(FITBIT, "erin").await.expect("connected");

    // A replay of a finished callback.
    let callback = browser
        .callback_url(&app.url, &format!("/accounts/connect/{FITBIT}"))
        .await;
    let first = browser.get(callback.as_str()).await;
    assert!(first.body.contains("Connected Fitbit."));
    let stored = app
        .secrets(FITBIT, "erin")
        .await
        .filter(|s| *s != stored)
        .expect("a new grant");
    let exchanges = app.emulator.counters().fitbit_token_authorization_code;
    let replay = browser.get(callback.as_str()).await;
    assert_eq!(replay.status, 400);
    assert!(
        replay.body.contains("cannot be finished here"),
        "{}",
        replay.body
    );

    // The same answer in another browser (same app user even).
    let callback = browser
        .callback_url(&app.url, &format!("/accounts/connect/{FITBIT}"))
        .await;
    let other = Browser::new();
    other.sign_in(&app.url, "erin").await;
    let page = other.get(callback.as_str()).await;
    assert_eq!(page.status, 400);
    assert!(
        page.body
            .contains("<h1>This sign-in cannot be finished here</h1>")
    );

    // A forged callback: a state nobody issued.
    let forged = browser
        .get(&format!(
            "{}/accounts/callback?code=guessed&state=forged",
            app.url
        ))
        .await;
    assert_eq!(forged.status, 400);

    // Another user signed in, in the browser that started it.
    let callback = browser
        .callback_url(&app.url, &format!("/accounts/connect/{FITBIT}"))
        .await;
    browser.sign_in(&app.url, "mallory").await;
    let page = browser.get(callback.as_str()).await;
    assert_eq!(page.status, 403);
    assert!(
        page.body.contains("signed in as someone else"),
        "{}",
        page.body
    );
    browser.sign_in(&app.url, "erin").await;

    // A denied consent.
    app.emulator.deny_next_authorization();
    let page = browser
        .get(&format!("{}/accounts/connect/{FITBIT}", app.url))
        .await;
    assert_eq!(page.status, 403);
    assert!(
        page.body
            .contains("You chose not to give this app access at Fitbit"),
        "{}",
        page.body
    );

    assert_eq!(
        app.emulator.counters().fitbit_token_authorization_code,
        exchanges
    );
    assert_eq!(
        app.secrets(FITBIT, "erin").await,
        Some(stored),
        "the stored token is untouched"
    );
}

#[tokio::test]
async fn a_callback_naming_another_issuer_is_refused() {
    let app = support::start().await;
    let browser = Browser::new();
    browser.sign_in(&app.url, "kim").await;
    let callback = browser
        .callback_url(&app.url, &format!("/accounts/connect/{GOOGLE}"))
        .await;
    assert!(
        callback.query_pairs().any(|(k, _)| k == "iss"),
        "the emulator sends iss"
    );
    let mut mixed_up = callback.clone();
    let pairs: Vec<(String, String)> = callback
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "iss" {
                "https://evil.example".into()
            } else {
                v
            };
            (k.into_owned(), v.into_owned())
        })
        .collect();
    mixed_up.query_pairs_mut().clear().extend_pairs(pairs);
    let page = browser.get(mixed_up.as_str()).await;
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(
        page.body.contains("The answer came from the wrong server"),
        "{}",
        page.body
    );
    assert_eq!(app.emulator.counters().google_token_authorization_code, 0);
    assert_eq!(app.secrets(GOOGLE, "kim").await, None);
}

#[tokio::test]
async fn a_late_callback_is_refused() {
    let app = support::start_with(support::Options {
        pending_ttl: Some(Duration::ZERO),
        ..Default::default()
    })
    .await;
    let browser = Browser::new();
    browser.sign_in(&app.url, "frank").await;
    let page = browser
        .get(&format!("{}/accounts/connect/{FITBIT}", app.url))
        .await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("That took too long"), "{}", page.body);
    assert_eq!(app.emulator.counters().fitbit_token_authorization_code, 0);
    assert_eq!(app.secrets(FITBIT, "frank").await, None);
}

#[tokio::test]
async fn only_allowed_return_paths_and_scopes() {
    let app = support::start().await;
    let browser = Browser::new();
    browser.sign_in(&app.url, "gina").await;
    let (status, _, body) = browser
        .hop(&format!(
            "{}/accounts/connect/{FITBIT}?return_to=https://evil.example/",
            app.url
        ))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("not allowed"));
    let (status, _, body) = browser
        .hop(&format!(
            "{}/accounts/connect/{FITBIT}?scope=location",
            app.url
        ))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("location"));

    // An allowed extra scope, asked for on top of what was granted, and an
    // allowed return path.
    browser
        .get(&format!("{}/accounts/connect/{FITBIT}", app.url))
        .await;
    let callback = browser
        .callback_url(
            &app.url,
            &format!("/accounts/connect/{FITBIT}?scope=weight&return_to=%2Fsignin%3Fuser%3Dback"),
        )
        .await;
    let (status, location, _) = browser.hop(callback.as_str()).await;
    assert_eq!(
        (status, location.as_deref()),
        (303, Some("/signin?user=back"))
    );
    let stored = app
        .manager
        .stored(&app.key(FITBIT, "gina"))
        .await
        .unwrap()
        .unwrap();
    for scope in ["activity", "sleep", "weight"] {
        assert!(stored.scopes().contains(scope), "{:?}", stored.scopes());
    }
}

#[tokio::test]
async fn two_app_instances_share_one_session_store() {
    let app = support::start().await;
    let second = app.second_instance().await;
    let browser = Browser::new();
    browser.sign_in(&app.url, "hana").await;
    // Begun on the first host; the callback lands on the second, behind
    // the same public name.
    let callback = browser
        .callback_url(&app.url, &format!("/accounts/connect/{FITBIT}"))
        .await;
    let host = callback.authority().to_owned();
    let mut on_second = callback.clone();
    on_second
        .set_port(url::Url::parse(&second.url).unwrap().port())
        .unwrap();
    let (status, _, body) = browser
        .send(browser.client.get(on_second.as_str()).header("host", host))
        .await;
    assert_eq!(status, 303, "{body}");
    assert!(app.secrets(FITBIT, "hana").await.is_some());

    // Without the shared store, the second host knows nothing of it.
    let alone = app.connect.router();
    let _ = alone; // a router with its own memory store
    let callback = browser
        .callback_url(&app.url, &format!("/accounts/connect/{GOOGLE}"))
        .await;
    let mut wrong = callback.clone();
    wrong
        .set_port(url::Url::parse(&second.url).unwrap().port())
        .unwrap();
    let (status, _, body) = browser.fetch(wrong.as_str()).await;
    assert_eq!(
        status, 400,
        "a callback at another address than registered is refused: {body}"
    );
    assert!(body.contains("wrong address"), "{body}");
}

#[tokio::test]
async fn the_move_to_google_health_checks_the_identity() {
    let app = support::start().await;
    let browser = Browser::new();
    browser.sign_in(&app.url, "ivan").await;
    app.emulator.set_next_user("1VAN11");
    browser
        .get(&format!("{}/accounts/connect/{FITBIT}", app.url))
        .await;
    let page = browser.get(&format!("{}/accounts", app.url)).await;
    assert!(page.body.contains("Move to Google Health"), "{}", page.body);

    // Another Google account (another Fitbit user): refused, nothing stored.
    app.emulator.set_next_user("0THER1");
    let page = browser
        .get(&format!("{}/accounts/move/{FITBIT}", app.url))
        .await;
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(
        page.body.contains("Your account was not moved"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("a different Fitbit user"),
        "{}",
        page.body
    );
    assert_eq!(app.secrets(GOOGLE, "ivan").await, None);
    assert!(app.secrets(FITBIT, "ivan").await.is_some());

    // The right one.
    app.emulator.set_next_user("1VAN11");
    let page = browser
        .get(&format!("{}/accounts/move/{FITBIT}", app.url))
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("Moved to Google Health"),
        "{}",
        page.body
    );
    assert!(app.secrets(GOOGLE, "ivan").await.is_some());
    assert!(!page.body.contains("Move to Google Health"));
    assert!(
        page.body
            .contains("You can disconnect the old Fitbit connection")
    );
}

/// Replaces the stored token of `key` through the store, as another
/// process would, and drops this manager's cached copy.
async fn rewrite(
    app: &support::App,
    provider: &str,
    user: &str,
    f: impl FnOnce(TokenSet) -> TokenSet,
) {
    let key = app.key(provider, user);
    let store = app.manager.store();
    let lease = store.lock(&key, Duration::from_secs(5)).await.unwrap();
    let stored = lease.load().await.unwrap().expect("stored");
    let changed = f(stored.token.clone().expect("a token, not a tombstone"));
    lease
        .save_and_release(&changed, Expect::Version(stored.version), Record::Keep)
        .await
        .unwrap();
    app.manager.invalidate(&key);
}

#[tokio::test]
async fn the_page_shows_a_connection_that_needs_a_new_sign_in_and_a_retired_provider() {
    let app = support::start().await;
    let browser = Browser::new();
    browser.sign_in(&app.url, "lena").await;
    browser
        .get(&format!("{}/accounts/connect/{FITBIT}", app.url))
        .await;
    browser
        .get(&format!("{}/accounts/connect/{GOOGLE}", app.url))
        .await;

    // Google Health no longer accepts the grant (flagged by a refresh that
    // got invalid_grant).
    rewrite(&app, GOOGLE, "lena", |t| {
        t.flagged_for_reauthorization("invalid_grant")
    })
    .await;
    // Fitbit has been switched off, and the access token has expired.
    app.emulator.set_retired(true);
    rewrite(&app, FITBIT, "lena", |t| {
        t.with_expires_at(Some(SystemTime::now() - Duration::from_secs(60)))
    })
    .await;

    let (_, _, json) = browser
        .fetch(&format!("{}/accounts/connections", app.url))
        .await;
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    let row = |p: &str| {
        json["connections"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["provider"] == p)
            .unwrap()
            .clone()
    };
    assert_eq!(row(GOOGLE)["state"], "needs_login", "{json}");
    assert_eq!(row(GOOGLE)["needs_login"], true);
    assert_eq!(row(FITBIT)["state"], "retired", "{json}");
    assert_eq!(row(FITBIT)["successor"], GOOGLE);
    // Google Health still holds a (flagged) token, so the move is not offered.
    assert!(row(FITBIT)["move_to"].is_null());

    let page = browser.get(&format!("{}/accounts", app.url)).await;
    assert!(
        page.body.contains("Needs a new sign-in") && page.body.contains("Reconnect Google Health")
    );
    assert!(page.body.contains("Switched off") && page.body.contains("Disconnect Fitbit"));

    // Disconnecting the retired provider forgets it here (its server can
    // no longer revoke).
    let (status, _, _) = browser
        .post(
            &format!("{}/accounts/disconnect/{FITBIT}", app.url),
            &[("csrf", &csrf_of(&page.body))],
        )
        .await;
    assert_eq!(status, 303);
    assert_eq!(app.secrets(FITBIT, "lena").await, None);
    let page = browser.get(&format!("{}/accounts", app.url)).await;
    assert!(
        page.body.contains("Disconnected Fitbit here."),
        "{}",
        page.body
    );
}

#[tokio::test]
async fn nobody_signed_in_gets_a_page_and_a_401() {
    let app = support::start().await;
    let browser = Browser::new();
    let page = browser.get(&format!("{}/accounts", app.url)).await;
    assert_eq!(page.status, 401);
    assert!(page.body.contains("<h1>Please sign in first</h1>"));
    let (status, _, body) = browser
        .fetch(&format!("{}/accounts/connections", app.url))
        .await;
    assert_eq!(status, 401);
    assert!(body.contains("not signed in"));
    let (status, _, _) = browser
        .hop(&format!("{}/accounts/connect/{FITBIT}", app.url))
        .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn every_answer_is_private_and_pages_are_never_framed_or_referred() {
    let app = support::start().await;
    let browser = Browser::new();
    browser.sign_in(&app.url, "dana").await;
    let (status, headers, _) = browser
        .fetch(&format!("{}/accounts/connections", app.url))
        .await;
    assert_eq!(status, 200);
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    // JSON is neither shown nor followed: framing and referrers do not apply.
    assert!(headers.get("x-frame-options").is_none(), "{headers:?}");
    assert!(headers.get("referrer-policy").is_none(), "{headers:?}");
    let (status, headers, _) = browser.fetch(&format!("{}/accounts", app.url)).await;
    assert_eq!(status, 200);
    for (name, value) in [
        ("cache-control", "no-store"),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
    ] {
        assert_eq!(headers[name], value, "{name}");
    }
    // A redirect (here the connect route's, to the provider) is followed
    // by the browser: it carries no referrer either.
    let (status, headers, _) = browser
        .fetch(&format!("{}/accounts/connect/{FITBIT}", app.url))
        .await;
    assert_eq!(status, 303);
    assert_eq!(headers["referrer-policy"], "no-referrer");
}

/// `GET /connections` writes connected rows from borrowed data; its JSON
/// must be exactly that of [`auth_axum::Connect::connections`], in every
/// state, the move offer included.
#[tokio::test]
async fn the_json_route_answers_exactly_what_connections_returns() {
    let app = support::start().await;
    let browser = Browser::new();
    browser.sign_in(&app.url, "mira").await;
    let user = auth_core::AccountId::new("mira").unwrap();
    let compare = |label: &'static str| {
        let (app, browser, user) = (&app, &browser, &user);
        async move {
            let (status, _, body) = browser
                .fetch(&format!("{}/accounts/connections", app.url))
                .await;
            assert_eq!(status, 200, "{label}: {body}");
            let route: serde_json::Value = serde_json::from_str(&body).unwrap();
            let direct = serde_json::to_value(app.connect.connections(user).await).unwrap();
            assert_eq!(route, direct, "{label}");
            route
        }
    };
    let json = compare("nothing connected").await;
    assert!(json["connections"].as_array().unwrap().len() >= 2, "{json}");
    // Fitbit alone: connected, with the move to Google Health offered.
    browser
        .get(&format!("{}/accounts/connect/{FITBIT}", app.url))
        .await;
    let json = compare("fitbit connected, the move offered").await;
    let fitbit = json["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["provider"] == FITBIT)
        .unwrap()
        .clone();
    assert_eq!(fitbit["state"], "connected", "{json}");
    assert_eq!(fitbit["move_to"], GOOGLE, "{json}");
    assert!(!fitbit["scopes"].as_array().unwrap().is_empty(), "{json}");
    assert!(
        fitbit["expires_at"].as_str().unwrap().ends_with('Z'),
        "{json}"
    );
    // Both connected, then Google Health flagged.
    browser
        .get(&format!("{}/accounts/connect/{GOOGLE}", app.url))
        .await;
    compare("both connected").await;
    rewrite(&app, GOOGLE, "mira", |t| {
        t.flagged_for_reauthorization("invalid_grant")
    })
    .await;
    let json = compare("google health needs a new sign-in").await;
    assert!(json.to_string().contains("needs_login"), "{json}");
}
