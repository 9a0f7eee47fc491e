//! Shared test helpers: an in-process emulator with test clients, a
//! temporary config file and store, the real `authctl` binary run as a
//! child process, a scripted browser, and the check that no secret leaks.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the helpers"
)]

use std::collections::BTreeSet;
use std::io::{BufRead as _, BufReader, Read as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use assert_cmd::cargo::CommandCargoExt as _;
use auth_core::secrecy::ExposeSecret as _;
use auth_core::{Expect, Record, TokenKey, TokenSet, TokenStore};
use auth_emulator::{ClientConfig, Emulator, EmulatorBuilder, IssuedTokens};
use store_file::FileTokenStore;
use store_postgres::PostgresTokenStore;
use tempfile::TempDir;
use tokio::sync::mpsc;
use url::Url;

/// The test's legacy Fitbit server app.
pub(crate) const FITBIT_CLIENT_ID: &str = "TEST-FITBIT-SERVER";
/// Its secret.
pub(crate) const FITBIT_SECRET: &str = "test-fitbit-client-secret-0123456789";
/// The variable the config reads it from.
pub(crate) const FITBIT_SECRET_ENV: &str = "TEST_AUTHCTL_FITBIT_SECRET";
/// The test's Google web client.
pub(crate) const GOOGLE_CLIENT_ID: &str = "test-google.apps.googleusercontent.com";
/// Its secret.
pub(crate) const GOOGLE_SECRET: &str = "test-google-client-secret-0123456789";
/// The variable the config reads it from.
pub(crate) const GOOGLE_SECRET_ENV: &str = "TEST_AUTHCTL_GOOGLE_SECRET";
/// The Fitbit user of seeded grants.
pub(crate) const USER: &str = "26FWFL";
/// How long any one child process may take before the test gives up.
const CHILD_LIMIT: Duration = Duration::from_secs(60);

/// A free port on 127.0.0.1 (released again for the child to bind).
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// An emulator, a config file naming it, and a token store, in a temporary
/// directory.
pub(crate) struct World {
    pub(crate) emulator: Emulator,
    pub(crate) dir: TempDir,
    pub(crate) config: PathBuf,
    pub(crate) store: PathBuf,
    /// A PostgreSQL store URL, used instead of `store` when set.
    pub(crate) store_url: Option<String>,
    pub(crate) redirect_uri: String,
    secrets: Mutex<BTreeSet<String>>,
}

impl World {
    /// A world with the default emulator.
    pub(crate) async fn start() -> Self {
        Self::with(Emulator::builder()).await
    }

    /// A world with this emulator configuration, plus the test clients.
    pub(crate) async fn with(builder: EmulatorBuilder) -> Self {
        let redirect_uri = format!("http://127.0.0.1:{}/callback", free_port());
        let emulator = builder
            .fitbit_client(
                ClientConfig::server(FITBIT_CLIENT_ID, FITBIT_SECRET)
                    .redirect_uri(redirect_uri.clone()),
            )
            .google_client(
                ClientConfig::server(GOOGLE_CLIENT_ID, GOOGLE_SECRET)
                    .redirect_uri(redirect_uri.clone()),
            )
            .start()
            .await
            .expect("the emulator starts");
        let dir = tempfile::tempdir().expect("a temporary directory");
        let config = dir.path().join("authctl.toml");
        let store = dir.path().join("tokens");
        let world = Self {
            emulator,
            config,
            store,
            store_url: None,
            redirect_uri,
            dir,
            secrets: Mutex::new(
                [FITBIT_SECRET, GOOGLE_SECRET]
                    .into_iter()
                    .map(str::to_owned)
                    .collect(),
            ),
        };
        world.write_config(&world.config_text());
        world
    }

    /// A world whose store is a fresh database of the test cluster.
    #[cfg(unix)]
    pub(crate) async fn with_postgres(builder: EmulatorBuilder) -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let mut world = Self::with(builder).await;
        let cluster = test_support::postgres::shared();
        let name = format!(
            "authctl_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let admin = sqlx::PgPool::connect(cluster.url())
            .await
            .expect("admin connection");
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&admin)
            .await
            .expect("create a database");
        admin.close().await;
        let base = cluster
            .url()
            .rsplit_once('/')
            .expect("a URL with a database")
            .0;
        world.store_url = Some(format!("{base}/{name}"));
        world.remember(test_support::postgres::PASSWORD);
        world
    }

    /// The store the children use, opened here.
    pub(crate) async fn open_store(&self) -> Box<dyn TokenStore> {
        match &self.store_url {
            Some(url) => Box::new(
                PostgresTokenStore::connect(url)
                    .await
                    .expect("the database store opens"),
            ),
            None => Box::new(self.file_store()),
        }
    }

    /// The config for the two test clients at this emulator.
    pub(crate) fn config_text(&self) -> String {
        let f = self.emulator.fitbit_endpoints();
        let g = self.emulator.google_endpoints();
        format!(
            r#"
[providers.fitbit]
kind = "fitbit"
client_id = "{FITBIT_CLIENT_ID}"
client_secret_env = "{FITBIT_SECRET_ENV}"
app_type = "server"
redirect_uri = "{redirect}"
scopes = ["activity", "heartrate", "sleep"]
authorize_url = "{fa}"
token_url = "{ft}"
introspect_url = "{fi}"
revoke_url = "{fr}"

[providers.google-health]
kind = "google-health"
client_id = "{GOOGLE_CLIENT_ID}"
client_secret_env = "{GOOGLE_SECRET_ENV}"
redirect_uri = "{redirect}"
scopes = ["https://www.googleapis.com/auth/googlehealth.sleep.readonly"]
authorize_url = "{ga}"
token_url = "{gt}"
revoke_url = "{gr}"
tokeninfo_url = "{gi}"
"#,
            redirect = self.redirect_uri,
            fa = f.authorize,
            ft = f.token,
            fi = f.introspect,
            fr = f.revoke,
            ga = g.authorize,
            gt = g.token,
            gr = g.revoke,
            gi = g.tokeninfo,
        )
    }

    /// Replaces the config file (mode 0600).
    pub(crate) fn write_config(&self, text: &str) {
        write_private(&self.config, text);
    }

    /// `authctl --config CONFIG ARGS…`, with the store, the secrets and a
    /// private home in the temporary directory.
    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut cmd = authctl(self.dir.path());
        match &self.store_url {
            Some(url) => cmd.env("AUTHCTL_STORE", url),
            None => cmd.env("AUTHCTL_STORE", &self.store),
        };
        cmd.arg("--config")
            .arg(&self.config)
            .args(args)
            .env(FITBIT_SECRET_ENV, FITBIT_SECRET)
            .env(GOOGLE_SECRET_ENV, GOOGLE_SECRET);
        cmd
    }

    /// Runs `authctl ARGS…` to completion, without blocking the emulator.
    pub(crate) async fn run(&self, args: &[&str]) -> Output {
        let output = run(self.command(args)).await;
        self.remember_stored_tokens().await;
        output
    }

    /// Runs `n` processes of `authctl ARGS…` at once and waits for all of
    /// them, without blocking the emulator; then remembers the stored
    /// tokens as secrets.
    pub(crate) async fn run_concurrently(&self, n: usize, args: &[&str]) -> Vec<Output> {
        let children: Vec<Child> = (0..n)
            .map(|_| {
                self.command(args)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("authctl starts")
            })
            .collect();
        let outputs = tokio::task::spawn_blocking(move || {
            children
                .into_iter()
                .map(|c| c.wait_with_output().expect("authctl finishes"))
                .collect()
        })
        .await
        .expect("the waiting thread");
        self.remember_stored_tokens().await;
        outputs
    }

    /// The file store the children use.
    pub(crate) fn file_store(&self) -> FileTokenStore {
        FileTokenStore::open(&self.store).expect("the store opens")
    }

    /// A stored token, if any.
    pub(crate) async fn stored(&self, provider: &str, account: &str) -> Option<TokenSet> {
        let key = TokenKey::parse(provider, account).expect("a valid key");
        self.open_store()
            .await
            .load(&key)
            .await
            .expect("the store reads")
            .and_then(|row| row.token)
    }

    /// Adds a value that must never be printed.
    pub(crate) fn remember(&self, secret: impl Into<String>) {
        self.secrets.lock().expect("lock").insert(secret.into());
    }

    /// Adds every token now in the store to the secrets.
    pub(crate) async fn remember_stored_tokens(&self) {
        let store = self.open_store().await;
        for key in store.list(None).await.unwrap_or_default() {
            if let Ok(Some(stored)) = store.load(&key).await
                && let Some(token) = stored.token
            {
                self.remember(token.access_token().expose_secret());
                if let Some(refresh) = token.refresh_token() {
                    self.remember(refresh.expose_secret());
                }
            }
        }
    }

    /// Asserts that no known secret is in stderr, nor in stdout unless
    /// `stdout_may_hold_token` (for `authctl token`, whose stdout is the
    /// access token and nothing else).
    pub(crate) fn assert_no_secrets(&self, output: &Output, stdout_may_hold_token: bool) {
        let secrets = self.secrets.lock().expect("lock");
        let out = String::from_utf8_lossy(&output.stdout);
        let err = String::from_utf8_lossy(&output.stderr);
        for secret in secrets.iter() {
            assert!(
                !err.contains(secret.as_str()),
                "a secret leaked to stderr:\n{err}"
            );
            if !stdout_may_hold_token {
                assert!(
                    !out.contains(secret.as_str()),
                    "a secret leaked to stdout:\n{out}"
                );
            }
        }
        // The authorize URL carries the PKCE challenge, public by design.
        let err_without_url: String = err
            .lines()
            .filter(|l| !(l.starts_with("http") && l.contains("code_challenge=")))
            .collect::<Vec<_>>()
            .join("\n");
        assert_no_opaque_strings(&err_without_url);
        if stdout_may_hold_token {
            assert!(
                out.is_empty() || (out.ends_with('\n') && out.lines().count() == 1),
                "stdout holds more than the token line:\n{out}"
            );
        } else {
            assert_no_opaque_strings(&out);
        }
    }

    /// Seeds a legacy Fitbit grant at the emulator and stores it for
    /// `account`, already expired when `expired`.
    pub(crate) async fn seed_fitbit(&self, account: &str, expired: bool) -> IssuedTokens {
        self.seed_fitbit_scopes(account, expired, &["activity", "sleep"])
            .await
    }

    /// As [`seed_fitbit`](Self::seed_fitbit), with these scopes.
    pub(crate) async fn seed_fitbit_scopes(
        &self,
        account: &str,
        expired: bool,
        scopes: &[&str],
    ) -> IssuedTokens {
        let issued = self
            .emulator
            .seed_fitbit_grant(FITBIT_CLIENT_ID, USER, scopes);
        self.remember(issued.access_token.clone());
        if let Some(refresh) = &issued.refresh_token {
            self.remember(refresh.clone());
        }
        let now = SystemTime::now();
        let token = TokenSet::new(
            issued.access_token.clone(),
            "Bearer",
            now - Duration::from_secs(9 * 3600),
        )
        .with_refresh_secret(issued.refresh_token.clone().map(Into::into))
        .with_expires_at(Some(if expired {
            now - Duration::from_secs(3600)
        } else {
            now + Duration::from_secs(issued.expires_in)
        }))
        .with_scopes(issued.scopes.clone())
        .with_extra("user_id", serde_json::json!(USER));
        self.put(&TokenKey::parse("fitbit", account).expect("key"), &token)
            .await;
        issued
    }

    /// Writes a token into the store, replacing any, as a login would
    /// (through the key's lease, with a new login sequence).
    pub(crate) async fn put(&self, key: &TokenKey, token: &TokenSet) {
        self.remember(token.access_token().expose_secret());
        if let Some(refresh) = token.refresh_token() {
            self.remember(refresh.expose_secret());
        }
        let store = self.open_store().await;
        let lease = store
            .lock(key, Duration::from_secs(10))
            .await
            .expect("lock");
        let sequence = lease.next_sequence().await.expect("a login sequence");
        lease
            .save_and_release(token, Expect::Login(sequence), Record::Clear)
            .await
            .expect("save");
    }
}

/// `authctl` with a private home, config and data directory under `home`,
/// and none of the caller's authctl variables.
pub(crate) fn authctl(home: &Path) -> Command {
    let mut cmd = Command::cargo_bin("authctl").expect("the authctl binary");
    cmd.env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config-home"))
        .env("XDG_DATA_HOME", home.join("data-home"))
        .env_remove("AUTHCTL_CONFIG")
        .env_remove("AUTHCTL_STORE")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    cmd
}

/// Writes a file readable by its owner only.
pub(crate) fn write_private(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write the file");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
}

/// Runs a command to completion on the blocking pool.
pub(crate) async fn run(mut cmd: Command) -> Output {
    let run = tokio::task::spawn_blocking(move || cmd.output().expect("authctl runs"));
    tokio::time::timeout(CHILD_LIMIT, run)
        .await
        .expect("authctl finished in time")
        .expect("the runner thread")
}

/// The exit code.
pub(crate) fn code(output: &Output) -> i32 {
    output.status.code().expect("an exit code, not a signal")
}

/// stdout as text.
pub(crate) fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// stderr as text.
pub(crate) fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts the exit code, showing the output when it differs.
pub(crate) fn assert_code(output: &Output, expected: i32) {
    assert_eq!(
        code(output),
        expected,
        "stdout:\n{}\nstderr:\n{}",
        stdout(output),
        stderr(output)
    );
}

/// Fails on any run of 40 or more token characters: every token and code
/// the emulator issues is such a run, and nothing authctl prints on purpose
/// is (ids and URLs are made of shorter pieces).
pub(crate) fn assert_no_opaque_strings(text: &str) {
    let mut run = 0;
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
            run += 1;
            assert!(
                run < 40,
                "an opaque, token-like string was printed:\n{text}"
            );
        } else {
            run = 0;
        }
    }
}

/// A running `authctl` whose stderr is read line by line as it comes.
pub(crate) struct Running {
    child: Child,
    lines: mpsc::UnboundedReceiver<String>,
    stderr: std::thread::JoinHandle<String>,
    stdout: std::thread::JoinHandle<String>,
}

impl Running {
    /// Starts `cmd` with piped stdin, stdout and stderr.
    pub(crate) fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("authctl starts");
        let (tx, lines) = mpsc::unbounded_channel();
        let err = child.stderr.take().expect("piped stderr");
        let stderr = std::thread::spawn(move || {
            let mut all = String::new();
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                all.push_str(&line);
                all.push('\n');
                let _ = tx.send(line);
            }
            all
        });
        let mut out = child.stdout.take().expect("piped stdout");
        let stdout = std::thread::spawn(move || {
            let mut all = String::new();
            let _ = out.read_to_string(&mut all);
            all
        });
        Self {
            child,
            lines,
            stderr,
            stdout,
        }
    }

    /// The next stderr line that is a URL on its own: the authorize URL.
    pub(crate) async fn authorize_url(&mut self) -> Url {
        loop {
            let line = tokio::time::timeout(CHILD_LIMIT, self.lines.recv())
                .await
                .expect("authctl printed the URL in time")
                .expect("stderr ended before the authorize URL");
            if line.starts_with("http") && !line.contains(' ') {
                return Url::parse(&line).expect("the URL line is a URL");
            }
        }
    }

    /// The next stderr line that contains `needle`.
    pub(crate) async fn line_containing(&mut self, needle: &str) -> String {
        loop {
            let line = tokio::time::timeout(CHILD_LIMIT, self.lines.recv())
                .await
                .expect("authctl printed the line in time")
                .unwrap_or_else(|| panic!("stderr ended before a line with {needle:?}"));
            if line.contains(needle) {
                return line;
            }
        }
    }

    /// Writes a line to the child's stdin, then closes it.
    pub(crate) fn type_line(&mut self, line: &str) {
        use std::io::Write as _;
        let mut stdin = self.child.stdin.take().expect("piped stdin");
        writeln!(stdin, "{line}").expect("write to stdin");
    }

    /// Waits for the exit and collects the output.
    pub(crate) async fn finish(self) -> Output {
        let Self {
            mut child,
            stderr,
            stdout,
            ..
        } = self;
        drop(child.stdin.take());
        let wait = tokio::task::spawn_blocking(move || {
            let status = child.wait().expect("wait for authctl");
            let stdout = stdout.join().expect("stdout reader");
            let stderr = stderr.join().expect("stderr reader");
            Output {
                status,
                stdout: stdout.into_bytes(),
                stderr: stderr.into_bytes(),
            }
        });
        tokio::time::timeout(CHILD_LIMIT, wait)
            .await
            .expect("authctl exited in time")
            .expect("the waiting thread")
    }

    /// Sends the child SIGINT, as Ctrl-C in a terminal does.
    #[cfg(unix)]
    pub(crate) fn interrupt(&self) {
        let status = std::process::Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -INT failed");
    }

    /// Ends the child (it is ours), for long-running commands.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
    }
}

/// A browser that does not follow redirects.
pub(crate) fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("an HTTP client")
}

/// Opens the authorize URL (the emulator consents at once) and returns the
/// redirect target, remembering the code in it as a secret.
pub(crate) async fn consent(world: &World, authorize: &Url) -> Url {
    let callback = consent_at(authorize).await;
    if let Some((_, code)) = callback.query_pairs().find(|(k, _)| k == "code") {
        world.remember(code.into_owned());
    }
    callback
}

/// Opens the authorize URL and returns the redirect target.
pub(crate) async fn consent_at(authorize: &Url) -> Url {
    let answer = browser()
        .get(authorize.as_str())
        .send()
        .await
        .expect("the consent page answers");
    assert!(
        answer.status().is_redirection(),
        "the consent page answered {}",
        answer.status()
    );
    let location = answer.headers()["location"]
        .to_str()
        .expect("an ASCII Location")
        .to_owned();
    Url::parse(&location).expect("Location is a URL")
}

/// A child process that is killed when the test ends, however it ends
/// (for long-running commands such as `authctl emulator`).
pub(crate) struct KillOnDrop(pub(crate) Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
