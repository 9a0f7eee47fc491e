//! Tampering is refused, told apart from a wrong key, and changes nothing
//! at rest: neither the failed `load` nor a `save` over the record.

mod support;

use support::SaveExt as _;

use auth_core::secrecy::{ExposeSecret as _, SecretString};
use auth_core::{Error, StoreErrorKind, TokenKey, TokenSet, TokenStore};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use store_encrypted::EncryptedStore;
use store_memory::MemoryTokenStore;
use support::token;
use test_support::tokens::key;

/// The stored token as JSON, to compare records exactly.
fn json(token: &TokenSet) -> String {
    serde_json::to_string(token).expect("serialize")
}

fn access_of(t: &TokenSet) -> String {
    t.access_token().expose_secret().to_owned()
}

fn refresh_of(t: &TokenSet) -> String {
    t.refresh_token()
        .expect("a refresh token")
        .expose_secret()
        .to_owned()
}

/// `envelope` with bit `bit` of byte `index` of its payload flipped.
fn flip_payload(envelope: &str, index: usize, bit: u8) -> String {
    let parts: Vec<&str> = envelope.split('.').collect();
    let mut payload = URL_SAFE_NO_PAD.decode(parts[3]).expect("a payload");
    payload[index] ^= 1 << bit;
    format!(
        "{}.{}.{}.{}",
        parts[0],
        parts[1],
        parts[2],
        URL_SAFE_NO_PAD.encode(payload)
    )
}

/// Writes `tampered` over the record of `k` in the inner store, then checks
/// that the wrapper refuses it and leaves it as it is. Returns the error.
async fn refused(
    store: &EncryptedStore<MemoryTokenStore>,
    k: &TokenKey,
    tampered: TokenSet,
) -> Error {
    let inner = store.inner();
    let current = support::raw(inner.as_ref(), k).await;
    let version = inner
        .save(k, &tampered, Some(current.version))
        .await
        .expect("tamper");
    let before = json(&support::raw(inner.as_ref(), k).await.value);
    let err = store.load(k).await.expect_err("a tampered record was read");
    let save_err = store
        .save(k, &token(99), Some(version))
        .await
        .expect_err("a save overwrote a record that cannot be opened");
    assert_eq!(save_err.to_string(), err.to_string());
    let lease = store
        .lock(k, std::time::Duration::from_secs(1))
        .await
        .expect("lock");
    for record in [auth_core::Record::Clear, auth_core::Record::Keep] {
        lease
            .save(&token(99), auth_core::Expect::Version(version), record)
            .await
            .expect_err("a leased save overwrote a record that cannot be opened");
    }
    lease
        .mark_in_flight(version)
        .await
        .expect_err("a mark over a record that cannot be opened");
    lease
        .delete(version)
        .await
        .expect_err("a delete of a record that cannot be opened");
    drop(lease);
    let after = support::raw(inner.as_ref(), k).await;
    assert_eq!(after.version, version, "the record's version changed");
    assert_eq!(json(&after.value), before, "the record changed at rest");
    err
}

fn assert_tampered(err: &Error) {
    assert_eq!(err.store_kind(), Some(StoreErrorKind::Corrupt), "{err}");
    assert!(err.to_string().contains("tampered"), "{err}");
}

async fn one_saved() -> (EncryptedStore<MemoryTokenStore>, TokenKey, TokenSet) {
    let (store, inner) = support::memory(&[("k1", 1)]);
    let k = key("fitbit", "alice");
    store.save(&k, &token(1), None).await.expect("save");
    let raw = support::raw(inner.as_ref(), &k).await.value;
    (store, k, raw)
}

#[tokio::test]
async fn a_flipped_bit_in_the_ciphertext_is_tampering() {
    let (store, k, raw) = one_saved().await;
    for (index, bit) in [(24, 0), (30, 7), (40, 3)] {
        let bad = flip_payload(&access_of(&raw), index, bit);
        let err = refused(
            &store,
            &k,
            raw.clone().with_access_secret(SecretString::from(bad)),
        )
        .await;
        assert_tampered(&err);
    }
    // The tag, at the end.
    let r = refresh_of(&raw);
    let last = URL_SAFE_NO_PAD
        .decode(r.split('.').nth(3).unwrap())
        .unwrap()
        .len()
        - 1;
    let bad = flip_payload(&r, last, 0);
    let err = refused(
        &store,
        &k,
        raw.clone().with_refresh_secret(Some(bad.into())),
    )
    .await;
    assert_tampered(&err);
}

#[tokio::test]
async fn a_flipped_bit_in_the_nonce_is_tampering() {
    let (store, k, raw) = one_saved().await;
    for index in [0, 11, 23] {
        let bad = flip_payload(&access_of(&raw), index, 1);
        let err = refused(&store, &k, raw.clone().with_access_secret(bad.into())).await;
        assert_tampered(&err);
    }
}

#[tokio::test]
async fn a_flipped_bit_in_the_key_id_is_tampering() {
    let (store, k, raw) = one_saved().await;
    // '1' ^ 0x02 = '3'.
    let bad = access_of(&raw).replacen("tk1.k1.", "tk1.k3.", 1);
    let err = refused(&store, &k, raw.clone().with_access_secret(bad.into())).await;
    assert_tampered(&err);
}

#[tokio::test]
async fn a_truncated_value_is_tampering() {
    let (store, k, raw) = one_saved().await;
    let whole = access_of(&raw);
    for cut in [
        whole.len() - 1,
        whole.len() - 2,
        whole.len() - 40,
        20,
        12,
        4,
        0,
    ] {
        let bad = whole[..cut].to_owned();
        let err = refused(&store, &k, raw.clone().with_access_secret(bad.into())).await;
        assert_tampered(&err);
    }
}

#[tokio::test]
async fn a_ciphertext_swapped_between_accounts_is_tampering() {
    let (store, inner) = support::memory(&[("k1", 1)]);
    let alice = key("fitbit", "alice");
    let bob = key("fitbit", "bob");
    store.save(&alice, &token(1), None).await.expect("save");
    store.save(&bob, &token(2), None).await.expect("save");
    let a = support::raw(inner.as_ref(), &alice).await.value;
    let b = support::raw(inner.as_ref(), &bob).await.value;
    // One field moved.
    let err = refused(
        &store,
        &bob,
        b.clone().with_refresh_secret(Some(refresh_of(&a).into())),
    )
    .await;
    assert_tampered(&err);
    // The whole record moved, marker and all.
    let err = refused(&store, &bob, a.clone()).await;
    assert_tampered(&err);
    // Alice still reads.
    let loaded = store.load(&alice).await.expect("load").expect("alice");
    assert_eq!(
        access_of(loaded.token.as_ref().expect("a token")),
        support::access(1)
    );
}

#[tokio::test]
async fn a_ciphertext_swapped_between_fields_is_tampering() {
    let (store, k, raw) = one_saved().await;
    let swapped = raw
        .clone()
        .with_access_secret(refresh_of(&raw).into())
        .with_refresh_secret(Some(access_of(&raw).into()));
    let err = refused(&store, &k, swapped).await;
    assert_tampered(&err);
}

#[tokio::test]
async fn a_field_from_an_older_save_is_tampering() {
    let (store, k, first) = one_saved().await;
    let v = support::raw(store.inner().as_ref(), &k).await.version;
    store
        .save(&k, &token(2), Some(v))
        .await
        .expect("second save");
    let second = support::raw(store.inner().as_ref(), &k).await.value;
    let mixed = second.with_refresh_secret(Some(refresh_of(&first).into()));
    let err = refused(&store, &k, mixed).await;
    assert_tampered(&err);
}

#[tokio::test]
async fn a_damaged_marker_is_tampering() {
    let (store, k, raw) = one_saved().await;
    let mut marker = raw.extras()[store_encrypted::MARKER].clone();
    marker["record"] = serde_json::json!("AAAAAAAAAAAAAAAAAAAAAA");
    let err = refused(
        &store,
        &k,
        raw.clone().with_extra(store_encrypted::MARKER, marker),
    )
    .await;
    assert_tampered(&err);
    let err = refused(
        &store,
        &k,
        raw.clone()
            .with_extra(store_encrypted::MARKER, serde_json::json!("junk")),
    )
    .await;
    assert_tampered(&err);
}

#[tokio::test]
async fn a_wrong_key_is_told_apart_from_tampering() {
    let (store, k, raw) = one_saved().await;
    let inner = std::sync::Arc::clone(store.inner());
    let before = json(&raw);
    // The same id, other bytes: the key check value differs.
    let wrong = EncryptedStore::new(std::sync::Arc::clone(&inner), support::ring(&[("k1", 7)]));
    // Another id only: the key is missing.
    let missing = EncryptedStore::new(std::sync::Arc::clone(&inner), support::ring(&[("k2", 2)]));
    for other in [&wrong, &missing] {
        let err = other.load(&k).await.expect_err("read with a wrong key");
        assert!(matches!(err, Error::Configuration { .. }), "{err}");
        let text = err.to_string();
        assert!(text.contains("wrong key k1"), "{text}");
        assert!(text.contains("TEST_TOKEN_KEYS"), "{text}");
        let v = support::raw(inner.as_ref(), &k).await.version;
        let save = other
            .save(&k, &token(5), Some(v))
            .await
            .expect_err("a save replaced a token sealed with another key");
        assert!(matches!(save, Error::Configuration { .. }), "{save}");
        let report = other.rekey(std::time::Duration::from_secs(1)).await;
        assert!(
            matches!(report, Err(Error::Configuration { .. })),
            "{report:?}"
        );
        assert_eq!(json(&support::raw(inner.as_ref(), &k).await.value), before);
    }
}

#[tokio::test]
async fn a_sealed_extra_is_bound_like_the_tokens() {
    let inner = std::sync::Arc::new(MemoryTokenStore::new());
    let store = EncryptedStore::new(std::sync::Arc::clone(&inner), support::ring(&[("k1", 1)]))
        .secret_extras(["id_token"]);
    let k = key("custom", "alice");
    let t = token(1).with_extra("id_token", serde_json::json!({"jwt": "ID-TOKEN-SECRET"}));
    store.save(&k, &t, None).await.expect("save");
    let raw = support::raw(inner.as_ref(), &k).await.value;
    assert!(!json(&raw).contains("ID-TOKEN-SECRET"));
    let loaded = store
        .load(&k)
        .await
        .expect("load")
        .expect("token")
        .token
        .expect("a token");
    assert_eq!(loaded.extras(), t.extras());
    let moved = raw
        .clone()
        .with_extra("id_token", serde_json::json!(access_of(&raw)));
    let err = refused(&store, &k, moved).await;
    assert_tampered(&err);
}
