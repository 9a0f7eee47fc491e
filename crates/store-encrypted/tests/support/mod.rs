//! Helpers shared by the integration tests: key rings with known bytes,
//! encrypted stores over memory and file stores, and recognizable tokens.

#![allow(dead_code, reason = "each test binary uses its own subset")]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use auth_core::{Expect, Record, TokenKey, TokenSet, TokenStore, Version};
use base64::Engine as _;
use store_encrypted::{EncryptedStore, KeyRing};
use store_file::FileTokenStore;
use store_memory::MemoryTokenStore;

/// How long the tests wait for a lease they expect to get.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// The bytes of test key `n`: recognizable, so a test can look for them.
pub(crate) fn key_bytes(n: u8) -> [u8; 32] {
    std::array::from_fn(|i| n.wrapping_mul(31).wrapping_add(i as u8 * 7) ^ 0xA5)
}

/// The `KID:BASE64` entry of test key `n` under id `id`.
pub(crate) fn entry(id: &str, n: u8) -> String {
    format!(
        "{id}:{}",
        base64::engine::general_purpose::STANDARD.encode(key_bytes(n))
    )
}

/// A ring of `(id, n)` keys, the first primary.
pub(crate) fn ring(keys: &[(&str, u8)]) -> KeyRing {
    let list: Vec<String> = keys.iter().map(|(id, n)| entry(id, *n)).collect();
    KeyRing::parse(&list.join(","), "environment variable TEST_TOKEN_KEYS").expect("a valid ring")
}

/// An encrypted store over a fresh memory store, and the memory store.
pub(crate) fn memory(
    keys: &[(&str, u8)],
) -> (EncryptedStore<MemoryTokenStore>, Arc<MemoryTokenStore>) {
    let inner = Arc::new(MemoryTokenStore::new());
    (EncryptedStore::new(Arc::clone(&inner), ring(keys)), inner)
}

/// An encrypted store over a file store in a fresh temporary directory.
pub(crate) fn file(
    keys: &[(&str, u8)],
) -> (
    tempfile::TempDir,
    EncryptedStore<FileTokenStore>,
    Arc<FileTokenStore>,
) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let inner = Arc::new(FileTokenStore::open(dir.path().join("tokens")).expect("open"));
    (
        dir,
        EncryptedStore::new(Arc::clone(&inner), ring(keys)),
        inner,
    )
}

/// The access token of generation `n`.
pub(crate) fn access(n: u32) -> String {
    format!("ACCESS-SECRET-{n:04}-f00dfeedcafe")
}

/// The refresh token of generation `n`.
pub(crate) fn refresh(n: u32) -> String {
    format!("REFRESH-SECRET-{n:04}-0badc0ffee11")
}

/// A token of generation `n`.
pub(crate) fn token(n: u32) -> TokenSet {
    TokenSet::new(
        access(n),
        "Bearer",
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_000_000 + u64::from(n)),
    )
    .with_refresh_token(refresh(n))
    .with_expires_in(Duration::from_secs(3600))
    .with_scopes(["activity", "sleep"])
    .with_extra("user_id", serde_json::json!("26FWFL"))
}

/// A stored token and its version.
pub(crate) struct Raw {
    pub(crate) value: TokenSet,
    pub(crate) version: Version,
}

/// The raw stored token of `key` in `inner`, with its version.
pub(crate) async fn raw(inner: &dyn TokenStore, key: &TokenKey) -> Raw {
    let stored = inner
        .load(key)
        .await
        .expect("inner load")
        .expect("a stored row");
    Raw {
        value: stored.token.expect("a stored token"),
        version: stored.version,
    }
}

/// A save as the manager makes one: through the key's lease, taken and
/// released for it, creating the key when `expected` is `None`.
pub(crate) trait SaveExt {
    async fn save(
        &self,
        key: &TokenKey,
        token: &TokenSet,
        expected: Option<Version>,
    ) -> auth_core::Result<Version>;
}

impl<T: TokenStore + ?Sized> SaveExt for T {
    async fn save(
        &self,
        key: &TokenKey,
        token: &TokenSet,
        expected: Option<Version>,
    ) -> auth_core::Result<Version> {
        let expected = expected.map_or(Expect::Absent, Expect::Version);
        self.lock(key, WAIT)
            .await?
            .save_and_release(token, expected, Record::Clear)
            .await
    }
}
