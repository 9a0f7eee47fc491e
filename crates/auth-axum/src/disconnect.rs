//! `POST /disconnect/{provider}`: revokes at the provider, then deletes the
//! token here. CSRF protected.

use auth_core::{Error, TokenKey};
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use tower_sessions::Session;

use crate::begin::known_provider;
use crate::connect::{Connect, Mount, User};
use crate::page::{Flash, set_flash};
use crate::problem::Problem;

/// The form the page posts.
#[derive(Deserialize)]
pub(crate) struct DisconnectForm {
    #[serde(default)]
    csrf: String,
}

pub(crate) async fn disconnect(
    State(connect): State<Connect>,
    User(user): User,
    mount: Mount,
    session: Session,
    Path(provider): Path<String>,
    Form(form): Form<DisconnectForm>,
) -> Response {
    let page = mount.page();
    let Some(user) = user else {
        return Problem::signed_out().into_response();
    };
    match crate::csrf::check(&session, &form.csrf).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!(user = %user, "a disconnect without the page's CSRF token was refused");
            return Problem::new(
                StatusCode::FORBIDDEN,
                "This request was not sent from your accounts page",
                "Disconnecting needs the button on your connected accounts page, so this request \
                 was refused and nothing was changed. If you used that button, reload the page \
                 and try again.",
            )
            .back_to(page)
            .into_response();
        }
        Err(error) => return Problem::sessions(&error).back_to(page).into_response(),
    }
    let provider = match known_provider(&connect, &provider) {
        Ok(provider) => provider,
        Err(problem) => return problem.back_to(page).into_response(),
    };
    let name = connect.display_name(&provider);
    let key = TokenKey::new(provider.clone(), user.clone());
    let manager = connect.manager();
    let text = match manager.revoke(&key).await {
        Ok(()) => format!("Disconnected {name}. {name} was told to end this app's access."),
        // Nothing to revoke at the provider: a token that is not stored,
        // one the provider no longer accepts, a provider without
        // revocation, or one switched off. Forget it here.
        Err(
            ref error @ (Error::ReauthorizationRequired { .. }
            | Error::Unsupported { .. }
            | Error::ProviderRetired { .. }),
        ) => match manager.remove(&key).await {
            Ok(true) => {
                tracing::info!(provider = %provider, user = %user, class = error.class(), "removed without revoking");
                format!(
                    "Disconnected {name} here. {name} could not be told to end this app's access; \
                     you can end it in your {name} account settings."
                )
            }
            Ok(false) => format!("{name} was not connected."),
            Err(error) => return failed(&name, &error, page),
        },
        Err(error) => return failed(&name, &error, page),
    };
    tracing::info!(provider = %provider, user = %user, "disconnected");
    if let Err(error) = set_flash(&session, Flash::ok(text)).await {
        return Problem::sessions(&error).back_to(page).into_response();
    }
    Redirect::to(&page).into_response()
}

fn failed(name: &str, error: &Error, page: String) -> Response {
    tracing::warn!(error = %error, "could not disconnect");
    Problem::new(
        StatusCode::BAD_GATEWAY,
        format!("Could not disconnect {name}"),
        format!("{error}. Your connection is unchanged; please try again later."),
    )
    .back_to(page)
    .into_response()
}
