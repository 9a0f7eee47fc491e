//! A helper process for the cross-process test: one `TokenManager` over a
//! shared file store asks for one account's token and prints it.
//!
//! Usage: `refresh_once STORE_DIR EMULATOR_BASE_URL ACCOUNT`. Waits for a
//! line on stdin before asking, so the test can release all processes at
//! once. Exits 0 and prints the access token, or exits 1 with the error.

#![allow(clippy::print_stdout, clippy::print_stderr)] // a test helper that reports on stdio

use std::io::BufRead;
use std::sync::Arc;
use std::time::Duration;

use auth_core::{TokenKey, TokenManager};
use auth_emulator::demo;
use auth_fitbit::FitbitProvider;
use store_file::FileTokenStore;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, store_dir, base, account] = args.as_slice() else {
        eprintln!("usage: refresh_once STORE_DIR EMULATOR_BASE_URL ACCOUNT");
        std::process::exit(2);
    };
    let result = run(store_dir, base, account).await;
    match result {
        Ok(token) => println!("{token}"),
        Err(err) => {
            eprintln!("{err}");
            std::process::exit(1);
        }
    }
}

async fn run(
    store_dir: &str,
    base: &str,
    account: &str,
) -> Result<String, Box<dyn std::error::Error>> {
    let store = FileTokenStore::open(store_dir)?;
    let provider = FitbitProvider::builder(demo::FITBIT_SERVER_CLIENT_ID)
        .client_secret(demo::FITBIT_SERVER_CLIENT_SECRET)
        .base_url(&base.parse()?)?
        .build()?;
    let manager = TokenManager::builder(Arc::new(store))
        .provider(Arc::new(provider))
        .lock_wait(Duration::from_secs(60))
        .build();
    let key = TokenKey::parse("fitbit", account)?;
    // Ready: wait for the go signal so every process races at once.
    println!("ready");
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(manager.access_token(&key).await?.secret().to_owned())
}
