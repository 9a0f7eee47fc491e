//! `authctl status`: the stored tokens, without their secrets.

use std::time::SystemTime;

use super::Context;
use super::open_store;
use crate::cli::StatusArgs;
use crate::config::StoreLocation;
use crate::exit::{CliResult, Failure, Target};
use crate::output::{self, StatusRow, TokenView};

/// Runs `authctl status`. It needs no provider section: it reads the store
/// only. A token that cannot be read is listed with its error, and the
/// command then exits 1 after listing the others.
///
/// A store directory that does not exist yet holds no tokens: it is reported
/// empty and not created (opening the store would create it), so that
/// looking leaves no trace on a fresh machine.
pub(crate) async fn run(cx: &Context, args: StatusArgs) -> CliResult {
    let config = cx.load_config()?;
    if let StoreLocation::Path(root) = config.store_location()?
        && !root.exists()
    {
        output::status(
            &root.display().to_string(),
            &[],
            args.json,
            SystemTime::now(),
        );
        return Ok(());
    }
    let opened = open_store(cx, &config).await?;
    let store = opened.store;
    let everywhere = Target {
        provider: "-",
        account: None,
    };
    let mut keys = store
        .list(None)
        .await
        .map_err(|e| Failure::from_auth(&e, &everywhere))?;
    keys.sort();
    let now = SystemTime::now();
    let mut rows = Vec::with_capacity(keys.len());
    let mut broken = None;
    for key in keys {
        match store.load(&key).await {
            Ok(Some(stored)) => {
                if let Some(token) = &stored.token {
                    rows.push(StatusRow::Token(TokenView::new(&key, token, now)));
                }
            }
            // Deleted between list and load (a tombstone has no token).
            Ok(None) => {}
            Err(e) => {
                broken.get_or_insert_with(|| Failure::from_auth(&e, &Target::key(&key)));
                rows.push(StatusRow::Broken {
                    key,
                    error: e.to_string(),
                });
            }
        }
    }
    output::status(&opened.place, &rows, args.json, now);
    match broken {
        Some(failure) => Err(failure),
        None => Ok(()),
    }
}
