//! What the rows hold: hostile ids stay apart and round trip through
//! parameterized queries, undecodable data is reported and never
//! overwritten, tables needing a newer reader are refused, and several
//! stores live side by side in one database.

mod support;

use std::time::Duration;

use auth_core::{Error, StoreErrorKind, TokenKey, TokenStore};
use store_postgres::PostgresTokenStore;

fn quoted_tokens(store: &PostgresTokenStore) -> String {
    let tables = store.tables();
    let (schema, table) = tables.split_once('.').expect("schema.table");
    format!("\"{schema}\".\"{table}\"")
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
        .flat_map(|id| [support::key("hostile", id), support::key(id, "account")])
        .collect();
    for (i, key) in keys.iter().enumerate() {
        store
            .save(key, &support::token(i as u64), None)
            .await
            .unwrap_or_else(|e| panic!("save {key}: {e}"));
    }
    for (i, key) in keys.iter().enumerate() {
        let loaded = store.load(key).await.expect("load").expect("stored");
        assert_eq!(support::generation_of(&loaded.value), i as u64, "{key}");
        drop(store.lock(key, Duration::from_secs(5)).await.expect("lock"));
    }
    // A provider filter is an equality, never a pattern.
    for id in ["%", "_", "a_c"] {
        let listed = store
            .list(Some(&support::key(id, "account").provider))
            .await
            .expect("list");
        assert_eq!(listed, vec![support::key(id, "account")], "{id}");
    }
    let mut all = store.list(None).await.expect("list all");
    all.sort();
    let mut want = keys.clone();
    want.sort();
    assert_eq!(all, want);
    for key in &keys {
        assert!(store.delete(key).await.expect("delete"), "{key}");
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
        let key = support::key("undecodable", &format!("k{i}"));
        let v = store
            .save(&key, &support::token(1), None)
            .await
            .expect("seed");
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
        for expected in [None, Some(v)] {
            let err = store
                .save(&key, &support::token(2), expected)
                .await
                .expect_err("overwrote damaged data");
            assert_eq!(
                err.store_kind(),
                Some(StoreErrorKind::Corrupt),
                "{data}: {err}"
            );
        }
        let lease = store
            .lock(&key, Duration::from_secs(5))
            .await
            .expect("lock");
        let err = store
            .save_leased(lease.as_ref(), &support::token(2), Some(v))
            .await
            .expect_err("a fenced save overwrote damaged data");
        assert_eq!(err.store_kind(), Some(StoreErrorKind::Corrupt), "{err}");
        drop(lease);
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
        // Listed, and deletable on purpose.
        assert!(store.list(None).await.expect("list").contains(&key));
        assert!(store.delete(&key).await.expect("delete"));
    }
}

#[tokio::test]
async fn a_row_edited_by_hand_that_still_decodes_can_be_saved_over() {
    let store = support::store("hand_edited").await;
    let key = support::key("hand-edited", "Alice");
    let v1 = store
        .save(&key, &support::token(1), None)
        .await
        .expect("seed");
    let edited = serde_json::to_string(&support::token(5)).unwrap();
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
    let loaded = store.load(&key).await.expect("load").expect("there");
    assert_eq!(support::generation_of(&loaded.value), 5);
    let v2 = store
        .save(&key, &support::token(6), Some(v1))
        .await
        .expect("save over decodable hand-edited data");
    assert!(v2 > v1);
    let err = store
        .save(&key, &support::token(7), Some(v1))
        .await
        .expect_err("a stale version won");
    assert_eq!(err.store_kind(), Some(StoreErrorKind::Conflict), "{err}");
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
            .connect(support::cluster::shared().url())
            .await
            .expect_err("opened tables needing a newer reader");
        assert!(matches!(err, Error::Configuration { .. }), "{err}");
        assert!(err.to_string().contains("reader version 99"), "{err}");
    }
    // A newer schema version alone does not lock this code out.
    sqlx::query(&format!(
        "UPDATE \"{schema}\".\"{table}_meta\" SET value = CASE name WHEN 'min_reader_version' THEN 1 ELSE 7 END"
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
        .connect(support::cluster::shared().url())
        .await
        .expect_err("opened missing tables");
    assert!(matches!(err, Error::Configuration { .. }), "{err}");
    assert!(err.to_string().contains("have not been created"), "{err}");
}

#[tokio::test]
async fn stores_on_other_tables_of_one_database_never_meet() {
    let schema = support::unique_schema("side_by_side");
    let url = support::cluster::shared().url();
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
    let key = support::key("side", "Alice");
    a.save(&key, &support::token(1), None)
        .await
        .expect("save a");
    assert!(b.load(&key).await.expect("load b").is_none());
    let _held = a.lock(&key, Duration::from_secs(5)).await.expect("lock a");
    let lease_b = b
        .lock(&key, Duration::from_millis(500))
        .await
        .expect("lock b");
    lease_b.check().await.expect("held");
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
    let leases = format!("{}_leases\"", tokens.trim_end_matches('"'));
    let leased = plan(format!(
        "SELECT EXISTS (SELECT 1 FROM {leases} WHERE provider = 'p7' AND account = 'a7' \
         AND owner = 1 AND expires_at > now()), t.version, t.data::text \
         FROM (VALUES (1)) AS one LEFT JOIN {tokens} AS t \
         ON t.provider = 'p7' AND t.account = 'a7' AND NOT t.deleted"
    ))
    .await;
    assert!(
        leased
            .lines()
            .any(|l| l.contains("Index") && l.contains("token_keeper_tokens t")),
        "load_leased scans the tokens: {leased}"
    );
}
