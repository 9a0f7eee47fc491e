//! Damaged token files give a `Corrupt` error naming the file, are never
//! overwritten (not by a save, a mark, a login, a sequence number or a
//! delete), and do not stop the other keys from working.

mod support;

use std::path::Path;
use std::time::Duration;

use auth_core::{Error, Expect, Record, Sequence, StoreErrorKind, TokenKey, TokenStore, Version};
use store_file::FileTokenStore;
use test_support::tokens;

/// Makes a damaged file from the good file's bytes.
type Damage = fn(&[u8]) -> Vec<u8>;

/// The kinds of damage, by name.
fn damages() -> Vec<(&'static str, Damage)> {
    vec![
        ("truncated", (|good: &[u8]| good[..good.len() / 2].to_vec())),
        (
            "garbage",
            (|_: &[u8]| b"\x00\x17this is not a token \xff\xfe".to_vec()),
        ),
        ("empty", (|_: &[u8]| Vec::new())),
        (
            "future schema",
            (|good: &[u8]| {
                let mut value: serde_json::Value = serde_json::from_slice(good).expect("json");
                value["schema"] = serde_json::json!(3);
                serde_json::to_vec(&value).expect("json")
            }),
        ),
        (
            "future token format",
            (|good: &[u8]| {
                let mut value: serde_json::Value = serde_json::from_slice(good).expect("json");
                value["token"]["format"] = serde_json::json!(2);
                serde_json::to_vec(&value).expect("json")
            }),
        ),
        ("not an object", (|_: &[u8]| b"[1, 2, 3]".to_vec())),
    ]
}

fn assert_corrupt(err: &Error, path: &Path, damage: &str) {
    assert_eq!(
        err.store_kind(),
        Some(StoreErrorKind::Corrupt),
        "{damage}: {err}"
    );
    let message = err.to_string();
    assert!(
        message.contains(&path.display().to_string()),
        "{damage}: the error does not name the file: {message}"
    );
    assert!(
        message.contains("left untouched"),
        "{damage}: the error does not say the file was kept: {message}"
    );
    if damage.starts_with("future") {
        assert!(
            message.contains("newer version"),
            "{damage}: the error does not say to upgrade: {message}"
        );
    }
    assert!(
        !message.contains("access-"),
        "{damage}: the error quotes the token: {message}"
    );
}

/// A store with a damaged `victim` (saved at the returned version before the
/// damage) and a healthy `neighbour`.
async fn damaged_store(
    damage: Damage,
) -> (
    tempfile::TempDir,
    FileTokenStore,
    TokenKey,
    TokenKey,
    Version,
) {
    let (dir, store) = support::temp_store();
    let victim = tokens::key("fitbit", "victim");
    let neighbour = tokens::key("fitbit", "neighbour");
    let version = support::create(&store, &victim, &tokens::token(1)).await;
    support::create(&store, &neighbour, &tokens::token(2)).await;
    let path = store.token_path(&victim);
    let good = std::fs::read(&path).expect("read the good file");
    std::fs::write(&path, damage(&good)).expect("damage the file");
    (dir, store, victim, neighbour, version)
}

#[tokio::test]
async fn each_kind_of_damage_is_reported_and_left_untouched() {
    for (damage, make) in damages() {
        let (_dir, store, victim, neighbour, _) = damaged_store(make).await;
        let path = store.token_path(&victim);
        let before = std::fs::read(&path).expect("read the damaged file");

        let err = store.load(&victim).await.expect_err(damage);
        assert_corrupt(&err, &path, damage);
        assert!(
            matches!(&err, Error::Store { key: Some(k), .. } if *k == victim),
            "{damage}: the error does not carry the key: {err:?}"
        );

        // Every write through a lease fails the same way, whatever it
        // expects.
        let lease = store.lock(&victim, support::WAIT).await.expect(damage);
        assert_corrupt(&lease.load().await.expect_err(damage), &path, damage);
        for expected in [
            Expect::Absent,
            Expect::Version(Version(1)),
            Expect::Version(Version(u64::MAX)),
            Expect::Login(Sequence(u64::MAX)),
        ] {
            for record in [Record::Clear, Record::Keep] {
                let err = lease
                    .save(&tokens::token(3), expected, record)
                    .await
                    .expect_err(damage);
                assert_corrupt(&err, &path, damage);
            }
        }
        assert_corrupt(
            &lease.mark_in_flight(Version(1)).await.expect_err(damage),
            &path,
            damage,
        );
        assert_corrupt(
            &lease.delete(Version(1)).await.expect_err(damage),
            &path,
            damage,
        );
        assert_corrupt(
            &lease.next_sequence().await.expect_err(damage),
            &path,
            damage,
        );
        drop(lease);
        assert_eq!(
            std::fs::read(&path).expect("read again"),
            before,
            "{damage}: the damaged file changed"
        );

        // The neighbour still loads, saves and locks.
        let loaded = store
            .load(&neighbour)
            .await
            .expect("load neighbour")
            .expect("neighbour is there");
        assert_eq!(
            tokens::generation_of(support::token_of(&loaded)),
            2,
            "{damage}"
        );
        support::save(
            &store,
            &neighbour,
            &tokens::token(4),
            Expect::Version(loaded.version),
        )
        .await
        .expect("save neighbour");
        drop(
            store
                .lock(&neighbour, Duration::from_secs(1))
                .await
                .expect("lock neighbour"),
        );
        // And the damaged key is still listed, for a person to find.
        let listed = store.list(None).await.expect("list");
        assert_eq!(listed, vec![neighbour.clone(), victim.clone()], "{damage}");
    }
}

#[tokio::test]
async fn a_file_moved_from_another_key_is_reported() {
    let (_dir, store) = support::temp_store();
    let alice = tokens::key("fitbit", "alice");
    let bob = tokens::key("fitbit", "bob");
    support::create(&store, &alice, &tokens::token(1)).await;
    std::fs::copy(store.token_path(&alice), store.token_path(&bob)).expect("copy by hand");

    let err = store
        .load(&bob)
        .await
        .expect_err("loaded alice's token as bob's");
    assert_eq!(err.store_kind(), Some(StoreErrorKind::Corrupt), "{err}");
    assert!(
        err.to_string().contains("holds the token of fitbit/alice"),
        "{err}"
    );
    let err = support::save(&store, &bob, &tokens::token(2), Expect::Absent)
        .await
        .expect_err("overwrote the copied file");
    assert_eq!(err.store_kind(), Some(StoreErrorKind::Corrupt), "{err}");
    assert!(store.load(&alice).await.expect("load alice").is_some());
}

#[tokio::test]
async fn a_damaged_file_moved_aside_frees_the_key_and_versions_still_grow() {
    for (damage, make) in damages() {
        let (_dir, store, victim, neighbour, old_version) = damaged_store(make).await;
        let path = store.token_path(&victim);

        // What the error message says to do (for a newer file: upgrade, or
        // move it aside to start over).
        let err = store.load(&victim).await.expect_err(damage);
        let advice = if damage.starts_with("future") {
            "upgrade"
        } else {
            "move it aside"
        };
        assert!(err.to_string().contains(advice), "{damage}: {err}");
        std::fs::rename(&path, path.with_extension("json.damaged")).expect("move aside");

        assert!(
            store.load(&victim).await.expect(damage).is_none(),
            "{damage}"
        );
        assert!(
            store.load(&neighbour).await.expect(damage).is_some(),
            "{damage}: the neighbour went too"
        );
        let lease = store.lock(&victim, support::WAIT).await.expect(damage);
        let sequence = lease.next_sequence().await.expect(damage);
        let new_version = lease
            .save(&tokens::token(5), Expect::Login(sequence), Record::Clear)
            .await
            .expect(damage);
        assert!(
            new_version > old_version,
            "{damage}: {new_version} is not above {old_version}"
        );
        // The damaged copy is never listed as a key.
        let listed = store.list(None).await.expect("list");
        assert_eq!(listed, vec![neighbour.clone(), victim.clone()], "{damage}");
    }
}
