//! Key leases and compare-and-swap hold between processes: other processes
//! wait for a held lease, a dead holder's lease is released by the OS (and
//! its refresh in flight becomes an orphan at once), and of several
//! processes racing to save one version exactly one wins.

#![cfg(unix)]

mod support;

use std::time::{Duration, Instant};

use auth_core::{Expect, Record, StoreErrorKind, TokenStore, Version};
use store_file::FileTokenStore;
use test_support::child::{self, ChildProcess, Role};
use test_support::tokens;

/// Not a test: the entry point of the child processes the tests here spawn
/// (see `support::child`). In a normal run it returns at once.
#[test]
fn child_process() {
    child::run_if_child(play);
}

fn play(role: Role) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let store = FileTokenStore::open(&role.place).expect("open the store");
        let key = tokens::key("cross", "Alice");
        match role.name.as_str() {
            // Holds the lease until told to release it (or killed).
            "holder" => {
                let lease = store
                    .lock(&key, Duration::from_secs(30))
                    .await
                    .expect("lock in the child");
                child::report("locked");
                assert_eq!(child::listen().as_deref(), Some("release"));
                drop(lease);
                child::report("released");
            }
            // Marks a refresh in flight and holds the lease until killed.
            "marker" => {
                let lease = store
                    .lock(&key, Duration::from_secs(30))
                    .await
                    .expect("lock in the child");
                let row = lease.load().await.expect("load").expect("a token");
                lease.mark_in_flight(row.version).await.expect("mark");
                child::report("marked");
                assert_eq!(child::listen(), None, "the marker only waits to be killed");
            }
            // Tries to take the lease within the argument's milliseconds.
            "taker" => {
                let wait = Duration::from_millis(role.arg.parse().expect("a wait in ms"));
                match store.lock(&key, wait).await {
                    Ok(_lease) => child::report("acquired"),
                    Err(e) if e.store_kind() == Some(StoreErrorKind::LockTimeout) => {
                        child::report("timeout")
                    }
                    Err(e) => panic!("lock failed otherwise: {e}"),
                }
            }
            // Saves its own token over the argument's version on "go".
            "racer" => {
                let (index, expected) = role.arg.split_once(':').expect("index:version");
                let index: u64 = index.parse().expect("index");
                let expected = Version(expected.parse().expect("version"));
                child::report("ready");
                assert_eq!(child::listen().as_deref(), Some("go"));
                match support::save(
                    &store,
                    &key,
                    &tokens::token(index),
                    Expect::Version(expected),
                )
                .await
                {
                    Ok(_) => child::report("won"),
                    Err(e) if e.store_kind() == Some(StoreErrorKind::Conflict) => {
                        child::report("conflict")
                    }
                    Err(e) => panic!("save failed otherwise: {e}"),
                }
            }
            other => panic!("unknown role {other}"),
        }
    });
}

#[tokio::test]
async fn a_lease_held_by_another_process_excludes_this_one_until_released() {
    let (_dir, store) = support::temp_store();
    let key = tokens::key("cross", "Alice");
    let mut holder = ChildProcess::spawn("holder", store.root(), "");
    holder.expect_line("locked");

    let err = store
        .lock(&key, Duration::from_millis(200))
        .await
        .expect_err("took a lease another process holds");
    assert_eq!(err.store_kind(), Some(StoreErrorKind::LockTimeout), "{err}");
    assert!(
        err.to_string().contains(".lock"),
        "the error does not name the lock file: {err}"
    );

    holder.send("release");
    holder.expect_line("released");
    let lease = store
        .lock(&key, Duration::from_secs(10))
        .await
        .expect("the released lease can be taken");
    holder.finish();
    let v1 = lease
        .save(&tokens::token(1), Expect::Absent, Record::Clear)
        .await
        .expect("save under the lease");
    assert_eq!(
        store.load(&key).await.expect("load").map(|v| v.version),
        Some(v1)
    );
    drop(lease);
}

#[tokio::test]
async fn a_lease_held_here_excludes_another_process_until_dropped() {
    let (_dir, store) = support::temp_store();
    let key = tokens::key("cross", "Alice");
    let lease = store
        .lock(&key, Duration::from_secs(5))
        .await
        .expect("lock");

    let mut taker = ChildProcess::spawn("taker", store.root(), "200");
    taker.expect_line("timeout");
    taker.finish();

    drop(lease);
    let mut taker = ChildProcess::spawn("taker", store.root(), "10000");
    taker.expect_line("acquired");
    taker.finish();
}

#[tokio::test]
async fn a_killed_holder_releases_its_lease() {
    let (_dir, store) = support::temp_store();
    let key = tokens::key("cross", "Alice");
    let mut holder = ChildProcess::spawn("holder", store.root(), "");
    holder.expect_line("locked");
    let err = store
        .lock(&key, Duration::from_millis(100))
        .await
        .expect_err("lease taken twice");
    assert_eq!(err.store_kind(), Some(StoreErrorKind::LockTimeout), "{err}");

    holder.kill();
    let started = Instant::now();
    let wait = Duration::from_secs(10);
    store
        .lock(&key, wait)
        .await
        .expect("the dead holder's lease was released");
    assert!(started.elapsed() < wait, "took the whole wait");
}

#[tokio::test]
async fn of_processes_racing_to_save_one_version_exactly_one_wins() {
    const RACERS: u64 = 6;
    let (_dir, store) = support::temp_store();
    let key = tokens::key("cross", "Alice");
    let base = support::create(&store, &key, &tokens::token(0)).await;

    let mut racers: Vec<ChildProcess> = (1..=RACERS)
        .map(|i| ChildProcess::spawn("racer", store.root(), &format!("{i}:{}", base.0)))
        .collect();
    for racer in &mut racers {
        racer.expect_line("ready");
    }
    for racer in &mut racers {
        racer.send("go");
    }
    let outcomes: Vec<String> = racers.iter_mut().map(ChildProcess::next_line).collect();
    for racer in racers {
        racer.finish();
    }

    let winners: Vec<u64> = (1..=RACERS)
        .zip(&outcomes)
        .filter(|(_, o)| *o == "won")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(winners.len(), 1, "outcomes: {outcomes:?}");
    assert_eq!(
        outcomes.iter().filter(|o| *o == "conflict").count() as u64,
        RACERS - 1,
        "{outcomes:?}"
    );
    let stored = store
        .load(&key)
        .await
        .expect("load")
        .expect("the token is there");
    assert_eq!(
        tokens::generation_of(support::token_of(&stored)),
        winners[0],
        "the stored token is not the winner's"
    );
    assert!(stored.version > base);
}

#[tokio::test]
async fn a_killed_holders_record_is_orphaned_at_once() {
    let (_dir, store) = support::temp_store();
    let key = tokens::key("cross", "Alice");
    support::create(&store, &key, &tokens::token(1)).await;
    let mut marker = ChildProcess::spawn("marker", store.root(), "");
    marker.expect_line("marked");
    let row = store.load(&key).await.expect("load").expect("there");
    assert!(row.in_flight.is_some(), "the child's record is not there");
    assert!(
        store.orphaned(10).await.expect("orphaned").is_empty(),
        "a record is orphaned while its holder lives"
    );

    marker.kill();
    // No expiry to wait for: the OS freed the dead holder's lock.
    assert_eq!(
        store.orphaned(10).await.expect("orphaned"),
        vec![key.clone()]
    );
    let lease = store
        .lock(&key, Duration::from_millis(500))
        .await
        .expect("the dead holder's lease is free");
    let row = lease.load().await.expect("load").expect("there");
    assert!(row.in_flight.is_some(), "the record died with its holder");
    lease
        .save_and_release(
            &tokens::token(2),
            Expect::Version(row.version),
            Record::Clear,
        )
        .await
        .expect("the next holder finishes the refresh");
    assert!(store.orphaned(10).await.expect("orphaned").is_empty());
}
