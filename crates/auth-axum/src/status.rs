//! What the page shows, as data: one [`Connection`] per provider, and the
//! `GET /connections` route that answers it as JSON. Never a token.

use std::time::SystemTime;

use auth_core::{AccessToken, AccountId, Error, ProviderId, TokenKey};
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::ser::SerializeStruct as _;

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

/// A row as it is made: a connected one borrows its name and its token's
/// scopes, so `GET /connections` writes it without copying them; any other
/// row (and any row the page or [`Connect::connections`] asks for) is a
/// [`Connection`].
pub(crate) enum Row<'a> {
    Connected {
        provider: &'a ProviderId,
        name: &'a str,
        token: AccessToken,
    },
    Owned(Connection),
}

// `provider`, `state` and `owned_mut` are for the move from legacy Fitbit,
// behind its feature.
impl Row<'_> {
    #[cfg(feature = "fitbit-migration")]
    pub(crate) fn provider(&self) -> &ProviderId {
        match self {
            Row::Connected { provider, .. } => provider,
            Row::Owned(row) => &row.provider,
        }
    }

    #[cfg(feature = "fitbit-migration")]
    pub(crate) fn state(&self) -> ConnectionState {
        match self {
            Row::Connected { .. } => ConnectionState::Connected,
            Row::Owned(row) => row.state,
        }
    }

    /// The row as a [`Connection`], made one in place if it was not.
    #[cfg(feature = "fitbit-migration")]
    pub(crate) fn owned_mut(&mut self) -> &mut Connection {
        if let Row::Connected {
            provider,
            name,
            token,
        } = self
        {
            *self = Row::Owned(connected(provider, name, token));
        }
        match self {
            Row::Owned(row) => row,
            Row::Connected { .. } => unreachable!("made owned above"),
        }
    }

    fn into_owned(self) -> Connection {
        match self {
            Row::Connected {
                provider,
                name,
                token,
            } => connected(provider, name, &token),
            Row::Owned(row) => row,
        }
    }
}

/// A connected provider's row, its name and scopes copied.
fn connected(provider: &ProviderId, name: &str, token: &AccessToken) -> Connection {
    let set = token.token_set();
    let mut row = Connection::new(
        provider.clone(),
        name.to_owned(),
        ConnectionState::Connected,
    );
    row.scopes = set.scopes().iter().cloned().collect();
    row.expires_at = set.expires_at().map(rfc3339);
    row
}

impl Serialize for Row<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Row::Owned(row) => row.serialize(serializer),
            Row::Connected {
                provider,
                name,
                token,
            } => {
                let set = token.token_set();
                // The fields of `Connection`, in its order, borrowed.
                let mut row = serializer.serialize_struct("Connection", 10)?;
                row.serialize_field("provider", provider)?;
                row.serialize_field("name", name)?;
                row.serialize_field("state", &ConnectionState::Connected)?;
                row.serialize_field("connected", &true)?;
                row.serialize_field("needs_login", &false)?;
                row.serialize_field("scopes", set.scopes())?;
                row.serialize_field("expires_at", &set.expires_at().map(Rfc3339))?;
                row.serialize_field("successor", &None::<&str>)?;
                row.serialize_field("move_to", &None::<&ProviderId>)?;
                row.serialize_field("detail", &None::<&str>)?;
                row.end()
            }
        }
    }
}

/// An expiry written as RFC 3339 straight into the serializer.
struct Rfc3339(SystemTime);

impl Serialize for Rfc3339 {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&humantime::format_rfc3339_seconds(self.0))
    }
}

impl Connect {
    /// The connections of `user`, as the page and `GET /connections` show
    /// them. A connected account costs a cache lookup (the manager
    /// refreshes an expiring token first); others cost a store read.
    pub async fn connections(&self, user: &AccountId) -> Connections {
        Connections {
            user: user.clone(),
            connections: self
                .rows(user)
                .await
                .into_iter()
                .map(Row::into_owned)
                .collect(),
        }
    }

    /// One row per provider, with the move offered where it applies.
    pub(crate) async fn rows(&self, user: &AccountId) -> Vec<Row<'_>> {
        let mut rows = Vec::with_capacity(self.inner.providers.len());
        for provider in &self.inner.providers {
            rows.push(self.row(user, provider).await);
        }
        #[cfg(feature = "fitbit-migration")]
        if let Some(migration) = &self.inner.migration {
            migration.offer(&mut rows);
        }
        rows
    }

    async fn row<'a>(&'a self, user: &AccountId, provider: &'a ProviderId) -> Row<'a> {
        let key = TokenKey::new(provider.clone(), user.clone());
        match self.manager().access_token(&key).await {
            Ok(token) => Row::Connected {
                provider,
                name: self.name_of(provider),
                token,
            },
            Err(error) => Row::Owned(self.unconnected(&key, error).await),
        }
    }

    /// The row of a provider whose token could not be had.
    async fn unconnected(&self, key: &TokenKey, error: Error) -> Connection {
        let provider = key.provider.clone();
        let name = self.display_name(&provider);
        match error {
            error if error.is_reauthorization_required() => {
                match self.manager().stored(key).await {
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
            Error::ProviderRetired { successor, .. } => {
                let mut row = Connection::new(provider, name, ConnectionState::Retired);
                row.detail = Some(format!(
                    "{} has been switched off; its data now comes from {successor}.",
                    row.name
                ));
                row.successor = Some(successor);
                row
            }
            error => unavailable(provider, name, &error),
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
    // The rows are written as they are, without copying a connected
    // row's name and scopes into a `Connection` first; the JSON is the
    // same as that of `Connections` (a test compares them).
    #[derive(Serialize)]
    struct Body<'a> {
        user: &'a AccountId,
        connections: &'a [Row<'a>],
    }
    let rows = connect.rows(&user).await;
    // Room for five rows without growing (axum's `Json` starts at 128 bytes).
    let mut body = Vec::with_capacity(2048);
    let written = serde_json::to_writer(
        &mut body,
        &Body {
            user: &user,
            connections: &rows,
        },
    );
    match written {
        Ok(()) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(error) => {
            tracing::error!(error = %error, "could not serialize the connections");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
