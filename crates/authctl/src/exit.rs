//! Exit codes, and the one error type of the tool: a [`Failure`] says what
//! went wrong, which exit code it means, and what to do next.
//!
//! Every failure that reaches the user goes through [`Failure::from_auth`]
//! or one of the constructors here, so no path can forget the next step.
//! Messages come from the libraries, whose errors never carry secrets, or
//! from this crate, which never formats one.

use std::fmt;

use auth_core::{Error, StoreErrorKind, TokenKey};

/// What happened, as a script sees it: the process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExitKind {
    /// 1: something unexpected (a protocol error, a broken store).
    Unexpected,
    /// 2: a usage or configuration error.
    Usage,
    /// 3: the account needs a new login (no token stored, or the grant is gone).
    Reauthorization,
    /// 4: a transient failure (network, 5xx, 429) that outlasted the retries.
    Transient,
    /// 5: the provider has been switched off (HTTP 410).
    Retired,
    /// 130: interrupted (Ctrl-C), after the refresh in progress was
    /// finished and saved.
    Interrupted,
}

impl ExitKind {
    /// The process exit code.
    pub(crate) fn code(self) -> u8 {
        match self {
            Self::Unexpected => 1,
            Self::Usage => 2,
            Self::Reauthorization => 3,
            Self::Transient => 4,
            Self::Retired => 5,
            Self::Interrupted => 130,
        }
    }
}

/// A failed command: its exit code, a message, and the next step.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    kind: ExitKind,
    message: String,
    next: String,
}

/// `Result` with [`Failure`].
pub(crate) type CliResult<T = ()> = Result<T, Failure>;

impl Failure {
    /// A failure with its next step (for example `run: authctl login fitbit`).
    pub(crate) fn new(kind: ExitKind, message: impl Into<String>, next: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            next: next.into(),
        }
    }

    /// A usage or configuration error (exit 2).
    pub(crate) fn usage(message: impl Into<String>, next: impl Into<String>) -> Self {
        Self::new(ExitKind::Usage, message, next)
    }

    /// Something unexpected (exit 1).
    pub(crate) fn unexpected(message: impl Into<String>, next: impl Into<String>) -> Self {
        Self::new(ExitKind::Unexpected, message, next)
    }

    /// The exit code category.
    pub(crate) fn kind(&self) -> ExitKind {
        self.kind
    }

    /// What went wrong.
    pub(crate) fn message(&self) -> &str {
        &self.message
    }

    /// What to do next.
    pub(crate) fn next(&self) -> &str {
        &self.next
    }

    /// Prefixes the message, for example with the step that failed.
    #[must_use]
    pub(crate) fn context(mut self, prefix: impl fmt::Display) -> Self {
        self.message = format!("{prefix}: {}", self.message);
        self
    }

    /// Classifies a library error and attaches the next step for `key`
    /// (or for `provider` when no account is concerned).
    pub(crate) fn from_auth(err: &Error, target: &Target<'_>) -> Self {
        let message = err.to_string();
        match err {
            Error::ReauthorizationRequired { .. } => Self::new(
                ExitKind::Reauthorization,
                message,
                format!("run: {}", target.login_command()),
            ),
            Error::AuthorizationDenied { .. } => Self::new(
                ExitKind::Reauthorization,
                message,
                format!("run: {} and approve the request", target.login_command()),
            ),
            Error::Transient { .. } => Self::new(
                ExitKind::Transient,
                message,
                "try again later; the stored token is intact",
            ),
            Error::ProviderRetired { successor, .. } => Self::new(
                ExitKind::Retired,
                message,
                format!(
                    "move to the successor: add a [providers.{successor}] section (kind = \
                     \"{successor}\") to the config and run: authctl login {successor}; then \
                     remove the old token with: {}",
                    target.command("logout")
                ),
            ),
            Error::Configuration { message: text, .. } if text.starts_with("wrong key ") => {
                Self::new(
                    ExitKind::Usage,
                    message,
                    "give authctl the key named above through [store] encryption_keys_env or \
                     encryption_keys_file; nothing was printed or changed",
                )
            }
            Error::Configuration { .. } => Self::new(
                ExitKind::Usage,
                message,
                format!(
                    "fix the [providers.{}] section of the config (client id, secret, URLs) and try again",
                    target.provider
                ),
            ),
            Error::Unsupported { .. } => Self::new(
                ExitKind::Usage,
                message,
                "this provider cannot do that; see `authctl --help` for what it can do",
            ),
            Error::InvalidInput { .. } => Self::new(
                ExitKind::Usage,
                message,
                "check the arguments; see `authctl --help`",
            ),
            Error::Store { kind, .. } => Self::store(*kind, message),
            Error::Protocol { .. } => Self::new(
                ExitKind::Unexpected,
                message,
                "the server answered something unexpected; try again, and if it persists run \
                 with -vv and report it",
            ),
            _ => Self::new(
                ExitKind::Unexpected,
                message,
                "try again; if it persists run with -vv and report it",
            ),
        }
    }

    fn store(kind: StoreErrorKind, message: String) -> Self {
        match kind {
            StoreErrorKind::LockTimeout => Self::new(
                ExitKind::Transient,
                message,
                "another process holds the token's lock; try again in a moment",
            ),
            StoreErrorKind::Corrupt => Self::new(
                ExitKind::Unexpected,
                message,
                "look at the stored token named above (its file, or its database row); move it \
                 away and log in again",
            ),
            StoreErrorKind::Conflict => Self::new(
                ExitKind::Transient,
                message,
                "another process changed the token at the same time; try again",
            ),
            StoreErrorKind::Unavailable => Self::new(
                ExitKind::Transient,
                message,
                "the token store named above cannot be reached now (for a database: is it \
                 running and reachable from here?); try again when it is back",
            ),
            StoreErrorKind::LeaseLost => Self::new(
                ExitKind::Transient,
                message,
                "the token's lock was lost (were lock files deleted, or was this host cut off \
                 from the database for longer than the lease?); try again",
            ),
            _ => Self::new(
                ExitKind::Unexpected,
                message,
                "check the token store directory ([store] path in the config, or AUTHCTL_STORE) \
                 and its permissions",
            ),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// An error and its sources, outermost first. A source kept behind an
/// `Arc` (as `auth_core::Error` keeps them) is listed as the error inside
/// it, so that callers can downcast it (an `Arc`'s own `source` skips the
/// error it holds).
pub(crate) fn error_chain<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> Vec<&'a (dyn std::error::Error + 'static)> {
    type Shared = std::sync::Arc<dyn std::error::Error + Send + Sync>;
    let mut chain = Vec::new();
    let mut current = Some(err);
    while let Some(mut e) = current {
        while let Some(inner) = e.downcast_ref::<Shared>() {
            e = &**inner;
        }
        chain.push(e);
        current = e.source();
    }
    chain
}

/// What a command was working on, to phrase the next step.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target<'a> {
    /// The provider name.
    pub(crate) provider: &'a str,
    /// The account, when one is concerned.
    pub(crate) account: Option<&'a str>,
}

impl<'a> Target<'a> {
    /// The target of a command on `key`.
    pub(crate) fn key(key: &'a TokenKey) -> Self {
        Self {
            provider: key.provider.as_str(),
            account: Some(key.account.as_str()),
        }
    }

    /// `authctl login PROVIDER [--account ACCOUNT]`.
    pub(crate) fn login_command(&self) -> String {
        self.command("login")
    }

    /// `authctl COMMAND PROVIDER [--account ACCOUNT]`, leaving out the
    /// default account.
    pub(crate) fn command(&self, command: &str) -> String {
        match self.account {
            Some(account) if account != crate::cli::DEFAULT_ACCOUNT => format!(
                "authctl {command} {} --account {}",
                self.provider,
                shell_word(account)
            ),
            _ => format!("authctl {command} {}", self.provider),
        }
    }
}

/// Fails unless `next` ends with `run: COMMAND` where COMMAND is a whole
/// authctl command line that parses, so that pasting it works.
#[cfg(test)]
pub(crate) fn assert_pasteable(next: &str) {
    use clap::Parser as _;
    let (_, command) = next
        .rsplit_once("run: ")
        .unwrap_or_else(|| panic!("no `run: ` in {next:?}"));
    let words: Vec<&str> = command.split_whitespace().collect();
    assert_eq!(words.first(), Some(&"authctl"), "{next:?}");
    if let Err(e) = crate::cli::Cli::try_parse_from(&words) {
        panic!("{command:?} does not parse as a command line: {e}");
    }
}

/// Quotes a word for a shell when it needs it.
fn shell_word(word: &str) -> String {
    let plain = word
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "@%+=:,./_-".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(account: &str) -> TokenKey {
        TokenKey::parse("fitbit", account).unwrap()
    }

    #[test]
    fn codes_follow_the_documented_table() {
        let key = target("default");
        let t = Target::key(&key);
        let cases = [
            (Error::reauthorization_required(None, "gone"), 3),
            (Error::transient("503"), 4),
            (
                Error::ProviderRetired {
                    provider: "fitbit".parse().unwrap(),
                    successor: "google-health".into(),
                    message: "off".into(),
                },
                5,
            ),
            (Error::configuration("bad"), 2),
            (Error::protocol(Some(200), "junk", ""), 1),
            (
                Error::store(StoreErrorKind::Corrupt, Some(key.clone()), "bad file"),
                1,
            ),
        ];
        for (err, code) in cases {
            assert_eq!(Failure::from_auth(&err, &t).kind().code(), code, "{err}");
        }
    }

    #[test]
    fn next_steps_name_the_command_to_run() {
        let key = target("default");
        let f = Failure::from_auth(
            &Error::reauthorization_required(None, "x"),
            &Target::key(&key),
        );
        assert_eq!(f.next(), "run: authctl login fitbit");
        let key = target("bob smith");
        let f = Failure::from_auth(
            &Error::reauthorization_required(None, "x"),
            &Target::key(&key),
        );
        assert_eq!(f.next(), "run: authctl login fitbit --account 'bob smith'");
        let f = Failure::from_auth(
            &Error::ProviderRetired {
                provider: "fitbit".parse().unwrap(),
                successor: "google-health".into(),
                message: "off".into(),
            },
            &Target::key(&target("default")),
        );
        assert!(
            f.next().contains("authctl login google-health"),
            "{}",
            f.next()
        );
    }
}
