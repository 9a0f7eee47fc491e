//! The one error type of the workspace, classified so that apps can act on it.
//!
//! Every variant answers two questions: what happened, and what the caller
//! should do next. No variant ever carries a token, a refresh token, an
//! authorization code or a client secret: messages that come from a server
//! are passed through [`crate::redact`] by the provider before they get here.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::id::{ProviderId, TokenKey};

/// A specialized `Result` for this workspace.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A shareable error source. Sources are kept in an `Arc` so that [`Error`]
/// is `Clone`: one refresh result is handed to every caller waiting on it.
pub type Source = Arc<dyn StdError + Send + Sync + 'static>;

/// Everything that can go wrong, classified by what the caller should do.
///
/// | variant | what to do |
/// |---|---|
/// | [`ReauthorizationRequired`](Error::ReauthorizationRequired) | send the user through the authorization flow again |
/// | [`Transient`](Error::Transient) | try again later, after `retry_after` when given |
/// | [`Configuration`](Error::Configuration) | fix the client id, secret, URL or registration |
/// | [`ProviderRetired`](Error::ProviderRetired) | move the account to the named successor provider |
/// | [`Protocol`](Error::Protocol) | the server answered something unexpected; report it |
/// | [`Store`](Error::Store) | look at the storage backend; see [`StoreErrorKind`] |
/// | [`Unsupported`](Error::Unsupported) | the provider cannot do this operation |
/// | [`InvalidInput`](Error::InvalidInput) | the caller passed a bad id, callback or argument |
/// | [`AuthorizationDenied`](Error::AuthorizationDenied) | the user (or server) refused the authorization |
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The grant is gone or was never there: `invalid_grant`, a revoked
    /// token, or no token stored for the key. Only a new authorization helps.
    ///
    /// The stored token, if any, is kept and flagged; it is never deleted.
    #[error("{}authorization required: {reason}; send the user through the authorization flow again", key_prefix(.key))]
    ReauthorizationRequired {
        /// The account concerned, when known.
        key: Option<TokenKey>,
        /// Why, in words safe to show (no secrets).
        reason: String,
    },

    /// A failure that may pass: the network, a 5xx, a 429 or a refresh in
    /// flight elsewhere. The stored token is intact.
    #[error("temporary failure{}: {message}; try again{}", status_suffix(*.status), retry_suffix(*.retry_after))]
    Transient {
        /// What happened.
        message: String,
        /// The HTTP status, when there was a response.
        status: Option<u16>,
        /// How long the server asked us to wait, when it said.
        retry_after: Option<Duration>,
        /// The underlying error.
        #[source]
        source: Option<Source>,
    },

    /// The client is set up wrongly: `invalid_client`, a bad URL, a missing
    /// secret, an unregistered redirect URI.
    #[error("configuration error: {message}")]
    Configuration {
        /// What is wrong and how to fix it.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<Source>,
    },

    /// The provider's API has been shut down (HTTP 410 Gone).
    #[error(
        "provider {provider} is retired: {message}; move the account to the {successor} provider"
    )]
    ProviderRetired {
        /// The retired provider.
        provider: ProviderId,
        /// The provider that replaces it, for example `google-health`.
        successor: String,
        /// What the provider or we know about the shutdown.
        message: String,
    },

    /// The server's answer broke the protocol: malformed JSON, a missing
    /// field, an unexpected status or a body over the size cap.
    #[error("protocol error{}: {message}{}", status_suffix(*.status), excerpt_suffix(.excerpt))]
    Protocol {
        /// The HTTP status of the answer, when there was one.
        status: Option<u16>,
        /// What was wrong.
        message: String,
        /// A short, redacted excerpt of the body.
        excerpt: String,
    },

    /// The token store failed.
    #[error("token store error ({kind}){}: {message}", key_suffix(.key))]
    Store {
        /// What kind of failure, so callers can react to conflicts and lock timeouts.
        kind: StoreErrorKind,
        /// The key concerned, when known.
        key: Option<TokenKey>,
        /// What happened and what to do.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<Source>,
    },

    /// The provider does not support this operation.
    #[error("{operation} is not supported by provider {provider}")]
    Unsupported {
        /// The provider.
        provider: ProviderId,
        /// The operation, for example `introspect`.
        operation: &'static str,
    },

    /// The caller passed something invalid: a malformed id, a callback that
    /// does not match the pending authorization, an unknown provider.
    #[error("invalid input: {message}")]
    InvalidInput {
        /// What is wrong with the input.
        message: String,
    },

    /// The authorization server redirected back with an `error` instead of a
    /// code, most often because the user clicked "deny".
    #[error("authorization was not granted ({error}){}; ask the user to try again and approve the request", description_suffix(.description))]
    AuthorizationDenied {
        /// The `error` parameter, for example `access_denied`.
        error: String,
        /// The `error_description` parameter, when present.
        description: Option<String>,
    },
}

/// The kinds of [`Error::Store`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// A compare-and-swap found another version than the expected one.
    Conflict,
    /// The key lock could not be taken within the allowed wait.
    LockTimeout,
    /// Stored data could not be decoded; it was left untouched.
    Corrupt,
    /// The backend's I/O failed.
    Io,
    /// The backend is unavailable or failed otherwise.
    Other,
    /// The backend cannot be reached now (a refused connection, a timeout,
    /// a database restarting); trying again later may succeed.
    Unavailable,
    /// The key's lease was lost while held (its lock file was replaced, its
    /// lease expired or its session died); the write was refused.
    LeaseLost,
}

impl fmt::Display for StoreErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Conflict => "version conflict",
            Self::LockTimeout => "lock timeout",
            Self::Corrupt => "corrupt data",
            Self::Io => "I/O",
            Self::Other => "backend",
            Self::Unavailable => "unavailable",
            Self::LeaseLost => "lease lost",
        })
    }
}

fn key_prefix(key: &Option<TokenKey>) -> String {
    key.as_ref().map(|k| format!("{k}: ")).unwrap_or_default()
}

fn key_suffix(key: &Option<TokenKey>) -> String {
    key.as_ref()
        .map(|k| format!(" for {k}"))
        .unwrap_or_default()
}

fn status_suffix(status: Option<u16>) -> String {
    status.map(|s| format!(" (HTTP {s})")).unwrap_or_default()
}

fn retry_suffix(retry_after: Option<Duration>) -> String {
    match retry_after {
        Some(d) => format!(" in {}", humantime::format_duration(d)),
        None => " later".to_owned(),
    }
}

fn excerpt_suffix(excerpt: &str) -> String {
    if excerpt.is_empty() {
        String::new()
    } else {
        format!("; body starts: {excerpt:?}")
    }
}

fn description_suffix(description: &Option<String>) -> String {
    description
        .as_ref()
        .map(|d| format!(": {d}"))
        .unwrap_or_default()
}

impl Error {
    /// A [`Error::ReauthorizationRequired`].
    pub fn reauthorization_required(key: Option<TokenKey>, reason: impl Into<String>) -> Self {
        Self::ReauthorizationRequired {
            key,
            reason: reason.into(),
        }
    }

    /// A [`Error::Transient`] without status or source.
    pub fn transient(message: impl Into<String>) -> Self {
        Self::Transient {
            message: message.into(),
            status: None,
            retry_after: None,
            source: None,
        }
    }

    /// A [`Error::Configuration`] without a source.
    pub fn configuration(message: impl Into<String>) -> Self {
        Self::Configuration {
            message: message.into(),
            source: None,
        }
    }

    /// A [`Error::Protocol`].
    pub fn protocol(
        status: Option<u16>,
        message: impl Into<String>,
        excerpt: impl Into<String>,
    ) -> Self {
        Self::Protocol {
            status,
            message: message.into(),
            excerpt: excerpt.into(),
        }
    }

    /// A [`Error::Store`].
    pub fn store(kind: StoreErrorKind, key: Option<TokenKey>, message: impl Into<String>) -> Self {
        Self::Store {
            kind,
            key,
            message: message.into(),
            source: None,
        }
    }

    /// A [`Error::InvalidInput`].
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::InvalidInput {
            message: message.into(),
        }
    }

    /// Attaches a source to variants that carry one; other variants are
    /// returned unchanged.
    #[must_use]
    pub fn with_source(mut self, err: impl StdError + Send + Sync + 'static) -> Self {
        match &mut self {
            Self::Transient { source, .. }
            | Self::Configuration { source, .. }
            | Self::Store { source, .. } => *source = Some(Arc::new(err)),
            _ => {}
        }
        self
    }

    /// The error's class as a short, stable, lower-case name
    /// (`reauthorization_required`, `transient`, `configuration`,
    /// `provider_retired`, `protocol`, `store`, `unsupported`,
    /// `invalid_input`, `authorization_denied`): for metrics labels and
    /// structured logs, where the message would be too varied.
    pub fn class(&self) -> &'static str {
        match self {
            Self::ReauthorizationRequired { .. } => "reauthorization_required",
            Self::Transient { .. } => "transient",
            Self::Configuration { .. } => "configuration",
            Self::ProviderRetired { .. } => "provider_retired",
            Self::Protocol { .. } => "protocol",
            Self::Store { .. } => "store",
            Self::Unsupported { .. } => "unsupported",
            Self::InvalidInput { .. } => "invalid_input",
            Self::AuthorizationDenied { .. } => "authorization_denied",
        }
    }

    /// Whether only a new authorization can help.
    pub fn is_reauthorization_required(&self) -> bool {
        matches!(self, Self::ReauthorizationRequired { .. })
    }

    /// Whether trying again later may succeed without anyone changing
    /// anything: [`Error::Transient`], and store errors of the kinds
    /// [`LockTimeout`](StoreErrorKind::LockTimeout),
    /// [`Unavailable`](StoreErrorKind::Unavailable) and
    /// [`LeaseLost`](StoreErrorKind::LeaseLost).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Transient { .. } => true,
            Self::Store { kind, .. } => matches!(
                kind,
                StoreErrorKind::LockTimeout
                    | StoreErrorKind::Unavailable
                    | StoreErrorKind::LeaseLost
            ),
            _ => false,
        }
    }

    /// How long the server asked to wait, for transient errors.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Transient { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The store error kind, for [`Error::Store`].
    pub fn store_kind(&self) -> Option<StoreErrorKind> {
        match self {
            Self::Store { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    /// The HTTP status behind the error, when there was a response.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Self::Transient { status, .. } | Self::Protocol { status, .. } => *status,
            Self::ProviderRetired { .. } => Some(410),
            _ => None,
        }
    }

    /// Fills in the key of errors that concern one account but were raised
    /// where the key was not known.
    #[must_use]
    pub fn for_key(mut self, for_key: &TokenKey) -> Self {
        match &mut self {
            Self::ReauthorizationRequired { key, .. } | Self::Store { key, .. }
                if key.is_none() =>
            {
                *key = Some(for_key.clone());
            }
            _ => {}
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_what_to_do() {
        let e = Error::reauthorization_required(None, "invalid_grant");
        assert!(e.to_string().contains("authorization flow again"), "{e}");
        let e = Error::Transient {
            message: "server error".into(),
            status: Some(503),
            retry_after: Some(Duration::from_secs(30)),
            source: None,
        };
        assert_eq!(
            e.to_string(),
            "temporary failure (HTTP 503): server error; try again in 30s"
        );
        assert_eq!(e.retry_after(), Some(Duration::from_secs(30)));
        assert_eq!(e.http_status(), Some(503));
    }

    #[test]
    fn error_is_clone_send_sync() {
        fn assert_traits<T: Clone + Send + Sync + 'static>() {}
        assert_traits::<Error>();
    }
}
