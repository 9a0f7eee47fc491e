//! No key byte in any `Debug`, error or log line, and the key file's mode
//! is checked.

mod support;

use support::SaveExt as _;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use auth_core::{TokenSet, TokenStore};
use base64::Engine as _;
use store_encrypted::{EncryptedStore, KeyRing};
use store_memory::MemoryTokenStore;
use support::token;
use test_support::tokens::key;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("capture").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every way key `n` could be spelled in text.
fn spellings(n: u8) -> Vec<String> {
    let bytes = support::key_bytes(n);
    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    vec![
        b64[..16].to_owned(),
        b64[20..40].to_owned(),
        hex[..16].to_owned(),
        format!("{:?}", &bytes[..6])
            .trim_end_matches(']')
            .to_owned(),
        String::from_utf8_lossy(&bytes[..8]).into_owned(),
    ]
}

#[tokio::test]
async fn no_key_byte_in_debug_errors_or_logs() {
    let capture = Capture::default();
    let writer = capture.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .try_init()
        .expect("the only subscriber in this test binary");

    let mut texts: Vec<String> = Vec::new();
    let inner = Arc::new(MemoryTokenStore::new());
    let store = EncryptedStore::new(Arc::clone(&inner), support::ring(&[("k1", 1), ("k0", 3)]));
    let k = key("fitbit", "alice");
    texts.push(format!("{store:?} {:?}", store.key_ring()));
    // A plaintext read logs a warning.
    let plain = key("fitbit", "plain");
    inner.save(&plain, &token(9), None).await.expect("plain");
    store.load(&plain).await.expect("plain load");
    store.save(&k, &token(1), None).await.expect("save");
    let lease = store.lock(&k, Duration::from_secs(1)).await.expect("lock");
    texts.push(format!("{lease:?}"));
    drop(lease);
    // Every error: wrong key, missing key, tampering, bad key lists.
    for keys in [&[("k1", 2)][..], &[("k9", 1)][..]] {
        let other = EncryptedStore::new(Arc::clone(&inner), support::ring(keys));
        let err = other.load(&k).await.expect_err("wrong key");
        texts.push(format!("{err} {err:?}"));
    }
    let raw = support::raw(inner.as_ref(), &k).await;
    let bad: TokenSet = raw
        .value
        .clone()
        .with_access_secret("tk1.k1.AAAAAA.AAAA".to_owned().into());
    inner
        .save(&k, &bad, Some(raw.version))
        .await
        .expect("tamper");
    let err = store.load(&k).await.expect_err("tampered");
    texts.push(format!("{err} {err:?}"));
    let report = store.rekey(Duration::from_secs(1)).await.expect("rekey");
    texts.push(format!("{report:?}"));
    let e1 = support::entry("k1", 1);
    for bad in [
        e1.replace(':', ""),
        format!("{e1}x"),
        format!("{e1},{e1}"),
        format!("k.1{}", &e1[2..]),
    ] {
        let err = KeyRing::parse(&bad, "environment variable TEST_TOKEN_KEYS").expect_err("bad");
        texts.push(format!("{err} {err:?}"));
    }
    let logs = String::from_utf8(capture.0.lock().expect("capture").clone()).expect("utf-8");
    assert!(
        logs.contains("plain text"),
        "the plaintext warning is missing: {logs}"
    );
    texts.push(logs);
    for text in &texts {
        for n in [1, 2, 3] {
            for spelling in spellings(n) {
                assert!(!text.contains(&spelling), "key {n} leaked: {text}");
            }
        }
        for secret in [support::access(1), support::refresh(1), support::access(9)] {
            assert!(!text.contains(&secret), "a token leaked: {text}");
        }
    }
}

#[cfg(unix)]
#[test]
fn a_key_file_others_can_read_is_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("keys");
    std::fs::write(
        &path,
        format!(
            "# rotated 2026-11\n{}\n{}\n",
            support::entry("k2", 2),
            support::entry("k1", 1)
        ),
    )
    .expect("write");
    for mode in [0o644, 0o640, 0o604, 0o660, 0o601] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        let err = KeyRing::from_file(&path).expect_err("a readable key file was used");
        let text = err.to_string();
        assert!(
            text.contains("chmod 600") && text.contains(&format!("{mode:o}")),
            "{text}"
        );
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let ring = KeyRing::from_file(&path).expect("a private key file");
    assert_eq!(ring.ids().collect::<Vec<_>>(), ["k2", "k1"]);
    assert!(ring.source().contains("key file"));
}

/// An unset variable is named in the error. (Setting one needs `unsafe`
/// in edition 2024, which the workspace forbids; authctl's tests set it in
/// a child process.)
#[test]
fn a_missing_key_variable_is_named() {
    let name = "STORE_ENCRYPTED_TEST_KEYS_NEVER_SET";
    let err = KeyRing::from_env(name).expect_err("unset");
    assert!(
        matches!(err, auth_core::Error::Configuration { .. }),
        "{err}"
    );
    assert!(err.to_string().contains(name), "{err}");
}
