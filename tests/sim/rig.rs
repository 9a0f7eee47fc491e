//! A small fixed world for the named regression tests: the server model
//! and the model store with no random faults (only scripted ones), and
//! managers built on demand, each a process with its own clock.

use std::sync::Arc;
use std::time::Duration;

use auth_core::secrecy::ExposeSecret;
use auth_core::{Stored, TokenKey, TokenManager, TokenManagerBuilder, TokenSet};

use super::SimClock;
use super::chaos::Chaos;
use super::life::Life;
use super::server::{Arrival, PROVIDER, Rules, Server, SimProvider};
use super::store::{ModelStore, ProcStore};

/// The regression tests' world. Build it inside a paused runtime, after
/// [`start_time`](super::start_time).
pub(crate) struct Rig {
    pub(crate) chaos: Arc<Chaos>,
    /// The true time (every process of the rig has an exact clock unless
    /// built with [`process`](Self::process) and an offset).
    pub(crate) clock: Arc<SimClock>,
    pub(crate) life: Arc<Life>,
    pub(crate) server: Arc<Server>,
    pub(crate) store: Arc<ModelStore>,
}

impl Rig {
    /// A world whose server follows `rules` and issues tokens living
    /// `lifetime`, over a store whose leases live 10 s (Postgres's
    /// default).
    pub(crate) fn new(rules: Rules, lifetime: Duration) -> Self {
        Self::with_lease_ttl(rules, lifetime, Some(Duration::from_secs(10)))
    }

    /// [`new`](Self::new), with leases that live `lease_ttl` (`None`: as
    /// long as their process).
    pub(crate) fn with_lease_ttl(
        rules: Rules,
        lifetime: Duration,
        lease_ttl: Option<Duration>,
    ) -> Self {
        super::start_time();
        let chaos = Arc::new(Chaos::new(0));
        let life = Arc::new(Life::default());
        let server = Arc::new(Server::new(
            rules,
            lifetime,
            Arc::clone(&chaos),
            Arc::clone(&life),
        ));
        let store = ModelStore::new(lease_ttl, Arc::clone(&life));
        Self {
            chaos,
            clock: Arc::new(SimClock::new(0)),
            life,
            server,
            store,
        }
    }

    /// A manager builder for a new process whose clock is `offset_ms` off;
    /// returns the process number too.
    pub(crate) fn process(&self, offset_ms: i64) -> (usize, TokenManagerBuilder) {
        let proc = self.life.add();
        let store = ProcStore::new(Arc::clone(&self.store), Arc::clone(&self.chaos), proc);
        let builder = TokenManager::builder(Arc::new(store))
            .provider(Arc::new(SimProvider::new(Arc::clone(&self.server), proc)))
            .clock(Arc::new(SimClock::new(offset_ms)) as Arc<dyn auth_core::Clock>);
        (proc, builder)
    }

    /// The store as a new process sees it (no manager).
    pub(crate) fn view(&self) -> ProcStore {
        let proc = self.life.add();
        ProcStore::new(Arc::clone(&self.store), Arc::clone(&self.chaos), proc)
    }

    /// A manager builder for a new process with an exact clock.
    pub(crate) fn builder(&self) -> TokenManagerBuilder {
        self.process(0).1
    }

    /// A manager for a new process, with the default settings.
    pub(crate) fn manager(&self) -> TokenManager {
        self.process(0).1.build()
    }

    /// Kills process `proc` (`SIGKILL`).
    pub(crate) fn kill(&self, proc: usize) {
        self.life.kill(proc);
    }

    /// Logs `account` in directly (no manager) and stores its first pair.
    pub(crate) async fn seed(&self, account: &str) -> (TokenKey, TokenSet) {
        let key = TokenKey::parse(PROVIDER, account).expect("a valid key");
        let token = self.server.seed_grant(&key.account);
        self.store.seed(&key, token.clone(), 1);
        (key, token)
    }

    /// The row of `key`, read without faults.
    pub(crate) fn row(&self, key: &TokenKey) -> Option<Stored> {
        self.store.peek(key)
    }

    /// The stored token of `key`, read without faults.
    pub(crate) async fn stored(&self, key: &TokenKey) -> Option<TokenSet> {
        self.row(key).and_then(|r| r.token)
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

    /// How each refresh request arrived, in order.
    pub(crate) fn send_classes(&self) -> Vec<Arrival> {
        self.server
            .model()
            .sends
            .iter()
            .map(|s| s.arrival.clone())
            .collect()
    }
}
