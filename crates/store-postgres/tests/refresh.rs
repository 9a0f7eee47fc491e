//! One refresh, three statements, counted on the wire: the lease taken and
//! the row read in one, the write-ahead record, and the save that clears
//! the record and releases the lease in one. And the read in the first
//! statement is the newest committed row even when the previous holder's
//! write commits while the take waits for it.

mod support;

use std::time::{Duration, Instant};

use auth_core::{Expect, Record, StoreErrorKind, TokenKey, TokenStore, Version};
use store_postgres::PostgresTokenStore;
use test_support::tokens;

/// The store's side of one refresh of `key`, from generation `from` to
/// `from + 1`, as the manager does it: lock, load, mark, save and release.
async fn refresh(store: &PostgresTokenStore, key: &TokenKey, from: u64) -> Version {
    let lease = store
        .lock(key, Duration::from_secs(10))
        .await
        .expect("lock");
    let stored = lease.load().await.expect("load").expect("a row");
    let token = stored.token.expect("a token");
    assert_eq!(tokens::generation_of(&token), from);
    assert!(stored.in_flight.is_none(), "a record before the mark");
    let marked = lease
        .mark_in_flight(stored.version)
        .await
        .expect("the mark");
    assert!(marked > stored.version);
    lease
        .save_and_release(
            &tokens::token(from + 1),
            Expect::Version(marked),
            Record::Clear,
        )
        .await
        .expect("save and release")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_takes_three_statements_and_three_round_trips() {
    let direct = support::store("three").await;
    let (store, proxy) = support::through_proxy(&direct, None).await;
    let key = tokens::key("three", "Alice");
    support::put(&store, &key, &tokens::token(1)).await;
    // The first refresh prepares the statements (sqlx then caches them per
    // connection): one round trip more per statement, no statement more.
    let before = proxy.statements();
    refresh(&store, &key, 1).await;
    assert_eq!(
        proxy.statements() - before,
        3,
        "statements of a first refresh"
    );

    for from in 2..5 {
        let (statements, round_trips) = (proxy.statements(), proxy.round_trips());
        let version = refresh(&store, &key, from).await;
        assert_eq!(
            proxy.statements() - statements,
            3,
            "statements of refresh {from}"
        );
        assert_eq!(
            proxy.round_trips() - round_trips,
            3,
            "round trips of refresh {from}"
        );
        let stored = direct.load(&key).await.expect("load").expect("row");
        assert_eq!(stored.version, version);
        assert!(stored.in_flight.is_none(), "the save left the record");
        assert_eq!(
            tokens::generation_of(&stored.token.expect("token")),
            from + 1
        );
    }
    // The lease went with the save: another host takes it at once.
    let started = Instant::now();
    let lease = direct
        .lock(&key, Duration::from_secs(1))
        .await
        .expect("the lease was not released");
    assert!(started.elapsed() < Duration::from_secs(1));
    lease.release().await.expect("release");
}

/// Waits until a statement on `schema`'s tables waits for a row lock.
async fn until_a_statement_waits(store: &PostgresTokenStore, schema: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE wait_event_type = 'Lock' AND position($1 in query) > 0",
        )
        .bind(schema)
        .fetch_one(store.pool())
        .await
        .expect("read pg_stat_activity");
        if waiting > 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the lock statement never waited for the writer"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The previous holder, played in SQL on its own connection: its lease row
/// (owner 42) is committed; then, in a transaction it leaves open, it
/// writes the token row (`write`, whose `$1`/`$2` are the key and `$3` the
/// new data) and deletes its lease row, as `save_and_release` does.
async fn writer_in_flight(
    store: &PostgresTokenStore,
    key: &TokenKey,
    write: &str,
    data: &str,
) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let leases = support::quoted(store, "_leases");
    sqlx::query(&format!(
        "INSERT INTO {leases} (provider, account, owner, expires_at) \
         VALUES ($1, $2, 42, now() + interval '1 hour')"
    ))
    .bind(key.provider.as_str())
    .bind(key.account.as_str())
    .execute(store.pool())
    .await
    .expect("the writer's lease");
    let mut tx = store.pool().begin().await.expect("begin");
    let written = sqlx::query(write)
        .bind(key.provider.as_str())
        .bind(key.account.as_str())
        .bind(data)
        .execute(&mut *tx)
        .await
        .expect("the writer's write");
    assert_eq!(written.rows_affected(), 1);
    sqlx::query(&format!(
        "DELETE FROM {leases} WHERE provider = $1 AND account = $2 AND owner = 42"
    ))
    .bind(key.provider.as_str())
    .bind(key.account.as_str())
    .execute(&mut *tx)
    .await
    .expect("the writer's release");
    tx
}

/// The interleaving the `FOR SHARE` read exists for: the lock statement
/// starts (and takes its snapshot) while the previous holder's save is in
/// flight; its take waits for that writer's lock on the lease row; the
/// writer commits; the take goes on. A plain read in the same statement
/// would return the row of its snapshot, from before the save, and the
/// next refresh would send a spent refresh token. The row read `FOR SHARE`
/// is the newest committed one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lock_reads_the_row_a_writer_committed_while_the_take_waited() {
    let direct = support::store("interleave").await;
    let (store, proxy) = support::through_proxy(&direct, None).await;
    let key = tokens::key("interleave", "Alice");
    let v1 = support::put(&direct, &key, &tokens::token(1)).await;

    let tx = writer_in_flight(
        &direct,
        &key,
        &format!(
            "UPDATE {} SET version = version + 1, data = $3::jsonb, \
             data_md5 = md5($3::jsonb::text) WHERE provider = $1 AND account = $2",
            support::quoted(&direct, "")
        ),
        &serde_json::to_string(&tokens::token(2)).unwrap(),
    )
    .await;
    let before = proxy.statements();
    let taking = tokio::spawn({
        let (store, key) = (store.clone(), key.clone());
        async move {
            let lease = store.lock(&key, Duration::from_secs(30)).await?;
            let stored = lease.load().await?;
            Ok::<_, auth_core::Error>((lease, stored))
        }
    });
    until_a_statement_waits(&direct, &support::schema_of(&direct)).await;
    // Uncommitted: every snapshot taken until now holds generation 1.
    assert_eq!(
        tokens::generation_of(&support::stored_token(&direct, &key).await),
        1
    );
    tx.commit().await.expect("the writer commits");
    let (lease, stored) = taking.await.expect("the task").expect("lock and load");
    let stored = stored.expect("a row");
    assert_eq!(stored.version, Version(v1.0 + 1), "a stale version");
    assert_eq!(
        tokens::generation_of(stored.token.as_ref().expect("a token")),
        2,
        "the lock read the row of its snapshot, not the newest committed one"
    );
    assert_eq!(
        proxy.statements() - before,
        1,
        "the lock and the load were not one statement"
    );
    // And the lease is really held, with that version to build on.
    let marked = lease.mark_in_flight(stored.version).await.expect("mark");
    lease
        .save_and_release(&tokens::token(3), Expect::Version(marked), Record::Clear)
        .await
        .expect("save");
    assert_eq!(
        tokens::generation_of(&support::stored_token(&direct, &key).await),
        3
    );
}

/// The same interleaving when the writer *creates* the row: a row inserted
/// after a statement's snapshot is invisible to it even `FOR SHARE`, so
/// the lock's "no row" is never trusted. The first load reads again (one
/// statement more, only for a key that had no row) and finds the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_created_while_the_take_waited_is_read_again_not_missed() {
    let direct = support::store("interleave_create").await;
    let (store, proxy) = support::through_proxy(&direct, None).await;
    let key = tokens::key("interleave-create", "Bob");

    let tx = writer_in_flight(
        &direct,
        &key,
        &format!(
            "INSERT INTO {} (provider, account, version, data, data_md5) \
             VALUES ($1, $2, 1, $3::jsonb, md5($3::jsonb::text))",
            support::quoted(&direct, "")
        ),
        &serde_json::to_string(&tokens::token(7)).unwrap(),
    )
    .await;
    let before = proxy.statements();
    let taking = tokio::spawn({
        let (store, key) = (store.clone(), key.clone());
        async move {
            let lease = store.lock(&key, Duration::from_secs(30)).await?;
            let stored = lease.load().await?;
            Ok::<_, auth_core::Error>((lease, stored))
        }
    });
    until_a_statement_waits(&direct, &support::schema_of(&direct)).await;
    assert!(direct.load(&key).await.expect("load").is_none());
    tx.commit().await.expect("the writer commits");
    let (lease, stored) = taking.await.expect("the task").expect("lock and load");
    let stored = stored.expect("the row created meanwhile was missed");
    assert_eq!(tokens::generation_of(&stored.token.expect("token")), 7);
    assert_eq!(proxy.statements() - before, 2);
    // A create over it fails: the row is there.
    let err = lease
        .save(&tokens::token(8), Expect::Absent, Record::Clear)
        .await
        .expect_err("created over a row");
    assert_eq!(err.store_kind(), Some(StoreErrorKind::Conflict), "{err}");
}

/// The first load after the lock is served from the lock's read only while
/// the lease is young; a load later, or a second load, asks the database
/// (and finds a lost lease lost).
#[tokio::test]
async fn only_the_first_load_right_after_the_take_is_served_from_it() {
    let direct = support::store("first_load").await;
    let (store, proxy) = support::through_proxy(&direct, None).await;
    let key = tokens::key("first-load", "Carol");
    support::put(&direct, &key, &tokens::token(1)).await;

    let lease = store
        .lock(&key, Duration::from_secs(5))
        .await
        .expect("lock");
    let before = proxy.statements();
    lease.load().await.expect("load").expect("row");
    assert_eq!(
        proxy.statements(),
        before,
        "the first load sent a statement"
    );
    lease.load().await.expect("load").expect("row");
    assert_eq!(proxy.statements(), before + 1, "the second load sent none");
    support::expire_lease(&direct, &key).await;
    let err = lease
        .load()
        .await
        .expect_err("a load through an expired lease");
    assert_eq!(err.store_kind(), Some(StoreErrorKind::LeaseLost), "{err}");

    // A lease taken while the lease row had expired: its first load is
    // from the take too, and the take gave it a full TTL.
    let again = store
        .lock(&key, Duration::from_secs(5))
        .await
        .expect("lock again");
    let expires_in: f64 = sqlx::query_scalar(&format!(
        "SELECT extract(epoch FROM expires_at - now())::float8 FROM {} \
         WHERE provider = $1 AND account = $2",
        support::quoted(&direct, "_leases")
    ))
    .bind(key.provider.as_str())
    .bind(key.account.as_str())
    .fetch_one(direct.pool())
    .await
    .expect("the lease row");
    assert!(
        expires_in > PostgresTokenStore::DEFAULT_LEASE_TTL.as_secs_f64() - 2.0,
        "the take gave the lease {expires_in} s"
    );
    again.release().await.expect("release");
}

/// The same count through the manager: `force_refresh` of a token an API
/// rejected, with a provider whose refresh tokens rotate (so the refresh
/// writes its record), on a store whose statements go through the
/// counting proxy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_refresh_through_the_manager_takes_three_statements() {
    use std::sync::Arc;

    use auth_core::TokenManager;
    use auth_core::testing::FakeProvider;

    let direct = support::store("manager_three").await;
    let (store, proxy) = support::through_proxy(&direct, None).await;
    let provider = Arc::new(FakeProvider::new("fake"));
    let key = tokens::key("fake", "Alice");
    support::put(&direct, &key, &provider.issue()).await;
    let manager = TokenManager::builder(Arc::new(store))
        .provider(provider.clone())
        .build();
    let mut current = manager.access_token(&key).await.expect("the stored token");
    // A first refresh prepares the statements.
    current = manager
        .force_refresh(&key, &current)
        .await
        .expect("a first refresh");
    for round in 0..3 {
        let before = proxy.statements();
        let calls = provider.refresh_calls();
        let next = manager
            .force_refresh(&key, &current)
            .await
            .expect("force_refresh");
        assert_eq!(
            provider.refresh_calls(),
            calls + 1,
            "round {round}: one refresh"
        );
        assert_eq!(
            proxy.statements() - before,
            3,
            "round {round}: statements of one refresh through the manager"
        );
        assert_ne!(
            next.secret(),
            current.secret(),
            "round {round}: the same token"
        );
        current = next;
    }
    let stored = direct.load(&key).await.expect("load").expect("row");
    assert!(
        stored.in_flight.is_none(),
        "the record outlived the refresh"
    );
}

/// The lock statement commits without waiting for a WAL flush (its row
/// lock on the tokens table writes WAL, but nothing it does needs to
/// survive a crash); that setting is the statement's own and never leaks
/// into the pooled session, whose later saves must stay durable.
#[tokio::test]
async fn the_lock_leaves_the_session_durable() {
    let schema = support::unique_schema("durable");
    let store = support::builder(&schema)
        .max_connections(1)
        .connect(test_support::postgres::shared().url())
        .await
        .expect("connect");
    let key = tokens::key("durable", "Alice");
    support::put(&store, &key, &tokens::token(1)).await;
    let lease = store
        .lock(&key, Duration::from_secs(5))
        .await
        .expect("lock");
    lease.load().await.expect("load").expect("row");
    // The pool's only connection ran the lock.
    let setting: String = sqlx::query_scalar("SHOW synchronous_commit")
        .fetch_one(store.pool())
        .await
        .expect("show");
    assert_eq!(setting, "on", "the lock's asynchronous commit leaked");
    lease.release().await.expect("release");
}
