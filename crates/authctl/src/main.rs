//! `authctl`: keeps OAuth 2.0 tokens of several providers and accounts
//! fresh, for people and scripts.
//!
//! Try it offline first: `authctl demo` walks through a legacy Fitbit
//! login, refreshes, the 2026-11-02 retirement (HTTP 410) and the move to
//! Google Health against an in-process emulator, checking every step.
//!
//! # Commands and configuration
//!
//! The README's "authctl" section is the reference: every command and
//! option, every config key, with a test (`readme_reference`) that fails
//! when the code knows one the README does not name. In short: `login`
//! (browser, `--manual` paste, or `--device`), `token`, `get`, `refresh`,
//! `introspect`, `revoke`, `logout`, `status`, `clear-flag`, `keygen`,
//! `rekey`, `emulator` and `demo`; the account defaults to `default`;
//! `--config FILE` (or `AUTHCTL_CONFIG`) names the TOML file; `-v` shows
//! log lines on stderr (`RUST_LOG` overrides it), which are otherwise
//! limited to errors, so that a failure is reported once.
//!
//! # Exit codes
//!
//! 0 ok; 1 unexpected; 2 usage or configuration; 3 a new login is needed
//! (no token stored, the grant is gone, or a login timed out); 4 a
//! temporary failure that outlasted the retries; 5 the provider is retired;
//! 130 interrupted (Ctrl-C). Every error message ends with what to do
//! next, and a suggested command (`run: …`) works when pasted.
//!
//! # Secrets
//!
//! No access or refresh token, authorization code or client secret is ever
//! written to stdout or stderr, except the access token on stdout of
//! `authctl token`. (`authctl emulator` shows the emulator's public demo
//! client secrets, which protect nothing.)

mod cli;
mod commands;
mod config;
mod exit;
mod login;
mod output;
#[cfg(test)]
mod readme_reference;

use std::process::ExitCode;

fn main() -> ExitCode {
    // clap exits with 2 on usage errors, and 0 for --help and --version.
    let cli = cli::Cli::parse_args();
    output::init_tracing(cli.verbose);
    // A valid stored token needs no runtime (see `token_before_runtime`).
    if let cli::Command::Token(args) = &cli.command {
        match commands::token_before_runtime(cli.config.as_deref(), args) {
            Ok(true) => return ExitCode::SUCCESS,
            Ok(false) => {}
            Err(failure) => {
                output::failure(&failure);
                return ExitCode::from(failure.kind().code());
            }
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            output::failure(&exit::Failure::unexpected(
                format!("cannot start the async runtime: {e}"),
                "check the system's thread and memory limits, then try again",
            ));
            return ExitCode::from(exit::ExitKind::Unexpected.code());
        }
    };
    let code = runtime.block_on(commands::run(cli));
    // A blocked stdin read (login --manual after a timeout) must not keep
    // the process alive.
    runtime.shutdown_background();
    ExitCode::from(code)
}
