//! A [`TokenStore`](auth_core::TokenStore) on PostgreSQL, for apps that run
//! on many hosts: one row per account with compare-and-swap versions, and a
//! key lease that holds across hosts, expires on the database's clock, and
//! fences every write of its holder.
//!
//! (Full docs: see below.)

mod config;
mod error;
mod ident;
mod lease;
mod schema;
mod store;

pub use config::PostgresStoreBuilder;
pub use lease::PgLease;
pub use sqlx::PgPool;
pub use sqlx::postgres::PgConnectOptions;
pub use store::PostgresTokenStore;
