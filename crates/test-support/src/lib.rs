//! Helpers shared by the tests and benchmarks of the token-keeper
//! workspace. **Not published**: only a dev-dependency (path, no version)
//! of the crates that use it, so packaging leaves it out of their
//! manifests.
//!
//! One module per thing a test needs:
//!
//! - [`tokens`]: valid keys, and tokens that say which generation they
//!   are, so that a mix of two tokens shows;
//! - [`child`]: a test binary re-running itself as a child process that
//!   plays a role (another process, or another host) and talks in lines;
//! - `logs` (feature `logs`): what code logs through `tracing`, captured
//!   for the tests of its warnings;
//! - `postgres` (feature `postgres`, Unix): a throwaway PostgreSQL
//!   cluster, or the developer's own server;
//! - `oidc_provider` (feature `oidc`): `oidc-provider`, an OpenID
//!   Certified authorization server, run with Node.js.
//!
//! A helper that needs a program the machine may lack (PostgreSQL's
//! server, Node.js and npm) fails, never skips, with a message that says
//! how to install it.

pub mod child;
#[cfg(feature = "logs")]
pub mod logs;
#[cfg(feature = "oidc")]
pub mod oidc_provider;
#[cfg(all(feature = "postgres", unix))]
pub mod postgres;
pub mod tokens;
