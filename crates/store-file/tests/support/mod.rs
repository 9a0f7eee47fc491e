//! Helpers shared by the integration tests: stores in temporary
//! directories and the paths of their files. The recognizable tokens come
//! from `test_support::tokens`, child processes and captured logs from
//! `test_support::{child, logs}`.

#![allow(dead_code)] // Each test binary uses its own subset.

use std::path::{Path, PathBuf};
use std::time::Duration;

use auth_core::{Expect, Record, Stored, TokenKey, TokenSet, TokenStore, Version};
use store_file::FileTokenStore;

/// How long the tests wait for a lease they expect to get.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// A store in a fresh temporary directory, removed when the guard drops.
pub(crate) fn temp_store() -> (tempfile::TempDir, FileTokenStore) {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let store = FileTokenStore::open(dir.path().join("tokens")).expect("open the store");
    (dir, store)
}

/// The lock file of `key`'s lease: next to its token file, `.lock` for
/// `.json`.
pub(crate) fn lease_path(store: &FileTokenStore, key: &TokenKey) -> PathBuf {
    let token = store.token_path(key);
    let stem = token
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".json"))
        .expect("token files end in .json")
        .to_owned();
    token.with_file_name(format!("{stem}.lock"))
}

/// The marker of `key` in the in-flight index: `.in-flight/<provider
/// directory>/<account file stem>` under the root.
pub(crate) fn marker_path(store: &FileTokenStore, key: &TokenKey) -> PathBuf {
    let token = store.token_path(key);
    let account = token
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".json"))
        .expect("token files end in .json");
    let provider = token
        .parent()
        .and_then(Path::file_name)
        .expect("a provider directory");
    store.root().join(".in-flight").join(provider).join(account)
}

/// Saves `token` over what `expected` says, through a lease taken and
/// released for the purpose.
pub(crate) async fn save(
    store: &FileTokenStore,
    key: &TokenKey,
    token: &TokenSet,
    expected: Expect,
) -> auth_core::Result<Version> {
    store
        .lock(key, WAIT)
        .await?
        .save_and_release(token, expected, Record::Clear)
        .await
}

/// Creates `key` with `token`, which must not exist yet.
pub(crate) async fn create(store: &FileTokenStore, key: &TokenKey, token: &TokenSet) -> Version {
    save(store, key, token, Expect::Absent)
        .await
        .unwrap_or_else(|e| panic!("create {key}: {e}"))
}

/// Deletes `key` (leaving a tombstone); whether it held a token.
pub(crate) async fn delete(store: &FileTokenStore, key: &TokenKey) -> auth_core::Result<bool> {
    let lease = store.lock(key, WAIT).await?;
    match lease.load().await? {
        Some(row) if row.token.is_some() => {
            lease.delete(row.version).await?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// The token of a row that must hold one.
pub(crate) fn token_of(stored: &Stored) -> &TokenSet {
    stored.token.as_ref().expect("the row holds a token")
}

/// The Unix permission bits of a path.
#[cfg(unix)]
pub(crate) fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o7777
}

/// Every file and directory under `root`, depth first.
pub(crate) fn walk(root: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir") {
            let path = entry.expect("dir entry").path();
            if std::fs::symlink_metadata(&path).expect("lstat").is_dir() {
                stack.push(path.clone());
            }
            out.push(path);
        }
    }
    out
}
