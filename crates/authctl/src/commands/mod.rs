//! One module per subcommand, and what they share: loading the config,
//! opening the store, building the token manager.

mod demo;
mod emulator;
mod encryption;
mod keys;
mod login;
mod status;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use auth_core::{TokenKey, TokenManager, TokenStore};
use store_file::FileTokenStore;

use crate::cli::{Cli, Command};
use crate::config::{Config, ProviderConfig};
use crate::exit::{CliResult, Failure, Target};
use crate::output;

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
        Command::Keygen => encryption::keygen(),
        Command::Rekey(args) => encryption::rekey(config, args).await,
        Command::Demo => demo::run().await,
    };
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

/// Opens the configured file store, creating its directory if needed.
fn open_store(config: &Config) -> CliResult<(PathBuf, FileTokenStore)> {
    let root = config.store_root()?;
    let store = FileTokenStore::open(&root).map_err(|e| {
        Failure::from_auth(
            &e,
            &Target {
                provider: "-",
                account: None,
            },
        )
    })?;
    Ok((root, store))
}

/// The configured store as the token manager sees it: the file store,
/// wrapped in an [`EncryptedStore`](store_encrypted::EncryptedStore) when
/// `[store]` names encryption keys.
fn managed_store(config: &Config, store: FileTokenStore) -> CliResult<Arc<dyn TokenStore>> {
    Ok(
        match encryption::encrypted(config, Arc::new(store.clone()))? {
            Some(encrypted) => Arc::new(encrypted),
            None => Arc::new(store),
        },
    )
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
        let (_, store) = open_store(&config)?;
        let manager = TokenManager::builder(managed_store(&config, store)?)
            .provider(built)
            .build();
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
