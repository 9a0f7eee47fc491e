//! Run: cargo run -p examples --example custom_store
//!
//! A `TokenStore` written from scratch, the way you would write one over
//! your own database: `JsonMapStore` keeps each token as a JSON string (the
//! `TokenSet`'s own versioned serialized form, what a text column would hold)
//! in a `BTreeMap` behind a `tokio::sync::Mutex`, with a version per row for
//! compare-and-swap, the write-ahead record of a refresh in flight,
//! tombstones and login sequences, and a lease per key: the only way to
//! write.
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
use std::sync::{Arc, PoisonError};
use std::time::{Duration, SystemTime};

use auth_core::{
    AuthorizeRequest, Callback, Clock, Error, Expect, InFlight, Lease, ManualClock, ProviderId,
    Record, Result, Sequence, StoreErrorKind, Stored, TokenKey, TokenManager, TokenSet, TokenStore,
    Version, async_trait,
};
use auth_emulator::{Emulator, demo};
use auth_fitbit::{AppType, FitbitProvider, Scope};
use examples::{check, play_browser};
use tokio::sync::{Mutex, OwnedMutexGuard};

/// Tokens as JSON strings in a sorted map, shared by its clones.
///
/// Process-local: its leases hold between the tasks and managers of one
/// process only (the contract asks a store to say so), and cannot be lost
/// while held, so fencing holds trivially. A store over a database would
/// take the lease with a lease row that expires, and check it in the same
/// statement as every write (`UPDATE … WHERE version = $expected AND
/// lease_owner = $me`).
#[derive(Clone, Default)]
struct JsonMapStore {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    rows: Mutex<BTreeMap<TokenKey, Row>>,
    /// The highest login sequence handed out per key, kept apart from the
    /// rows: handing one out changes nothing a reader sees.
    sequences: Mutex<HashMap<TokenKey, u64>>,
    /// One lease per key ever locked. Kept small in a real store by removing
    /// entries nobody holds; here the demo's handful of keys does not matter.
    leases: std::sync::Mutex<HashMap<TokenKey, Arc<Mutex<()>>>>,
}

/// One key's row: the token as JSON, or `None` for a tombstone.
struct Row {
    version: Version,
    json: Option<String>,
    grant: Sequence,
    in_flight: Option<SystemTime>,
}

impl Shared {
    fn lease_of(&self, key: &TokenKey) -> Arc<Mutex<()>> {
        let mut leases = self.leases.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(leases.entry(key.clone()).or_default())
    }
}

/// Shows how many rows it holds, never a token (the contract's
/// `debug_hides_secrets`).
impl fmt::Debug for JsonMapStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rows = self.shared.rows.try_lock().map(|rows| rows.len());
        let mut d = f.debug_struct("JsonMapStore");
        match rows {
            Ok(n) => d.field("rows", &n),
            Err(_) => d.field("rows", &"(busy)"),
        };
        d.finish_non_exhaustive()
    }
}

fn decode(key: &TokenKey, row: &Row) -> Result<Stored> {
    // Data we cannot read is reported, never replaced (the contract).
    let token = match &row.json {
        Some(json) => Some(serde_json::from_str(json).map_err(|e| {
            Error::store(
                StoreErrorKind::Corrupt,
                Some(key.clone()),
                format!("the stored JSON cannot be read ({e}); it was left as it is"),
            )
        })?),
        None => None,
    };
    Ok(Stored {
        version: row.version,
        token,
        grant: row.grant,
        in_flight: row.in_flight.map(|since| InFlight { since }),
        read_at: SystemTime::now(),
    })
}

fn conflict(key: &TokenKey, what: &str) -> Error {
    Error::store(
        StoreErrorKind::Conflict,
        Some(key.clone()),
        format!("{what}; reload and try again"),
    )
}

#[async_trait]
impl TokenStore for JsonMapStore {
    async fn load(&self, key: &TokenKey) -> Result<Option<Stored>> {
        let rows = self.shared.rows.lock().await;
        rows.get(key).map(|row| decode(key, row)).transpose()
    }

    async fn list(&self, provider: Option<&ProviderId>) -> Result<Vec<TokenKey>> {
        let rows = self.shared.rows.lock().await;
        Ok(rows
            .iter()
            .filter(|(key, row)| row.json.is_some() && provider.is_none_or(|p| &key.provider == p))
            .map(|(key, _)| key.clone())
            .collect())
    }

    async fn lock(&self, key: &TokenKey, wait: Duration) -> Result<Box<dyn Lease>> {
        let lease = self.shared.lease_of(key);
        match tokio::time::timeout(wait, lease.lock_owned()).await {
            Ok(guard) => Ok(Box::new(MapLease {
                key: key.clone(),
                shared: Arc::clone(&self.shared),
                _guard: guard,
            })),
            Err(_) => Err(Error::store(
                StoreErrorKind::LockTimeout,
                Some(key.clone()),
                format!(
                    "could not take the key's lease within {}; another task holds it",
                    // Whole seconds, as people read them ("30s", "4m 10s").
                    humantime::format_duration(Duration::from_secs(
                        wait.as_secs() + u64::from(wait.subsec_millis() >= 500)
                    ))
                ),
            )),
        }
    }

    async fn orphaned(&self, limit: usize) -> Result<Vec<TokenKey>> {
        let rows = self.shared.rows.lock().await;
        Ok(rows
            .iter()
            .filter(|(key, row)| {
                row.json.is_some()
                    && row.in_flight.is_some()
                    && self.shared.lease_of(key).try_lock().is_ok()
            })
            .map(|(key, _)| key.clone())
            .take(limit)
            .collect())
    }

    fn lease_ttl(&self) -> Option<Duration> {
        None
    }
}

/// A held lease on one key; dropping it lets the next waiter in.
struct MapLease {
    key: TokenKey,
    shared: Arc<Shared>,
    _guard: OwnedMutexGuard<()>,
}

impl fmt::Debug for MapLease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapLease").field("key", &self.key).finish()
    }
}

impl MapLease {
    /// The next version of a row: versions of a key only grow, across
    /// tombstones too, because a tombstone keeps its row.
    fn next(row: Option<&Row>) -> Version {
        Version(row.map_or(1, |r| r.version.0 + 1))
    }
}

#[async_trait]
impl Lease for MapLease {
    fn key(&self) -> &TokenKey {
        &self.key
    }

    async fn load(&self) -> Result<Option<Stored>> {
        let rows = self.shared.rows.lock().await;
        rows.get(&self.key)
            .map(|row| decode(&self.key, row))
            .transpose()
    }

    async fn mark_in_flight(&self, expected: Version) -> Result<Version> {
        let mut rows = self.shared.rows.lock().await;
        let Some(row) = rows.get_mut(&self.key) else {
            return Err(conflict(&self.key, "nothing is stored"));
        };
        if row.version != expected || row.json.is_none() {
            return Err(conflict(&self.key, "the row moved on"));
        }
        row.version = Version(row.version.0 + 1);
        // A record already there keeps its first `since`.
        row.in_flight = Some(row.in_flight.unwrap_or_else(SystemTime::now));
        Ok(row.version)
    }

    async fn save(&self, token: &TokenSet, expected: Expect, record: Record) -> Result<Version> {
        let json = serde_json::to_string(token).map_err(|e| {
            Error::store(
                StoreErrorKind::Other,
                Some(self.key.clone()),
                format!("the token cannot be serialized ({e})"),
            )
        })?;
        // Check and write under one lock: that is the compare-and-swap.
        let mut rows = self.shared.rows.lock().await;
        let row = rows.get(&self.key);
        let grant = match (expected, row) {
            (Expect::Absent, None) => Sequence(0),
            (Expect::Version(v), Some(r)) if r.version == v => r.grant,
            (Expect::Login(seq), None) => seq,
            (Expect::Login(seq), Some(r)) if r.grant < seq => seq,
            _ => {
                return Err(conflict(
                    &self.key,
                    "the row is not what the write expected",
                ));
            }
        };
        let in_flight = match (record, expected) {
            (Record::Keep, Expect::Version(_)) => row.and_then(|r| r.in_flight),
            _ => None,
        };
        let version = Self::next(row);
        if let Expect::Login(seq) = expected {
            let mut sequences = self.shared.sequences.lock().await;
            let hi = sequences.entry(self.key.clone()).or_default();
            *hi = (*hi).max(seq.0);
        }
        rows.insert(
            self.key.clone(),
            Row {
                version,
                json: Some(json),
                grant,
                in_flight,
            },
        );
        Ok(version)
    }

    async fn delete(&self, expected: Version) -> Result<Version> {
        let hi = self.shared.sequences.lock().await.get(&self.key).copied();
        let mut rows = self.shared.rows.lock().await;
        let Some(row) = rows.get_mut(&self.key) else {
            return Err(conflict(&self.key, "nothing is stored"));
        };
        if row.version != expected {
            return Err(conflict(&self.key, "the row moved on"));
        }
        row.version = Version(row.version.0 + 1);
        row.json = None;
        row.in_flight = None;
        row.grant = Sequence(hi.unwrap_or(0).max(row.grant.0));
        Ok(row.version)
    }

    async fn next_sequence(&self) -> Result<Sequence> {
        let grant = self
            .shared
            .rows
            .lock()
            .await
            .get(&self.key)
            .map_or(0, |r| r.grant.0);
        let mut sequences = self.shared.sequences.lock().await;
        let hi = sequences.entry(self.key.clone()).or_default();
        *hi = (*hi).max(grant) + 1;
        Ok(Sequence(*hi))
    }

    async fn release(self: Box<Self>) -> Result<()> {
        Ok(())
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    examples::report(run().await)
}

async fn run() -> std::result::Result<(), Box<dyn StdError>> {
    // 1. The conformance suite: it panics, naming the clause, if one is broken.
    let store = JsonMapStore::default();
    auth_core::conformance::run_all(&store, auth_core::conformance::Capabilities::none()).await;
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
        let fitbit = FitbitProvider::builder(demo::FITBIT_PUBLIC_CLIENT_ID)
            .client_auth(AppType::Client.client_auth())
            .redirect_uri(demo::REDIRECT_URI)
            .default_scopes([Scope::Activity, Scope::Heartrate])
            .base_url(emulator.base_url())?
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
    check(saved.token.is_some(), "the login stored a token")?;
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
