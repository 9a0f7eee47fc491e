//! [`KeyRing`]: the 32-byte keys that seal and open tokens, each with an id,
//! read from an environment variable or a private key file.
//!
//! Key bytes live in [`Zeroizing`] buffers and in ciphers that wipe their
//! key on drop. Nothing in this module may ever format a key, or the text a
//! key was parsed from, into a `Debug` string, an error or a log line:
//! messages name key ids, entry numbers and where the keys came from only.

use std::fmt;
use std::path::Path;

use auth_core::{Error, Result};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::OsRng;
use chacha20poly1305::aead::rand_core::RngCore as _;
use chacha20poly1305::{KeyInit as _, XChaCha20Poly1305};
use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use zeroize::Zeroizing;

/// The length of a key, in bytes.
pub const KEY_LEN: usize = 32;

/// The longest key id, in characters.
pub const MAX_KEY_ID_LEN: usize = 32;

/// The length of a key check value, in bytes.
pub(crate) const KCV_LEN: usize = 4;

/// What the key check value is an HMAC of. Changing it makes every stored
/// token look as if it was sealed with another key.
const KCV_LABEL: &[u8] = b"token-keeper kcv";

/// Whether `id` is a valid key id: 1 to 32 characters of `[A-Za-z0-9_-]`.
pub fn is_valid_key_id(id: &str) -> bool {
    (1..=MAX_KEY_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// One key of a ring: its id, its check value, and the cipher holding it.
pub(crate) struct Key {
    pub(crate) id: String,
    pub(crate) kcv: [u8; KCV_LEN],
    /// The check value as written in envelopes (base64url, no padding).
    pub(crate) kcv_text: String,
    /// The cipher; `chacha20poly1305` wipes its copy of the key on drop.
    pub(crate) cipher: XChaCha20Poly1305,
}

impl Key {
    fn new(id: String, bytes: &[u8; KEY_LEN]) -> Self {
        let kcv = key_check_value(bytes);
        Self {
            kcv_text: URL_SAFE_NO_PAD.encode(kcv),
            kcv,
            cipher: XChaCha20Poly1305::new(bytes.into()),
            id,
        }
    }
}

/// The first [`KCV_LEN`] bytes of HMAC-SHA256(key, label): tells a wrong key
/// from tampered data without revealing anything useful about the key.
fn key_check_value(bytes: &[u8; KEY_LEN]) -> [u8; KCV_LEN] {
    let mut mac =
        <Hmac<Sha256> as hmac::Mac>::new_from_slice(bytes).expect("HMAC takes keys of any length");
    mac.update(KCV_LABEL);
    let tag = mac.finalize().into_bytes();
    let mut kcv = [0; KCV_LEN];
    kcv.copy_from_slice(&tag[..KCV_LEN]);
    kcv
}

/// The keys of an [`EncryptedStore`](crate::EncryptedStore): the first (the
/// *primary*) seals every token saved; every key opens the tokens sealed
/// with it.
///
/// Keys are 32 random bytes, each with an id of 1 to 32 characters of
/// `[A-Za-z0-9_-]` that is stored in clear in every envelope it seals. They
/// come from a list of `KID:BASE64` entries separated by commas, where
/// `BASE64` is the key in standard base64 with padding (RFC 4648 §4, as
/// `openssl rand -base64 32` prints it):
///
/// ```text
/// k2:7q0w3Lr3n1VXm0e6Z5qFv0oQv9bZk2t4Yl1c8r0sJ1E=,k1:Qm9vbm9vYm9vbm9vYm9vbm9vYm9vbm9vYm9vYm9vYm8=
/// ```
///
/// from an environment variable ([`from_env`](Self::from_env)), a key file
/// ([`from_file`](Self::from_file)) or a string ([`parse`](Self::parse)).
/// [`KeyRing::generate_entry`] makes a new entry (`authctl keygen` prints
/// one).
///
/// Key bytes are wiped from memory when the ring is dropped. `Debug` shows
/// the key ids and where the keys came from, never a key.
pub struct KeyRing {
    keys: Vec<Key>,
    source: String,
}

impl KeyRing {
    /// A ring of `keys`, the first being the primary. `source` says where
    /// the keys came from, for error messages (for example `environment
    /// variable TK_KEYS`).
    ///
    /// # Errors
    ///
    /// [`Error::Configuration`] when there is no key, a key id is invalid,
    /// or two keys share an id.
    pub fn new<I>(keys: I, source: impl Into<String>) -> Result<Self>
    where
        I: IntoIterator<Item = (String, Zeroizing<[u8; KEY_LEN]>)>,
    {
        let source = source.into();
        let mut ring = Vec::new();
        for (id, bytes) in keys {
            if !is_valid_key_id(&id) {
                return Err(Error::configuration(format!(
                    "key id {id:?} from {source} is not 1 to {MAX_KEY_ID_LEN} characters of \
                     A-Z, a-z, 0-9, '_' and '-'; rename it"
                )));
            }
            if ring.iter().any(|k: &Key| k.id == id) {
                return Err(Error::configuration(format!(
                    "key id {id} appears twice in {source}; give every key its own id"
                )));
            }
            ring.push(Key::new(id, &bytes));
        }
        if ring.is_empty() {
            return Err(Error::configuration(format!(
                "{source} holds no key; it must hold KID:BASE64 entries separated by commas \
                 (`authctl keygen` prints one)"
            )));
        }
        Ok(Self { keys: ring, source })
    }

    /// Parses `KID:BASE64` entries separated by commas (or newlines); the
    /// first is the primary. Blank entries and lines starting with `#` are
    /// skipped, and spaces around an entry are ignored.
    ///
    /// # Errors
    ///
    /// [`Error::Configuration`] naming the entry and `source` (never its
    /// value) when an entry has no `:`, an invalid id, or a key that is not
    /// 32 bytes in standard padded base64; and as [`new`](Self::new).
    pub fn parse(list: &str, source: impl Into<String>) -> Result<Self> {
        let source = source.into();
        let mut keys = Vec::new();
        let entries = list
            .lines()
            .map(str::trim)
            .filter(|line| !line.starts_with('#'))
            .flat_map(|line| line.split(','))
            .map(str::trim)
            .filter(|entry| !entry.is_empty());
        for (index, entry) in entries.enumerate() {
            let number = index + 1;
            let Some((id, encoded)) = entry.split_once(':') else {
                return Err(Error::configuration(format!(
                    "entry {number} of {source} has no ':'; every entry is KID:BASE64"
                )));
            };
            let id = id.trim();
            if !is_valid_key_id(id) {
                return Err(Error::configuration(format!(
                    "entry {number} of {source} has an invalid key id (1 to {MAX_KEY_ID_LEN} \
                     characters of A-Z, a-z, 0-9, '_' and '-')"
                )));
            }
            let decoded = Zeroizing::new(STANDARD.decode(encoded.trim()).unwrap_or_default());
            let Ok(bytes) = <[u8; KEY_LEN]>::try_from(decoded.as_slice()) else {
                return Err(Error::configuration(format!(
                    "key {id} (entry {number} of {source}) is not {KEY_LEN} bytes in standard \
                     base64 with padding; make one with `authctl keygen` or `openssl rand \
                     -base64 32`"
                )));
            };
            keys.push((id.to_owned(), Zeroizing::new(bytes)));
        }
        Self::new(keys, source)
    }

    /// Reads the ring from the environment variable `name`.
    ///
    /// # Errors
    ///
    /// [`Error::Configuration`] when the variable is unset, not UTF-8 or
    /// empty, and as [`parse`](Self::parse).
    pub fn from_env(name: &str) -> Result<Self> {
        let source = format!("environment variable {name}");
        let value = std::env::var_os(name).ok_or_else(|| {
            Error::configuration(format!(
                "{source} is not set; set it to KID:BASE64 entries separated by commas \
                 (`authctl keygen` prints one)"
            ))
        })?;
        let value = Zeroizing::new(value.into_string().map_err(|_| {
            Error::configuration(format!(
                "{source} is not valid UTF-8; it must be KID:BASE64,…"
            ))
        })?);
        Self::parse(&value, source)
    }

    /// Reads the ring from a key file: `KID:BASE64` entries separated by
    /// commas or newlines, `#` comments allowed.
    ///
    /// On Unix the file is refused if group or other users have any access
    /// to it: a key others can read protects nothing.
    ///
    /// # Errors
    ///
    /// [`Error::Configuration`] when the file cannot be read, others may
    /// access it (the message gives the `chmod`), and as
    /// [`parse`](Self::parse).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let source = format!("key file {}", path.display());
        let metadata = std::fs::metadata(path).map_err(|e| {
            Error::configuration(format!("cannot read {source} ({e}); check the path"))
                .with_source(e)
        })?;
        if let Some(mode) = loose_mode(&metadata) {
            return Err(Error::configuration(format!(
                "{source} can be accessed by other users (mode {mode:o}), so it was not used; \
                 run `chmod 600 {}`",
                path.display()
            )));
        }
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
            Error::configuration(format!("cannot read {source} ({e}); check the path"))
                .with_source(e)
        })?);
        Self::parse(&text, source)
    }

    /// A new `KID:BASE64` entry: a random id (`k` and 10 hex digits) and a
    /// random key from the operating system's generator.
    pub fn generate_entry() -> Zeroizing<String> {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        OsRng.fill_bytes(key.as_mut());
        let mut id = [0u8; 5];
        OsRng.fill_bytes(&mut id);
        let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
        Zeroizing::new(format!("k{id}:{}", STANDARD.encode(key.as_ref())))
    }

    /// The primary key's id: the key that seals every save.
    pub fn primary_id(&self) -> &str {
        &self.keys[0].id
    }

    /// Every key id, the primary first.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.id.as_str())
    }

    /// Where the keys came from, for messages.
    pub fn source(&self) -> &str {
        &self.source
    }

    pub(crate) fn primary(&self) -> &Key {
        &self.keys[0]
    }

    pub(crate) fn get(&self, id: &str) -> Option<&Key> {
        self.keys.iter().find(|k| k.id == id)
    }
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("ids", &self.ids().collect::<Vec<_>>())
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// The mode of `metadata` when group or other users have any access to it.
#[cfg(unix)]
fn loose_mode(metadata: &std::fs::Metadata) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = metadata.permissions().mode() & 0o7777;
    (mode & 0o077 != 0).then_some(mode)
}

/// Other platforms have no mode bits; the file inherits its directory's
/// access control.
#[cfg(not(unix))]
fn loose_mode(_metadata: &std::fs::Metadata) -> Option<u32> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    #[test]
    fn parses_entries_in_order() {
        let ring =
            KeyRing::parse(&format!("k2:{},{K1}", STANDARD.encode([9u8; 32])), "test").unwrap();
        assert_eq!(ring.primary_id(), "k2");
        assert_eq!(ring.ids().collect::<Vec<_>>(), ["k2", "k1"]);
        assert!(ring.get("k1").is_some() && ring.get("k3").is_none());
    }

    #[test]
    fn refuses_bad_entries_without_echoing_them() {
        let secret_text = "c2VjcmV0LWtleS1tYXRlcmlhbA==";
        for bad in [
            format!("k1{secret_text}"),
            format!("k1:{secret_text}"),
            format!("bad.id:{}", STANDARD.encode([1u8; 32])),
            format!("{}:{}", "x".repeat(33), STANDARD.encode([1u8; 32])),
            format!("k1:{}", URL_SAFE_NO_PAD.encode([0xfbu8; 32])),
            format!("{K1},{K1}"),
            String::new(),
        ] {
            let err = KeyRing::parse(&bad, "environment variable TEST_KEYS").unwrap_err();
            let text = err.to_string();
            assert!(matches!(err, Error::Configuration { .. }), "{text}");
            assert!(!text.contains(secret_text), "{text}");
            assert!(!text.contains("AAECAwQF"), "{text}");
            assert!(text.contains("TEST_KEYS"), "{text}");
        }
    }

    #[test]
    fn key_ids_are_checked() {
        assert!(is_valid_key_id("k1") && is_valid_key_id("A_b-9"));
        assert!(is_valid_key_id(&"x".repeat(32)));
        for bad in ["", "k.1", "k 1", "ключ", &"x".repeat(33)] {
            assert!(!is_valid_key_id(bad), "{bad}");
        }
    }

    #[test]
    fn generated_entries_parse_and_differ() {
        let a = KeyRing::generate_entry();
        let b = KeyRing::generate_entry();
        assert_ne!(*a, *b);
        let ring = KeyRing::parse(&a, "test").unwrap();
        assert_eq!(ring.primary_id().len(), 11);
    }

    #[test]
    fn debug_shows_ids_only() {
        let ring = KeyRing::parse(K1, "test").unwrap();
        let text = format!("{ring:?}");
        assert!(text.contains("k1") && !text.contains("AAECAwQF"), "{text}");
    }
}
