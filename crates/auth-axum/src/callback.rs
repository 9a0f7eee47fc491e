//! `GET /callback`: checks the provider's answer against the authorization
//! parked in this browser's session, then finishes it in a task of its own.

use auth_core::{Callback, Error, PendingAuthorization};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use tower_sessions::Session;

use crate::connect::{Connect, Mount, User};
use crate::page::{Flash, set_flash};
use crate::parked::{self, Kind, Parked};
use crate::problem::Problem;

pub(crate) async fn callback(
    State(connect): State<Connect>,
    User(user): User,
    mount: Mount,
    session: Session,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let page = mount.page();
    let not_ours = || {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "This sign-in cannot be finished here",
            "This answer does not belong to a connection started in this browser: it was started \
             in another browser, has been used already, or did not come from this app. Nothing \
             was changed. Start again from your connected accounts page.",
        )
        .back_to(page.clone())
    };
    let callback = match Callback::parse(query.as_deref().unwrap_or_default()) {
        Ok(callback) if callback.state().is_some() => callback,
        _ => return not_ours().into_response(),
    };
    let parked = match parked::take(&session, &callback).await {
        Ok(Some(parked)) => parked,
        Ok(None) => {
            tracing::warn!("a callback matched no authorization of its session");
            return not_ours().into_response();
        }
        Err(error) => return Problem::sessions(&error).back_to(page).into_response(),
    };
    let provider = parked.pending.provider.clone();
    let name = connect.display_name(&provider);
    if let Err(problem) = check(
        &connect,
        &mount,
        &headers,
        user.as_ref(),
        &parked,
        &callback,
    ) {
        tracing::warn!(provider = %provider, "a callback was refused");
        return problem.back_to(page).into_response();
    }
    if let Some(error) = callback.error() {
        tracing::info!(provider = %provider, user = %parked.user, error, "the authorization was declined");
        return denied(&name, error, callback.error_description())
            .back_to(page)
            .into_response();
    }

    // From here the code goes to the provider. The exchange and the save
    // run in a task of their own: if the browser goes away and axum drops
    // this handler, they still finish, and the next page load shows the
    // account connected.
    let Parked {
        pending,
        user,
        return_to,
        kind,
        ..
    } = parked;
    let task = tokio::spawn(finish(connect.clone(), pending, callback, kind));
    let outcome = match task.await {
        Ok(outcome) => outcome,
        Err(error) => {
            tracing::error!(provider = %provider, error = %error, "the code exchange task failed");
            return Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("Could not connect {name}"),
                "Something went wrong on our side while finishing. Reload your connected \
                 accounts page to see whether it worked.",
            )
            .back_to(page)
            .into_response();
        }
    };
    match outcome {
        Ok(()) => {
            tracing::info!(provider = %provider, user = %user, kind = ?kind, "account connected");
            let text = match kind {
                Kind::Connect => format!("Connected {name}."),
                Kind::Move => format!("Moved to {name}. Your account there is connected."),
            };
            if let Err(error) = set_flash(&session, Flash::ok(text)).await {
                tracing::warn!(error = %error, "could not keep the confirmation message");
            }
            Redirect::to(&return_to).into_response()
        }
        Err(error) => {
            tracing::warn!(provider = %provider, user = %user, error = %error, "the authorization failed");
            failed(&name, kind, &error).back_to(page).into_response()
        }
    }
}

/// The checks after the state matched: time, user, issuer, redirect URI.
fn check(
    connect: &Connect,
    mount: &Mount,
    headers: &HeaderMap,
    user: Option<&auth_core::AccountId>,
    parked: &Parked,
    callback: &Callback,
) -> Result<(), Problem> {
    let minutes = connect.inner.pending_ttl.as_secs().div_ceil(60);
    if parked.is_expired() {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "That took too long",
            format!(
                "A connection must be finished within {minutes} minutes of starting it. Nothing \
                 was changed; start again from your connected accounts page."
            ),
        ));
    }
    if user != Some(&parked.user) {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "You are signed in as someone else",
            "This connection was started by another user of this app in this browser. Nothing was \
             changed. Sign in as that user, or start again.",
        ));
    }
    let provider = &parked.pending.provider;
    if let (Some(expected), Some(got)) = (connect.inner.issuers.get(provider), callback.iss())
        && got != expected
    {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "The answer came from the wrong server",
            format!(
                "This answer names another server than {} (RFC 9207), so it was not used. Nothing \
                 was changed; start again.",
                connect.display_name(provider)
            ),
        ));
    }
    let configured = &connect.inner.redirect_uri;
    let authority = authority(configured);
    let host_matches = headers
        .get(header::HOST)
        .is_none_or(|host| host.as_bytes().eq_ignore_ascii_case(authority.as_bytes()));
    if parked.pending.redirect_uri.as_deref() != Some(configured.as_str())
        || mount.path("/callback") != configured.path()
        || !host_matches
    {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "This answer arrived at the wrong address",
            format!(
                "The provider's answer must arrive at exactly {configured}, the address this app \
                 registered, so it was not used. Nothing was changed."
            ),
        ));
    }
    Ok(())
}

/// `host[:port]` of a URL, as a `Host` header carries it.
fn authority(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

/// Exchanges the code and saves the grant (or, for a move, checks the
/// Google account's identity first).
async fn finish(
    connect: Connect,
    pending: PendingAuthorization,
    callback: Callback,
    kind: Kind,
) -> Result<(), Error> {
    match kind {
        Kind::Connect => connect
            .manager()
            .complete_authorization(&pending, &callback)
            .await
            .map(drop),
        Kind::Move => finish_move(&connect, &pending, &callback).await,
    }
}

#[cfg(feature = "fitbit-migration")]
async fn finish_move(
    connect: &Connect,
    pending: &PendingAuthorization,
    callback: &Callback,
) -> Result<(), Error> {
    match &connect.inner.migration {
        Some(migration) => migration.link(pending, callback).await,
        None => Err(Error::configuration(
            "this app does not offer the move to Google Health",
        )),
    }
}

#[cfg(not(feature = "fitbit-migration"))]
async fn finish_move(
    _connect: &Connect,
    _pending: &PendingAuthorization,
    _callback: &Callback,
) -> Result<(), Error> {
    Err(Error::configuration(
        "this app does not offer the move to Google Health",
    ))
}

fn denied(name: &str, error: &str, description: Option<&str>) -> Problem {
    if error == "access_denied" {
        return Problem::new(
            StatusCode::FORBIDDEN,
            format!("{name} was not connected"),
            format!(
                "You chose not to give this app access at {name}. Nothing was changed: any \
                 connection you had stays as it was. You can connect any time from your connected \
                 accounts page."
            ),
        );
    }
    let why = description.map_or_else(String::new, |d| format!(" ({d})"));
    Problem::new(
        StatusCode::BAD_GATEWAY,
        format!("{name} did not give access"),
        format!(
            "{name} answered with the error {error}{why}. Nothing was changed; please try again \
             later."
        ),
    )
}

fn failed(name: &str, kind: Kind, error: &Error) -> Problem {
    match (kind, error) {
        (Kind::Move, Error::InvalidInput { message, .. }) => {
            // The identity check's two refusals (auth_fitbit's Bridge::link).
            let why = if message.contains("no Fitbit history") {
                "The Google account you chose has no Fitbit history, so it is not the one your \
                 Fitbit account moved to."
            } else if message.contains("different Google account") {
                "The Google account you chose belongs to a different Fitbit user than the one \
                 connected here."
            } else {
                "The answer from Google did not match this move."
            };
            Problem::new(
                StatusCode::FORBIDDEN,
                "Your account was not moved",
                format!(
                    "{why} Nothing was stored from Google, and your Fitbit connection is kept as \
                     it was. Try again, and choose the Google account your Fitbit account moved \
                     to."
                ),
            )
        }
        (_, Error::ReauthorizationRequired { .. }) => Problem::new(
            StatusCode::BAD_REQUEST,
            format!("{name} did not accept this sign-in"),
            format!(
                "{name} refused to finish it (it may have been used already or expired). Nothing \
                 was changed; start again from your connected accounts page."
            ),
        ),
        (_, Error::ProviderRetired { .. }) => Problem::new(
            StatusCode::GONE,
            format!("{name} has been switched off"),
            format!("{error}. Nothing was changed."),
        ),
        (_, Error::InvalidInput { .. } | Error::AuthorizationDenied { .. }) => Problem::new(
            StatusCode::BAD_REQUEST,
            format!("Could not connect {name}"),
            format!("{error}. Nothing was changed."),
        ),
        _ => Problem::new(
            StatusCode::BAD_GATEWAY,
            format!("Could not connect {name}"),
            format!(
                "{error}. If {name} did not finish, nothing was changed; reload your connected \
                 accounts page to see, and try again."
            ),
        ),
    }
}
