//! A small fixed world for the named regression tests: the server model
//! with no random faults (only scripted ones), the faulty store, and
//! managers built on demand.

use std::sync::Arc;
use std::time::Duration;

use auth_core::secrecy::ExposeSecret;
use auth_core::{TokenKey, TokenManager, TokenManagerBuilder, TokenSet, TokenStore};
use store_memory::MemoryTokenStore;

use super::SimClock;
use super::chaos::Chaos;
use super::server::{Mode, PROVIDER, SendClass, Server, SimProvider};
use super::store::FaultStore;

/// The regression tests' world. Build it inside a paused runtime.
pub(crate) struct Rig {
    pub(crate) chaos: Arc<Chaos>,
    pub(crate) clock: Arc<SimClock>,
    pub(crate) server: Arc<Server>,
    /// The shared store, without faults.
    pub(crate) store: MemoryTokenStore,
}

impl Rig {
    /// A world whose server issues tokens living `lifetime`.
    pub(crate) fn new(mode: Mode, lifetime: Duration) -> Self {
        let chaos = Arc::new(Chaos::new(0));
        let clock = Arc::new(SimClock::new());
        let server = Arc::new(Server::new(
            mode,
            lifetime,
            Arc::clone(&chaos),
            Arc::clone(&clock),
        ));
        Self {
            chaos,
            clock,
            server,
            store: MemoryTokenStore::new(),
        }
    }

    /// A manager builder for a new process, over the faulty store.
    pub(crate) fn builder(&self) -> TokenManagerBuilder {
        let proc = self.server.add_process();
        let store = FaultStore::new(
            self.store.clone(),
            Arc::clone(&self.chaos),
            Arc::clone(&self.server),
            Arc::clone(&self.clock),
            proc,
        );
        TokenManager::builder(Arc::new(store))
            .provider(Arc::new(SimProvider::new(Arc::clone(&self.server), proc)))
            .clock(Arc::clone(&self.clock) as Arc<dyn auth_core::Clock>)
    }

    /// A manager for a new process, with the default settings.
    pub(crate) fn manager(&self) -> TokenManager {
        self.builder().build()
    }

    /// Logs `account` in directly (no manager) and stores its first pair.
    pub(crate) async fn seed(&self, account: &str) -> (TokenKey, TokenSet) {
        let key = TokenKey::parse(PROVIDER, account).expect("a valid key");
        let token = self.server.seed_grant(&key.account);
        self.store
            .save(&key, &token, None)
            .await
            .expect("seeding the store");
        (key, token)
    }

    /// The stored token of `key`, read without faults.
    pub(crate) async fn stored(&self, key: &TokenKey) -> Option<TokenSet> {
        self.store
            .load(key)
            .await
            .expect("the inner store")
            .map(|v| v.value)
    }

    /// Whether `token`'s refresh token is the newest its grant has.
    pub(crate) fn is_newest(&self, token: &TokenSet) -> bool {
        let refresh = token.refresh_token().expect("a refresh token");
        let Some((g, i)) = self.server.pair_of_refresh(refresh.expose_secret()) else {
            return false;
        };
        i + 1 == self.server.model().grants[g].pairs.len()
    }

    /// Whether the grant of `token` is alive at the server.
    pub(crate) fn grant_alive(&self, token: &TokenSet) -> bool {
        let refresh = token.refresh_token().expect("a refresh token");
        let (g, _) = self
            .server
            .pair_of_refresh(refresh.expose_secret())
            .expect("an issued token");
        self.server.model().grants[g].death.is_none()
    }

    /// Refresh requests the server received so far.
    pub(crate) fn sends(&self) -> usize {
        self.server.model().sends.len()
    }

    /// The classes of the refresh requests received so far.
    pub(crate) fn send_classes(&self) -> Vec<SendClass> {
        self.server
            .model()
            .sends
            .iter()
            .map(|s| s.class.clone())
            .collect()
    }
}
