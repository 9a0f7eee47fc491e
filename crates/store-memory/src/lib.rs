//! The reference [`TokenStore`](auth_core::TokenStore): tokens in memory, shared by clones.
//!
//! It is the smallest complete implementation of the contract, used by
//! doctests and tests, and a model for writing your own store. Its locks and
//! compare-and-swap hold **within one process only**: tokens and leases
//! vanish when the process exits. A lease is held until it is released or
//! dropped, so it cannot be lost while its holder lives
//! ([`lease_ttl`](auth_core::TokenStore::lease_ttl) is `None`), and a
//! refresh left in flight is [orphaned](auth_core::TokenStore::orphaned)
//! as soon as its lease is free. For tokens that must outlive the process
//! or be shared between processes, use `store-file` or your own store.
//!
//! ```
//! use auth_core::{Expect, Record, TokenKey, TokenSet, TokenStore};
//! use store_memory::MemoryTokenStore;
//! use std::time::{Duration, SystemTime};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> auth_core::Result<()> {
//! let store = MemoryTokenStore::new();
//! let key = TokenKey::parse("fitbit", "26FWFL")?;
//! // Every write goes through the key's lease.
//! let lease = store.lock(&key, Duration::from_secs(1)).await?;
//! let token = TokenSet::new("a", "Bearer", SystemTime::now());
//! let version = lease.save_and_release(&token, Expect::Absent, Record::Clear).await?;
//! let clone = store.clone();
//! assert_eq!(clone.load(&key).await?.unwrap().version, version);
//! # Ok(())
//! # }
//! ```

mod store;

pub use store::MemoryTokenStore;
