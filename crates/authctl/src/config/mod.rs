//! The TOML config: where it is, what it may say, and the providers it
//! builds.
//!
//! Everything that can be checked without the network or the environment
//! is checked when the file is read, for every provider, so a typo surfaces
//! at once with the file, the provider and the field named. Secrets from
//! the environment are read only when a provider is built, so a missing
//! variable for one provider never breaks commands on another.
//!
//! This module must never print a client secret, nor put one in an error.

mod provider;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use auth_catalogue::Catalogue;
use serde::Deserialize;
use store_file::FileTokenStore;

use crate::exit::{CliResult, Failure};
pub(crate) use provider::{ProviderConfig, ProviderKind};

/// The environment variable that overrides the store: a directory, or a
/// `postgres://` URL.
pub(crate) const STORE_ENV: &str = "AUTHCTL_STORE";

/// Where the tokens are.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum StoreLocation {
    /// A file store directory (one host).
    Path(PathBuf),
    /// A PostgreSQL URL (many hosts). It may hold a password, so it is
    /// never printed: messages name the store by `host:port/db`.
    Url(String),
}

impl std::fmt::Debug for StoreLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Path(path) => f.debug_tuple("Path").field(path).finish(),
            Self::Url(_) => f.write_str("Url([redacted])"),
        }
    }
}

/// Whether `text` names a PostgreSQL store rather than a directory.
fn is_postgres_url(text: &str) -> bool {
    text.starts_with("postgres://") || text.starts_with("postgresql://")
}

/// The whole file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    providers: BTreeMap<String, toml::Table>,
    /// A TOML file of the user's own catalogue entries, which add to or
    /// replace the built-in ones.
    catalogue: Option<PathBuf>,
}

/// `[store]`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawStore {
    path: Option<PathBuf>,
    url: Option<String>,
    encryption_keys_env: Option<String>,
    encryption_keys_file: Option<PathBuf>,
    accept_plaintext: Option<bool>,
}

/// Where the encryption keys of the store come from, when it is encrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeySource {
    /// `[store] encryption_keys_env`: the variable's name.
    Env(String),
    /// `[store] encryption_keys_file`: the file, resolved.
    File(PathBuf),
}

impl KeySource {
    /// How the config names it, for messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Env(name) => {
                format!("the environment variable {name} ([store] encryption_keys_env)")
            }
            Self::File(path) => format!(
                "the key file {} ([store] encryption_keys_file)",
                path.display()
            ),
        }
    }
}

/// `[store]` encryption settings.
#[derive(Debug, Clone)]
pub(crate) struct Encryption {
    /// Where the keys come from.
    pub(crate) keys: KeySource,
    /// Whether tokens stored in plain text are read (and encrypted on their
    /// next save). Default true.
    pub(crate) accept_plaintext: bool,
}

/// The config as read, or an empty one when there is no file.
#[derive(Debug)]
pub(crate) struct Config {
    /// The file read, or the default location that does not exist.
    file: Option<PathBuf>,
    found: bool,
    store: Option<StoreLocation>,
    encryption: Option<Encryption>,
    providers: BTreeMap<String, ProviderConfig>,
    catalogue: Catalogue,
}

/// The default config file: `config.toml` in the platform config directory.
fn default_file() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "authctl").map(|d| d.config_dir().join("config.toml"))
}

impl Config {
    /// Reads `explicit` (from `--config` or `AUTHCTL_CONFIG`), or the
    /// default file if it exists, or nothing.
    ///
    /// A missing explicit file is an error; a missing default file is an
    /// empty config.
    pub(crate) fn load(explicit: Option<&Path>) -> CliResult<Self> {
        let (path, required) = match explicit {
            Some(path) => (path.to_owned(), true),
            None => match default_file() {
                Some(path) => (path, false),
                None => {
                    return Ok(Self {
                        file: None,
                        found: false,
                        store: None,
                        encryption: None,
                        providers: BTreeMap::new(),
                        catalogue: Catalogue::builtin().clone(),
                    });
                }
            },
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let config = Self::parse(&text, &path)?;
                config.warn_if_secret_readable(&path);
                Ok(config)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => Ok(Self {
                file: Some(path),
                found: false,
                store: None,
                encryption: None,
                providers: BTreeMap::new(),
                catalogue: Catalogue::builtin().clone(),
            }),
            Err(e) => Err(Failure::usage(
                format!("cannot read the config file {}: {e}", path.display()),
                "pass an existing file with --config FILE (or AUTHCTL_CONFIG=FILE)",
            )),
        }
    }

    /// Parses and checks the text of `file`.
    pub(crate) fn parse(text: &str, file: &Path) -> CliResult<Self> {
        let shown = file.display().to_string();
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            Failure::usage(
                format!("{shown}: {}", e.to_string().trim_end()),
                format!("fix {shown}; `authctl emulator` prints example sections"),
            )
        })?;
        let base = file.parent().unwrap_or_else(|| Path::new("."));
        let catalogue = match &raw.catalogue {
            Some(path) => {
                let path = resolve_path(path, base);
                Catalogue::with_user_file(&path).map_err(|e| {
                    Failure::usage(
                        format!("{shown}: catalogue: {e}"),
                        format!(
                            "fix the entry in {}; docs/providers.md describes the schema",
                            path.display()
                        ),
                    )
                })?
            }
            None => Catalogue::builtin().clone(),
        };
        let mut providers = BTreeMap::new();
        for (name, table) in raw.providers {
            let provider = ProviderConfig::from_table(&shown, &name, table, &catalogue)?;
            providers.insert(name, provider);
        }
        let store = match (raw.store.path, raw.store.url) {
            (Some(_), Some(_)) => {
                return Err(Failure::usage(
                    format!("{shown}: [store] has both path and url"),
                    format!(
                        "keep one in {shown}: path for a file store on this host, url for a \
                         PostgreSQL store shared by several hosts"
                    ),
                ));
            }
            (Some(path), None) => Some(StoreLocation::Path(resolve_path(&path, base))),
            (None, Some(url)) if is_postgres_url(&url) => Some(StoreLocation::Url(url)),
            (None, Some(_)) => {
                return Err(Failure::usage(
                    format!("{shown}: [store] url is not a postgres:// or postgresql:// URL"),
                    format!(
                        "fix [store] url in {shown}, for example \
                         url = \"postgres://user@db.example:5432/app?sslmode=verify-full\""
                    ),
                ));
            }
            (None, None) => None,
        };
        let keys = match (
            raw.store.encryption_keys_env,
            raw.store.encryption_keys_file,
        ) {
            (Some(_), Some(_)) => {
                return Err(Failure::usage(
                    format!(
                        "{shown}: [store] sets both encryption_keys_env and encryption_keys_file"
                    ),
                    format!("keep one of them in {shown}"),
                ));
            }
            (Some(name), None) => Some(KeySource::Env(name)),
            (None, Some(path)) => Some(KeySource::File(resolve_path(&path, base))),
            (None, None) => None,
        };
        if keys.is_none() && raw.store.accept_plaintext.is_some() {
            return Err(Failure::usage(
                format!("{shown}: [store] accept_plaintext is set but the store is not encrypted"),
                format!(
                    "add encryption_keys_env or encryption_keys_file to [store] in {shown}, or \
                     remove accept_plaintext"
                ),
            ));
        }
        Ok(Self {
            file: Some(file.to_owned()),
            found: true,
            store,
            encryption: keys.map(|keys| Encryption {
                keys,
                accept_plaintext: raw.store.accept_plaintext.unwrap_or(true),
            }),
            providers,
            catalogue,
        })
    }

    /// The provider catalogue: the built-in entries, with the user's own
    /// file merged in when the config names one.
    pub(crate) fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    /// The provider section `name`.
    pub(crate) fn provider(&self, name: &str) -> CliResult<&ProviderConfig> {
        self.providers.get(name).ok_or_else(|| {
            let (message, next) = match (&self.file, self.found) {
                (Some(file), true) => {
                    let known: Vec<&str> = self.providers.keys().map(String::as_str).collect();
                    let known = if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    };
                    (
                        format!(
                            "no provider {name:?} is configured in {} (configured: {known})",
                            file.display()
                        ),
                        format!("add a [providers.{name}] section to {}", file.display()),
                    )
                }
                (Some(file), false) => (
                    format!(
                        "no provider {name:?} is configured: there is no config file at {}",
                        file.display()
                    ),
                    format!(
                        "create {} with a [providers.{name}] section, or pass one with --config",
                        file.display()
                    ),
                ),
                (None, _) => (
                    format!("no provider {name:?} is configured and no config file was found"),
                    format!("pass a config file with a [providers.{name}] section with --config"),
                ),
            };
            Failure::usage(
                message,
                format!("{next}; `authctl emulator` prints example sections"),
            )
        })
    }

    /// The token store: `AUTHCTL_STORE` (a directory or a `postgres://`
    /// URL), else `[store] path` or `[store] url`, else the file store's
    /// platform default.
    pub(crate) fn store_location(&self) -> CliResult<StoreLocation> {
        if let Some(value) = std::env::var_os(STORE_ENV).filter(|v| !v.is_empty()) {
            return Ok(match value.to_str() {
                Some(text) if is_postgres_url(text) => StoreLocation::Url(text.to_owned()),
                _ => StoreLocation::Path(PathBuf::from(value)),
            });
        }
        if let Some(store) = &self.store {
            return Ok(store.clone());
        }
        FileTokenStore::default_root()
            .map(StoreLocation::Path)
            .map_err(|e| {
                Failure::usage(
                    e.to_string(),
                    format!(
                        "set [store] path (or url) in the config, or the {STORE_ENV} \
                         environment variable"
                    ),
                )
            })
    }

    /// The store's encryption settings, when `[store]` names keys.
    pub(crate) fn encryption(&self) -> Option<&Encryption> {
        self.encryption.as_ref()
    }

    /// Warns when the file holds a client secret and others may read it.
    fn warn_if_secret_readable(&self, path: &Path) {
        let inline: Vec<&str> = self
            .providers
            .values()
            .filter(|p| p.has_inline_secret())
            .map(ProviderConfig::name)
            .collect();
        if inline.is_empty() {
            return;
        }
        if let Some(mode) = readable_by_others(path) {
            crate::output::warn(&format!(
                "{} holds a client_secret (in [providers.{}]) and other users can read it \
                 (mode {mode:o}); run: chmod 600 {}, or move the secret to an environment \
                 variable named by client_secret_env",
                path.display(),
                inline.join("], [providers."),
                path.display()
            ));
        }
    }
}

/// The file's mode when group or others may read it.
#[cfg(unix)]
fn readable_by_others(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o044 != 0).then_some(mode)
}

/// Other platforms have no mode bits to check.
#[cfg(not(unix))]
fn readable_by_others(_path: &Path) -> Option<u32> {
    None
}

/// `~/x` is under the home directory; a relative path is relative to the
/// config file's directory.
fn resolve_path(path: &Path, base: &Path) -> PathBuf {
    if let Ok(rest) = path.strip_prefix("~")
        && let Some(dirs) = directories::BaseDirs::new()
    {
        return dirs.home_dir().join(rest);
    }
    if path.is_absolute() {
        path.to_owned()
    } else {
        base.join(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relative_store_path_is_relative_to_the_file() {
        let config = Config::parse(
            "[store]\npath = \"tokens\"\n",
            Path::new("/etc/authctl/config.toml"),
        )
        .unwrap();
        assert_eq!(
            config.store,
            Some(StoreLocation::Path(PathBuf::from("/etc/authctl/tokens")))
        );
    }

    #[test]
    fn a_store_url_is_kept_and_never_shown_in_debug() {
        let config = Config::parse(
            "[store]\nurl = \"postgres://app:s3cret-pw@db:5432/tokens\"\n",
            Path::new("/etc/a.toml"),
        )
        .unwrap();
        assert_eq!(
            config.store,
            Some(StoreLocation::Url(
                "postgres://app:s3cret-pw@db:5432/tokens".into()
            ))
        );
        assert!(!format!("{config:?}").contains("s3cret-pw"));
    }

    #[test]
    fn path_and_url_together_are_refused() {
        let err = Config::parse(
            "[store]\npath = \"t\"\nurl = \"postgres://db/x\"\n",
            Path::new("/etc/a.toml"),
        )
        .unwrap_err();
        assert_eq!(err.kind().code(), 2);
        assert!(
            err.message().contains("both path and url"),
            "{}",
            err.message()
        );
        let err = Config::parse(
            "[store]\nurl = \"mysql://db/x\"\n",
            Path::new("/etc/a.toml"),
        )
        .unwrap_err();
        assert_eq!(err.kind().code(), 2);
    }

    #[test]
    fn encryption_keys_come_from_one_place() {
        let file = Path::new("/etc/authctl/config.toml");
        let config = Config::parse("[store]\nencryption_keys_env = \"TK\"\n", file).unwrap();
        let enc = config.encryption().unwrap();
        assert_eq!(enc.keys, KeySource::Env("TK".into()));
        assert!(enc.accept_plaintext);
        let config = Config::parse(
            "[store]\nencryption_keys_file = \"keys\"\naccept_plaintext = false\n",
            file,
        )
        .unwrap();
        let enc = config.encryption().unwrap();
        assert_eq!(enc.keys, KeySource::File("/etc/authctl/keys".into()));
        assert!(!enc.accept_plaintext);
        let both = "[store]\nencryption_keys_env = \"TK\"\nencryption_keys_file = \"k\"\n";
        assert_eq!(Config::parse(both, file).unwrap_err().kind().code(), 2);
        let stray = "[store]\naccept_plaintext = false\n";
        assert_eq!(Config::parse(stray, file).unwrap_err().kind().code(), 2);
    }

    #[test]
    fn an_unknown_table_is_named() {
        let err = Config::parse("[stor]\npath = \"x\"\n", Path::new("/etc/a.toml")).unwrap_err();
        assert_eq!(err.kind().code(), 2);
        assert!(err.message().contains("/etc/a.toml") && err.message().contains("stor"));
    }
}
