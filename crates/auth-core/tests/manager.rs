//! The token manager's refresh protocol, proven against a fake provider.

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use auth_core::secrecy::ExposeSecret;
use auth_core::testing::Scripted;
use auth_core::{AuthorizeRequest, Callback, Error, TokenEvent, TokenStore};
use support::{expired_token, holds_token, key, seed, setup_with, stored, valid_token};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_callers_on_an_expired_token_make_one_refresh() {
    let s = setup_with(Some(expired_token())).await;
    s.provider.hold_refreshes();
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let manager = s.manager.clone();
        tasks.push(tokio::spawn(
            async move { manager.access_token(&key()).await },
        ));
    }
    s.provider.refresh_started().await;
    s.provider.release_refreshes(1);
    let mut secrets = std::collections::HashSet::new();
    for task in tasks {
        let token = task.await.unwrap().unwrap();
        secrets.insert(token.secret().to_owned());
    }
    assert_eq!(s.provider.refresh_calls(), 1);
    assert_eq!(secrets.len(), 1, "callers got different tokens");
    let stored = stored(&s.store.inner, &key()).await;
    assert_eq!(
        stored.access_token().expose_secret(),
        secrets.iter().next().unwrap()
    );
}

#[tokio::test(start_paused = true)]
async fn two_transient_failures_then_success_are_retried_and_saved() {
    let s = setup_with(Some(expired_token())).await;
    s.provider
        .script_refresh(Scripted::Fail(Error::transient("connection reset")));
    s.provider.script_refresh(Scripted::Fail(Error::Transient {
        sent: auth_core::Sent::Unknown,
        message: "503".into(),
        status: Some(503),
        retry_after: Some(Duration::from_secs(2)),
        source: None,
    }));
    s.provider.script_refresh(Scripted::Fresh);
    let token = s.manager.access_token(&key()).await.unwrap();
    assert_eq!(s.provider.refresh_calls(), 3);
    // Every attempt used the same refresh token: retries never skip ahead.
    assert_eq!(
        s.provider.seen_refresh_tokens(),
        vec!["old-refresh-secret"; 3]
    );
    let stored = stored(&s.store.inner, &key()).await;
    assert_eq!(stored.access_token().expose_secret(), token.secret());
}

#[tokio::test(start_paused = true)]
async fn retries_are_bounded_and_the_stored_token_is_intact() {
    let s = setup_with(Some(expired_token())).await;
    for _ in 0..10 {
        s.provider
            .script_refresh(Scripted::Fail(Error::transient("down")));
    }
    let err = s.manager.access_token(&key()).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert_eq!(s.provider.refresh_calls(), 4);
    let stored = stored(&s.store.inner, &key()).await;
    assert_eq!(
        stored.refresh_token().unwrap().expose_secret(),
        "old-refresh-secret"
    );
    assert!(stored.reauthorization_required().is_none());
}

#[tokio::test]
async fn a_long_retry_after_is_returned_not_waited_for() {
    let s = setup_with(Some(expired_token())).await;
    s.provider.script_refresh(Scripted::Fail(Error::Transient {
        sent: auth_core::Sent::Unknown,
        message: "rate limited".into(),
        status: Some(429),
        retry_after: Some(Duration::from_secs(1800)),
        source: None,
    }));
    let err = s.manager.access_token(&key()).await.unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(1800)));
    assert_eq!(s.provider.refresh_calls(), 1);
}

#[tokio::test]
async fn invalid_grant_flags_the_token_and_keeps_it() {
    let s = setup_with(Some(expired_token())).await;
    let mut events = s.manager.subscribe();
    s.provider
        .script_refresh(Scripted::Fail(Error::reauthorization_required(
            None,
            "invalid_grant: refresh token invalid",
        )));
    let err = s.manager.access_token(&key()).await.unwrap_err();
    assert!(err.is_reauthorization_required(), "{err}");
    assert!(
        err.to_string().contains("fake/26FWFL"),
        "the error names the account: {err}"
    );
    let stored = stored(&s.store.inner, &key()).await;
    assert_eq!(
        stored.refresh_token().unwrap().expose_secret(),
        "old-refresh-secret"
    );
    assert!(
        stored
            .reauthorization_required()
            .unwrap()
            .contains("invalid_grant")
    );
    match events.recv().await.unwrap() {
        TokenEvent::ReauthorizationRequired { key: k, .. } => assert_eq!(k, key()),
        other => panic!("unexpected event {other:?}"),
    }
    // A flagged token is not sent to the server again.
    let err = s.manager.access_token(&key()).await.unwrap_err();
    assert!(err.is_reauthorization_required());
    assert_eq!(s.provider.refresh_calls(), 1);
}

#[tokio::test]
async fn a_refresh_without_refresh_token_keeps_the_old_one() {
    let s = setup_with(Some(expired_token())).await;
    s.provider
        .script_refresh(Scripted::FreshWithoutRefreshToken);
    let token = s.manager.access_token(&key()).await.unwrap();
    assert!(token.token_set().refresh_token().is_some());
    let stored = stored(&s.store.inner, &key()).await;
    assert_eq!(
        stored.refresh_token().unwrap().expose_secret(),
        "old-refresh-secret"
    );
    assert_ne!(stored.access_token().expose_secret(), "old-access-secret");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_leader_mid_refresh_does_not_wedge_the_others() {
    let s = setup_with(Some(expired_token())).await;
    s.provider.hold_refreshes();
    let leader = {
        let manager = s.manager.clone();
        tokio::spawn(async move { manager.access_token(&key()).await })
    };
    s.provider.refresh_started().await;
    leader.abort();
    assert!(leader.await.unwrap_err().is_cancelled());
    let follower = {
        let manager = s.manager.clone();
        tokio::spawn(async move { manager.access_token(&key()).await })
    };
    s.provider.release_refreshes(1);
    let token = follower.await.unwrap().unwrap();
    assert_eq!(
        s.provider.refresh_calls(),
        1,
        "the abandoned refresh must finish, not restart"
    );
    // And it was saved, though its first caller was gone.
    let stored = stored(&s.store.inner, &key()).await;
    assert_eq!(stored.access_token().expose_secret(), token.secret());
}

#[tokio::test]
async fn the_hot_path_does_no_store_io() {
    let s = setup_with(Some(valid_token())).await;
    s.manager.access_token(&key()).await.unwrap();
    let after_first = s.store.io_calls();
    for _ in 0..1000 {
        s.manager.access_token(&key()).await.unwrap();
    }
    assert_eq!(
        s.store.io_calls(),
        after_first,
        "the hot path touched the store"
    );
    assert_eq!(s.store.loads(), 1);
    assert_eq!(s.provider.refresh_calls(), 0);
}

#[tokio::test]
async fn a_token_refreshed_by_another_process_is_used_without_a_request() {
    let s = setup_with(Some(expired_token())).await;
    // Prime this manager's cache with the expired token's version.
    let other = auth_core::TokenManager::builder(s.store.clone())
        .provider(s.provider.clone())
        .build();
    other.access_token(&key()).await.unwrap();
    assert_eq!(s.provider.refresh_calls(), 1);
    // The first manager sees the other's token in the store and sends nothing.
    let token = s.manager.access_token(&key()).await.unwrap();
    assert_eq!(s.provider.refresh_calls(), 1);
    let stored = stored(&s.store.inner, &key()).await;
    assert_eq!(stored.access_token().expose_secret(), token.secret());
}

#[tokio::test]
async fn no_token_stored_is_reauthorization_required() {
    let s = setup_with(None).await;
    let err = s.manager.access_token(&key()).await.unwrap_err();
    assert!(err.is_reauthorization_required(), "{err}");
    assert!(err.to_string().contains("no token is stored"), "{err}");
}

#[tokio::test]
async fn unknown_provider_is_invalid_input() {
    let s = setup_with(None).await;
    let err = s
        .manager
        .access_token(&auth_core::TokenKey::parse("nope", "a").unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    assert!(
        err.to_string().contains("fake"),
        "lists the registered providers: {err}"
    );
}

#[tokio::test]
async fn force_refresh_refreshes_a_valid_token_once() {
    let s = setup_with(Some(valid_token())).await;
    let before = s.manager.access_token(&key()).await.unwrap();
    let after = s.manager.force_refresh(&key(), &before).await.unwrap();
    assert_ne!(before.secret(), after.secret());
    assert_eq!(s.provider.refresh_calls(), 1);
    // A late rejection of the same token gets the new one, with no request.
    let late = s.manager.force_refresh(&key(), &before).await.unwrap();
    assert_eq!(late.secret(), after.secret());
    assert_eq!(s.provider.refresh_calls(), 1);
    assert_eq!(
        s.manager.access_token(&key()).await.unwrap().secret(),
        after.secret()
    );
}

#[tokio::test]
async fn complete_authorization_checks_state_then_saves() {
    let s = setup_with(None).await;
    let pending = s
        .manager
        .begin_authorization(
            &key().provider,
            AuthorizeRequest::new().account(key().account),
        )
        .unwrap();
    // A forged callback is refused before any token request.
    let forged = Callback::parse("code=stolen&state=forged").unwrap();
    let err = s
        .manager
        .complete_authorization(&pending, &forged)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    assert_eq!(s.provider.exchange_calls(), 0);
    // The user denied.
    let denied = Callback::parse(&format!(
        "error=access_denied&state={}",
        pending.state().expose_secret()
    ))
    .unwrap();
    let err = s
        .manager
        .complete_authorization(&pending, &denied)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AuthorizationDenied { .. }), "{err}");
    // The real callback.
    let mut events = s.manager.subscribe();
    let good = Callback::parse(&format!(
        "code=c0de&state={}",
        pending.state().expose_secret()
    ))
    .unwrap();
    let (stored_key, token) = s
        .manager
        .complete_authorization(&pending, &good)
        .await
        .unwrap();
    assert_eq!(stored_key, key());
    assert_eq!(s.provider.exchange_calls(), 1);
    let stored = stored(&s.store.inner, &key()).await;
    assert_eq!(stored.access_token().expose_secret(), token.secret());
    assert_eq!(
        events.recv().await.unwrap(),
        TokenEvent::Authorized { key: key() }
    );
}

#[tokio::test]
async fn reauthorizing_replaces_a_flagged_token() {
    let s = setup_with(Some(
        expired_token().flagged_for_reauthorization("invalid_grant"),
    ))
    .await;
    assert!(
        s.manager
            .access_token(&key())
            .await
            .unwrap_err()
            .is_reauthorization_required()
    );
    let pending = s
        .manager
        .begin_authorization(
            &key().provider,
            AuthorizeRequest::new().account(key().account),
        )
        .unwrap();
    let cb = Callback::parse(&format!("code=c&state={}", pending.state().expose_secret())).unwrap();
    s.manager
        .complete_authorization(&pending, &cb)
        .await
        .unwrap();
    let token = s.manager.access_token(&key()).await.unwrap();
    assert!(token.token_set().reauthorization_required().is_none());
}

#[tokio::test]
async fn revoke_revokes_at_the_server_then_deletes() {
    let s = setup_with(Some(valid_token())).await;
    s.manager.revoke(&key()).await.unwrap();
    assert_eq!(s.provider.revoke_calls(), 1);
    assert!(!holds_token(&s.store.inner, &key()).await);
    assert!(
        s.manager
            .access_token(&key())
            .await
            .unwrap_err()
            .is_reauthorization_required()
    );
}

#[tokio::test]
async fn a_failed_revoke_keeps_the_token() {
    let s = setup_with(Some(valid_token())).await;
    s.provider
        .script_revoke_failure(Error::transient("server down"));
    assert!(s.manager.revoke(&key()).await.unwrap_err().is_transient());
    assert!(holds_token(&s.store.inner, &key()).await);
}

#[tokio::test]
async fn refreshed_event_is_emitted() {
    let s = setup_with(Some(expired_token())).await;
    let mut events = s.manager.subscribe();
    s.manager.access_token(&key()).await.unwrap();
    match events.recv().await.unwrap() {
        TokenEvent::Refreshed { key: k, expires_at } => {
            assert_eq!(k, key());
            assert!(expires_at.is_some());
        }
        other => panic!("unexpected event {other:?}"),
    }
}

#[tokio::test]
async fn introspect_uses_the_stored_token() {
    let s = setup_with(Some(valid_token())).await;
    let info = s.manager.introspect(&key()).await.unwrap();
    assert!(info.active);
    assert_eq!(s.provider.introspect_calls(), 1);
}

#[tokio::test]
async fn logout_deletes_locally_only() {
    let s = setup_with(Some(valid_token())).await;
    assert!(s.manager.remove(&key()).await.unwrap());
    assert_eq!(s.provider.revoke_calls(), 0);
    assert!(!s.manager.remove(&key()).await.unwrap());
}

#[tokio::test]
async fn manager_works_as_a_shared_trait_object_graph() {
    fn assert_send_sync<T: Send + Sync + Clone + 'static>() {}
    assert_send_sync::<auth_core::TokenManager>();
    let _: Arc<dyn TokenStore> = Arc::new(store_memory::MemoryTokenStore::new());
}

#[tokio::test]
async fn a_stale_pending_authorization_is_refused() {
    let clock = Arc::new(auth_core::ManualClock::new(std::time::SystemTime::now()));
    let s = setup_with(None).await;
    let manager = auth_core::TokenManager::builder(s.store.clone())
        .provider(s.provider.clone())
        .clock(clock.clone())
        .pending_max_age(Duration::from_secs(600))
        .build();
    let pending = manager
        .begin_authorization(
            &key().provider,
            AuthorizeRequest::new().account(key().account),
        )
        .unwrap();
    clock.advance(Duration::from_secs(601));
    let cb = Callback::parse(&format!("code=c&state={}", pending.state().expose_secret())).unwrap();
    let err = manager
        .complete_authorization(&pending, &cb)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    assert!(err.to_string().contains("start it again"), "{err}");
    assert_eq!(s.provider.exchange_calls(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_abandoned_by_its_only_caller_still_finishes_and_saves() {
    let s = setup_with(Some(expired_token())).await;
    let mut events = s.manager.subscribe();
    s.provider.hold_refreshes();
    let only = {
        let manager = s.manager.clone();
        tokio::spawn(async move { manager.access_token(&key()).await })
    };
    s.provider.refresh_started().await;
    only.abort();
    assert!(only.await.unwrap_err().is_cancelled());
    // Nobody is waiting any more; the server's answer must still be saved.
    s.provider.release_refreshes(1);
    match events.recv().await.unwrap() {
        TokenEvent::Refreshed { key: k, .. } => assert_eq!(k, key()),
        other => panic!("unexpected event {other:?}"),
    }
    let stored = stored(&s.store.inner, &key()).await;
    assert_eq!(
        stored.refresh_token().unwrap().expose_secret(),
        "fake-refresh-1"
    );
    assert_eq!(s.provider.refresh_calls(), 1);
}

/// A provider whose first refresh panics, to prove a bug in a provider
/// cannot wedge an account.
#[derive(Debug)]
struct PanicsOnce {
    inner: auth_core::testing::FakeProvider,
    panicked: std::sync::atomic::AtomicBool,
}

#[auth_core::async_trait]
impl auth_core::TokenProvider for PanicsOnce {
    fn id(&self) -> &auth_core::ProviderId {
        self.inner.id()
    }
    fn authorize(
        &self,
        request: AuthorizeRequest,
    ) -> auth_core::Result<auth_core::PendingAuthorization> {
        self.inner.authorize(request)
    }
    async fn exchange_code(
        &self,
        pending: &auth_core::PendingAuthorization,
        callback: &Callback,
    ) -> auth_core::Result<auth_core::TokenSet> {
        self.inner.exchange_code(pending, callback).await
    }
    async fn refresh(
        &self,
        current: &auth_core::TokenSet,
    ) -> auth_core::Result<auth_core::TokenSet> {
        if !self.panicked.swap(true, Ordering::SeqCst) {
            panic!("provider bug");
        }
        self.inner.refresh(current).await
    }
    async fn revoke(&self, token: &auth_core::TokenSet) -> auth_core::Result<()> {
        self.inner.revoke(token).await
    }
    async fn introspect(
        &self,
        token: &auth_core::TokenSet,
    ) -> auth_core::Result<auth_core::Introspection> {
        self.inner.introspect(token).await
    }
    fn refresh_rules(&self) -> auth_core::RefreshRules {
        auth_core::RefreshRules::rotating_with_window(Duration::from_secs(120), false)
    }
}

/// A panic during the request is an unknown outcome: the record stays and
/// the next attempt, paced at window/8, replays the same refresh token.
#[tokio::test(start_paused = true)]
async fn a_panicking_provider_gives_an_error_and_does_not_wedge_the_account() {
    let store = Arc::new(support::CountingStore {
        inner: store_memory::MemoryTokenStore::with_clock(support::TokioClock::new()),
        counts: Arc::default(),
    });
    seed(&store.inner, &key(), &expired_token()).await;
    let provider = Arc::new(PanicsOnce {
        inner: auth_core::testing::FakeProvider::new("fake"),
        panicked: std::sync::atomic::AtomicBool::new(false),
    });
    // No retry and no cooldown, to see the panic's own error and then a
    // clean next call.
    let manager = auth_core::TokenManager::builder(store.clone())
        .provider(provider)
        .retry_policy(auth_core::RetryPolicy::none())
        .cooldown_policy(auth_core::CooldownPolicy::new(
            std::time::Duration::ZERO,
            std::time::Duration::ZERO,
        ))
        .build();
    let err = manager.access_token(&key()).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().contains("panicked"), "{err}");
    let stored = stored(&store.inner, &key()).await;
    assert_eq!(
        stored.refresh_token().unwrap().expose_secret(),
        "old-refresh-secret"
    );
    assert!(
        store
            .inner
            .load(&key())
            .await
            .unwrap()
            .unwrap()
            .in_flight
            .is_some(),
        "the outcome is unknown: the record stays"
    );
    tokio::time::sleep(Duration::from_secs(120) / 8).await;
    manager
        .access_token(&key())
        .await
        .expect("the next call works");
}

#[test]
fn a_flight_dropped_outside_a_runtime_does_not_wedge_the_key() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let s = rt.block_on(setup_with(Some(expired_token())));
    s.provider.hold_refreshes();
    let manager = s.manager.clone();
    let mut leader = Box::pin(async move { manager.access_token(&key()).await });
    // One poll inside the runtime takes the leader to the held refresh.
    rt.block_on(async {
        assert!(futures::poll!(&mut leader).is_pending());
    });
    assert_eq!(s.provider.refresh_calls(), 1);
    // Dropped outside any runtime, the work cannot be handed to a task.
    drop(leader);
    s.provider.release_refreshes(10);
    let token = rt
        .block_on(s.manager.access_token(&key()))
        .expect("the next caller clears the dead flight and refreshes");
    assert_eq!(s.provider.refresh_calls(), 2);
    let stored = rt.block_on(stored(&s.store.inner, &key()));
    assert_eq!(stored.access_token().expose_secret(), token.secret());
}

#[tokio::test]
async fn save_authorization_saves_under_the_lease_like_a_login() {
    let s = setup_with(Some(
        expired_token().flagged_for_reauthorization("invalid_grant"),
    ))
    .await;
    let mut events = s.manager.subscribe();
    let locks = s.store.locks();
    let token = s.provider.mint(true);
    let saved = s
        .manager
        .save_authorization(&key(), token.clone())
        .await
        .unwrap();
    assert_eq!(saved.secret(), token.access_token().expose_secret());
    assert_eq!(s.store.locks(), locks + 1, "saved under the key's lease");
    let stored = stored(&s.store.inner, &key()).await;
    assert_eq!(
        stored.access_token().expose_secret(),
        token.access_token().expose_secret()
    );
    assert!(
        stored.reauthorization_required().is_none(),
        "the flag went with the old token"
    );
    // The token was issued before its sequence was taken: the login race
    // is named, then the login saved.
    assert_eq!(
        events.recv().await.unwrap(),
        TokenEvent::LoginRace { key: key() }
    );
    assert_eq!(
        events.recv().await.unwrap(),
        TokenEvent::Authorized { key: key() }
    );
    assert_eq!(
        s.manager.access_token(&key()).await.unwrap().secret(),
        saved.secret()
    );
    let unknown = auth_core::TokenKey::parse("nobody", "user").unwrap();
    let err = s
        .manager
        .save_authorization(&unknown, token)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
}

/// One refresh used to hold the lease for up to about 210 s (4 attempts of
/// a 30 s timeout plus `Retry-After` waits) while others waited 30 s. The
/// provider phase now ends at the refresh deadline, attempts and waits
/// included, well inside the default lock wait.
#[tokio::test(start_paused = true)]
async fn a_hanging_provider_holds_the_lease_no_longer_than_the_refresh_deadline() {
    let s = setup_with(Some(expired_token())).await;
    s.provider.hold_refreshes();
    let started = tokio::time::Instant::now();
    let err = s.manager.access_token(&key()).await.unwrap_err();
    let took = started.elapsed();
    assert!(err.is_transient(), "{err}");
    assert!(
        took <= auth_core::DEFAULT_REFRESH_DEADLINE + Duration::from_secs(1),
        "the refresh held on for {took:?}"
    );
    assert!(auth_core::DEFAULT_REFRESH_DEADLINE < auth_core::DEFAULT_LOCK_WAIT);
    // The lease is free again: another caller can take it at once.
    let lease = s
        .store
        .inner
        .lock(&key(), Duration::ZERO)
        .await
        .expect("the lease was released");
    drop(lease);
}
