//! `authctl demo`: the whole story, offline, in one process.
//!
//! It starts the emulator of the legacy Fitbit and Google servers on a free
//! loopback port, and plays the person at the browser itself (see
//! [`browser`]). The logins go through the same loopback callback server
//! and the same [`login::receive`] as `authctl login`, and the tokens live
//! in a real file store in a temporary directory, deleted at the end, so
//! the demo exercises what the other commands use and leaves nothing
//! behind. It reads no config file and ignores `AUTHCTL_STORE`.
//!
//! Every step checks what it claims (at the emulator's counters and last
//! requests, and in the store) and the demo fails with exit code 1 on the
//! first surprise. It prints no token, code or client secret.

mod browser;

use std::fmt::Display;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use auth_core::{
    AccessToken, AuthorizeRequest, Error, ProviderId, TokenKey, TokenManager, TokenSet,
};
use auth_emulator::{ClientConfig, Emulator, Endpoint, demo};
use auth_fitbit::migration::{self, Access, Bridge};
use auth_fitbit::{FitbitProvider, GoogleHealthProvider, Scope};
use auth_oauth2::OAuth2Provider;
use secrecy::ExposeSecret as _;
use store_file::FileTokenStore;
use tokio::time::Instant;
use url::Url;

use crate::exit::{CliResult, ExitKind, Failure, Target};
use crate::login::{self, callback_server::CallbackServer};
use crate::output::{self, TokenView};
use browser::{Browser, Visit};

/// How many steps the story has.
const STEPS: usize = 9;
/// The longest a scripted login may take.
const LOGIN_WAIT: Duration = Duration::from_secs(30);

/// Runs the demo.
pub(crate) async fn run(cx: &super::Context) -> CliResult {
    output::line(
        "authctl demo: keeping Fitbit tokens alive through the move to Google Health, offline,",
    );
    output::line(
        "against a local emulator of both servers. authctl plays the browser; nothing secret is shown.",
    );
    let mut demo = Demo::start(cx).await?;
    let outcome = demo.story().await;
    demo.stop().await;
    outcome?;
    output::line("");
    output::line(&format!(
        "All {STEPS} steps behaved as expected. Try it for real: `authctl emulator` prints a config."
    ));
    Ok(())
}

/// A refresh seen from the store: the token before, the new access token,
/// and the token after.
struct Refreshed {
    before: Arc<TokenSet>,
    access: AccessToken,
    after: Arc<TokenSet>,
}

/// The demo's world.
struct Demo {
    emulator: Emulator,
    manager: TokenManager,
    server: Option<CallbackServer>,
    browser: Browser,
    fitbit: ProviderId,
    google: ProviderId,
    /// The Google Health provider, for its identity endpoint.
    health: OAuth2Provider,
    step: usize,
    _store_dir: tempfile::TempDir,
}

/// A failed expectation at `step`.
fn failed(step: usize, what: impl Display) -> Failure {
    Failure::unexpected(
        format!("demo step {step}/{STEPS} did not behave as expected: {what}"),
        "this is a bug in authctl or its libraries; please report it with the output above \
         (it contains no secrets)",
    )
}

/// Fails unless `ok`.
fn expect(step: usize, ok: bool, what: impl Display) -> CliResult {
    if ok { Ok(()) } else { Err(failed(step, what)) }
}

fn say(label: &str, text: impl Display) {
    output::line(&format!("      {label:<11}{text}"));
}

fn done() {
    output::line("      ok");
}

fn same_secret(a: Option<&secrecy::SecretString>, b: Option<&secrecy::SecretString>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.expose_secret() == b.expose_secret(),
        (None, None) => true,
        _ => false,
    }
}

fn query_param(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.into_owned())
}

fn short_scope(scope: &str) -> &str {
    scope
        .strip_prefix("https://www.googleapis.com/auth/")
        .unwrap_or(scope)
}

impl Demo {
    async fn start(cx: &super::Context) -> CliResult<Self> {
        let setup = |what: &str, e: &dyn Display| failed(0, format!("{what}: {e}"));
        let store_dir = tempfile::Builder::new()
            .prefix("authctl-demo-")
            .tempdir()
            .map_err(|e| setup("cannot create a temporary directory", &e))?;
        let loopback =
            Url::parse("http://127.0.0.1:0/callback").map_err(|e| setup("bad callback URL", &e))?;
        let server = CallbackServer::bind(&loopback, "demo").await?;
        let redirect = server.redirect_uri().to_string();
        let emulator = Emulator::builder()
            .fitbit_client(
                ClientConfig::server(
                    demo::FITBIT_SERVER_CLIENT_ID,
                    demo::FITBIT_SERVER_CLIENT_SECRET,
                )
                .redirect_uri(redirect.clone()),
            )
            .google_client(
                ClientConfig::server(demo::GOOGLE_CLIENT_ID, demo::GOOGLE_CLIENT_SECRET)
                    .redirect_uri(redirect.clone()),
            )
            .start()
            .await
            .map_err(|e| setup("the emulator did not start", &e))?;
        let base = emulator.base_url();
        let fitbit = FitbitProvider::builder(demo::FITBIT_SERVER_CLIENT_ID)
            .client_secret(demo::FITBIT_SERVER_CLIENT_SECRET)
            .redirect_uri(redirect.clone())
            .default_scopes([Scope::Activity, Scope::Heartrate, Scope::Sleep])
            .base_url(base)
            .map_err(|e| setup("endpoints", &e))?
            .build()
            .map_err(|e| setup("the Fitbit provider", &e))?;
        let google =
            GoogleHealthProvider::builder(demo::GOOGLE_CLIENT_ID, demo::GOOGLE_CLIENT_SECRET)
                .redirect_uri(redirect.clone())
                .base_url(base)
                .map_err(|e| setup("endpoints", &e))?
                .build()
                .map_err(|e| setup("the Google Health provider", &e))?;
        let store = FileTokenStore::open(store_dir.path().join("tokens"))
            .map_err(|e| setup("the file store", &e))?;
        let manager = cx.track(
            TokenManager::builder(Arc::new(store))
                .provider(Arc::new(fitbit))
                .provider(Arc::new(google.clone()))
                .build(),
        );
        Ok(Self {
            emulator,
            manager,
            server: Some(server),
            browser: Browser::new().map_err(|e| setup("the browser", &e))?,
            fitbit: ProviderId::new(auth_fitbit::FITBIT).map_err(|e| setup("id", &e))?,
            google: ProviderId::new(auth_fitbit::GOOGLE_HEALTH).map_err(|e| setup("id", &e))?,
            health: google,
            step: 0,
            _store_dir: store_dir,
        })
    }

    async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
        self.emulator.shutdown().await;
    }

    fn begin(&mut self, title: &str) -> usize {
        self.step += 1;
        output::line("");
        output::line(&format!("[{}/{STEPS}] {title}", self.step));
        self.step
    }

    async fn story(&mut self) -> CliResult {
        self.setting();
        let fitbit_key = self.legacy_login().await?;
        self.who_and_what(&fitbit_key).await?;
        self.rotating_refresh(&fitbit_key).await?;
        self.retirement(&fitbit_key).await?;
        let request = self.plan_the_move(&fitbit_key).await?;
        let google_key = self.google_login(&fitbit_key, request).await?;
        self.keeping_refresh(&google_key).await?;
        self.revoke(&fitbit_key, &google_key).await
    }

    fn setting(&mut self) {
        self.begin("Start the emulator, a loopback callback server and an empty token store");
        say(
            "emulator",
            format!(
                "legacy Fitbit and Google OAuth servers at {}",
                self.emulator.base_url()
            ),
        );
        if let Some(server) = &self.server {
            say(
                "callback",
                format!("authctl listens on {} (RFC 8252)", server.redirect_uri()),
            );
        }
        say(
            "store",
            "a file store in a temporary directory, deleted at the end",
        );
        done();
    }

    /// A login where the demo's browser consents; returns the new key.
    async fn browser_login(
        &mut self,
        provider: &ProviderId,
        request: AuthorizeRequest,
    ) -> CliResult<(TokenKey, AccessToken, Url, Visit)> {
        let step = self.step;
        let pending = self
            .manager
            .begin_authorization(provider, request)
            .map_err(|e| failed(step, e))?;
        let browser = self.browser.clone();
        let authorize = pending.authorize_url.clone();
        let visit = tokio::spawn(async move { browser.log_in(authorize).await });
        let server = self
            .server
            .as_mut()
            .ok_or_else(|| failed(step, "the callback server is gone"))?;
        let target = Target {
            provider: provider.as_str(),
            account: None,
        };
        let received = login::receive(
            server,
            &self.manager,
            &pending,
            Some(Instant::now() + LOGIN_WAIT),
            Some(LOGIN_WAIT),
            target,
        )
        .await;
        let visit = visit
            .await
            .map_err(|e| failed(step, format!("the browser task failed: {e}")))?
            .map_err(|e| failed(step, e))?;
        let (key, token) = received.map_err(|f| failed(step, f.message()))?;
        expect(
            step,
            visit.callback_status == 200,
            format!(
                "authctl's callback page answered {} instead of 200",
                visit.callback_status
            ),
        )?;
        Ok((key, token, pending.authorize_url, visit))
    }

    async fn stored(&self, key: &TokenKey) -> CliResult<Option<Arc<TokenSet>>> {
        let step = self.step;
        self.manager.stored(key).await.map_err(|e| failed(step, e))
    }

    /// Refreshes `key` through the manager, reading the stored token just
    /// before and just after, for the current step to compare; `token`
    /// names it in the failure messages ("token", "Google token").
    async fn refresh_between(&self, key: &TokenKey, token: &str) -> CliResult<Refreshed> {
        let step = self.step;
        let before = self
            .stored(key)
            .await?
            .ok_or_else(|| failed(step, format!("the {token} is not in the store")))?;
        let access = self
            .manager
            .refresh(key)
            .await
            .map_err(|e| failed(step, e))?;
        let after = self
            .stored(key)
            .await?
            .ok_or_else(|| failed(step, format!("the refreshed {token} is not in the store")))?;
        Ok(Refreshed {
            before,
            access,
            after,
        })
    }

    async fn legacy_login(&mut self) -> CliResult<TokenKey> {
        let step = self.begin("Log in with legacy Fitbit as a server app (PKCE S256 + HTTP Basic)");
        let fitbit = self.fitbit.clone();
        // No account given: Fitbit's user_id names it, as the migration
        // guide's per-user bridge expects.
        let (key, token, url, visit) = self.browser_login(&fitbit, AuthorizeRequest::new()).await?;
        say("authorize", login::endpoint_only(&url));
        say(
            "",
            format!(
                "client_id={} scope=\"{}\" code_challenge_method={}",
                query_param(&url, "client_id").unwrap_or_default(),
                query_param(&url, "scope").unwrap_or_default(),
                query_param(&url, "code_challenge_method").unwrap_or_default(),
            ),
        );
        say(
            "",
            "(state and code_challenge are fresh random values for this login)",
        );
        expect(
            step,
            query_param(&url, "code_challenge_method").as_deref() == Some("S256")
                && query_param(&url, "code_challenge").is_some_and(|c| c.len() == 43),
            "the authorize URL carries no S256 PKCE challenge",
        )?;
        say(
            "browser",
            format!(
                "user {} approved; redirected to {} (authctl answered {})",
                demo::DEFAULT_USER_ID,
                visit.redirected_to,
                visit.callback_status
            ),
        );
        let exchange = self
            .emulator
            .last_request(Endpoint::FitbitToken)
            .ok_or_else(|| failed(step, "the emulator saw no token request"))?;
        let counters = self.emulator.counters();
        expect(
            step,
            exchange
                .header("authorization")
                .is_some_and(|v| v.starts_with("Basic ")),
            "the code exchange did not use HTTP Basic client authentication",
        )?;
        expect(
            step,
            exchange.form_param("client_secret").is_none(),
            "the client secret travelled in the request body",
        )?;
        expect(
            step,
            exchange.form_param("code_verifier").is_some() && counters.pkce_failures == 0,
            "the PKCE verifier was missing or wrong",
        )?;
        say(
            "exchange",
            "code + PKCE verifier; client authenticated with HTTP Basic, no secret in the body",
        );
        expect(
            step,
            key.account.as_str() == demo::DEFAULT_USER_ID,
            format!("the token was stored under {key}, not under the user_id"),
        )?;
        let now = SystemTime::now();
        let view = TokenView::new(&key, token.token_set(), now);
        say(
            "stored",
            format!(
                "{key} (the account is Fitbit's user_id), scopes {}",
                view.scopes().join(" ")
            ),
        );
        say("expires", output::expiry(token.expires_at(), now));
        done();
        Ok(key)
    }

    async fn who_and_what(&mut self, key: &TokenKey) -> CliResult {
        let step = self.begin("Who is it, and what may we read? (user_id and introspection)");
        let stored = self
            .stored(key)
            .await?
            .ok_or_else(|| failed(step, "the token is not in the store"))?;
        let user_id = auth_fitbit::user_id(&stored);
        expect(
            step,
            user_id == Some(demo::DEFAULT_USER_ID),
            format!("user_id is {user_id:?}"),
        )?;
        say(
            "user_id",
            format!(
                "{} (Fitbit's own field in the token response)",
                demo::DEFAULT_USER_ID
            ),
        );
        let info = self
            .manager
            .introspect(key)
            .await
            .map_err(|e| failed(step, e))?;
        let names: Vec<String> = info
            .scopes
            .iter()
            .map(|s| s.name.to_ascii_lowercase())
            .collect();
        expect(
            step,
            info.active,
            "introspection says the token is inactive",
        )?;
        expect(
            step,
            ["activity", "heartrate", "sleep"]
                .iter()
                .all(|s| names.iter().any(|n| n == s)),
            format!("introspection lists the scopes {names:?}"),
        )?;
        let shown = output::granted_scopes(&info);
        say("introspect", format!("active; scopes {}", shown.join(" ")));
        if let Some(client) = &info.client_id {
            say("", format!("issued to client {client}"));
        }
        done();
        Ok(())
    }

    async fn rotating_refresh(&mut self, key: &TokenKey) -> CliResult {
        let step = self.begin("Refresh: Fitbit rotates the single-use refresh token");
        let Refreshed {
            before,
            access: refreshed,
            after,
        } = self.refresh_between(key, "token").await?;
        expect(
            step,
            self.emulator.counters().fitbit_token_refresh == 1,
            "the emulator did not see exactly one refresh",
        )?;
        expect(
            step,
            after.refresh_token().is_some()
                && !same_secret(after.refresh_token(), before.refresh_token()),
            "the refresh token did not change",
        )?;
        expect(
            step,
            after.access_token().expose_secret() != before.access_token().expose_secret()
                && refreshed.secret() == after.access_token().expose_secret(),
            "the stored access token is not the new one",
        )?;
        say(
            "refreshed",
            "one request: a new access token and a new refresh token",
        );
        say(
            "saved",
            "the new pair was saved (compare-and-swap, under the key lock) before use;",
        );
        say(
            "",
            "the old refresh token is spent and will never be sent again",
        );
        say(
            "expires",
            output::expiry(after.expires_at(), SystemTime::now()),
        );
        done();
        Ok(())
    }

    async fn retirement(&mut self, key: &TokenKey) -> CliResult {
        let step = self.begin("2026-11-02: the legacy Fitbit API is switched off");
        self.emulator.set_retired(true);
        say(
            "switch",
            "the emulator now answers 410 Gone on every legacy Fitbit endpoint",
        );
        let err = match self.manager.refresh(key).await {
            Ok(_) => {
                return Err(failed(
                    step,
                    "the refresh succeeded against a retired server",
                ));
            }
            Err(err) => err,
        };
        let successor = match &err {
            Error::ProviderRetired { successor, .. } => successor.clone(),
            other => {
                return Err(failed(
                    step,
                    format!("expected a retirement error, got: {other}"),
                ));
            }
        };
        expect(
            step,
            successor == auth_fitbit::GOOGLE_HEALTH && err.http_status() == Some(410),
            format!("the error names {successor:?} as the successor"),
        )?;
        let failure = Failure::from_auth(&err, &Target::key(key));
        expect(
            step,
            failure.kind() == ExitKind::Retired,
            "the error does not map to exit code 5",
        )?;
        say("refresh", format!("HTTP 410 Gone: {err}"));
        say(
            "authctl",
            format!(
                "exits with code {} and says: {}",
                failure.kind().code(),
                failure.next()
            ),
        );
        expect(
            step,
            self.stored(key).await?.is_some(),
            "the Fitbit token was deleted",
        )?;
        say(
            "kept",
            "the stored Fitbit token is untouched: nothing is deleted silently",
        );
        done();
        Ok(())
    }

    async fn plan_the_move(&mut self, key: &TokenKey) -> CliResult<AuthorizeRequest> {
        let step = self.begin("Plan the move to Google Health: map the granted scopes");
        let moves = migration::plan(&self.manager, &self.fitbit, &self.google, Access::ReadOnly)
            .await
            .map_err(|e| failed(step, e))?;
        let [one] = moves.as_slice() else {
            return Err(failed(
                step,
                format!("{} accounts to move instead of 1", moves.len()),
            ));
        };
        expect(
            step,
            one.account == key.account,
            format!("the plan moves {} instead of {}", one.account, key.account),
        )?;
        for legacy in &one.legacy_scopes {
            let google: Vec<&str> = migration::google_scopes_for(legacy, Access::ReadOnly)
                .into_iter()
                .map(short_scope)
                .collect();
            let google = if google.is_empty() {
                "(no successor)".to_owned()
            } else {
                google.join(" ")
            };
            say("scope", format!("{legacy:<10} -> {google}"));
        }
        expect(
            step,
            !one.google_scopes.is_empty()
                && one.unmapped.is_empty()
                && one
                    .google_scopes
                    .iter()
                    .all(|s| s.starts_with(auth_fitbit::scopes::PREFIX)),
            format!("the mapping gave {:?}", one.google_scopes),
        )?;
        expect(
            step,
            one.request.prompt.as_deref() == Some("consent")
                && one.request.account.as_ref() == Some(&key.account),
            "the move does not ask for consent under the same account",
        )?;
        say(
            "request",
            format!(
                "same account {}, prompt=consent: every user must consent again",
                one.account
            ),
        );
        expect(
            step,
            one.expected_legacy_user_id == key.account.as_str(),
            format!(
                "the plan expects legacyUserId {} for {}",
                one.expected_legacy_user_id, key.account
            ),
        )?;
        say(
            "identity",
            format!(
                "the Google account must report legacyUserId {} (the stored Fitbit user_id), \
                 or the link is refused",
                one.expected_legacy_user_id
            ),
        );
        done();
        Ok(one.request.clone())
    }

    async fn google_login(
        &mut self,
        fitbit_key: &TokenKey,
        request: AuthorizeRequest,
    ) -> CliResult<TokenKey> {
        let step = self.begin("Log in with Google Health (Google OAuth) under the same account");
        let wanted: Vec<String> = request.scopes.clone();
        let google = self.google.clone();
        let (key, token, url, visit) = self.browser_login(&google, request).await?;
        say("authorize", login::endpoint_only(&url));
        say(
            "",
            format!(
                "access_type={} prompt={}",
                query_param(&url, "access_type").unwrap_or_default(),
                query_param(&url, "prompt").unwrap_or_default()
            ),
        );
        expect(
            step,
            query_param(&url, "access_type").as_deref() == Some("offline")
                && query_param(&url, "prompt").as_deref() == Some("consent"),
            "the Google authorize URL lacks access_type=offline or prompt=consent",
        )?;
        say(
            "browser",
            format!(
                "user {} consented again; redirected to {}",
                fitbit_key.account, visit.redirected_to
            ),
        );
        expect(
            step,
            key.provider == self.google && key.account == fitbit_key.account,
            format!("the token was stored under {key}"),
        )?;
        let set = token.token_set();
        expect(
            step,
            set.refresh_token().is_some(),
            "Google issued no refresh token",
        )?;
        let granted: Vec<String> = set.scopes().iter().cloned().collect();
        let mut sorted = wanted.clone();
        sorted.sort();
        expect(
            step,
            granted == sorted,
            format!("granted {granted:?}, asked for {wanted:?}"),
        )?;
        let identity = GoogleHealthProvider::identity(&self.health, set)
            .await
            .map_err(|e| failed(step, e))?;
        expect(
            step,
            identity.legacy_user_id.as_deref() == Some(fitbit_key.account.as_str()),
            format!(
                "GET /v4/users/me/identity gave legacyUserId {:?}, not {}",
                identity.legacy_user_id, fitbit_key.account
            ),
        )?;
        say(
            "identity",
            format!(
                "GET /v4/users/me/identity: legacyUserId {} = the Fitbit user_id, the same person \
                 (Bridge::link refuses any other Google account and keeps the Fitbit token)",
                fitbit_key.account
            ),
        );
        let short: Vec<&str> = granted.iter().map(|s| short_scope(s)).collect();
        say("stored", format!("{key}, scopes {}", short.join(" ")));
        say(
            "expires",
            output::expiry(set.expires_at(), SystemTime::now()),
        );
        let bridge = Bridge::new(
            self.manager.clone(),
            self.fitbit.clone(),
            self.google.clone(),
        );
        let (via, _) = bridge
            .access_token(&key.account)
            .await
            .map_err(|e| failed(step, e))?;
        expect(
            step,
            via == self.google,
            format!("the bridge still answers with {via}"),
        )?;
        say(
            "bridge",
            format!(
                "the app asks the bridge for {}'s token and now gets {via}'s",
                key.account
            ),
        );
        done();
        Ok(key)
    }

    async fn keeping_refresh(&mut self, key: &TokenKey) -> CliResult {
        let step = self.begin("Refresh with Google: the refresh token is kept");
        let Refreshed { before, after, .. } = self.refresh_between(key, "Google token").await?;
        expect(
            step,
            self.emulator.counters().google_token_refresh == 1,
            "the emulator did not see exactly one Google refresh",
        )?;
        expect(
            step,
            after.access_token().expose_secret() != before.access_token().expose_secret(),
            "the access token did not change",
        )?;
        expect(
            step,
            after.refresh_token().is_some()
                && same_secret(after.refresh_token(), before.refresh_token()),
            "the refresh token was lost or changed",
        )?;
        say(
            "refreshed",
            "a new access token; Google sent no refresh token, so the stored one was kept",
        );
        say(
            "expires",
            output::expiry(after.expires_at(), SystemTime::now()),
        );
        done();
        Ok(())
    }

    async fn revoke(&mut self, fitbit_key: &TokenKey, google_key: &TokenKey) -> CliResult {
        let step = self.begin("Revoke: at the server first, then locally");
        self.manager
            .revoke(google_key)
            .await
            .map_err(|e| failed(step, e))?;
        expect(
            step,
            self.emulator.counters().google_revoke == 1,
            "the emulator saw no revocation",
        )?;
        expect(
            step,
            self.stored(google_key).await?.is_none(),
            "the Google token is still stored",
        )?;
        say(
            "revoked",
            format!("{google_key} at Google, then deleted locally"),
        );
        let err = match self.manager.access_token(google_key).await {
            Ok(_) => return Err(failed(step, "a token is still handed out after revocation")),
            Err(err) => err,
        };
        let failure = Failure::from_auth(&err, &Target::key(google_key));
        expect(
            step,
            failure.kind() == ExitKind::Reauthorization,
            format!("asking for the revoked token gave: {err}"),
        )?;
        say(
            "afterwards",
            format!(
                "`authctl token` would exit {} and say: {}",
                failure.kind().code(),
                failure.next()
            ),
        );
        match self.manager.revoke(fitbit_key).await {
            Err(Error::ProviderRetired { .. }) => {}
            other => {
                return Err(failed(
                    step,
                    format!("revoking at the retired Fitbit server gave {other:?}"),
                ));
            }
        }
        let removed = self
            .manager
            .remove(fitbit_key)
            .await
            .map_err(|e| failed(step, e))?;
        expect(step, removed, "the legacy token was not there to remove")?;
        say(
            "legacy",
            format!(
                "revoking {fitbit_key} answers 410 too (the server is gone); its local copy was \
                 removed instead (`authctl logout`)"
            ),
        );
        let left = self.manager.list(None).await.map_err(|e| failed(step, e))?;
        expect(
            step,
            left.is_empty(),
            format!("the store still holds {left:?}"),
        )?;
        say("store", "empty");
        done();
        Ok(())
    }
}
