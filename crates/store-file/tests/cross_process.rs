//! Key leases and compare-and-swap hold between processes: other processes
//! wait for a held lease, a dead holder's lease is released by the OS, and
//! of several processes racing to save one version exactly one wins.

#![cfg(unix)]

mod support;

use std::time::{Duration, Instant};

use auth_core::{StoreErrorKind, TokenStore, Version};
use store_file::FileTokenStore;
use support::child::{self, ChildProcess, Role};

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
        let store = FileTokenStore::open(&role.root).expect("open the store");
        let key = support::key("cross", "Alice");
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
                match store
                    .save(&key, &support::token(index), Some(expected))
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
    let key = support::key("cross", "Alice");
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
    // The lease does not stop writes: `save` takes the separate write lock.
    let v1 = store
        .save(&key, &support::token(1), None)
        .await
        .expect("save while another process holds the lease");

    holder.send("release");
    holder.expect_line("released");
    let lease = store
        .lock(&key, Duration::from_secs(10))
        .await
        .expect("the released lease can be taken");
    holder.finish();
    assert_eq!(
        store.load(&key).await.expect("load").map(|v| v.version),
        Some(v1)
    );
    drop(lease);
}

#[tokio::test]
async fn a_lease_held_here_excludes_another_process_until_dropped() {
    let (_dir, store) = support::temp_store();
    let key = support::key("cross", "Alice");
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
    let key = support::key("cross", "Alice");
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
    let key = support::key("cross", "Alice");
    let base = store
        .save(&key, &support::token(0), None)
        .await
        .expect("create");

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
        support::generation_of(&stored.value),
        winners[0],
        "the stored token is not the winner's"
    );
    assert!(stored.version > base);
}
