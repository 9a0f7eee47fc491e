//! Schema 2's rows at work: the write-ahead record (stamped on the
//! database's clock, kept by `Record::Keep`, cleared by a definite outcome,
//! a login and a delete), orphaned refreshes found by one indexed query
//! once their lease is free or expired, tombstones that refuse older
//! logins, and login sequences that survive deletes and other hosts.

mod support;

use std::time::{Duration, SystemTime};

use auth_core::{Expect, Record, StoreErrorKind, TokenStore};
use test_support::tokens;

/// The database's clock now.
async fn db_now(store: &store_postgres::PostgresTokenStore) -> SystemTime {
    let micros: i64 = sqlx::query_scalar("SELECT (extract(epoch FROM now()) * 1000000)::bigint")
        .fetch_one(store.pool())
        .await
        .expect("now()");
    SystemTime::UNIX_EPOCH + Duration::from_micros(micros as u64)
}

#[tokio::test]
async fn the_record_is_stamped_on_the_database_clock_kept_and_cleared() {
    let store = support::store("records").await;
    let key = tokens::key("records", "Alice");
    let v1 = support::put(&store, &key, &tokens::token(1)).await;

    let lease = store
        .lock(&key, Duration::from_secs(5))
        .await
        .expect("lock");
    let before = db_now(&store).await;
    let v2 = lease.mark_in_flight(v1).await.expect("mark");
    let after = db_now(&store).await;
    assert!(v2 > v1);
    let stored = lease.load().await.expect("load").expect("row");
    assert_eq!(stored.version, v2);
    let since = stored.in_flight.expect("no record after the mark").since;
    assert!(
        before <= since && since <= after,
        "since is not the database's now()"
    );
    assert!(stored.read_at >= since);
    assert_eq!(
        stored.in_flight_age(),
        stored.read_at.duration_since(since).ok()
    );

    // A second mark keeps the first `since`; a Keep save keeps the record.
    let v3 = lease.mark_in_flight(v2).await.expect("mark again");
    let v4 = lease
        .save(&tokens::token(1), Expect::Version(v3), Record::Keep)
        .await
        .expect("a cooldown's save");
    let kept = store.load(&key).await.expect("load").expect("row");
    assert_eq!(kept.version, v4);
    assert_eq!(
        kept.in_flight.expect("Keep dropped the record").since,
        since
    );
    // A mark at a stale version is a conflict and changes nothing.
    let err = lease.mark_in_flight(v3).await.expect_err("a stale mark");
    assert_eq!(err.store_kind(), Some(StoreErrorKind::Conflict), "{err}");
    assert_eq!(store.load(&key).await.unwrap().unwrap().version, v4);

    // The definite outcome clears it, in the save that releases.
    let v5 = lease
        .save_and_release(&tokens::token(2), Expect::Version(v4), Record::Clear)
        .await
        .expect("the new pair");
    let cleared = store.load(&key).await.expect("load").expect("row");
    assert_eq!(cleared.version, v5);
    assert!(cleared.in_flight.is_none());
    assert_eq!(tokens::generation_of(&cleared.token.expect("token")), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_whose_holder_is_gone_is_orphaned_once_its_lease_is_free_or_expired() {
    let a = support::store("orphans").await;
    let b = support::same_tables(&a).await;
    let keys: Vec<_> = ["dropped", "expired", "held", "clean"]
        .iter()
        .map(|k| tokens::key("orphans", k))
        .collect();
    for key in &keys {
        support::put(&a, key, &tokens::token(1)).await;
    }
    let mut leases = Vec::new();
    for key in &keys[..3] {
        let lease = a.lock(key, Duration::from_secs(5)).await.expect("lock");
        let stored = lease.load().await.expect("load").expect("row");
        lease.mark_in_flight(stored.version).await.expect("mark");
        leases.push(lease);
    }
    assert!(
        b.orphaned(10).await.expect("orphaned").is_empty(),
        "a refresh whose lease is held was listed"
    );
    // "dropped": its holder released the lease without clearing the record.
    leases.remove(0).release().await.expect("release");
    // "expired": its holder stopped (paused, partitioned, dead host).
    support::expire_lease(&a, &keys[1]).await;
    let mut orphaned = b.orphaned(10).await.expect("orphaned");
    orphaned.sort();
    let mut want = vec![keys[0].clone(), keys[1].clone()];
    want.sort();
    assert_eq!(orphaned, want);
    assert_eq!(b.orphaned(1).await.expect("orphaned").len(), 1, "the limit");
    // Whoever takes one over finds the record and finishes it.
    let lease = b
        .lock(&keys[1], Duration::from_secs(5))
        .await
        .expect("take over");
    let stored = lease.load().await.expect("load").expect("row");
    assert!(
        stored.in_flight.is_some(),
        "the record did not survive its holder"
    );
    assert!(
        !b.orphaned(10).await.expect("orphaned").contains(&keys[1]),
        "a refresh listed while its new holder holds it"
    );
    lease
        .save_and_release(
            &tokens::token(2),
            Expect::Version(stored.version),
            Record::Clear,
        )
        .await
        .expect("finish it");
    assert_eq!(
        b.orphaned(10).await.expect("orphaned"),
        vec![keys[0].clone()]
    );
    drop(leases);
}

#[tokio::test]
async fn the_orphan_query_reads_the_partial_index() {
    let store = support::store("orphan_plan").await;
    let tokens = support::quoted(&store, "");
    sqlx::query(&format!(
        "INSERT INTO {tokens} (provider, account, version, data, in_flight_since) \
         SELECT 'p', 'a' || i, 1, '{{}}'::jsonb, \
         CASE WHEN i % 5000 = 0 THEN now() END FROM generate_series(1, 50000) i"
    ))
    .execute(store.pool())
    .await
    .expect("fill");
    sqlx::query(&format!("ANALYZE {tokens}"))
        .execute(store.pool())
        .await
        .unwrap();
    let leases = support::quoted(&store, "_leases");
    let rows: Vec<(String,)> = sqlx::query_as(&format!(
        "EXPLAIN SELECT t.provider, t.account FROM {tokens} AS t \
         WHERE t.in_flight_since IS NOT NULL AND NOT t.deleted \
         AND NOT EXISTS (SELECT 1 FROM {leases} AS l \
         WHERE l.provider = t.provider AND l.account = t.account AND l.expires_at > now()) \
         ORDER BY t.in_flight_since LIMIT 100"
    ))
    .fetch_all(store.pool())
    .await
    .expect("explain");
    let plan: Vec<String> = rows.into_iter().map(|(l,)| l).collect();
    let plan = plan.join("\n");
    assert!(
        plan.contains("token_keeper_tokens_in_flight"),
        "the orphan query does not use the partial index:\n{plan}"
    );
    assert!(!plan.contains("Seq Scan on token_keeper_tokens "), "{plan}");
    assert_eq!(store.orphaned(100).await.expect("orphaned").len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tombstones_refuse_older_logins_and_sequences_survive_deletes_and_hosts() {
    let a = support::store("tombstones").await;
    let b = support::same_tables(&a).await;
    let key = tokens::key("tombstones", "Alice");

    let lease = a.lock(&key, Duration::from_secs(5)).await.expect("lock");
    let s1 = lease.next_sequence().await.expect("sequence");
    assert!(
        lease
            .load()
            .await
            .expect("load")
            .is_some_and(|s| s.token.is_none())
    );
    let v1 = lease
        .save(&tokens::token(1), Expect::Login(s1), Record::Clear)
        .await
        .expect("the first login");
    let s2 = lease.next_sequence().await.expect("sequence");
    assert!(s2 > s1);
    // A login sequenced before the stored grant's is refused.
    let err = lease
        .save(&tokens::token(9), Expect::Login(s1), Record::Clear)
        .await
        .expect_err("an equal login replaced the grant");
    assert_eq!(err.store_kind(), Some(StoreErrorKind::Conflict), "{err}");
    lease.release().await.expect("release");

    // Another host hands out the next numbers.
    let lease = b.lock(&key, Duration::from_secs(5)).await.expect("lock b");
    let s3 = lease.next_sequence().await.expect("sequence b");
    assert!(s3 > s2);
    let stored = lease.load().await.expect("load").expect("row");
    assert_eq!(stored.version, v1, "next_sequence changed the version");
    assert_eq!(stored.grant, s1);
    let tomb = lease.delete(v1).await.expect("delete");
    assert!(tomb > v1);
    let stored = lease.load().await.expect("load").expect("the tombstone");
    assert!(stored.token.is_none() && stored.in_flight.is_none());
    assert_eq!(
        stored.grant, s3,
        "the tombstone's grant is the highest handed out"
    );
    assert!(
        b.list(None).await.expect("list").is_empty(),
        "a tombstone was listed"
    );
    // s2 was handed out before the delete: refused. A later one lands.
    let err = lease
        .save(&tokens::token(2), Expect::Login(s2), Record::Clear)
        .await
        .expect_err("a login from before the delete revived the account");
    assert_eq!(err.store_kind(), Some(StoreErrorKind::Conflict), "{err}");
    let err = lease
        .save(&tokens::token(2), Expect::Absent, Record::Clear)
        .await
        .expect_err("a create over a tombstone");
    assert_eq!(err.store_kind(), Some(StoreErrorKind::Conflict), "{err}");
    let s4 = lease.next_sequence().await.expect("sequence after delete");
    assert!(s4 > s3);
    let v = lease
        .save_and_release(&tokens::token(4), Expect::Login(s4), Record::Clear)
        .await
        .expect("a login after the delete");
    assert!(v > tomb);
    let stored = a.load(&key).await.expect("load").expect("row");
    assert_eq!(stored.grant, s4);
    assert_eq!(tokens::generation_of(&stored.token.expect("token")), 4);
    assert_eq!(a.list(None).await.expect("list"), vec![key.clone()]);
}

#[tokio::test]
async fn a_delete_clears_the_record_and_a_login_over_a_record_clears_it() {
    let store = support::store("record_clears").await;
    let key = tokens::key("record-clears", "Bob");
    let v1 = support::put(&store, &key, &tokens::token(1)).await;
    let lease = store
        .lock(&key, Duration::from_secs(5))
        .await
        .expect("lock");
    let v2 = lease.mark_in_flight(v1).await.expect("mark");
    let s = lease.next_sequence().await.expect("sequence");
    let v3 = lease
        .save(&tokens::token(5), Expect::Login(s), Record::Clear)
        .await
        .expect("login");
    assert!(v3 > v2);
    assert!(store.load(&key).await.unwrap().unwrap().in_flight.is_none());
    let v4 = lease.mark_in_flight(v3).await.expect("mark");
    let tomb = lease.delete(v4).await.expect("delete");
    let stored = store.load(&key).await.unwrap().unwrap();
    assert_eq!(stored.version, tomb);
    assert!(stored.in_flight.is_none(), "a tombstone with a record");
    assert!(store.orphaned(10).await.expect("orphaned").is_empty());
    // A mark on a tombstone is a conflict: there is nothing to refresh.
    let err = lease
        .mark_in_flight(tomb)
        .await
        .expect_err("marked a tombstone");
    assert_eq!(err.store_kind(), Some(StoreErrorKind::Conflict), "{err}");
}
