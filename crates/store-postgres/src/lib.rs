//! A [`TokenStore`](auth_core::TokenStore) on PostgreSQL, for apps that run
//! on many hosts: one row per account with compare-and-swap versions, and a
//! key lease that holds across hosts, expires on the database's clock, and
//! fences every write of its holder.
//!
//! [`PostgresTokenStore`] is the store for a web app with several replicas
//! that all refresh the same users' tokens. With it, a
//! [`TokenManager`](auth_core::TokenManager) on each host still refreshes
//! each account **once**, which is what single-use refresh tokens (Fitbit)
//! need: a second refresh with the same token burns the user's grant.
//!
//! # Example
//!
//! ```no_run
//! use std::sync::Arc;
//! use auth_core::TokenManager;
//! use store_postgres::PostgresTokenStore;
//!
//! # async fn run() -> auth_core::Result<()> {
//! // Creates (or migrates) the tables on first connect.
//! let store = PostgresTokenStore::connect(
//!     "postgres://app:secret@db.internal:5432/app?sslmode=verify-full&sslrootcert=/etc/ssl/db-ca.pem",
//! )
//! .await?;
//! let manager = TokenManager::builder(Arc::new(store)) /* .provider(…) */ .build();
//! # Ok(()) }
//! ```
//!
//! [`PostgresTokenStore::builder`] sets the schema and table names, the
//! lease TTL, the pool size and whether to migrate;
//! [`PostgresStoreBuilder::connect_with`] takes [`PgConnectOptions`], and
//! [`PostgresStoreBuilder::from_pool`] an existing [`PgPool`]. The
//! `multi_host` example runs two managers with separate pools on one
//! database and shows one refresh per account.
//!
//! # The lease, and why two hosts cannot both refresh
//!
//! Each held lease is a row in `<table>_leases`: the key, a random 64-bit
//! **owner id** drawn for this lease, and an **expiry on the database's
//! clock** (`now() + TTL`). Every step is one autocommitted statement:
//!
//! - **take**: `INSERT … ON CONFLICT (provider, account) DO UPDATE SET
//!   owner = $new, expires_at = now() + ttl WHERE expires_at <= now()
//!   RETURNING owner`. The primary key admits one row per key, and the
//!   upsert replaces it only once it has expired, so **at most one owner
//!   holds a key at any instant, as the database sees it**. No row back
//!   means someone holds it: the caller polls (5 ms, doubling to
//!   [`lock_poll_interval`](PostgresStoreBuilder::lock_poll_interval),
//!   with jitter, in async sleeps) until its `wait` runs out, then fails
//!   with [`LockTimeout`](auth_core::StoreErrorKind::LockTimeout).
//! - **fenced load**: [`load_leased`](auth_core::TokenStore::load_leased),
//!   which the manager uses to read the token it may refresh from, reads
//!   the lease row and the token row in **one statement**, so in one
//!   snapshot: the token, or `None`, only if the row is still this owner's
//!   and unexpired; otherwise [`LeaseLost`](auth_core::StoreErrorKind::LeaseLost).
//! - **heartbeat**: one task per store (not per lease) wakes every TTL/6
//!   while any lease is held and extends, in one statement, every lease
//!   held through the store that was last extended at least TTL/6 ago, so
//!   each is extended at least every TTL/3, and only if its row is still
//!   its owner's and unexpired. Most leases (a refresh) end before they
//!   need one, and taking or releasing one costs no task.
//! - **fenced write**: [`save_leased`](auth_core::TokenStore::save_leased)
//!   and [`delete_leased`](auth_core::TokenStore::delete_leased), which the
//!   manager uses for every write, run as **one statement** whose first
//!   part locks the lease row `FOR SHARE` if it is still this owner's and
//!   unexpired, and whose `UPDATE` (or `INSERT`) writes only if it found it.
//!   The row lock means a takeover cannot commit between the check and the
//!   write: it waits for the write, or the write sees the new owner and
//!   writes nothing (then the error is
//!   [`LeaseLost`](auth_core::StoreErrorKind::LeaseLost)).
//! - **check**: [`KeyLock::check`](auth_core::KeyLock::check) re-reads the
//!   row; the manager calls it just before it sends a refresh.
//! - **release**: `DELETE … WHERE owner = $mine`, from a spawned task when
//!   the lease is dropped (drop cannot await), or at once with
//!   [`PgLease::release`]. A lease whose holder died, lost its network or
//!   runs without a runtime frees at most **TTL** (default 10 s,
//!   [`lease_ttl`](PostgresStoreBuilder::lease_ttl)) after its last
//!   heartbeat, on the database's clock: no host's clock matters.
//!
//! A host cut off from the database (a partition, a frozen VM, a long GC
//! pause) therefore loses its lease within the TTL, another host takes it
//! and refreshes, and when the first host comes back its save is refused
//! by the fence: it can never overwrite the newer pair with an older one.
//! **Why the take and the load are two statements.** Taking the lease and
//! reading the token in one statement would save a round trip, but under
//! `READ COMMITTED` a statement reads from a snapshot taken when it starts.
//! If the previous holder's fenced save holds the lease row `FOR SHARE`
//! when the take starts, the take waits for that save to commit and then
//! takes the row over; a read in the same statement would still see the
//! token from before that save, and the manager would refresh with a spent
//! refresh token. The fenced load is a separate statement sent after the
//! take returned, so its snapshot includes every write made under an
//! earlier lease.
//!
//! A `lock` future dropped while its `INSERT` is in flight cannot know
//! whether it won, so it releases its owner id from a task just in case; a
//! cancelled waiter leaves nothing held.
//!
//! **Why not a Redis `SET NX PX` lock**, as Nango uses (its own code says
//! "This is not a distributed lock"): that lock has no owner check on
//! release and no fencing, so a holder that stalls past the expiry still
//! writes its result over the next holder's, and two replicas refresh one
//! token. Here the owner id is checked on every extend, release and write,
//! and the write itself is fenced.
//!
//! **Why not session advisory locks** (`pg_advisory_lock`): a lock held by
//! a session dies with the session, but a session behind a partition or
//! on a powered-off host lives until TCP keepalive notices (about two hours
//! on Linux by default); they do not work behind PgBouncer in transaction
//! mode; a pooled connection returns to the pool still holding them; and
//! fencing a write needs the lock's session, so a lease would pin a
//! connection for the whole refresh. Lease rows have none of these
//! problems. Their cost is a few writes per refresh (see *Scale*).
//!
//! **Durability of leases.** The leases table is `UNLOGGED`: taking,
//! extending and releasing a lease write no WAL, so they do not wait for a
//! disk flush, and a lease + load + save + release cycle costs about 1.3×
//! a bare `SELECT … FOR UPDATE` transaction doing the same work on the same
//! server (`BENCHMARKS.md`, section 8). Tokens are
//! in an ordinary, logged table. The price: after a database *crash* (not
//! a clean restart) or a failover to a replica, the leases table starts
//! empty, so every lease is free at once rather than after its TTL. A
//! holder whose refresh was in flight then finds its fenced save refused
//! (`LeaseLost`), never overwriting anything; the manager keeps the new
//! pair in memory and saves it under a new lease. Crash recovery or a
//! failover usually takes longer than the TTL anyway, and a replica
//! streamed asynchronously may miss the newest lease rows even if they were
//! logged, so logging them would buy little.
//!
//! # Connections, pool sizing and PgBouncer
//!
//! No connection and no transaction is held while a lease is held or a
//! refresh is in flight: each operation borrows a pooled connection for
//! one statement (a compare-and-swap that fails reads once more to say
//! why). So **N in-flight refreshes need no connections of their own**;
//! they use one connection for a few milliseconds at each step (take,
//! load, save, release), and the store's heartbeat sends one statement per
//! TTL/6 for all its leases held longer than that. Size the pool for the statements
//! in flight at once: the default of 10 per process serves hundreds of
//! refreshes per second (see *Scale*). Keep the pool's acquire timeout
//! (default 5 s) below the TTL, so a starved heartbeat fails and retries
//! before the lease expires. With [`from_pool`](PostgresStoreBuilder::from_pool)
//! the app's pool is shared; a busy app should give the store its own.
//!
//! **The store keeps its last connection for 50 ms.** sqlx checks every
//! connection handed back to a pool with a ping, a round trip of its own
//! (from a spawned task) before anyone else may use it, which doubled the
//! round trips of the store's one-statement operations and cost the client
//! two thread hand-offs each. So the connection of a statement that ran to
//! its end is kept for the store's next statement instead, and handed back
//! to the pool once it has gone unused for 50 ms, at once when the pool is
//! closed (closing the pool never waits for it), and when the store is
//! dropped. A statement that fails or is cancelled hands its connection
//! back to the pool, which checks it as before. At most one connection is
//! kept per store (clones share it); statements that overlap it use the
//! pool.
//!
//! **PgBouncer in transaction mode works**: leases are rows, not session
//! state, and migrations take a transaction-scoped advisory lock. sqlx
//! uses named prepared statements, which PgBouncer supports in transaction
//! mode from version 1.21 with `max_prepared_statements` set; older
//! PgBouncers need session mode. No `lease_url` for a direct connection is
//! needed.
//!
//! # Tables
//!
//! In the schema (default `public`, see
//! [`schema`](PostgresStoreBuilder::schema)) and named after the table
//! (default `token_keeper_tokens`, see [`table`](PostgresStoreBuilder::table)):
//!
//! ```sql
//! <table>        (provider text, account text,      -- PRIMARY KEY, COLLATE "C"
//!                 version bigint, deleted boolean,  -- tombstones keep versions
//!                 data jsonb,                       -- TokenSet's stored JSON
//!                 data_md5 text, updated_at timestamptz)
//!                + partial index <table>_live (provider, account) WHERE NOT deleted
//! <table>_leases (provider, account, owner bigint, expires_at timestamptz)  -- UNLOGGED
//! <table>_meta   (name text PRIMARY KEY, value bigint)  -- schema_version, min_reader_version
//! ```
//!
//! Names are checked (ASCII letters, digits, `_`) and quoted; every value is
//! a bound parameter, so ids with quotes, `%`, `_` or any case are stored
//! apart and round trip. Queries are checked at run time (no `query!`
//! macros), so the workspace builds without a database.
//!
//! **Migrations** are embedded and run on connect (turn them off with
//! [`migrate(false)`](PostgresStoreBuilder::migrate) and run them from a
//! deploy job) in one transaction under a transaction-scoped advisory lock
//! (namespace `0x746B`, key: the first 4 bytes of SHA-256 over the
//! length-prefixed schema and table names; a collision only serializes two
//! migrations), so hosts starting together migrate once. **Rolling
//! deploys**: `_meta` records `schema_version` and `min_reader_version`,
//! and both only ever rise. Code refuses tables whose `min_reader_version`
//! is above its own reader version with a clear
//! [`Configuration`](auth_core::Error::Configuration) error; a newer
//! release raises `min_reader_version` only when it changes the data so
//! that older code would misread it, so it never locks out older code that
//! can still read.
//!
//! # Compare-and-swap and versions
//!
//! - create-only: `INSERT … ON CONFLICT DO UPDATE … WHERE deleted RETURNING
//!   version`: it succeeds only if no live row exists, and a tombstone
//!   counts as absent; no row back is a
//!   [`Conflict`](auth_core::StoreErrorKind::Conflict);
//! - update: `UPDATE … WHERE version = $expected AND NOT deleted`;
//! - delete marks the row as a tombstone and bumps its version, so a key
//!   deleted and created again never reuses a version.
//!
//! **Undecodable data is never overwritten.** An update replaces a row in
//! one statement only if its data is untouched since a store wrote it (its
//! checksum matches) and in a format this code reads. Otherwise the row is
//! read and decoded first: data this code cannot decode fails the save with
//! [`Corrupt`](auth_core::StoreErrorKind::Corrupt) and stays as it is (so
//! does `load`); data edited by hand that still decodes is replaced by a
//! second compare-and-swap on the exact data read.
//!
//! `load`, `save`, `delete` and the lease statements address one row by its
//! primary key, so their cost does not grow with the table; `list` reads
//! the partial index of live rows, so its cost grows with the rows it
//! returns.
//!
//! # Errors
//!
//! A refused connection, a timeout, a database restarting or shutting down
//! is [`Unavailable`](auth_core::StoreErrorKind::Unavailable) (transient:
//! try again; `authctl` exits 4). A failed login, a missing database,
//! schema or privilege, a bad URL or TLS setup is
//! [`Configuration`](auth_core::Error::Configuration). Every message names
//! the database as `host:port/db`, never the user's password; neither does
//! any `Debug` output or log line of this crate. Token values are never in
//! SQL text, messages or logs.
//!
//! # TLS
//!
//! libpq's URL parameters work: `sslmode=verify-full` with
//! `sslrootcert=/path/to/ca.pem` verifies the server's certificate against
//! a private CA and its name against the host (rustls).
//!
//! # Scale
//!
//! Each refresh through the manager costs five short statements (take,
//! fenced load, the lease check before the request, fenced save, release;
//! plus a share of the store's heartbeat statement, one per TTL/6 for all
//! its leases, when a refresh outlasts TTL/6); only the save waits for a
//! WAL flush (the leases table is unlogged). Google access tokens last one
//! hour, so every account is refreshed about once an hour:
//!
//! | accounts | refreshes/s | statements/s | flushed commits/s | leases in flight (refresh takes 0.3 s) | connections busy (≈0.5 ms/statement) |
//! |---|---|---|---|---|---|
//! | 1,000,000 | 1,000,000 / 3,600 ≈ 280 | ≈ 1,400 | ≈ 280 | 280 × 0.3 ≈ 85 | ≈ 0.7: a pool of 5-10 per host is plenty |
//! | 10,000,000 | ≈ 2,800 | ≈ 14,000 | ≈ 2,800 | ≈ 850 | ≈ 7: e.g. 4 hosts × 5 connections, or a PgBouncer |
//!
//! Leases in flight cost rows, not connections. At 10 million accounts the
//! limits are the primary's flushed commits (group commit on a good disk
//! handles a few thousand a second), about 3 MB/s of WAL for the token rows,
//! and the autovacuum of the small, hot leases table; spread refreshes
//! over the hour (the `Refresher`'s jitter) rather than letting them bunch.
//! Measured figures are in the workspace's `BENCHMARKS.md`.

mod config;
mod conn;
mod error;
mod heartbeat;
mod ident;
mod lease;
mod schema;
mod store;

pub use config::PostgresStoreBuilder;
pub use lease::PgLease;
pub use sqlx::PgPool;
pub use sqlx::postgres::PgConnectOptions;
pub use store::PostgresTokenStore;
