//! The lease between hosts: a holder cut off from the database loses its
//! lease within the TTL and every write through it is refused; a
//! taken-over lease fails every call; the heartbeat keeps every live lease
//! of a store and revives none; a cancelled waiter leaves nothing held; no
//! connection is held while a lease is, and closing the pool does not wait
//! for the store.

mod support;

use std::time::{Duration, Instant};

use auth_core::{Expect, Lease, Record, Result, StoreErrorKind, TokenStore};
use store_postgres::PostgresTokenStore;
use test_support::tokens;

/// Every call through `lease` fails with `LeaseLost`.
async fn assert_every_call_is_refused(lease: Box<dyn Lease>, version: auth_core::Version) {
    let t = tokens::token(99);
    let results: Vec<(&str, Result<()>)> = vec![
        ("load", lease.load().await.map(drop)),
        ("mark", lease.mark_in_flight(version).await.map(drop)),
        (
            "save",
            lease
                .save(&t, Expect::Version(version), Record::Clear)
                .await
                .map(drop),
        ),
        ("delete", lease.delete(version).await.map(drop)),
        ("next_sequence", lease.next_sequence().await.map(drop)),
        (
            "save_and_release",
            lease
                .save_and_release(&t, Expect::Version(version), Record::Clear)
                .await
                .map(drop),
        ),
    ];
    for (what, result) in results {
        let err = result.expect_err(what);
        assert_eq!(
            err.store_kind(),
            Some(StoreErrorKind::LeaseLost),
            "{what}: {err}"
        );
        assert!(err.to_string().contains("lease"), "{err}");
    }
}

/// Expires `store`'s lease rows now, as if the TTL had passed, through SQL.
async fn expire_leases(store: &PostgresTokenStore) {
    sqlx_exec(
        store,
        &format!(
            "UPDATE {} SET expires_at = now() - interval '1 second'",
            support::quoted(store, "_leases")
        ),
    )
    .await;
}

async fn sqlx_exec(store: &store_postgres::PostgresTokenStore, sql: &str) {
    sqlx::query(sql)
        .execute(store.pool())
        .await
        .expect("test SQL");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_holder_loses_its_lease_within_the_ttl_and_its_writes_are_refused() {
    let other = support::store("frozen").await;
    let ttl = other.lease_ttl().expect("postgres leases expire");
    let key = tokens::key("frozen", "Alice");
    let v1 = support::put(&other, &key, &tokens::token(1)).await;

    // The holder reaches the database only through the proxy.
    let (holder, proxy) = support::through_proxy(&other, Some(ttl)).await;
    let lease = holder
        .lock(&key, Duration::from_secs(5))
        .await
        .expect("holder locks");
    let loaded = lease.load().await.expect("load").expect("seeded");
    assert_eq!(loaded.version, v1);

    let err = other
        .lock(&key, Duration::from_millis(300))
        .await
        .expect_err("the lease was taken while its holder is alive");
    assert_eq!(err.store_kind(), Some(StoreErrorKind::LockTimeout), "{err}");

    proxy.freeze();
    let cut_at = Instant::now();
    let bound = ttl + Duration::from_secs(3);
    let taken = other
        .lock(&key, bound)
        .await
        .expect("the cut-off holder's lease never freed");
    let freed_after = cut_at.elapsed();
    assert!(
        freed_after <= bound,
        "freed after {freed_after:?}, the bound is {bound:?}"
    );
    let v2 = taken
        .save(&tokens::token(2), Expect::Version(v1), Record::Clear)
        .await
        .expect("the new holder saves");

    proxy.thaw();
    // Even a save that would win the compare-and-swap is fenced.
    let err = lease
        .save(&tokens::token(98), Expect::Version(v2), Record::Clear)
        .await
        .expect_err("a fenced save with the current version went through");
    assert_eq!(err.store_kind(), Some(StoreErrorKind::LeaseLost), "{err}");
    assert_every_call_is_refused(lease, v2).await;

    let stored = other.load(&key).await.expect("load").expect("there");
    assert_eq!(stored.version, v2);
    assert_eq!(tokens::generation_of(&stored.token.expect("token")), 2);
    // The new holder goes on.
    taken.load().await.expect("the new holder still holds it");
}

#[tokio::test]
async fn a_taken_over_lease_fails_every_call_and_writes_nothing() {
    let a = support::store("takeover").await;
    let b = support::same_tables(&a).await;
    let key = tokens::key("takeover", "Bob");
    let v1 = support::put(&a, &key, &tokens::token(1)).await;
    let lease = a.lock(&key, Duration::from_secs(5)).await.expect("lock");
    lease.load().await.expect("a held lease loads");
    let second = a
        .lock(&tokens::key("takeover", "Bob2"), Duration::from_secs(5))
        .await
        .expect("lock another key");

    expire_leases(&a).await;
    let theirs = b
        .lock(&key, Duration::from_secs(5))
        .await
        .expect("takeover");
    assert_every_call_is_refused(lease, v1).await;
    // Expired, even with nobody else holding it.
    assert_every_call_is_refused(second, v1).await;
    let stored = a.load(&key).await.unwrap().unwrap();
    assert_eq!(stored.version, v1);
    assert!(stored.in_flight.is_none());
    assert_eq!(stored.grant, auth_core::Sequence(0));

    // The old holder's drop must not release the new holder's lease.
    let err = a
        .lock(&key, Duration::from_millis(300))
        .await
        .expect_err("the old holder's drop freed the new lease");
    assert_eq!(err.store_kind(), Some(StoreErrorKind::LockTimeout), "{err}");
    theirs.load().await.expect("the new holder keeps it");
}

#[tokio::test]
async fn the_heartbeat_keeps_a_live_holders_lease_past_its_ttl() {
    let a = support::store("heartbeat").await;
    let b = support::same_tables(&a).await;
    let key = tokens::key("heartbeat", "Carol");
    let lease = a.lock(&key, Duration::from_secs(5)).await.expect("lock");
    let until = Instant::now() + a.lease_ttl().expect("expires") * 2 + Duration::from_millis(500);
    let mut tries = 0;
    while Instant::now() < until {
        let err = b
            .lock(&key, Duration::from_millis(250))
            .await
            .expect_err("a live holder's lease was taken");
        assert_eq!(err.store_kind(), Some(StoreErrorKind::LockTimeout), "{err}");
        tries += 1;
    }
    assert!(tries > 4);
    lease.load().await.expect("still held after two TTLs");
}

/// One heartbeat statement extends every lease of a store: three held
/// through one store, one of them expired and taken over by another host
/// meanwhile. Past two TTLs the other two are still held, and the taken one
/// stays with its new holder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_heartbeat_keeps_every_live_lease_and_revives_none() {
    let a = support::store("heartbeats").await;
    let b = support::same_tables(&a).await;
    let keys: Vec<_> = ["k1", "k2", "k3"]
        .iter()
        .map(|k| tokens::key("heartbeats", k))
        .collect();
    let mut leases = Vec::new();
    for key in &keys {
        leases.push(a.lock(key, Duration::from_secs(5)).await.expect("lock"));
    }
    sqlx_exec(
        &a,
        &format!(
            "UPDATE {} SET expires_at = now() - interval '1 second' WHERE account = 'k2'",
            support::quoted(&a, "_leases")
        ),
    )
    .await;
    let taken = b
        .lock(&keys[1], Duration::from_secs(1))
        .await
        .expect("an expired lease is free");
    let until = Instant::now() + a.lease_ttl().expect("expires") * 2 + Duration::from_millis(500);
    let mut tries = 0;
    while Instant::now() < until {
        for key in [&keys[0], &keys[2]] {
            let err = b
                .lock(key, Duration::from_millis(100))
                .await
                .expect_err("a live holder's lease was taken");
            assert_eq!(err.store_kind(), Some(StoreErrorKind::LockTimeout), "{err}");
        }
        tries += 1;
    }
    assert!(tries > 4);
    leases[0].load().await.expect("k1 still held");
    leases[2].load().await.expect("k3 still held");
    let err = leases[1]
        .load()
        .await
        .expect_err("a load through the taken-over lease");
    assert_eq!(err.store_kind(), Some(StoreErrorKind::LeaseLost), "{err}");
    taken.load().await.expect("the new holder keeps k2");
}

#[tokio::test]
async fn a_cancelled_waiter_leaves_nothing_held() {
    let a = support::store("cancelled").await;
    let key = tokens::key("cancelled", "Dave");
    let held = a.lock(&key, Duration::from_secs(5)).await.expect("lock");
    for _ in 0..5 {
        let waiter = a.lock(&key, Duration::from_secs(30));
        assert!(
            tokio::time::timeout(Duration::from_millis(50), waiter)
                .await
                .is_err(),
            "the waiter got a held lease"
        );
    }
    // Dropped while its statement may be in flight: the guard releases.
    let racing = a.lock(&key, Duration::from_secs(30));
    drop(racing);
    held.release().await.expect("release now");
    let started = Instant::now();
    let again = a
        .lock(&key, Duration::from_secs(1))
        .await
        .expect("free after release");
    assert!(started.elapsed() < Duration::from_secs(1));
    drop(again);
}

#[tokio::test]
async fn a_held_lease_holds_no_connection() {
    let a = support::store("no_connection").await;
    let keys: Vec<_> = (0..20)
        .map(|i| tokens::key("no-connection", &format!("k{i}")))
        .collect();
    let leases: Vec<Box<dyn Lease>> =
        futures::future::join_all(keys.iter().map(|k| a.lock(k, Duration::from_secs(5))))
            .await
            .into_iter()
            .map(|r| r.expect("lock"))
            .collect();
    let pool = a.pool();
    assert!(pool.size() <= 4, "pool grew to {}", pool.size());
    // sqlx returns a connection to the pool from a task, and the store
    // keeps its last one for 50 ms in case another statement follows: poll
    // for them.
    let deadline = Instant::now() + Duration::from_secs(2);
    while (pool.num_idle() as u32) < pool.size() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        pool.num_idle() as u32,
        pool.size(),
        "a connection is checked out while only leases are held"
    );
    drop(leases);
}

/// The store keeps its last connection back from the pool for a moment
/// between statements; an app that closes the pool itself (rather than the
/// store) must not wait for it.
#[tokio::test]
async fn closing_the_pool_does_not_wait_for_the_store() {
    let a = support::store("close_pool").await;
    let key = tokens::key("close-pool", "Erin");
    support::put(&a, &key, &tokens::token(1)).await;
    a.load(&key).await.expect("load").expect("there");
    tokio::time::timeout(Duration::from_secs(5), a.pool().close())
        .await
        .expect("closing the pool waited for a connection the store kept");
    let err = a
        .load(&key)
        .await
        .expect_err("a load after the pool closed");
    assert_eq!(err.store_kind(), Some(StoreErrorKind::Unavailable), "{err}");
    // And the connection the store kept is closed too (sqlx closes it from
    // a task once it is handed back).
    tokio::time::timeout(Duration::from_secs(5), async {
        while a.pool().size() > 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("a connection stayed open after the pool closed");
}

/// A store that outlives its runtime (kept in a static, say) still holds
/// the connection of its last statement: dropping it closes that
/// connection without a runtime, instead of panicking in sqlx.
#[test]
fn a_store_dropped_after_its_runtime_closes_its_connection() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let key = tokens::key("after-runtime", "Frank");
    let store = runtime.block_on(async {
        let store = support::store("after_runtime").await;
        support::put(&store, &key, &tokens::token(1)).await;
        store
    });
    drop(runtime);
    drop(store);
}
