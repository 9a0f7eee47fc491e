//! The `metrics` feature: what the manager and the refresher record, with
//! `metrics-util`'s debugging recorder, and that no label carries an
//! account id or anything from a token.

#![cfg(feature = "metrics")]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use auth_core::telemetry;
use auth_core::testing::{FakeProvider, Scripted};
use auth_core::{Error, TokenKey, TokenManager, TokenSet, TokenStore};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshot};
use store_memory::MemoryTokenStore;

/// Stores `token` for `key` (nothing stored before).
async fn seed(store: &dyn TokenStore, key: &TokenKey, token: &TokenSet) {
    let lease = store.lock(key, Duration::from_secs(1)).await.unwrap();
    lease
        .save_and_release(token, auth_core::Expect::Absent, auth_core::Record::Clear)
        .await
        .unwrap();
}

/// One recorded metric: its name, its labels and its value.
type Row = (String, Vec<(String, String)>, DebugValue);

/// Every metric in the snapshot.
fn rows(snapshot: Snapshot) -> Vec<Row> {
    snapshot
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let (_, key) = key.into_parts();
            let labels = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            (key.name().to_owned(), labels, value)
        })
        .collect()
}

fn counter(rows: &[Row], name: &str, labels: &[(&str, &str)]) -> u64 {
    rows.iter()
        .filter(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|(_, _, value)| match value {
            DebugValue::Counter(n) => *n,
            other => panic!("{name} is not a counter: {other:?}"),
        })
        .sum()
}

fn histogram_len(rows: &[Row], name: &str) -> usize {
    rows.iter()
        .filter(|(n, _, _)| n == name)
        .map(|(_, _, value)| match value {
            DebugValue::Histogram(samples) => samples.len(),
            other => panic!("{name} is not a histogram: {other:?}"),
        })
        .sum()
}

#[tokio::test(flavor = "current_thread")]
async fn refreshes_cache_lease_and_reauthorization_are_recorded_without_secrets() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    // Before the manager is built: its hot-path handles are registered then.
    let _guard = metrics::set_default_local_recorder(&recorder);

    let store = MemoryTokenStore::new();
    let provider = Arc::new(FakeProvider::new("fitbit"));
    let manager = TokenManager::builder(Arc::new(store.clone()))
        .provider(provider.clone())
        .build();
    let issued = SystemTime::now() - Duration::from_secs(7200);
    let expired = |n: u32| {
        TokenSet::new(format!("secret-access-{n}"), "Bearer", issued)
            .with_refresh_token(format!("secret-refresh-{n}"))
            .with_expires_in(Duration::from_secs(3600))
    };
    let alice = TokenKey::parse("fitbit", "ALICE-ACCOUNT").unwrap();
    let bob = TokenKey::parse("fitbit", "BOB-ACCOUNT").unwrap();
    seed(&store, &alice, &expired(1)).await;
    seed(&store, &bob, &expired(2)).await;

    // Alice: a miss that refreshes, then two hits.
    manager.access_token(&alice).await.unwrap();
    manager.access_token(&alice).await.unwrap();
    manager.access_token(&alice).await.unwrap();
    // Bob: the server refuses the grant.
    provider.script_refresh(Scripted::Fail(Error::reauthorization_required(
        None,
        "invalid_grant",
    )));
    let refused = manager.access_token(&bob).await.unwrap_err();
    assert!(refused.is_reauthorization_required());

    let rows = rows(snapshotter.snapshot());
    let fitbit = ("provider", "fitbit");
    assert_eq!(counter(&rows, telemetry::CACHE_HITS, &[fitbit]), 2);
    assert_eq!(counter(&rows, telemetry::CACHE_MISSES, &[fitbit]), 2);
    assert_eq!(
        counter(&rows, telemetry::REFRESHES, &[fitbit, ("class", "ok")]),
        1
    );
    assert_eq!(
        counter(
            &rows,
            telemetry::REFRESHES,
            &[fitbit, ("class", "reauthorization_required")]
        ),
        1
    );
    assert_eq!(counter(&rows, telemetry::REAUTHORIZATIONS, &[fitbit]), 1);
    assert_eq!(histogram_len(&rows, telemetry::REFRESH_SECONDS), 2);
    assert_eq!(histogram_len(&rows, telemetry::LEASE_WAIT_SECONDS), 2);

    // Labels: provider and class only; no account, nothing from a token.
    for (name, labels, _) in &rows {
        for (key, value) in labels {
            assert!(
                key == "provider" || key == "class",
                "{name} has a label {key}"
            );
            for forbidden in ["ALICE", "BOB", "secret", "fake-access", "fake-refresh"] {
                assert!(!value.contains(forbidden), "{name}: {key}={value}");
                assert!(!name.contains(forbidden));
            }
        }
    }
    manager.shutdown(Duration::from_secs(5)).await.unwrap();
}
