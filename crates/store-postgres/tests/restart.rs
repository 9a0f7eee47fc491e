//! The database restarts in the middle of a run: callers get clear,
//! transient `Unavailable` errors while it is down (or `LeaseLost`, when the
//! outage outlasts the lease), then carry on; no saved
//! token is lost and no version goes backwards. This binary has its own
//! cluster, since it stops it.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use auth_core::{Expect, Record, StoreErrorKind, TokenStore, Version};
use test_support::postgres::Cluster;
use test_support::tokens;

#[derive(Default)]
struct Run {
    /// Generations whose save returned Ok, with their versions.
    saved: Vec<(u64, Version)>,
    /// Generations whose save failed with an unknown outcome.
    unknown: Vec<u64>,
    /// Every version seen, in order (loads and saves).
    seen: Vec<Version>,
    /// Error messages seen.
    errors: Vec<String>,
    stop: bool,
}

async fn wait_for(run: &Arc<Mutex<Run>>, what: &str, done: impl Fn(&Run) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done(&run.lock().unwrap()) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_mid_run_gives_transient_errors_and_loses_nothing() {
    let cluster = Cluster::start();
    let store = support::builder("restart")
        .acquire_timeout(Duration::from_millis(500))
        .connect(cluster.url())
        .await
        .expect("connect");
    let key = tokens::key("restart", "Alice");
    support::put(&store, &key, &tokens::token(0)).await;
    let run = Arc::new(Mutex::new(Run::default()));

    let writer = {
        let (store, key, run) = (store.clone(), key.clone(), Arc::clone(&run));
        tokio::spawn(async move {
            let mut generation = 0;
            while !run.lock().unwrap().stop {
                // The outage may outlast the lease (the tests' TTL is 2 s):
                // then its writes are refused, which is as transient.
                let failed = |e: auth_core::Error| {
                    assert!(
                        matches!(
                            e.store_kind(),
                            Some(StoreErrorKind::Unavailable | StoreErrorKind::LeaseLost)
                        ),
                        "{e}"
                    );
                    if e.store_kind() == Some(StoreErrorKind::Unavailable) {
                        assert!(e.is_transient(), "{e}");
                    }
                    run.lock().unwrap().errors.push(e.to_string());
                };
                let lease = match store.lock(&key, Duration::from_secs(5)).await {
                    Ok(lease) => lease,
                    Err(e) if e.store_kind() == Some(StoreErrorKind::LockTimeout) => continue,
                    Err(e) => {
                        failed(e);
                        continue;
                    }
                };
                let current = match lease.load().await {
                    Ok(current) => current.expect("the token is never lost"),
                    Err(e) => {
                        failed(e);
                        continue;
                    }
                };
                run.lock().unwrap().seen.push(current.version);
                let marked = match lease.mark_in_flight(current.version).await {
                    Ok(marked) => marked,
                    Err(e) => {
                        failed(e);
                        continue;
                    }
                };
                run.lock().unwrap().seen.push(marked);
                generation += 1;
                match lease
                    .save_and_release(
                        &tokens::token(generation),
                        Expect::Version(marked),
                        Record::Clear,
                    )
                    .await
                {
                    Ok(version) => {
                        let mut r = run.lock().unwrap();
                        r.saved.push((generation, version));
                        r.seen.push(version);
                    }
                    Err(e) => {
                        run.lock().unwrap().unknown.push(generation);
                        failed(e);
                    }
                }
            }
        })
    };

    wait_for(&run, "saves before the restart", |r| r.saved.len() >= 10).await;
    cluster.stop();
    wait_for(&run, "errors while the database is down", |r| {
        r.errors.len() >= 3
    })
    .await;
    let saved_before = run.lock().unwrap().saved.len();
    cluster.start_again();
    wait_for(&run, "saves after the restart", |r| {
        r.saved.len() >= saved_before + 10
    })
    .await;
    run.lock().unwrap().stop = true;
    writer.await.expect("the writer panicked");

    let stored = store.load(&key).await.expect("load").expect("never lost");
    let stored_token = stored.token.as_ref().expect("a token");
    let r = run.lock().unwrap();
    for pair in r.seen.windows(2) {
        assert!(pair[0] <= pair[1], "a version went backwards: {:?}", r.seen);
    }
    for message in &r.errors {
        assert!(
            message.contains(&format!("127.0.0.1:{}", cluster.port())),
            "{message}"
        );
        assert!(message.contains("try again"), "{message}");
    }
    let (last_generation, last_version) = *r.saved.last().unwrap();
    let stored_generation = tokens::generation_of(stored_token);
    assert!(stored.version >= last_version);
    assert!(
        stored_generation == last_generation || r.unknown.contains(&stored_generation),
        "the stored token {stored_generation} is neither the last saved {last_generation} nor \
         one whose save had an unknown outcome"
    );
}
