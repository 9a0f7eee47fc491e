//! With the emulator's real logins and refreshes, no issued token's bytes
//! appear in any file of an encrypted file store.

mod support;

use std::path::Path;
use std::sync::Arc;

use auth_core::secrecy::ExposeSecret as _;
use auth_core::{AuthorizeRequest, Callback, TokenManager, TokenSet, TokenStore};
use auth_emulator::{Emulator, demo};
use auth_fitbit::{FitbitProvider, Scope};

/// Every file under `dir`, recursively, with its bytes.
fn all_files(dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            all_files(&path, out);
        } else {
            out.push((
                path.display().to_string(),
                std::fs::read(&path).expect("read"),
            ));
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn remember(issued: &mut Vec<String>, t: &TokenSet) {
    issued.push(t.access_token().expose_secret().to_owned());
    if let Some(r) = t.refresh_token() {
        issued.push(r.expose_secret().to_owned());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_issued_token_is_in_any_file_of_an_encrypted_file_store() {
    let emulator = Emulator::builder()
        .with_demo_clients()
        .start()
        .await
        .expect("the emulator starts");
    let provider = FitbitProvider::builder(demo::FITBIT_SERVER_CLIENT_ID)
        .client_secret(demo::FITBIT_SERVER_CLIENT_SECRET)
        .redirect_uri(demo::REDIRECT_URI)
        .default_scopes([Scope::Sleep, Scope::Activity])
        .base_url(emulator.base_url())
        .expect("endpoints")
        .build()
        .expect("the provider");
    let (dir, store, _inner) = support::file(&[("k1", 1)]);
    let manager = TokenManager::builder(Arc::new(store.clone()))
        .provider(Arc::new(provider))
        .build();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client");

    let mut issued: Vec<String> = Vec::new();
    for user in ["26FWFL", "3XYZ9Q", "7ABCD2"] {
        emulator.set_next_user(user);
        let pending = manager
            .begin_authorization(&"fitbit".parse().expect("id"), AuthorizeRequest::new())
            .expect("begin");
        let location = client
            .get(pending.authorize_url.as_str())
            .send()
            .await
            .expect("authorize")
            .headers()["location"]
            .to_str()
            .expect("a location")
            .to_owned();
        let callback = Callback::parse(&location).expect("a callback");
        let (key, token) = manager
            .complete_authorization(&pending, &callback)
            .await
            .expect("login");
        remember(&mut issued, token.token_set());
        for _ in 0..3 {
            let fresh = manager.refresh(&key).await.expect("refresh");
            remember(&mut issued, fresh.token_set());
        }
        // What the store hands back is the newest pair.
        let stored = store
            .load(&key)
            .await
            .expect("load")
            .expect("stored")
            .token
            .expect("a token");
        assert_eq!(
            stored.access_token().expose_secret(),
            issued[issued.len() - 2]
        );
    }
    assert_eq!(issued.len(), 3 * 4 * 2);

    let mut files = Vec::new();
    all_files(dir.path(), &mut files);
    assert!(files.len() >= 3, "{files:?}");
    for (path, bytes) in &files {
        for token in &issued {
            assert!(
                !contains(bytes, token.as_bytes()),
                "an issued token is in {path} in clear"
            );
        }
    }
    // And the files are what the wrapper wrote: envelopes and markers.
    let marked = files
        .iter()
        .filter(|(_, b)| {
            contains(b, b"\"tk1.k1.") && contains(b, store_encrypted::MARKER.as_bytes())
        })
        .count();
    assert_eq!(marked, 3);
    emulator.shutdown().await;
}
