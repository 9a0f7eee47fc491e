//! The move from legacy Fitbit to Google Health in the page (feature
//! `fitbit-migration`), with the identity check of
//! [`auth_fitbit::migration::Bridge`]: the Google account that consents
//! must report, as its `legacyUserId`, the Fitbit `user_id` stored with
//! the account's legacy token. A refusal stores nothing and keeps the
//! Fitbit token.

use auth_core::{
    AuthorizeRequest, Callback, Error, PendingAuthorization, ProviderId, TokenKey, TokenManager,
    TokenProvider as _,
};
use auth_fitbit::Scope;
use auth_fitbit::migration::{Access, Bridge, map_scopes};
use auth_oauth2::OAuth2Provider;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tower_sessions::Session;

use crate::begin::{BeginArgs, begin, known_provider, unavailable};
use crate::connect::{Connect, Mount, User};
use crate::parked::Kind;
use crate::problem::Problem;
use crate::status::{ConnectionState, Row};

/// The move from a legacy provider (Fitbit) to Google Health, offered in
/// the page for accounts on the first and not yet on the second. Give it
/// to [`ConnectBuilder::fitbit_migration`](crate::ConnectBuilder::fitbit_migration).
#[derive(Debug, Clone)]
pub struct FitbitMigration {
    legacy: ProviderId,
    google: ProviderId,
    access: Access,
    bridge: Bridge,
}

impl FitbitMigration {
    /// Moves accounts from `legacy` to `google`; both must be registered
    /// with `manager` (pass the same Google Health provider, built with
    /// [`GoogleHealthProvider::builder`](auth_fitbit::GoogleHealthProvider::builder):
    /// its identity endpoint makes the check). Asks Google for read access.
    pub fn new(manager: TokenManager, legacy: ProviderId, google: OAuth2Provider) -> Self {
        let google_id = google.id().clone();
        let bridge =
            Bridge::new(manager, legacy.clone(), google_id.clone()).with_identity_check(google);
        Self {
            legacy,
            google: google_id,
            access: Access::ReadOnly,
            bridge,
        }
    }

    /// Asks Google for read and write access instead of read only.
    #[must_use]
    pub fn read_write(mut self) -> Self {
        self.access = Access::ReadWrite;
        self
    }

    /// Exchanges the code, checks the identity and stores the Google
    /// token; refuses (nothing stored) when the identities differ.
    pub(crate) async fn link(
        &self,
        pending: &PendingAuthorization,
        callback: &Callback,
    ) -> Result<(), Error> {
        self.bridge.link(pending, callback).await.map(drop)
    }

    /// Marks the legacy row movable when the account is there and not yet
    /// on Google Health.
    pub(crate) fn offer(&self, rows: &mut [Row<'_>]) {
        let on_google = rows
            .iter()
            .any(|r| *r.provider() == self.google && r.state() != ConnectionState::NotConnected);
        if on_google {
            for row in rows.iter_mut().filter(|r| *r.provider() == self.legacy) {
                if row.state() == ConnectionState::NotConnected {
                    continue;
                }
                let row = row.owned_mut();
                if row.detail.is_none() {
                    row.detail = Some(
                        "This account has moved to Google Health. You can disconnect the old \
                         Fitbit connection."
                            .to_owned(),
                    );
                }
            }
            return;
        }
        for row in rows.iter_mut().filter(|r| *r.provider() == self.legacy) {
            if row.state() != ConnectionState::NotConnected {
                let row = row.owned_mut();
                row.move_to = Some(self.google.clone());
                if row.detail.is_none() {
                    row.detail = Some(
                        "Fitbit's own sign-in has been replaced by Google's. Move this connection \
                         to Google Health, signed in to the Google account your Fitbit account \
                         moved to; we check that it is the same person."
                            .to_owned(),
                    );
                }
            }
        }
    }
}

/// `GET /move/{provider}`: begins the Google authorization that moves the
/// account, with the scopes that replace its legacy ones.
pub(crate) async fn begin_move(
    State(connect): State<Connect>,
    User(user): User,
    mount: Mount,
    session: Session,
    Path(provider): Path<String>,
) -> Response {
    let Some(user) = user else {
        return Problem::signed_out().into_response();
    };
    let page = mount.page();
    let Some(migration) = connect.inner.migration.clone() else {
        return Problem::new(
            StatusCode::NOT_FOUND,
            "No move offered",
            "This app offers no move between providers.",
        )
        .back_to(page)
        .into_response();
    };
    let provider = match known_provider(&connect, &provider) {
        Ok(provider) if provider == migration.legacy => provider,
        Ok(_) | Err(_) => {
            return Problem::new(
                StatusCode::NOT_FOUND,
                "No move offered",
                "This app offers no move from that provider.",
            )
            .back_to(page)
            .into_response();
        }
    };
    let manager = connect.manager();
    let legacy_key = TokenKey::new(provider.clone(), user.clone());
    let google_key = TokenKey::new(migration.google.clone(), user.clone());
    let (legacy, google) = match (
        manager.stored(&legacy_key).await,
        manager.stored(&google_key).await,
    ) {
        (Ok(legacy), Ok(google)) => (legacy, google),
        (Err(error), _) | (_, Err(error)) => return unavailable(&connect, &provider, &error, page),
    };
    let Some(legacy) = legacy else {
        return Problem::new(
            StatusCode::BAD_REQUEST,
            "Nothing to move",
            format!(
                "You have no {} connection to move. Connect {} directly instead.",
                connect.display_name(&provider),
                connect.display_name(&migration.google)
            ),
        )
        .back_to(page)
        .into_response();
    };
    if google.is_some() {
        return Problem::new(
            StatusCode::BAD_REQUEST,
            "Already moved",
            format!(
                "Your account is already connected to {}.",
                connect.display_name(&migration.google)
            ),
        )
        .back_to(page)
        .into_response();
    }
    let legacy_scopes: Vec<Scope> = legacy.scopes().iter().map(|s| Scope::parse(s)).collect();
    let (google_scopes, _unmapped) = map_scopes(&legacy_scopes, migration.access);
    let request = AuthorizeRequest::new()
        .account(user.clone())
        .scopes(google_scopes)
        .prompt("consent");
    begin(
        &connect,
        &session,
        BeginArgs {
            user,
            provider: migration.google.clone(),
            request,
            return_to: page.clone(),
            kind: Kind::Move,
            page,
        },
    )
    .await
}
