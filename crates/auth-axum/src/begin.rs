//! `GET /connect/{provider}`: begins an authorization and sends the browser
//! to the provider.

use std::collections::BTreeSet;

use auth_core::{AccountId, AuthorizeRequest, ProviderId, TokenKey};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use tower_sessions::Session;

use crate::connect::{Connect, Mount, User};
use crate::parked::{self, Kind, Parked};
use crate::problem::Problem;

/// The query of `/connect/{provider}`.
#[derive(Deserialize)]
pub(crate) struct ConnectQuery {
    /// More scopes to ask for, separated by spaces.
    #[serde(default)]
    scope: Option<String>,
    /// An allowed path to come back to.
    #[serde(default)]
    return_to: Option<String>,
}

pub(crate) async fn connect(
    State(connect): State<Connect>,
    User(user): User,
    mount: Mount,
    session: Session,
    Path(provider): Path<String>,
    Query(query): Query<ConnectQuery>,
) -> Response {
    let Some(user) = user else {
        return Problem::signed_out().into_response();
    };
    let page = mount.page();
    let provider = match known_provider(&connect, &provider) {
        Ok(provider) => provider,
        Err(problem) => return problem.back_to(page).into_response(),
    };
    let return_to = match query.return_to {
        None => page.clone(),
        Some(path) if connect.inner.return_to.contains(&path) => path,
        Some(_) => {
            return Problem::new(
                StatusCode::BAD_REQUEST,
                "That return address is not allowed",
                "This link asks to send you somewhere after connecting that this app does not \
                 allow, so it was not followed. Start again from the connected accounts page.",
            )
            .back_to(page)
            .into_response();
        }
    };
    let mut request = AuthorizeRequest::new().account(user.clone());
    if let Some(scope) = query.scope {
        let asked: BTreeSet<String> = scope.split_whitespace().map(str::to_owned).collect();
        let allowed = connect.inner.extra_scopes.get(&provider);
        let refused: Vec<&str> = asked
            .iter()
            .filter(|s| !allowed.is_some_and(|allowed| allowed.contains(*s)))
            .map(String::as_str)
            .collect();
        if !refused.is_empty() {
            return Problem::new(
                StatusCode::BAD_REQUEST,
                "That permission is not offered",
                format!(
                    "This link asks {} for permissions this app does not offer ({}), so it was \
                     not followed. Start again from the connected accounts page.",
                    connect.display_name(&provider),
                    refused.join(", ")
                ),
            )
            .back_to(page)
            .into_response();
        }
        // Keep what the account granted already, and ask for more.
        let key = TokenKey::new(provider.clone(), user.clone());
        let mut scopes: BTreeSet<String> = match connect.manager().stored(&key).await {
            Ok(stored) => stored
                .map(|token| token.scopes().clone())
                .unwrap_or_default(),
            Err(error) => return unavailable(&connect, &provider, &error, page),
        };
        scopes.extend(asked);
        request = request.scopes(scopes);
    }
    begin(
        &connect,
        &session,
        BeginArgs {
            user,
            provider,
            request,
            return_to,
            kind: Kind::Connect,
            page,
        },
    )
    .await
}

/// What [`begin`] parks and sends.
pub(crate) struct BeginArgs {
    pub(crate) user: AccountId,
    pub(crate) provider: ProviderId,
    pub(crate) request: AuthorizeRequest,
    pub(crate) return_to: String,
    pub(crate) kind: Kind,
    pub(crate) page: String,
}

/// Builds the authorize URL with the configured redirect URI, parks the
/// pending authorization in the session, and redirects to the provider.
pub(crate) async fn begin(connect: &Connect, session: &Session, args: BeginArgs) -> Response {
    let request = args
        .request
        .redirect_uri(connect.inner.redirect_uri.as_str());
    let pending = match connect
        .manager()
        .begin_authorization(&args.provider, request)
    {
        Ok(pending) => pending,
        Err(error) => return unavailable(connect, &args.provider, &error, args.page),
    };
    let location = pending.authorize_url.to_string();
    let parked = Parked::new(
        pending,
        args.user.clone(),
        args.return_to,
        connect.inner.pending_ttl,
        args.kind,
    );
    if let Err(error) = parked::park(session, parked).await {
        return Problem::sessions(&error).back_to(args.page).into_response();
    }
    tracing::info!(provider = %args.provider, user = %args.user, kind = ?args.kind, "authorization started");
    Redirect::to(&location).into_response()
}

/// The provider named in the path, if the manager has it.
pub(crate) fn known_provider(connect: &Connect, name: &str) -> Result<ProviderId, Problem> {
    ProviderId::new(name)
        .ok()
        .filter(|id| connect.manager().provider(id).is_some())
        .ok_or_else(|| {
            Problem::new(
                StatusCode::NOT_FOUND,
                "No such provider",
                "This app has no provider by that name. Pick one from the connected accounts page.",
            )
        })
}

/// A page for an error of the manager or provider while starting.
pub(crate) fn unavailable(
    connect: &Connect,
    provider: &ProviderId,
    error: &auth_core::Error,
    page: String,
) -> Response {
    tracing::warn!(provider = %provider, error = %error, "could not start an authorization");
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("Could not connect {}", connect.display_name(provider)),
        format!("{error}. Nothing was changed; please try again later."),
    )
    .back_to(page)
    .into_response()
}
