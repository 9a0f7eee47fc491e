//! Account files of schema 1 (before write-ahead records, tombstones and
//! login sequences) are read as they are and turned into schema 2 by their
//! next write.

mod support;

use auth_core::{Expect, Record, Sequence, TokenStore};
use support::WAIT;
use test_support::tokens;

/// The bytes schema 1 wrote for `token` at `version`.
fn schema_1(key: &auth_core::TokenKey, version: u64, token: &auth_core::TokenSet) -> Vec<u8> {
    serde_json::to_vec_pretty(&serde_json::json!({
        "schema": 1,
        "version": version,
        "provider": key.provider.as_str(),
        "account": key.account.as_str(),
        "token": token,
    }))
    .expect("json")
}

fn schema_of(store: &store_file::FileTokenStore, key: &auth_core::TokenKey) -> u64 {
    let value: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.token_path(key)).expect("read")).expect("json");
    value["schema"].as_u64().expect("a schema")
}

#[tokio::test]
async fn a_schema_1_file_loads_and_its_next_write_makes_it_schema_2() {
    let (_dir, store) = support::temp_store();
    let key = tokens::key("fitbit", "26FWFL");
    // A file written by the previous version: a token at version 17.
    support::create(&store, &key, &tokens::token(1)).await;
    std::fs::write(
        store.token_path(&key),
        schema_1(&key, 17, &tokens::token(1)),
    )
    .unwrap();
    assert_eq!(schema_of(&store, &key), 1);

    let row = store.load(&key).await.expect("load").expect("a row");
    assert_eq!(row.version.0, 17);
    assert_eq!(row.grant, Sequence(0));
    assert!(row.in_flight.is_none());
    assert_eq!(tokens::generation_of(support::token_of(&row)), 1);
    assert_eq!(store.list(None).await.expect("list"), vec![key.clone()]);

    let lease = store.lock(&key, WAIT).await.expect("lock");
    let marked = lease.mark_in_flight(row.version).await.expect("mark");
    assert!(marked.0 > 17);
    assert_eq!(schema_of(&store, &key), 2, "the write kept schema 1");
    let row = lease.load().await.expect("load").expect("a row");
    assert!(row.in_flight.is_some());
    assert_eq!(
        tokens::generation_of(support::token_of(&row)),
        1,
        "the token changed"
    );
    // Any login is newer than a grant from before sequences.
    let sequence = lease.next_sequence().await.expect("sequence");
    lease
        .save_and_release(&tokens::token(2), Expect::Login(sequence), Record::Clear)
        .await
        .expect("login over a migrated grant");
}

#[tokio::test]
async fn a_schema_2_file_says_so() {
    // A reader of schema 1 refuses any other schema, with its "written by a
    // newer version of this library; upgrade" error, and never writes over it.
    let (_dir, store) = support::temp_store();
    let key = tokens::key("fitbit", "alice");
    support::create(&store, &key, &tokens::token(1)).await;
    assert_eq!(schema_of(&store, &key), 2);
}
