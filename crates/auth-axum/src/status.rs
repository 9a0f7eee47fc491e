//! What the page shows, as data: one [`Connection`] per provider, and the
//! `GET /connections` route that answers it as JSON. Never a token.

use std::time::SystemTime;

use auth_core::{AccountId, Error, ProviderId, TokenKey};
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::connect::{Connect, User};

/// The current user's connections, one per provider of the manager.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Connections {
    /// The signed-in user.
    pub user: AccountId,
    /// One per provider, in the manager's order.
    pub connections: Vec<Connection>,
}

/// Where one provider stands for the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionState {
    /// A usable token is stored.
    Connected,
    /// A token is stored but the provider no longer accepts it: the user
    /// must connect again.
    NeedsLogin,
    /// The provider has been switched off; see [`Connection::successor`].
    Retired,
    /// Nothing is stored.
    NotConnected,
    /// The state could not be found out just now (the provider or the
    /// store failed); try again later.
    Unavailable,
}

/// One provider's row.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Connection {
    /// The provider's id, as in the routes.
    pub provider: ProviderId,
    /// Its name for people.
    pub name: String,
    /// Where it stands.
    pub state: ConnectionState,
    /// Whether a usable token is stored.
    pub connected: bool,
    /// Whether the user must connect again.
    pub needs_login: bool,
    /// The scopes granted (when connected).
    pub scopes: Vec<String>,
    /// When the current access token expires, RFC 3339 (when connected).
    /// The manager refreshes it before then; this is not when the
    /// connection ends.
    pub expires_at: Option<String>,
    /// For a retired provider, the provider to move to.
    pub successor: Option<String>,
    /// The provider this account can move to from here, with
    /// `GET /move/{provider}` (the Fitbit to Google Health move).
    pub move_to: Option<ProviderId>,
    /// A sentence for people about a state other than connected.
    pub detail: Option<String>,
}

impl Connection {
    fn new(provider: ProviderId, name: String, state: ConnectionState) -> Self {
        Self {
            provider,
            name,
            state,
            connected: state == ConnectionState::Connected,
            needs_login: state == ConnectionState::NeedsLogin,
            scopes: Vec::new(),
            expires_at: None,
            successor: None,
            move_to: None,
            detail: None,
        }
    }
}

impl Connect {
    /// The connections of `user`, as the page and `GET /connections` show
    /// them. A connected account costs a cache lookup (the manager
    /// refreshes an expiring token first); others cost a store read.
    pub async fn connections(&self, user: &AccountId) -> Connections {
        let mut connections = Vec::with_capacity(self.inner.providers.len());
        for provider in &self.inner.providers {
            connections.push(self.connection(user, provider.clone()).await);
        }
        #[cfg(feature = "fitbit-migration")]
        if let Some(migration) = &self.inner.migration {
            migration.offer(&mut connections);
        }
        Connections {
            user: user.clone(),
            connections,
        }
    }

    async fn connection(&self, user: &AccountId, provider: ProviderId) -> Connection {
        let name = self.display_name(&provider);
        let key = TokenKey::new(provider.clone(), user.clone());
        match self.manager().access_token(&key).await {
            Ok(token) => {
                let set = token.token_set();
                let mut row = Connection::new(provider, name, ConnectionState::Connected);
                row.scopes = set.scopes().iter().cloned().collect();
                row.expires_at = set.expires_at().map(rfc3339);
                row
            }
            Err(error) if error.is_reauthorization_required() => {
                match self.manager().stored(&key).await {
                    Ok(None) => Connection::new(provider, name, ConnectionState::NotConnected),
                    Ok(Some(_)) => {
                        let mut row = Connection::new(provider, name, ConnectionState::NeedsLogin);
                        row.detail = Some(format!(
                            "{} no longer accepts this app's access. Reconnect to go on.",
                            row.name
                        ));
                        row
                    }
                    Err(error) => unavailable(provider, name, &error),
                }
            }
            Err(Error::ProviderRetired { successor, .. }) => {
                let mut row = Connection::new(provider, name, ConnectionState::Retired);
                row.detail = Some(format!(
                    "{} has been switched off; its data now comes from {successor}.",
                    row.name
                ));
                row.successor = Some(successor);
                row
            }
            Err(error) => unavailable(provider, name, &error),
        }
    }
}

fn unavailable(provider: ProviderId, name: String, error: &Error) -> Connection {
    tracing::warn!(provider = %provider, error = %error, "could not tell a connection's state");
    let mut row = Connection::new(provider, name, ConnectionState::Unavailable);
    row.detail = Some(format!(
        "Could not check this connection just now ({}). Try again later.",
        error.class().replace('_', " ")
    ));
    row
}

pub(crate) fn rfc3339(at: SystemTime) -> String {
    use std::fmt::Write as _;
    // Sized for "2026-12-07T16:02:03Z", so it is written without growing.
    let mut out = String::with_capacity(20);
    let _ = write!(out, "{}", humantime::format_rfc3339_seconds(at));
    out
}

/// `GET /connections`.
pub(crate) async fn connections(State(connect): State<Connect>, User(user): User) -> Response {
    let Some(user) = user else {
        return (
            StatusCode::UNAUTHORIZED,
            Json(serde_json::json!({
                "error": "not signed in: sign in to this app first"
            })),
        )
            .into_response();
    };
    let connections = connect.connections(&user).await;
    // Room for five rows without growing (axum's `Json` starts at 128 bytes).
    let mut body = Vec::with_capacity(2048);
    match serde_json::to_writer(&mut body, &connections) {
        Ok(()) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(error) => {
            tracing::error!(error = %error, "could not serialize the connections");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
