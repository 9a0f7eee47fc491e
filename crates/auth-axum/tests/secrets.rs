//! No token, code or state in any page, JSON body, header or log line,
//! through a whole connection of two providers. Alone in its binary, so it
//! can capture every log line of the process.

mod support;

use std::sync::{Arc, Mutex, PoisonError};

use support::{Browser, FITBIT, GOOGLE};

#[tokio::test]
async fn connecting_two_providers_shows_both_connected_and_never_a_token() {
    // Every log line of this process, at every level: this test is alone
    // in its binary, so the subscriber can be the global one.
    let logs = LogBuffer::default();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(logs.clone())
        .with_ansi(false)
        .init();

    let app = support::start().await;
    let browser = Browser::new();
    browser.sign_in(&app.url, "alice").await;
    app.emulator.set_next_user("A11CE1");
    let page = browser
        .get(&format!("{}/accounts/connect/{FITBIT}", app.url))
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.url.path(), "/accounts", "back on the page");
    assert!(page.body.contains("Connected Fitbit."), "{}", page.body);
    app.emulator.set_next_user("A11CE1");
    let page = browser
        .get(&format!("{}/accounts/connect/{GOOGLE}", app.url))
        .await;
    assert!(
        page.body.contains("Connected Google Health."),
        "{}",
        page.body
    );
    assert_eq!(page.body.matches("data-state=\"connected\"").count(), 2);
    assert!(
        page.body.contains("Disconnect Fitbit") && page.body.contains("Disconnect Google Health")
    );

    let (status, _, json) = browser
        .fetch(&format!("{}/accounts/connections", app.url))
        .await;
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["user"], "alice");
    let rows = json["connections"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for row in rows {
        assert_eq!(row["state"], "connected", "{row}");
        assert_eq!(row["connected"], true);
        assert!(row["expires_at"].is_string());
        assert!(!row["scopes"].as_array().unwrap().is_empty());
    }

    // No secret in any page, JSON body, header, or log line.
    let mut secrets = Vec::new();
    for provider in [FITBIT, GOOGLE] {
        let (access, refresh) = app.secrets(provider, "alice").await.unwrap();
        secrets.push(access);
        secrets.extend(refresh);
    }
    let seen = browser.seen.all();
    let logged = logs.text();
    assert!(
        logged.contains("account connected"),
        "the logs were captured:\n{logged}"
    );
    for secret in &secrets {
        assert!(
            !seen.contains(secret.as_str()),
            "a token reached the browser"
        );
        assert!(!logged.contains(secret.as_str()), "a token was logged");
    }
    // Nor the codes and states of the callbacks, which travel only in the
    // provider's redirect.
    let mut checked = 0;
    for url in seen.lines().filter_map(|l| l.strip_prefix("location: ")) {
        if let Ok(url) = url::Url::parse(url) {
            for (name, value) in url.query_pairs() {
                if name == "code" || name == "state" {
                    assert!(!logged.contains(value.as_ref()), "a {name} was logged");
                    checked += 1;
                }
            }
        }
    }
    assert!(
        checked >= 6,
        "two authorize URLs (state) and two callbacks (code, state)"
    );
}

/// A log sink.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl LogBuffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }
}

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}
