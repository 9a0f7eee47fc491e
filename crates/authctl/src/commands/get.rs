//! `authctl get`: one authenticated GET through the auth-reqwest middleware,
//! the body on stdout. The token goes to the URL's origin only, never over
//! plain http off loopback, and never along a redirect to another origin.

use auth_oauth2::network_cause;
use auth_reqwest::{BearerAuth, auth_error};

use super::{Context, Session};
use crate::cli::GetArgs;
use crate::exit::{CliResult, ExitKind, Failure};
use crate::output;

/// Runs `authctl get PROVIDER URL [--account ID]`.
///
/// Exit codes as everywhere: 3 when the token cannot be had or the server
/// still answers 401 after one refresh, 4 for 429 and 5xx (and network
/// failures), 5 for 410, 1 for other non-2xx answers. The body is printed
/// whatever the status.
pub(crate) async fn run(cx: &Context, args: GetArgs) -> CliResult {
    let session = Session::open(cx, &args.provider, &args.account).await?;
    let url = url::Url::parse(&args.url).map_err(|e| {
        Failure::usage(
            format!("cannot parse the URL {:?}: {e}", args.url),
            "give an absolute URL, for example https://api.fitbit.com/1/user/-/profile.json",
        )
    })?;
    let apis = session.provider()?.api_base_urls();
    if !auth_oauth2::api_url_allowed(apis, &url) {
        return Err(Failure::usage(
            format!(
                "{} is not an API of provider {}; its APIs are under {}",
                endpoint(&url),
                args.provider,
                apis.join(", ")
            ),
            format!(
                "give a URL under one of those, or set api_base_urls in [providers.{}]",
                args.provider
            ),
        ));
    }
    let auth = BearerAuth::new(session.manager.clone(), session.key.clone())
        .allow_origin(url.as_str())
        .map_err(|e| {
            Failure::usage(
                e.to_string(),
                "use https (plain http only for 127.0.0.1 or localhost)",
            )
        })?;
    let client = auth_reqwest::client(auth).map_err(|e| {
        Failure::unexpected(
            format!("cannot set up the HTTP client: {e}"),
            "report this bug",
        )
    })?;
    let answer = client
        .get(url.clone())
        .send()
        .await
        .map_err(|err| match auth_error(&err) {
            Some(auth) => session.fail(auth),
            None => Failure::new(
                ExitKind::Transient,
                format!("GET {} failed: {}", endpoint(&url), network_cause(&err)),
                format!(
                    "check that {} is the right host and reachable from here, then try again",
                    url.host_str().unwrap_or("the server")
                ),
            ),
        })?;
    let status = answer.status();
    let body = answer.bytes().await.map_err(|e| {
        Failure::new(
            ExitKind::Transient,
            format!(
                "reading the answer of {} failed: {}",
                endpoint(&url),
                network_cause(&e)
            ),
            "try again",
        )
    })?;
    output::body(&body);
    if status.is_success() {
        return Ok(());
    }
    let message = format!("GET {} answered HTTP {status}", endpoint(&url));
    let (kind, next) = match status.as_u16() {
        401 => (
            ExitKind::Reauthorization,
            format!(
                "the server still refused the token after a refresh; run: {}",
                session.target().login_command()
            ),
        ),
        410 => (
            ExitKind::Retired,
            "the API is switched off; move the account to the successor provider".to_owned(),
        ),
        429 => (
            ExitKind::Transient,
            "try again after the rate limit resets".to_owned(),
        ),
        s if s >= 500 => (ExitKind::Transient, "try again later".to_owned()),
        _ => (ExitKind::Unexpected, "see the body above".to_owned()),
    };
    Err(Failure::new(kind, message, next))
}

/// The URL without its query: queries may carry secrets of their own.
fn endpoint(url: &url::Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.set_fragment(None);
    shown.to_string()
}
