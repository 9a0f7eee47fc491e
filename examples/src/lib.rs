//! Runnable examples for app builders. This library is empty on purpose: the
//! examples are the point, and each is a single file to read and copy.
//!
//! Every example runs offline against the in-process emulator
//! (`auth-emulator`), needs no input, and exits 0 only if what it shows
//! actually happened. None of them ever prints a token.
//!
//! | Example | Run | What it shows |
//! |---|---|---|
//! | `quickstart` | `cargo run -p examples --example quickstart` | a `TokenManager` with the Fitbit provider and the file store: login, access token, forced refresh |
//! | `custom_provider` | `cargo run -p examples --example custom_provider` | a new provider from `auth-oauth2` hooks, against a small server with its own error body |
//! | `custom_store` | `cargo run -p examples --example custom_store` | a `TokenStore` written from scratch that passes the conformance suite, then drives a manager |
//! | `web_app` | `cargo run -p examples --example web_app` | an axum app serving many users with Fitbit and Google Health side by side (`-- --serve` keeps it running) |
//! | `migration` | `cargo run -p examples --example migration` | the dual-provider bridge: users moved from legacy Fitbit to Google Health one at a time |
//!
//! `cargo test -p examples` builds and runs each of them (the test
//! `run_examples`), checking its exit status and that it printed no secret.
