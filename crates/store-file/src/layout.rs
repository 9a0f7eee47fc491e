//! Where each key's files live: the mapping from provider and account ids to
//! file names under the store's root.
//!
//! It must never produce a name that leaves its directory (`..`, `.`, a
//! separator), that is hidden (temporary files start with `.`), or that two
//! different ids share, even on a case-insensitive filesystem.
//!
//! # The scheme
//!
//! An id becomes a *stem*: the bytes `a`-`z`, `0`-`9`, `_` and `-` are kept,
//! and every other byte of its UTF-8 form, uppercase letters, `.`, `%`,
//! spaces and non-ASCII included, is written `%XX` (uppercase hex). The stems
//! of two ids differ even when letter case is ignored, because every letter a
//! stem keeps is lowercase and `%XX` never mixes with them. A stem that would
//! be a reserved device name on Windows (`con`, `nul`, …) has its first byte
//! escaped too.
//!
//! A stem longer than [`MAX_STEM_LEN`] bytes (a 256-byte id can need 768) is
//! replaced by `~` and the SHA-256 of the id in lowercase hex. `~` is always
//! escaped in an encoded stem, so hashed and encoded stems never meet; the
//! real ids of a hashed key are read back from inside its token file.
//!
//! The index of refreshes in flight lives apart, in [`IN_FLIGHT_DIR`] under
//! the root: `.in-flight/<provider stem>/<account stem>`, one empty marker
//! file per key whose account file may hold a record (see the `in_flight`
//! module). Its name starts with `.`, which no stem does, so it can never
//! be taken for a provider's directory, even on a case-insensitive
//! filesystem.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use auth_core::TokenKey;
use sha2::{Digest, Sha256};

/// The longest encoded stem kept; longer ones are hashed. With the longest
/// suffix (`.wlock`) a name stays well under the common 255-byte limit.
pub(crate) const MAX_STEM_LEN: usize = 200;

/// The suffix of token files.
pub(crate) const TOKEN_SUFFIX: &str = ".json";
const LEASE_SUFFIX: &str = ".lock";
const WRITE_SUFFIX: &str = ".wlock";

/// The directory of the in-flight index, under the root.
pub(crate) const IN_FLIGHT_DIR: &str = ".in-flight";

/// Marks a hashed stem.
const HASH_MARK: char = '~';

/// Names Windows reserves for devices, whatever the extension.
const RESERVED: [&str; 4] = ["con", "prn", "aux", "nul"];
const RESERVED_NUMBERED: [&str; 2] = ["com", "lpt"];

/// The files of one key.
#[derive(Debug, Clone)]
pub(crate) struct KeyPaths {
    /// The provider's directory.
    pub(crate) dir: PathBuf,
    /// The token file.
    pub(crate) token: PathBuf,
    /// The lease lock file, for [`auth_core::TokenStore::lock`].
    pub(crate) lease: PathBuf,
    /// The write lock file, taken by every write for its read-check-write
    /// step. Files of schema 1 kept a version high-water mark in it.
    pub(crate) write: PathBuf,
    /// The provider's directory in the in-flight index.
    pub(crate) marker_dir: PathBuf,
    /// The key's marker in the in-flight index.
    pub(crate) marker: PathBuf,
}

impl KeyPaths {
    /// The files of `key` under `root`.
    pub(crate) fn new(root: &Path, key: &TokenKey) -> Self {
        Self::from_stems(
            root,
            &stem(key.provider.as_str()),
            &stem(key.account.as_str()),
        )
    }

    /// The files of the key whose provider and account stems are given, as
    /// found in the in-flight index.
    pub(crate) fn from_stems(root: &Path, provider: &str, account: &str) -> Self {
        let dir = root.join(provider);
        let marker_dir = root.join(IN_FLIGHT_DIR).join(provider);
        Self {
            token: dir.join(format!("{account}{TOKEN_SUFFIX}")),
            lease: dir.join(format!("{account}{LEASE_SUFFIX}")),
            write: dir.join(format!("{account}{WRITE_SUFFIX}")),
            marker: marker_dir.join(account),
            marker_dir,
            dir,
        }
    }
}

/// The directory of one provider under `root`.
pub(crate) fn provider_dir(root: &Path, provider: &str) -> PathBuf {
    root.join(stem(provider))
}

fn is_kept(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
}

fn is_reserved(stem: &str) -> bool {
    RESERVED.contains(&stem)
        || RESERVED_NUMBERED.iter().any(|prefix| {
            stem.len() == 4 && stem.starts_with(prefix) && stem.as_bytes()[3].is_ascii_digit()
        })
}

fn escape(out: &mut String, b: u8) {
    // Writing to a String cannot fail.
    let _ = write!(out, "%{b:02X}");
}

/// The escaped form of `id`, however long.
fn encode(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for &b in id.as_bytes() {
        if is_kept(b) {
            out.push(char::from(b));
        } else {
            escape(&mut out, b);
        }
    }
    if is_reserved(&out) {
        let first = out.as_bytes()[0];
        let mut escaped = String::with_capacity(out.len() + 2);
        escape(&mut escaped, first);
        escaped.push_str(&out[1..]);
        out = escaped;
    }
    out
}

fn hashed(id: &str) -> String {
    let digest = Sha256::digest(id.as_bytes());
    let mut out = String::with_capacity(1 + digest.len() * 2);
    out.push(HASH_MARK);
    for b in digest {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// The file-name stem of an id: its escaped form, or its hash when that is
/// too long.
pub(crate) fn stem(id: &str) -> String {
    let encoded = encode(id);
    if encoded.len() <= MAX_STEM_LEN {
        encoded
    } else {
        hashed(id)
    }
}

/// What a stem found on disk says about its id.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decoded {
    /// The id, recovered from the name.
    Id(String),
    /// A hashed stem: the id is inside the token file.
    Hashed,
}

/// Recovers the id from a stem this module wrote; `None` for any name it
/// would never write (so stray files are ignored, not misread).
pub(crate) fn decode(stem: &str) -> Option<Decoded> {
    if stem.is_empty() {
        return None;
    }
    if let Some(hex) = stem.strip_prefix(HASH_MARK) {
        let valid = hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        return valid.then_some(Decoded::Hashed);
    }
    let bytes = stem.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = stem.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let id = String::from_utf8(out).ok()?;
    // Only the one canonical spelling of each id is ours.
    (self::stem(&id) == stem).then_some(Decoded::Id(id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keeps_plain_ids_readable() {
        assert_eq!(stem("fitbit"), "fitbit");
        assert_eq!(stem("google-health"), "google-health");
        assert_eq!(stem("user_42"), "user_42");
    }

    #[test]
    fn escapes_case_dots_percent_and_unicode() {
        assert_eq!(stem("26FWFL"), "26%46%57%46%4C");
        assert_eq!(stem(".."), "%2E%2E");
        assert_eq!(stem("."), "%2E");
        assert_eq!(stem("a b%2F"), "a%20b%252%46");
        assert_eq!(stem("é"), "%C3%A9");
        assert_eq!(stem("~"), "%7E");
    }

    #[test]
    fn escapes_windows_device_names() {
        assert_eq!(stem("con"), "%63on");
        assert_eq!(stem("com1"), "%63om1");
        assert_eq!(stem("lpt9"), "%6Cpt9");
        assert_eq!(stem("console"), "console");
        assert_eq!(decode("%63on"), Some(Decoded::Id("con".into())));
        assert_eq!(decode("con"), None);
    }

    #[test]
    fn long_ids_are_hashed_and_marked() {
        let long = "É".repeat(128);
        let s = stem(&long);
        assert!(s.starts_with('~') && s.len() == 65, "{s}");
        assert_eq!(decode(&s), Some(Decoded::Hashed));
        assert_ne!(stem(&"É".repeat(127)), s);
    }

    #[test]
    fn rejects_names_it_would_not_write() {
        for name in [
            "A", "%41%", "%4", "%zz", "%61", "%4a", "~abc", "", "a.b", "%FF",
        ] {
            assert_eq!(decode(name), None, "{name}");
        }
    }

    #[test]
    fn key_paths_share_a_directory_and_differ_by_suffix() {
        let key = TokenKey::parse("Fitbit", "..").unwrap();
        let paths = KeyPaths::new(Path::new("root"), &key);
        assert_eq!(paths.dir, Path::new("root/%46itbit"));
        assert_eq!(paths.token, Path::new("root/%46itbit/%2E%2E.json"));
        assert_eq!(paths.lease, Path::new("root/%46itbit/%2E%2E.lock"));
        assert_eq!(paths.write, Path::new("root/%46itbit/%2E%2E.wlock"));
        assert_eq!(paths.marker, Path::new("root/.in-flight/%46itbit/%2E%2E"));
        assert_eq!(
            decode(IN_FLIGHT_DIR),
            None,
            "the index looks like a provider"
        );
    }

    fn id_strategy() -> impl Strategy<Value = String> {
        // Any valid id: no control characters or separators, 1..=256 bytes.
        "[^\\p{Cc}/\\\\]{1,80}".prop_filter("at most 256 bytes", |s| s.len() <= 256)
    }

    proptest! {
        #[test]
        fn stems_are_safe_names(id in id_strategy()) {
            let s = stem(&id);
            prop_assert!(!s.is_empty() && s.len() <= MAX_STEM_LEN);
            prop_assert!(!s.starts_with('.'));
            prop_assert!(s.bytes().all(|b| is_kept(b) || b == b'%' || b.is_ascii_uppercase() || b == b'~'));
        }

        #[test]
        fn stems_round_trip(id in id_strategy()) {
            match decode(&stem(&id)) {
                Some(Decoded::Id(back)) => prop_assert_eq!(back, id),
                Some(Decoded::Hashed) => prop_assert!(encode(&id).len() > MAX_STEM_LEN),
                None => prop_assert!(false, "stem of {id:?} does not decode"),
            }
        }

        #[test]
        fn distinct_ids_never_share_a_stem_even_ignoring_case(a in id_strategy(), b in id_strategy()) {
            prop_assume!(a != b);
            prop_assert_ne!(stem(&a).to_ascii_lowercase(), stem(&b).to_ascii_lowercase());
        }

        #[test]
        fn case_variants_get_distinct_stems(id in "[a-zA-Z]{1,40}") {
            let upper = id.to_uppercase();
            let lower = id.to_lowercase();
            prop_assume!(upper != lower);
            prop_assert_ne!(stem(&upper).to_ascii_lowercase(), stem(&lower).to_ascii_lowercase());
        }
    }
}
