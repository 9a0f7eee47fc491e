//! A section's client secret: named by an environment variable, or written
//! in the file. Read from the environment only when a provider is built,
//! so a missing variable for one provider never breaks commands on another.
//! Never printed: `Debug` shows an inline secret as redacted.

use secrecy::SecretString;

use super::section::Section;
use super::shapes::Common;
use crate::exit::CliResult;

/// Where a client secret comes from.
#[derive(Debug)]
pub(super) enum Secret {
    /// `client_secret_env`: the environment variable that holds it.
    Env(String),
    /// `client_secret`: the secret itself, from the file.
    Inline(SecretString),
}

impl Secret {
    /// The section's secret, if it gives one; at most one of the two keys.
    pub(super) fn of(section: &Section<'_>, common: &Common) -> CliResult<Option<Self>> {
        match (&common.client_secret_env, &common.client_secret) {
            (Some(_), Some(_)) => Err(section.error(
                "client_secret",
                "give either client_secret_env or client_secret, not both (prefer \
                 client_secret_env)",
            )),
            (Some(var), None) => {
                if var.is_empty() || var.contains(['=', '\0']) {
                    return Err(section.error(
                        "client_secret_env",
                        format!("{var:?} is not an environment variable name"),
                    ));
                }
                Ok(Some(Self::Env(var.clone())))
            }
            (None, Some(toml::Value::String(secret))) => {
                Ok(Some(Self::Inline(SecretString::from(secret.clone()))))
            }
            (None, Some(_)) => Err(section.error("client_secret", "must be a string")),
            (None, None) => Ok(None),
        }
    }

    /// Whether the secret is written in the file itself.
    pub(super) fn is_inline(&self) -> bool {
        matches!(self, Self::Inline(_))
    }

    /// The secret, from the environment if so configured.
    pub(super) fn read(&self, section: &Section<'_>) -> CliResult<SecretString> {
        match self {
            Self::Inline(secret) => Ok(secret.clone()),
            Self::Env(var) => match std::env::var(var) {
                Ok(value) if !value.is_empty() => Ok(SecretString::from(value)),
                _ => Err(section.error_then(
                    "client_secret_env",
                    format!("the environment variable {var} is not set (or is empty)"),
                    format!("export {var}=<the client secret> and run the command again"),
                )),
            },
        }
    }
}
