//! One module per subcommand, and what they share: loading the config,
//! opening the store, building the token manager.

mod demo;
mod emulator;
mod keys;
mod login;
mod status;

use std::path::Path;
use std::sync::{Arc, Mutex};

use auth_core::{Error, TokenKey, TokenManager, TokenStore};
use store_file::FileTokenStore;
use store_postgres::PostgresTokenStore;

use crate::cli::{Cli, Command};
use crate::config::{Config, ProviderConfig, StoreLocation};
use crate::exit::{CliResult, ExitKind, Failure, Target};
use crate::output;

/// PostgreSQL stores opened by this run, closed before it exits so that
/// the releases of dropped leases reach the database (otherwise the next
/// run would wait for them to expire).
static OPENED: Mutex<Vec<PostgresTokenStore>> = Mutex::new(Vec::new());

async fn close_stores() {
    let opened = std::mem::take(&mut *OPENED.lock().unwrap_or_else(|e| e.into_inner()));
    for store in opened {
        store.close().await;
    }
}

/// Runs the command and returns the process exit code.
pub(crate) async fn run(cli: Cli) -> u8 {
    let config = cli.config.as_deref();
    let result = match cli.command {
        Command::Login(args) => login::run(config, args).await,
        Command::Token(args) => keys::token(config, args).await,
        Command::Refresh(args) => keys::refresh(config, args).await,
        Command::Introspect(args) => keys::introspect(config, args).await,
        Command::Revoke(args) => keys::revoke(config, args).await,
        Command::Logout(args) => keys::logout(config, args).await,
        Command::Status(args) => status::run(config, args).await,
        Command::Emulator(args) => emulator::run(args).await,
        Command::Demo => demo::run().await,
    };
    close_stores().await;
    match result {
        Ok(()) => 0,
        Err(failure) => {
            output::failure(&failure);
            failure.kind().code()
        }
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
                .unwrap_or_else(|e| e.into_inner())
                .push(store.clone());
            Ok(OpenStore {
                store: Arc::new(store),
                place,
            })
        }
    }
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
        let section = config.provider(provider)?;
        let built = section.build().await?;
        let opened = open_store(&config).await?;
        let manager = TokenManager::builder(opened.store).provider(built).build();
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
