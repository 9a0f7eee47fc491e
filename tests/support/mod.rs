//! Shared setup for the reliability suite: an emulator, the Fitbit provider
//! and a manager over a real store.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use auth_core::{Clock, Expect, Record, RetryPolicy, TokenKey, TokenManager, TokenSet, TokenStore};
use auth_emulator::{Emulator, EmulatorBuilder, IssuedTokens, demo};
use auth_fitbit::{FitbitProvider, Scope};
use auth_oauth2::HttpConfig;
use auth_oauth2::OAuth2Provider;

/// Which real store a test runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Memory,
    File,
}

pub const STORES: [StoreKind; 2] = [StoreKind::Memory, StoreKind::File];

pub struct World {
    pub emulator: Emulator,
    pub store: Arc<dyn TokenStore>,
    pub manager: TokenManager,
    pub provider: Arc<OAuth2Provider>,
    _dir: Option<tempfile::TempDir>,
}

pub struct Options {
    pub emulator: EmulatorBuilder,
    pub retry: RetryPolicy,
    pub timeout: Duration,
    pub skew: Duration,
    pub clock: Option<Arc<dyn Clock>>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            emulator: Emulator::builder().with_demo_clients(),
            retry: RetryPolicy::new(3, Duration::from_millis(10)),
            timeout: Duration::from_secs(5),
            skew: Duration::from_secs(300),
            clock: None,
        }
    }
}

pub fn open_store(kind: StoreKind) -> (Arc<dyn TokenStore>, Option<tempfile::TempDir>) {
    match kind {
        StoreKind::Memory => (Arc::new(store_memory::MemoryTokenStore::new()), None),
        StoreKind::File => {
            let dir = tempfile::tempdir().unwrap();
            let store = store_file::FileTokenStore::open(dir.path()).unwrap();
            (Arc::new(store), Some(dir))
        }
    }
}

pub async fn world(kind: StoreKind, options: Options) -> World {
    let emulator = options.emulator.start().await.expect("emulator");
    let mut provider = FitbitProvider::builder(demo::FITBIT_SERVER_CLIENT_ID)
        .client_secret(demo::FITBIT_SERVER_CLIENT_SECRET)
        .redirect_uri(demo::REDIRECT_URI)
        .default_scopes([Scope::Sleep])
        .base_url(emulator.base_url())
        .unwrap()
        .http_config(HttpConfig::default().with_timeouts(options.timeout, options.timeout));
    if let Some(clock) = &options.clock {
        provider = provider.clock(Arc::clone(clock));
    }
    let provider = Arc::new(provider.build().unwrap());
    let (store, dir) = open_store(kind);
    let mut manager = TokenManager::builder(Arc::clone(&store))
        .provider(provider.clone())
        .retry_policy(options.retry)
        .refresh_skew(options.skew);
    if let Some(clock) = options.clock {
        manager = manager.clock(clock);
    }
    World {
        emulator,
        store,
        manager: manager.build(),
        provider,
        _dir: dir,
    }
}

impl World {
    /// The file store's directory, for stores on disk.
    pub fn store_dir(&self) -> Option<&std::path::Path> {
        self._dir.as_ref().map(|d| d.path())
    }
}

pub fn key(user: &str) -> TokenKey {
    TokenKey::parse("fitbit", user).unwrap()
}

/// A token set for seeded tokens, issued at `issued_at`.
pub fn token_from(issued: &IssuedTokens, issued_at: SystemTime) -> TokenSet {
    let mut token = TokenSet::new(issued.access_token.clone(), "Bearer", issued_at)
        .with_expires_in(Duration::from_secs(issued.expires_in))
        .with_scopes(issued.scopes.clone())
        .with_extra("user_id", serde_json::json!(issued.user_id));
    if let Some(refresh) = &issued.refresh_token {
        token = token.with_refresh_token(refresh.clone());
    }
    token
}

/// Seeds a grant at the emulator and stores it as expired.
pub async fn seed_expired(world: &World, user: &str) -> (TokenKey, TokenSet) {
    let issued = world
        .emulator
        .seed_fitbit_grant(demo::FITBIT_SERVER_CLIENT_ID, user, &["sleep"]);
    let token = token_from(&issued, SystemTime::now() - Duration::from_secs(10 * 3600));
    let key = key(user);
    put(world.store.as_ref(), &key, &token).await;
    (key, token)
}

/// Stores `token` under `key` through a lease, over whatever is stored
/// (the record of a refresh in flight is cleared): how a test seeds a row.
pub async fn put(store: &dyn TokenStore, key: &TokenKey, token: &TokenSet) {
    let lease = store.lock(key, Duration::from_secs(5)).await.unwrap();
    let expect = match lease.load().await.unwrap() {
        Some(row) => Expect::Version(row.version),
        None => Expect::Absent,
    };
    lease
        .save_and_release(token, expect, Record::Clear)
        .await
        .unwrap();
}
