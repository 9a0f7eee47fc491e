//! What the rows hold: hostile ids stay apart and round trip through
//! parameterized queries, undecodable data is reported and never
//! overwritten, schema 1 tables are migrated to schema 2 in place, tables
//! needing a newer reader are refused, and several stores live side by
//! side in one database.

mod support;

use std::time::Duration;

use auth_core::{Error, Expect, Record, Sequence, StoreErrorKind, TokenKey, TokenStore, Version};
use store_postgres::PostgresTokenStore;
use test_support::tokens;

fn quoted_tokens(store: &PostgresTokenStore) -> String {
    support::quoted(store, "")
}

/// Deletes `key` through a lease (a tombstone), whatever its version.
async fn remove(store: &PostgresTokenStore, key: &TokenKey) {
    let lease = store.lock(key, Duration::from_secs(5)).await.expect("lock");
    let version = store.load(key).await.expect("load").expect("a row").version;
    lease.delete(version).await.expect("delete");
}

#[tokio::test]
async fn hostile_ids_are_stored_apart_and_round_trip() {
    let store = support::store("hostile").await;
    let long = "x".repeat(auth_core::MAX_ID_LEN);
    let ids = [
        "o'brien",
        "o''brien",
        "\"quoted\"",
        "100%",
        "%",
        "_",
        "a_c",
        "abc",
        "back`tick",
        "ALICE",
        "alice",
        "Alice",
        "'; DROP TABLE x; --",
        "$1",
        "..",
        "a.b",
        "ünïcødé",
        &long,
    ];
    let keys: Vec<TokenKey> = ids
        .iter()
        .flat_map(|id| [tokens::key("hostile", id), tokens::key(id, "account")])
        .collect();
    for (i, key) in keys.iter().enumerate() {
        support::put(&store, key, &tokens::token(i as u64)).await;
    }
    for (i, key) in keys.iter().enumerate() {
        let loaded = support::stored_token(&store, key).await;
        assert_eq!(tokens::generation_of(&loaded), i as u64, "{key}");
    }
    // A provider filter is an equality, never a pattern.
    for id in ["%", "_", "a_c"] {
        let listed = store
            .list(Some(&tokens::key(id, "account").provider))
            .await
            .expect("list");
        assert_eq!(listed, vec![tokens::key(id, "account")], "{id}");
    }
    let mut all = store.list(None).await.expect("list all");
    all.sort();
    let mut want = keys.clone();
    want.sort();
    assert_eq!(all, want);
    for key in &keys {
        remove(&store, key).await;
    }
    assert!(store.list(None).await.expect("list").is_empty());
}

#[tokio::test]
async fn undecodable_data_is_reported_and_never_overwritten() {
    let store = support::store("undecodable").await;
    let damaged = [
        r#""just a string""#,
        r#"{"format": 1, "access_token": 5, "token_type": "Bearer", "issued_at": "x"}"#,
        r#"{"format": 99, "access_token": "a", "token_type": "Bearer", "issued_at": "2026-01-01T00:00:00Z"}"#,
        r#"{"format": 1, "access_token": "a", "token_type": "Bearer", "issued_at": "not a time"}"#,
    ];
    for (i, data) in damaged.iter().enumerate() {
        let key = tokens::key("undecodable", &format!("k{i}"));
        let v = support::put(&store, &key, &tokens::token(1)).await;
        sqlx::query(&format!(
            "UPDATE {} SET data = $1::jsonb WHERE provider = $2 AND account = $3",
            quoted_tokens(&store)
        ))
        .bind(*data)
        .bind(key.provider.as_str())
        .bind(key.account.as_str())
        .execute(store.pool())
        .await
        .expect("damage the row");

        let err = store.load(&key).await.expect_err("loaded damaged data");
        assert_eq!(
            err.store_kind(),
            Some(StoreErrorKind::Corrupt),
            "{data}: {err}"
        );
        assert!(err.to_string().contains("left untouched"), "{err}");
        let lease = store
            .lock(&key, Duration::from_secs(5))
            .await
            .expect("lock");
        let err = lease
            .load()
            .await
            .expect_err("a leased load of damaged data");
        assert_eq!(err.store_kind(), Some(StoreErrorKind::Corrupt), "{err}");
        for expected in [
            Expect::Absent,
            Expect::Version(v),
            Expect::Version(Version(v.0 + 7)),
            Expect::Login(Sequence(99)),
        ] {
            let err = lease
                .save(&tokens::token(2), expected, Record::Clear)
                .await
                .expect_err("overwrote damaged data");
            // Damage is reported whatever the caller expected.
            assert_eq!(
                err.store_kind(),
                Some(StoreErrorKind::Corrupt),
                "{data} {expected:?}: {err}"
            );
        }
        let err = lease
            .save_and_release(&tokens::token(2), Expect::Version(v), Record::Clear)
            .await
            .expect_err("a save and release overwrote damaged data");
        assert_eq!(err.store_kind(), Some(StoreErrorKind::Corrupt), "{err}");
        let still: String = sqlx::query_scalar(&format!(
            "SELECT data::text FROM {} WHERE provider = $1 AND account = $2",
            quoted_tokens(&store)
        ))
        .bind(key.provider.as_str())
        .bind(key.account.as_str())
        .fetch_one(store.pool())
        .await
        .expect("read back");
        let want: serde_json::Value = serde_json::from_str(data).unwrap();
        let got: serde_json::Value = serde_json::from_str(&still).unwrap();
        assert_eq!(got, want, "the damaged row changed");
        // Listed; not even a delete replaces it (the lease went with the
        // failed save): a person removes it, after looking.
        assert!(store.list(None).await.expect("list").contains(&key));
        let lease = store
            .lock(&key, Duration::from_secs(1))
            .await
            .expect("the failed save and release did not release the lease");
        let err = lease.delete(v).await.expect_err("deleted damaged data");
        assert_eq!(err.store_kind(), Some(StoreErrorKind::Corrupt), "{err}");
        let err = lease
            .mark_in_flight(v)
            .await
            .expect_err("marked damaged data");
        assert_eq!(err.store_kind(), Some(StoreErrorKind::Corrupt), "{err}");
        sqlx::query(&format!(
            "DELETE FROM {} WHERE provider = $1 AND account = $2",
            quoted_tokens(&store)
        ))
        .bind(key.provider.as_str())
        .bind(key.account.as_str())
        .execute(store.pool())
        .await
        .expect("remove the damaged row");
    }
}

#[tokio::test]
async fn a_row_edited_by_hand_that_still_decodes_can_be_saved_over() {
    let store = support::store("hand_edited").await;
    let key = tokens::key("hand-edited", "Alice");
    let v1 = support::put(&store, &key, &tokens::token(1)).await;
    let edited = serde_json::to_string(&tokens::token(5)).unwrap();
    sqlx::query(&format!(
        "UPDATE {} SET data = $1::jsonb WHERE provider = $2 AND account = $3",
        quoted_tokens(&store)
    ))
    .bind(edited)
    .bind(key.provider.as_str())
    .bind(key.account.as_str())
    .execute(store.pool())
    .await
    .expect("edit the row");
    assert_eq!(
        tokens::generation_of(&support::stored_token(&store, &key).await),
        5
    );
    let lease = store
        .lock(&key, Duration::from_secs(5))
        .await
        .expect("lock");
    let v2 = lease
        .save(&tokens::token(6), Expect::Version(v1), Record::Clear)
        .await
        .expect("save over decodable hand-edited data");
    assert!(v2 > v1);
    let err = lease
        .save(&tokens::token(7), Expect::Version(v1), Record::Clear)
        .await
        .expect_err("a stale version won");
    assert_eq!(err.store_kind(), Some(StoreErrorKind::Conflict), "{err}");
    // Edited again: a save that also releases takes the key once more for
    // its second statement, and leaves it free.
    sqlx::query(&format!(
        "UPDATE {} SET data = $1::jsonb WHERE provider = $2 AND account = $3",
        quoted_tokens(&store)
    ))
    .bind(serde_json::to_string(&tokens::token(8)).unwrap())
    .bind(key.provider.as_str())
    .bind(key.account.as_str())
    .execute(store.pool())
    .await
    .expect("edit the row again");
    let v3 = lease
        .save_and_release(&tokens::token(9), Expect::Version(v2), Record::Clear)
        .await
        .expect("save and release over decodable hand-edited data");
    assert!(v3 > v2);
    assert_eq!(
        tokens::generation_of(&support::stored_token(&store, &key).await),
        9
    );
    drop(
        store
            .lock(&key, Duration::from_secs(1))
            .await
            .expect("the lease was left held"),
    );
}

#[tokio::test]
async fn tables_that_need_a_newer_reader_are_refused() {
    let store = support::store("reader").await;
    let tables = store.tables();
    let (schema, table) = tables.split_once('.').unwrap();
    sqlx::query(&format!(
        "UPDATE \"{schema}\".\"{table}_meta\" SET value = 99 WHERE name = 'min_reader_version'"
    ))
    .execute(store.pool())
    .await
    .expect("raise the reader version");
    for migrate in [true, false] {
        let err = support::builder(schema)
            .migrate(migrate)
            .connect(test_support::postgres::shared().url())
            .await
            .expect_err("opened tables needing a newer reader");
        assert!(matches!(err, Error::Configuration { .. }), "{err}");
        assert!(err.to_string().contains("reader version 99"), "{err}");
    }
    // A newer schema version alone does not lock this code out.
    sqlx::query(&format!(
        "UPDATE \"{schema}\".\"{table}_meta\" SET value = CASE name WHEN 'min_reader_version' THEN 2 ELSE 7 END"
    ))
    .execute(store.pool())
    .await
    .expect("newer schema, same reader");
    let again = support::same_tables(&store).await;
    let version: i64 = sqlx::query_scalar(&format!(
        "SELECT value FROM \"{schema}\".\"{table}_meta\" WHERE name = 'schema_version'"
    ))
    .fetch_one(again.pool())
    .await
    .unwrap();
    assert_eq!(version, 7, "an older migrator lowered the schema version");
}

#[tokio::test]
async fn without_migrations_missing_tables_are_a_configuration_error() {
    let err = support::builder(&support::unique_schema("unmigrated"))
        .migrate(false)
        .connect(test_support::postgres::shared().url())
        .await
        .expect_err("opened missing tables");
    assert!(matches!(err, Error::Configuration { .. }), "{err}");
    assert!(err.to_string().contains("have not been created"), "{err}");
}

#[tokio::test]
async fn stores_on_other_tables_of_one_database_never_meet() {
    let schema = support::unique_schema("side_by_side");
    let url = test_support::postgres::shared().url();
    let a = support::builder(&schema)
        .table("a_tokens")
        .connect(url)
        .await
        .expect("a");
    let b = support::builder(&schema)
        .table("b_tokens")
        .connect(url)
        .await
        .expect("b");
    let key = tokens::key("side", "Alice");
    support::put(&a, &key, &tokens::token(1)).await;
    assert!(b.load(&key).await.expect("load b").is_none());
    let _held = a.lock(&key, Duration::from_secs(5)).await.expect("lock a");
    let lease_b = b
        .lock(&key, Duration::from_millis(500))
        .await
        .expect("lock b");
    assert!(lease_b.load().await.expect("held").is_none());
}

#[tokio::test]
async fn list_and_load_use_the_indexes() {
    let store = support::store("plans").await;
    let tokens = quoted_tokens(&store);
    sqlx::query(&format!(
        "INSERT INTO {tokens} (provider, account, version, data) \
         SELECT 'p' || (i % 50), 'a' || i, 1, '{{}}'::jsonb FROM generate_series(1, 20000) i"
    ))
    .execute(store.pool())
    .await
    .expect("fill");
    sqlx::query(&format!("ANALYZE {tokens}"))
        .execute(store.pool())
        .await
        .unwrap();
    let plan = |sql: String| {
        let pool = store.pool().clone();
        async move {
            let rows: Vec<(String,)> = sqlx::query_as(&format!("EXPLAIN {sql}"))
                .fetch_all(&pool)
                .await
                .expect("explain");
            rows.into_iter()
                .map(|(l,)| l)
                .collect::<Vec<_>>()
                .join("\n")
        }
    };
    let by_provider = plan(format!(
        "SELECT provider, account FROM {tokens} WHERE provider = 'p7' AND NOT deleted ORDER BY account"
    ))
    .await;
    assert!(
        by_provider.contains("Index"),
        "list(Some) scans: {by_provider}"
    );
    let one = plan(format!(
        "SELECT version, data::text FROM {tokens} WHERE provider = 'p7' AND account = 'a7' AND NOT deleted"
    ))
    .await;
    assert!(one.contains("Index"), "load scans: {one}");
    let leases = support::quoted(&store, "_leases");
    let locked = plan(format!(
        "WITH l AS (INSERT INTO {leases} AS l (provider, account, owner, expires_at) \
         VALUES ('p7', 'a7', 1, now()) ON CONFLICT (provider, account) DO UPDATE \
         SET owner = EXCLUDED.owner WHERE l.expires_at <= now() RETURNING l.provider, l.account) \
         SELECT r.version FROM l LEFT JOIN LATERAL (SELECT t.version FROM {tokens} AS t \
         WHERE t.provider = l.provider AND t.account = l.account FOR SHARE) AS r ON true"
    ))
    .await;
    assert!(
        locked
            .lines()
            .any(|l| l.contains("Index") && l.contains("token_keeper_tokens t")),
        "the lock statement scans the tokens: {locked}"
    );
}

/// Schema 1's tables, as its release created them, with a live row and a
/// tombstone.
async fn schema_1_tables(pool: &sqlx::PgPool, schema: &str) {
    let tokens = format!("\"{schema}\".\"token_keeper_tokens\"");
    sqlx::raw_sql(&format!(
        r#"
        CREATE SCHEMA "{schema}";
        CREATE TABLE "{schema}"."token_keeper_tokens_meta" (name text PRIMARY KEY, value bigint NOT NULL);
        INSERT INTO "{schema}"."token_keeper_tokens_meta" VALUES ('schema_version', 1), ('min_reader_version', 1);
        CREATE TABLE {tokens} (
            provider   text COLLATE "C" NOT NULL,
            account    text COLLATE "C" NOT NULL,
            version    bigint NOT NULL,
            deleted    boolean NOT NULL DEFAULT false,
            data       jsonb,
            data_md5   text,
            updated_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (provider, account)
        );
        CREATE INDEX "token_keeper_tokens_live" ON {tokens} (provider, account) WHERE NOT deleted;
        CREATE UNLOGGED TABLE "{schema}"."token_keeper_tokens_leases" (
            provider   text COLLATE "C" NOT NULL,
            account    text COLLATE "C" NOT NULL,
            owner      bigint NOT NULL,
            expires_at timestamptz NOT NULL,
            PRIMARY KEY (provider, account)
        );
        INSERT INTO {tokens} (provider, account, version, deleted, data, data_md5)
            VALUES ('fitbit', 'gone', 4, true, NULL, NULL);
        "#
    ))
    .execute(pool)
    .await
    .expect("schema 1 tables");
    let data = serde_json::to_string(&tokens::token(1)).unwrap();
    sqlx::query(&format!(
        "INSERT INTO {tokens} (provider, account, version, data, data_md5) \
         VALUES ('fitbit', 'live', 3, $1::jsonb, md5($1::jsonb::text))"
    ))
    .bind(data)
    .execute(pool)
    .await
    .expect("a schema 1 row");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_1_tables_are_migrated_in_place_and_need_reader_2_afterwards() {
    let schema = support::unique_schema("schema_1");
    let url = test_support::postgres::shared().url();
    let pool = sqlx::PgPool::connect(url).await.expect("connect");
    schema_1_tables(&pool, &schema).await;

    let store = support::builder(&schema)
        .connect(url)
        .await
        .expect("open and migrate schema 1 tables");
    let meta: Vec<(String, i64)> = sqlx::query_as(&format!(
        "SELECT name, value FROM \"{schema}\".\"token_keeper_tokens_meta\" ORDER BY name"
    ))
    .fetch_all(&pool)
    .await
    .expect("meta");
    assert_eq!(
        meta,
        vec![
            ("min_reader_version".to_owned(), 2),
            ("schema_version".to_owned(), 2)
        ],
        "schema 2 needs reader 2: code of schema 1 would refresh over a record and revive \
         tombstones"
    );

    // The live row reads as before, with grant 0 and no record.
    let live = tokens::key("fitbit", "live");
    let stored = store.load(&live).await.expect("load").expect("the row");
    assert_eq!(stored.version, Version(3));
    assert_eq!(stored.grant, Sequence(0));
    assert!(stored.in_flight.is_none());
    assert_eq!(tokens::generation_of(&stored.token.expect("token")), 1);
    // The tombstone is one, keeps its version, and any login beats it.
    let gone = tokens::key("fitbit", "gone");
    let tomb = store
        .load(&gone)
        .await
        .expect("load")
        .expect("the tombstone");
    assert!(tomb.token.is_none());
    assert_eq!(tomb.version, Version(4));
    assert_eq!(store.list(None).await.expect("list"), vec![live.clone()]);
    let lease = store
        .lock(&gone, Duration::from_secs(5))
        .await
        .expect("lock");
    let seq = lease.next_sequence().await.expect("sequence");
    let v = lease
        .save_and_release(&tokens::token(2), Expect::Login(seq), Record::Clear)
        .await
        .expect("a login over a schema 1 tombstone");
    assert!(v > Version(4), "a version was reused across the migration");
    // The record works on a migrated row, and shows up as orphaned.
    let lease = store
        .lock(&live, Duration::from_secs(5))
        .await
        .expect("lock");
    lease.mark_in_flight(Version(3)).await.expect("mark");
    lease.release().await.expect("release");
    assert_eq!(store.orphaned(10).await.expect("orphaned"), vec![live]);

    // Migrating again (another host starting) changes nothing.
    let again = support::same_tables(&store).await;
    assert_eq!(again.list(None).await.expect("list").len(), 2);

    // Code of reader version 1 refuses these tables: it reads
    // `min_reader_version` and compares it with its own 1, as this check
    // does with 2.
    let min: i64 = sqlx::query_scalar(&format!(
        "SELECT value FROM \"{schema}\".\"token_keeper_tokens_meta\" \
         WHERE name = 'min_reader_version'"
    ))
    .fetch_one(&pool)
    .await
    .expect("min reader");
    assert!(min > 1, "schema 1 readers are not refused");
}
