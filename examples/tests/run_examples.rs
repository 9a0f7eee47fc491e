//! Builds every example and runs it the way a person would, with no input:
//! each must exit 0, say that its checks passed, and print no secret. CI
//! runs `cargo test --workspace`, so this is how CI runs the examples.
//!
//! Examples are not binaries, so Cargo gives tests no `CARGO_BIN_EXE_…` for
//! them. The test asks Cargo itself (`cargo build --workspace --examples
//! --message-format=json`, once per run) to build them, or to say they are
//! fresh, and takes each executable's path from its answer. That never runs
//! a stale build, and it needs no guess about the target directory.
//! `--workspace` resolves features the way CI's `cargo test --workspace`
//! does, so there the build is a no-op; after a narrower `cargo test -p
//! examples` it builds once more with the workspace's features. The nested
//! build finds the target directory as any Cargo command does: set
//! `CARGO_TARGET_DIR` rather than passing `--target-dir`, or it builds into
//! the default one.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// A generous bound: each example takes a second or two.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// Secrets the examples know; none may be printed. Random tokens are caught
/// by their shape, see [`token_like`].
const KNOWN_SECRETS: [&str; 4] = [
    auth_emulator::demo::FITBIT_SERVER_CLIENT_SECRET,
    auth_emulator::demo::GOOGLE_CLIENT_SECRET,
    // The made-up Acme server's client secret in `custom_provider`.
    "acme-example-secret",
    // The made-up metrics server's client secret in `service_token`.
    "service-example-secret",
];

/// The examples' executables, by name, built by Cargo with this test's
/// profile.
fn executables() -> &'static HashMap<String, PathBuf> {
    static BUILT: OnceLock<HashMap<String, PathBuf>> = OnceLock::new();
    BUILT.get_or_init(|| {
        let mut cargo = Command::new(env!("CARGO"));
        cargo
            .args(["build", "--workspace", "--examples"])
            .args(["--message-format=json-render-diagnostics", "--quiet"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdin(Stdio::null());
        if !cfg!(debug_assertions) {
            cargo.arg("--release");
        }
        let output = cargo.output().expect("cargo can be started");
        assert!(
            output.status.success(),
            "building the examples failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let mut found = HashMap::new();
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let is_example = message["target"]["kind"]
                .as_array()
                .is_some_and(|kinds| kinds.iter().any(|k| k == "example"));
            if message["reason"] == "compiler-artifact"
                && is_example
                && let (Some(name), Some(path)) = (
                    message["target"]["name"].as_str(),
                    message["executable"].as_str(),
                )
            {
                found.insert(name.to_owned(), PathBuf::from(path));
            }
        }
        found
    })
}

/// Whether `word` looks like a token, code or secret: a long run of token
/// characters that mixes letters and digits. Scope names and URLs are long
/// but have no digits in their long runs; every emulator token has both.
fn token_like(word: &str) -> bool {
    word.len() >= 32
        && word.chars().any(|c| c.is_ascii_digit())
        && word.chars().any(|c| c.is_ascii_alphabetic())
}

fn token_words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || "-_.~+=".contains(c)))
}

/// Runs the example `name` with `args` and checks its exit, its last words
/// and that nothing secret came out. Returns its stdout.
async fn run(name: &str, args: &[&str]) -> String {
    run_with(name, args, &[]).await
}

/// [`run`], with extra environment variables.
async fn run_with(name: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let path = executables()
        .get(name)
        .unwrap_or_else(|| panic!("cargo built no example named {name}"));
    let child = tokio::process::Command::new(path)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{name} could not be started: {e}"));
    let output = tokio::time::timeout(RUN_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{name} did not finish within {RUN_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "{name} exited with {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    assert!(
        stdout.contains(&format!("{name}: all checks passed")),
        "{name} did not report that its checks passed:\n{stdout}"
    );
    for text in [&stdout, &stderr] {
        for secret in KNOWN_SECRETS {
            assert!(
                !text.contains(secret),
                "{name} printed a client secret:\n{text}"
            );
        }
        // Name the leak by its start and length only: CI logs are not a
        // place for tokens either.
        let leaked: Vec<String> = token_words(text)
            .filter(|w| token_like(w))
            .map(|w| format!("{}… ({} chars)", &w[..4], w.len()))
            .collect();
        assert!(
            leaked.is_empty(),
            "{name} printed what looks like a token: {leaked:?}"
        );
    }
    stdout
}

#[test]
fn the_secret_detector_catches_tokens_and_spares_scopes() {
    for token in [
        "4f1d0b6e8a2c9e7d5b3a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c",
        "ya29.a0AfB_byC8vX2sP4qL7mN1oR3tU5wY6zA9bD0eF2gH4jK6lM8nP0qR2sT4uV6",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIyNkZXRkwifQ.c2lnbmF0dXJl",
    ] {
        assert!(token_words(token).any(token_like), "{token}");
    }
    let harmless = "https://www.googleapis.com/auth/googlehealth.activity_and_fitness.readonly \
                    fitbit/26FWFL expires 2026-11-02T10:00:00Z at v1764000000123456";
    assert_eq!(token_words(harmless).filter(|w| token_like(w)).count(), 0);
}

#[tokio::test]
async fn quickstart() {
    let out = run("quickstart", &[]).await;
    assert!(out.contains("user_id 26FWFL"), "{out}");
}

#[tokio::test]
async fn custom_provider() {
    let out = run("custom_provider", &[]).await;
    assert!(out.contains("acme/acme-user-42"), "{out}");
}

#[tokio::test]
async fn custom_store() {
    let out = run("custom_store", &[]).await;
    assert!(out.contains("exactly one refresh request"), "{out}");
}

#[tokio::test]
async fn web_app() {
    let out = run("web_app", &[]).await;
    assert!(out.contains("three distinct Fitbit users"), "{out}");
}

#[tokio::test]
async fn migration() {
    let out = run("migration", &[]).await;
    assert!(out.contains("DA7E44 is on Google Health"), "{out}");
}

#[cfg(unix)]
#[tokio::test]
async fn multi_host() {
    let url = test_support::postgres::shared().url();
    let out = run_with("multi_host", &[], &[("TOKEN_KEEPER_PG_URL", url)]).await;
    assert!(
        out.contains("exactly one refresh per user (5 for 5 users"),
        "{out}"
    );
    assert!(!out.contains(test_support::postgres::PASSWORD), "{out}");
}

#[tokio::test]
async fn service_token() {
    let out = run("service_token", &[]).await;
    assert!(out.contains("100 callers made one token request"), "{out}");
}

#[tokio::test]
async fn device_login() {
    let out = run("device_login", &[]).await;
    assert!(out.contains("enter the code"), "{out}");
    assert!(out.contains("signed in: google/tv-in-the-lounge"), "{out}");
}

#[tokio::test]
async fn api_client() {
    let out = run("api_client", &[]).await;
    assert!(out.contains("3 profile requests and 1 refresh"), "{out}");
    assert!(out.contains("provider fitbit is retired"), "{out}");
}
