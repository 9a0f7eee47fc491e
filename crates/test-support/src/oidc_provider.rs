//! A real, OpenID Certified authorization server for integration tests.
//!
//! [`OidcProvider::start`] runs `oidc-provider` (npm, by panva) from
//! `oidc-provider/server.mjs` of this crate as a child process on `127.0.0.1` with a
//! random port, and [`browser_login`] plays the user agent: it follows the
//! redirects of an authorization request through the server's automatic login
//! and consent, and returns the callback URL with `code`, `state` and `iss`.
//!
//! The server is configured with:
//!
//! - a confidential client using `client_secret_basic`
//!   ([`OidcProvider::confidential_client_id`]); its secret contains `+`, `/`
//!   and `=`, so a client must form-encode the id and secret before Basic
//!   encoding them (RFC 6749 §2.3.1) or get `invalid_client`;
//! - a confidential client using `client_secret_post`
//!   ([`OidcProvider::post_client_id`]);
//! - a public client using `none` ([`OidcProvider::public_client_id`]);
//! - a service client for the client credentials grant only
//!   ([`SERVICE_CLIENT_ID`], `client_secret_basic`, scopes `api:read` and
//!   `api:write`), which may name the resource [`API_RESOURCE`] (RFC 8707);
//! - a public device client for the device authorization grant and refresh
//!   ([`DEVICE_CLIENT_ID`]); its logins are not automatic: a person (or
//!   [`device_browser`]) enters the user code, signs in and consents through
//!   HTML forms. Device authorizations carry `interval: 1`, and the server
//!   can be told to answer `slow_down` ([`OidcProvider::slow_down_next`]) or
//!   to expire every device code ([`OidcProvider::expire_device_codes`]);
//! - one redirect URI for all of them, [`OidcProvider::redirect_uri`], which
//!   nobody listens on: [`browser_login`] stops at it;
//! - PKCE required, `S256` only;
//! - a refresh token on every code exchange (no `offline_access` or
//!   `prompt=consent` needed), rotated on every use; reusing a rotated refresh
//!   token revokes the whole grant;
//! - opaque access tokens, introspection (RFC 7662), revocation (RFC 7009) and
//!   `iss` in authorization responses (RFC 9207);
//! - scopes `openid`, `offline_access`, `profile`, `email`, `api:read` and
//!   `api:write`; unknown scopes are dropped from the grant.
//!
//! An authorization request must carry `response_type=code`, the exact
//! `redirect_uri`, `code_challenge` + `code_challenge_method=S256`, and at
//! least one known scope (no scope at all ends in `error=access_denied`). It
//! needs neither `prompt` nor `offline_access` (`offline_access` is dropped
//! unless `prompt=consent` is sent too; a refresh token comes either way), and
//! must not send `resource` (`error=invalid_target`: no resource servers are
//! configured).
//!
//! Setup is automatic: `start` installs the pinned npm packages with `npm ci`
//! when they are missing (once, under a file lock shared by every test
//! process), and panics with a clear message when Node.js is not installed.
//!
//! Set `OIDC_PROVIDER_LOG=1` to copy the server's stderr to the test's stderr
//! as it arrives.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::thread;
use std::time::Duration;

use sha2::{Digest, Sha256};
use url::Url;

/// The client id of the confidential client (`client_secret_basic`).
pub const CONFIDENTIAL_CLIENT_ID: &str = "conf-client";
/// The secret of [`CONFIDENTIAL_CLIENT_ID`]. It needs form-encoding (RFC 6749 §2.3.1).
pub const CONFIDENTIAL_CLIENT_SECRET: &str =
    "cS3cr3t+Vq9/ZkW2rTnX8pLmB4yHd7Fo1uJgEa6Ns0Ri5KtUw/Yc+Qx==";
/// The client id of the confidential client that authenticates with `client_secret_post`.
pub const POST_CLIENT_ID: &str = "conf-post-client";
/// The secret of [`POST_CLIENT_ID`].
pub const POST_CLIENT_SECRET: &str = "pS3cr3t-Hn4_Lr8Tq2Wv6Xz0Bc5Dm9Fk3Gj7Pa1Se4Ui8Oy2Ew6Rt0Yq";
/// The client id of the public client (`token_endpoint_auth_method: none`).
pub const PUBLIC_CLIENT_ID: &str = "public-client";
/// The client credentials client (`client_secret_basic`).
pub const SERVICE_CLIENT_ID: &str = "service-client";
/// The secret of [`SERVICE_CLIENT_ID`].
pub const SERVICE_CLIENT_SECRET: &str = "sS3cr3t+Lk2/Mn8Pq4Rs6Tu0Vw3Xy5Za7Bc9De1Fg=";
/// The public device authorization client.
pub const DEVICE_CLIENT_ID: &str = "device-client";
/// The one resource server (RFC 8707) that tokens may be asked for.
pub const API_RESOURCE: &str = "https://api.example.test/";
/// The redirect URI registered for every client. Nothing listens on it.
pub const REDIRECT_URI: &str = "http://127.0.0.1:9/callback";
/// The account that every automatic login signs in.
pub const ACCOUNT_ID: &str = "user-1";

/// How long to wait for the server's ready line.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of the server's stderr to keep for diagnostics.
const LOG_CAP: usize = 64 * 1024;
/// The most redirects [`browser_login`] follows before giving up.
const MAX_HOPS: usize = 20;
/// Written into `node_modules` after a successful `npm ci`: the SHA-256 of
/// `package.json` and `package-lock.json`, so that changing them triggers a reinstall.
const STAMP_FILE: &str = ".auth-oauth2-npm-ci.sha256";
/// The file locked while installing. Ignored by `oidc-provider/.gitignore`.
const LOCK_FILE: &str = ".npm-install.lock";

/// A running `oidc-provider`. Dropping it kills the server.
pub struct OidcProvider {
    /// The issuer, `http://127.0.0.1:<port>`.
    ///
    /// Note that `Url` serializes it with a trailing slash
    /// (`http://127.0.0.1:<port>/`), while the server's issuer identifier, the
    /// `issuer` of discovery and the `iss` of callbacks have none: compare
    /// against [`OidcProvider::issuer_str`].
    pub issuer: Url,
    /// The TCP port the server listens on.
    pub port: u16,
    /// See [`CONFIDENTIAL_CLIENT_ID`].
    pub confidential_client_id: String,
    /// See [`CONFIDENTIAL_CLIENT_SECRET`].
    pub confidential_client_secret: String,
    /// See [`POST_CLIENT_ID`].
    pub post_client_id: String,
    /// See [`POST_CLIENT_SECRET`].
    pub post_client_secret: String,
    /// See [`PUBLIC_CLIENT_ID`].
    pub public_client_id: String,
    /// See [`REDIRECT_URI`].
    pub redirect_uri: String,
    issuer_id: String,
    child: Child,
    /// Held only so that the server sees its stdin close when we go away.
    _stdin: ChildStdin,
    log: Arc<Mutex<String>>,
}

impl std::fmt::Debug for OidcProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcProvider")
            .field("issuer", &self.issuer_id)
            .field("pid", &self.child.id())
            .finish_non_exhaustive()
    }
}

impl OidcProvider {
    /// Starts a fresh server (fresh keys, clients, grants and tokens).
    ///
    /// Installs the npm packages first if needed. Panics, with the server's
    /// stderr, if Node.js is missing, the install fails, or the server is not
    /// ready within 30 seconds.
    pub async fn start() -> OidcProvider {
        match tokio::task::spawn_blocking(Self::start_blocking).await {
            Ok(provider) => provider,
            Err(err) => match err.try_into_panic() {
                Ok(payload) => std::panic::resume_unwind(payload),
                Err(err) => panic!("oidc-provider: start task failed: {err}"),
            },
        }
    }

    /// [`OidcProvider::start`] for synchronous code. Blocks the thread.
    pub fn start_blocking() -> OidcProvider {
        // Once per test process; a panic leaves it to be retried (and to fail again).
        static SETUP: OnceLock<()> = OnceLock::new();
        let dir = server_dir();
        SETUP.get_or_init(|| {
            check_node();
            ensure_node_modules(&dir);
        });
        spawn_server(&dir)
    }

    /// The issuer exactly as the server spells it (no trailing slash): the
    /// value of discovery's `issuer` and of the callback's `iss`.
    pub fn issuer_str(&self) -> &str {
        &self.issuer_id
    }

    /// `<issuer>/.well-known/openid-configuration`.
    pub fn discovery_url(&self) -> Url {
        Url::parse(&format!(
            "{}/.well-known/openid-configuration",
            self.issuer_id
        ))
        .expect("discovery URL is valid")
    }

    /// Makes the server answer the next `count` token requests with
    /// `slow_down` (oidc-provider never sends it on its own).
    pub async fn slow_down_next(&self, count: u32) {
        self.control(&format!("slow-down?count={count}")).await;
    }

    /// Expires every device code issued so far: the next poll of each is
    /// answered `expired_token`.
    pub async fn expire_device_codes(&self) {
        self.control("expire-device-codes").await;
    }

    /// How many requests have reached the token endpoint so far.
    pub async fn token_requests(&self) -> u64 {
        let url = format!("{}/_test/token-requests", self.issuer_id);
        let body: serde_json::Value = reqwest::get(&url)
            .await
            .unwrap_or_else(|err| panic!("GET {url}: {err}"))
            .json()
            .await
            .expect("a JSON count");
        body["count"].as_u64().expect("count")
    }

    async fn control(&self, what: &str) {
        let url = format!("{}/_test/{what}", self.issuer_id);
        let status = reqwest::Client::new()
            .post(&url)
            .send()
            .await
            .unwrap_or_else(|err| panic!("POST {url}: {err}"))
            .status();
        assert_eq!(status.as_u16(), 204, "POST {url}");
    }

    /// What the server has written to stderr so far (the last 64 KiB).
    pub fn logs(&self) -> String {
        lock(&self.log).clone()
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        // The server would also exit when its stdin closes; killing and
        // reaping it here frees it at once and leaves no zombie behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The HTTP client that plays a browser: it keeps cookies and follows no
/// redirect by itself, so each hop can be looked at.
fn browser_client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("build the browser's HTTP client")
}

/// Plays the user agent for an authorization request.
///
/// Starting at `authorize_url`, sends GET requests with a cookie store and
/// follows every `Location` (relative or absolute) by hand, through the
/// server's automatic login and consent, until a `Location` starts with
/// `redirect_uri`; returns that URL (with `code`, `state` and `iss`, or with
/// `error` when the server refused the request). The redirect URI itself is
/// never requested.
///
/// Panics on a non-redirect response (with its body, which is the server's
/// error), on a network error, or after 20 redirects.
pub async fn browser_login(authorize_url: &Url, redirect_uri: &str) -> Url {
    let client = browser_client();

    let mut current = authorize_url.clone();
    for _ in 0..MAX_HOPS {
        let response = client
            .get(current.clone())
            .send()
            .await
            .unwrap_or_else(|err| panic!("browser_login: GET {current} failed: {err}"));
        let status = response.status();
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .map(|value| value.to_str().map(str::to_owned));
        let location = match location {
            Some(Ok(location)) if status.is_redirection() => location,
            _ => {
                let body = response.text().await.unwrap_or_default();
                panic!(
                    "browser_login: expected a redirect from GET {current}, got {status}: {}",
                    excerpt(&body)
                );
            }
        };
        let next = current.join(&location).unwrap_or_else(|err| {
            panic!("browser_login: bad Location {location:?} from {current}: {err}")
        });
        if next.as_str().starts_with(redirect_uri) {
            return next;
        }
        current = next;
    }
    panic!("browser_login: more than {MAX_HOPS} redirects, last at {current}");
}

/// What the person does on the device confirmation page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceDecision {
    /// Continue, sign in as [`ACCOUNT_ID`] and allow.
    Approve,
    /// Abort on the confirmation page.
    Abort,
}

/// Plays a person at the verification URI of a device login: opens it,
/// types `user_code` into the server's form, then either aborts on the
/// confirmation page or continues, signs in as [`ACCOUNT_ID`] and consents,
/// submitting each HTML form as a browser would (cookies kept, redirects
/// followed by hand). Returns the text of the last page.
pub async fn device_browser(
    verification_uri: &str,
    user_code: &str,
    decision: DeviceDecision,
) -> String {
    let client = browser_client();
    let mut url = Url::parse(verification_uri).expect("verification URI");
    let mut response = client
        .get(url.clone())
        .send()
        .await
        .expect("GET the verification URI");
    let mut aborted = false;
    for _ in 0..MAX_HOPS {
        let status = response.status();
        if status.is_redirection() {
            let location = response.headers()[reqwest::header::LOCATION]
                .to_str()
                .expect("Location")
                .to_owned();
            url = url.join(&location).expect("Location is a URL");
            response = client
                .get(url.clone())
                .send()
                .await
                .expect("follow a redirect");
            continue;
        }
        let body = response.text().await.expect("page body");
        assert!(
            status.is_success(),
            "device login: {status} at {url}: {}",
            excerpt(&body)
        );
        let Some(form) = Form::first(&body) else {
            return body;
        };
        if aborted {
            return body;
        }
        let mut fields = form.fields;
        let has = |name: &str| fields.iter().any(|(n, _)| n == name);
        if has("user_code") && has("confirm") && decision == DeviceDecision::Abort {
            fields.retain(|(n, _)| n != "confirm");
            fields.push(("abort".into(), "yes".into()));
            aborted = true;
        } else if let Some(code) = fields
            .iter_mut()
            .find(|(n, v)| n == "user_code" && v.is_empty())
        {
            code.1 = user_code.to_owned();
        }
        if let Some(login) = fields.iter_mut().find(|(n, _)| n == "login") {
            login.1 = ACCOUNT_ID.to_owned();
        }
        if let Some(password) = fields.iter_mut().find(|(n, _)| n == "password") {
            password.1 = "correct horse".to_owned();
        }
        let action = url.join(&form.action).expect("form action");
        url = action.clone();
        response = client
            .post(action)
            .form(&fields)
            .send()
            .await
            .expect("submit a form");
    }
    panic!("device login: more than {MAX_HOPS} pages, last at {url}");
}

/// The first `<form>` of a page: its action and its inputs.
struct Form {
    action: String,
    fields: Vec<(String, String)>,
}

impl Form {
    fn first(html: &str) -> Option<Form> {
        let start = html.find("<form")?;
        let end = html[start..]
            .find("</form>")
            .map_or(html.len(), |e| start + e);
        let form = &html[start..end];
        let open = &form[..form.find('>')?];
        let action = attr(open, "action").unwrap_or_default();
        let mut fields = Vec::new();
        let mut rest = form;
        while let Some(at) = rest.find("<input") {
            let tag_end = rest[at..].find('>').map_or(rest.len(), |e| at + e);
            let tag = &rest[at..tag_end];
            if let Some(name) = attr(tag, "name") {
                fields.push((name, attr(tag, "value").unwrap_or_default()));
            }
            rest = &rest[tag_end..];
        }
        Some(Form { action, fields })
    }
}

/// The value of `name="…"` in a tag (as oidc-provider writes them).
fn attr(tag: &str, name: &str) -> Option<String> {
    let needle = format!(" {name}=\"");
    let at = tag
        .find(&needle)
        .or_else(|| tag.find(&needle.replacen(' ', "\n", 1)))?
        + needle.len();
    let len = tag[at..].find('"')?;
    Some(tag[at..at + len].replace("&amp;", "&"))
}

/// `oidc-provider/` of this crate: the server and its pinned packages.
fn server_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("oidc-provider")
}

/// Panics with installation advice unless a usable `node` is on the PATH.
fn check_node() {
    let output = match Command::new("node").arg("--version").output() {
        Ok(output) => output,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => panic!(
            "Node.js is required by the integration tests of auth-oauth2 and authctl (they run \
             the `oidc-provider` npm package as a real authorization server), but `node` \
             was not found on PATH. Install Node.js 20 or newer, with npm \
             (https://nodejs.org/ or your package manager), and run the tests again."
        ),
        Err(err) => panic!("could not run `node --version`: {err}"),
    };
    let version = String::from_utf8_lossy(&output.stdout);
    let major = version
        .trim()
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|major| major.parse::<u32>().ok());
    match major {
        Some(major) if major >= 18 => {}
        _ => panic!(
            "the integration tests of auth-oauth2 and authctl need Node.js 18 or newer (20 recommended), \
             found `node --version` = {:?}; install a newer Node.js.",
            version.trim()
        ),
    }
}

/// Runs `npm ci` in `dir` unless `node_modules` was installed from the
/// current `package.json` and `package-lock.json`.
/// Parallel test threads and processes install once: the install happens
/// under an exclusive lock on a file in `dir`, and the check is repeated
/// after taking it.
fn ensure_node_modules(dir: &Path) {
    let mut hasher = Sha256::new();
    for name in ["package.json", "package-lock.json"] {
        let path = dir.join(name);
        let bytes = fs::read(&path).unwrap_or_else(|err| panic!("read {}: {err}", path.display()));
        hasher.update(&bytes);
    }
    let digest = hex(&hasher.finalize());
    let installed = || {
        fs::read_to_string(dir.join("node_modules").join(STAMP_FILE))
            .is_ok_and(|stamp| stamp.trim() == digest)
    };
    if installed() {
        return;
    }

    let lock_path = dir.join(LOCK_FILE);
    let lock_file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .unwrap_or_else(|err| panic!("open {}: {err}", lock_path.display()));
    fs4::FileExt::lock(&lock_file)
        .unwrap_or_else(|err| panic!("lock {}: {err}", lock_path.display()));
    if !installed() {
        npm_ci(dir);
        fs::write(dir.join("node_modules").join(STAMP_FILE), &digest)
            .unwrap_or_else(|err| panic!("write the npm install stamp: {err}"));
    }
    unlock(lock_file);
}

fn unlock(lock_file: File) {
    let _ = fs4::FileExt::unlock(&lock_file);
}

fn npm_ci(dir: &Path) {
    let output = Command::new("npm")
        .args([
            "ci",
            "--no-audit",
            "--no-fund",
            "--ignore-scripts",
            "--loglevel=error",
        ])
        .env("npm_config_update_notifier", "false")
        .current_dir(dir)
        .stdin(Stdio::null())
        .output();
    let output = match output {
        Ok(output) => output,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => panic!(
            "`npm` was not found on PATH. The integration tests of auth-oauth2 and authctl \
             install their test server with npm; install Node.js 20 or newer together with npm."
        ),
        Err(err) => panic!("could not run `npm ci` in {}: {err}", dir.display()),
    };
    if !output.status.success() {
        panic!(
            "`npm ci --no-audit --no-fund` in {} failed ({}).\n--- npm stderr ---\n{}\n--- npm stdout ---\n{}",
            dir.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout),
        );
    }
}

fn spawn_server(dir: &Path) -> OidcProvider {
    let mut child = Command::new("node")
        .arg("server.mjs")
        .current_dir(dir)
        .env_remove("OIDC_PROVIDER_PORT")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("spawn `node server.mjs` in {}: {err}", dir.display()));
    let stdin = child.stdin.take().expect("piped stdin");
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");

    let log = Arc::new(Mutex::new(String::new()));
    let forward = std::env::var_os("OIDC_PROVIDER_LOG").is_some_and(|v| !v.is_empty() && v != "0");
    let stderr_reader = spawn_log_reader(stderr, Arc::clone(&log), forward);

    // The first stdout line is the ready line; anything after it is kept as log.
    let (ready_tx, ready_rx) = mpsc::channel::<String>();
    let stdout_log = Arc::clone(&log);
    let _reader = thread::Builder::new()
        .name("oidc-provider-stdout".into())
        .spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = ready_tx.send(line);
            }
            for line in lines.map_while(Result::ok) {
                append_log(&stdout_log, &line, false);
            }
        })
        .expect("spawn the stdout reader thread");

    let line = match ready_rx.recv_timeout(READY_TIMEOUT) {
        Ok(line) => line,
        Err(err) => {
            let _ = child.kill();
            let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
            // The child is gone, so its stderr is at EOF: collect the last words.
            let _ = stderr_reader.join();
            let why = match err {
                mpsc::RecvTimeoutError::Timeout => {
                    format!("was not ready within {READY_TIMEOUT:?}")
                }
                mpsc::RecvTimeoutError::Disconnected => {
                    format!("exited before it was ready ({status})")
                }
            };
            panic!(
                "oidc-provider (node server.mjs in {}) {why}.\n--- server stderr ---\n{}",
                dir.display(),
                lock(&log)
            );
        }
    };

    let ready: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|err| {
        panic!(
            "oidc-provider: bad ready line {line:?}: {err}\n--- server stderr ---\n{}",
            lock(&log)
        )
    });
    let issuer_id = ready["issuer"]
        .as_str()
        .unwrap_or_else(|| panic!("oidc-provider: no issuer in ready line {line:?}"))
        .to_owned();
    let port = ready["port"]
        .as_u64()
        .and_then(|port| u16::try_from(port).ok())
        .unwrap_or_else(|| panic!("oidc-provider: no port in ready line {line:?}"));
    let issuer = Url::parse(&issuer_id)
        .unwrap_or_else(|err| panic!("oidc-provider: bad issuer {issuer_id:?}: {err}"));

    OidcProvider {
        issuer,
        port,
        confidential_client_id: CONFIDENTIAL_CLIENT_ID.to_owned(),
        confidential_client_secret: CONFIDENTIAL_CLIENT_SECRET.to_owned(),
        post_client_id: POST_CLIENT_ID.to_owned(),
        post_client_secret: POST_CLIENT_SECRET.to_owned(),
        public_client_id: PUBLIC_CLIENT_ID.to_owned(),
        redirect_uri: REDIRECT_URI.to_owned(),
        issuer_id,
        child,
        _stdin: stdin,
        log,
    }
}

fn spawn_log_reader(
    stream: impl Read + Send + 'static,
    log: Arc<Mutex<String>>,
    forward: bool,
) -> thread::JoinHandle<()> {
    thread::Builder::new()
        .name("oidc-provider-stderr".into())
        .spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                append_log(&log, &line, forward);
            }
        })
        .expect("spawn the stderr reader thread")
}

fn append_log(log: &Mutex<String>, line: &str, forward: bool) {
    if forward {
        #[allow(clippy::print_stderr)]
        {
            eprintln!("[oidc-provider] {line}");
        }
    }
    let mut log = lock(log);
    log.push_str(line);
    log.push('\n');
    if log.len() > LOG_CAP {
        let mut cut = log.len() - LOG_CAP;
        while !log.is_char_boundary(cut) {
            cut += 1;
        }
        log.drain(..cut);
    }
}

fn lock(log: &Mutex<String>) -> std::sync::MutexGuard<'_, String> {
    log.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, byte| {
            let _ = write!(out, "{byte:02x}");
            out
        })
}

fn excerpt(body: &str) -> &str {
    match body.char_indices().nth(500) {
        Some((end, _)) => &body[..end],
        None => body,
    }
}
