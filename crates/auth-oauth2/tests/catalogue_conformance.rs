//! Every catalogue entry, built with `auth_oauth2::catalogue`, passes the
//! provider conformance suite against its emulator profile: one test per
//! entry. A new entry without a test here fails
//! `every_entry_has_a_conformance_test`.

use auth_emulator::profile::ProfileEmulator;
use auth_oauth2::OAuth2Provider;
use auth_oauth2::conformance::{self, Target};

const REDIRECT_URI: &str = "http://127.0.0.1:8976/callback";

fn provider(emulator: &ProfileEmulator, name: &str, secret: &str) -> OAuth2Provider {
    let spec = emulator.spec(name).expect("the profile is served");
    auth_oauth2::catalogue::builder(name, &spec, emulator.client_id(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .client_secret(secret)
        .redirect_uri(REDIRECT_URI)
        .build()
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

async fn conform(name: &str) {
    let emulator = ProfileEmulator::builder()
        .catalogue_profile(name)
        .expect("a catalogue entry")
        .start()
        .await
        .expect("the emulator starts");
    let good = provider(&emulator, name, &emulator.client_secret(name));
    let bad = auth_oauth2::catalogue::builder(
        name,
        &emulator.spec(name).unwrap(),
        "a-client-the-server-does-not-know",
    )
    .unwrap()
    .client_secret("wrong-secret")
    .redirect_uri(REDIRECT_URI)
    .build()
    .unwrap();
    let target = Target {
        name: name.to_owned(),
        spec: emulator.spec(name).unwrap(),
        redirect_uri: REDIRECT_URI.to_owned(),
        resource: emulator.resource_url(name),
    };
    let via_userinfo = target.spec.account.from == auth_catalogue::AccountFrom::Userinfo
        && target.spec.endpoints.userinfo.is_some();
    if via_userinfo {
        let token = conformance::login(&good, &target).await;
        let account = good
            .userinfo_account(&token)
            .await
            .unwrap_or_else(|e| panic!("{name}: userinfo: {e}"))
            .unwrap_or_else(|| panic!("{name}: the userinfo answer names no account"));
        assert!(!account.as_str().is_empty(), "{name}");
    }
    conformance::run_all(&good, &bad, &target).await;
    let counters = emulator.counters(name).unwrap();
    let logins = if via_userinfo { 2 } else { 1 };
    assert_eq!(counters.code_exchanges, logins, "{name}: {counters:?}");
    assert!(counters.refreshes >= 1, "{name}: {counters:?}");
}

macro_rules! conformance_tests {
    ($($test:ident => $name:literal),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $test() {
                conform($name).await;
            }
        )*

        const TESTED: &[&str] = &[$($name),*];
    };
}

conformance_tests! {
    atlassian => "atlassian",
    auth0 => "auth0",
    dexcom => "dexcom",
    dexcom_sandbox => "dexcom-sandbox",
    dropbox => "dropbox",
    entra => "entra",
    fitbit => "fitbit",
    garmin => "garmin",
    github => "github",
    github_oauth_app => "github-oauth-app",
    gitlab => "gitlab",
    google => "google",
    google_health => "google-health",
    keycloak => "keycloak",
    microsoft => "microsoft",
    okta => "okta",
    oura => "oura",
    polar => "polar",
    salesforce => "salesforce",
    slack => "slack",
    spotify => "spotify",
    strava => "strava",
    whoop => "whoop",
    withings => "withings",
    zoom => "zoom",
}

#[test]
fn every_entry_has_a_conformance_test() {
    let names: Vec<&str> = auth_catalogue::Catalogue::builtin().names().collect();
    assert_eq!(
        names, TESTED,
        "add a conformance test for each new catalogue entry"
    );
}

/// The suite catches a client that ignores its entry: here, one that leaves
/// out the offline scope a refresh token needs.
#[tokio::test]
#[should_panic(expected = "no refresh token")]
async fn a_client_without_the_offline_scope_fails_the_suite() {
    let name = "microsoft";
    let emulator = ProfileEmulator::builder()
        .catalogue_profile(name)
        .unwrap()
        .start()
        .await
        .unwrap();
    let careless = auth_oauth2::catalogue::builder(
        name,
        &emulator.spec(name).unwrap(),
        emulator.client_id(name),
    )
    .unwrap()
    .client_secret(emulator.client_secret(name))
    .always_scopes(Vec::<String>::new())
    .build()
    .unwrap();
    let target = Target {
        name: name.to_owned(),
        spec: emulator.spec(name).unwrap(),
        redirect_uri: REDIRECT_URI.to_owned(),
        resource: emulator.resource_url(name),
    };
    conformance::login(&careless, &target).await;
}

/// And one that joins scopes with spaces where the entry wants commas.
#[tokio::test]
#[should_panic(expected = "refused the request")]
async fn a_client_with_the_wrong_scope_separator_fails_the_suite() {
    let name = "strava";
    let emulator = ProfileEmulator::builder()
        .catalogue_profile(name)
        .unwrap()
        .start()
        .await
        .unwrap();
    let careless = auth_oauth2::catalogue::builder(
        name,
        &emulator.spec(name).unwrap(),
        emulator.client_id(name),
    )
    .unwrap()
    .client_secret(emulator.client_secret(name))
    .scope_separator(" ")
    .build()
    .unwrap();
    let target = Target {
        name: name.to_owned(),
        spec: emulator.spec(name).unwrap(),
        redirect_uri: REDIRECT_URI.to_owned(),
        resource: emulator.resource_url(name),
    };
    conformance::login(&careless, &target).await;
}
