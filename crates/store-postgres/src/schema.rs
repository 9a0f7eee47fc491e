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
pub(crate) const SCHEMA_VERSION: i64 = 1;
/// The reader version of this code: it reads any table whose
/// `min_reader_version` is at most this.
pub(crate) const READER_VERSION: i64 = 1;
/// The `min_reader_version` this code's writes need. It rises only when a
/// migration changes the data so that older code would misread it.
pub(crate) const MIN_READER_FOR_WRITES: i64 = 1;

/// The advisory-lock namespace of migrations (the two-key form's first
/// key): `0x746B` is "tk".
const MIGRATION_LOCK_NAMESPACE: i32 = 0x746B;

/// The migrations, in order: `MIGRATIONS[n]` takes the schema from version
/// `n` to `n + 1`. `{tokens}`, `{leases}` and `{live}` are replaced by the
/// quoted, schema-qualified names.
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
/// it is in a token format this code reads, and it is byte for byte what
/// this store (or another release of it) wrote, as its checksum says. A row
/// edited by hand fails it, and the store then reads and decodes the row
/// before deciding (see `store.rs`): data it cannot decode is never
/// overwritten.
const UNTOUCHED: &str = "t.data -> 'format' = '1'::jsonb AND t.data_md5 = md5(t.data::text)";

/// Every statement the store sends.
#[derive(Debug)]
pub(crate) struct Statements {
    pub(crate) load: String,
    pub(crate) load_leased: String,
    pub(crate) create: String,
    pub(crate) update: String,
    pub(crate) create_fenced: String,
    pub(crate) update_fenced: String,
    pub(crate) update_exact: String,
    pub(crate) update_exact_fenced: String,
    pub(crate) delete: String,
    pub(crate) delete_fenced: String,
    pub(crate) row: String,
    pub(crate) list_all: String,
    pub(crate) list_provider: String,
    pub(crate) lease_acquire: String,
    pub(crate) lease_extend: String,
    pub(crate) lease_release: String,
    pub(crate) lease_check: String,
}

impl Statements {
    pub(crate) fn new(names: &Names) -> Self {
        let tokens = names.tokens();
        let leases = names.leases();
        // The fence: the caller's lease row, locked against a takeover for
        // the rest of the statement, so the lease cannot change hands
        // between this check and the write it guards. `$n` is the owner.
        let fence = |n: u8| {
            format!(
                "WITH fence AS MATERIALIZED (SELECT 1 FROM {leases} \
                 WHERE provider = $1 AND account = $2 AND owner = ${n} AND expires_at > now() \
                 FOR SHARE) "
            )
        };
        let create_body = |source: &str| {
            format!(
                "INSERT INTO {tokens} AS t (provider, account, version, deleted, data, data_md5) \
                 SELECT $1::text, $2::text, 1, false, $3::jsonb, md5($3::jsonb::text) {source} \
                 ON CONFLICT (provider, account) DO UPDATE \
                 SET version = t.version + 1, deleted = false, data = EXCLUDED.data, \
                     data_md5 = EXCLUDED.data_md5, updated_at = now() \
                 WHERE t.deleted \
                 RETURNING t.version"
            )
        };
        // `guard` says the old data may be replaced: untouched since a
        // store wrote it, or exactly the data the caller decoded.
        let update_body = |guard: &str, extra: &str| {
            format!(
                "UPDATE {tokens} AS t SET version = t.version + 1, data = $3::jsonb, \
                 data_md5 = md5($3::jsonb::text), updated_at = now() \
                 WHERE t.provider = $1 AND t.account = $2 AND t.version = $4 AND NOT t.deleted \
                 AND {guard}{extra} \
                 RETURNING t.version"
            )
        };
        let delete_body = |extra: &str| {
            format!(
                "UPDATE {tokens} AS t SET version = t.version + 1, deleted = true, data = NULL, \
                 data_md5 = NULL, updated_at = now() \
                 WHERE t.provider = $1 AND t.account = $2 AND NOT t.deleted{extra} \
                 RETURNING t.version"
            )
        };
        let fenced = " AND EXISTS (SELECT 1 FROM fence)";
        Self {
            load: format!(
                "SELECT version, data::text FROM {tokens} \
                 WHERE provider = $1 AND account = $2 AND NOT deleted"
            ),
            // Always one row: whether the lease is held, then the token's
            // version and data (NULL when there is no live token), so that
            // a lost lease is never mistaken for no token. $3 is the owner.
            load_leased: format!(
                "SELECT EXISTS (SELECT 1 FROM {leases} \
                 WHERE provider = $1 AND account = $2 AND owner = $3 AND expires_at > now()), \
                 t.version, t.data::text \
                 FROM (VALUES (1)) AS one \
                 LEFT JOIN {tokens} AS t \
                 ON t.provider = $1 AND t.account = $2 AND NOT t.deleted"
            ),
            create: create_body(""),
            update: update_body(UNTOUCHED, ""),
            // $4 is the owner.
            create_fenced: format!("{}{}", fence(4), create_body("FROM fence")),
            // $5 is the owner.
            update_fenced: format!("{}{}", fence(5), update_body(UNTOUCHED, fenced)),
            // $5 is the data read.
            update_exact: update_body("t.data = $5::jsonb", ""),
            // $5 is the owner, $6 the data read.
            update_exact_fenced: format!(
                "{}{}",
                fence(5),
                update_body("t.data = $6::jsonb", fenced)
            ),
            delete: delete_body(""),
            // $3 is the owner.
            delete_fenced: format!("{}{}", fence(3), delete_body(fenced)),
            row: format!(
                "SELECT version, deleted, data::text FROM {tokens} \
                 WHERE provider = $1 AND account = $2"
            ),
            list_all: format!(
                "SELECT provider, account FROM {tokens} WHERE NOT deleted \
                 ORDER BY provider, account"
            ),
            list_provider: format!(
                "SELECT provider, account FROM {tokens} WHERE provider = $1 AND NOT deleted \
                 ORDER BY account"
            ),
            lease_acquire: format!(
                "INSERT INTO {leases} AS l (provider, account, owner, expires_at) \
                 VALUES ($1, $2, $3, now() + $4::bigint * interval '1 millisecond') \
                 ON CONFLICT (provider, account) DO UPDATE \
                 SET owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at \
                 WHERE l.expires_at <= now() \
                 RETURNING l.owner"
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
            lease_check: format!(
                "SELECT 1 FROM {leases} \
                 WHERE provider = $1 AND account = $2 AND owner = $3 AND expires_at > now()"
            ),
        }
    }
}

fn migration_sql(names: &Names, step: &str) -> String {
    step.replace("{tokens}", &names.tokens())
        .replace("{leases}", &names.leases())
        .replace("{live}", &names.table.with_suffix("_live").quoted())
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
