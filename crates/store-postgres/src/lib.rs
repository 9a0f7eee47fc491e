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
//! clock** (`now() + TTL`, 10 s by default, see
//! [`lease_ttl`](PostgresStoreBuilder::lease_ttl); the store reports it
//! through [`TokenStore::lease_ttl`](auth_core::TokenStore::lease_ttl)).
//! The lease is the only way to write a key, and every step is one
//! autocommitted statement:
//!
//! - **take** ([`lock`](auth_core::TokenStore::lock)): `INSERT … ON
//!   CONFLICT (provider, account) DO UPDATE SET owner = $new, expires_at =
//!   now() + ttl WHERE expires_at <= now()`. The primary key admits one
//!   row per key, and the upsert replaces it only once it has expired, so
//!   **at most one owner holds a key at any instant, as the database sees
//!   it**. No row back means someone holds it: the caller polls (5 ms,
//!   doubling to [`lock_poll_interval`](PostgresStoreBuilder::lock_poll_interval),
//!   with jitter, in async sleeps) until its `wait` runs out, then fails
//!   with [`LockTimeout`](auth_core::StoreErrorKind::LockTimeout). The same
//!   statement reads the key's row (see *One refresh, three statements*).
//! - **heartbeat**: one task per store (not per lease) wakes every TTL/6
//!   while any lease is held and extends, in one statement, every lease
//!   held through the store that was last extended at least TTL/6 ago, so
//!   each is extended at least every TTL/3, and only if its row is still
//!   its owner's and unexpired. Most leases (a refresh) end before they
//!   need one, and taking or releasing one costs no task.
//! - **fenced writes** ([`PgLease`]'s `mark_in_flight`, `save`,
//!   `save_and_release`, `delete`, `next_sequence`, and its `load`): one
//!   statement each, whose first part locks the caller's lease row if it
//!   is still this owner's and unexpired (`FOR SHARE`; or an `UPDATE` that
//!   extends it, for the record and the load; or the `DELETE` that
//!   releases it, for `save_and_release`), and whose write happens only if
//!   it found it. The row lock means a takeover cannot commit between the
//!   check and the write: it waits for the write, or the write sees the new
//!   owner and writes nothing (then the error is
//!   [`LeaseLost`](auth_core::StoreErrorKind::LeaseLost)). There is no
//!   check-then-write anywhere.
//! - **release**: `DELETE … WHERE owner = $mine`, from a spawned task when
//!   the lease is dropped (drop cannot await), at once with
//!   [`release`](auth_core::Lease::release), or in the statement of
//!   `save_and_release`. A lease whose holder died, lost its network or
//!   runs without a runtime frees at most **TTL** after its last
//!   heartbeat, on the database's clock: no host's clock matters.
//!
//! A host cut off from the database (a partition, a frozen VM, a long GC
//! pause) therefore loses its lease within the TTL, another host takes it
//! and refreshes, and when the first host comes back its writes are
//! refused by the fence: it can never overwrite the newer pair with an
//! older one.
//!
//! A `lock` future dropped while its statement is in flight cannot know
//! whether it won, so it releases its owner id from a task just in case; a
//! cancelled waiter leaves nothing held.
//!
//! # One refresh, three statements
//!
//! A refresh through the [`TokenManager`](auth_core::TokenManager)
//! (`force_refresh`, or the `Refresher`) sends exactly three statements on
//! an unencrypted store, as a test counts on the wire:
//!
//! 1. **the take and the read**: the lease is taken and the token row read
//!    in one statement; the lease's first [`load`](auth_core::Lease::load)
//!    returns that row without a round trip of its own;
//! 2. **the mark**: the write-ahead record "a refresh of this version is in
//!    flight", stamped with the database's `now()`, which also extends the
//!    lease to a full TTL;
//! 3. **the save, the clear and the release**: the new pair written, the
//!    record cleared and the lease row deleted in one statement
//!    ([`save_and_release`](auth_core::Lease::save_and_release)).
//!
//! **Why the read in the take is `FOR SHARE`.** Under `READ COMMITTED` a
//! statement reads from a snapshot taken when it starts. If the previous
//! holder's fenced save holds its lease row when the take starts, the take
//! waits for that save to commit and then takes the row over; a plain read
//! in the same statement would still see the token from *before* that
//! save, and the manager would refresh with a spent refresh token. The
//! token row is therefore read through a lateral join that runs after the
//! take, with `FOR SHARE`: a row lock finds the row version committed last,
//! whatever the snapshot says, and waits for any write in progress. A row
//! *created* after the snapshot is not seen at all, even so: so the take's
//! "no row" is never trusted, and the first load of a key that had no row
//! reads it again (one statement more, for a key never stored). A test
//! plays exactly that interleaving: a writer that commits while the take
//! waits for it, once updating the row and once creating it.
//!
//! The row lock writes WAL, so the take would wait for a WAL flush at its
//! commit; nothing it does needs to survive a crash (the lease table is
//! unlogged, and a lock is not data), so the statement commits
//! asynchronously (`set_config('synchronous_commit', 'off', true)`, for its
//! own transaction only; a test checks that the session stays durable).
//! Of the three statements only the mark and the save wait for a flush.
//!
//! The first load is served from the take only within a twentieth of the
//! TTL after it (the manager asks at once): the lease then has at least 95%
//! of the full TTL the take gave it, as if the load had extended it. Any
//! later load is a statement that extends the lease and reads the row.
//!
//! # The write-ahead record and orphaned refreshes
//!
//! The record lives in the logged tokens table, as the column
//! `in_flight_since` of the key's row (NULL when there is none); it holds
//! no secret. The mark keeps an earlier `since`, so a record's age counts
//! from its first attempt, measured against `now()` of the statement that
//! reads it ([`Stored::read_at`](auth_core::Stored::read_at)). A save with
//! `Record::Keep` keeps it; `Record::Clear`, a login and a delete clear it.
//!
//! [`orphaned`](auth_core::TokenStore::orphaned) is one statement on a
//! partial index of the rows with a record (`<table>_in_flight`, oldest
//! first), joined against the leases table for a lease that is free or
//! expired, so its cost follows the number of records, not of accounts; a
//! test checks its plan. It first waits (at most the TTL) for this
//! process's releases of dropped leases to reach the database, so that a
//! lease the process dropped before the call counts as free.

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
//! disk flush. Tokens, their records and sequences are in an ordinary,
//! logged table. The price: after a database *crash* (not a clean
//! restart) or a failover to a replica, the leases table starts empty, so
//! every lease is free at once rather than after its TTL. A holder whose
//! refresh was in flight then finds its fenced save refused (`LeaseLost`),
//! never overwriting anything; its record is still in the tokens table, so
//! whoever takes the key next replays the refresh, and the holder, if it
//! still lives, saves its pair under a new lease. Crash recovery or a
//! failover usually takes longer than the TTL anyway, and a replica
//! streamed asynchronously may miss the newest lease rows even if they
//! were logged, so logging them would buy little.

//! # Connections, pool sizing and PgBouncer
//!
//! No connection and no transaction is held while a lease is held or a
//! refresh is in flight: each operation borrows a pooled connection for
//! one statement (a write that fails says why in the same statement). So
//! **N in-flight refreshes need no connections of their own**; they use
//! one connection for a few milliseconds at each step (take, mark, save),
//! and the store's heartbeat sends one statement per TTL/6 for all its
//! leases held longer than that. Size the pool for the statements
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
//!                 version bigint,                   -- compare-and-swap; grows across deletes
//!                 deleted boolean, data jsonb,      -- TokenSet's stored JSON; a tombstone: deleted, data NULL
//!                 data_md5 text, updated_at timestamptz,
//!                 grant_seq bigint,                 -- the login sequence of the stored grant
//!                 next_seq bigint,                  -- the highest login sequence handed out
//!                 in_flight_since timestamptz)      -- the write-ahead record, NULL when none
//!                + partial index <table>_live (provider, account) WHERE NOT deleted
//!                + partial index <table>_in_flight (in_flight_since) WHERE in_flight_since IS NOT NULL
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
//! migrations), so hosts starting together migrate once. Schema 2 (this
//! release) adds the three columns with constant defaults, which rewrites
//! no row, and builds the partial index, which reads the table once.
//!
//! # Rolling deploys: reader version 2
//!
//! `_meta` records `schema_version` and `min_reader_version`, and both only
//! ever rise. Code refuses, when it opens the store, tables whose
//! `min_reader_version` is above its own reader version with a clear
//! [`Configuration`](auth_core::Error::Configuration) error; a release
//! raises `min_reader_version` only when it changes the data so that older
//! code would misread it.
//!
//! **Schema 2 needs reader version 2**, so releases of schema 1 (reader
//! version 1) refuse the tables once this release has migrated them. They
//! would misread the new rows in ways that lose grants: they cannot see a
//! refresh in flight (a host of schema 1 would refresh anew from a token
//! that a dead holder may already have spent, instead of replaying it,
//! and would leave records behind), and they ignore the login sequence
//! (their create revives a tombstone whatever login it came from, so a
//! login older than a revoke could land after it). The change is additive,
//! so processes of schema 1 that are already running keep working until
//! they are replaced, without the new guarantees; start no new ones. To
//! roll back to a release of schema 1, set `min_reader_version` back to 1
//! by hand, knowing that.
//!
//! # Compare-and-swap, tombstones and login sequences
//!
//! Every write is one fenced statement, addressed by the primary key:
//!
//! - `Expect::Absent` (a fenced create): `INSERT … ON CONFLICT DO
//!   NOTHING`: only if no row exists, not even a tombstone;
//! - `Expect::Version(v)`: `UPDATE … WHERE version = v`;
//! - `Expect::Login(s)`: an upsert that writes only over no row or a row
//!   whose `grant_seq` is below `s`, and sets it to `s`;
//! - `delete(v)` leaves a **tombstone**: no data, no record, the version
//!   bumped, and as its `grant_seq` the highest sequence handed out, so a
//!   login sequenced before the delete fails and a later one succeeds;
//!   `list` and `orphaned` skip tombstones, `load` shows one as a row
//!   without a token;
//! - `next_sequence` raises `next_seq` (above it and the stored grant) and
//!   returns it; a key without a row gets one that holds only the counter.
//!
//! Each statement answers in one row whether the lease was held, the new
//! version, and the row as it was, so a refused write says why (`LeaseLost`
//! or `Conflict`, naming what was expected and found) without a second
//! read.
//!
//! **Undecodable data is never overwritten.** A write replaces a row only
//! if its data is untouched since a store wrote it (its checksum matches)
//! and in a format this code reads, or it is a tombstone. Otherwise the row
//! is decoded first: data this code cannot decode fails the write (a save,
//! a mark or a delete) with [`Corrupt`](auth_core::StoreErrorKind::Corrupt)
//! and stays as it is (so does `load`); data edited by hand that still
//! decodes is replaced by a second statement that checks it is exactly the
//! data read.
//!
//! `load`, the lease statements and the writes address one row by its
//! primary key, so their cost does not grow with the table; `list` reads
//! the partial index of live rows, so its cost grows with the rows it
//! returns, and `orphaned` the partial index of records.

//! # Errors
//!
//! A refused connection, a timeout, a database restarting or shutting down
//! is [`Unavailable`](auth_core::StoreErrorKind::Unavailable) (transient:
//! try again; `authctl` exits 4). The message says the root cause in words
//! ("connection refused: nothing accepts connections at that address", "the
//! server did not answer", "the connection was cut"): sqlx retries a
//! refused connection until the pool's acquire timeout and then reports
//! only that the pool timed out, so the store then connects once more,
//! directly (at most 1 s), and reports what that meets; only when that
//! connection succeeds is the answer that every pooled connection stayed
//! busy. A failed login, a missing database,
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
//! Each refresh through the manager costs three short statements (the take
//! and read, the mark, the save and release; plus a share of the store's
//! heartbeat statement, one per TTL/6 for all its leases, when a refresh
//! outlasts TTL/6); two of them wait for a WAL flush (the mark and the
//! save). Google access tokens last one hour, so every account is
//! refreshed about once an hour (Google's refresh tokens do not rotate, so
//! the manager writes no record for them: two statements and one flush):
//!
//! | accounts | refreshes/s | statements/s | flushed commits/s | leases in flight (refresh takes 0.3 s) | connections busy (≈0.5 ms/statement) |
//! |---|---|---|---|---|---|
//! | 1,000,000 | 1,000,000 / 3,600 ≈ 280 | ≈ 840 | ≤ 560 | 280 × 0.3 ≈ 85 | ≈ 0.4: a pool of 5-10 per host is plenty |
//! | 10,000,000 | ≈ 2,800 | ≈ 8,400 | ≤ 5,600 | ≈ 850 | ≈ 4: e.g. 4 hosts × 5 connections, or a PgBouncer |
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
