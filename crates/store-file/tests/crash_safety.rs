//! A writer killed with SIGKILL at random moments never leaves a token file
//! that is half-written or mixes two tokens, and never loses a save that
//! had returned.

#![cfg(unix)]

mod support;

use std::time::Duration;

use auth_core::{TokenStore, Version};
use rand::Rng;
use store_file::FileTokenStore;
use support::child::{self, ChildProcess, Role};

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

/// Saves generation after generation until killed, and reports the first
/// one it saved.
fn play(role: Role) {
    assert_eq!(role.name, "saver", "unknown role");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let store = FileTokenStore::open(&role.root).expect("open the store");
        let key = support::key("crash", "Alice");
        let current = store.load(&key).await.expect("load in the child");
        let (mut generation, mut version) = match current {
            Some(v) => (support::generation_of(&v.value), Some(v.version)),
            None => (0, None),
        };
        let mut reported = false;
        loop {
            generation += 1;
            let saved = store.save(&key, &support::token(generation), version).await;
            version = Some(saved.expect("save in the child"));
            if !reported {
                child::report(&format!("saved {generation}"));
                reported = true;
            }
        }
    });
}

#[tokio::test]
async fn a_killed_writer_leaves_the_old_token_or_the_new_one() {
    let (_dir, store) = support::temp_store();
    let key = support::key("crash", "Alice");
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
        let generation = support::generation_of(&stored.value);
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
