//! What the manager and the [`Refresher`] log at info level, alone in
//! this test binary: `tracing` caches per call site whether anyone listens,
//! process-wide, and a test that installs its own subscriber while other
//! tests of the same process hit the same call sites without one can miss
//! events (it did, about one run in five, in `refresher.rs`).

mod support;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use auth_core::testing::FakeProvider;
use auth_core::{Clock, Error, Refresher, TokenKey, TokenManager, TokenStore};
use store_memory::MemoryTokenStore;
use support::{TokioClock, store_token};

const SKEW: Duration = Duration::from_secs(60);
const LEAD: Duration = Duration::from_secs(3 * 60);

/// A writer that keeps what the fmt subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
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

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Self;
    fn make_writer(&'a self) -> Self {
        self.clone()
    }
}

/// Info-level logs tell refresh outcomes, reauthorizations and lease waits,
/// each with its key, and never a token.
#[tokio::test(start_paused = true)]
async fn info_logs_name_the_key_and_no_secret() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(captured.clone())
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);

    let clock = TokioClock::new();
    let start = clock.now();
    let provider = Arc::new(FakeProvider::new("alpha").with_clock(clock.clone()));
    let store = MemoryTokenStore::with_clock(clock.clone());
    let ahead = TokenKey::parse("alpha", "ahead-user").unwrap();
    let refused = TokenKey::parse("alpha", "refused-user").unwrap();
    let waited = TokenKey::parse("alpha", "waiting-user").unwrap();
    store_token(&store, &ahead, 1, start + Duration::from_secs(5 * 60)).await;
    store_token(&store, &refused, 2, start - Duration::from_secs(60)).await;
    store_token(&store, &waited, 3, start - Duration::from_secs(60)).await;
    let manager = TokenManager::builder(Arc::new(store.clone()))
        .provider(provider.clone())
        .clock(clock.clone())
        .refresh_skew(SKEW)
        .build();

    // A lease held elsewhere for a second: the refresh waits for it.
    let lease = store
        .lock(&waited, Duration::from_secs(1))
        .await
        .expect("the lease");
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        drop(lease);
    });
    manager.access_token(&waited).await.unwrap();
    release.await.unwrap();

    provider.script_refresh(auth_core::testing::Scripted::Fail(
        Error::reauthorization_required(None, "invalid_grant"),
    ));
    assert!(manager.access_token(&refused).await.is_err());

    let refresher = Refresher::builder(manager.clone()).lead(LEAD).spawn();
    tokio::time::sleep(Duration::from_secs(5 * 60)).await;
    assert_eq!(refresher.stats().refreshed, 1);
    manager.shutdown(Duration::from_secs(5)).await.unwrap();
    refresher.stopped().await;

    let logs = String::from_utf8(
        captured
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone(),
    )
    .unwrap();
    let line = |needle: &str, key: &TokenKey| {
        assert!(
            logs.lines()
                .any(|l| l.contains(needle) && l.contains(&key.to_string())),
            "no log line with {needle:?} and {key} in:\n{logs}"
        );
    };
    line("waited for the key's lease", &waited);
    line("token refreshed and saved", &waited);
    line("reauthorization required", &refused);
    line("refreshed ahead of expiry", &ahead);
    for secret in [
        "a-1",
        "r-1",
        "a-2",
        "r-2",
        "a-3",
        "r-3",
        "fake-access",
        "fake-refresh",
    ] {
        assert!(
            !logs.contains(&format!("{secret}\"")) && !logs.contains(&format!("{secret} ")),
            "a token ({secret}) in the logs:\n{logs}"
        );
    }
}
