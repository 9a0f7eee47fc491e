//! Running the emulator as a program, for people pointing their own app at
//! it: demo clients, a printed summary, and Ctrl-C to stop. This is the only
//! module that prints.

use crate::demo;
use crate::error::EmulatorError;
use crate::providers::catalogue::PROFILE_CLIENT_SECRET;
use crate::server::emulator::Emulator;
use crate::server::profiles::ProfileEmulator;

/// Runs catalogue profiles (`all`: every entry) on 127.0.0.1:`port`, prints
/// each one's endpoints and the client credentials, and serves until Ctrl-C.
///
/// # Errors
///
/// [`EmulatorError::UnknownProfile`] for a name the catalogue lacks,
/// [`EmulatorError::Bind`] when the port cannot be bound, and
/// [`EmulatorError::Signal`] when Ctrl-C cannot be awaited.
pub async fn run_standalone_profiles(port: u16, names: &[String]) -> Result<(), EmulatorError> {
    let mut builder = ProfileEmulator::builder().port(port);
    for name in names {
        builder = if name == "all" {
            builder.whole_catalogue()
        } else {
            builder.catalogue_profile(name)?
        };
    }
    let emulator = builder.start().await?;
    print_profiles(&emulator);
    let waited = tokio::signal::ctrl_c().await;
    drop(emulator);
    waited.map_err(EmulatorError::Signal)
}

#[allow(
    clippy::print_stdout,
    reason = "the standalone server reports its address and demo credentials to the person who started it"
)]
fn print_profiles(emulator: &ProfileEmulator) {
    println!("auth emulator listening on {}", emulator.base_url());
    for name in emulator.names() {
        let Some(spec) = emulator.spec(&name) else {
            continue;
        };
        println!();
        println!("{name}: {}", spec.title);
        for (what, url) in spec.urls() {
            println!("  {what:<21} {url}");
        }
        println!(
            "  client_id={}  client_secret={PROFILE_CLIENT_SECRET}  ({})",
            emulator.client_id(&name),
            spec.client.auth.as_str()
        );
    }
    println!();
    println!("consent is automatic; any loopback redirect URI is accepted; press Ctrl-C to stop");
}

/// Runs an emulator with the demo clients on 127.0.0.1:`port` (0 = any free
/// port), prints its base URL, endpoints and the demo credentials to stdout,
/// and serves until Ctrl-C, then shuts down gracefully.
///
/// # Errors
///
/// [`EmulatorError::Bind`] when the port cannot be bound, and
/// [`EmulatorError::Signal`] when Ctrl-C cannot be awaited.
pub async fn run_standalone(port: u16) -> Result<(), EmulatorError> {
    let emulator = Emulator::builder()
        .with_demo_clients()
        .port(port)
        .start()
        .await?;
    print_summary(&emulator);
    let waited = tokio::signal::ctrl_c().await;
    emulator.shutdown().await;
    waited.map_err(EmulatorError::Signal)
}

#[allow(
    clippy::print_stdout,
    reason = "the standalone server reports its address and demo credentials to the person who started it"
)]
fn print_summary(emulator: &Emulator) {
    let fitbit = emulator.fitbit_endpoints();
    let google = emulator.google_endpoints();
    println!("auth emulator listening on {}", emulator.base_url());
    println!();
    println!("Legacy Fitbit OAuth 2.0");
    println!("  authorize   {}", fitbit.authorize);
    println!("  token       {}", fitbit.token);
    println!("  introspect  {}", fitbit.introspect);
    println!("  revoke      {}", fitbit.revoke);
    println!(
        "  server app  client_id={}  client_secret={}  (HTTP Basic)",
        demo::FITBIT_SERVER_CLIENT_ID,
        demo::FITBIT_SERVER_CLIENT_SECRET
    );
    println!(
        "  public app  client_id={}  (no secret; use PKCE)",
        demo::FITBIT_PUBLIC_CLIENT_ID
    );
    println!();
    println!("Google OAuth 2.0 (Google Health API)");
    println!("  discovery   {}", google.discovery);
    println!("  authorize   {}", google.authorize);
    println!("  token       {}", google.token);
    println!("  revoke      {}", google.revoke);
    println!("  tokeninfo   {}", google.tokeninfo);
    println!(
        "  web client  client_id={}  client_secret={}",
        demo::GOOGLE_CLIENT_ID,
        demo::GOOGLE_CLIENT_SECRET
    );
    println!();
    println!(
        "redirect URI registered for every demo client: {}",
        demo::REDIRECT_URI
    );
    println!(
        "consent is automatic (user {}); press Ctrl-C to stop",
        demo::DEFAULT_USER_ID
    );
}
