//! A [`TokenStore`](auth_core::TokenStore) that wraps any other store —
//! memory, file, Postgres, your own — and keeps the secrets of every token
//! encrypted in it, each bound to the one account and field it belongs to.
//!
//! [`EncryptedStore`] is a wrapper, not a fork: the inner store is used
//! through the trait and needs no change. Its leases ([`EncryptedLease`])
//! wrap the inner store's and pass every part through (the fenced load, the
//! write-ahead mark, saves keeping or clearing the record, deletes leaving
//! tombstones, login sequence numbers, the release), sealing secrets on the
//! way in and opening them on the way out; `list`, `orphaned` and
//! `lease_ttl` are the inner store's. So it keeps every guarantee the inner
//! store gives (across processes, for the file and Postgres stores), and a
//! refresh through it makes the same calls to the inner store as one
//! without it: no extra round trip.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use std::time::{Duration, SystemTime};
//! use auth_core::secrecy::ExposeSecret;
//! use auth_core::{Expect, Record, TokenKey, TokenSet, TokenStore};
//! use store_encrypted::{EncryptedStore, KeyRing};
//! use store_memory::MemoryTokenStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> auth_core::Result<()> {
//! // Usually `KeyRing::from_env("TOKEN_KEYS")?`, with TOKEN_KEYS=k1:BASE64.
//! let keys = KeyRing::parse(&KeyRing::generate_entry(), "a generated key")?;
//! let inner = Arc::new(MemoryTokenStore::new());
//! let store = EncryptedStore::new(inner.clone(), keys);
//!
//! let key = TokenKey::parse("fitbit", "26FWFL")?;
//! let token = TokenSet::new("access", "Bearer", SystemTime::now()).with_refresh_token("refresh");
//! let lease = store.lock(&key, Duration::from_secs(5)).await?;
//! let login = lease.next_sequence().await?;
//! lease.save_and_release(&token, Expect::Login(login), Record::Clear).await?;
//!
//! // Through the wrapper: the token as saved.
//! let loaded = store.load(&key).await?.unwrap().token.unwrap();
//! assert_eq!(loaded.refresh_token().unwrap().expose_secret(), "refresh");
//! // In the inner store: envelopes only.
//! let at_rest = inner.load(&key).await?.unwrap().token.unwrap();
//! assert!(at_rest.refresh_token().unwrap().expose_secret().starts_with("tk1."));
//! # Ok(())
//! # }
//! ```
//!
//! # What is encrypted, and what is not
//!
//! The trait stores a typed [`TokenSet`](auth_core::TokenSet), so the
//! wrapper replaces the secret strings inside it and leaves the rest
//! readable, so that `authctl status` works without the key.
//!
//! | encrypted | in clear |
//! |---|---|
//! | the access token | provider and account ids (they are the store's key) |
//! | the refresh token | token type, scopes, expiry, issue time |
//! | extras named in [`secret_extras`](EncryptedStore::secret_extras) | other extras (Fitbit's `user_id`), the reauthorization flag and its reason, the refresh cooldown |
//! | | what the inner store keeps beside the token: version, grant sequence, the write-ahead record of a refresh in flight (it holds no secret) |
//! | | the marker: format, record id, key id |
//!
//! Extras hold no credentials (the `TokenSet` docs say so, and the
//! providers drop `id_token`); `secret_extras` is for a custom provider that
//! must keep a secret there.
//!
//! # The envelope
//!
//! Each secret string becomes
//!
//! ```text
//! tk1.<key id>.<key check value>.<base64url(nonce ‖ ciphertext ‖ tag)>
//! ```
//!
//! sealed with XChaCha20-Poly1305 (RustCrypto's `chacha20poly1305`) under a
//! fresh random 192-bit nonce, which is safe at any volume of saves. The
//! key check value is 4 bytes of HMAC-SHA256(key, "token-keeper kcv"); it
//! tells a wrong key from tampered data and says nothing useful about the
//! key.
//!
//! The stored token also gets an extra named [`MARKER`]
//! (`token_keeper_encryption`) holding the format, the key id and a random
//! **record id** drawn anew for every save. That marker is what says the
//! record is encrypted: a token without it is plaintext, whatever its
//! strings look like. No prefix is ever guessed at.
//!
//! The associated data of each envelope is, each part prefixed by its
//! length as 4 big-endian bytes: `tk1` ‖ provider ‖ account ‖ field
//! (`access_token`, `refresh_token` or `extras.<name>`) ‖ record id. So a
//! ciphertext copied to another account, to another field, or from another
//! save of the same account does not open.
//!
//! # Errors
//!
//! - A key id the ring lacks, or a key whose check value differs:
//!   [`Error::Configuration`](auth_core::Error::Configuration), "wrong key
//!   k1", naming where the keys come from ([`KeyRing::source`]).
//! - An envelope that is malformed, cut short, names another key than its
//!   record, or fails to authenticate under a key whose check value
//!   matches: [`Error::Store`](auth_core::Error::Store) of kind
//!   [`Corrupt`](auth_core::StoreErrorKind::Corrupt), "tampered with".
//!
//! A failed open never changes the stored data: `load` never writes, and
//! every write through a lease (a save, a mark, a delete) over a record that
//! cannot be opened fails with the same error, so a tampered record stays
//! for a person to look at. The lease knows a record opens when it has
//! opened (or itself written) that exact version: then the inner store's
//! compare-and-swap on the version is the proof, and no extra read is
//! made; otherwise it reads and opens the record before writing over it
//! (a login's save, a write at a version it never loaded).
//!
//! # What encryption cannot detect
//!
//! - **A whole record rolled back** to an older valid one of the same
//!   account: it authenticates, since the store's version is assigned after
//!   encryption and is not part of the associated data. For single-use
//!   refresh tokens the result is a burned grant, which the provider
//!   reports (`invalid_grant`); protect the store's write access.
//! - **A deleted record**, or a marker removed by someone who then writes
//!   plaintext secrets of their own: a record without the marker is read as
//!   plaintext while [`accept_plaintext`](EncryptedStore::accept_plaintext)
//!   is on. Turn it off once the migration is done.
//! - Changes to what is in clear (scopes, expiry, the reauthorization
//!   flag): they are not authenticated.
//!
//! # Plaintext written before encryption
//!
//! With [`accept_plaintext`](EncryptedStore::accept_plaintext) on (the
//! default), a plaintext token is read, a `tracing` warning is logged at
//! each read, and its next save encrypts it. [`EncryptedStore::rekey`]
//! encrypts them all at once and reports how many it encrypted and how many
//! remain. With it off, a plaintext token is refused with a `Corrupt` error.
//!
//! # Keys and rotation
//!
//! A [`KeyRing`] holds 32-byte keys with ids; the first seals, every key
//! opens. Keys come from an environment variable or a key file of
//! `KID:BASE64` entries (see [`KeyRing`]), are wiped from memory on drop,
//! and never appear in `Debug`, errors or logs.
//!
//! To rotate across many hosts, without any host ever meeting a token it
//! cannot open:
//!
//! 1. add the new key as a **secondary** everywhere (`old,new`), and wait
//!    until every host runs with it;
//! 2. make it the **primary** everywhere (`new,old`): new saves use it,
//!    old tokens still open;
//! 3. run [`rekey`](EncryptedStore::rekey) (`authctl rekey`) once: it seals
//!    every token with the primary key, each under its key's lease and
//!    keeping any refresh in flight recorded, so it is safe while other
//!    processes refresh;
//! 4. **drop the old key** (`new`).
//!
//! # What someone with the disk but not the key learns
//!
//! They can read the clear columns above: which providers and accounts
//! exist, scopes, expiry and issue times, extras, reauthorization flags,
//! key ids, and the length of each secret (to within nothing: the cipher
//! adds a fixed 40 bytes). They can delete records, roll a record back to
//! an older copy of itself, or replace one by plaintext while plaintext is
//! accepted. They cannot read or use any access or refresh token, and
//! cannot move a sealed token to another account, field or save without the
//! wrapper refusing it.

mod envelope;
mod error;
mod key;
mod store;

pub use key::{KEY_LEN, KeyRing, MAX_KEY_ID_LEN, is_valid_key_id};
pub use store::{EncryptedLease, EncryptedStore, MARKER, RekeyReport};
/// Re-exported so callers can hand keys to [`KeyRing::new`].
pub use zeroize::Zeroizing;
