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

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use auth_core::{Error, TokenKey, TokenManager, TokenStore};
use store_file::FileTokenStore;
use store_postgres::PostgresTokenStore;

use crate::cli::{Cli, Command};
use crate::config::{Config, ProviderConfig, StoreLocation};
use crate::exit::{CliResult, ExitKind, Failure, Target};
use crate::output;

/// The token managers this command built, shut down before the process
/// exits so that no refresh is cut between the server's answer and the save.
static MANAGERS: Mutex<Vec<TokenManager>> = Mutex::new(Vec::new());

/// How long the process waits at exit for refreshes and saves in progress:
/// a little over the manager's save retry time, so that a new pair whose
/// save failed (a full disk) gets every chance to land.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(330);

/// PostgreSQL stores opened by this run, closed after the managers have
/// shut down, so that the releases of dropped leases reach the database
/// before the process exits (otherwise the next run would wait for them to
/// expire).
static OPENED: Mutex<Vec<PostgresTokenStore>> = Mutex::new(Vec::new());

async fn close_stores() {
    let opened = std::mem::take(&mut *OPENED.lock().unwrap_or_else(PoisonError::into_inner));
    for store in opened {
        store.close().await;
    }
}

/// Registers a manager for the shutdown at exit.
fn track(manager: TokenManager) -> TokenManager {
    MANAGERS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(manager.clone());
    manager
}

/// Shuts down every manager this command built, waiting for their work.
async fn shutdown_all() -> CliResult {
    let managers = std::mem::take(&mut *MANAGERS.lock().unwrap_or_else(PoisonError::into_inner));
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
    failure.map_or(Ok(()), Err)
}

/// Runs the command and returns the process exit code.
///
/// Ctrl-C stops the command, but not a refresh in progress: that is handed
/// to the manager's background work, and the process exits only after
/// [`TokenManager::shutdown`] has waited for it (a second Ctrl-C ends the
/// process at once).
pub(crate) async fn run(cli: Cli) -> u8 {
    let result = match cli.command {
        // It waits for Ctrl-C itself, and holds no token.
        Command::Emulator(args) => emulator::run(args).await,
        command => interruptible(cli.config.as_deref(), command).await,
    };
    let closed = shutdown_all().await;
    close_stores().await;
    match result.and(closed) {
        Ok(()) => 0,
        Err(failure) => {
            output::failure(&failure);
            failure.kind().code()
        }
    }
}

/// Runs `command` until it ends or Ctrl-C is pressed.
async fn interruptible(config: Option<&Path>, command: Command) -> CliResult {
    let command = run_command(config, command);
    tokio::select! {
        result = command => result,
        _ = tokio::signal::ctrl_c() => {
            output::note("interrupted; finishing any refresh in progress before exiting (Ctrl-C again to quit now)");
            tokio::spawn(async {
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(i32::from(ExitKind::Interrupted.code()));
                }
            });
            Err(Failure::new(ExitKind::Interrupted, "interrupted", "run the command again"))
        }
    }
}

async fn run_command(config: Option<&Path>, command: Command) -> CliResult {
    match command {
        Command::Login(args) => login::run(config, args).await,
        Command::Token(args) => keys::token(config, args).await,
        Command::Get(args) => get::run(config, args).await,
        Command::Refresh(args) => keys::refresh(config, args).await,
        Command::Introspect(args) => keys::introspect(config, args).await,
        Command::Revoke(args) => keys::revoke(config, args).await,
        Command::Logout(args) => keys::logout(config, args).await,
        Command::Status(args) => status::run(config, args).await,
        Command::Emulator(args) => emulator::run(args).await,
        Command::Providers(args) => providers::run(config, args),
        Command::Keygen => encryption::keygen(),
        Command::Rekey(args) => encryption::rekey(config, args).await,
        Command::Demo => demo::run().await,
        Command::ClearFlag(args) => keys::clear_flag(config, args).await,
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
async fn open_store(config: &Config) -> CliResult<OpenStore> {
    let everywhere = Target {
        provider: "-",
        account: None,
    };
    match config.store_location()? {
        StoreLocation::Path(root) => {
            let store =
                FileTokenStore::open(&root).map_err(|e| Failure::from_auth(&e, &everywhere))?;
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
            OPENED
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(store.clone());
            Ok(OpenStore {
                store: Arc::new(store),
                place,
            })
        }
    }
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
    async fn open(config: Option<&Path>, provider: &str, account: &str) -> CliResult<Self> {
        let config = Config::load(config)?;
        let key = token_key(provider, account)?;
        Self::with_config(config, key).await
    }

    /// Builds the provider of `key` from `config` and opens the store.
    async fn with_config(config: Config, key: TokenKey) -> CliResult<Self> {
        let section = config.provider(key.provider.as_str())?;
        let built = section.build().await?;
        let opened = open_store(&config).await?;
        let manager = track(
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
