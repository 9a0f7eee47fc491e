//! The commands on one stored account: `token`, `refresh`, `introspect`,
//! `revoke` and `logout`.

use std::path::Path;
use std::time::SystemTime;

use auth_core::secrecy::ExposeSecret as _;
use auth_core::{DEFAULT_SKEW, TokenManager};

use super::{Session, managed_store, open_store, token_key};
use crate::cli::{IntrospectArgs, KeyArgs};
use crate::config::{Config, StoreLocation};
use crate::exit::{CliResult, Failure, Target};
use crate::output::{self, TokenView};

/// `authctl token`: a valid access token on stdout, refreshed if needed;
/// across processes, only one refreshes (the file store's key lock).
///
/// A stored token that the manager would hand out as it is (unflagged, and
/// valid for longer than its refresh skew) is printed straight from the
/// store, before any provider is built: building one sets up an HTTP client
/// and loads the system's TLS roots, which cost several times the rest of
/// the command, and a valid token needs no request. The checks that come
/// before the store in [`Session::open`] (the config, the key, the provider
/// section and its client secret, the store and its encryption keys) come
/// first here too, with the same errors; everything else goes through the
/// manager as before.
pub(crate) async fn token(config: Option<&Path>, args: KeyArgs) -> CliResult {
    let config = Config::load(config)?;
    let key = token_key(&args.provider, &args.account)?;
    config.provider(&args.provider)?.check_secret()?;
    let opened = open_store(&config).await?;
    let store = managed_store(&config, opened.store)?;
    if let Ok(Some(stored)) = store.load(&key).await
        && servable(&stored.value)
    {
        output::token(stored.value.access_token().expose_secret());
        return Ok(());
    }
    let session = Session::with_config(config, key).await?;
    let token = session
        .manager
        .access_token(&session.key)
        .await
        .map_err(|e| session.fail(&e))?;
    output::token(token.secret());
    Ok(())
}

/// The part of `authctl token` that runs before the async runtime starts:
/// a valid token in an unencrypted store is read on the calling thread and
/// printed, with no runtime, no thread and no provider (the whole command
/// is then about as fast as `cat` of the token file, see BENCHMARKS.md).
/// It makes the same checks as [`token`], in the same order, with the same
/// errors. `Ok(false)`: nothing was printed, run [`token`] (which repeats
/// the checks, and so fails the same way).
pub(crate) fn token_before_runtime(config: Option<&Path>, args: &KeyArgs) -> CliResult<bool> {
    let config = Config::load(config)?;
    let key = token_key(&args.provider, &args.account)?;
    config.provider(&args.provider)?.check_secret()?;
    if config.encryption().is_some() {
        // Decrypting takes the encrypted store, which is async.
        return Ok(false);
    }
    // Only a file store that exists already: a database store is async,
    // and a missing directory is the normal path's to report.
    let StoreLocation::Path(root) = config.store_location()? else {
        return Ok(false);
    };
    if !root.is_dir() {
        return Ok(false);
    }
    let Ok(store) = store_file::FileTokenStore::open(&root) else {
        return Ok(false);
    };
    match store.load_blocking(&key) {
        Ok(Some(stored)) if servable(&stored.value) => {
            output::token(stored.value.access_token().expose_secret());
            Ok(true)
        }
        // Refreshing, reporting a flag, a missing token or a read error are
        // the manager's business.
        _ => Ok(false),
    }
}

/// Whether the manager would hand `token` out as it is, with no request:
/// unflagged and valid for longer than the refresh skew (step 1 of the
/// protocol, which the manager's `access_token` answers from the store
/// the same way).
fn servable(token: &auth_core::TokenSet) -> bool {
    token.reauthorization_required().is_none() && token.is_fresh(SystemTime::now(), DEFAULT_SKEW)
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
    if cleared.any() {
        output::line(&format!(
            "{}: {cleared}; the next `authctl token` or `authctl refresh` asks the server again",
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
