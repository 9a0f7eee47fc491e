//! Encryption at rest through authctl: `[store] encryption_keys_env` and
//! `encryption_keys_file`, `keygen`, `rekey [--require-encrypted]`, and a
//! missing or wrong key refused with exit 2 and nothing changed.

mod support;

use std::path::Path;

use support::{World, assert_code, stderr, stdout};

const KEYS_ENV: &str = "TEST_AUTHCTL_TOKEN_KEYS";

/// Every file of the store, concatenated.
fn store_bytes(dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                all.extend(std::fs::read(&path).expect("read"));
            }
        }
    }
    all
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

async fn keygen(world: &World) -> String {
    let out = world.run(&["keygen"]).await;
    assert_code(&out, 0);
    let entry = stdout(&out).trim_end().to_owned();
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    entry
}

fn encrypted_config(world: &World, store_section: &str) {
    world.write_config(&format!(
        "[store]\n{store_section}\n{}",
        world.config_text()
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keygen_prints_one_new_entry() {
    let world = World::start().await;
    let a = keygen(&world).await;
    let b = keygen(&world).await;
    assert_ne!(a, b);
    for entry in [&a, &b] {
        let (id, key) = entry.split_once(':').expect("KID:BASE64");
        assert!(id.starts_with('k') && id.len() == 11, "{entry}");
        assert_eq!(key.len(), 44, "{entry}");
        assert!(key.ends_with('='), "{entry}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rekey_encrypts_plaintext_and_tokens_still_work() {
    let world = World::start().await;
    let issued = world.seed_fitbit("default", true).await;
    let k1 = keygen(&world).await;
    encrypted_config(&world, &format!("encryption_keys_env = \"{KEYS_ENV}\""));
    assert!(contains(&store_bytes(&world.store), &issued.access_token));

    let mut cmd = world.command(&["rekey", "--require-encrypted"]);
    cmd.env(KEYS_ENV, &k1);
    let out = support::run(cmd).await;
    world.assert_no_secrets(&out, false);
    assert_code(&out, 0);
    let text = stdout(&out);
    assert!(text.contains("1 plaintext encrypted"), "{text}");
    assert!(text.contains("0 plaintext remaining"), "{text}");
    let bytes = store_bytes(&world.store);
    assert!(!contains(&bytes, &issued.access_token));
    assert!(!contains(
        &bytes,
        issued.refresh_token.as_deref().expect("refresh")
    ));

    let mut cmd = world.command(&["token", "fitbit"]);
    cmd.env(KEYS_ENV, &k1);
    let out = support::run(cmd).await;
    assert_code(&out, 0);
    let fresh = stdout(&out).trim_end().to_owned();
    assert_ne!(
        fresh, issued.access_token,
        "the expired token was not refreshed"
    );
    assert!(!contains(&store_bytes(&world.store), &fresh));

    // status needs no key.
    let out = world.run(&["status", "--json"]).await;
    assert_code(&out, 0);
    assert!(
        stdout(&out).contains("\"account\": \"default\""),
        "{}",
        stdout(&out)
    );
    world.assert_no_secrets(&out, false);

    // Rotation: k2 primary, k1 secondary, rekey, then k2 alone.
    let k2 = keygen(&world).await;
    let mut cmd = world.command(&["rekey"]);
    cmd.env(KEYS_ENV, format!("{k2},{k1}"));
    let out = support::run(cmd).await;
    assert_code(&out, 0);
    assert!(stdout(&out).contains("1 re-encrypted"), "{}", stdout(&out));
    let mut cmd = world.command(&["token", "fitbit"]);
    cmd.env(KEYS_ENV, &k2);
    let out = support::run(cmd).await;
    assert_code(&out, 0);
    assert_eq!(stdout(&out).trim_end(), fresh);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_wrong_key_exits_2_and_changes_nothing() {
    let world = World::start().await;
    world.seed_fitbit("default", true).await;
    let k1 = keygen(&world).await;
    encrypted_config(&world, &format!("encryption_keys_env = \"{KEYS_ENV}\""));
    let mut cmd = world.command(&["rekey"]);
    cmd.env(KEYS_ENV, &k1);
    assert_code(&support::run(cmd).await, 0);
    let before = store_bytes(&world.store);
    let k1_id = k1.split_once(':').expect("entry").0.to_owned();
    // Same id, other key bytes: a wrong key.
    let other = keygen(&world).await;
    let wrong = format!("{k1_id}:{}", other.split_once(':').expect("entry").1);

    for (label, keys) in [
        ("wrong", Some(wrong)),
        ("missing id", Some(other.clone())),
        ("unset", None),
    ] {
        for args in [
            &["token", "fitbit"][..],
            &["refresh", "fitbit"][..],
            &["rekey"][..],
        ] {
            let mut cmd = world.command(args);
            if let Some(keys) = &keys {
                cmd.env(KEYS_ENV, keys);
            }
            let out = support::run(cmd).await;
            assert_code(&out, 2);
            let err = stderr(&out);
            assert!(err.contains(KEYS_ENV), "{label} {args:?}: {err}");
            if keys.is_some() {
                assert!(
                    err.contains(&format!("wrong key {k1_id}")),
                    "{label} {args:?}: {err}"
                );
            }
            assert!(
                stdout(&out).is_empty(),
                "{label} {args:?}: {}",
                stdout(&out)
            );
            world.assert_no_secrets(&out, false);
            assert!(!err.contains(k1.split_once(':').expect("entry").1));
            assert_eq!(
                store_bytes(&world.store),
                before,
                "{label} {args:?} changed the store"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_file_works_and_must_be_private() {
    let world = World::start().await;
    let issued = world.seed_fitbit("default", false).await;
    let k1 = keygen(&world).await;
    let key_file = world.dir.path().join("token-keys");
    support::write_private(&key_file, &format!("# primary first\n{k1}\n"));
    encrypted_config(&world, "encryption_keys_file = \"token-keys\"");
    let out = world.run(&["rekey"]).await;
    assert_code(&out, 0);
    assert!(!contains(&store_bytes(&world.store), &issued.access_token));
    let out = world.run(&["token", "fitbit"]).await;
    assert_code(&out, 0);
    assert_eq!(stdout(&out).trim_end(), issued.access_token);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let out = world.run(&["token", "fitbit"]).await;
        assert_code(&out, 2);
        assert!(stderr(&out).contains("chmod 600"), "{}", stderr(&out));
        assert!(stdout(&out).is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_encrypted_fails_while_plaintext_remains() {
    let world = World::start().await;
    world.seed_fitbit("default", false).await;
    let k1 = keygen(&world).await;
    encrypted_config(
        &world,
        &format!("encryption_keys_env = \"{KEYS_ENV}\"\naccept_plaintext = false"),
    );
    let mut cmd = world.command(&["rekey", "--require-encrypted"]);
    cmd.env(KEYS_ENV, &k1);
    let out = support::run(cmd).await;
    assert_code(&out, 1);
    assert!(
        stdout(&out).contains("1 plaintext remaining"),
        "{}",
        stdout(&out)
    );
    assert!(stderr(&out).contains("plain text"), "{}", stderr(&out));
    world.assert_no_secrets(&out, false);
    // Without the flag the same rekey succeeds and reports it.
    let mut cmd = world.command(&["rekey"]);
    cmd.env(KEYS_ENV, &k1);
    assert_code(&support::run(cmd).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rekey_of_an_unencrypted_store_is_a_usage_error() {
    let world = World::start().await;
    let out = world.run(&["rekey"]).await;
    assert_code(&out, 2);
    assert!(
        stderr(&out).contains("encryption_keys_env"),
        "{}",
        stderr(&out)
    );
}
