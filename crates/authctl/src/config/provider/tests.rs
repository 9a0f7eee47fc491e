//! The section parser's messages and the settings it reads, pinned.

use std::path::Path;

use auth_fitbit::AppType;
use auth_oauth2::ClientAuth;

use super::kinds::{OAuth2Client, OAuth2Grant, Server};
use super::*;
use crate::config::Config;

fn parse(text: &str) -> CliResult<Config> {
    Config::parse(text, Path::new("/etc/authctl.toml"))
}

fn message(text: &str) -> String {
    let err = parse(text).unwrap_err();
    assert_eq!(err.kind().code(), 2);
    err.message().to_owned()
}

const FITBIT: &str = r#"
[store]
path = "tokens"

[providers.fitbit]
kind = "fitbit"
client_id = "23ABCD"
client_secret_env = "FITBIT_SECRET"
app_type = "server"
redirect_uri = "http://127.0.0.1:8976/callback"
scopes = ["activity", "sleep"]
token_url = "http://127.0.0.1:9/oauth2/token"
"#;

#[test]
fn a_good_file_parses() {
    let config = parse(FITBIT).unwrap();
    let p = config.provider("fitbit").unwrap();
    assert_eq!(p.kind(), ProviderKind::Fitbit);
    assert_eq!(p.scopes, ["activity", "sleep"]);
    let KindConfig::Fitbit(f) = &p.kind else {
        panic!("{p:?} is not fitbit");
    };
    assert_eq!(f.app.app_type(), AppType::Server);
    assert!(matches!(f.app.secret(), Some(Secret::Env(var)) if var == "FITBIT_SECRET"));
    assert_eq!(
        f.urls.token.as_ref().map(Url::as_str),
        Some("http://127.0.0.1:9/oauth2/token")
    );
    assert_eq!(
        config.store,
        Some(super::super::StoreLocation::Path("/etc/tokens".into()))
    );
}

#[test]
fn unknown_keys_name_file_provider_and_field() {
    let m = message(&FITBIT.replace("app_type", "app_typo"));
    assert!(m.contains("/etc/authctl.toml"), "{m}");
    assert!(m.contains("[providers.fitbit]"), "{m}");
    assert!(m.contains("app_typo"), "{m}");
    let m = message(&format!("{FITBIT}\n[stor]\npath = \"x\"\n"));
    assert!(m.contains("stor"), "{m}");
}

/// The error for `text`, which must be refused with exit code 2.
fn failure(text: &str) -> Failure {
    let err = parse(text).unwrap_err();
    assert_eq!(err.kind().code(), 2);
    err
}

#[test]
fn an_unknown_key_lists_the_keys_of_its_kind_and_a_near_one() {
    let err = failure(&FITBIT.replace("app_type", "app_typo"));
    assert_eq!(
        err.message(),
        "/etc/authctl.toml: [providers.fitbit] app_typo: unknown field (did you mean \
         `app_type`?); kind = \"fitbit\" accepts `kind`, `client_id`, `client_secret_env`, \
         `client_secret`, `redirect_uri`, `scopes`, `authorize_url`, `token_url`, \
         `revoke_url`, `api_base_urls`, `app_type`, `introspect_url`, `expires_in`"
    );
    assert_eq!(
        err.next(),
        "fix or remove `app_typo` in the [providers.fitbit] section of /etc/authctl.toml"
    );
    let m = message(
        "[providers.strava]\nkind = \"strava\"\nclient_id = \"1\"\nclient_secret_env = \"S\"\n\
         zz_unknown = 1\n",
    );
    assert!(
        m.contains(
            "[providers.strava] zz_unknown: unknown field; kind = \"strava\" (a catalogue \
             entry) accepts `kind`, `client_id`,"
        ) && m.ends_with("`issuer`, `introspect_url`, `expires_in`, `placeholders`"),
        "{m}"
    );
}

#[test]
fn a_key_of_another_kind_names_the_kinds_it_belongs_to() {
    let err = failure(&FITBIT.replace("app_type = \"server\"", "issuer = \"https://x\""));
    assert_eq!(
        err.message(),
        "/etc/authctl.toml: [providers.fitbit] issuer: does not apply to kind = \"fitbit\"; \
         it is a field of kind = \"google-health\", kind = \"oauth2\" or catalogue entries; \
         remove it"
    );
    assert_eq!(
        err.next(),
        "remove `issuer` from the [providers.fitbit] section of /etc/authctl.toml, or change \
         its kind"
    );
    let strava = "[providers.strava]\nkind = \"strava\"\nclient_id = \"1\"\n\
                  client_secret_env = \"S\"\n";
    let m = message(&format!("{strava}grant = \"authorization_code\"\n"));
    assert!(
        m.ends_with(
            "grant: does not apply to kind = \"strava\" (a catalogue entry); it is a field \
             of kind = \"oauth2\"; remove it"
        ),
        "{m}"
    );
    let m = message(&format!("{FITBIT}audience = \"https://api\"\n"));
    assert!(
        m.ends_with(
            "audience: does not apply to kind = \"fitbit\"; it is a field of kind = \
             \"oauth2\"; remove it"
        ),
        "{m}"
    );
    let oauth2 = "[providers.acme]\nkind = \"oauth2\"\nclient_id = \"x\"\n\
                  client_secret_env = \"S\"\nissuer = \"https://id.example\"\n";
    let m = message(&format!("{oauth2}placeholders = {{ domain = \"x\" }}\n"));
    assert!(
        m.ends_with(
            "placeholders: does not apply to kind = \"oauth2\"; it is a field of catalogue \
             entries; remove it"
        ),
        "{m}"
    );
    let m = message(&format!("{oauth2}expires_in = 3600\n"));
    assert!(
        m.ends_with(
            "expires_in: does not apply to kind = \"oauth2\"; it is a field of kind = \
             \"fitbit\" or catalogue entries; remove it"
        ),
        "{m}"
    );
    let m = message(&format!("{oauth2}tokeninfo_url = \"https://x\"\n"));
    assert!(
        m.ends_with(
            "tokeninfo_url: does not apply to kind = \"oauth2\"; it is a field of kind = \
             \"google-health\"; remove it"
        ),
        "{m}"
    );
}

#[test]
fn a_missing_or_mistyped_kind_and_a_missing_client_id_are_named() {
    let err = failure("[providers.acme]\nclient_id = \"x\"\n");
    assert_eq!(
        err.message(),
        "/etc/authctl.toml: [providers.acme] kind: missing; name the kind: \"fitbit\", \
         \"google-health\", \"oauth2\" or a catalogue entry (`authctl providers` lists them)"
    );
    assert_eq!(
        err.next(),
        "fix `kind` in the [providers.acme] section of /etc/authctl.toml"
    );
    let m = message("[providers.acme]\nkind = 5\nclient_id = \"x\"\n");
    assert_eq!(
        m,
        "/etc/authctl.toml: [providers.acme] kind: must be a string, not an integer 5"
    );
    let m = message("[providers.acme]\nkind = [\"oauth2\"]\nclient_id = \"x\"\n");
    assert!(
        m.ends_with("kind: must be a string, not an array [\"oauth2\"]"),
        "{m}"
    );
    let err = failure(&FITBIT.replace("client_id = \"23ABCD\"", ""));
    assert_eq!(
        err.message(),
        "/etc/authctl.toml: [providers.fitbit] client_id: missing; this field is required"
    );
    assert_eq!(
        err.next(),
        "fix `client_id` in the [providers.fitbit] section of /etc/authctl.toml"
    );
}

#[test]
fn typed_values_keep_their_messages() {
    let m = message(&FITBIT.replace("\"server\"", "\"desktop\""));
    assert!(
        m.ends_with("app_type: \"desktop\" is not an app type; use \"server\" or \"public\""),
        "{m}"
    );
    let oauth2 = "[providers.acme]\nkind = \"oauth2\"\nclient_id = \"x\"\n\
                  client_secret_env = \"S\"\nissuer = \"https://id.example\"\n";
    let m = message(&format!("{oauth2}grant = \"password\"\n"));
    assert!(
        m.ends_with(
            "grant: \"password\" is not a grant; use \"authorization_code\" (the default) \
             or \"client_credentials\""
        ),
        "{m}"
    );
    let m = message(&format!("{oauth2}auth_method = \"private_key_jwt\"\n"));
    assert!(
        m.ends_with(
            "auth_method: \"private_key_jwt\" is not supported; use \
             \"client_secret_basic\", \"client_secret_post\" or \"none\""
        ),
        "{m}"
    );
    let m = message(&format!("{oauth2}audience = \"https://api\"\n"));
    assert!(
        m.ends_with("audience: applies only to grant = \"client_credentials\"; remove it"),
        "{m}"
    );
    let m = message(&FITBIT.replace("[\"activity\", \"sleep\"]", "\"activity\""));
    assert!(
        m.ends_with("scopes: invalid type: string \"activity\", expected a sequence"),
        "{m}"
    );
}

#[test]
fn the_kinds_of_oauth2_parse_into_their_settings() {
    let config = parse(
        "[providers.svc]\nkind = \"oauth2\"\ngrant = \"client_credentials\"\n\
         client_id = \"svc\"\nclient_secret_env = \"S\"\nauth_method = \"client_secret_post\"\n\
         token_url = \"https://id.example/token\"\naudience = \"https://api.example\"\n\
         resource = \"https://api.example/r\"\n",
    )
    .unwrap();
    let p = config.provider("svc").unwrap();
    let KindConfig::OAuth2(o) = &p.kind else {
        panic!("{p:?} is not oauth2");
    };
    assert_eq!(
        o.grant,
        OAuth2Grant::ClientCredentials {
            audience: Some("https://api.example".to_owned()),
            resource: Some("https://api.example/r".to_owned()),
        }
    );
    assert_eq!(o.client.auth(), ClientAuth::ClientSecretPost);
    assert!(matches!(o.client.secret(), Some(Secret::Env(var)) if var == "S"));
    let Server::Endpoints(endpoints) = &o.server else {
        panic!("{o:?} has no endpoints");
    };
    // No authorize URL: the token URL stands in for it.
    assert_eq!(endpoints.authorize.as_str(), "https://id.example/token");
    assert!(p.api_base_urls().is_empty());
    let config = parse(
        "[providers.g]\nkind = \"google-health\"\nclient_id = \"x\"\n\
         client_secret_env = \"S\"\nissuer = \"https://accounts.example\"\n\
         tokeninfo_url = \"https://t.example/tokeninfo\"\n",
    )
    .unwrap();
    let p = config.provider("g").unwrap();
    let KindConfig::GoogleHealth(g) = &p.kind else {
        panic!("{p:?} is not google-health");
    };
    assert!(matches!(&g.secret, Secret::Env(var) if var == "S"));
    assert_eq!(g.issuer.as_deref(), Some("https://accounts.example"));
    assert_eq!(
        g.urls.introspect.as_ref().map(Url::as_str),
        Some("https://t.example/tokeninfo")
    );
    let config = parse(
        "[providers.acme]\nkind = \"oauth2\"\nclient_id = \"x\"\nauth_method = \"none\"\n\
         issuer = \"https://id.example\"\n",
    )
    .unwrap();
    let p = config.provider("acme").unwrap();
    let KindConfig::OAuth2(o) = &p.kind else {
        panic!("{p:?} is not oauth2");
    };
    assert!(matches!(o.client, OAuth2Client::Public));
    assert_eq!(o.grant, OAuth2Grant::AuthorizationCode);
    assert!(matches!(&o.server, Server::Discovery(url) if url.as_str() == "https://id.example/"));
}

#[test]
fn missing_fields_and_bad_values_are_named() {
    let m = message(&FITBIT.replace("client_id = \"23ABCD\"", ""));
    assert!(
        m.contains("client_id") && m.contains("[providers.fitbit]"),
        "{m}"
    );
    let m = message(&FITBIT.replace("http://127.0.0.1:9/oauth2/token", "not a url"));
    assert!(m.contains("token_url") && m.contains("not a url"), "{m}");
    let m = message(&FITBIT.replace("http://127.0.0.1:9/", "http://example.com/"));
    assert!(m.contains("token_url") && m.contains("https"), "{m}");
    let m = message(&FITBIT.replace("\"server\"", "\"desktop\""));
    assert!(m.contains("app_type"), "{m}");
    let m = message(&FITBIT.replace("client_id = \"23ABCD\"", "client_id = 5"));
    assert!(m.contains("client_id") && m.contains("integer"), "{m}");
    let m = message(&FITBIT.replace("kind = \"fitbit\"", "kind = \"fitbot\""));
    assert!(m.contains("kind") && m.contains("fitbot"), "{m}");
}

#[test]
fn kind_specific_rules() {
    let m = message(&FITBIT.replace("app_type = \"server\"", "issuer = \"https://x\""));
    assert!(m.contains("issuer") && m.contains("does not apply"), "{m}");
    let m = message(&FITBIT.replace("client_secret_env = \"FITBIT_SECRET\"", ""));
    assert!(m.contains("client_secret_env"), "{m}");
    let public = FITBIT
        .replace("client_secret_env = \"FITBIT_SECRET\"", "")
        .replace("\"server\"", "\"public\"");
    let config = parse(&public).unwrap();
    let p = config.provider("fitbit").unwrap();
    let KindConfig::Fitbit(f) = &p.kind else {
        panic!("{p:?} is not fitbit");
    };
    assert_eq!(f.app.app_type(), AppType::Client);
    assert!(p.kind.secret().is_none());
    let m =
        message("[providers.acme]\nkind = \"oauth2\"\nclient_id = \"x\"\nauth_method = \"none\"\n");
    assert!(m.contains("authorize_url"), "{m}");
    let m = message(
        "[providers.acme]\nkind = \"oauth2\"\nclient_id = \"x\"\nissuer = \"https://id.example\"\n",
    );
    assert!(m.contains("client_secret_env"), "{m}");
}

#[test]
fn a_mistyped_secret_is_not_echoed() {
    let text = FITBIT.replace(
        "client_secret_env = \"FITBIT_SECRET\"",
        "client_secret = 123456789",
    );
    let m = message(&text);
    assert!(!m.contains("123456789"), "{m}");
    assert!(m.contains("client_secret"), "{m}");
}

#[test]
fn a_misspelt_secret_key_shows_the_key_and_never_its_value() {
    let text = FITBIT.replace(
        "client_secret_env = \"FITBIT_SECRET\"",
        "client_secert = \"misspelt-secret-value\"",
    );
    let m = message(&text);
    assert!(!m.contains("misspelt-secret-value"), "{m}");
    assert!(
        m.contains("client_secert: unknown field (did you mean `client_secret`?)"),
        "{m}"
    );
}

#[test]
fn each_shape_refuses_a_key_it_does_not_know() {
    fn refused<T: DeserializeOwned>(text: &str) -> String {
        let table: toml::Table = toml::from_str(text).unwrap();
        match T::deserialize(toml::Value::Table(table)) {
            Ok(_) => panic!("{text:?} was accepted"),
            Err(e) => e.to_string(),
        }
    }
    let stray = "zz_unknown = 1\n";
    for err in [
        refused::<Common>(&format!("client_id = \"x\"\n{stray}")),
        refused::<shapes::FitbitSection>(stray),
        refused::<shapes::GoogleHealthSection>(stray),
        refused::<shapes::OAuth2Section>(stray),
        refused::<shapes::CatalogueSection>(stray),
    ] {
        assert!(err.contains("unknown field `zz_unknown`"), "{err}");
    }
}

#[test]
fn debug_hides_an_inline_secret() {
    let text = FITBIT.replace(
        "client_secret_env = \"FITBIT_SECRET\"",
        "client_secret = \"inline-secret-value\"",
    );
    let config = parse(&text).unwrap();
    let dbg = format!("{config:?}");
    assert!(!dbg.contains("inline-secret-value"), "{dbg}");
}

#[test]
fn a_catalogue_kind_needs_only_the_client() {
    let config = parse(
        "[providers.strava]\nkind = \"strava\"\nclient_id = \"123\"\n\
         client_secret_env = \"STRAVA_SECRET\"\nredirect_uri = \"http://127.0.0.1:8976/callback\"\n",
    )
    .unwrap();
    let p = config.provider("strava").unwrap();
    assert_eq!(p.kind(), ProviderKind::Catalogue);
    assert_eq!(p.api_base_urls(), ["https://www.strava.com/api/v3"]);
    let m = message("[providers.strava]\nkind = \"strava\"\nclient_id = \"123\"\n");
    assert!(
        m.contains("client_secret_env") && m.contains("client_secret_post"),
        "{m}"
    );
    let m = message("[providers.x]\nkind = \"stravaa\"\nclient_id = \"1\"\n");
    assert!(m.contains("authctl providers"), "{m}");
    let m = message(
        "[providers.strava]\nkind = \"strava\"\nclient_id = \"1\"\nclient_secret_env = \"S\"\n\
         auth_method = \"none\"\n",
    );
    assert!(
        m.contains("auth_method") && m.contains("does not apply"),
        "{m}"
    );
}

#[test]
fn overridden_endpoints_join_the_api_origins() {
    let config = parse(
        "[providers.strava]\nkind = \"strava\"\nclient_id = \"1\"\nclient_secret_env = \"S\"\n\
         token_url = \"http://127.0.0.1:9/strava/token\"\n",
    )
    .unwrap();
    let apis = config.provider("strava").unwrap().api_base_urls();
    assert!(apis.contains(&"http://127.0.0.1:9/".to_owned()), "{apis:?}");
    let config = parse(
        "[providers.strava]\nkind = \"strava\"\nclient_id = \"1\"\nclient_secret_env = \"S\"\n\
         api_base_urls = [\"https://proxy.example/strava\"]\n",
    )
    .unwrap();
    assert_eq!(
        config.provider("strava").unwrap().api_base_urls(),
        ["https://proxy.example/strava"]
    );
}

#[test]
fn templates_take_their_placeholders() {
    let okta = "[providers.okta]\nkind = \"okta\"\nclient_id = \"1\"\nclient_secret_env = \"S\"\n";
    let config = parse(&format!(
        "{okta}placeholders = {{ domain = \"dev-1.okta.com\" }}\n"
    ))
    .unwrap();
    assert_eq!(
        config.provider("okta").unwrap().api_base_urls(),
        ["https://dev-1.okta.com"]
    );
    let m = message(okta);
    assert!(m.contains("placeholders") && m.contains("domain"), "{m}");
    let m = message(&format!("{okta}placeholders = {{ tenant = \"x\" }}\n"));
    assert!(m.contains("tenant") && m.contains("domain"), "{m}");
}

#[test]
fn expires_in_is_one_the_provider_accepts() {
    assert!(parse(&format!("{FITBIT}expires_in = 3600\n")).is_ok());
    let m = message(&format!("{FITBIT}expires_in = 7200\n"));
    assert!(
        m.contains("expires_in") && m.contains("3600 or 28800"),
        "{m}"
    );
    let m = message(
        "[providers.strava]\nkind = \"strava\"\nclient_id = \"1\"\nclient_secret_env = \"S\"\n\
         expires_in = 3600\n",
    );
    assert!(m.contains("expires_in") && m.contains("takes no"), "{m}");
}

#[test]
fn a_users_catalogue_adds_entries_and_its_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let entry = auth_catalogue::BUILTIN_TOML
        .split("\n[strava]\n")
        .nth(1)
        .and_then(|rest| rest.split("\n[whoop]\n").next())
        .unwrap()
        .replace("[strava.", "[acme.");
    std::fs::write(dir.path().join("mine.toml"), format!("[acme]\n{entry}")).unwrap();
    let config_path = dir.path().join("authctl.toml");
    let text = "catalogue = \"mine.toml\"\n[providers.acme]\nkind = \"acme\"\n\
                client_id = \"1\"\nclient_secret_env = \"S\"\n";
    let config = Config::parse(text, &config_path).unwrap();
    assert_eq!(
        config.provider("acme").unwrap().kind(),
        ProviderKind::Catalogue
    );
    assert!(config.catalogue().get("acme").is_some());
    std::fs::write(
        dir.path().join("mine.toml"),
        format!(
            "[acme]\n{}",
            entry.replace("rotates = true", "rotate = true")
        ),
    )
    .unwrap();
    let err = Config::parse(text, &config_path).unwrap_err();
    let m = err.message();
    assert!(
        m.contains("mine.toml") && m.contains("[acme]") && m.contains("rotate"),
        "{m}"
    );
}

#[test]
fn missing_provider_says_how_to_add_it() {
    let err = parse(FITBIT)
        .unwrap()
        .provider("google-health")
        .unwrap_err();
    assert!(
        err.next().contains("[providers.google-health]"),
        "{}",
        err.next()
    );
}

#[test]
fn a_secret_missing_from_the_environment_is_named_when_it_is_read() {
    let var = "AUTHCTL_UNIT_TEST_SECRET_NEVER_SET";
    for (name, text) in [
        ("fitbit", FITBIT.replace("FITBIT_SECRET", var)),
        (
            "g",
            format!(
                "[providers.g]\nkind = \"google-health\"\nclient_id = \"x\"\n\
                 client_secret_env = \"{var}\"\n"
            ),
        ),
    ] {
        let config = parse(&text).unwrap();
        let err = config.provider(name).unwrap().check_secret().unwrap_err();
        assert_eq!(err.kind().code(), 2);
        assert_eq!(
            err.message(),
            format!(
                "/etc/authctl.toml: [providers.{name}] client_secret_env: the environment \
                 variable {var} is not set (or is empty)"
            )
        );
        assert_eq!(
            err.next(),
            format!("export {var}=<the client secret> and run the command again")
        );
    }
    let public = FITBIT
        .replace("client_secret_env = \"FITBIT_SECRET\"", "")
        .replace("\"server\"", "\"public\"");
    let config = parse(&public).unwrap();
    assert!(config.provider("fitbit").unwrap().check_secret().is_ok());
}
