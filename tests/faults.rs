//! Faults during refresh, against the emulator, over both real stores.
//!
//! For each fault: the right error class, the stored token intact, retries
//! bounded (requests counted), and the next call after the fault clears
//! succeeds without reauthorization.

mod support;

use std::time::Duration;

use auth_core::secrecy::ExposeSecret;
use auth_core::{Error, TokenSet};
use auth_emulator::{Endpoint, Fault};
use support::*;

/// How each fault must surface.
#[derive(Debug)]
enum Expect {
    Transient,
    TransientWithRetryAfter(Duration),
}

fn same_token(a: &TokenSet, b: &TokenSet) -> bool {
    a.access_token().expose_secret() == b.access_token().expose_secret()
        && a.refresh_token().map(|t| t.expose_secret().to_owned())
            == b.refresh_token().map(|t| t.expose_secret().to_owned())
        && a.reauthorization_required().is_none() == b.reauthorization_required().is_none()
}

async fn check_fault(
    kind: StoreKind,
    fault: Fault,
    expect: Expect,
    expected_requests: u64,
    timeout: Duration,
) {
    let label = format!("{kind:?} {fault:?}");
    let w = world(
        kind,
        Options {
            timeout,
            ..Options::default()
        },
    )
    .await;
    let (key, original) = seed_expired(&w, "FAULTY").await;
    w.emulator.inject(Endpoint::FitbitToken, fault, 100);

    let err = w.manager.access_token(&key).await.expect_err(&label);
    match expect {
        Expect::Transient => assert!(err.is_transient(), "{label}: {err}"),
        Expect::TransientWithRetryAfter(d) => {
            assert!(err.is_transient(), "{label}: {err}");
            assert_eq!(err.retry_after(), Some(d), "{label}");
        }
    }
    let text = format!("{err} {err:?}");
    assert!(
        !text.contains(original.refresh_token().unwrap().expose_secret()),
        "{label}: {text}"
    );

    let stored = w
        .store
        .load(&key)
        .await
        .unwrap()
        .expect("the token was lost");
    assert!(
        same_token(stored.token.as_ref().expect("a token"), &original),
        "{label}: the stored token changed"
    );
    assert_eq!(
        w.emulator.counters().fitbit_token_refresh,
        expected_requests,
        "{label}: retries"
    );

    // The failure left a cooldown with the token: the next call sends
    // nothing and says when to try again.
    let cooling = w.manager.access_token(&key).await.expect_err(&label);
    assert!(cooling.is_transient(), "{label}: {cooling}");
    assert!(cooling.retry_after().is_some(), "{label}: {cooling}");
    assert_eq!(
        w.emulator.counters().fitbit_token_refresh,
        expected_requests,
        "{label}: a request during the cooldown"
    );

    // Once the fault clears (and the cooldown, here by an operator), the
    // same pair refreshes: nothing was burned.
    w.emulator.clear_faults();
    assert!(
        w.manager.clear_reauthorization(&key).await.unwrap().any(),
        "{label}"
    );
    let token = w
        .manager
        .access_token(&key)
        .await
        .unwrap_or_else(|e| panic!("{label}: after the fault: {e}"));
    assert!(token.token_set().reauthorization_required().is_none());
    assert_ne!(token.secret(), original.access_token().expose_secret());
    assert_eq!(
        w.emulator.counters().reuse_detections,
        0,
        "{label}: a refresh token was burned"
    );
}

const QUICK: Duration = Duration::from_secs(5);

#[tokio::test]
async fn server_error_500() {
    for kind in STORES {
        check_fault(kind, Fault::Status(500), Expect::Transient, 3, QUICK).await;
    }
}

#[tokio::test]
async fn service_unavailable_503() {
    for kind in STORES {
        check_fault(kind, Fault::Status(503), Expect::Transient, 3, QUICK).await;
    }
}

#[tokio::test]
async fn html_error_page() {
    for kind in STORES {
        check_fault(
            kind,
            Fault::Html { status: 502 },
            Expect::Transient,
            3,
            QUICK,
        )
        .await;
    }
}

#[tokio::test]
async fn slow_answer_past_the_timeout() {
    for kind in STORES {
        check_fault(
            kind,
            Fault::Delay(Duration::from_secs(3)),
            Expect::Transient,
            3,
            Duration::from_millis(300),
        )
        .await;
    }
}

#[tokio::test]
async fn connection_dropped_after_the_server_processed_the_refresh() {
    // The server rotates on the first attempt and replays on the others;
    // after the fault clears, the same refresh token is answered again
    // inside Fitbit's replay window, so no grant is lost.
    for kind in STORES {
        check_fault(
            kind,
            Fault::DropAfterProcessing,
            Expect::Transient,
            3,
            QUICK,
        )
        .await;
    }
}

#[tokio::test]
async fn too_many_requests_with_retry_after() {
    // A Retry-After beyond the policy's bound ends retries at once and is
    // handed to the caller.
    for kind in STORES {
        check_fault(
            kind,
            Fault::RateLimited {
                retry_after: Duration::from_secs(1800),
            },
            Expect::TransientWithRetryAfter(Duration::from_secs(1800)),
            1,
            QUICK,
        )
        .await;
    }
}

#[tokio::test]
async fn a_short_retry_after_is_waited_out_and_succeeds() {
    let w = world(StoreKind::File, Options::default()).await;
    let (key, _) = seed_expired(&w, "RETRYA").await;
    w.emulator.inject(
        Endpoint::FitbitToken,
        Fault::RateLimited {
            retry_after: Duration::from_secs(1),
        },
        1,
    );
    w.manager.access_token(&key).await.unwrap();
    assert_eq!(w.emulator.counters().fitbit_token_refresh, 2);
}

#[tokio::test]
async fn a_refresh_in_flight_elsewhere_409_is_retried_after_a_reload() {
    let w = world(StoreKind::File, Options::default()).await;
    let (key, _) = seed_expired(&w, "CONFLT").await;
    w.emulator
        .inject(Endpoint::FitbitToken, Fault::Status(409), 1);
    w.manager.access_token(&key).await.unwrap();
    assert_eq!(w.emulator.counters().fitbit_token_refresh, 2);
}

#[tokio::test]
async fn a_dead_server_is_transient_and_keeps_the_token() {
    for kind in STORES {
        let w = world(kind, Options::default()).await;
        let (key, original) = seed_expired(&w, "DEADSV").await;
        let emulator_url = w.emulator.base_url().clone();
        let World {
            emulator,
            store,
            manager,
            ..
        } = w;
        emulator.shutdown().await;
        let err = manager.access_token(&key).await.unwrap_err();
        assert!(
            err.is_transient(),
            "{kind:?} {err} (server was {emulator_url})"
        );
        let stored = store.load(&key).await.unwrap().unwrap();
        assert!(same_token(
            stored.token.as_ref().expect("a token"),
            &original
        ));
    }
}

#[tokio::test]
async fn retired_provider_keeps_the_token() {
    for kind in STORES {
        let w = world(kind, Options::default()).await;
        let (key, original) = seed_expired(&w, "RETIRD").await;
        w.emulator.set_retired(true);
        let err = w.manager.access_token(&key).await.unwrap_err();
        assert!(matches!(err, Error::ProviderRetired { .. }), "{err}");
        assert_eq!(
            w.emulator.counters().fitbit_token_refresh,
            1,
            "no retries against a retired API"
        );
        let stored = w.store.load(&key).await.unwrap().unwrap();
        assert!(same_token(
            stored.token.as_ref().expect("a token"),
            &original
        ));
    }
}
