//! One module per subcommand, and what they share: loading the config,
//! opening the store, building the token manager.

mod demo;
mod emulator;
mod encryption;
mod get;
mod keys;
mod login;
mod providers;
mod status;

pub(crate) use keys::token_before_runtime;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use auth_core::{Error, TokenKey, TokenManager, TokenStore};
use store_file::FileTokenStore;
use store_postgres::PostgresTokenStore;

use crate::cli::{Cli, Command};
use crate::config::{Config, ProviderConfig, StoreLocation};
use crate::exit::{CliResult, ExitKind, Failure, Target};
use crate::output;

/// How long the process waits at exit for refreshes and saves in progress:
/// a little over the manager's save retry time, so that a new pair whose
/// save failed (a full disk) gets every chance to land.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(330);

/// What one run of authctl shares between its steps, passed down to every
/// command (no global state): the config file named on the command line,
/// and what must be closed before the process exits.
pub(crate) struct Context {
    /// `--config FILE` (or `AUTHCTL_CONFIG`), if given.
    config: Option<PathBuf>,
    /// The token managers this run built, shut down before the process
    /// exits so that no refresh is cut between the server's answer and the
    /// save.
    managers: Mutex<Vec<TokenManager>>,
    /// PostgreSQL stores opened by this run, closed after the managers have
    /// shut down, so that the releases of dropped leases reach the database
    /// before the process exits (otherwise the next run would wait for them
    /// to expire).
    opened: Mutex<Vec<PostgresTokenStore>>,
}

impl Context {
    /// A run with this `--config`.
    pub(crate) fn new(config: Option<PathBuf>) -> Self {
        Self {
            config,
            managers: Mutex::new(Vec::new()),
            opened: Mutex::new(Vec::new()),
        }
    }

    /// The config file named on the command line, if any.
    fn config_file(&self) -> Option<&Path> {
        self.config.as_deref()
    }

    /// Loads the config this run names (or the default one).
    fn load_config(&self) -> CliResult<Config> {
        Config::load(self.config_file())
    }

    /// Registers a manager for the shutdown at exit.
    fn track(&self, manager: TokenManager) -> TokenManager {
        self.managers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(manager.clone());
        manager
    }

    /// Registers a PostgreSQL store to close at exit.
    fn track_store(&self, store: &PostgresTokenStore) {
        self.opened
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(store.clone());
    }

    /// Shuts down every manager this run built, waiting for their work,
    /// then closes the stores it opened.
    async fn finish(&self) -> CliResult {
        let managers =
            std::mem::take(&mut *self.managers.lock().unwrap_or_else(PoisonError::into_inner));
        let mut failure = None;
        for manager in managers {
            if let Err(err) = manager.shutdown(SHUTDOWN_WAIT).await {
                failure.get_or_insert(Failure::from_auth(
                    &err,
                    &Target {
                        provider: "-",
                        account: None,
                    },
                ));
            }
        }
        let opened =
            std::mem::take(&mut *self.opened.lock().unwrap_or_else(PoisonError::into_inner));
        for store in opened {
            store.close().await;
        }
        failure.map_or(Ok(()), Err)
    }
}

/// Runs the command and returns the process exit code.
///
/// Ctrl-C stops the command, but not a refresh in progress: that is handed
/// to the manager's background work, and the process exits only after
/// [`TokenManager::shutdown`] has waited for it (a second Ctrl-C ends the
/// process at once).
pub(crate) async fn run(cli: Cli) -> u8 {
    let cx = Context::new(cli.config);
    let result = match cli.command {
        // It waits for Ctrl-C itself, and holds no token.
        Command::Emulator(args) => emulator::run(args).await,
        command => interruptible(&cx, command).await,
    };
    let closed = cx.finish().await;
    match result.and(closed) {
        Ok(()) => 0,
        Err(failure) => {
            output::failure(&failure);
            failure.kind().code()
        }
    }
}

/// What Ctrl-C during `command` says: only commands that can refresh a
/// token have a refresh to finish, and a login has a login to stop.
fn interrupted_note(command: &Command) -> &'static str {
    match command {
        Command::Login(_) => {
            "interrupted; the login stops here (a code already sent to the provider is \
             exchanged and saved before exiting; Ctrl-C again to quit now)"
        }
        Command::Token(_)
        | Command::Get(_)
        | Command::Refresh(_)
        | Command::Introspect(_)
        | Command::Revoke(_)
        | Command::ClearFlag(_)
        | Command::Rekey(_)
        | Command::Demo => {
            "interrupted; finishing any refresh in progress before exiting (Ctrl-C again to \
             quit now)"
        }
        Command::Logout(_)
        | Command::Status(_)
        | Command::Keygen
        | Command::Emulator(_)
        | Command::Providers(_) => "interrupted",
    }
}

/// Runs `command` until it ends or Ctrl-C is pressed.
async fn interruptible(cx: &Context, command: Command) -> CliResult {
    let note = interrupted_note(&command);
    let command = run_command(cx, command);
    tokio::select! {
        // Polled first, so Ctrl-C is caught from the command's first step.
        biased;
        _ = tokio::signal::ctrl_c() => {
            output::note(note);
            tokio::spawn(async {
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(i32::from(ExitKind::Interrupted.code()));
                }
            });
            Err(Failure::new(ExitKind::Interrupted, "interrupted", "run the command again"))
        }
        result = command => result,
    }
}

async fn run_command(cx: &Context, command: Command) -> CliResult {
    match command {
        Command::Login(args) => login::run(cx, args).await,
        Command::Token(args) => keys::token(cx, args).await,
        Command::Get(args) => get::run(cx, args).await,
        Command::Refresh(args) => keys::refresh(cx, args).await,
        Command::Introspect(args) => keys::introspect(cx, args).await,
        Command::Revoke(args) => keys::revoke(cx, args).await,
        Command::Logout(args) => keys::logout(cx, args).await,
        Command::Status(args) => status::run(cx, args).await,
        Command::Emulator(args) => emulator::run(args).await,
        Command::Providers(args) => providers::run(cx.config_file(), args),
        Command::Keygen => encryption::keygen(),
        Command::Rekey(args) => encryption::rekey(cx, args).await,
        Command::Demo => demo::run(cx).await,
        Command::ClearFlag(args) => keys::clear_flag(cx, args).await,
    }
}

/// The key of `provider`/`account`, checked.
fn token_key(provider: &str, account: &str) -> CliResult<TokenKey> {
    TokenKey::parse(provider, account).map_err(|e| {
        Failure::usage(
            e.to_string(),
            "use a provider name and an --account id without control characters or path separators",
        )
    })
}

/// An open token store, and how to name it in messages.
pub(crate) struct OpenStore {
    /// The store.
    pub(crate) store: Arc<dyn TokenStore>,
    /// The directory, or `PostgreSQL host:port/db (schema.table)`; never a
    /// password.
    pub(crate) place: String,
}

/// Opens the configured store: a file store (creating its directory if
/// needed) or a PostgreSQL store (creating its tables if needed).
async fn open_store(cx: &Context, config: &Config) -> CliResult<OpenStore> {
    let everywhere = Target {
        provider: "-",
        account: None,
    };
    match config.store_location()? {
        StoreLocation::Path(root) => {
            let store = FileTokenStore::open(&root).map_err(|e| {
                unusable_directory(&root, &e).unwrap_or_else(|| Failure::from_auth(&e, &everywhere))
            })?;
            Ok(OpenStore {
                store: Arc::new(store),
                place: root.display().to_string(),
            })
        }
        StoreLocation::Url(url) => {
            let store = PostgresTokenStore::connect(&url)
                .await
                .map_err(|e| match e {
                    Error::Configuration { .. } => Failure::new(
                        ExitKind::Usage,
                        e.to_string(),
                        "fix [store] url in the config (or AUTHCTL_STORE): the user, password, \
                         host, port, database and sslmode",
                    ),
                    other => Failure::from_auth(&other, &everywhere),
                })?;
            let place = format!("PostgreSQL {} ({})", store.endpoint(), store.tables());
            cx.track_store(&store);
            Ok(OpenStore {
                store: Arc::new(store),
                place,
            })
        }
    }
}

/// A store directory this user cannot create or use (no permission, a
/// read-only file system, a file in the way): a configuration problem
/// (exit 2), reported once with one hint. `None` for other failures.
fn unusable_directory(root: &Path, err: &Error) -> Option<Failure> {
    use std::io::ErrorKind;
    for e in crate::exit::error_chain(err) {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            let problem = match io.kind() {
                ErrorKind::PermissionDenied => "this user has no permission to create or use it",
                ErrorKind::ReadOnlyFilesystem => "it is on a read-only file system",
                ErrorKind::NotADirectory => "a file stands where a directory should be",
                _ => return None,
            };
            return Some(Failure::usage(
                format!(
                    "cannot use the token store directory {}: {problem}",
                    root.display()
                ),
                "give this user read and write access to it, or choose another directory with \
                 [store] path in the config (or AUTHCTL_STORE=DIR)",
            ));
        }
    }
    None
}

/// The configured store as the token manager sees it: the file or
/// PostgreSQL store,
/// wrapped in an [`EncryptedStore`](store_encrypted::EncryptedStore) when
/// `[store]` names encryption keys.
fn managed_store(config: &Config, store: Arc<dyn TokenStore>) -> CliResult<Arc<dyn TokenStore>> {
    Ok(match encryption::encrypted(config, Arc::clone(&store))? {
        Some(encrypted) => Arc::new(encrypted),
        None => store,
    })
}

/// Everything a command on one account needs.
struct Session {
    config: Config,
    manager: TokenManager,
    key: TokenKey,
}

impl Session {
    /// Loads the config, builds `provider` and opens the store.
    async fn open(cx: &Context, provider: &str, account: &str) -> CliResult<Self> {
        let config = cx.load_config()?;
        let key = token_key(provider, account)?;
        Self::with_config(cx, config, key).await
    }

    /// Builds the provider of `key` from `config` and opens the store.
    async fn with_config(cx: &Context, config: Config, key: TokenKey) -> CliResult<Self> {
        let section = config.provider(key.provider.as_str())?;
        let built = section.build().await?;
        let opened = open_store(cx, &config).await?;
        let manager = cx.track(
            TokenManager::builder(managed_store(&config, opened.store)?)
                .provider(built)
                .build(),
        );
        Ok(Self {
            config,
            manager,
            key,
        })
    }

    fn provider(&self) -> CliResult<&ProviderConfig> {
        self.config.provider(self.key.provider.as_str())
    }

    fn target(&self) -> Target<'_> {
        Target::key(&self.key)
    }

    fn fail(&self, err: &auth_core::Error) -> Failure {
        Failure::from_auth(err, &self.target())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use auth_core::StoreErrorKind;

    #[test]
    fn a_store_directory_without_permission_is_a_configuration_error_with_one_hint() {
        let root = Path::new("/srv/tokens");
        let err = Error::store(StoreErrorKind::Io, None, "could not create the directory")
            .with_source(std::io::Error::from(std::io::ErrorKind::PermissionDenied));
        let failure = unusable_directory(root, &err).expect("a configuration error");
        assert_eq!(failure.kind(), ExitKind::Usage);
        assert_eq!(
            failure.message(),
            "cannot use the token store directory /srv/tokens: this user has no permission to \
             create or use it"
        );
        let hint = "give this user read and write access";
        assert!(failure.next().starts_with(hint), "{}", failure.next());
        assert!(!failure.message().contains(hint), "{}", failure.message());
    }

    #[test]
    fn a_file_in_place_of_the_store_directory_is_a_configuration_error() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let file = dir.path().join("a-file");
        std::fs::write(&file, "x").expect("write");
        let root = file.join("tokens");
        let err = FileTokenStore::open(&root).expect_err("a directory under a file");
        let failure = unusable_directory(&root, &err).expect("a configuration error");
        assert_eq!(failure.kind(), ExitKind::Usage);
        assert!(
            failure
                .message()
                .ends_with("a file stands where a directory should be"),
            "{}",
            failure.message()
        );
    }

    #[test]
    fn other_store_failures_are_left_to_the_usual_classification() {
        let err = Error::store(StoreErrorKind::Io, None, "disk on fire")
            .with_source(std::io::Error::other("disk on fire"));
        assert!(unusable_directory(Path::new("/x"), &err).is_none());
    }

    #[test]
    fn ctrl_c_during_a_login_mentions_no_refresh() {
        use clap::Parser as _;
        let login = Cli::try_parse_from(["authctl", "login", "fitbit"]).expect("parses");
        let note = interrupted_note(&login.command);
        assert!(note.contains("the login stops here"), "{note}");
        assert!(!note.contains("refresh"), "{note}");
        let refresh = Cli::try_parse_from(["authctl", "refresh", "fitbit"]).expect("parses");
        assert!(interrupted_note(&refresh.command).contains("finishing any refresh"));
    }
}
