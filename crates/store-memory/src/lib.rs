//! The reference [`TokenStore`](auth_core::TokenStore): tokens in memory, shared by clones.
//!
//! It is the smallest complete implementation of the contract, used by
//! doctests and tests, and a model for writing your own store. Its locks and
//! compare-and-swap hold **within one process only**: tokens and leases
//! vanish when the process exits. For tokens that must outlive the process
//! or be shared between processes, use `store-file` or your own store.
//!
//! ```
//! use auth_core::{TokenKey, TokenSet, TokenStore};
//! use store_memory::MemoryTokenStore;
//! use std::time::SystemTime;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> auth_core::Result<()> {
//! let store = MemoryTokenStore::new();
//! let key = TokenKey::parse("fitbit", "26FWFL")?;
//! let version = store.save(&key, &TokenSet::new("a", "Bearer", SystemTime::now()), None).await?;
//! let clone = store.clone();
//! assert_eq!(clone.load(&key).await?.unwrap().version, version);
//! # Ok(())
//! # }
//! ```

mod store;

pub use store::MemoryTokenStore;
