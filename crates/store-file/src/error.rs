//! The store's failures, as [`auth_core::Error::Store`] values that say what
//! failed, for which key and file, and what to do next.
//!
//! No message here may contain a token: they name paths, versions and
//! kinds of damage only.

use std::io;
use std::path::Path;
use std::time::Duration;

use auth_core::{Error, Expect, StoreErrorKind, TokenKey};

use crate::format::{DecodeError, Row};

/// An I/O failure while doing `what` on `path`.
pub(crate) fn io(key: Option<&TokenKey>, what: &str, path: &Path, err: io::Error) -> Error {
    let hint = match err.kind() {
        io::ErrorKind::PermissionDenied => {
            "; check that this user owns the store directory and may read and write it"
        }
        io::ErrorKind::NotFound => "; check that the store directory still exists",
        _ => "",
    };
    Error::store(
        StoreErrorKind::Io,
        key.cloned(),
        format!("could not {what} {} ({err}){hint}", path.display()),
    )
    .with_source(err)
}

/// A token file that cannot be decoded.
pub(crate) fn corrupt(key: Option<&TokenKey>, path: &Path, err: &DecodeError) -> Error {
    let message = match err {
        DecodeError::Newer {
            field,
            found,
            supported,
        } => format!(
            "token file {} has {field} {found}, written by a newer version of this library \
             (this one reads {field} {supported} at most); upgrade to use it. The file was \
             left untouched",
            path.display(),
        ),
        DecodeError::Invalid(reason) => format!(
            "token file {} is damaged: {reason}. It was left untouched, and no write will \
             replace it: move it aside (keep it for inspection), then authorize the account again",
            path.display(),
        ),
    };
    Error::store(StoreErrorKind::Corrupt, key.cloned(), message)
}

/// A token file that holds another key's token.
pub(crate) fn misplaced(key: &TokenKey, path: &Path, found: &TokenKey) -> Error {
    Error::store(
        StoreErrorKind::Corrupt,
        Some(key.clone()),
        format!(
            "token file {} holds the token of {found}, not of {key}; it was probably moved or \
             copied by hand. It was left untouched: move it back or aside",
            path.display(),
        ),
    )
}

/// A write that found the key otherwise than it expected.
pub(crate) fn conflict(key: &TokenKey, expected: Expect, current: Option<&Row>) -> Error {
    let found = match current.filter(|r| r.is_row()) {
        None => "no token".to_owned(),
        Some(row) if row.token.is_none() => format!(
            "a tombstone at version v{} (grant #{})",
            row.version, row.grant
        ),
        Some(row) => format!("version v{} (grant #{})", row.version, row.grant),
    };
    let wanted = match expected {
        Expect::Absent => "no token yet".to_owned(),
        Expect::Version(v) => format!("version {v}"),
        Expect::Login(s) => format!("a grant older than login {s}"),
    };
    Error::store(
        StoreErrorKind::Conflict,
        Some(key.clone()),
        format!("expected {wanted}, found {found}; reload the token and try again"),
    )
}

/// A lock file held by someone else for the whole wait.
pub(crate) fn lock_timeout(key: &TokenKey, which: &str, path: &Path, wait: Duration) -> Error {
    Error::store(
        StoreErrorKind::LockTimeout,
        Some(key.clone()),
        format!(
            "could not take the {which} {} within {wait:?}: another task or process holds it \
             (a refresh or save in progress?). Try again; if it never frees, look for a stuck \
             process that has this file open",
            path.display(),
        ),
    )
}

/// A blocking task that ended without an answer.
pub(crate) fn task_lost(err: &tokio::task::JoinError) -> Error {
    Error::store(
        StoreErrorKind::Other,
        None,
        format!("a file store task was cancelled before it finished ({err}); try again"),
    )
}
