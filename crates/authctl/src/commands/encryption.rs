//! Encryption at rest: opening the key ring named by `[store]`, and the
//! `keygen` and `rekey` commands.
//!
//! Nothing here may print a key or a token: `keygen` prints the one new key
//! it made (that is its job), `rekey` prints counts and key ids only.

use std::sync::Arc;
use std::time::Duration;

use auth_core::TokenStore;
use store_encrypted::{EncryptedStore, KeyRing};

use super::Context;
use super::open_store;
use crate::cli::RekeyArgs;
use crate::config::{Config, KeySource};
use crate::exit::{CliResult, ExitKind, Failure, Target};
use crate::output;

/// How long `rekey` waits for each key's lease (a refresh in flight holds it
/// for one refresh).
const REKEY_LOCK_WAIT: Duration = Duration::from_secs(30);

/// `inner` wrapped in an encrypting store when `[store]` names keys.
pub(super) fn encrypted(
    config: &Config,
    inner: Arc<dyn TokenStore>,
) -> CliResult<Option<EncryptedStore>> {
    let Some(encryption) = config.encryption() else {
        return Ok(None);
    };
    let keys = match &encryption.keys {
        KeySource::Env(name) => KeyRing::from_env(name),
        KeySource::File(path) => KeyRing::from_file(path),
    }
    .map_err(|e| {
        Failure::usage(
            e.to_string(),
            format!(
                "the store is encrypted with keys from {}; provide them there \
                 (`authctl keygen` makes a new one)",
                encryption.keys.describe()
            ),
        )
    })?;
    Ok(Some(
        EncryptedStore::new(inner, keys).accept_plaintext(encryption.accept_plaintext),
    ))
}

/// `authctl keygen`: a new `KID:BASE64` entry on stdout.
pub(crate) fn keygen() -> CliResult {
    output::key_entry(&KeyRing::generate_entry());
    Ok(())
}

/// `authctl rekey`: every token sealed with the primary key, counts on
/// stdout.
pub(crate) async fn rekey(cx: &Context, args: RekeyArgs) -> CliResult {
    let config = cx.load_config()?;
    let opened = open_store(cx, &config).await?;
    let Some(store) = encrypted(&config, opened.store)? else {
        return Err(Failure::usage(
            "the token store is not encrypted: [store] names no encryption keys",
            "set [store] encryption_keys_env = \"NAME\" (or encryption_keys_file = \"PATH\") \
             in the config, with keys from `authctl keygen`, then run rekey",
        ));
    };
    let everywhere = Target {
        provider: "-",
        account: None,
    };
    let report = store
        .rekey(REKEY_LOCK_WAIT)
        .await
        .map_err(|e| Failure::from_auth(&e, &everywhere))?;
    output::line(&format!(
        "rekeyed {} with primary key {}: {} re-encrypted, {} plaintext encrypted, {} already \
         current, {} plaintext remaining, {} failed",
        opened.place,
        store.key_ring().primary_id(),
        report.reencrypted,
        report.plaintext_encrypted,
        report.unchanged,
        report.plaintext_remaining,
        report.failed.len(),
    ));
    for (key, err) in &report.failed {
        output::warn(&format!("{key}: {err}"));
    }
    if let Some((key, err)) = report.failed.first() {
        return Err(Failure::from_auth(err, &Target::key(key)).context(format!(
            "{} token(s) could not be rekeyed, the first",
            report.failed.len()
        )));
    }
    if args.require_encrypted && report.plaintext_remaining > 0 {
        return Err(Failure::new(
            ExitKind::Unexpected,
            format!(
                "{} token(s) are still stored in plain text",
                report.plaintext_remaining
            ),
            "run `authctl rekey` with [store] accept_plaintext unset (or true) to encrypt them",
        ));
    }
    Ok(())
}
