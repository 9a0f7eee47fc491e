//! Listing stored keys: the operation that reads the provider directories.
//!
//! Names are decoded back into ids; where a name is a hash, the ids are read
//! from inside the file. Every account file is read, because a tombstone (a
//! revoked or removed grant) and a file that only keeps a login's sequence
//! counter hold no token and are not listed. It must never list a file this
//! store did not write as a key (temporary files, strays), and one
//! unreadable file must not hide the others: a damaged file whose name
//! tells its key is listed (so a person finds it, and `load` reports it),
//! one whose name is a hash is skipped with a warning.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::Path;

use auth_core::{AccountId, ProviderId, Result, TokenKey};
use tracing::{debug, warn};

use crate::layout::{self, Decoded, TOKEN_SUFFIX};
use crate::{error, format};

/// Every stored key, or those of `provider`, sorted.
pub(crate) fn list(root: &Path, provider: Option<&ProviderId>) -> Result<Vec<TokenKey>> {
    let mut keys = Vec::new();
    if let Some(provider) = provider {
        let dir = layout::provider_dir(root, provider.as_str());
        list_dir(root, &dir, Some(provider.clone()), &mut keys)?;
    } else {
        let entries =
            fs::read_dir(root).map_err(|e| error::io(None, "list the store directory", root, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| error::io(None, "list the store directory", root, e))?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let provider = match layout::decode(&name) {
                Some(Decoded::Id(provider)) => match ProviderId::new(provider) {
                    Ok(provider) => Some(provider),
                    Err(_) => continue,
                },
                Some(Decoded::Hashed) => None,
                None => continue,
            };
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                list_dir(root, &entry.path(), provider, &mut keys)?;
            }
        }
    }
    keys.sort();
    debug!(count = keys.len(), "listed stored keys");
    Ok(keys)
}

/// Lists the keys in one provider directory. `provider` is `None` when the
/// directory's name is a hash: it is then read from the token files.
fn list_dir(
    root: &Path,
    dir: &Path,
    mut provider: Option<ProviderId>,
    out: &mut Vec<TokenKey>,
) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(error::io(None, "list the provider directory", dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| error::io(None, "list the provider directory", dir, e))?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(TOKEN_SUFFIX)) else {
            continue;
        };
        if !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let account = match layout::decode(stem) {
            Some(Decoded::Id(account)) => AccountId::new(account).ok(),
            Some(Decoded::Hashed) => None,
            // Temporary files and anything this store did not write.
            None => continue,
        };
        let path = entry.path();
        let row = read_file_unchecked(&path).map(|bytes| format::decode(&bytes));
        if let (Some(provider), Some(account)) = (&provider, account) {
            match row {
                // A tombstone or a counter: no token to list.
                Some(Ok(row)) if row.token.is_none() => {}
                // A token, or damage for a person to find.
                _ => out.push(TokenKey::new(provider.clone(), account)),
            }
            continue;
        }
        // The name alone does not tell the key: read it from the file.
        match row {
            Some(Ok(row))
                if layout::stem(row.key.account.as_str()) == stem
                    && layout::provider_dir(root, row.key.provider.as_str()) == dir
                    && provider.as_ref().is_none_or(|p| *p == row.key.provider) =>
            {
                provider.get_or_insert_with(|| row.key.provider.clone());
                if row.token.is_some() {
                    out.push(row.key);
                }
            }
            _ => warn!(
                path = %path.display(),
                "not listing token file {}: it cannot be read or holds another key",
                path.display()
            ),
        }
    }
    Ok(())
}

fn read_file_unchecked(path: &Path) -> Option<Vec<u8>> {
    let mut bytes = Vec::new();
    File::open(path)
        .ok()?
        .take(format::MAX_FILE_LEN)
        .read_to_end(&mut bytes)
        .ok()?;
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::KeyPaths;
    use std::time::SystemTime;

    fn save(root: &Path, key: &TokenKey) {
        let paths = KeyPaths::new(root, key);
        fs::create_dir_all(&paths.dir).unwrap();
        let token = auth_core::TokenSet::new("a", "Bearer", SystemTime::UNIX_EPOCH);
        let row = format::Row {
            version: 1,
            token: Some(token),
            ..format::Row::empty(key.clone())
        };
        fs::write(&paths.token, format::encode(&row)).unwrap();
    }

    #[test]
    fn ignores_files_it_did_not_write() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let key = TokenKey::parse("p", "alice").unwrap();
        save(root, &key);
        let dir = root.join("p");
        for stray in [
            "README",
            ".tmp-abc123",
            "A.json",
            "%zz.json",
            "alice.json.bak",
            "alice.lock",
        ] {
            fs::write(dir.join(stray), b"{}").unwrap();
        }
        fs::create_dir(dir.join("sub.json")).unwrap();
        fs::create_dir(root.join("Not-Ours")).unwrap();
        fs::write(root.join("stray-file"), b"x").unwrap();
        assert_eq!(list(root, None).unwrap(), vec![key.clone()]);
        assert_eq!(list(root, Some(&key.provider)).unwrap(), vec![key]);
    }

    #[test]
    fn reads_hashed_names_from_the_files_and_skips_unreadable_ones() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let long = "L".repeat(200);
        let hashed = TokenKey::parse(&long, &long).unwrap();
        let plain = TokenKey::parse(&long, "bob").unwrap();
        save(root, &hashed);
        save(root, &plain);
        let broken = TokenKey::parse(&long, &"M".repeat(200)).unwrap();
        save(root, &broken);
        fs::write(KeyPaths::new(root, &broken).token, b"{ truncated").unwrap();

        let mut want = vec![hashed.clone(), plain.clone()];
        want.sort();
        assert_eq!(list(root, None).unwrap(), want);
        assert_eq!(list(root, Some(&hashed.provider)).unwrap(), want);
    }

    #[test]
    fn tombstones_and_counters_are_not_listed() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let live = TokenKey::parse("p", "live").unwrap();
        save(root, &live);
        let long = "L".repeat(200);
        for (account, version) in [("gone", 5), ("counter", 0), (long.as_str(), 5)] {
            let key = TokenKey::parse("p", account).unwrap();
            let paths = KeyPaths::new(root, &key);
            let row = format::Row {
                version,
                sequence: 3,
                ..format::Row::empty(key)
            };
            fs::write(&paths.token, format::encode(&row)).unwrap();
        }
        assert_eq!(list(root, None).unwrap(), vec![live]);
    }

    #[test]
    fn a_missing_provider_has_no_keys() {
        let tmp = tempfile::tempdir().unwrap();
        let provider = ProviderId::new("nobody").unwrap();
        assert!(list(tmp.path(), Some(&provider)).unwrap().is_empty());
    }
}
