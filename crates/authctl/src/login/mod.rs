//! The login flow: send the user to the provider, take the callback back
//! (from the loopback server, or pasted on stdin with `--manual`), check
//! it, exchange the code and store the token.
//!
//! The state check, the code exchange and the save are the token manager's
//! ([`TokenManager::complete_authorization`]); this module only moves the
//! callback from the browser to it. It never prints the code, the state
//! or a token: the authorize URL (which carries the state and the PKCE
//! challenge, neither of them a credential) is the one URL it shows.

pub(crate) mod callback_server;

use std::time::Duration;

use auth_core::{AccessToken, Callback, PendingAuthorization, TokenKey, TokenManager};
use tokio::io::AsyncBufReadExt as _;
use tokio::time::Instant;
use url::Url;

use crate::exit::{CliResult, ExitKind, Failure, Target};
use crate::output;
use callback_server::{CallbackServer, Page};

/// How the callback comes back.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Options {
    /// Open the system browser on the authorize URL.
    pub(crate) open_browser: bool,
    /// Give up after this long without a callback.
    pub(crate) timeout: Option<Duration>,
}

/// Runs a whole interactive login for `pending`'s provider.
///
/// With a loopback `server` (already listening, so that the browser never
/// races ahead of it) the callback comes from the browser; without one
/// (`--manual`) it is read from stdin.
pub(crate) async fn interactive(
    manager: &TokenManager,
    pending: &PendingAuthorization,
    server: Option<CallbackServer>,
    options: Options,
    target: Target<'_>,
) -> CliResult<(TokenKey, AccessToken)> {
    output::note(&format!(
        "Open this URL in a browser to log in to {}:",
        pending.provider
    ));
    output::authorize_url(&pending.authorize_url);
    if options.open_browser
        && let Err(e) = webbrowser::open(pending.authorize_url.as_str())
    {
        output::warn(&format!(
            "could not open a browser ({e}); open the URL above yourself"
        ));
    }
    let deadline = options.timeout.map(|t| Instant::now() + t);
    match server {
        Some(mut server) => {
            let spinner = output::Spinner::start(&format!(
                "waiting for the browser to come back to {}",
                server.redirect_uri()
            ));
            let result = receive(
                &mut server,
                manager,
                pending,
                deadline,
                options.timeout,
                target,
            )
            .await;
            spinner.stop();
            server.shutdown().await;
            result
        }
        None => {
            let redirect = pending
                .redirect_uri
                .as_deref()
                .unwrap_or("the redirect URI");
            output::note(&format!(
                "After approving, the browser goes to {redirect}, which may fail to load: that \
                 is expected. Paste the full URL from its address bar here and press Enter:"
            ));
            let pasted = read_pasted(deadline, options.timeout, target).await?;
            let callback = Callback::parse(&pasted).map_err(|e| {
                Failure::usage(
                    e.to_string(),
                    format!(
                        "paste the whole URL from the browser's address bar; run: {} --manual",
                        target.login_command()
                    ),
                )
            })?;
            complete(manager, pending, &callback, target).await
        }
    }
}

/// Waits for the callback on `server`, completes the authorization and
/// answers the browser with the outcome.
///
/// Requests to the callback path that carry neither a code nor an error
/// (a browser prefetch, a stray reload) are answered with an error page and
/// do not end the wait. A real callback ends it, whatever its outcome: a
/// wrong state is refused, not retried.
pub(crate) async fn receive(
    server: &mut CallbackServer,
    manager: &TokenManager,
    pending: &PendingAuthorization,
    deadline: Option<Instant>,
    timeout: Option<Duration>,
    target: Target<'_>,
) -> CliResult<(TokenKey, AccessToken)> {
    loop {
        let arrival = match deadline {
            Some(deadline) => tokio::time::timeout_at(deadline, server.next())
                .await
                .map_err(|_| timed_out(server.redirect_uri().as_str(), timeout, target, ""))?,
            None => server.next().await,
        };
        let Some(arrival) = arrival else {
            return Err(Failure::unexpected(
                "the callback server stopped before the browser came back",
                format!("run: {}", target.login_command()),
            ));
        };
        let callback = match Callback::parse(arrival.query()) {
            Ok(callback) => callback,
            Err(e) => {
                tracing::debug!(error = %e, "ignoring a request without code or error");
                arrival.reply(Page::Failure(
                    "This request carries no authorization result; authctl is still waiting \
                     for the provider's redirect."
                        .to_owned(),
                ));
                continue;
            }
        };
        let result = complete(manager, pending, &callback, target).await;
        arrival.reply(match &result {
            Ok((key, _)) => Page::Success(format!("authctl stored the token for {key}.")),
            Err(failure) => Page::Failure(failure.message().to_owned()),
        });
        return result;
    }
}

async fn complete(
    manager: &TokenManager,
    pending: &PendingAuthorization,
    callback: &Callback,
    target: Target<'_>,
) -> CliResult<(TokenKey, AccessToken)> {
    manager
        .complete_authorization(pending, callback)
        .await
        .map_err(|e| match e {
            // A callback that does not answer this login (wrong state,
            // wrong issuer): the account still needs one.
            auth_core::Error::InvalidInput { .. } => Failure::new(
                ExitKind::Reauthorization,
                e.to_string(),
                format!("run: {}", target.login_command()),
            ),
            e => Failure::from_auth(&e, &target),
        })
}

async fn read_pasted(
    deadline: Option<Instant>,
    timeout: Option<Duration>,
    target: Target<'_>,
) -> CliResult<String> {
    let mut line = String::new();
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin());
    let read = stdin.read_line(&mut line);
    let read = match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline, read)
            .await
            .map_err(|_| timed_out("stdin", timeout, target, " --manual"))?,
        None => read.await,
    };
    match read {
        Ok(0) => Err(Failure::usage(
            "stdin ended before a URL was pasted",
            format!(
                "run: {} --manual and paste the URL the browser was redirected to",
                target.login_command()
            ),
        )),
        Ok(_) => Ok(line.trim().to_owned()),
        Err(e) => Err(Failure::unexpected(
            format!("cannot read stdin: {e}"),
            format!("run: {} --manual", target.login_command()),
        )),
    }
}

/// A login that waited `timeout` in vain. The next step is a command that
/// works when pasted: the same login (with `flags`), allowing longer.
pub(crate) fn timed_out(
    place: &str,
    timeout: Option<Duration>,
    target: Target<'_>,
    flags: &str,
) -> Failure {
    let waited = timeout.map_or_else(String::new, |t| {
        format!(" within {}", output::human_duration(t))
    });
    Failure::new(
        ExitKind::Reauthorization,
        format!(
            "no callback arrived at {place}{waited}; the login was abandoned and nothing was stored"
        ),
        format!(
            "finish in the browser sooner, or allow longer; run: {}{flags} --timeout {}",
            target.login_command(),
            longer_timeout(timeout)
        ),
    )
}

/// A `--timeout` (in seconds) worth trying after `timeout` ran out: twice
/// as long, and at least five minutes.
pub(crate) fn longer_timeout(timeout: Option<Duration>) -> u64 {
    timeout
        .map_or(0, |t| t.as_secs().saturating_mul(2))
        .max(300)
}

/// The redirect URI without query or fragment, for messages.
pub(crate) fn endpoint_only(url: &Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    url.set_fragment(None);
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::assert_pasteable;

    fn target() -> Target<'static> {
        Target {
            provider: "fitbit",
            account: Some("default"),
        }
    }

    #[test]
    fn a_timed_out_login_suggests_a_command_that_works_when_pasted() {
        let failure = timed_out(
            "http://127.0.0.1:8976/callback",
            Some(Duration::from_secs(1)),
            target(),
            "",
        );
        assert_eq!(
            failure.next(),
            "finish in the browser sooner, or allow longer; run: authctl login fitbit --timeout 300"
        );
        assert_pasteable(failure.next());
        let manual = timed_out(
            "stdin",
            Some(Duration::from_secs(600)),
            target(),
            " --manual",
        );
        assert!(
            manual
                .next()
                .ends_with("run: authctl login fitbit --manual --timeout 1200"),
            "{}",
            manual.next()
        );
        assert_pasteable(manual.next());
    }
}
