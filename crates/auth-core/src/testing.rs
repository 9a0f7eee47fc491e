//! [`FakeProvider`]: a scriptable [`TokenProvider`] for tests.
//!
//! It counts every call, answers from a script (or with fresh made-up
//! tokens when the script is empty), and can hold refreshes at a gate so a
//! test can act while one is in flight, without sleeping.
//!
//! It is one of four servers in this workspace that rotate single-use
//! refresh tokens. This one is for tests of the manager in one process: no
//! HTTP, answers a test chooses, and gates a test can hold. The emulator
//! (`auth-emulator`: its Fitbit server and its catalogue profiles) speaks
//! the real wire formats over HTTP, for the provider crates, `authctl` and
//! the kill storms; the seeded simulation
//! (`tests/sim/server.rs`) has a deterministic server of its own that
//! records what its checker needs.
//!
//! The rule all four apply to a presented refresh token (rotate the
//! current one, answer a replay inside the window again, refuse a spent
//! one) is not written here: strict mode takes it from `rotation_rule`
//! (feature `testing` brings it in), given this provider's clock. What
//! stays here is the fake's own: the scripts and gates, one current token
//! (no grants; [`issue`](FakeProvider::issue) and a code exchange replace
//! it), and a memory of *every* rotation, each replayable within `window`
//! of its own use; the first use of a new pair does not end a window here
//! (the declared rules say it does, the conservative reading), and a burn
//! is counted, not fatal: the current token still works after one.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use secrecy::ExposeSecret;
use tokio::sync::{Notify, Semaphore};
use url::Url;

use crate::authorization::{AuthorizeRequest, Callback, PendingAuthorization};
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::id::{AccountId, ProviderId};
use crate::introspection::{GrantedScope, Introspection};
use crate::provider::{RefreshRules, TokenProvider};
use crate::token::TokenSet;
use rotation_rule::{Presented, Rotation, Rules, Verdict};

/// One scripted answer to `refresh` or `exchange_code`.
#[derive(Debug, Clone)]
pub enum Scripted {
    /// Answer with a fresh made-up token set.
    Fresh,
    /// Answer with a fresh made-up token set that has no refresh token
    /// (like Google's refresh responses).
    FreshWithoutRefreshToken,
    /// Answer with this token set.
    Token(TokenSet),
    /// Fail with this error; the server did not process the request.
    Fail(Error),
    /// Process the request (a strict server rotates the refresh token),
    /// then fail with this error as if the answer was lost.
    ProcessThenFail(Error),
}

/// A strict single-use server's state (see [`FakeProvider::strict`]).
#[derive(Debug, Default)]
struct Server {
    strict: bool,
    /// The shared rule's parameters: `window`, never ended by a first use.
    rules: Rules,
    /// The refresh token the server accepts now.
    current: Option<String>,
    /// Spent refresh tokens: the pair each was answered with, and when.
    spent: std::collections::HashMap<String, (TokenSet, std::time::SystemTime)>,
    burns: u64,
}

/// A scriptable provider that counts calls.
///
/// ```
/// use auth_core::testing::{FakeProvider, Scripted};
/// use auth_core::Error;
/// let fake = FakeProvider::new("fake");
/// fake.script_refresh(Scripted::Fail(Error::transient("connection reset")));
/// fake.script_refresh(Scripted::Fresh);
/// assert_eq!(fake.refresh_calls(), 0);
/// ```
#[derive(Debug)]
pub struct FakeProvider {
    id: ProviderId,
    clock: Arc<dyn Clock>,
    lifetime: Duration,
    refresh_script: Mutex<VecDeque<Scripted>>,
    exchange_script: Mutex<VecDeque<Scripted>>,
    revoke_script: Mutex<VecDeque<Error>>,
    seen_refresh_tokens: Mutex<Vec<String>>,
    revoked: Mutex<Vec<String>>,
    sequence: AtomicU64,
    refresh_calls: AtomicU64,
    exchange_calls: AtomicU64,
    revoke_calls: AtomicU64,
    introspect_calls: AtomicU64,
    gate: Mutex<Option<Arc<Semaphore>>>,
    started: Notify,
    rules: RefreshRules,
    server: Mutex<Server>,
}

impl FakeProvider {
    /// A provider with this id whose tokens live one hour.
    pub fn new(id: &str) -> Self {
        Self {
            id: ProviderId::new(id).expect("FakeProvider::new: invalid provider id"),
            clock: Arc::new(SystemClock),
            lifetime: Duration::from_secs(3600),
            refresh_script: Mutex::default(),
            exchange_script: Mutex::default(),
            revoke_script: Mutex::default(),
            seen_refresh_tokens: Mutex::default(),
            revoked: Mutex::default(),
            sequence: AtomicU64::new(0),
            refresh_calls: AtomicU64::new(0),
            exchange_calls: AtomicU64::new(0),
            revoke_calls: AtomicU64::new(0),
            introspect_calls: AtomicU64::new(0),
            gate: Mutex::new(None),
            started: Notify::new(),
            rules: RefreshRules::ROTATING,
            server: Mutex::default(),
        }
    }

    /// Declares these refresh rules ([`TokenProvider::refresh_rules`]);
    /// the default is [`RefreshRules::ROTATING`], the safe reading.
    #[must_use]
    pub fn with_refresh_rules(mut self, rules: RefreshRules) -> Self {
        self.rules = rules;
        self
    }

    /// Acts as a strict single-use server: only the refresh token issued
    /// last is accepted (see [`issue`](Self::issue)); a spent one is
    /// answered with the same pair again within `window` of its use, and
    /// with `invalid_grant` otherwise (a **burn**, counted by
    /// [`burns`](Self::burns)). Declares matching refresh rules, with the
    /// window ended by first use (as Fitbit's: the conservative reading).
    #[must_use]
    pub fn strict(mut self, window: Option<Duration>) -> Self {
        self.rules = match window {
            Some(w) => RefreshRules::rotating_with_window(w, true),
            None => RefreshRules::ROTATING,
        };
        let server = self
            .server
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        server.strict = true;
        server.rules = Rules {
            window,
            first_use_ends: false,
        };
        self
    }

    /// A new grant's pair, which a strict server accepts from now on (an
    /// earlier grant's refresh token is superseded).
    pub fn issue(&self) -> TokenSet {
        let token = self.mint(true);
        lock(&self.server).current = token.refresh_token().map(|t| t.expose_secret().to_owned());
        token
    }

    /// Refreshes a strict server refused with `invalid_grant`.
    pub fn burns(&self) -> u64 {
        lock(&self.server).burns
    }

    /// The refresh token a strict server accepts now.
    pub fn current_refresh_token(&self) -> Option<String> {
        lock(&self.server).current.clone()
    }

    /// Stamps tokens with this clock's time.
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Issues tokens that live this long.
    #[must_use]
    pub fn with_lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// Queues the answer to a future `refresh`.
    pub fn script_refresh(&self, answer: Scripted) {
        lock(&self.refresh_script).push_back(answer);
    }

    /// Queues the answer to a future `exchange_code`.
    pub fn script_exchange(&self, answer: Scripted) {
        lock(&self.exchange_script).push_back(answer);
    }

    /// Makes the next `revoke` fail with `error`.
    pub fn script_revoke_failure(&self, error: Error) {
        lock(&self.revoke_script).push_back(error);
    }

    /// Holds every refresh at a gate until [`release_refreshes`](Self::release_refreshes).
    pub fn hold_refreshes(&self) {
        *lock(&self.gate) = Some(Arc::new(Semaphore::new(0)));
    }

    /// Lets `n` held refreshes through.
    pub fn release_refreshes(&self, n: usize) {
        if let Some(gate) = lock(&self.gate).as_ref() {
            gate.add_permits(n);
        }
    }

    /// Resolves once a refresh call has started. A start that happened before
    /// the call is remembered (one at a time), so there is no race.
    pub async fn refresh_started(&self) {
        self.started.notified().await;
    }

    /// Calls to `refresh` so far.
    pub fn refresh_calls(&self) -> u64 {
        self.refresh_calls.load(Ordering::SeqCst)
    }

    /// Calls to `exchange_code` so far.
    pub fn exchange_calls(&self) -> u64 {
        self.exchange_calls.load(Ordering::SeqCst)
    }

    /// Calls to `revoke` so far.
    pub fn revoke_calls(&self) -> u64 {
        self.revoke_calls.load(Ordering::SeqCst)
    }

    /// Calls to `introspect` so far.
    pub fn introspect_calls(&self) -> u64 {
        self.introspect_calls.load(Ordering::SeqCst)
    }

    /// The refresh tokens presented to `refresh`, in order.
    pub fn seen_refresh_tokens(&self) -> Vec<String> {
        lock(&self.seen_refresh_tokens).clone()
    }

    /// The access tokens of the pairs revoked so far, in order.
    pub fn revoked_access_tokens(&self) -> Vec<String> {
        lock(&self.revoked).clone()
    }

    /// A fresh made-up token set, as the provider would issue it now.
    pub fn mint(&self, with_refresh_token: bool) -> TokenSet {
        let n = self.sequence.fetch_add(1, Ordering::SeqCst) + 1;
        let token = TokenSet::new(format!("fake-access-{n}"), "Bearer", self.clock.now())
            .with_expires_in(self.lifetime)
            .with_scopes(["read"]);
        if with_refresh_token {
            token.with_refresh_token(format!("fake-refresh-{n}"))
        } else {
            token
        }
    }

    fn answer(&self, scripted: Option<Scripted>) -> Result<TokenSet> {
        match scripted.unwrap_or(Scripted::Fresh) {
            Scripted::Fresh => Ok(self.mint(true)),
            Scripted::FreshWithoutRefreshToken => Ok(self.mint(false)),
            Scripted::Token(token) => Ok(token),
            Scripted::Fail(error) | Scripted::ProcessThenFail(error) => Err(error),
        }
    }

    /// A refresh as the server processes it.
    fn process(&self, current: &TokenSet, scripted: Option<Scripted>) -> Result<TokenSet> {
        if !lock(&self.server).strict {
            return self.answer(scripted);
        }
        let sent = current
            .refresh_token()
            .map(|t| t.expose_secret().to_owned());
        let now = self.clock.now();
        let mut server = lock(&self.server);
        let spent = sent.as_ref().and_then(|s| server.spent.get(s));
        let presented = if sent.is_some() && sent == server.current {
            Presented::Current
        } else if let Some(&(_, at)) = spent {
            // Every rotation is remembered; no use of a pair is watched.
            Presented::Spent(Rotation {
                at,
                successor_first_used: None,
            })
        } else {
            // Superseded by `issue` or an exchange, or never issued.
            Presented::Unknown
        };
        match (server.rules.judge(presented, now), spent) {
            (Verdict::Rotate, _) => {
                drop(server);
                let new = self.answer(scripted)?;
                let mut server = lock(&self.server);
                server.current = new.refresh_token().map(|t| t.expose_secret().to_owned());
                server
                    .spent
                    .insert(sent.unwrap_or_default(), (new.clone(), now));
                Ok(new)
            }
            (Verdict::Replay, Some((pair, _))) => Ok(pair.clone()),
            // Every refusal counts as a burn; there is no grant to kill.
            _ => {
                server.burns += 1;
                Err(Error::reauthorization_required(None, "invalid_grant"))
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[async_trait]
impl TokenProvider for FakeProvider {
    fn id(&self) -> &ProviderId {
        &self.id
    }

    fn authorize(&self, request: AuthorizeRequest) -> Result<PendingAuthorization> {
        let n = self.sequence.fetch_add(1, Ordering::SeqCst) + 1;
        let state = request.state.unwrap_or_else(|| format!("fake-state-{n}"));
        let mut url = Url::parse("https://fake.invalid/authorize").expect("static URL");
        url.query_pairs_mut()
            .append_pair("state", &state)
            .append_pair("scope", &request.scopes.join(" "));
        Ok(PendingAuthorization::new(
            self.id.clone(),
            request.account,
            url,
            state,
            Some(format!("fake-verifier-{n}")),
            request.redirect_uri,
            request.scopes,
            self.clock.now(),
        ))
    }

    async fn exchange_code(
        &self,
        _pending: &PendingAuthorization,
        callback: &Callback,
    ) -> Result<TokenSet> {
        self.exchange_calls.fetch_add(1, Ordering::SeqCst);
        callback.code_or_error()?;
        let scripted = lock(&self.exchange_script).pop_front();
        let token = self.answer(scripted)?;
        let mut server = lock(&self.server);
        if server.strict {
            // A new consent supersedes the grant's earlier refresh token.
            server.current = token.refresh_token().map(|t| t.expose_secret().to_owned());
        }
        Ok(token)
    }

    async fn refresh(&self, current: &TokenSet) -> Result<TokenSet> {
        self.refresh_calls.fetch_add(1, Ordering::SeqCst);
        if let Some(refresh) = current.refresh_token() {
            lock(&self.seen_refresh_tokens).push(refresh.expose_secret().to_owned());
        }
        self.started.notify_one();
        let gate = lock(&self.gate).clone();
        if let Some(gate) = gate {
            gate.acquire()
                .await
                .map_err(|_| Error::transient("gate closed"))?
                .forget();
        }
        let scripted = lock(&self.refresh_script).pop_front();
        let (scripted, then_fail) = match scripted {
            Some(Scripted::Fail(error)) => return Err(error),
            Some(Scripted::ProcessThenFail(error)) => (None, Some(error)),
            other => (other, None),
        };
        let answer = self.process(current, scripted)?;
        match then_fail {
            Some(error) => Err(error),
            None => Ok(answer),
        }
    }

    async fn revoke(&self, token: &TokenSet) -> Result<()> {
        self.revoke_calls.fetch_add(1, Ordering::SeqCst);
        match lock(&self.revoke_script).pop_front() {
            Some(error) => Err(error),
            None => {
                lock(&self.revoked).push(token.access_token().expose_secret().to_owned());
                Ok(())
            }
        }
    }

    async fn introspect(&self, token: &TokenSet) -> Result<Introspection> {
        self.introspect_calls.fetch_add(1, Ordering::SeqCst);
        let mut answer =
            Introspection::active(token.scopes().iter().map(GrantedScope::new).collect());
        answer.expires_at = token.expires_at();
        Ok(answer)
    }

    fn refresh_rules(&self) -> RefreshRules {
        self.rules
    }

    fn account_for(&self, token: &TokenSet) -> Option<AccountId> {
        token
            .extra_str("user_id")
            .and_then(|id| AccountId::new(id).ok())
    }
}
