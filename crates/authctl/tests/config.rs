//! Config errors: each names the file, the provider and the field, says
//! what to do, and exits with 2. No server is needed: they all happen
//! before the first request.

mod support;

use std::path::Path;
use std::process::Output;

use support::{assert_code, authctl, stderr, write_private};

const GOOD: &str = r#"
[providers.fitbit]
kind = "fitbit"
client_id = "23ABCD"
client_secret_env = "TEST_CONFIG_FITBIT_SECRET"
app_type = "server"
redirect_uri = "http://127.0.0.1:8976/callback"
scopes = ["activity"]
token_url = "http://127.0.0.1:9/oauth2/token"
"#;

/// Runs `authctl ARGS` with `text` as the config, in a fresh directory.
fn with_config(text: &str, args: &[&str]) -> (Output, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("authctl.toml");
    write_private(&config, text);
    let output = run(dir.path(), &config, args);
    (output, config.display().to_string())
}

fn run(home: &Path, config: &Path, args: &[&str]) -> Output {
    authctl(home)
        .arg("--config")
        .arg(config)
        .args(args)
        .env("AUTHCTL_STORE", home.join("tokens"))
        .env("TEST_CONFIG_FITBIT_SECRET", "config-test-secret-value")
        .output()
        .expect("authctl runs")
}

/// Asserts exit 2 and that stderr names every one of `words`.
fn assert_config_error(output: &Output, words: &[&str]) {
    assert_code(output, 2);
    let err = stderr(output);
    for word in words {
        assert!(err.contains(word), "stderr does not name {word:?}:\n{err}");
    }
    assert!(
        err.lines().count() >= 2,
        "no next step after the error:\n{err}"
    );
}

#[test]
fn an_unknown_key_is_named_with_file_and_provider() {
    let text = GOOD.replace("scopes =", "scoops =");
    let (output, file) = with_config(&text, &["token", "fitbit"]);
    assert_config_error(
        &output,
        &[
            &file,
            "[providers.fitbit] scoops: unknown field (did you mean `scopes`?)",
            "kind = \"fitbit\" accepts `kind`, `client_id`,",
            "fix or remove `scoops`",
        ],
    );
}

#[test]
fn an_unknown_top_level_table_is_refused() {
    let text = format!("{GOOD}\n[stor]\npath = \"x\"\n");
    let (output, file) = with_config(&text, &["status"]);
    assert_config_error(&output, &[&file, "stor"]);
}

#[test]
fn a_missing_field_is_named() {
    let text = GOOD.replace("client_id = \"23ABCD\"\n", "");
    let (output, file) = with_config(&text, &["token", "fitbit"]);
    assert_config_error(
        &output,
        &[
            &file,
            "[providers.fitbit] client_id: missing; this field is required",
        ],
    );
}

#[test]
fn a_bad_url_is_named() {
    let text = GOOD.replace("http://127.0.0.1:9/oauth2/token", "not a url");
    let (output, file) = with_config(&text, &["token", "fitbit"]);
    assert_config_error(
        &output,
        &[&file, "[providers.fitbit]", "token_url", "not a url"],
    );
}

#[test]
fn a_plain_http_endpoint_off_loopback_is_refused() {
    let text = GOOD.replace("http://127.0.0.1:9/", "http://fitbit.example/");
    let (output, file) = with_config(&text, &["token", "fitbit"]);
    assert_config_error(
        &output,
        &[&file, "[providers.fitbit]", "token_url", "https"],
    );
}

#[test]
fn a_field_of_another_kind_is_refused() {
    let text = GOOD.replace(
        "app_type = \"server\"",
        "tokeninfo_url = \"https://x.example/t\"",
    );
    let (output, file) = with_config(&text, &["token", "fitbit"]);
    assert_config_error(
        &output,
        &[
            &file,
            "[providers.fitbit] tokeninfo_url: does not apply to kind = \"fitbit\"; it is a \
             field of kind = \"google-health\"; remove it",
            "remove `tokeninfo_url` from the [providers.fitbit] section",
        ],
    );
}

#[test]
fn a_device_login_names_a_catalogue_kind_as_written() {
    let text = "[providers.strava]\nkind = \"strava\"\nclient_id = \"1\"\n\
                client_secret_env = \"TEST_CONFIG_FITBIT_SECRET\"\n";
    let (output, _) = with_config(text, &["login", "strava", "--device"]);
    assert_config_error(
        &output,
        &[
            "provider strava is kind = \"strava\" (a catalogue entry); --device works with \
             kind = \"oauth2\" providers",
        ],
    );
}

#[test]
fn a_missing_config_file_given_explicitly_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nowhere.toml");
    let output = run(dir.path(), &missing, &["token", "fitbit"]);
    assert_config_error(&output, &[&missing.display().to_string()]);
}

#[test]
fn an_unset_secret_variable_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("authctl.toml");
    write_private(&config, GOOD);
    let output = authctl(dir.path())
        .arg("--config")
        .arg(&config)
        .args(["token", "fitbit"])
        .env("AUTHCTL_STORE", dir.path().join("tokens"))
        .env_remove("TEST_CONFIG_FITBIT_SECRET")
        .output()
        .expect("authctl runs");
    assert_config_error(
        &output,
        &[
            "TEST_CONFIG_FITBIT_SECRET",
            "client_secret_env",
            "[providers.fitbit]",
            "export",
        ],
    );
}

#[test]
fn an_unknown_provider_says_how_to_add_it() {
    let (output, _) = with_config(GOOD, &["token", "acme"]);
    assert_config_error(&output, &["acme", "[providers.acme]"]);
}

#[test]
fn the_config_comes_from_authctl_config_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("from-env.toml");
    write_private(&config, &GOOD.replace("scopes =", "scoops ="));
    let output = authctl(dir.path())
        .env("AUTHCTL_CONFIG", &config)
        .args(["token", "fitbit"])
        .output()
        .expect("authctl runs");
    assert_config_error(&output, &["from-env.toml", "scoops"]);
}

#[cfg(unix)]
#[test]
fn an_inline_secret_in_a_readable_file_is_warned_about_without_showing_it() {
    use std::os::unix::fs::PermissionsExt as _;
    let secret = "inline-secret-never-shown";
    let text = GOOD.replace(
        "client_secret_env = \"TEST_CONFIG_FITBIT_SECRET\"",
        &format!("client_secret = \"{secret}\""),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("authctl.toml");
    write_private(&config, &text);

    // Private: no warning. (No token is stored, so the command exits 3.)
    let quiet = run(dir.path(), &config, &["token", "fitbit"]);
    assert_code(&quiet, 3);
    assert!(!stderr(&quiet).contains("warning"), "{}", stderr(&quiet));

    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let warned = run(dir.path(), &config, &["token", "fitbit"]);
    assert_code(&warned, 3);
    let err = stderr(&warned);
    assert!(
        err.contains("warning") && err.contains("chmod 600"),
        "{err}"
    );
    assert!(err.contains("client_secret_env"), "{err}");
    for output in [&quiet, &warned] {
        assert!(!stderr(output).contains(secret) && !support::stdout(output).contains(secret));
    }
}
