//! The commands on one stored account: `token`, `refresh`, `introspect`,
//! `revoke` and `logout`.

use std::path::Path;
use std::time::SystemTime;

use auth_core::TokenManager;

use super::{Session, open_store, token_key};
use crate::cli::{IntrospectArgs, KeyArgs};
use crate::config::Config;
use crate::exit::{CliResult, Failure, Target};
use crate::output::{self, TokenView};

/// `authctl token`: a valid access token on stdout, refreshed if needed;
/// across processes, only one refreshes (the file store's key lock).
pub(crate) async fn token(config: Option<&Path>, args: KeyArgs) -> CliResult {
    let session = Session::open(config, &args.provider, &args.account).await?;
    let token = session
        .manager
        .access_token(&session.key)
        .await
        .map_err(|e| session.fail(&e))?;
    output::token(token.secret());
    Ok(())
}

/// `authctl refresh`: refreshes now and prints the summary.
pub(crate) async fn refresh(config: Option<&Path>, args: KeyArgs) -> CliResult {
    let session = Session::open(config, &args.provider, &args.account).await?;
    let token = session
        .manager
        .refresh(&session.key)
        .await
        .map_err(|e| session.fail(&e))?;
    let now = SystemTime::now();
    TokenView::new(&session.key, token.token_set(), now).print_summary("refreshed", now);
    Ok(())
}

/// `authctl clear-flag`: clears a reauthorization flag (and any refresh
/// cooldown) that an operator knows is wrong, so the next `token` or
/// `refresh` asks the server again.
pub(crate) async fn clear_flag(config: Option<&Path>, args: KeyArgs) -> CliResult {
    let session = Session::open(config, &args.provider, &args.account).await?;
    let cleared = session
        .manager
        .clear_reauthorization(&session.key)
        .await
        .map_err(|e| session.fail(&e))?;
    if cleared {
        output::line(&format!(
            "cleared the reauthorization flag of {}; the next `authctl token` or `authctl \
             refresh` asks the server again",
            session.key
        ));
    } else {
        output::line(&format!(
            "{} is not flagged and not cooling down; nothing to do",
            session.key
        ));
    }
    Ok(())
}

/// `authctl introspect`: the server's view of the stored access token.
pub(crate) async fn introspect(config: Option<&Path>, args: IntrospectArgs) -> CliResult {
    let session = Session::open(config, &args.key.provider, &args.key.account).await?;
    let info = session
        .manager
        .introspect(&session.key)
        .await
        .map_err(|e| session.fail(&e))?;
    output::introspection(&session.key, &info, args.json);
    Ok(())
}

/// `authctl revoke`: at the server first, then locally. When the server
/// refuses, the local token is kept.
pub(crate) async fn revoke(config: Option<&Path>, args: KeyArgs) -> CliResult {
    let session = Session::open(config, &args.provider, &args.account).await?;
    session
        .manager
        .revoke(&session.key)
        .await
        .map_err(|e| session.fail(&e))?;
    let provider = session.provider()?;
    output::line(&format!(
        "revoked {} at {} and deleted it locally",
        session.key,
        provider.name()
    ));
    Ok(())
}

/// `authctl logout`: deletes the local token only. The provider need not
/// be configured, so a token of a removed section can still be dropped.
pub(crate) async fn logout(config: Option<&Path>, args: KeyArgs) -> CliResult {
    let config = Config::load(config)?;
    let key = token_key(&args.provider, &args.account)?;
    let opened = open_store(&config).await?;
    let manager = super::track(TokenManager::builder(opened.store).build());
    let removed = manager
        .remove(&key)
        .await
        .map_err(|e| Failure::from_auth(&e, &Target::key(&key)))?;
    if removed {
        output::line(&format!(
            "logged out: deleted the token of {key} from {} (the grant itself was not revoked \
             at the provider)",
            opened.place
        ));
    } else {
        output::line(&format!("no token stored for {key}; nothing to do"));
    }
    Ok(())
}
