//! Run: cargo run -p examples --example custom_store
//!
//! A `TokenStore` written from scratch, the way you would write one over
//! your own database: `JsonMapStore` keeps each token as a JSON string (the
//! `TokenSet`'s own versioned serialized form, what a text column would hold)
//! in a `BTreeMap` behind a `tokio::sync::Mutex`, with a version per row for
//! compare-and-swap and a lease per key for `lock`.
//!
//! It first passes the conformance suite, `auth_core::conformance::run_all`
//! (auth-core's `conformance` feature), which checks every clause of the
//! trait's `# Contract`. Then two `TokenManager`s share it, as two worker
//! processes would share a database: when the token expires and twenty
//! callers in both ask for it at once, the store's key lease and
//! compare-and-swap make it exactly one refresh at the server.
#![allow(
    clippy::print_stdout,
    reason = "an example reports to the person running it on stdout"
)]

use std::collections::{BTreeMap, HashMap};
use std::error::Error as StdError;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::{Duration, SystemTime};

use auth_core::{
    AuthorizeRequest, Callback, Clock, Error, KeyLock, ManualClock, ProviderId, Result,
    StoreErrorKind, TokenKey, TokenManager, TokenSet, TokenStore, Version, Versioned, async_trait,
};
use auth_emulator::{Emulator, demo};
use auth_fitbit::{AppType, FitbitEndpoints, FitbitProvider, Scope};
use examples::{check, play_browser};
use tokio::sync::{Mutex, OwnedMutexGuard};

/// Tokens as JSON strings in a sorted map, shared by its clones.
///
/// Process-local: its locks and compare-and-swap hold between the tasks and
/// managers of one process only (the contract asks a store to say so). A
/// store over a database would take the lease with a row lock or an
/// advisory lock instead, and do the compare-and-swap as
/// `UPDATE … WHERE version = $expected`.
#[derive(Clone, Default)]
struct JsonMapStore {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    rows: Mutex<BTreeMap<TokenKey, Row>>,
    /// One lease per key ever locked. Kept small in a real store by removing
    /// entries nobody holds; here the demo's handful of keys does not matter.
    leases: std::sync::Mutex<HashMap<TokenKey, Arc<Mutex<()>>>>,
    /// Versions come from one counter, so a key deleted and created again
    /// never gets back a version someone may still hold.
    last_version: AtomicU64,
}

struct Row {
    version: Version,
    json: String,
}

impl JsonMapStore {
    fn next_version(&self) -> Version {
        Version(self.shared.last_version.fetch_add(1, Ordering::Relaxed) + 1)
    }
}

/// Shows how many tokens it holds, never a token (the contract's
/// `debug_hides_secrets`).
impl fmt::Debug for JsonMapStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rows = self.shared.rows.try_lock().map(|rows| rows.len());
        let mut d = f.debug_struct("JsonMapStore");
        match rows {
            Ok(n) => d.field("tokens", &n),
            Err(_) => d.field("tokens", &"(busy)"),
        };
        d.finish_non_exhaustive()
    }
}

/// A held lease on one key; dropping it lets the next waiter in.
struct Lease {
    key: TokenKey,
    _guard: OwnedMutexGuard<()>,
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease").field("key", &self.key).finish()
    }
}

#[async_trait]
impl KeyLock for Lease {
    fn key(&self) -> &TokenKey {
        &self.key
    }

    /// A lease on an in-process mutex cannot be lost while it is held. A
    /// store whose leases can expire (a lease row, a database session)
    /// checks here that it still holds one.
    async fn check(&self) -> Result<()> {
        Ok(())
    }
}

fn conflict(key: &TokenKey, expected: Option<Version>, found: Option<Version>) -> Error {
    let show = |v: Option<Version>| v.map_or("none".to_owned(), |v| v.to_string());
    Error::store(
        StoreErrorKind::Conflict,
        Some(key.clone()),
        format!(
            "expected version {}, found {}; reload and try again",
            show(expected),
            show(found)
        ),
    )
}

#[async_trait]
impl TokenStore for JsonMapStore {
    async fn load(&self, key: &TokenKey) -> Result<Option<Versioned<TokenSet>>> {
        let rows = self.shared.rows.lock().await;
        let Some(row) = rows.get(key) else {
            return Ok(None);
        };
        // Data we cannot read is reported, never replaced (the contract).
        let value = serde_json::from_str(&row.json).map_err(|e| {
            Error::store(
                StoreErrorKind::Corrupt,
                Some(key.clone()),
                format!("the stored JSON cannot be read ({e}); it was left as it is"),
            )
        })?;
        Ok(Some(Versioned {
            value,
            version: row.version,
        }))
    }

    async fn save(
        &self,
        key: &TokenKey,
        token: &TokenSet,
        expected: Option<Version>,
    ) -> Result<Version> {
        let json = serde_json::to_string(token).map_err(|e| {
            Error::store(
                StoreErrorKind::Other,
                Some(key.clone()),
                format!("the token cannot be serialized ({e})"),
            )
        })?;
        // Check and write under one lock: that is the compare-and-swap.
        let mut rows = self.shared.rows.lock().await;
        let found = rows.get(key).map(|row| row.version);
        if found != expected {
            return Err(conflict(key, expected, found));
        }
        let version = self.next_version();
        rows.insert(key.clone(), Row { version, json });
        Ok(version)
    }

    async fn delete(&self, key: &TokenKey) -> Result<bool> {
        Ok(self.shared.rows.lock().await.remove(key).is_some())
    }

    async fn list(&self, provider: Option<&ProviderId>) -> Result<Vec<TokenKey>> {
        let rows = self.shared.rows.lock().await;
        Ok(rows
            .keys()
            .filter(|key| provider.is_none_or(|p| &key.provider == p))
            .cloned()
            .collect())
    }

    async fn lock(&self, key: &TokenKey, wait: Duration) -> Result<Box<dyn KeyLock>> {
        let lease = {
            let mut leases = self
                .shared
                .leases
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            Arc::clone(leases.entry(key.clone()).or_default())
        };
        match tokio::time::timeout(wait, lease.lock_owned()).await {
            Ok(guard) => Ok(Box::new(Lease {
                key: key.clone(),
                _guard: guard,
            })),
            Err(_) => Err(Error::store(
                StoreErrorKind::LockTimeout,
                Some(key.clone()),
                format!(
                    "could not take the key lock within {}; another task holds it",
                    // Whole seconds, as people read them ("30s", "4m 10s").
                    humantime::format_duration(Duration::from_secs(
                        wait.as_secs() + u64::from(wait.subsec_millis() >= 500)
                    ))
                ),
            )),
        }
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    examples::report(run().await)
}

async fn run() -> std::result::Result<(), Box<dyn StdError>> {
    // 1. The conformance suite: it panics, naming the clause, if one is broken.
    let store = JsonMapStore::default();
    auth_core::conformance::run_all(&store).await;
    check(
        store.list(None).await?.is_empty(),
        "conformance::run_all passes and leaves nothing behind",
    )?;

    // 2. Two managers over the one store, like two worker processes. They
    // share a clock that the example moves forward instead of sleeping.
    let emulator = Emulator::builder().with_demo_clients().start().await?;
    let start = SystemTime::now();
    let clock = Arc::new(ManualClock::new(start));
    let manager = || -> std::result::Result<TokenManager, Box<dyn StdError>> {
        // A Fitbit "client" (public) app: no secret, PKCE only.
        let fitbit = FitbitProvider::builder(demo::FITBIT_PUBLIC_CLIENT_ID, AppType::Client)
            .redirect_uri(demo::REDIRECT_URI)
            .scopes([Scope::Activity, Scope::Heartrate])
            .endpoints(FitbitEndpoints::with_base(emulator.base_url())?)
            .clock(clock.clone())
            .build()?;
        Ok(TokenManager::builder(Arc::new(store.clone()))
            .provider(Arc::new(fitbit))
            .clock(clock.clone())
            .build())
    };
    let (worker_a, worker_b) = (manager()?, manager()?);

    let pending = worker_a.begin_authorization(&"fitbit".parse()?, AuthorizeRequest::new())?;
    let callback = Callback::parse(&play_browser(&pending.authorize_url).await?)?;
    let (key, _) = worker_a.complete_authorization(&pending, &callback).await?;
    let saved = store.load(&key).await?.ok_or("the login was not saved")?;
    println!("logged in: {key}, stored as JSON at {}", saved.version);
    let token = worker_b.access_token(&key).await?;
    check(
        token.token_set().scopes().contains("heartrate"),
        "the other manager reads the same token from the store",
    )?;

    // 3. Nine hours later the 8-hour token has expired; twenty callers in
    // both managers want it at the same moment.
    clock.advance(Duration::from_secs(9 * 3600));
    let mut callers = tokio::task::JoinSet::new();
    for i in 0..20 {
        let worker = if i % 2 == 0 { &worker_a } else { &worker_b }.clone();
        let key = key.clone();
        callers.spawn(async move { worker.access_token(&key).await });
    }
    let mut fresh = Vec::new();
    while let Some(joined) = callers.join_next().await {
        fresh.push(joined??);
    }
    let now = clock.now();
    check(
        fresh.iter().all(|t| t.expires_at() > Some(now)),
        "all twenty callers got a valid token",
    )?;
    check(
        fresh.iter().all(|t| t.secret() == fresh[0].secret()),
        "... the same one",
    )?;
    check(
        emulator.counters().fitbit_token_refresh == 1,
        "exactly one refresh request reached Fitbit",
    )?;
    let after = store.load(&key).await?.ok_or("the token vanished")?;
    check(
        after.version > saved.version,
        "the refreshed pair was saved with a newer version",
    )?;
    println!("stored version now {}; {store:?}", after.version);
    worker_a.shutdown(Duration::from_secs(30)).await?;
    worker_b.shutdown(Duration::from_secs(30)).await?;
    println!("custom_store: all checks passed");
    Ok(())
}
