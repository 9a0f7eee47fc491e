//! A writer killed with SIGKILL at random moments never leaves a token file
//! that is half-written or mixes two tokens, and never loses a save that
//! had returned; a refresher killed at random moments never leaves a
//! write-ahead record that the orphan scan cannot find.

#![cfg(unix)]

mod support;

use std::time::Duration;

use auth_core::{Expect, Record, TokenStore, Version};
use rand::Rng;
use store_file::FileTokenStore;
use test_support::child::{self, ChildProcess, Role};
use test_support::tokens;

const KILLS: usize = 200;
/// The kill comes a random delay, from zero to this, after the child's first
/// save has returned: a few times the length of one save, so kills land in
/// every step of the saves that follow and between them.
const MAX_KILL_DELAY: Duration = Duration::from_millis(4);

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
        match role.name.as_str() {
            "saver" => save_forever(&store).await,
            "refresher" => refresh_forever(&store).await,
            other => panic!("unknown role {other}"),
        }
    });
}

/// Saves generation after generation under one lease until killed, and
/// reports the first one it saved.
async fn save_forever(store: &FileTokenStore) {
    let key = tokens::key("crash", "Alice");
    let lease = store
        .lock(&key, support::WAIT)
        .await
        .expect("lock in the child");
    let current = lease.load().await.expect("load in the child");
    let (mut generation, mut expected) = match current {
        Some(row) => (
            tokens::generation_of(support::token_of(&row)),
            Expect::Version(row.version),
        ),
        None => (0, Expect::Absent),
    };
    let mut reported = false;
    loop {
        generation += 1;
        let saved = lease
            .save(&tokens::token(generation), expected, Record::Clear)
            .await;
        expected = Expect::Version(saved.expect("save in the child"));
        if !reported {
            child::report(&format!("saved {generation}"));
            reported = true;
        }
    }
}

/// Refreshes until killed, the way the manager does: lease, load, mark,
/// save clearing the record, release.
async fn refresh_forever(store: &FileTokenStore) {
    let key = tokens::key("crash", "Bob");
    let mut reported = false;
    loop {
        let lease = store
            .lock(&key, support::WAIT)
            .await
            .expect("lock in the child");
        let row = lease.load().await.expect("load").expect("a stored token");
        let generation = tokens::generation_of(support::token_of(&row));
        let marked = lease.mark_in_flight(row.version).await.expect("mark");
        lease
            .save_and_release(
                &tokens::token(generation + 1),
                Expect::Version(marked),
                Record::Clear,
            )
            .await
            .expect("save");
        if !reported {
            child::report("refreshed");
            reported = true;
        }
    }
}

#[tokio::test]
async fn a_killed_writer_leaves_the_old_token_or_the_new_one() {
    let (_dir, store) = support::temp_store();
    let key = tokens::key("crash", "Alice");
    let path = store.token_path(&key);
    let mut rng = rand::rng();
    let mut last_generation = 0;
    let mut last_version = Version(0);

    for _ in 0..KILLS {
        let mut child = ChildProcess::spawn("saver", store.root(), "");
        let confirmed: u64 = child
            .next_line()
            .strip_prefix("saved ")
            .and_then(|g| g.parse().ok())
            .expect("the child reports its first save");
        let delay = rng.random_range(Duration::ZERO..=MAX_KILL_DELAY);
        // The random delay is the point of the test, not a wait for an event.
        std::thread::sleep(delay);
        child.kill();

        let stored = store
            .load(&key)
            .await
            .expect("the token file is readable after a kill")
            .expect("a saved token disappeared");
        // Every field agrees on one generation: no mix of two tokens.
        let generation = tokens::generation_of(support::token_of(&stored));
        assert!(
            generation >= confirmed,
            "generation {confirmed} was saved, but the file holds {generation}"
        );
        assert!(
            generation > last_generation,
            "the token went from generation {last_generation} to {generation}"
        );
        assert!(stored.version > last_version, "the version did not grow");
        let raw: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).expect("read the file"))
                .expect("the file is JSON");
        assert_eq!(raw["version"].as_u64(), Some(stored.version.0));
        last_generation = generation;
        last_version = stored.version;
    }

    // Some kills landed inside a save, between its temporary file and the
    // rename: they left that temporary file behind.
    let dir = path.parent().expect("the token file's directory");
    let leftovers = std::fs::read_dir(dir)
        .expect("read the provider directory")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
        })
        .count();
    assert!(leftovers > 0, "no kill landed inside a save");
    // Temporary files of killed writers are never taken for tokens.
    assert_eq!(store.list(None).await.expect("list"), vec![key]);
}

#[tokio::test]
async fn a_killed_refresher_never_leaves_a_record_the_orphan_scan_misses() {
    let (_dir, store) = support::temp_store();
    let key = tokens::key("crash", "Bob");
    support::create(&store, &key, &tokens::token(1)).await;
    let marker = support::marker_path(&store, &key);
    let mut rng = rand::rng();
    let (mut with_record, mut without) = (0, 0);
    let mut last_generation = 1;

    for _ in 0..KILLS {
        let mut child = ChildProcess::spawn("refresher", store.root(), "");
        child.expect_line("refreshed");
        let delay = rng.random_range(Duration::ZERO..=MAX_KILL_DELAY);
        // The random delay is the point of the test, not a wait for an event.
        std::thread::sleep(delay);
        child.kill();

        let stored = store
            .load(&key)
            .await
            .expect("the account file is readable after a kill")
            .expect("the token disappeared");
        let generation = tokens::generation_of(support::token_of(&stored));
        assert!(generation > last_generation, "no refresh was kept");
        last_generation = generation;
        // The dead child's lease is free, so a record is an orphan, and the
        // scan must find it; without one, the scan finds nothing and clears
        // any marker the kill left behind.
        let orphans = store.orphaned(10).await.expect("orphaned");
        if stored.in_flight.is_some() {
            with_record += 1;
            assert!(marker.exists(), "a record without its marker");
            assert_eq!(orphans, vec![key.clone()], "the scan missed a record");
            // Finish it, as the next holder would.
            let lease = store.lock(&key, support::WAIT).await.expect("lock");
            lease
                .save_and_release(
                    &tokens::token(generation),
                    Expect::Version(stored.version),
                    Record::Clear,
                )
                .await
                .expect("clear the record");
        } else {
            without += 1;
            assert!(orphans.is_empty(), "the scan listed a key without a record");
            assert!(!marker.exists(), "the scan left a stale marker behind");
        }
    }
    assert!(
        with_record > 0 && without > 0,
        "the kills all landed on one side of the mark: {with_record} with a record, {without} without"
    );
}
