//! Files are 0600 and directories 0700; a token file or root that other
//! users can access still works, with a warning naming it and the fix.

#![cfg(unix)]

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use auth_core::TokenStore;
use store_file::FileTokenStore;
use test_support::tokens;

#[tokio::test]
async fn creates_private_directories_and_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("nested/twice/tokens");
    let store = FileTokenStore::open(&root).expect("open");
    let key = tokens::key("fitbit", "alice");
    let v1 = support::create(&store, &key, &tokens::token(1)).await;
    // A refresh in flight adds the in-flight index and a marker.
    let lease = store
        .lock(&key, Duration::from_secs(1))
        .await
        .expect("lock");
    lease.mark_in_flight(v1).await.expect("mark");
    drop(lease);

    for created in [
        dir.path().join("nested"),
        dir.path().join("nested/twice"),
        root.clone(),
    ] {
        assert_eq!(support::mode(&created), 0o700, "{}", created.display());
    }
    let provider_dir = store.token_path(&key).parent().expect("dir").to_owned();
    assert_eq!(support::mode(&provider_dir), 0o700);
    let mut files = 0;
    for entry in fs::read_dir(&provider_dir).expect("read_dir") {
        let path = entry.expect("entry").path();
        assert_eq!(support::mode(&path), 0o600, "{}", path.display());
        files += 1;
    }
    assert_eq!(
        files, 3,
        "expected the token, lease lock and write lock files"
    );
    let marker = support::marker_path(&store, &key);
    for dir in [
        root.join(".in-flight"),
        marker.parent().expect("dir").to_owned(),
    ] {
        assert_eq!(support::mode(&dir), 0o700, "{}", dir.display());
    }
    assert_eq!(support::mode(&marker), 0o600, "{}", marker.display());
}

#[tokio::test]
async fn a_token_file_others_can_read_loads_with_a_warning_until_saved_again() {
    let (guard, logs) = test_support::logs::capture(tracing::Level::WARN);
    let (_dir, store) = support::temp_store();
    let key = tokens::key("fitbit", "alice");
    let v1 = support::create(&store, &key, &tokens::token(1)).await;
    let path = store.token_path(&key);
    assert!(
        logs.text().is_empty(),
        "unexpected warnings: {}",
        logs.text()
    );

    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
    let loaded = store
        .load(&key)
        .await
        .expect("a loose file still loads")
        .expect("there");
    assert_eq!(tokens::generation_of(support::token_of(&loaded)), 1);
    let text = logs.text();
    assert!(text.contains("WARN"), "no warning: {text}");
    assert!(
        text.contains(&path.display().to_string()),
        "the warning does not name the file: {text}"
    );
    assert!(
        text.contains("chmod 600"),
        "the warning does not give the fix: {text}"
    );
    assert!(
        text.contains("644"),
        "the warning does not give the mode: {text}"
    );
    assert!(
        !text.contains("access-1"),
        "the warning shows the token: {text}"
    );
    assert_eq!(
        support::mode(&path),
        0o644,
        "the store changed the mode itself"
    );

    // The next save writes a private file, and the warnings stop.
    support::save(
        &store,
        &key,
        &tokens::token(2),
        auth_core::Expect::Version(v1),
    )
    .await
    .expect("save");
    assert_eq!(support::mode(&path), 0o600);
    logs.clear();
    store.load(&key).await.expect("load").expect("there");
    assert!(
        logs.text().is_empty(),
        "warned about a private file: {}",
        logs.text()
    );
    drop(guard);
}

#[test]
fn an_existing_root_others_can_enter_is_used_with_a_warning() {
    let (guard, logs) = test_support::logs::capture(tracing::Level::WARN);
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("shared");
    fs::create_dir(&root).expect("mkdir");
    fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).expect("chmod");

    let store = FileTokenStore::open(&root).expect("a loose root still opens");
    let text = logs.text();
    assert!(
        text.contains(&root.display().to_string()),
        "the warning does not name the root: {text}"
    );
    assert!(
        text.contains("chmod 700"),
        "the warning does not give the fix: {text}"
    );
    assert_eq!(
        support::mode(&root),
        0o755,
        "the store changed a directory it did not create"
    );

    logs.clear();
    fs::set_permissions(&root, fs::Permissions::from_mode(0o700)).expect("chmod");
    drop(FileTokenStore::open(store.root()).expect("reopen"));
    assert!(
        logs.text().is_empty(),
        "warned about a private root: {}",
        logs.text()
    );
    drop(guard);
}
