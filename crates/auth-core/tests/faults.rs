//! One named regression test per defect of the refresh protocol found in
//! its review, each failing on the protocol before the write-ahead record
//! (the crate docs' fault table names them), against a strict single-use
//! server with a replay window ([`FakeProvider::strict`]) and a store whose
//! saves can fail or wait ([`FlakyStore`]), on Tokio's paused clock.

mod support;

use std::sync::Arc;
use std::time::Duration;

use auth_core::secrecy::ExposeSecret;
use auth_core::testing::{FakeProvider, Scripted};
use auth_core::{
    AuthorizeRequest, Callback, Clock, Error, ManualClock, RefreshCooldown, RetryPolicy,
    TokenEvent, TokenManager, TokenStore,
};
use support::{FlakyStore, TokioClock, key, seed};

const WINDOW: Duration = Duration::from_secs(120);

struct World {
    clock: Arc<TokioClock>,
    store: FlakyStore,
    provider: Arc<FakeProvider>,
}

/// A strict server with a two-minute window, one account holding a pair
/// that expired a second ago.
async fn world() -> World {
    let clock = TokioClock::new();
    let store = FlakyStore::new(clock.clone());
    let provider = Arc::new(
        FakeProvider::new("fake")
            .with_clock(clock.clone())
            .strict(Some(WINDOW)),
    );
    let grant = provider.issue();
    let expired = grant.with_expires_at(Some(clock.now() - Duration::from_secs(1)));
    seed(&store.inner, &key(), &expired).await;
    World {
        clock,
        store,
        provider,
    }
}

fn manager(w: &World, provider: Arc<FakeProvider>) -> TokenManager {
    TokenManager::builder(Arc::new(w.store.clone()))
        .provider(provider)
        .clock(w.clock.clone())
        .retry_policy(RetryPolicy::none())
        .build()
}

async fn row(w: &World) -> auth_core::Stored {
    w.store.load(&key()).await.unwrap().expect("a row")
}

/// Defect: an unsaved pair was abandoned. The background save stopped at
/// the first lost lease; the pair then lived only in memory while the
/// cache served the old token, and a refresh made before the token was
/// due was never saved. Now the save task takes the lease back at once.
#[tokio::test(start_paused = true)]
async fn regression_an_unsaved_pair_is_saved_after_its_lease_is_lost() {
    let w = world().await;
    let manager = manager(&w, w.provider.clone());
    let mut events = manager.subscribe();
    w.store.faults.fail_next_saves(1, true);
    // `refresh` replaces the pair whatever its expiry.
    let err = manager.refresh(&key()).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert_eq!(manager.unsaved(), vec![key()]);
    loop {
        if let TokenEvent::Refreshed { .. } = events.recv().await.unwrap() {
            break;
        }
    }
    let row = row(&w).await;
    assert_eq!(
        row.token.unwrap().refresh_token().unwrap().expose_secret(),
        w.provider.current_refresh_token().unwrap(),
        "the store holds the pair the server issued last"
    );
    assert!(
        row.in_flight.is_none(),
        "the record was cleared by the save"
    );
    assert!(manager.unsaved().is_empty());
    assert_eq!(w.provider.burns(), 0);
}

/// Defect: the cooldown outgrew the replay window. After an earlier outage
/// (four failures), a lost answer made the next try wait 240 s, past
/// Fitbit's two minutes, and the replay burned the grant. While an outcome
/// is unknown, no wait passes a quarter of the window.
#[tokio::test(start_paused = true)]
async fn regression_the_cooldown_after_a_lost_answer_stays_inside_the_window() {
    let w = world().await;
    // Four failures earlier in the day: the ordinary next pause is 240 s.
    let stored = row(&w).await;
    let earlier = stored
        .token
        .clone()
        .unwrap()
        .with_refresh_cooldown(Some(RefreshCooldown::new(
            w.clock.now() - Duration::from_secs(1),
            4,
        )));
    seed(&w.store.inner, &key(), &earlier).await;
    let manager = manager(&w, w.provider.clone());
    w.provider
        .script_refresh(Scripted::ProcessThenFail(Error::transient(
            "connection reset after sending",
        )));
    let err = manager.access_token(&key()).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(
        err.retry_after().unwrap() <= WINDOW / 4,
        "told to wait {:?}",
        err.retry_after()
    );
    assert!(row(&w).await.in_flight.is_some(), "the outcome is unknown");
    tokio::time::sleep(WINDOW / 4).await;
    let token = manager.access_token(&key()).await.unwrap();
    assert_eq!(w.provider.burns(), 0, "the replay came inside the window");
    assert_eq!(w.provider.refresh_calls(), 2, "one lost answer, one replay");
    let stored = row(&w).await;
    assert_eq!(
        stored.token.unwrap().access_token().expose_secret(),
        token.secret()
    );
}

/// Defect: the refresh deadline (20 s) was shorter than the HTTP timeout
/// (30 s), so a slow answer was never retried inside the call. Each
/// attempt now has its own timeout, and the deadline holds two of them.
#[tokio::test(start_paused = true)]
async fn regression_a_slow_answer_is_retried_inside_the_deadline() {
    let w = world().await;
    let manager = TokenManager::builder(Arc::new(w.store.clone()))
        .provider(w.provider.clone())
        .clock(w.clock.clone())
        .build();
    w.provider.hold_refreshes();
    let provider = w.provider.clone();
    tokio::spawn(async move {
        provider.refresh_started().await;
        provider.refresh_started().await;
        provider.release_refreshes(1);
    });
    let started = tokio::time::Instant::now();
    let token = manager.access_token(&key()).await.unwrap();
    assert_eq!(w.provider.refresh_calls(), 2);
    assert!(started.elapsed() >= auth_core::DEFAULT_ATTEMPT_TIMEOUT);
    assert!(started.elapsed() < auth_core::DEFAULT_REFRESH_DEADLINE);
    assert!(!token.secret().is_empty());
    assert_eq!(w.provider.burns(), 0, "the retry replayed the same token");
}

/// Defect: logins were not cancellation-safe. The save was awaited inline
/// after the code exchange, so a caller dropped in between (Ctrl-C, a
/// browser closing the connection) lost the new grant. Now the exchange
/// and the save finish in a task, and the next call sees the result.
#[tokio::test(start_paused = true)]
async fn regression_a_login_dropped_mid_save_is_still_saved() {
    let w = world().await;
    let manager = manager(&w, w.provider.clone());
    let mut events = manager.subscribe();
    let pending = manager
        .begin_authorization(
            &key().provider,
            AuthorizeRequest::new().account(key().account),
        )
        .unwrap();
    let callback = Callback::parse(&format!(
        "code=c0de&state={}",
        pending.state().expose_secret()
    ))
    .unwrap();
    w.store.faults.hold_saves();
    {
        let login = manager.complete_authorization(&pending, &callback);
        tokio::select! {
            _ = login => panic!("the login finished while its save was held"),
            () = w.store.faults.save_started.notified() => {}
        }
        // The caller's future is dropped here, mid-save.
    }
    assert_eq!(w.provider.exchange_calls(), 1);
    w.store.faults.release();
    assert_eq!(
        events.recv().await.unwrap(),
        TokenEvent::Authorized { key: key() }
    );
    let saved = row(&w).await.token.unwrap();
    assert_eq!(
        saved.refresh_token().unwrap().expose_secret(),
        w.provider.current_refresh_token().unwrap(),
        "the store holds the new grant"
    );
    let served = manager.access_token(&key()).await.unwrap();
    assert_eq!(served.secret(), saved.access_token().expose_secret());
}

/// Defect: two logins were ordered by comparing the clocks of different
/// hosts. Host A, 90 s fast, logged in first but saved last (its store
/// failed), and its older grant replaced host B's newer one. The store's
/// sequence orders them now.
#[tokio::test(start_paused = true)]
async fn regression_logins_are_ordered_by_the_store_not_by_host_clocks() {
    let w = world().await;
    let fast = Arc::new(ManualClock::new(w.clock.now() + Duration::from_secs(90)));
    let provider_a = Arc::new(
        FakeProvider::new("fake")
            .with_clock(fast.clone())
            .strict(Some(WINDOW)),
    );
    let a = TokenManager::builder(Arc::new(w.store.clone()))
        .provider(provider_a.clone())
        .clock(fast)
        .build();
    let b = manager(&w, w.provider.clone());
    let login = |manager: &TokenManager| {
        let pending = manager
            .begin_authorization(
                &key().provider,
                AuthorizeRequest::new().account(key().account),
            )
            .unwrap();
        let callback = Callback::parse(&format!(
            "code=c0de&state={}",
            pending.state().expose_secret()
        ))
        .unwrap();
        (pending, callback)
    };
    // A logs in first; its save fails (twice: at once, and its save
    // task's first try), so it is kept and saved later.
    w.store.faults.fail_next_saves(2, false);
    let (pending, callback) = login(&a);
    let (_, from_a) = a.complete_authorization(&pending, &callback).await.unwrap();
    assert_eq!(a.unsaved(), vec![key()]);
    // B logs in after, and saves at once.
    let (pending, callback) = login(&b);
    let (_, from_b) = b.complete_authorization(&pending, &callback).await.unwrap();
    assert!(
        provider_a.mint(false).issued_at() > from_b.token_set().issued_at(),
        "A's clock is ahead of B's"
    );
    // A's save task retries after its back-off and finds B's newer login.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(a.unsaved().is_empty(), "A's older login was dropped");
    let stored = row(&w).await.token.unwrap();
    assert_eq!(stored.access_token().expose_secret(), from_b.secret());
    assert_ne!(stored.access_token().expose_secret(), from_a.secret());
}

/// Defect: revoke could report success while the grant lived. Process B
/// revoked the stored refresh token while process A held a newer, unsaved
/// pair; B deleted the row and A's pair was dropped. Now B finishes the
/// refresh in flight first (a replay inside the window), revokes the
/// current pair, and leaves a tombstone that A's save respects.
#[tokio::test(start_paused = true)]
async fn regression_revoke_finishes_another_processs_unsaved_refresh_first() {
    let w = world().await;
    let a = manager(&w, w.provider.clone());
    let b = manager(&w, w.provider.clone());
    w.store.faults.fail_next_saves(1, false);
    a.access_token(&key()).await.unwrap_err();
    let held = a.unsaved();
    assert_eq!(held, vec![key()], "A holds the new pair unsaved");
    assert!(row(&w).await.in_flight.is_some());
    b.revoke(&key()).await.unwrap();
    let newest = w.provider.current_refresh_token().unwrap();
    assert_eq!(w.provider.burns(), 0);
    let revoked = w.provider.revoked_access_tokens();
    assert_eq!(revoked.len(), 1);
    assert_eq!(
        revoked[0],
        format!("fake-access-{}", newest.trim_start_matches("fake-refresh-")),
        "the current pair (the one A held) was revoked, not the spent one"
    );
    let stone = row(&w).await;
    assert!(stone.token.is_none(), "a tombstone is left");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(a.unsaved().is_empty(), "A's save gave way to the tombstone");
    assert!(row(&w).await.token.is_none());
}

/// A memory store whose leases a test can break the way an expiring lease
/// is lost: a broken lease no longer holds its key (the next `lock` gets it
/// at once). `fenced` says whether writes through a broken lease are refused
/// in the same step, or written through regardless (a store that checks the
/// lease only when it reads: what the old default methods amounted to).
#[derive(Debug, Clone)]
struct Breakable {
    inner: store_memory::MemoryTokenStore,
    /// One permit per key: the lease.
    slots: Arc<
        std::sync::Mutex<
            std::collections::HashMap<auth_core::TokenKey, Arc<tokio::sync::Semaphore>>,
        >,
    >,
    /// The state of each key's latest lease, for the breaker.
    holders: Arc<std::sync::Mutex<std::collections::HashMap<auth_core::TokenKey, Arc<Held>>>>,
    fenced: bool,
}

/// A lease's hold on its key, which the breaker can take away.
#[derive(Debug, Default)]
struct Held {
    lost: std::sync::atomic::AtomicBool,
    permit: std::sync::Mutex<Option<tokio::sync::OwnedSemaphorePermit>>,
}

impl Held {
    fn let_go(&self) {
        drop(self.permit.lock().expect("permit").take());
    }
}

#[derive(Debug)]
struct BreakableLease {
    key: auth_core::TokenKey,
    store: store_memory::MemoryTokenStore,
    held: Arc<Held>,
    fenced: bool,
}

impl BreakableLease {
    fn check(&self, write: bool) -> auth_core::Result<()> {
        let lost = self.held.lost.load(std::sync::atomic::Ordering::SeqCst);
        if lost && (self.fenced || !write) {
            return Err(Error::store(
                auth_core::StoreErrorKind::LeaseLost,
                None,
                "broken by the test",
            ));
        }
        Ok(())
    }

    /// The memory store's own lease, for one operation.
    async fn inner(&self) -> auth_core::Result<Box<dyn auth_core::Lease>> {
        self.store.lock(&self.key, Duration::from_secs(5)).await
    }
}

impl Drop for BreakableLease {
    fn drop(&mut self) {
        self.held.let_go();
    }
}

#[auth_core::async_trait]
impl auth_core::Lease for BreakableLease {
    fn key(&self) -> &auth_core::TokenKey {
        &self.key
    }
    async fn load(&self) -> auth_core::Result<Option<auth_core::Stored>> {
        self.check(false)?;
        self.inner().await?.load().await
    }
    async fn mark_in_flight(
        &self,
        expected: auth_core::Version,
    ) -> auth_core::Result<auth_core::Version> {
        self.check(true)?;
        self.inner().await?.mark_in_flight(expected).await
    }
    async fn save(
        &self,
        token: &auth_core::TokenSet,
        expected: auth_core::Expect,
        record: auth_core::Record,
    ) -> auth_core::Result<auth_core::Version> {
        self.check(true)?;
        self.inner().await?.save(token, expected, record).await
    }
    async fn save_and_release(
        self: Box<Self>,
        token: &auth_core::TokenSet,
        expected: auth_core::Expect,
        record: auth_core::Record,
    ) -> auth_core::Result<auth_core::Version> {
        self.check(true)?;
        self.inner().await?.save(token, expected, record).await
    }
    async fn delete(&self, expected: auth_core::Version) -> auth_core::Result<auth_core::Version> {
        self.check(true)?;
        self.inner().await?.delete(expected).await
    }
    async fn next_sequence(&self) -> auth_core::Result<auth_core::Sequence> {
        self.check(true)?;
        self.inner().await?.next_sequence().await
    }
    async fn release(self: Box<Self>) -> auth_core::Result<()> {
        Ok(())
    }
}

#[auth_core::async_trait]
impl TokenStore for Breakable {
    async fn load(
        &self,
        key: &auth_core::TokenKey,
    ) -> auth_core::Result<Option<auth_core::Stored>> {
        self.inner.load(key).await
    }
    async fn list(
        &self,
        provider: Option<&auth_core::ProviderId>,
    ) -> auth_core::Result<Vec<auth_core::TokenKey>> {
        self.inner.list(provider).await
    }
    async fn lock(
        &self,
        key: &auth_core::TokenKey,
        wait: Duration,
    ) -> auth_core::Result<Box<dyn auth_core::Lease>> {
        let slot = Arc::clone(
            self.slots
                .lock()
                .expect("slots")
                .entry(key.clone())
                .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(1))),
        );
        let permit = tokio::time::timeout(wait, slot.acquire_owned())
            .await
            .map_err(|_| {
                Error::store(
                    auth_core::StoreErrorKind::LockTimeout,
                    Some(key.clone()),
                    "the lease is held",
                )
            })?
            .expect("the semaphore is never closed");
        let held = Arc::new(Held::default());
        *held.permit.lock().expect("permit") = Some(permit);
        self.holders
            .lock()
            .expect("holders")
            .insert(key.clone(), Arc::clone(&held));
        Ok(Box::new(BreakableLease {
            key: key.clone(),
            store: self.inner.clone(),
            held,
            fenced: self.fenced,
        }))
    }
    async fn orphaned(&self, limit: usize) -> auth_core::Result<Vec<auth_core::TokenKey>> {
        self.inner.orphaned(limit).await
    }
    fn lease_ttl(&self) -> Option<Duration> {
        Some(Duration::from_secs(10))
    }
}

#[auth_core::async_trait]
impl auth_core::conformance::LeaseBreaker for Breakable {
    async fn break_lease(&self, key: &auth_core::TokenKey) {
        let held = self.holders.lock().expect("holders").get(key).cloned();
        if let Some(held) = held {
            held.lost.store(true, std::sync::atomic::Ordering::SeqCst);
            held.let_go();
        }
    }
}

/// Defect: fencing was optional. The trait's default leased writes checked
/// the lease and then wrote, so a store that kept them was unfenced, and
/// the conformance suite did not notice. Writes are now the lease's own
/// methods with no defaults, and the suite's `lease_fences_every_write`
/// fails a store whose writes go through a lost lease.
#[tokio::test]
async fn regression_an_unfenced_store_fails_the_conformance_suite() {
    let store = |fenced| Breakable {
        inner: store_memory::MemoryTokenStore::new(),
        slots: Arc::default(),
        holders: Arc::default(),
        fenced,
    };
    let fenced = store(true);
    auth_core::conformance::lease_fences_every_write(&fenced, Some(&fenced)).await;
    let unfenced = store(false);
    let caught = tokio::spawn(async move {
        auth_core::conformance::lease_fences_every_write(&unfenced, Some(&unfenced)).await;
    })
    .await;
    let panic = caught.expect_err("the suite passed an unfenced store");
    assert!(panic.is_panic());
}

/// A process that died between the server's processing of its refresh and
/// the save leaves only its record behind. The Refresher's orphan poll of
/// another process replays the same refresh token inside the window,
/// without any caller, and saves the pair the server issued.
#[tokio::test(start_paused = true)]
async fn a_refresh_left_by_a_dead_process_is_finished_by_the_refresher() {
    use auth_core::TokenProvider as _;
    let w = world().await;
    // The dead process: it wrote its record and sent; the server rotated.
    let lease = w.store.lock(&key(), Duration::from_secs(1)).await.unwrap();
    let before = lease.load().await.unwrap().unwrap();
    lease.mark_in_flight(before.version).await.unwrap();
    w.provider
        .refresh(before.token.as_ref().unwrap())
        .await
        .unwrap();
    drop(lease);
    let issued = w.provider.current_refresh_token().unwrap();
    // A live process with a Refresher, and no traffic.
    let manager = manager(&w, w.provider.clone());
    let refresher = auth_core::Refresher::builder(manager.clone()).spawn();
    tokio::time::sleep(auth_core::ORPHAN_POLL + Duration::from_secs(1)).await;
    let row = row(&w).await;
    assert!(row.in_flight.is_none(), "the refresh was finished");
    assert_eq!(
        row.token.unwrap().refresh_token().unwrap().expose_secret(),
        issued,
        "the replay saved the pair the server issued"
    );
    assert_eq!(w.provider.burns(), 0);
    manager.shutdown(Duration::from_secs(1)).await.unwrap();
    refresher.stopped().await;
}

/// A pair that still cannot be saved when the process stops is named at
/// shutdown: the error lists the account, so an operator knows which
/// grants are at risk.
#[tokio::test(start_paused = true)]
async fn shutdown_names_the_accounts_whose_new_pair_is_not_saved() {
    let w = world().await;
    let manager = manager(&w, w.provider.clone());
    w.store.faults.fail_next_saves(u32::MAX, false);
    manager.access_token(&key()).await.unwrap_err();
    let err = manager.shutdown(Duration::from_secs(1)).await.unwrap_err();
    assert!(err.to_string().contains("fake/26FWFL"), "{err}");
    assert_eq!(manager.unsaved(), vec![key()]);
    assert!(row(&w).await.in_flight.is_some(), "the record stays");
}

/// The builder checks the parameters the protocol relies on: the lease
/// must outlive an attempt by a margin, and each provider's window must
/// leave room for the holder failures to survive.
#[tokio::test]
async fn the_builder_warns_about_parameters_that_break_the_protocol() {
    let store = Arc::new(Breakable {
        inner: store_memory::MemoryTokenStore::new(),
        slots: Arc::default(),
        holders: Arc::default(),
        fenced: true,
    });
    assert_eq!(store.lease_ttl(), Some(Duration::from_secs(10)));
    let fitbit = Arc::new(FakeProvider::new("fitbit").strict(Some(WINDOW)));
    let fine = TokenManager::builder(store.clone()).provider(fitbit.clone());
    assert_eq!(fine.parameter_warnings(), Vec::<String>::new());
    let long = TokenManager::builder(store.clone())
        .provider(fitbit)
        .attempt_timeout(Duration::from_secs(9));
    let warnings = long.parameter_warnings();
    assert!(
        warnings.iter().any(|w| w.contains("lease TTL (10s)")),
        "{warnings:?}"
    );
    let short = Arc::new(FakeProvider::new("short").strict(Some(Duration::from_secs(30))));
    let warnings = TokenManager::builder(store)
        .provider(short)
        .parameter_warnings();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("provider short's replay window (30s)")),
        "{warnings:?}"
    );
}

/// A laptop suspended for two hours: the host clock jumps forward while
/// the monotonic clock (which does not count a suspend) stands still. The
/// pair received before is judged on the host clock less its offset at
/// arrival, so it has expired, and the next call refreshes instead of
/// serving a dead token.
#[tokio::test(start_paused = true)]
async fn a_received_token_expires_when_the_host_clock_jumps_forward() {
    let w = world().await;
    let clock = Arc::new(ManualClock::new(w.clock.now()));
    let provider = Arc::new(
        FakeProvider::new("fake")
            .with_clock(clock.clone())
            .strict(Some(WINDOW)),
    );
    seed(
        &w.store.inner,
        &key(),
        &provider
            .issue()
            .with_expires_at(Some(clock.now() - Duration::from_secs(1))),
    )
    .await;
    let manager = TokenManager::builder(Arc::new(w.store.clone()))
        .provider(provider.clone())
        .clock(clock.clone())
        .retry_policy(RetryPolicy::none())
        .build();
    let first = manager.access_token(&key()).await.unwrap();
    assert_eq!(provider.refresh_calls(), 1);
    assert_eq!(
        manager.access_token(&key()).await.unwrap().secret(),
        first.secret(),
        "a pair just received is served"
    );
    clock.advance(Duration::from_secs(2 * 3600));
    let second = manager.access_token(&key()).await.unwrap();
    assert_eq!(provider.refresh_calls(), 2, "the expired pair was replaced");
    assert_ne!(second.secret(), first.secret());
    assert_eq!(provider.burns(), 0);
}

/// A replay marks the record it found (keeping its first stamp): the new
/// version tells a late-replay guard watching the record in another
/// process that a live process is finishing it, so that guard does not
/// replay too while this one saves what its replay brought back.
#[tokio::test(start_paused = true)]
async fn regression_a_replay_moves_the_record_it_found() {
    let w = world().await;
    let first = manager(&w, w.provider.clone());
    w.provider
        .script_refresh(Scripted::ProcessThenFail(Error::transient(
            "connection reset after sending",
        )));
    assert!(first.access_token(&key()).await.is_err());
    let left = row(&w).await;
    let since = left.in_flight.expect("the outcome is unknown").since;
    // A second process (a fresh manager) finds the record and replays it,
    // but its save fails: the record must have moved on anyway.
    w.store.faults.fail_next_saves(1, false);
    tokio::time::sleep(WINDOW / 4).await;
    let other = manager(&w, w.provider.clone());
    let _ = other.access_token(&key()).await;
    assert_eq!(w.provider.refresh_calls(), 2, "one lost answer, one replay");
    let marked = row(&w).await;
    assert!(
        marked.version > left.version,
        "the replay marked the record: {:?} -> {:?}",
        left.version,
        marked.version
    );
    if let Some(record) = marked.in_flight {
        assert_eq!(record.since, since, "the first stamp is kept");
    }
    assert_eq!(w.provider.burns(), 0);
}

/// Found by the soak (seed 1000196): a caller whose wait for the lease
/// timed out was served the stored token, newer than the cached one, but
/// the cache was not told; a `force_refresh` rejecting that newer token
/// then answered from the cache with the older one.
#[tokio::test(start_paused = true)]
async fn regression_force_refresh_never_answers_older_than_a_token_served_after_a_lock_timeout() {
    let w = world().await;
    let now = w.clock.now();
    let hour = Duration::from_secs(3600);
    let older = w.provider.issue().with_expires_at(Some(now + hour));
    let version = seed(&w.store.inner, &key(), &older).await;
    let manager = TokenManager::builder(Arc::new(w.store.clone()))
        .provider(w.provider.clone())
        .clock(w.clock.clone())
        .lock_wait(Duration::from_millis(200))
        .retry_policy(RetryPolicy::none())
        .build();
    let first = manager.access_token(&key()).await.unwrap();
    assert_eq!(first.secret(), older.access_token().expose_secret());
    // Another process stores a newer pair and keeps the lease.
    let newer = w.provider.issue().with_expires_at(Some(now + hour));
    let lease = w.store.lock(&key(), Duration::from_secs(1)).await.unwrap();
    lease
        .save(
            &newer,
            auth_core::Expect::Version(version),
            auth_core::Record::Clear,
        )
        .await
        .unwrap();
    // Both are due (inside the skew) and still valid.
    tokio::time::advance(hour - Duration::from_secs(120)).await;
    let served = manager.access_token(&key()).await.unwrap();
    assert_eq!(served.secret(), newer.access_token().expose_secret());
    match manager.force_refresh(&key(), &served).await {
        Ok(token) => assert_ne!(
            token.secret(),
            older.access_token().expose_secret(),
            "answered with a token older than the rejected one"
        ),
        Err(err) => assert!(err.is_transient(), "{err}"),
    }
    drop(lease);
}

/// Found by the soak (seed 1000058): a login whose account comes from the
/// response could not take the lease, so its save task took the login's
/// sequence, failed to save, and took a *new* sequence on the next try. A
/// remove completed in between left a tombstone that the first sequence
/// respects and the second passes, so the removed account came back with
/// the login made before the removal. The task now keeps the first
/// sequence it took.
#[tokio::test(start_paused = true)]
async fn regression_an_unsaved_login_keeps_its_sequence_so_a_later_remove_holds() {
    let w = world().await;
    let app = TokenManager::builder(Arc::new(w.store.clone()))
        .provider(w.provider.clone())
        .clock(w.clock.clone())
        .lock_wait(Duration::from_millis(100))
        .retry_policy(RetryPolicy::none())
        .build();
    let token = w
        .provider
        .issue()
        .with_extra("user_id", serde_json::json!(key().account.as_str()));
    w.provider.script_exchange(Scripted::Token(token));
    let pending = app
        .begin_authorization(&key().provider, AuthorizeRequest::new())
        .unwrap();
    let callback = Callback::parse(&format!(
        "code=c0de&state={}",
        pending.state().expose_secret()
    ))
    .unwrap();
    // Another process holds the lease: the login is kept in memory, with
    // no sequence yet, and its task saves it.
    let busy = w.store.lock(&key(), Duration::from_secs(1)).await.unwrap();
    app.complete_authorization(&pending, &callback)
        .await
        .unwrap();
    assert_eq!(app.unsaved(), vec![key()]);
    // The task's first save takes a sequence and fails.
    w.store.faults.fail_next_saves(1, false);
    let started = w.store.faults.save_started.notified();
    drop(busy);
    started.await;
    // The account is removed before the task tries again.
    let other = manager(&w, w.provider.clone());
    assert!(other.remove(&key()).await.unwrap());
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(app.unsaved().is_empty(), "the task gave way");
    assert!(
        row(&w).await.token.is_none(),
        "the removal holds: the login came before it"
    );
}

/// Found by the soak (seeds 1000721, 1001194, 1001387): a refreshed pair
/// whose save took effect but whose answer was lost was handed out from
/// memory. Another process then removed the account, and the save task,
/// finding the tombstone, dropped the pair but left the token from before
/// it in the cache. A `force_refresh` rejecting the pair it had been given
/// was answered from the cache with that older token. The cache now
/// follows what the save task found.
#[tokio::test(start_paused = true)]
async fn regression_a_dropped_unsaved_pair_leaves_no_older_token_in_the_cache() {
    let clock = TokioClock::new();
    let store = FlakyStore::new(clock.clone());
    let provider = Arc::new(
        FakeProvider::new("fake")
            .with_clock(clock.clone())
            .strict(None),
    );
    let older = provider
        .issue()
        .with_expires_at(Some(clock.now() + Duration::from_secs(3600)));
    seed(&store.inner, &key(), &older).await;
    let app = TokenManager::builder(Arc::new(store.clone()))
        .provider(provider.clone())
        .clock(clock.clone())
        .retry_policy(RetryPolicy::none())
        .build();
    let cached = app.access_token(&key()).await.unwrap();
    // The new pair is stored, but the process is told the save failed: it
    // serves the pair from memory and keeps saving it.
    store.faults.lose_next_answers(1);
    let newer = app.force_refresh(&key(), &cached).await.unwrap();
    assert_ne!(newer.secret(), cached.secret());
    assert_eq!(app.unsaved(), vec![key()]);
    // Another process removes the account before the save task's next try.
    let lease = store.lock(&key(), Duration::from_secs(1)).await.unwrap();
    let stored = lease.load().await.unwrap().expect("the new pair is stored");
    lease.delete(stored.version).await.unwrap();
    lease.release().await.unwrap();
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(app.unsaved().is_empty(), "the task found the tombstone");
    match app.force_refresh(&key(), &newer).await {
        Ok(token) => assert_ne!(
            token.secret(),
            older.access_token().expose_secret(),
            "answered with the token from before the one rejected"
        ),
        Err(err) => assert!(
            matches!(err, Error::ReauthorizationRequired { .. }),
            "{err}"
        ),
    }
}
