//! `authctl login`: a new grant for one account.
//!
//! The account is `default` unless `--account` is given, for every kind of
//! provider. Fitbit's `user_id` is shown in the summary (and kept with the
//! token), but it does not choose the account: scripts then find the token
//! where they asked for it.

use std::time::{Duration, SystemTime};

use auth_core::{AccountId, AuthorizeRequest, TokenKey};

use super::{Context, Session};
use crate::cli::LoginArgs;
use crate::config::ProviderKind;
use crate::exit::{CliResult, ExitKind, Failure};
use crate::login::{self, Options, callback_server::CallbackServer};
use crate::output::{self, TokenView};

/// Runs `authctl login`.
pub(crate) async fn run(cx: &Context, args: LoginArgs) -> CliResult {
    let session = Session::open(cx, &args.key.provider, &args.key.account).await?;
    let provider = session.provider()?;
    let account = AccountId::new(&args.key.account)
        .map_err(|e| Failure::usage(e.to_string(), "pick another --account id"))?;
    if args.device {
        return device(&session, account, args.scopes, args.timeout).await;
    }
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

/// `authctl login --device`: RFC 8628. Shows the user code and the
/// verification URI (alone on its own line), polls with a spinner as the
/// server asks, and saves the token like any login. Never shows the device
/// code.
async fn device(
    session: &Session,
    account: AccountId,
    scopes: Vec<String>,
    timeout: Option<u64>,
) -> CliResult {
    let provider = session.provider()?;
    let Some(oauth2) = provider.build_oauth2().await? else {
        return Err(Failure::usage(
            format!(
                "provider {} is {}; --device works with kind = \"oauth2\" providers",
                provider.name(),
                provider.describe_kind()
            ),
            format!(
                "log in through the browser; run: {}",
                session.target().login_command()
            ),
        ));
    };
    let authorization = oauth2
        .begin_device_authorization(&scopes)
        .await
        .map_err(|e| session.fail(&e))?;
    output::note(&format!(
        "To log in to {}, open this URL on any device:",
        provider.name()
    ));
    output::verification_uri(authorization.verification_uri());
    output::note(&format!("and enter the code {}", authorization.user_code()));
    if let Some(complete) = authorization.verification_uri_complete() {
        output::note(&format!("(or open {complete}, which carries the code)"));
    }
    let spinner = output::Spinner::start(&format!(
        "waiting for the login to be approved (the code expires in {})",
        output::human_duration(authorization.expires_in())
    ));
    let polling = oauth2.wait_for_device_token(&authorization);
    let outcome = match timeout.map(Duration::from_secs) {
        Some(limit) => tokio::time::timeout(limit, polling).await.map_err(|_| {
            Failure::new(
                ExitKind::Reauthorization,
                format!(
                    "the device login was not approved within {}; nothing was stored",
                    output::human_duration(limit)
                ),
                format!(
                    "approve sooner, or allow longer; run: {} --device --timeout {}",
                    session.target().login_command(),
                    login::longer_timeout(Some(limit))
                ),
            )
        }),
        None => Ok(polling.await),
    };
    spinner.stop();
    let token = outcome?.map_err(|e| session.fail(&e))?;
    let key = TokenKey::new(session.key.provider.clone(), account);
    let token = session
        .manager
        .save_authorization(&key, token)
        .await
        .map_err(|e| session.fail(&e))?;
    let now = SystemTime::now();
    TokenView::new(&key, token.token_set(), now).print_summary("logged in", now);
    Ok(())
}
