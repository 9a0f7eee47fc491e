//! The command line, as clap sees it. Parsing only: no I/O happens here.

use std::path::PathBuf;

use clap::{ArgAction, Args, CommandFactory as _, FromArgMatches as _, Parser, Subcommand};

/// The account used when `--account` is not given.
pub(crate) const DEFAULT_ACCOUNT: &str = "default";

const AFTER_HELP: &str = "\
Exit codes: 0 ok, 1 unexpected, 2 usage or configuration, 3 login required \
(no token, or the grant is gone), 4 temporary failure (network, 5xx, 429) after retries, \
5 provider retired, 130 interrupted (Ctrl-C).

Try it offline first: authctl demo";

/// Keeps OAuth 2.0 tokens of several providers and accounts fresh, for
/// people and scripts.
#[derive(Debug, Parser)]
#[command(name = "authctl", version, about, after_help = AFTER_HELP)]
pub(crate) struct Cli {
    /// The config file (TOML). Default: the platform config directory,
    /// for example ~/.config/authctl/config.toml.
    #[arg(long, global = true, env = "AUTHCTL_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,

    /// More log output on stderr (-v info, -vv debug, -vvv trace); RUST_LOG
    /// overrides it.
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub(crate) verbose: u8,

    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

impl Cli {
    /// [`Parser::parse`], except that clap's command tree (every
    /// subcommand with its arguments) is not dropped: the process ends
    /// soon, and freeing the tree costs a quarter of what building it does,
    /// on every `authctl token` (BENCHMARKS.md, section 5). Usage errors,
    /// `--help` and `--version` exit as `parse` makes them.
    pub(crate) fn parse_args() -> Self {
        let mut command = Self::command();
        let parsed = match command.try_get_matches_from_mut(std::env::args_os()) {
            Ok(mut matches) => {
                Self::from_arg_matches_mut(&mut matches).map_err(|e| e.format(&mut command))
            }
            Err(e) => Err(e),
        };
        std::mem::forget(command);
        parsed.unwrap_or_else(|e| e.exit())
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Log in: send the browser to the provider, receive the callback on
    /// the loopback redirect URI, store the token.
    Login(LoginArgs),
    /// Print a valid access token (refreshing it if needed) and nothing else.
    Token(KeyArgs),
    /// Make an authenticated GET and print the response body: the token
    /// goes only to URL's origin (https, or http on loopback), and a
    /// rejected token is refreshed once and the request retried once.
    Get(GetArgs),
    /// Refresh the token now and print a summary.
    Refresh(KeyArgs),
    /// Ask the provider what it knows about the stored access token.
    Introspect(IntrospectArgs),
    /// Revoke the grant at the provider, then delete the token locally.
    Revoke(KeyArgs),
    /// Delete the token locally only.
    Logout(KeyArgs),
    /// List stored tokens (never their secrets).
    Status(StatusArgs),
    /// Run the local emulator of the Fitbit and Google servers (or, with
    /// --provider, of catalogue entries), and print a config for it.
    Emulator(EmulatorArgs),
    /// List the provider catalogue, or show one entry with its facts and
    /// their sources.
    Providers(ProvidersArgs),
    /// Print a new encryption key entry (KID:BASE64) for the `[store]`
    /// `encryption_keys_env` or `encryption_keys_file`.
    Keygen,
    /// Re-encrypt every stored token with the primary key (and encrypt
    /// plaintext ones); prints counts, never a secret.
    Rekey(RekeyArgs),
    /// Walk through the whole story offline against an in-process emulator:
    /// Fitbit login, refresh, the 410 retirement, the move to Google Health.
    Demo,
    /// Clear a reauthorization flag you know is wrong (and any refresh
    /// cooldown), so the next `token` or `refresh` asks the server again.
    ClearFlag(KeyArgs),
}

/// A provider and an account.
#[derive(Debug, Args)]
pub(crate) struct KeyArgs {
    /// The provider: the NAME of a [providers.NAME] section of the config.
    pub(crate) provider: String,

    /// The account the token belongs to.
    #[arg(long, value_name = "ID", default_value = DEFAULT_ACCOUNT)]
    pub(crate) account: String,
}

/// `authctl get`.
#[derive(Debug, Args)]
pub(crate) struct GetArgs {
    /// The provider: the NAME of a [providers.NAME] section of the config.
    pub(crate) provider: String,

    /// The URL to GET; the token is sent to its origin only.
    pub(crate) url: String,

    /// The account the token belongs to.
    #[arg(long, value_name = "ID", default_value = DEFAULT_ACCOUNT)]
    pub(crate) account: String,
}

/// `authctl login`.
#[derive(Debug, Args)]
pub(crate) struct LoginArgs {
    /// Which provider and account.
    #[command(flatten)]
    pub(crate) key: KeyArgs,

    /// A scope to request instead of the configured ones; repeat for more.
    #[arg(long = "scope", value_name = "S")]
    pub(crate) scopes: Vec<String>,

    /// Do not open a browser; only print the URL.
    #[arg(long)]
    pub(crate) no_browser: bool,

    /// Read the URL the browser was redirected to from stdin instead of
    /// listening on the redirect URI (for remote shells).
    #[arg(long, conflicts_with = "device")]
    pub(crate) manual: bool,

    /// Log in with the device flow (RFC 8628): print a code and a URL to
    /// open on any device (a phone will do), and wait while the person
    /// approves there. For `kind = "oauth2"` providers whose server has a
    /// device authorization endpoint.
    #[arg(long)]
    pub(crate) device: bool,

    /// Give up when the callback has not come back within SECS seconds.
    #[arg(long, value_name = "SECS")]
    pub(crate) timeout: Option<u64>,
}

/// `authctl introspect`.
#[derive(Debug, Args)]
pub(crate) struct IntrospectArgs {
    /// Which provider and account.
    #[command(flatten)]
    pub(crate) key: KeyArgs,

    /// Print JSON instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

/// `authctl status`.
#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

/// `authctl rekey`.
#[derive(Debug, Args)]
pub(crate) struct RekeyArgs {
    /// Exit non-zero when plaintext tokens remain afterwards.
    #[arg(long)]
    pub(crate) require_encrypted: bool,
}

/// `authctl emulator`.
#[derive(Debug, Args)]
pub(crate) struct EmulatorArgs {
    /// The port on 127.0.0.1 (0: any free port).
    #[arg(long, value_name = "P", default_value_t = 8975)]
    pub(crate) port: u16,

    /// Play this catalogue entry instead of Fitbit and Google (repeat it to
    /// serve several).
    #[arg(long = "provider", value_name = "NAME")]
    pub(crate) providers: Vec<String>,
}

/// `authctl providers`.
#[derive(Debug, Args)]
pub(crate) struct ProvidersArgs {
    /// `show NAME` prints one entry.
    #[command(subcommand)]
    pub(crate) action: Option<ProvidersAction>,
}

/// What `authctl providers` does besides listing.
#[derive(Debug, Subcommand)]
pub(crate) enum ProvidersAction {
    /// Print one entry: its endpoints, client authentication, PKCE, scopes,
    /// refresh rules and quirks, and the sources of the facts.
    Show {
        /// The entry's name (the `kind` of a [providers.NAME] section).
        name: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn account_defaults_to_default() {
        let cli = Cli::try_parse_from(["authctl", "token", "fitbit"]).unwrap();
        let Command::Token(args) = cli.command else {
            panic!("not token")
        };
        assert_eq!(args.account, DEFAULT_ACCOUNT);
    }

    #[test]
    fn scopes_repeat() {
        let cli = Cli::try_parse_from([
            "authctl", "login", "fitbit", "--scope", "sleep", "--scope", "activity",
        ])
        .unwrap();
        let Command::Login(args) = cli.command else {
            panic!("not login")
        };
        assert_eq!(args.scopes, ["sleep", "activity"]);
    }

    #[test]
    fn help_lists_every_exit_code() {
        let help = Cli::command().render_long_help().to_string();
        for code in [
            "0 ok",
            "1 unexpected",
            "2 usage",
            "3 login required",
            "4 temporary",
            "5 provider retired",
            "130 interrupted",
        ] {
            assert!(help.contains(code), "--help lacks {code:?}:\n{help}");
        }
    }
}
