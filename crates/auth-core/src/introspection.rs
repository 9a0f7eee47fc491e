//! What the authorization server says about a token (RFC 7662 and its
//! provider-specific cousins such as Fitbit's v1.1 introspect and Google's
//! tokeninfo).

use std::collections::BTreeMap;
use std::time::SystemTime;

/// One granted scope, with its access level where the provider states one
/// (Fitbit's `{ACTIVITY=READ_WRITE}` gives `activity` with `READ_WRITE`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GrantedScope {
    /// The scope name.
    pub name: String,
    /// The access level, when the provider states one.
    pub access: Option<String>,
}

impl GrantedScope {
    /// A scope without an access level.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            access: None,
        }
    }

    /// A scope with an access level.
    pub fn with_access(name: impl Into<String>, access: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            access: Some(access.into()),
        }
    }
}

/// The server's view of a token. Contains no secret.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct Introspection {
    /// Whether the token is currently active.
    pub active: bool,
    /// The granted scopes.
    pub scopes: Vec<GrantedScope>,
    /// The client the token was issued to.
    pub client_id: Option<String>,
    /// The user or subject the token belongs to.
    pub subject: Option<String>,
    /// The kind of token, as the server names it.
    pub token_type: Option<String>,
    /// When the token expires.
    pub expires_at: Option<SystemTime>,
    /// When the token was issued.
    pub issued_at: Option<SystemTime>,
    /// Other fields the server returned (never secrets).
    pub extras: BTreeMap<String, serde_json::Value>,
}

impl Introspection {
    /// An inactive token: the server knows nothing more about it.
    pub fn inactive() -> Self {
        Self::default()
    }

    /// An active token with the given scopes.
    pub fn active(scopes: Vec<GrantedScope>) -> Self {
        Self {
            active: true,
            scopes,
            ..Self::default()
        }
    }
}
