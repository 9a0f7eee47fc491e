//! The built-in catalogue against its schema: every entry parses (the
//! schema refuses unknown fields), names its sources and the day they were
//! checked, and every URL in it is one.

use std::collections::BTreeMap;

use auth_catalogue::{BUILTIN_TOML, Catalogue, Fact, ProviderSpec, Status};

fn filled(spec: &ProviderSpec) -> ProviderSpec {
    let values: BTreeMap<String, String> = spec
        .endpoints
        .placeholders
        .iter()
        .map(|p| (p.clone(), format!("{p}.example")))
        .collect();
    spec.instantiate(&values).expect("all placeholders given")
}

#[test]
fn every_entry_parses_with_sources_and_a_check_date() {
    let mut fresh = Catalogue::default();
    fresh
        .merge_toml("providers.toml", BUILTIN_TOML)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(fresh.len() >= 20, "only {} entries", fresh.len());
    for (name, spec) in fresh.iter() {
        assert!(!spec.sources.is_empty(), "{name}: no sources");
        for url in spec.sources.iter().chain([&spec.refresh.source]) {
            assert!(
                url.starts_with("https://"),
                "{name}: source {url} is not https"
            );
            url::Url::parse(url).unwrap_or_else(|e| panic!("{name}: source {url}: {e}"));
        }
        let date = spec.checked.as_bytes();
        assert!(
            date.len() == 10
                && date[4] == b'-'
                && date[7] == b'-'
                && spec.checked.split('-').all(|p| p.parse::<u32>().is_ok()),
            "{name}: checked = {:?} is not YYYY-MM-DD",
            spec.checked
        );
        let spec = filled(spec);
        for (what, url) in spec.urls() {
            let parsed =
                url::Url::parse(url).unwrap_or_else(|e| panic!("{name}: {what} {url}: {e}"));
            assert_eq!(parsed.scheme(), "https", "{name}: {what} {url}");
        }
        if spec.status == Status::Retired {
            let successor = spec
                .successor
                .as_deref()
                .expect("a retired entry names its successor");
            assert!(
                fresh.get(successor).is_some(),
                "{name}: successor {successor} is not an entry"
            );
        }
        if spec.refresh.rotates == Fact::Known(false) {
            assert_eq!(spec.refresh_rules().replay_window, None, "{name}");
        }
    }
}

#[test]
fn the_required_providers_are_there() {
    let catalogue = Catalogue::builtin();
    for name in [
        "fitbit",
        "google-health",
        "withings",
        "oura",
        "strava",
        "whoop",
        "dexcom",
        "dexcom-sandbox",
        "polar",
        "garmin",
        "google",
        "microsoft",
        "github",
        "github-oauth-app",
        "gitlab",
        "spotify",
        "dropbox",
        "slack",
        "salesforce",
        "zoom",
        "atlassian",
        "okta",
        "auth0",
        "keycloak",
        "entra",
    ] {
        assert!(catalogue.get(name).is_some(), "{name} is missing");
    }
    assert_eq!(catalogue.get("fitbit").unwrap().status, Status::Retired);
    for template in ["okta", "auth0", "keycloak", "entra"] {
        assert!(catalogue.get(template).unwrap().is_template(), "{template}");
    }
}

#[test]
fn documented_refresh_rules_map_as_the_manager_reads_them() {
    let google = Catalogue::builtin().get("google").unwrap().refresh_rules();
    assert!(!google.rotating);
    assert!(!google.use_ends_replay_window());
    let fitbit = Catalogue::builtin().get("fitbit").unwrap().refresh_rules();
    assert_eq!(
        fitbit.replay_window,
        Some(std::time::Duration::from_secs(120)),
        "about two minutes, ended by the first use of the new pair"
    );
    assert!(fitbit.rotating && fitbit.first_use_ends_window);
    assert!(fitbit.use_ends_replay_window());
    let withings = Catalogue::builtin()
        .get("withings")
        .unwrap()
        .refresh_rules();
    assert_eq!(
        withings.replay_window,
        Some(std::time::Duration::from_secs(8 * 3600))
    );
    assert!(withings.use_ends_replay_window());
    let atlassian = Catalogue::builtin()
        .get("atlassian")
        .unwrap()
        .refresh_rules();
    assert_eq!(
        atlassian.replay_window,
        Some(std::time::Duration::from_secs(600))
    );
    assert!(
        !atlassian.use_ends_replay_window(),
        "a timed window survives the first use"
    );
    // Unknown reads safe: rotating, no window.
    let okta = Catalogue::builtin().get("okta").unwrap().refresh_rules();
    assert!(okta.rotating && okta.replay_window.is_none() && okta.use_ends_replay_window());
}

#[test]
fn a_user_file_is_named_in_its_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("my-providers.toml");
    std::fs::write(&path, "[acme]\ntitle = 1\n").unwrap();
    let err = Catalogue::with_user_file(&path).unwrap_err().to_string();
    assert!(
        err.contains("my-providers.toml") && err.contains("[acme]"),
        "{err}"
    );
    let missing = dir.path().join("absent.toml");
    let err = Catalogue::with_user_file(&missing).unwrap_err().to_string();
    assert!(err.contains("absent.toml"), "{err}");
}
