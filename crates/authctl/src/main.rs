//! `authctl`: keeps OAuth 2.0 tokens of several providers and accounts
//! fresh, for people and scripts.
//!
//! Try it offline first: `authctl demo` walks through a legacy Fitbit
//! login, refreshes, the 2026-11-02 retirement (HTTP 410) and the move to
//! Google Health against an in-process emulator, checking every step.
//!
//! # Commands
//!
//! The account defaults to `default`; `--account ID` picks another.
//!
//! | command | what it does |
//! |---|---|
//! | `login PROVIDER [--account ID] [--scope S]... [--no-browser] [--manual] [--timeout SECS]` | prints the authorize URL alone on a line of stderr, opens a browser (unless `--no-browser` or `--manual`), receives the callback on the loopback redirect URI (or, with `--manual`, reads the redirected URL from stdin), checks the state, exchanges the code, stores the token and prints a summary |
//! | `token PROVIDER [--account ID]` | prints a valid access token and a newline on stdout, and nothing else, refreshing it first if needed |
//! | `refresh PROVIDER [--account ID]` | refreshes now and prints the summary |
//! | `introspect PROVIDER [--account ID] [--json]` | the server's view of the stored access token |
//! | `revoke PROVIDER [--account ID]` | revokes at the server, then deletes locally |
//! | `logout PROVIDER [--account ID]` | deletes locally only |
//! | `status [--json]` | lists stored tokens: provider, account, user_id, scopes, expiry, whether a new login is needed |
//! | `keygen` | prints a new encryption key entry `KID:BASE64` (a random id and a random 32-byte key) on stdout, and nothing else |
//! | `rekey [--require-encrypted]` | re-encrypts every stored token with the primary key, encrypts plaintext ones, and prints the counts (never a secret); with `--require-encrypted` exits 1 if plaintext tokens remain |
//! | `emulator [--port P]` | runs the local Fitbit + Google emulator (default port 8975) and prints config sections for its demo clients |
//! | `demo` | the whole story, offline; exits 0 only if every step behaved as expected |
//!
//! Global options: `--config FILE` (or `AUTHCTL_CONFIG`), `-v` (repeatable;
//! `RUST_LOG` overrides it). Logs go to stderr.
//!
//! # Configuration
//!
//! A TOML file: `--config FILE`, else `AUTHCTL_CONFIG`, else
//! `config.toml` in the platform config directory (for example
//! `~/.config/authctl/config.toml`). Without a file only `status`,
//! `logout`, `emulator` and `demo` have something to do.
//!
//! ```toml
//! [store]
//! path = "~/.local/share/authctl/tokens"   # AUTHCTL_STORE overrides it
//! # or, for tokens shared by several hosts (not both):
//! # url = "postgres://app@db.example:5432/app?sslmode=verify-full&sslrootcert=/etc/ssl/db-ca.pem"
//!
//! [providers.fitbit]                        # the NAME is the provider id
//! kind = "fitbit"                           # fitbit | google-health | oauth2
//! client_id = "23ABCD"
//! client_secret_env = "FITBIT_CLIENT_SECRET"
//! app_type = "server"                       # server (default) | public
//! redirect_uri = "http://127.0.0.1:8976/callback"
//! scopes = ["activity", "heartrate", "sleep"]
//! ```
//!
//! `AUTHCTL_STORE` may be a directory or a `postgres://` URL. A PostgreSQL
//! store's tables are created on first use; messages name it as
//! `host:port/db`, never with its password. An unreachable database exits
//! 4, a malformed URL 2.
//!
//! To encrypt the tokens at rest, name the keys in `[store]`:
//! `encryption_keys_env = "NAME"` (a variable holding `KID:BASE64,…`, the
//! first key encrypting) or `encryption_keys_file = "PATH"` (the same
//! entries, one per line; refused if others can read it). Plaintext tokens
//! are read and encrypted on their next save unless `accept_plaintext =
//! false`. `status` and `logout` work without the keys; every other command
//! on a token needs them, and a missing or wrong key exits 2 naming the key
//! id and where the keys come from, changing nothing.
//!
//! See the README for every key. Unknown keys, missing fields and bad URLs
//! are refused with the file, the provider and the field named (exit 2).
//!
//! # Exit codes
//!
//! 0 ok; 1 unexpected; 2 usage or configuration; 3 a new login is needed
//! (no token stored, the grant is gone, or a login timed out); 4 a
//! temporary failure that outlasted the retries; 5 the provider is retired.
//! Every error message ends with what to do next.
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
