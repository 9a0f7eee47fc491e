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
    #[error("temporary failure{}: {message}{}; try again{}", status_suffix(*.status), sent_suffix(*.sent, *.status, .message), retry_suffix(*.retry_after))]
    Transient {
        /// What happened.
        message: String,
        /// Whether the request may have reached the server. A refresh
        /// whose outcome is unknown may have rotated the refresh token.
        sent: Sent,
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

/// Whether a failed request may have been processed by the server, for
/// [`Error::Transient`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sent {
    /// Nothing left this host: the connection, DNS or TLS failed before the
    /// request was written. Retrying is an ordinary new request.
    No,
    /// The request may have been processed: a timeout, a dropped
    /// connection, a 5xx, or an answer about a request the server saw. The
    /// safe reading whenever it is not known.
    Unknown,
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
        Some(d) => format!(" in {}", human_duration(d)),
        None => " later".to_owned(),
    }
}

/// Says whether anything was sent, unless the message already does.
/// (An answer with a status speaks for itself.)
fn sent_suffix(sent: Sent, status: Option<u16>, message: &str) -> &'static str {
    match sent {
        _ if status.is_some() => "",
        Sent::No if !message.contains("nothing was sent") => "; nothing was sent",
        Sent::Unknown if !message.contains("outcome is unknown") => "; the outcome is unknown",
        _ => "",
    }
}

/// A duration rounded for people: "15s", "4m 10s", "2h 5m", "3d 4h"; at
/// most two units, never milliseconds except below a second ("250ms").
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        let ms = d.as_millis();
        return if ms == 0 {
            "0s".to_owned()
        } else {
            format!("{ms}ms")
        };
    }
    // Round to the nearest second.
    let secs = secs + u64::from(d.subsec_millis() >= 500);
    let units = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")];
    let mut parts = Vec::new();
    let mut rest = secs;
    for (size, name) in units {
        if rest >= size {
            parts.push(format!("{}{name}", rest / size));
            rest %= size;
        }
        if parts.len() == 2 || (!parts.is_empty() && rest == 0) {
            break;
        }
    }
    parts.join(" ")
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

    /// A [`Error::Transient`] without status or source, whose request may
    /// have been processed ([`Sent::Unknown`], the safe reading).
    pub fn transient(message: impl Into<String>) -> Self {
        Self::Transient {
            message: message.into(),
            sent: Sent::Unknown,
            status: None,
            retry_after: None,
            source: None,
        }
    }

    /// A [`Error::Transient`] for a request that never left this host
    /// ([`Sent::No`]: a refused connection, DNS, TLS).
    pub fn not_sent(message: impl Into<String>) -> Self {
        Self::Transient {
            message: message.into(),
            sent: Sent::No,
            status: None,
            retry_after: None,
            source: None,
        }
    }

    /// For [`Error::Transient`]: the same error, asking for a retry after
    /// `after`. Other variants are returned as they are.
    pub(crate) fn retry_in(mut self, after: Duration) -> Self {
        if let Self::Transient { retry_after, .. } = &mut self {
            *retry_after = Some(after);
        }
        self
    }

    /// For [`Error::Transient`]: whether its request may have been
    /// processed. `None` for other variants.
    pub fn sent(&self) -> Option<Sent> {
        match self {
            Self::Transient { sent, .. } => Some(*sent),
            _ => None,
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
            sent: Sent::Unknown,
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
        let e = Error::not_sent("could not connect");
        assert_eq!(
            e.to_string(),
            "temporary failure: could not connect; nothing was sent; try again later"
        );
        assert_eq!(e.sent(), Some(Sent::No));
        let e = Error::transient("connection reset");
        assert_eq!(
            e.to_string(),
            "temporary failure: connection reset; the outcome is unknown; try again later"
        );
    }

    #[test]
    fn durations_are_rounded_for_people() {
        let d = |s: u64| Duration::from_secs(s);
        assert_eq!(human_duration(Duration::new(14, 942_842_587)), "15s");
        assert_eq!(human_duration(d(250)), "4m 10s");
        assert_eq!(human_duration(d(240)), "4m");
        assert_eq!(human_duration(d(7_530)), "2h 5m");
        assert_eq!(human_duration(d(7_531)), "2h 5m");
        assert_eq!(human_duration(d(90_000)), "1d 1h");
        assert_eq!(human_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(human_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn error_is_clone_send_sync() {
        fn assert_traits<T: Clone + Send + Sync + 'static>() {}
        assert_traits::<Error>();
    }
}
