//! The callback finishes the code exchange and the save even when the
//! browser closes the connection and axum drops the handler.

mod support;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use auth_core::async_trait;
use auth_core::{
    AuthorizeRequest, Callback, Introspection, PendingAuthorization, ProviderId, TokenEvent,
    TokenProvider, TokenSet,
};
use axum::extract::Request;
use axum::middleware::Next;
use tokio::io::AsyncWriteExt as _;
use tokio::sync::{Notify, Semaphore, oneshot};

use support::{Browser, FITBIT};

/// A provider whose code exchange says when it starts and then waits to
/// be let through.
#[derive(Debug)]
struct Gated {
    inner: Arc<dyn TokenProvider>,
    entered: Arc<Notify>,
    release: Arc<Semaphore>,
}

#[async_trait]
impl TokenProvider for Gated {
    fn id(&self) -> &ProviderId {
        self.inner.id()
    }
    fn authorize(&self, request: AuthorizeRequest) -> auth_core::Result<PendingAuthorization> {
        self.inner.authorize(request)
    }
    async fn exchange_code(
        &self,
        pending: &PendingAuthorization,
        callback: &Callback,
    ) -> auth_core::Result<TokenSet> {
        self.entered.notify_one();
        self.release.acquire().await.expect("open").forget();
        self.inner.exchange_code(pending, callback).await
    }
    async fn refresh(&self, current: &TokenSet) -> auth_core::Result<TokenSet> {
        self.inner.refresh(current).await
    }
    async fn revoke(&self, token: &TokenSet) -> auth_core::Result<()> {
        self.inner.revoke(token).await
    }
    async fn introspect(&self, token: &TokenSet) -> auth_core::Result<Introspection> {
        self.inner.introspect(token).await
    }
    fn account_for(&self, token: &TokenSet) -> Option<auth_core::AccountId> {
        self.inner.account_for(token)
    }
}

/// Says, when a callback's handler future ends, whether it completed.
struct Watch {
    completed: bool,
    tell: Option<oneshot::Sender<bool>>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(tell) = self.tell.take() {
            let _ = tell.send(self.completed);
        }
    }
}

/// Fails the test instead of hanging when a signal never comes.
async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not happen within 20 s"))
}

#[tokio::test]
async fn a_callback_whose_browser_goes_away_still_saves_the_grant() {
    let entered = Arc::new(Notify::new());
    let release = Arc::new(Semaphore::new(0));
    let slot: Arc<Mutex<Option<oneshot::Sender<bool>>>> = Arc::default();
    let (tell, ended) = oneshot::channel();
    *slot.lock().unwrap() = Some(tell);
    let (gate_entered, gate_release, watch_slot) = (entered.clone(), release.clone(), slot.clone());
    let app = support::start_with(support::Options {
        wrap_fitbit: Some(Box::new(move |inner| {
            Arc::new(Gated {
                inner,
                entered: gate_entered,
                release: gate_release,
            })
        })),
        layer: Some(Box::new(move |router| {
            router.layer(axum::middleware::from_fn(
                move |request: Request, next: Next| {
                    let slot = watch_slot.clone();
                    async move {
                        let tell = if request.uri().path().ends_with("/callback") {
                            slot.lock().unwrap_or_else(PoisonError::into_inner).take()
                        } else {
                            None
                        };
                        let mut watch = Watch {
                            completed: false,
                            tell,
                        };
                        let response = next.run(request).await;
                        watch.completed = true;
                        response
                    }
                },
            ))
        })),
        ..Default::default()
    })
    .await;
    let mut events = app.manager.subscribe();
    let browser = Browser::new();
    browser.sign_in(&app.url, "jill").await;
    let callback = browser
        .callback_url(&app.url, &format!("/accounts/connect/{FITBIT}"))
        .await;

    // The browser sends the callback by hand, then goes away while the
    // code exchange is in progress.
    let cookies = {
        use reqwest::cookie::CookieStore as _;
        browser
            .jar
            .cookies(&callback)
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned()
    };
    let mut connection = tokio::net::TcpStream::connect(callback.authority())
        .await
        .unwrap();
    let request = format!(
        "GET {}?{} HTTP/1.1\r\nHost: {}\r\nCookie: {cookies}\r\n\r\n",
        callback.path(),
        callback.query().unwrap(),
        callback.authority()
    );
    connection.write_all(request.as_bytes()).await.unwrap();
    within("the code exchange", entered.notified()).await;
    drop(connection);
    let completed = within("the end of the callback handler", ended)
        .await
        .unwrap();
    assert!(!completed, "axum dropped the handler before it answered");
    assert!(app.secrets(FITBIT, "jill").await.is_none(), "not saved yet");

    // The exchange goes on in its own task and the grant is saved.
    release.add_permits(1);
    let key = app.key(FITBIT, "jill");
    within("the save", async {
        loop {
            match events.recv().await.unwrap() {
                TokenEvent::Authorized { key: saved } if saved == key => break,
                _ => {}
            }
        }
    })
    .await;
    assert!(
        app.secrets(FITBIT, "jill").await.is_some(),
        "the grant is stored"
    );
    assert_eq!(app.emulator.counters().fitbit_token_authorization_code, 1);
    // The next page load shows it connected.
    let page = browser.get(&format!("{}/accounts", app.url)).await;
    assert!(
        page.body
            .contains("data-provider=\"fitbit\" data-state=\"connected\""),
        "{}",
        page.body
    );
}
