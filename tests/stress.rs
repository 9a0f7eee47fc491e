//! Stress: 50 accounts × 20 tasks calling `access_token` through 10 seconds
//! of emulated time while tokens expire every few seconds, with Fitbit's
//! replay window off (any double refresh burns the grant).
//!
//! Time is a `ManualClock` shared by the manager and the provider, so the
//! test walks through expiries without sleeping.

mod support;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use auth_core::{Clock, ManualClock, TokenEvent};
use auth_emulator::{Emulator, demo};
use support::*;

const ACCOUNTS: usize = 50;
const TASKS: usize = 20;
const LIFETIME: Duration = Duration::from_secs(3);
const SKEW: Duration = Duration::from_secs(1);
const STEP: Duration = Duration::from_secs(1);
const STEPS: u32 = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_accounts_many_tasks_one_refresh_per_expiry() {
    for kind in STORES {
        run(kind).await;
    }
}

async fn run(kind: StoreKind) {
    let clock = Arc::new(ManualClock::new(SystemTime::now()));
    let w = world(
        kind,
        Options {
            emulator: Emulator::builder()
                .with_demo_clients()
                .replay_window(false)
                .fitbit_access_token_lifetime(LIFETIME)
                .rate_limit_per_hour(1_000_000),
            skew: SKEW,
            clock: Some(clock.clone() as Arc<dyn Clock>),
            ..Options::default()
        },
    )
    .await;
    let mut events = w.manager.subscribe();
    let users: Vec<String> = (0..ACCOUNTS).map(|i| format!("STRESS{i:02}")).collect();
    for user in &users {
        let issued = w
            .emulator
            .seed_fitbit_grant(demo::FITBIT_SERVER_CLIENT_ID, user, &["sleep"]);
        put(
            w.store.as_ref(),
            &key(user),
            &token_from(&issued, clock.now()),
        )
        .await;
    }

    let mut seen: BTreeMap<String, HashSet<String>> = BTreeMap::new();
    let mut failures = Vec::new();
    for _ in 0..STEPS {
        clock.advance(STEP);
        let mut tasks = Vec::with_capacity(ACCOUNTS * TASKS);
        for user in &users {
            for _ in 0..TASKS {
                let manager = w.manager.clone();
                let key = key(user);
                tasks.push(tokio::spawn(async move {
                    (key.clone(), manager.access_token(&key).await)
                }));
            }
        }
        for task in tasks {
            let (key, result) = task.await.unwrap();
            match result {
                Ok(token) => {
                    seen.entry(key.account.to_string())
                        .or_default()
                        .insert(token.secret().to_owned());
                }
                Err(err) => failures.push(format!("{key}: {err}")),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{kind:?}: {} failures, first: {:?}",
        failures.len(),
        failures.first()
    );

    // Issued at t, a token is refreshed once now + skew reaches t + lifetime:
    // with 1 s steps, a 3 s lifetime and a 1 s skew, at t = 2, 4, 6, 8, 10.
    let per_account = u64::from(STEPS) / 2;
    let counters = w.emulator.counters();
    assert_eq!(
        counters.reuse_detections, 0,
        "{kind:?}: a refresh token was used twice"
    );
    assert_eq!(
        counters.fitbit_token_refresh,
        per_account * ACCOUNTS as u64,
        "{kind:?}: refreshes"
    );

    let mut refreshed: BTreeMap<String, u64> = BTreeMap::new();
    while let Ok(event) = events.try_recv() {
        match event {
            TokenEvent::Refreshed { key, .. } => {
                *refreshed.entry(key.account.to_string()).or_default() += 1
            }
            TokenEvent::ReauthorizationRequired { key, reason } => {
                panic!("{kind:?}: {key} needs reauthorization: {reason}")
            }
            _ => {}
        }
    }
    for user in &users {
        assert_eq!(
            refreshed.get(user),
            Some(&per_account),
            "{kind:?}: refreshes of {user}"
        );
        // One token per expiry window, shared by every task.
        assert_eq!(
            seen[user].len() as u64,
            per_account + 1,
            "{kind:?}: tokens seen by {user}"
        );
        let stored = w
            .store
            .load(&key(user))
            .await
            .unwrap()
            .expect("a token was lost");
        assert!(
            stored
                .token
                .as_ref()
                .expect("a token")
                .reauthorization_required()
                .is_none()
        );
        assert!(
            seen[user].contains(auth_core::secrecy::ExposeSecret::expose_secret(
                stored.token.as_ref().expect("a token").access_token()
            ))
        );
    }
}
