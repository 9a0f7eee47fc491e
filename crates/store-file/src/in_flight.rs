//! The index of refreshes in flight, so that
//! [`orphaned`](auth_core::TokenStore::orphaned) finds them without reading
//! every account file.
//!
//! The write-ahead record itself lives in the account file, written in the
//! same atomic replace as the rest of the row: that file is the truth. The
//! index is a hint beside it: one empty marker file,
//! `.in-flight/<provider stem>/<account stem>`, for each key whose account
//! file may hold a record. The orphan scan lists the index, never the
//! provider directories, so its cost grows with the keys that have a marker,
//! not with the stored accounts.
//!
//! # Crash ordering
//!
//! The one thing that must never happen is a record without a marker: the
//! scan would never see it, and the refresh would stay orphaned until
//! traffic came. A marker without a record only costs the scan one read.
//! So:
//!
//! 1. **Marking**: the marker is created and made durable (fsync of its
//!    directory) *before* the account file holding the record replaces the
//!    old one. A crash between the two leaves a marker without a record.
//! 2. **Clearing** (a save with [`Record::Clear`](auth_core::Record), a
//!    login, a delete): the account file without the record replaces the old
//!    one first, and the marker is removed after. A crash between the two,
//!    or a removal that the disk never got to keep, leaves a marker without
//!    a record.
//! 3. **A marker without a record** is removed by the scan, but only while
//!    it holds the key's lease (taken without waiting). Every marker is
//!    created and removed under the key's lease, so no mark can be half-way
//!    while the scan looks: it never removes a marker whose record is about
//!    to land.
//!
//! A record is kept ([`Record::Keep`](auth_core::Record)) by a write that
//! makes sure the marker is there first, the same way as step 1: cheap (one
//! `stat`) when it is, which is always unless a person removed it.
//!
//! The marker's creation costs one directory fsync on top of the mark's
//! atomic replace; its removal costs none (a lost removal is step 3's
//! case). Markers are empty: their path names the key's files.

use std::fs;
use std::io;
use std::path::Path;

use auth_core::{Result, TokenKey};
use tracing::{debug, warn};

use crate::format;
use crate::layout::{IN_FLIGHT_DIR, KeyPaths};
use crate::{atomic, error, lock, permissions, store};

/// Makes sure the marker of `paths` exists and is durable.
pub(crate) fn ensure_marker(root: &Path, paths: &KeyPaths, key: &TokenKey) -> Result<()> {
    match fs::symlink_metadata(&paths.marker) {
        Ok(_) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(error::io(
                Some(key),
                "look for the in-flight marker",
                &paths.marker,
                e,
            ));
        }
    }
    let index = root.join(IN_FLIGHT_DIR);
    let fail = |what: &str, path: &Path, e: io::Error| error::io(Some(key), what, path, e);
    if permissions::create_private_dir(&index, false)
        .map_err(|e| fail("create the in-flight index", &index, e))?
    {
        atomic::sync_dir(root).map_err(|e| fail("sync the store directory", root, e))?;
    }
    if permissions::create_private_dir(&paths.marker_dir, false)
        .map_err(|e| fail("create the in-flight index", &paths.marker_dir, e))?
    {
        atomic::sync_dir(&index).map_err(|e| fail("sync the in-flight index", &index, e))?;
    }
    permissions::private_open_options()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&paths.marker)
        .map_err(|e| fail("create the in-flight marker", &paths.marker, e))?;
    atomic::sync_dir(&paths.marker_dir)
        .map_err(|e| fail("sync the in-flight index", &paths.marker_dir, e))
}

/// Removes the marker of `paths`, if there is one. Not made durable: a
/// marker without a record is harmless.
pub(crate) fn remove_marker(paths: &KeyPaths, key: &TokenKey) -> Result<()> {
    match fs::remove_file(&paths.marker) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(error::io(
            Some(key),
            "remove the in-flight marker",
            &paths.marker,
            e,
        )),
    }
}

/// Up to `limit` keys with a record whose lease is free, from the index.
pub(crate) fn orphaned(root: &Path, limit: usize) -> Result<Vec<TokenKey>> {
    let mut found = Vec::new();
    if limit == 0 {
        return Ok(found);
    }
    let index = root.join(IN_FLIGHT_DIR);
    let providers = match fs::read_dir(&index) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(error::io(None, "list the in-flight index", &index, e)),
    };
    for provider in providers {
        let provider =
            provider.map_err(|e| error::io(None, "list the in-flight index", &index, e))?;
        let Some(provider_stem) = provider.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let markers = match fs::read_dir(provider.path()) {
            Ok(entries) => entries,
            // Not a directory, or gone meanwhile.
            Err(_) => continue,
        };
        for marker in markers {
            let marker = marker
                .map_err(|e| error::io(None, "list the in-flight index", &provider.path(), e))?;
            let Some(account_stem) = marker.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let paths = KeyPaths::from_stems(root, &provider_stem, &account_stem);
            if let Some(key) = check(root, &paths) {
                found.push(key);
                if found.len() == limit {
                    return Ok(found);
                }
            }
        }
    }
    Ok(found)
}

/// The key of one marker if its record is orphaned; removes the marker if
/// it has no record.
fn check(root: &Path, paths: &KeyPaths) -> Option<TokenKey> {
    let held = match lock::try_acquire(&paths.lease) {
        Ok(Some(held)) => held,
        // A live holder: not orphaned.
        Ok(None) => return None,
        // The provider directory is gone, and the account file with it.
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let _ = fs::remove_file(&paths.marker);
            return None;
        }
        Err(e) => {
            warn!(path = %paths.lease.display(), error = %e, "orphan scan: cannot try the lease");
            return None;
        }
    };
    let bytes = match store::read_raw(&paths.token) {
        Ok(bytes) => bytes,
        Err(e) => {
            warn!(path = %paths.token.display(), error = %e, "orphan scan: cannot read the account file");
            return None;
        }
    };
    let orphan = match bytes.map(|bytes| format::decode(&bytes)) {
        None => None,
        Some(Ok(row)) if row.in_flight_us.is_some() && row.token.is_some() => {
            // The file must be the key's own, as the marker's name says.
            if KeyPaths::new(root, &row.key).token == paths.token {
                Some(row.key)
            } else {
                warn!(path = %paths.token.display(), "orphan scan: the account file holds another key");
                return None;
            }
        }
        Some(Ok(_)) => None,
        Some(Err(e)) => {
            // Left for a person: `load` reports it.
            warn!(path = %paths.token.display(), error = ?e, "orphan scan: the account file is damaged");
            return None;
        }
    };
    if orphan.is_none() {
        // No record, under the lease: a stale marker (crash ordering, step 3).
        debug!(path = %paths.marker.display(), "removing a stale in-flight marker");
        let _ = fs::remove_file(&paths.marker);
    }
    drop(held);
    orphan
}
