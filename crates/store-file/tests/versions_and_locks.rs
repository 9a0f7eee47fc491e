//! How versions, sequences and leases behave beyond the conformance suite:
//! versions across many deletes, two store values on one root acting like
//! two processes, and what a read of a missing key leaves on disk.

mod support;

use std::time::Duration;

use auth_core::{Expect, Record, StoreErrorKind, TokenStore, Version};
use store_file::FileTokenStore;
use support::WAIT;
use test_support::tokens;

#[tokio::test]
async fn versions_and_sequences_keep_growing_across_delete_and_login() {
    let (_dir, store) = support::temp_store();
    let key = tokens::key("fitbit", "alice");
    let mut last = Version(0);
    let mut last_sequence = auth_core::Sequence(0);
    for round in 0..20 {
        let lease = store.lock(&key, WAIT).await.expect("lock");
        let sequence = lease.next_sequence().await.expect("next_sequence");
        assert!(
            sequence > last_sequence,
            "round {round}: {sequence} after {last_sequence}"
        );
        let created = lease
            .save(
                &tokens::token(round),
                Expect::Login(sequence),
                Record::Clear,
            )
            .await
            .expect("login");
        assert!(
            created > last,
            "round {round}: {created} is not above {last}"
        );
        let updated = lease
            .save(
                &tokens::token(round),
                Expect::Version(created),
                Record::Clear,
            )
            .await
            .expect("update");
        assert!(updated > created);
        let tombstone = lease.delete(updated).await.expect("delete");
        assert!(tombstone > updated);
        // A holder of a version from before the delete can never write.
        let err = lease
            .save(&tokens::token(99), Expect::Version(updated), Record::Clear)
            .await
            .expect_err("stale version won");
        assert_eq!(err.store_kind(), Some(StoreErrorKind::Conflict), "{err}");
        // Nor can a login sequenced before it.
        let err = lease
            .save(&tokens::token(99), Expect::Login(sequence), Record::Clear)
            .await
            .expect_err("an old login won over the tombstone");
        assert_eq!(err.store_kind(), Some(StoreErrorKind::Conflict), "{err}");
        last = tombstone;
        last_sequence = sequence;
    }
}

#[tokio::test]
async fn two_stores_on_one_root_share_tokens_and_leases() {
    let (_dir, first) = support::temp_store();
    let second = FileTokenStore::open(first.root()).expect("open again");
    let key = tokens::key("fitbit", "alice");

    let v1 = support::create(&first, &key, &tokens::token(1)).await;
    let seen = second
        .load(&key)
        .await
        .expect("load in the second")
        .expect("there");
    assert_eq!(seen.version, v1);

    let lease = first.lock(&key, WAIT).await.expect("lock in the first");
    let err = second
        .lock(&key, Duration::from_millis(50))
        .await
        .expect_err("lease taken twice");
    assert_eq!(err.store_kind(), Some(StoreErrorKind::LockTimeout), "{err}");
    let v2 = lease.mark_in_flight(v1).await.expect("mark in the first");
    let seen = second.load(&key).await.expect("load").expect("there");
    assert_eq!(seen.version, v2);
    assert!(
        seen.in_flight.is_some(),
        "the second does not see the record"
    );
    assert!(
        second.orphaned(10).await.expect("orphaned").is_empty(),
        "a record under a held lease is orphaned"
    );
    drop(lease);
    assert_eq!(
        second.orphaned(10).await.expect("orphaned"),
        vec![key.clone()]
    );

    let lease = second.lock(&key, WAIT).await.expect("lock after release");
    lease
        .save_and_release(&tokens::token(2), Expect::Version(v2), Record::Clear)
        .await
        .expect("save in the second");
    assert!(first.orphaned(10).await.expect("orphaned").is_empty());
}

#[tokio::test]
async fn missing_keys_create_no_files_on_load_list_or_orphan_scan() {
    let (_dir, store) = support::temp_store();
    let key = tokens::key("fitbit", "nobody");
    assert!(store.load(&key).await.expect("load").is_none());
    assert!(store.list(None).await.expect("list").is_empty());
    assert!(store.orphaned(10).await.expect("orphaned").is_empty());
    assert!(
        support::walk(store.root()).is_empty(),
        "files appeared: {:?}",
        support::walk(store.root())
    );
}

#[tokio::test]
async fn a_lease_alone_writes_no_account_file() {
    let (_dir, store) = support::temp_store();
    let key = tokens::key("fitbit", "nobody");
    drop(store.lock(&key, WAIT).await.expect("lock"));
    assert!(
        !store.token_path(&key).exists(),
        "a lease wrote the account file"
    );
    assert!(store.load(&key).await.expect("load").is_none());
    assert_eq!(store.account_file_replaces(), 0);
}

#[tokio::test]
async fn debug_shows_the_root_and_no_token() {
    let (_dir, store) = support::temp_store();
    let key = tokens::key("fitbit", "alice");
    support::create(&store, &key, &tokens::token(7)).await;
    let lease = store.lock(&key, WAIT).await.expect("lock");
    let row = lease.load().await.expect("load").expect("there");
    let text = format!("{store:?} {lease:?} {row:?}");
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
