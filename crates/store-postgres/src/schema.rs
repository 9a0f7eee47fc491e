//! The tables, their migrations, and the reader-version check for rolling
//! deploys; plus every SQL statement the store sends, built once from the
//! checked names.
//!
//! Every statement here binds its values as parameters. Only the checked,
//! quoted schema and table names are formatted into the text.

use auth_core::{Error, Result};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use tracing::info;

use crate::error::{self, Endpoint};
use crate::ident::Ident;

/// The newest schema version this code creates and writes.
pub(crate) const SCHEMA_VERSION: i64 = 2;
/// The reader version of this code: it reads any table whose
/// `min_reader_version` is at most this.
pub(crate) const READER_VERSION: i64 = 2;
/// The `min_reader_version` this code's writes need. It rises only when a
/// migration changes the data so that older code would misread it: schema
/// 2 raised it to 2, because code of schema 1 cannot see a refresh in
/// flight (it would start a new refresh from a token that may already be
/// spent) nor a tombstone's login sequence (it would revive a revoked
/// account with a login older than the revoke). See the crate docs,
/// "Rolling deploys".
pub(crate) const MIN_READER_FOR_WRITES: i64 = 2;

/// The advisory-lock namespace of migrations (the two-key form's first
/// key): `0x746B` is "tk".
const MIGRATION_LOCK_NAMESPACE: i32 = 0x746B;

/// The migrations, in order: `MIGRATIONS[n]` takes the schema from version
/// `n` to `n + 1`. `{tokens}`, `{leases}`, `{live}` and `{in_flight}` are
/// replaced by the quoted, schema-qualified names.
const MIGRATIONS: &[&str] = &[
    // 0 → 1: tokens with tombstones, leases.
    r#"
    CREATE TABLE IF NOT EXISTS {tokens} (
        provider   text COLLATE "C" NOT NULL,
        account    text COLLATE "C" NOT NULL,
        version    bigint NOT NULL,
        deleted    boolean NOT NULL DEFAULT false,
        data       jsonb,
        data_md5   text,
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (provider, account)
    );
    CREATE INDEX IF NOT EXISTS {live} ON {tokens} (provider, account) WHERE NOT deleted;
    -- Unlogged: taking and releasing a lease then needs no WAL flush (see
    -- the crate docs, "Durability of leases").
    CREATE UNLOGGED TABLE IF NOT EXISTS {leases} (
        provider   text COLLATE "C" NOT NULL,
        account    text COLLATE "C" NOT NULL,
        owner      bigint NOT NULL,
        expires_at timestamptz NOT NULL,
        PRIMARY KEY (provider, account)
    );
    "#,
    // 1 → 2: the login sequence of the stored grant, the key's sequence
    // counter (both kept by tombstones), and the write-ahead record of a
    // refresh in flight, with a partial index of the rows that have one.
    // Adding columns with a constant default rewrites no row; schema 1
    // already wrote tombstones with NULL data.
    r#"
    ALTER TABLE {tokens}
        ADD COLUMN IF NOT EXISTS grant_seq bigint NOT NULL DEFAULT 0,
        ADD COLUMN IF NOT EXISTS next_seq bigint NOT NULL DEFAULT 0,
        ADD COLUMN IF NOT EXISTS in_flight_since timestamptz;
    CREATE INDEX IF NOT EXISTS {in_flight} ON {tokens} (in_flight_since)
        WHERE in_flight_since IS NOT NULL;
    "#,
];

/// The names of one store's tables, checked.
#[derive(Debug, Clone)]
pub(crate) struct Names {
    pub(crate) schema: Ident,
    pub(crate) table: Ident,
}

impl Names {
    fn qualified(&self, table: &Ident) -> String {
        format!("{}.{}", self.schema.quoted(), table.quoted())
    }

    pub(crate) fn tokens(&self) -> String {
        self.qualified(&self.table)
    }

    pub(crate) fn leases(&self) -> String {
        self.qualified(&self.table.with_suffix("_leases"))
    }

    pub(crate) fn meta(&self) -> String {
        self.qualified(&self.table.with_suffix("_meta"))
    }

    /// `schema.table`, for messages.
    pub(crate) fn display(&self) -> String {
        format!("{}.{}", self.schema.as_str(), self.table.as_str())
    }

    /// The migration lock's second key: the first 4 bytes of SHA-256 over
    /// the length-prefixed schema and table names, so stores on other
    /// tables never wait for each other (a collision only serializes two
    /// migrations).
    fn migration_lock_key(&self) -> i32 {
        let mut hash = Sha256::new();
        for part in [self.schema.as_str(), self.table.as_str()] {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part.as_bytes());
        }
        let digest = hash.finalize();
        i32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
    }
}

/// The fast check that a row's data may be replaced without reading it:
/// it is a tombstone (no data), or it is in a token format this code reads
/// and byte for byte what this store (or another release of it) wrote, as
/// its checksum says. A row edited by hand fails it, and the store then
/// reads and decodes the row before deciding (see `store.rs`): data it
/// cannot decode is never overwritten.
const UNTOUCHED: &str =
    "(t.data IS NULL OR (t.data -> 'format' = '1'::jsonb AND t.data_md5 = md5(t.data::text)))";

/// A time column as microseconds since the Unix epoch (the crate reads no
/// SQL time types).
fn micros(column: &str) -> String {
    format!("(extract(epoch FROM {column}) * 1000000)::bigint")
}

/// What a write expects to find (the three forms of `Expect`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExpectKind {
    /// No row at all.
    Absent,
    /// The row at a version (`$6`).
    Version,
    /// No row, or a row whose grant sequence is below `$6`.
    Login,
}

/// How a write checks the lease (the fence), in the same statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fence {
    /// Locks the lease row `FOR SHARE` if it is still this owner's and
    /// unexpired: a takeover waits for the write, or the write sees the new
    /// owner and writes nothing.
    Share,
    /// Deletes this owner's lease row (the release) and writes only if it
    /// was unexpired: deleting locks the row just as firmly.
    Release,
}

/// The fence's common table expression: `fence (live)`, one row if the
/// lease row is this owner's (`$3`), `live` when it is also unexpired.
fn fence(leases: &str, kind: Fence) -> String {
    match kind {
        Fence::Share => format!(
            "fence AS MATERIALIZED (SELECT true AS live FROM {leases} \
             WHERE provider = $1 AND account = $2 AND owner = $3 AND expires_at > now() \
             FOR SHARE)"
        ),
        Fence::Release => format!(
            "fence AS MATERIALIZED (DELETE FROM {leases} \
             WHERE provider = $1 AND account = $2 AND owner = $3 \
             RETURNING expires_at > now() AS live)"
        ),
    }
}

/// The fence that also extends the lease to a full TTL (`$ttl`, in
/// milliseconds): an update of the lease row, which locks it like the
/// others.
fn extending_fence(leases: &str, ttl: &str) -> String {
    format!(
        "fence AS MATERIALIZED (UPDATE {leases} \
         SET expires_at = now() + {ttl}::bigint * interval '1 millisecond' \
         WHERE provider = $1 AND account = $2 AND owner = $3 AND expires_at > now() \
         RETURNING true AS live)"
    )
}

/// Whether the fence found the lease held.
const HELD: &str = "EXISTS (SELECT 1 FROM fence WHERE live)";

/// A fenced update of the row at the expected version (`$4`) that writes
/// `set` besides a new version, only over data untouched since a store
/// wrote it, or exactly the data read (`exact`, the parameter holding it).
/// The mark and the delete write no token, but they refuse damaged data
/// too: a store never writes over data it cannot decode.
///
/// Always one row: whether the lease was held, the new version (NULL when
/// nothing was written), and only when nothing was written (the common
/// path reads nothing more), the row's version before, whether its data
/// was untouched, and its data when not.
fn guarded(tokens: &str, fence: &str, set: &str, only: &str, exact: Option<&str>) -> String {
    let guard = match exact {
        Some(param) => format!("t.data = {param}::jsonb"),
        None => UNTOUCHED.to_owned(),
    };
    format!(
        "WITH {fence}, w AS (UPDATE {tokens} AS t SET version = t.version + 1, {set} \
         WHERE t.provider = $1 AND t.account = $2 AND t.version = $4 {only} AND {guard} \
         AND {HELD} RETURNING t.version) \
         SELECT {HELD}, w.version, cur.version, cur.untouched, \
         CASE WHEN cur.untouched THEN NULL ELSE cur.data END \
         FROM (VALUES (1)) AS one LEFT JOIN w ON true LEFT JOIN LATERAL \
         (SELECT t.version, COALESCE({UNTOUCHED}, false) AS untouched, t.data::text AS data \
          FROM {tokens} AS t WHERE t.provider = $1 AND t.account = $2 AND w.version IS NULL) \
         AS cur ON true"
    )
}

/// A save statement: one of each [`ExpectKind`], [`Fence`], and guard
/// (untouched data, or exactly the data read, `$7`). Parameters: `$1`
/// provider, `$2` account, `$3` owner, `$4` the token's JSON, then for
/// `Version` and `Login`: `$5` whether to clear the record, `$6` the
/// expected version or the login's sequence, and `$7` the data read for
/// the exact guard.
///
/// Always one row: whether the lease was held, the new version (NULL when
/// nothing was written), and only when nothing was written (the common
/// path reads nothing more), the row's version and grant before, whether
/// its data was untouched, and its data when it was not (to decode and say
/// why).
fn save_sql(tokens: &str, leases: &str, expect: ExpectKind, kind: Fence, exact: bool) -> String {
    let guard = if exact {
        "t.data = $7::jsonb"
    } else {
        UNTOUCHED
    };
    let record = "in_flight_since = CASE WHEN $5 THEN NULL ELSE t.in_flight_since END";
    let write = match expect {
        ExpectKind::Absent => format!(
            "INSERT INTO {tokens} AS t (provider, account, version, deleted, data, data_md5) \
             SELECT $1::text, $2::text, 1, false, $4::jsonb, md5($4::jsonb::text) \
             FROM fence WHERE live \
             ON CONFLICT (provider, account) DO NOTHING \
             RETURNING t.version"
        ),
        ExpectKind::Version => format!(
            "UPDATE {tokens} AS t SET version = t.version + 1, deleted = false, \
             data = $4::jsonb, data_md5 = md5($4::jsonb::text), updated_at = now(), {record} \
             WHERE t.provider = $1 AND t.account = $2 AND t.version = $6 AND {guard} \
             AND {HELD} \
             RETURNING t.version"
        ),
        ExpectKind::Login => format!(
            "INSERT INTO {tokens} AS t \
             (provider, account, version, deleted, data, data_md5, grant_seq, next_seq) \
             SELECT $1::text, $2::text, 1, false, $4::jsonb, md5($4::jsonb::text), $6, $6 \
             FROM fence WHERE live \
             ON CONFLICT (provider, account) DO UPDATE \
             SET version = t.version + 1, deleted = false, data = EXCLUDED.data, \
             data_md5 = EXCLUDED.data_md5, updated_at = now(), grant_seq = EXCLUDED.grant_seq, \
             next_seq = GREATEST(t.next_seq, EXCLUDED.grant_seq), {record} \
             WHERE t.grant_seq < EXCLUDED.grant_seq AND {guard} \
             RETURNING t.version"
        ),
    };
    format!(
        "WITH {fence}, w AS ({write}) \
         SELECT {HELD}, w.version, cur.version, cur.grant_seq, cur.untouched, \
         CASE WHEN cur.untouched THEN NULL ELSE cur.data END \
         FROM (VALUES (1)) AS one LEFT JOIN w ON true LEFT JOIN LATERAL \
         (SELECT t.version, t.grant_seq, COALESCE({UNTOUCHED}, false) AS untouched, \
          t.data::text AS data \
          FROM {tokens} AS t \
          WHERE t.provider = $1 AND t.account = $2 AND w.version IS NULL) AS cur ON true",
        fence = fence(leases, kind),
    )
}

/// The save statements, by what they expect, how they fence and guard.
#[derive(Debug)]
pub(crate) struct SaveStatements {
    /// Indexed by [`Self::index`].
    sql: Vec<String>,
}

impl SaveStatements {
    const EXPECTS: [ExpectKind; 3] = [ExpectKind::Absent, ExpectKind::Version, ExpectKind::Login];
    const FENCES: [Fence; 2] = [Fence::Share, Fence::Release];

    fn new(tokens: &str, leases: &str) -> Self {
        let mut sql = Vec::new();
        for expect in Self::EXPECTS {
            for kind in Self::FENCES {
                for exact in [false, true] {
                    sql.push(save_sql(tokens, leases, expect, kind, exact));
                }
            }
        }
        Self { sql }
    }

    fn index(expect: ExpectKind, kind: Fence, exact: bool) -> usize {
        let e = Self::EXPECTS.iter().position(|x| *x == expect).unwrap_or(0);
        let f = Self::FENCES.iter().position(|x| *x == kind).unwrap_or(0);
        (e * Self::FENCES.len() + f) * 2 + usize::from(exact)
    }

    /// The statement for one combination.
    pub(crate) fn get(&self, expect: ExpectKind, kind: Fence, exact: bool) -> &str {
        &self.sql[Self::index(expect, kind, exact)]
    }
}

/// Every statement the store sends.
#[derive(Debug)]
pub(crate) struct Statements {
    pub(crate) load: String,
    pub(crate) lock: String,
    pub(crate) lease_load: String,
    /// Untouched guard, then the exact one.
    pub(crate) mark: [String; 2],
    pub(crate) save: SaveStatements,
    /// Untouched guard, then the exact one.
    pub(crate) delete: [String; 2],
    pub(crate) next_sequence: String,
    pub(crate) list_all: String,
    pub(crate) list_provider: String,
    pub(crate) orphaned: String,
    pub(crate) lease_extend: String,
    pub(crate) lease_release: String,
}

impl Statements {
    pub(crate) fn new(names: &Names) -> Self {
        let tokens = names.tokens();
        let leases = names.leases();
        let now = micros("now()");
        // A row as `Stored` needs it: version, data, grant, record, from
        // the table aliased `t`.
        let row = format!(
            "t.version, t.data::text AS data, t.grant_seq, {} AS since",
            micros("t.in_flight_since")
        );
        Self {
            load: format!(
                "SELECT {row}, {now} FROM {tokens} AS t WHERE t.provider = $1 AND t.account = $2"
            ),
            // The take, then the token row read `FOR SHARE` in the same
            // statement: no row back means someone else holds the lease.
            // The lateral join makes the read wait for the take, and the
            // row lock makes it return the newest committed version of the
            // row even if a previous holder's write committed after this
            // statement's snapshot was taken (while the take waited for
            // that writer's lock on the lease row). A row inserted after
            // the snapshot is not seen at all: the row comes back NULL, and
            // the lease reads it again before trusting "no row" (see
            // `lease.rs`). $3 is the owner, $4 the TTL in milliseconds.
            //
            // A row lock on the logged table writes WAL, so the commit
            // would wait for a flush; but nothing of this statement needs
            // to survive a crash (the lease table is unlogged, and a lock
            // is not data), so it commits asynchronously: `set_config`
            // with `is_local` sets `synchronous_commit` for this
            // statement's own transaction only.
            lock: format!(
                "WITH async AS (SELECT set_config('synchronous_commit', 'off', true) AS off), \
                 l AS (INSERT INTO {leases} AS l (provider, account, owner, expires_at) \
                 VALUES ($1, $2, $3, now() + $4::bigint * interval '1 millisecond') \
                 ON CONFLICT (provider, account) DO UPDATE \
                 SET owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at \
                 WHERE l.expires_at <= now() \
                 RETURNING l.provider, l.account) \
                 SELECT r.version, r.data, r.grant_seq, r.since, {now}, (SELECT off FROM async) \
                 FROM l LEFT JOIN LATERAL \
                 (SELECT {row} FROM {tokens} AS t \
                  WHERE t.provider = l.provider AND t.account = l.account FOR SHARE) AS r ON true"
            ),
            // The fenced load, which also extends the lease: always one
            // row, whether the lease is held first, so that a lost lease is
            // never mistaken for no row. The read needs no row lock: the
            // statement that took the lease had committed before this one
            // began, and it waited for every write of earlier holders. $4
            // is the TTL.
            lease_load: format!(
                "WITH {fence} \
                 SELECT {HELD}, r.version, r.data, r.grant_seq, r.since, {now} \
                 FROM (VALUES (1)) AS one LEFT JOIN \
                 (SELECT {row} FROM {tokens} AS t WHERE t.provider = $1 AND t.account = $2) AS r \
                 ON true",
                fence = extending_fence(&leases, "$4"),
            ),
            // The write-ahead record, extending the lease: only on a row
            // with a token at the expected version ($4); an earlier
            // record's `since` is kept. $5 is the TTL.
            mark: [false, true].map(|exact| {
                guarded(
                    &tokens,
                    &extending_fence(&leases, "$5"),
                    "in_flight_since = COALESCE(t.in_flight_since, now()), updated_at = now()",
                    "AND NOT t.deleted",
                    exact.then_some("$6"),
                )
            }),
            save: SaveStatements::new(&tokens, &leases),
            // The tombstone: no token, no record, and as its grant the
            // highest sequence handed out. $4 is the expected version, $5
            // the data read for the exact guard.
            delete: [false, true].map(|exact| {
                guarded(
                    &tokens,
                    &fence(&leases, Fence::Share),
                    "deleted = true, data = NULL, data_md5 = NULL, in_flight_since = NULL, \
                     grant_seq = GREATEST(t.grant_seq, t.next_seq), updated_at = now()",
                    "",
                    exact.then_some("$5"),
                )
            }),
            // The next login sequence: above every number handed out and
            // the stored grant. A key without a row gets one that holds
            // only the counter (no token), which `load` shows as empty.
            next_sequence: format!(
                "WITH {fence}, w AS (INSERT INTO {tokens} AS t \
                 (provider, account, version, deleted, data, data_md5, grant_seq, next_seq) \
                 SELECT $1::text, $2::text, 1, true, NULL, NULL, 0, 1 FROM fence WHERE live \
                 ON CONFLICT (provider, account) DO UPDATE \
                 SET next_seq = GREATEST(t.next_seq, t.grant_seq) + 1 \
                 RETURNING t.next_seq) \
                 SELECT {HELD}, (SELECT next_seq FROM w), NULL::bigint, true, NULL::text",
                fence = fence(&leases, Fence::Share),
            ),
            list_all: format!(
                "SELECT provider, account FROM {tokens} WHERE NOT deleted \
                 ORDER BY provider, account"
            ),
            list_provider: format!(
                "SELECT provider, account FROM {tokens} WHERE provider = $1 AND NOT deleted \
                 ORDER BY account"
            ),
            // Rows with a record (the partial index holds only those),
            // oldest first, whose lease is free or expired. $1 is the limit.
            orphaned: format!(
                "SELECT t.provider, t.account FROM {tokens} AS t \
                 WHERE t.in_flight_since IS NOT NULL AND NOT t.deleted \
                 AND NOT EXISTS (SELECT 1 FROM {leases} AS l \
                 WHERE l.provider = t.provider AND l.account = t.account AND l.expires_at > now()) \
                 ORDER BY t.in_flight_since LIMIT $1"
            ),
            // Every lease due, in one statement: $1, $2 and $3 are arrays of
            // providers, accounts and owners; the rows still theirs and
            // unexpired are extended, and their owners returned.
            lease_extend: format!(
                "UPDATE {leases} AS l SET expires_at = now() + $4::bigint * interval '1 millisecond' \
                 FROM unnest($1::text[], $2::text[], $3::bigint[]) AS h (provider, account, owner) \
                 WHERE l.provider = h.provider AND l.account = h.account AND l.owner = h.owner \
                 AND l.expires_at > now() \
                 RETURNING l.owner"
            ),
            // Deleted, so the table holds only leases in flight (and those
            // of holders that died, until the key is next locked).
            lease_release: format!(
                "DELETE FROM {leases} WHERE provider = $1 AND account = $2 AND owner = $3"
            ),
        }
    }
}

fn migration_sql(names: &Names, step: &str) -> String {
    step.replace("{tokens}", &names.tokens())
        .replace("{leases}", &names.leases())
        .replace("{live}", &names.table.with_suffix("_live").quoted())
        .replace(
            "{in_flight}",
            &names.table.with_suffix("_in_flight").quoted(),
        )
}

/// Brings the tables up to [`SCHEMA_VERSION`] (never down), in one
/// transaction that holds a transaction-scoped advisory lock, so several
/// hosts starting at once migrate once and never see a half-made schema.
pub(crate) async fn migrate(pool: &PgPool, endpoint: &Endpoint, names: &Names) -> Result<()> {
    let fail = |what: &str| {
        let what = format!("{what} (migrating {})", names.display());
        move |e| error::from_sqlx(endpoint, None, &what, e)
    };
    let mut tx = pool.begin().await.map_err(fail("begin a transaction"))?;
    sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
        .bind(MIGRATION_LOCK_NAMESPACE)
        .bind(names.migration_lock_key())
        .execute(&mut *tx)
        .await
        .map_err(fail("take the migration lock"))?;
    sqlx::raw_sql(&format!(
        "CREATE SCHEMA IF NOT EXISTS {schema}; \
         CREATE TABLE IF NOT EXISTS {meta} (name text PRIMARY KEY, value bigint NOT NULL)",
        schema = names.schema.quoted(),
        meta = names.meta(),
    ))
    .execute(&mut *tx)
    .await
    .map_err(fail("create the schema and the metadata table"))?;
    let current: Option<i64> = sqlx::query_scalar(&format!(
        "SELECT value FROM {} WHERE name = 'schema_version'",
        names.meta()
    ))
    .fetch_optional(&mut *tx)
    .await
    .map_err(fail("read the schema version"))?;
    let current = current.unwrap_or(0);
    for (from, step) in MIGRATIONS.iter().enumerate().skip(current.max(0) as usize) {
        info!(table = %names.display(), from, to = from + 1, "migrating the token store");
        sqlx::raw_sql(&migration_sql(names, step))
            .execute(&mut *tx)
            .await
            .map_err(fail(&format!("apply migration {}", from + 1)))?;
    }
    // Never lower either number: a newer deploy may already have raised
    // them, and older code keeps working as long as it can still read.
    sqlx::query(&format!(
        "INSERT INTO {} (name, value) VALUES ('schema_version', $1), ('min_reader_version', $2) \
         ON CONFLICT (name) DO UPDATE SET value = GREATEST({0}.value, EXCLUDED.value)",
        names.meta()
    ))
    .bind(SCHEMA_VERSION)
    .bind(MIN_READER_FOR_WRITES)
    .execute(&mut *tx)
    .await
    .map_err(fail("record the schema version"))?;
    tx.commit().await.map_err(fail("commit the migration"))?;
    Ok(())
}

/// Refuses tables that need a newer reader than this code.
pub(crate) async fn check_reader_version(
    pool: &PgPool,
    endpoint: &Endpoint,
    names: &Names,
) -> Result<()> {
    let min: std::result::Result<Option<i64>, _> = sqlx::query_scalar(&format!(
        "SELECT value FROM {} WHERE name = 'min_reader_version'",
        names.meta()
    ))
    .fetch_optional(pool)
    .await;
    let missing = |e: &sqlx::Error| matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some("42P01"));
    let min = match min {
        Err(e) if missing(&e) => None,
        other => other.map_err(|e| {
            error::from_sqlx(
                endpoint,
                None,
                &format!("read the reader version of {}", names.display()),
                e,
            )
        })?,
    };
    match min {
        Some(min) if min > READER_VERSION => Err(Error::configuration(format!(
            "PostgreSQL token store at {endpoint}: the tables {} need reader version {min}, and \
             this version of store-postgres is reader version {READER_VERSION}: they were \
             migrated by a newer release whose data this one would misread. Upgrade this \
             program; nothing was read or written",
            names.display()
        ))),
        Some(_) => Ok(()),
        None => Err(Error::configuration(format!(
            "PostgreSQL token store at {endpoint}: the tables {} have not been created; open \
             the store once with migrations on (the default), or run them from a deploy job",
            names.display()
        ))),
    }
}
