//! The commands on one stored account: `token`, `refresh`, `introspect`,
//! `revoke` and `logout`.

use std::path::Path;
use std::time::SystemTime;

use auth_core::secrecy::ExposeSecret as _;
use auth_core::{DEFAULT_SKEW, Error, Stored, TokenManager, TokenSet};

use super::{Context, Session, managed_store, open_store, token_key};
use crate::cli::{IntrospectArgs, KeyArgs};
use crate::config::{Config, StoreLocation};
use crate::exit::{CliResult, ExitKind, Failure, Target};
use crate::output::{self, TokenView};

/// `authctl token`: a valid access token on stdout, refreshed if needed;
/// across processes, only one refreshes (the file store's key lock).
///
/// A stored token that the manager would hand out as it is (unflagged,
/// valid for longer than its refresh skew, and with no refresh in flight) is
/// printed straight from the store, before any provider is built: building
/// one sets up an HTTP client and loads the system's TLS roots, which cost
/// several times the rest of the command, and a valid token needs no
/// request. A token whose refresh is in flight (another process sent its
/// refresh token and may have died before saving the answer) is never
/// served from here: the manager takes the lease and finishes that refresh
/// first, replaying it while the provider still answers a replay. The checks that come
/// before the store in [`Session::open`] (the config, the key, the provider
/// section and its client secret, the store and its encryption keys) come
/// first here too, with the same errors; everything else goes through the
/// manager as before.
pub(crate) async fn token(cx: &Context, args: KeyArgs) -> CliResult {
    let config = cx.load_config()?;
    let key = token_key(&args.provider, &args.account)?;
    config.provider(&args.provider)?.check_secret()?;
    let opened = open_store(cx, &config).await?;
    let store = managed_store(&config, opened.store)?;
    if let Ok(Some(stored)) = store.load(&key).await
        && let Some(token) = servable(&stored)
    {
        output::token(token.access_token().expose_secret());
        return Ok(());
    }
    let session = Session::with_config(cx, config, key).await?;
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
        Ok(Some(stored)) => match servable(&stored) {
            Some(token) => {
                output::token(token.access_token().expose_secret());
                Ok(true)
            }
            None => Ok(false),
        },
        // Refreshing, finishing a refresh in flight, reporting a flag, a
        // missing token or a read error are the manager's business.
        _ => Ok(false),
    }
}

/// The stored token, if the manager would hand it out as it is, with no
/// request: there is a token (not a tombstone), no refresh of it is in
/// flight, and it is unflagged and valid for longer than the refresh skew
/// (step 1 of the protocol, which the manager's `access_token` answers from
/// the store the same way).
fn servable(stored: &Stored) -> Option<&TokenSet> {
    let token = stored.token.as_ref()?;
    (stored.in_flight.is_none()
        && token.reauthorization_required().is_none()
        && token.is_fresh(SystemTime::now(), DEFAULT_SKEW))
    .then_some(token)
}

/// `authctl refresh`: refreshes now and prints the summary.
pub(crate) async fn refresh(cx: &Context, args: KeyArgs) -> CliResult {
    let session = Session::open(cx, &args.provider, &args.account).await?;
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
pub(crate) async fn clear_flag(cx: &Context, args: KeyArgs) -> CliResult {
    let session = Session::open(cx, &args.provider, &args.account).await?;
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
pub(crate) async fn introspect(cx: &Context, args: IntrospectArgs) -> CliResult {
    let session = Session::open(cx, &args.key.provider, &args.key.account).await?;
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
///
/// With no token stored there is nothing to revoke, which is not a reason
/// to log in. When the server cannot be reached, the token is kept, and
/// the message says how to drop it locally anyway (`authctl logout`).
pub(crate) async fn revoke(cx: &Context, args: KeyArgs) -> CliResult {
    let session = Session::open(cx, &args.provider, &args.account).await?;
    match session.manager.revoke(&session.key).await {
        Ok(()) => {}
        Err(Error::ReauthorizationRequired { .. })
            if matches!(session.manager.stored(&session.key).await, Ok(None)) =>
        {
            output::line(&format!(
                "no token stored for {}; nothing to revoke",
                session.key
            ));
            return Ok(());
        }
        Err(e @ Error::Transient { .. }) => {
            return Err(Failure::new(
                ExitKind::Transient,
                e.to_string(),
                format!(
                    "the token is still stored here; try again when {} can be reached, or delete \
                     it here without revoking the grant; run: {}",
                    session.key.provider,
                    session.target().command("logout")
                ),
            ));
        }
        Err(e) => return Err(session.fail(&e)),
    }
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
pub(crate) async fn logout(cx: &Context, args: KeyArgs) -> CliResult {
    let config = cx.load_config()?;
    let key = token_key(&args.provider, &args.account)?;
    let opened = open_store(cx, &config).await?;
    let manager = cx.track(TokenManager::builder(opened.store).build());
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use auth_core::{InFlight, Sequence, Version};

    use super::*;

    fn stored(token: Option<TokenSet>, in_flight: bool) -> Stored {
        let now = SystemTime::now();
        Stored {
            version: Version(2),
            token,
            grant: Sequence(1),
            in_flight: in_flight.then_some(InFlight { since: now }),
            read_at: now,
        }
    }

    fn valid() -> TokenSet {
        TokenSet::new("access", "Bearer", SystemTime::now())
            .with_refresh_token("refresh")
            .with_expires_in(Duration::from_secs(8 * 3600))
    }

    #[test]
    fn a_valid_token_with_nothing_in_flight_is_served() {
        assert!(servable(&stored(Some(valid()), false)).is_some());
    }

    #[test]
    fn a_token_whose_refresh_is_in_flight_is_left_to_the_manager() {
        assert!(servable(&stored(Some(valid()), true)).is_none());
    }

    #[test]
    fn tombstones_flags_and_stale_tokens_are_left_to_the_manager() {
        assert!(servable(&stored(None, false)).is_none());
        let flagged = valid().flagged_for_reauthorization("invalid_grant");
        assert!(servable(&stored(Some(flagged), false)).is_none());
        let stale =
            TokenSet::new("access", "Bearer", SystemTime::now()).with_expires_in(DEFAULT_SKEW / 2);
        assert!(servable(&stored(Some(stale), false)).is_none());
    }
}
