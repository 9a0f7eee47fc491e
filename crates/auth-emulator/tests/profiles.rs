//! Catalogue profiles at the wire: rotation and replay windows as each
//! entry states them, client authentication and PKCE enforced, quirks in
//! the answers. (The client side of every entry is proven by the provider
//! conformance suite in auth-oauth2.) Time passes by the emulator's clock
//! (`advance_time`), never by waiting.

use std::time::{Duration, UNIX_EPOCH};

use auth_emulator::profile::{PROFILE_CLIENT_SECRET, ProfileEmulator};
use serde_json::Value;

const REDIRECT: &str = "http://127.0.0.1:8976/callback";

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn start(name: &str) -> ProfileEmulator {
    ProfileEmulator::builder()
        .catalogue_profile(name)
        .unwrap()
        .start()
        .await
        .unwrap()
}

/// The authorize query for `name`, with its offline scopes and parameters.
fn authorize_query(emulator: &ProfileEmulator, name: &str) -> Vec<(String, String)> {
    let spec = emulator.spec(name).unwrap();
    let mut scopes = spec.scopes.default.clone();
    scopes.extend(spec.scopes.offline.clone());
    let mut query = vec![
        ("client_id".to_owned(), emulator.client_id(name)),
        ("redirect_uri".to_owned(), REDIRECT.to_owned()),
        ("response_type".to_owned(), "code".to_owned()),
        ("state".to_owned(), "s".to_owned()),
        ("scope".to_owned(), scopes.join(&spec.scopes.separator)),
    ];
    query.extend(spec.scopes.authorize_params.clone());
    query
}

/// A token request with the entry's client authentication and parameters.
async fn token(emulator: &ProfileEmulator, name: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let spec = emulator.spec(name).unwrap();
    let mut form: Vec<(String, String)> = form
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    form.extend(spec.scopes.token_params.clone());
    if form
        .iter()
        .any(|(k, v)| k == "grant_type" && v == "refresh_token")
    {
        form.extend(spec.scopes.refresh_params.clone());
    }
    let mut request = http()
        .post(&spec.endpoints.token)
        .header("accept", "application/json");
    match spec.client.auth {
        auth_catalogue::ClientAuthMethod::ClientSecretBasic => {
            request = request.basic_auth(emulator.client_id(name), Some(PROFILE_CLIENT_SECRET));
        }
        _ => {
            form.push(("client_id".to_owned(), emulator.client_id(name)));
            form.push(("client_secret".to_owned(), PROFILE_CLIENT_SECRET.to_owned()));
        }
    }
    let answer = request.form(&form).send().await.unwrap();
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap_or(Value::Null))
}

/// Logs in and returns the token endpoint's answer.
async fn login(emulator: &ProfileEmulator, name: &str) -> Value {
    let spec = emulator.spec(name).unwrap();
    let answer = http()
        .get(&spec.endpoints.authorize)
        .query(&authorize_query(emulator, name))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 302, "{name}");
    let location = url::Url::parse(answer.headers()["location"].to_str().unwrap()).unwrap();
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let (status, body) = token(
        emulator,
        name,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await;
    assert_eq!(status, 200, "{name}: {body}");
    body
}

fn field<'v>(body: &'v Value, name: &str) -> &'v str {
    body.get("body").unwrap_or(body)[name]
        .as_str()
        .unwrap_or_default()
}

async fn refresh(emulator: &ProfileEmulator, name: &str, rt: &str) -> (u16, Value) {
    token(
        emulator,
        name,
        &[("grant_type", "refresh_token"), ("refresh_token", rt)],
    )
    .await
}

async fn use_access(emulator: &ProfileEmulator, name: &str, access: &str) -> u16 {
    http()
        .get(emulator.resource_url(name).unwrap())
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn withings_replays_a_used_token_until_the_new_access_token_is_used() {
    let name = "withings";
    let emulator = start(name).await;
    let first = login(&emulator, name).await;
    assert_eq!(
        first["status"], 0,
        "the answer is in Withings' envelope: {first}"
    );
    let old = field(&first, "refresh_token").to_owned();
    let (_, a) = refresh(&emulator, name, &old).await;
    let (_, b) = refresh(&emulator, name, &old).await;
    assert_eq!(a, b, "inside the window a replay gets the same pair");
    assert_ne!(field(&a, "refresh_token"), old, "the token rotated");
    // Withings answers a resource call inside its envelope too, with 200.
    assert_eq!(
        use_access(&emulator, name, field(&a, "access_token")).await,
        200
    );
    let (status, dead) = refresh(&emulator, name, &old).await;
    assert_eq!(status, 200, "Withings sends errors with 200");
    assert_ne!(
        dead["status"], 0,
        "after the first use the old token is dead: {dead}"
    );
}

#[tokio::test]
async fn atlassian_keeps_its_timed_window_open_after_the_first_use() {
    let name = "atlassian";
    let emulator = start(name).await;
    let first = login(&emulator, name).await;
    let old = field(&first, "refresh_token").to_owned();
    let (_, a) = refresh(&emulator, name, &old).await;
    assert_eq!(
        use_access(&emulator, name, field(&a, "access_token")).await,
        200
    );
    let (status, b) = refresh(&emulator, name, &old).await;
    assert_eq!(status, 200, "{b}");
    assert_eq!(a, b, "the ten-minute leeway does not end on use");
}

#[tokio::test]
async fn strava_kills_the_old_token_at_once_and_keeps_a_valid_access_token() {
    let name = "strava";
    let emulator = start(name).await;
    let first = login(&emulator, name).await;
    assert!(
        first["athlete"]["id"].is_string(),
        "the account is athlete.id: {first}"
    );
    let old = field(&first, "refresh_token").to_owned();
    let (_, a) = refresh(&emulator, name, &old).await;
    assert_eq!(
        field(&a, "access_token"),
        field(&first, "access_token"),
        "Strava hands back the access token while it is valid"
    );
    let (status, dead) = refresh(&emulator, name, &old).await;
    assert_eq!(status, 400, "{dead}");
    assert_eq!(dead["error"], "invalid_grant");
    // No entry documents reuse detection: the grant lives on.
    let (status, next) = refresh(&emulator, name, field(&a, "refresh_token")).await;
    assert_eq!(status, 200, "{next}");
    let counters = emulator.counters(name).unwrap();
    assert_eq!((counters.refreshes, counters.dead_refreshes), (2, 1));
}

#[tokio::test]
async fn withings_refuses_a_replay_after_its_eight_hours_and_the_grant_lives() {
    let name = "withings";
    let emulator = start(name).await;
    let first = login(&emulator, name).await;
    let old = field(&first, "refresh_token").to_owned();
    let (_, a) = refresh(&emulator, name, &old).await;
    assert_eq!(a["status"], 0, "{a}");
    let new = field(&a, "refresh_token").to_owned();
    assert_ne!(new, old, "the token rotated");
    // Nobody used the new pair: only the eight hours bound the window.
    emulator.advance_time(Duration::from_secs(8 * 3600 - 60));
    let (_, b) = refresh(&emulator, name, &old).await;
    assert_eq!(a, b, "a replay inside the window gets the same pair");
    emulator.advance_time(Duration::from_secs(120));
    let (status, dead) = refresh(&emulator, name, &old).await;
    assert_eq!(status, 200, "Withings sends errors with 200");
    assert_ne!(dead["status"], 0, "after eight hours the old token is dead");
    // A reuse after a window refuses the token; the grant lives.
    let (_, next) = refresh(&emulator, name, &new).await;
    assert_eq!(next["status"], 0, "{next}");
    assert_ne!(field(&next, "refresh_token"), new, "the new token rotates");
    let counters = emulator.counters(name).unwrap();
    assert_eq!((counters.refreshes, counters.dead_refreshes), (3, 1));
}

#[tokio::test]
async fn atlassian_keeps_a_window_for_every_spent_token_and_time_alone_ends_it() {
    let name = "atlassian";
    let emulator = start(name).await;
    let first = login(&emulator, name).await;
    let a = field(&first, "refresh_token").to_owned();
    let (_, to_b) = refresh(&emulator, name, &a).await;
    let b = field(&to_b, "refresh_token").to_owned();
    emulator.advance_time(Duration::from_secs(60));
    let (_, to_c) = refresh(&emulator, name, &b).await;
    let c = field(&to_c, "refresh_token").to_owned();
    assert!(a != b && b != c && a != c, "every refresh rotates");
    emulator.advance_time(Duration::from_secs(60));
    // Two links back, yet inside its own ten minutes: its own answer.
    let (status, again) = refresh(&emulator, name, &a).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again, to_b);
    // Ten and a half minutes after a's rotation, nine and a half after b's.
    emulator.advance_time(Duration::from_secs(510));
    let (status, dead) = refresh(&emulator, name, &a).await;
    assert_eq!(status, 400, "{dead}");
    assert_eq!(dead["error"], "invalid_grant");
    let (status, again) = refresh(&emulator, name, &b).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again, to_c, "b's window is still open");
    // The grant lives: the current token rotates.
    let (status, next) = refresh(&emulator, name, &c).await;
    assert_eq!(status, 200, "{next}");
    assert_ne!(field(&next, "refresh_token"), c);
}

#[tokio::test]
async fn strava_expiry_follows_the_emulators_clock() {
    let name = "strava";
    let emulator = start(name).await;
    // A day ahead of the machine's clock.
    emulator.advance_time(Duration::from_secs(86_400));
    let first = login(&emulator, name).await;
    let expires_in = first["expires_in"].as_u64().unwrap();
    let now = emulator.now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let expires_at = first["expires_at"].as_u64().unwrap();
    assert!(
        expires_at.abs_diff(now + expires_in) <= 60,
        "expires_at is on the emulator's clock: {expires_at} vs {now} + {expires_in}"
    );
    let access = field(&first, "access_token").to_owned();
    let rt = field(&first, "refresh_token").to_owned();
    let (_, a) = refresh(&emulator, name, &rt).await;
    assert_eq!(
        field(&a, "access_token"),
        access,
        "still valid: handed back"
    );
    emulator.advance_time(Duration::from_secs(expires_in));
    assert_eq!(
        use_access(&emulator, name, &access).await,
        401,
        "expired by the emulator's clock"
    );
    let (status, b) = refresh(&emulator, name, field(&a, "refresh_token")).await;
    assert_eq!(status, 200, "{b}");
    assert_ne!(
        field(&b, "access_token"),
        access,
        "an expired access token is not handed back"
    );
    assert_eq!(
        use_access(&emulator, name, field(&b, "access_token")).await,
        200
    );
}

#[tokio::test]
async fn google_never_rotates_and_leaves_the_refresh_token_out() {
    let name = "google";
    let emulator = start(name).await;
    let first = login(&emulator, name).await;
    let rt = field(&first, "refresh_token").to_owned();
    assert!(!rt.is_empty(), "access_type=offline brings a refresh token");
    for _ in 0..2 {
        let (status, body) = refresh(&emulator, name, &rt).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.get("refresh_token").is_none(), "{body}");
    }
}

#[tokio::test]
async fn the_entrys_client_authentication_and_pkce_are_enforced() {
    let name = "spotify"; // client_secret_basic
    let emulator = start(name).await;
    let spec = emulator.spec(name).unwrap();
    let answer = http()
        .post(&spec.endpoints.token)
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "x"),
            ("client_id", emulator.client_id(name).as_str()),
            ("client_secret", PROFILE_CLIENT_SECRET),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        answer.status().as_u16(),
        401,
        "a secret in the body is refused"
    );
    assert_eq!(emulator.counters(name).unwrap().bad_client, 1);

    let name = "garmin"; // PKCE required
    let emulator = start(name).await;
    let spec = emulator.spec(name).unwrap();
    let answer = http()
        .get(&spec.endpoints.authorize)
        .query(&authorize_query(&emulator, name))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 400, "no challenge, no code");
}

#[tokio::test]
async fn several_profiles_are_served_at_once() {
    let emulator = ProfileEmulator::builder()
        .whole_catalogue()
        .start()
        .await
        .unwrap();
    assert_eq!(
        emulator.names().len(),
        auth_catalogue::Catalogue::builtin().len()
    );
    for name in ["github", "slack", "withings"] {
        let body = login(&emulator, name).await;
        assert!(!body.is_null(), "{name}");
    }
}
