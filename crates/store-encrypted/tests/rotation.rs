//! Key rotation and the migration from plaintext: `k2,k1` reads what `k1`
//! sealed, `rekey` seals everything with `k2`, and then `k2` alone reads it.

mod support;

use support::SaveExt as _;

use std::sync::Arc;
use std::time::Duration;

use auth_core::secrecy::ExposeSecret as _;
use auth_core::{StoreErrorKind, TokenStore};
use store_encrypted::EncryptedStore;
use store_memory::MemoryTokenStore;
use support::token;
use test_support::tokens::key;

const WAIT: Duration = Duration::from_secs(5);

fn key_id(t: &auth_core::TokenSet) -> String {
    t.extras()[store_encrypted::MARKER]["key"]
        .as_str()
        .expect("a key id")
        .to_owned()
}

#[tokio::test]
async fn a_new_primary_reads_old_data_and_rekey_moves_everything_to_it() {
    let (old, inner) = support::memory(&[("k1", 1)]);
    let keys: Vec<_> = (0..5)
        .map(|i| key("fitbit", &format!("user-{i}")))
        .collect();
    for (i, k) in keys.iter().enumerate() {
        old.save(k, &token(i as u32), None).await.expect("save");
    }
    // Step 2 of the rollout: k2 primary, k1 still there.
    let both = EncryptedStore::new(Arc::clone(&inner), support::ring(&[("k2", 2), ("k1", 1)]));
    for (i, k) in keys.iter().enumerate() {
        let t = both
            .load(k)
            .await
            .expect("load")
            .expect("token")
            .token
            .expect("a token");
        assert_eq!(t.access_token().expose_secret(), support::access(i as u32));
    }
    // A save under the new primary uses k2.
    let v = both.load(&keys[0]).await.unwrap().unwrap().version;
    both.save(&keys[0], &token(0), Some(v)).await.expect("save");
    assert_eq!(
        key_id(&support::raw(inner.as_ref(), &keys[0]).await.value),
        "k2"
    );

    // Step 3: rekey.
    let report = both.rekey(WAIT).await.expect("rekey");
    assert_eq!(report.reencrypted, 4, "{report:?}");
    assert_eq!(report.unchanged, 1, "{report:?}");
    assert_eq!(report.plaintext_encrypted, 0);
    assert_eq!(report.plaintext_remaining, 0);
    assert!(report.failed.is_empty(), "{report:?}");

    // Step 4: k1 dropped.
    let new = EncryptedStore::new(Arc::clone(&inner), support::ring(&[("k2", 2)]));
    for (i, k) in keys.iter().enumerate() {
        let t = new
            .load(k)
            .await
            .expect("load")
            .expect("token")
            .token
            .expect("a token");
        assert_eq!(
            t.refresh_token().unwrap().expose_secret(),
            support::refresh(i as u32)
        );
        assert_eq!(key_id(&support::raw(inner.as_ref(), k).await.value), "k2");
    }
    let again = new.rekey(WAIT).await.expect("a second rekey");
    assert_eq!((again.reencrypted, again.unchanged), (0, 5));
}

#[tokio::test]
async fn rekey_waits_for_the_lease_of_each_key() {
    let (old, inner) = support::memory(&[("k1", 1)]);
    let k = key("fitbit", "busy");
    old.save(&k, &token(1), None).await.expect("save");
    let both = EncryptedStore::new(Arc::clone(&inner), support::ring(&[("k2", 2), ("k1", 1)]));
    let held = both.lock(&k, WAIT).await.expect("lock");
    let report = both.rekey(Duration::from_millis(50)).await.expect("rekey");
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert_eq!(
        report.failed[0].1.store_kind(),
        Some(StoreErrorKind::LockTimeout)
    );
    assert_eq!(key_id(&support::raw(inner.as_ref(), &k).await.value), "k1");
    drop(held);
    let report = both.rekey(WAIT).await.expect("rekey");
    assert_eq!(report.reencrypted, 1, "{report:?}");
}

#[tokio::test]
async fn plaintext_is_read_then_encrypted_by_its_next_save_or_by_rekey() {
    let inner = Arc::new(MemoryTokenStore::new());
    let a = key("fitbit", "plain-a");
    let b = key("fitbit", "plain-b");
    inner.save(&a, &token(1), None).await.expect("plain save");
    let vb = inner.save(&b, &token(2), None).await.expect("plain save");

    let store = EncryptedStore::new(Arc::clone(&inner), support::ring(&[("k1", 1)]));
    let loaded = store.load(&b).await.expect("load").expect("token");
    assert_eq!(
        loaded
            .token
            .as_ref()
            .expect("a token")
            .access_token()
            .expose_secret(),
        support::access(2)
    );
    store
        .save(&b, loaded.token.as_ref().expect("a token"), Some(vb))
        .await
        .expect("save");
    let raw = support::raw(inner.as_ref(), &b).await.value;
    assert!(raw.access_token().expose_secret().starts_with("tk1.k1."));

    // A store that refuses plaintext refuses a, and its rekey leaves it.
    let strict = store.clone().accept_plaintext(false);
    let err = strict.load(&a).await.expect_err("plaintext was read");
    assert_eq!(err.store_kind(), Some(StoreErrorKind::Corrupt), "{err}");
    assert!(err.to_string().contains("plain text"), "{err}");
    let report = strict.rekey(WAIT).await.expect("rekey");
    assert_eq!(report.plaintext_remaining, 1, "{report:?}");
    assert_eq!(report.plaintext_encrypted, 0, "{report:?}");
    assert_eq!(report.unchanged, 1, "{report:?}");

    // The accepting store's rekey encrypts it.
    let report = store.rekey(WAIT).await.expect("rekey");
    assert_eq!(report.plaintext_encrypted, 1, "{report:?}");
    assert_eq!(report.plaintext_remaining, 0, "{report:?}");
    let t = strict
        .load(&a)
        .await
        .expect("load")
        .expect("token")
        .token
        .expect("a token");
    assert_eq!(t.access_token().expose_secret(), support::access(1));
}

#[tokio::test]
async fn a_marker_name_in_a_callers_token_is_refused() {
    let (store, _inner) = support::memory(&[("k1", 1)]);
    let t = token(1).with_extra(store_encrypted::MARKER, serde_json::json!({}));
    let err = store
        .save(&key("fitbit", "x"), &t, None)
        .await
        .expect_err("a reserved extra was saved");
    assert!(
        matches!(err, auth_core::Error::InvalidInput { .. }),
        "{err}"
    );
}
