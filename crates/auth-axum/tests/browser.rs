//! The page in a real browser: headless Chromium, driven through
//! chromedriver, against the app and the emulator. Screenshots of each
//! state of the page land in `target/auth-axum-screenshots/`.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`apt-get install
//! chromium chromium-driver`, or run `scripts/test`, which installs them).

mod support;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

use support::{FITBIT, GOOGLE};

const HOW_TO_GET_ONE: &str = "install Chromium and its driver with \
     `apt-get install chromium chromium-driver` (Debian), or run scripts/test, which installs them";

/// chromedriver, started for one test and killed when dropped.
struct Driver {
    _process: Child,
    url: String,
    _profile: tempfile_dir::TempDir,
}

mod tempfile_dir {
    //! A fresh directory for Chromium's profile, removed afterwards.
    pub(crate) struct TempDir(pub(crate) std::path::PathBuf);
    impl TempDir {
        pub(crate) fn new() -> Self {
            let path = std::env::temp_dir().join(format!(
                "auth-axum-chromium-{}-{}",
                std::process::id(),
                rand_suffix()
            ));
            std::fs::create_dir_all(&path).unwrap();
            Self(path)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    fn rand_suffix() -> u128 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    }
}

async fn start_driver() -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut process = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start chromedriver ({e}): {HOW_TO_GET_ONE}"));
    // chromedriver says when it listens.
    let mut lines = BufReader::new(process.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("started successfully") {
                return true;
            }
        }
        false
    })
    .await;
    assert!(
        matches!(ready, Ok(true)),
        "chromedriver did not start: {HOW_TO_GET_ONE}"
    );
    // Keep draining its output so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Driver {
        _process: process,
        url: format!("http://127.0.0.1:{port}"),
        _profile: tempfile_dir::TempDir::new(),
    }
}

async fn open_browser(driver: &Driver) -> Client {
    let binary = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|path| std::path::Path::new(path).exists())
        .unwrap_or_else(|| panic!("no Chromium found: {HOW_TO_GET_ONE}"));
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".to_owned(),
        json!({
            "binary": binary,
            "args": [
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--window-size=1000,1100",
                format!("--user-data-dir={}", driver._profile.0.display()),
            ]
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .unwrap_or_else(|e| {
            panic!("cannot start Chromium through chromedriver ({e}): {HOW_TO_GET_ONE}")
        })
}

/// Where the screenshots go: `target/auth-axum-screenshots/`.
fn screenshot_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("auth-axum-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn screenshot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    std::fs::write(screenshot_dir().join(format!("{name}.png")), png).unwrap();
}

/// Basic accessibility of the current page: every control has an
/// accessible name, the page has a language, a title, one h1, a banner and
/// a main landmark, no positive tabindex (focus follows the reading
/// order), and text on its background keeps a contrast of 4.5:1.
const ACCESSIBILITY: &str = r#"
const problems = [];
const nameOf = el => (el.getAttribute('aria-label')
  || (el.labels && [...el.labels].map(l => l.innerText).join(' '))
  || el.innerText || el.value || el.getAttribute('title') || '').trim();
for (const el of document.querySelectorAll('a[href], button, input:not([type=hidden]), select, textarea')) {
  if (!nameOf(el)) problems.push('no accessible name: ' + el.outerHTML);
}
if (!document.documentElement.lang) problems.push('no lang');
if (!document.title) problems.push('no title');
if (document.querySelectorAll('h1').length !== 1) problems.push('not exactly one h1');
if (!document.querySelector('header')) problems.push('no banner landmark');
if (!document.querySelector('main')) problems.push('no main landmark');
for (const el of document.querySelectorAll('[tabindex]')) {
  if (el.tabIndex > 0) problems.push('positive tabindex: ' + el.outerHTML);
}
const rgb = s => (s.match(/[\d.]+/g) || []).map(Number);
const lum = ([r, g, b]) => {
  const f = c => { c /= 255; return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4); };
  return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
};
const background = el => {
  for (let e = el; e; e = e.parentElement) {
    const c = rgb(getComputedStyle(e).backgroundColor);
    if (c.length === 3 || (c.length === 4 && c[3] > 0)) return c.slice(0, 3);
  }
  return [255, 255, 255];
};
for (const el of document.querySelectorAll('h1, h2, p, dt, dd, a, button, .state')) {
  if (!el.innerText.trim() || el.offsetParent === null) continue;
  const fg = lum(rgb(getComputedStyle(el).color).slice(0, 3));
  const bg = lum(background(el));
  const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
  if (ratio < 4.5) problems.push('contrast ' + ratio.toFixed(2) + ': ' + el.outerHTML.slice(0, 80));
}
return problems;
"#;

async fn check_accessibility(browser: &Client, page: &str) {
    let problems = browser.execute(ACCESSIBILITY, vec![]).await.unwrap();
    assert_eq!(problems, json!([]), "accessibility of {page}");
}

async fn h1(browser: &Client) -> String {
    browser
        .find(Locator::Css("h1"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The `data-state` of a provider's row.
async fn row_state(browser: &Client, provider: &str) -> String {
    browser
        .find(Locator::Css(&format!(
            "section[data-provider=\"{provider}\"]"
        )))
        .await
        .unwrap()
        .attr("data-state")
        .await
        .unwrap()
        .unwrap()
}

/// Clicks `locator` and returns once the browser shows the page it leads
/// to: a click may return before the navigation (a form's POST and its
/// redirect) has replaced the document, so the old document is marked and
/// the wait ends when a complete document without the mark is shown.
async fn click_and_wait(browser: &Client, locator: Locator<'_>, what: &str) {
    browser
        .execute("window.__previousPage = true;", vec![])
        .await
        .unwrap();
    browser
        .find(locator)
        .await
        .unwrap_or_else(|e| panic!("no {what}: {e}"))
        .click()
        .await
        .unwrap();
    let loaded =
        "return window.__previousPage === undefined && document.readyState === 'complete';";
    let waited = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            // While the document is being replaced a script may fail; ask again.
            if let Ok(Value::Bool(true)) = browser.execute(loaded, vec![]).await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "the page after clicking {what} did not load within 20 s"
    );
}

async fn click_link(browser: &Client, text: &str) {
    click_and_wait(browser, Locator::LinkText(text), &format!("link {text:?}")).await;
}

async fn click_button(browser: &Client, text: &str) {
    let xpath = format!("//button[normalize-space()='{text}']");
    click_and_wait(browser, Locator::XPath(&xpath), &format!("button {text:?}")).await;
}

async fn status_message(browser: &Client) -> String {
    browser
        .find(Locator::Css("[role=status]"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_end_to_end_in_chromium() {
    let app = support::start().await;
    let driver = start_driver().await;
    let browser = open_browser(&driver).await;
    let result = run(&app, &browser).await;
    let _ = browser.close().await;
    result.unwrap();
}

async fn run(app: &support::App, browser: &Client) -> Result<(), fantoccini::error::CmdError> {
    // The app's own sign-in, then its accounts page.
    browser
        .goto(&format!("{}/signin?user=alice", app.url))
        .await?;
    assert_eq!(h1(browser).await, "Connected accounts");
    assert_eq!(row_state(browser, FITBIT).await, "not-connected");
    assert_eq!(row_state(browser, GOOGLE).await, "not-connected");
    check_accessibility(browser, "the empty page").await;
    screenshot(browser, "01-nothing-connected").await;

    // The first control in focus order is the skip link.
    let first: Value = browser
        .execute(
            "return document.querySelector('a[href], button').innerText",
            vec![],
        )
        .await?;
    assert_eq!(first, "Skip to main content");

    // Connect two providers; both rows show connected.
    app.emulator.set_next_user("A11CE1");
    click_link(browser, "Connect Fitbit").await;
    assert_eq!(status_message(browser).await, "Connected Fitbit.");
    app.emulator.set_next_user("A11CE1");
    click_link(browser, "Connect Google Health").await;
    assert_eq!(status_message(browser).await, "Connected Google Health.");
    assert_eq!(row_state(browser, FITBIT).await, "connected");
    assert_eq!(row_state(browser, GOOGLE).await, "connected");
    check_accessibility(browser, "the page with two connections").await;
    screenshot(browser, "02-two-connected").await;

    // Disconnect one.
    click_button(browser, "Disconnect Google Health").await;
    assert!(
        status_message(browser)
            .await
            .starts_with("Disconnected Google Health.")
    );
    assert_eq!(row_state(browser, GOOGLE).await, "not-connected");
    assert_eq!(row_state(browser, FITBIT).await, "connected");
    assert!(app.secrets(GOOGLE, "alice").await.is_none());
    screenshot(browser, "03-one-disconnected").await;

    // A denied consent.
    app.emulator.deny_next_authorization();
    click_link(browser, "Connect Google Health").await;
    assert_eq!(h1(browser).await, "Google Health was not connected");
    check_accessibility(browser, "the denied page").await;
    screenshot(browser, "04-consent-denied").await;
    click_link(browser, "Back to your connected accounts").await;
    assert_eq!(row_state(browser, GOOGLE).await, "not-connected");

    // A forged callback.
    let fitbit_before = app.secrets(FITBIT, "alice").await;
    browser
        .goto(&format!(
            "{}/accounts/callback?code=guessed&state=forged",
            app.url
        ))
        .await?;
    assert_eq!(h1(browser).await, "This sign-in cannot be finished here");
    check_accessibility(browser, "the forged callback page").await;
    screenshot(browser, "05-forged-callback").await;
    assert_eq!(app.secrets(FITBIT, "alice").await, fitbit_before);
    click_link(browser, "Back to your connected accounts").await;

    // The move from Fitbit to Google Health: first refused (another Google
    // account, that is another Fitbit user), then done.
    check_accessibility(browser, "the page offering the move").await;
    screenshot(browser, "06-move-offered").await;
    app.emulator.set_next_user("0THER1");
    click_link(browser, "Move to Google Health").await;
    assert_eq!(h1(browser).await, "Your account was not moved");
    let text = browser.find(Locator::Css("main")).await?.text().await?;
    assert!(text.contains("a different Fitbit user"), "{text}");
    check_accessibility(browser, "the refused move").await;
    screenshot(browser, "07-move-refused").await;
    assert!(app.secrets(GOOGLE, "alice").await.is_none());
    assert_eq!(app.secrets(FITBIT, "alice").await, fitbit_before);
    click_link(browser, "Back to your connected accounts").await;

    app.emulator.set_next_user("A11CE1");
    click_link(browser, "Move to Google Health").await;
    assert!(
        status_message(browser)
            .await
            .starts_with("Moved to Google Health.")
    );
    assert_eq!(row_state(browser, GOOGLE).await, "connected");
    screenshot(browser, "08-moved").await;
    assert!(app.secrets(GOOGLE, "alice").await.is_some());

    // No token anywhere in the page's source.
    let source = browser.source().await?;
    for provider in [FITBIT, GOOGLE] {
        let (access, refresh) = app.secrets(provider, "alice").await.unwrap();
        assert!(!source.contains(&access));
        if let Some(refresh) = refresh {
            assert!(!source.contains(&refresh));
        }
    }
    Ok(())
}
