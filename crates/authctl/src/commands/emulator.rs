//! `authctl emulator`: the local Fitbit and Google servers, standalone, for
//! trying authctl (or another app) without the real providers.
//!
//! stdout carries only ready-to-paste TOML (so `authctl emulator > file`
//! gives a config file); stderr carries the notes for the person. The demo
//! clients' secrets are public constants of the emulator, not credentials:
//! they are shown so the sections work as pasted.

use auth_emulator::{Emulator, demo};

use crate::cli::EmulatorArgs;
use crate::exit::{CliResult, Failure};
use crate::output;

/// The environment variable the printed Fitbit section reads its secret from.
pub(crate) const FITBIT_SECRET_ENV: &str = "AUTHCTL_DEMO_FITBIT_SECRET";
/// The environment variable the printed Google section reads its secret from.
pub(crate) const GOOGLE_SECRET_ENV: &str = "AUTHCTL_DEMO_GOOGLE_SECRET";
/// The last line of the printed config.
pub(crate) const END_MARKER: &str = "# end of the authctl config for the emulator";

/// Runs the emulator until Ctrl-C.
pub(crate) async fn run(args: EmulatorArgs) -> CliResult {
    let emulator = Emulator::builder()
        .with_demo_clients()
        .port(args.port)
        .start()
        .await
        .map_err(|e| {
            Failure::usage(
                e.to_string(),
                "run: authctl emulator --port 0 (any free port), or stop what uses the port",
            )
        })?;
    output::note(&format!(
        "auth emulator (legacy Fitbit + Google OAuth) listening on {}",
        emulator.base_url()
    ));
    output::note(&format!(
        "Demo clients consent automatically as user {}. Their secrets are public demo values; \
         for the config below, run:\n  export {FITBIT_SECRET_ENV}={}\n  export {GOOGLE_SECRET_ENV}={}",
        demo::DEFAULT_USER_ID,
        demo::FITBIT_SERVER_CLIENT_SECRET,
        demo::GOOGLE_CLIENT_SECRET
    ));
    output::note("Paste the TOML on stdout into your authctl config. Press Ctrl-C to stop.");
    output::line(&config_sections(&emulator));
    let waited = tokio::signal::ctrl_c().await;
    emulator.shutdown().await;
    waited.map_err(|e| {
        Failure::unexpected(
            format!("cannot wait for Ctrl-C: {e}"),
            "stop the emulator by ending the process",
        )
    })
}

/// Config sections for the emulator's three demo clients.
fn config_sections(emulator: &Emulator) -> String {
    let fitbit = emulator.fitbit_endpoints();
    let google = emulator.google_endpoints();
    let fitbit_urls = format!(
        "authorize_url = \"{}\"\ntoken_url = \"{}\"\nintrospect_url = \"{}\"\nrevoke_url = \"{}\"",
        fitbit.authorize, fitbit.token, fitbit.introspect, fitbit.revoke
    );
    let google_scopes = [
        auth_fitbit::scopes::ACTIVITY_AND_FITNESS_READONLY,
        auth_fitbit::scopes::SLEEP_READONLY,
    ]
    .map(|s| format!("\"{s}\""))
    .join(", ");
    format!(
        "# authctl config for the auth emulator at {base}\n\
         \n\
         [providers.fitbit]\n\
         kind = \"fitbit\"\n\
         client_id = \"{fitbit_server}\"\n\
         client_secret_env = \"{FITBIT_SECRET_ENV}\"\n\
         app_type = \"server\"\n\
         redirect_uri = \"{redirect}\"\n\
         scopes = [\"activity\", \"heartrate\", \"sleep\"]\n\
         {fitbit_urls}\n\
         \n\
         [providers.fitbit-public]\n\
         kind = \"fitbit\"\n\
         client_id = \"{fitbit_public}\"\n\
         app_type = \"public\"\n\
         redirect_uri = \"{redirect}\"\n\
         scopes = [\"activity\", \"sleep\"]\n\
         {fitbit_urls}\n\
         \n\
         [providers.google-health]\n\
         kind = \"google-health\"\n\
         client_id = \"{google_id}\"\n\
         client_secret_env = \"{GOOGLE_SECRET_ENV}\"\n\
         redirect_uri = \"{redirect}\"\n\
         scopes = [{google_scopes}]\n\
         authorize_url = \"{g_authorize}\"\n\
         token_url = \"{g_token}\"\n\
         revoke_url = \"{g_revoke}\"\n\
         tokeninfo_url = \"{g_tokeninfo}\"\n\
         \n\
         {END_MARKER}",
        base = emulator.base_url(),
        fitbit_server = demo::FITBIT_SERVER_CLIENT_ID,
        fitbit_public = demo::FITBIT_PUBLIC_CLIENT_ID,
        google_id = demo::GOOGLE_CLIENT_ID,
        redirect = demo::REDIRECT_URI,
        g_authorize = google.authorize,
        g_token = google.token,
        g_revoke = google.revoke,
        g_tokeninfo = google.tokeninfo,
    )
}
