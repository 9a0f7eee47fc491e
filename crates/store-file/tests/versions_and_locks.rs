//! How versions and the two locks behave beyond the conformance suite: the
//! manager's pattern (save while holding the lease), versions across delete,
//! and two store values on one root acting like two processes.

mod support;

use std::time::Duration;

use auth_core::{StoreErrorKind, TokenStore, Version};
use store_file::FileTokenStore;

#[tokio::test]
async fn saving_while_holding_the_lease_does_not_deadlock() {
    let (_dir, store) = support::temp_store();
    let key = support::key("fitbit", "alice");
    let v1 = store
        .save(&key, &support::token(1), None)
        .await
        .expect("create");
    let lease = store
        .lock(&key, Duration::from_secs(1))
        .await
        .expect("lock");
    let saved = tokio::time::timeout(
        Duration::from_secs(30),
        store.save(&key, &support::token(2), Some(v1)),
    )
    .await
    .expect("save deadlocked against the lease its caller holds");
    let v2 = saved.expect("save under the lease");
    assert!(store.delete(&key).await.expect("delete under the lease"));
    drop(lease);
    assert!(v2 > v1);
}

#[tokio::test]
async fn versions_keep_growing_across_delete_and_recreate() {
    let (_dir, store) = support::temp_store();
    let key = support::key("fitbit", "alice");
    let mut last = Version(0);
    for round in 0..20 {
        let created = store
            .save(&key, &support::token(round), None)
            .await
            .expect("create");
        assert!(
            created > last,
            "round {round}: {created} is not above {last}"
        );
        let updated = store
            .save(&key, &support::token(round), Some(created))
            .await
            .expect("update");
        assert!(updated > created);
        // A holder of the deleted version can never update the new token.
        assert!(store.delete(&key).await.expect("delete"));
        let recreated = store
            .save(&key, &support::token(round), None)
            .await
            .expect("recreate");
        let err = store
            .save(&key, &support::token(99), Some(updated))
            .await
            .expect_err("stale version won");
        assert_eq!(err.store_kind(), Some(StoreErrorKind::Conflict), "{err}");
        assert!(store.delete(&key).await.expect("delete"));
        last = recreated;
    }
}

#[tokio::test]
async fn two_stores_on_one_root_share_tokens_and_locks() {
    let (_dir, first) = support::temp_store();
    let second = FileTokenStore::open(first.root()).expect("open again");
    let key = support::key("fitbit", "alice");

    let v1 = first
        .save(&key, &support::token(1), None)
        .await
        .expect("save in the first");
    let seen = second
        .load(&key)
        .await
        .expect("load in the second")
        .expect("there");
    assert_eq!(seen.version, v1);

    let lease = first
        .lock(&key, Duration::from_secs(1))
        .await
        .expect("lock in the first");
    let err = second
        .lock(&key, Duration::from_millis(50))
        .await
        .expect_err("lease taken twice");
    assert_eq!(err.store_kind(), Some(StoreErrorKind::LockTimeout), "{err}");
    drop(lease);
    drop(
        second
            .lock(&key, Duration::from_secs(5))
            .await
            .expect("lock after release"),
    );

    let (two, three) = (support::token(2), support::token(3));
    let (a, b) = tokio::join!(
        first.save(&key, &two, Some(v1)),
        second.save(&key, &three, Some(v1))
    );
    assert!(
        a.is_ok() != b.is_ok(),
        "exactly one of two racing saves must win: {a:?} {b:?}"
    );
}

#[tokio::test]
async fn missing_keys_create_no_files_on_load_or_delete() {
    let (_dir, store) = support::temp_store();
    let key = support::key("fitbit", "nobody");
    assert!(store.load(&key).await.expect("load").is_none());
    assert!(!store.delete(&key).await.expect("delete"));
    assert!(
        support::walk(store.root()).is_empty(),
        "files appeared: {:?}",
        support::walk(store.root())
    );
}

#[tokio::test]
async fn debug_shows_the_root_and_no_token() {
    let (_dir, store) = support::temp_store();
    let key = support::key("fitbit", "alice");
    store
        .save(&key, &support::token(7), None)
        .await
        .expect("save");
    let lease = store
        .lock(&key, Duration::from_secs(1))
        .await
        .expect("lock");
    let text = format!("{store:?} {lease:?}");
    assert!(text.contains(&store.root().display().to_string()), "{text}");
    assert!(text.contains("fitbit/alice"), "{text}");
    assert!(
        !text.contains("access-7") && !text.contains("refresh-7"),
        "{text}"
    );
}

#[test]
fn the_default_root_is_in_the_platform_data_directory() {
    let root = FileTokenStore::default_root().expect("this machine has a home directory");
    assert!(root.is_absolute(), "{}", root.display());
    assert!(root.ends_with("token-keeper/tokens"), "{}", root.display());
}
