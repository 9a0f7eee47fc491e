//! `authctl emulator`: the local Fitbit and Google servers, standalone, for
//! trying authctl (or another app) without the real providers.
//!
//! stdout carries only ready-to-paste TOML (so `authctl emulator > file`
//! gives a config file); stderr carries the notes for the person. The demo
//! clients' secrets are public constants of the emulator, not credentials:
//! they are shown so the sections work as pasted.

use auth_emulator::profile::{PROFILE_CLIENT_SECRET, ProfileEmulator};
use auth_emulator::{Emulator, Endpoint, demo};

use crate::cli::EmulatorArgs;
use crate::exit::{CliResult, Failure};
use crate::output;

/// The environment variable the printed Fitbit section reads its secret from.
pub(crate) const FITBIT_SECRET_ENV: &str = "AUTHCTL_DEMO_FITBIT_SECRET";
/// The environment variable the printed Google section reads its secret from.
pub(crate) const GOOGLE_SECRET_ENV: &str = "AUTHCTL_DEMO_GOOGLE_SECRET";
/// The environment variable the printed catalogue sections read their
/// secret from.
pub(crate) const PROFILE_SECRET_ENV: &str = "AUTHCTL_EMULATOR_SECRET";
/// The store the printed config uses, next to the config file: never the
/// user's real store.
pub(crate) const STORE_DIR: &str = "emulator-tokens";
/// The prefix of the printed sections' names, so they never clash with a
/// real provider's section.
pub(crate) const SECTION_PREFIX: &str = "emulator-";
/// The last line of the printed config.
pub(crate) const END_MARKER: &str = "# end of the authctl config for the emulator";

/// Runs the emulator until Ctrl-C.
pub(crate) async fn run(args: EmulatorArgs) -> CliResult {
    if !args.providers.is_empty() {
        return run_profiles(args).await;
    }
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
    output::note(HOW_TO_USE);
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

/// What to do with the printed config.
const HOW_TO_USE: &str = "Save the TOML on stdout as a config of its own: \
     authctl emulator > emulator.toml, then use it with AUTHCTL_CONFIG=emulator.toml \
     (for example: AUTHCTL_CONFIG=emulator.toml authctl login emulator-fitbit). \
     Press Ctrl-C to stop.";

/// The head of every printed config: where to save it, and its own store.
fn config_head(base: &url::Url, apis: &[String]) -> String {
    let apis: String = apis.iter().map(|a| format!("#   {a}\n")).collect();
    format!(
        "# authctl config for the auth emulator at {base}\n\
         # Save it and use it on its own:\n\
         #   authctl emulator > emulator.toml\n\
         #   AUTHCTL_CONFIG=emulator.toml authctl login NAME\n\
         # The emulator's APIs, for authctl get:\n\
         {apis}\n\
         [store]\n\
         path = \"{STORE_DIR}\"\n"
    )
}

/// Runs catalogue profiles until Ctrl-C.
async fn run_profiles(args: EmulatorArgs) -> CliResult {
    let mut builder = ProfileEmulator::builder().port(args.port);
    for name in &args.providers {
        builder = builder.catalogue_profile(name).map_err(|e| {
            Failure::usage(
                e.to_string(),
                "run: authctl providers (to list the entries)",
            )
        })?;
    }
    let emulator = builder.start().await.map_err(|e| {
        Failure::usage(
            e.to_string(),
            "run: authctl emulator --port 0 (any free port), or stop what uses the port",
        )
    })?;
    output::note(&format!(
        "auth emulator ({}) listening on {}",
        args.providers.join(", "),
        emulator.base_url()
    ));
    output::note(&format!(
        "Its clients consent automatically. The client secret is a public demo value; for \
         the config below, run:\n  export {PROFILE_SECRET_ENV}={PROFILE_CLIENT_SECRET}"
    ));
    output::note(&HOW_TO_USE.replace(
        "emulator-fitbit",
        &format!("{SECTION_PREFIX}{}", args.providers[0]),
    ));
    output::line(&profile_sections(&emulator));
    let waited = tokio::signal::ctrl_c().await;
    drop(emulator);
    waited.map_err(|e| {
        Failure::unexpected(
            format!("cannot wait for Ctrl-C: {e}"),
            "stop the emulator by ending the process",
        )
    })
}

/// Config sections for the catalogue profiles an emulator serves.
pub(crate) fn profile_sections(emulator: &ProfileEmulator) -> String {
    let names = emulator.names();
    let apis: Vec<String> = names
        .iter()
        .filter_map(|n| emulator.resource_url(n).map(|u| u.to_string()))
        .collect();
    let mut text = config_head(emulator.base_url(), &apis);
    for name in &names {
        let spec = emulator.spec(name).expect("a served profile");
        let e = &spec.endpoints;
        let mut section = format!(
            "\n[providers.{SECTION_PREFIX}{name}]\n\
             kind = \"{name}\"\n\
             client_id = \"{}\"\n",
            emulator.client_id(name)
        );
        if spec.client.auth != auth_catalogue::ClientAuthMethod::None {
            section.push_str(&format!("client_secret_env = \"{PROFILE_SECRET_ENV}\"\n"));
        }
        section.push_str(&format!("redirect_uri = \"{}\"\n", demo::REDIRECT_URI));
        if !spec.endpoints.placeholders.is_empty() {
            let values: Vec<String> = spec
                .endpoints
                .placeholders
                .iter()
                .map(|p| format!("{p} = \"{p}.emulated\""))
                .collect();
            section.push_str(&format!("placeholders = {{ {} }}\n", values.join(", ")));
        }
        section.push_str(&format!(
            "authorize_url = \"{}\"\ntoken_url = \"{}\"\n",
            e.authorize, e.token
        ));
        for (key, url) in [
            ("revoke_url", &e.revoke),
            ("introspect_url", &e.introspect),
            ("device_authorization_url", &e.device_authorization),
        ] {
            if let Some(url) = url {
                section.push_str(&format!("{key} = \"{url}\"\n"));
            }
        }
        section.push_str(&format!(
            "api_base_urls = [{}]\n",
            e.api_base_urls
                .iter()
                .map(|u| format!("\"{u}\""))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        text.push_str(&section);
    }
    text.push_str(&format!("\n{END_MARKER}"));
    text
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
    let apis = [
        emulator.endpoint_url(Endpoint::FitbitProfile).to_string(),
        emulator
            .endpoint_url(Endpoint::GoogleHealthIdentity)
            .to_string(),
    ];
    format!(
        "{head}\n\
         [providers.{SECTION_PREFIX}fitbit]\n\
         kind = \"fitbit\"\n\
         client_id = \"{fitbit_server}\"\n\
         client_secret_env = \"{FITBIT_SECRET_ENV}\"\n\
         app_type = \"server\"\n\
         redirect_uri = \"{redirect}\"\n\
         scopes = [\"activity\", \"heartrate\", \"profile\", \"sleep\"]\n\
         {fitbit_urls}\n\
         \n\
         [providers.{SECTION_PREFIX}fitbit-public]\n\
         kind = \"fitbit\"\n\
         client_id = \"{fitbit_public}\"\n\
         app_type = \"public\"\n\
         redirect_uri = \"{redirect}\"\n\
         scopes = [\"activity\", \"profile\", \"sleep\"]\n\
         {fitbit_urls}\n\
         \n\
         [providers.{SECTION_PREFIX}google-health]\n\
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
        head = config_head(emulator.base_url(), &apis),
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
