//! `authctl login`: a new grant for one account.
//!
//! The account is `default` unless `--account` is given, for every kind of
//! provider. Fitbit's `user_id` is shown in the summary (and kept with the
//! token), but it does not choose the account: scripts then find the token
//! where they asked for it.

use std::path::Path;
use std::time::{Duration, SystemTime};

use auth_core::{AccountId, AuthorizeRequest};

use super::Session;
use crate::cli::LoginArgs;
use crate::config::ProviderKind;
use crate::exit::{CliResult, Failure};
use crate::login::{self, Options, callback_server::CallbackServer};
use crate::output::TokenView;

/// Runs `authctl login`.
pub(crate) async fn run(config: Option<&Path>, args: LoginArgs) -> CliResult {
    let session = Session::open(config, &args.key.provider, &args.key.account).await?;
    let provider = session.provider()?;
    let account = AccountId::new(&args.key.account)
        .map_err(|e| Failure::usage(e.to_string(), "pick another --account id"))?;
    let mut request = AuthorizeRequest::new().account(account).scopes(args.scopes);
    if provider.kind() == ProviderKind::GoogleHealth {
        // Google hands out a refresh token again only on a fresh consent.
        request = request.prompt("consent");
    }
    // Listen before showing the URL, so the browser cannot come back early.
    let server = if args.manual {
        None
    } else {
        Some(CallbackServer::bind(provider.redirect_uri(), provider.name()).await?)
    };
    let pending = session
        .manager
        .begin_authorization(&session.key.provider, request)
        .map_err(|e| session.fail(&e))?;
    let options = Options {
        open_browser: !args.no_browser && !args.manual,
        timeout: args.timeout.map(Duration::from_secs),
    };
    let (key, token) = login::interactive(
        &session.manager,
        &pending,
        server,
        options,
        session.target(),
    )
    .await?;
    let now = SystemTime::now();
    TokenView::new(&key, token.token_set(), now).print_summary("logged in", now);
    Ok(())
}
