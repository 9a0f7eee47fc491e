//! The wrapper's failures, as [`auth_core::Error`] values that say what
//! failed, for which key, and what to do next.
//!
//! No message here may contain a token, a key, or an envelope's payload:
//! they name keys of accounts, key ids, fields and where the keys came from.

use auth_core::{Error, StoreErrorKind, TokenKey};

use crate::envelope::OpenError;
use crate::key::KeyRing;

/// What a person should do with a record that was tampered with.
const LEFT_UNTOUCHED: &str = "It was left untouched: restore the account's record from a \
                              backup, or delete the key and authorize the account again";

/// An envelope of `field` of `key` that did not open.
pub(crate) fn open_failed(key: &TokenKey, field: &str, ring: &KeyRing, err: OpenError) -> Error {
    match err {
        OpenError::UnknownKey(id) => Error::configuration(format!(
            "wrong key {id}: the token of {key} was encrypted with key {id}, which is not among \
             the keys from {} (ids: {}); add key {id} to {} and try again. Nothing was changed",
            ring.source(),
            ring.ids().collect::<Vec<_>>().join(", "),
            ring.source(),
        )),
        OpenError::WrongKey(id) => Error::configuration(format!(
            "wrong key {id}: key {id} from {} is not the key that encrypted the token of {key} \
             (its key check value differs); put the right key {id} in {} and try again. \
             Nothing was changed",
            ring.source(),
            ring.source(),
        )),
        OpenError::Malformed(why) => tampered(
            key,
            format!("the stored {field} is not a valid envelope: {why}"),
        ),
        OpenError::KeyMismatch => tampered(
            key,
            format!("the stored {field} names another key id than the rest of its record"),
        ),
        OpenError::Tampered => tampered(
            key,
            format!(
                "the stored {field} does not authenticate under its key, whose check value \
                 matches: its ciphertext, nonce or record id was changed, or it was copied from \
                 another account, field or save"
            ),
        ),
    }
}

/// A record that was tampered with or damaged.
pub(crate) fn tampered(key: &TokenKey, what: impl std::fmt::Display) -> Error {
    Error::store(
        StoreErrorKind::Corrupt,
        Some(key.clone()),
        format!("encrypted token was tampered with or damaged: {what}. {LEFT_UNTOUCHED}"),
    )
}

/// A plaintext record read by a store that refuses plaintext.
pub(crate) fn plaintext_refused(key: &TokenKey) -> Error {
    Error::store(
        StoreErrorKind::Corrupt,
        Some(key.clone()),
        "the token is stored in plain text, and this store refuses plain text \
         (accept_plaintext is off); it was left untouched. If it was written before encryption \
         was turned on, encrypt it with a rekey that accepts plain text (`authctl rekey`); \
         otherwise someone replaced the record: delete the key and authorize the account again",
    )
}

/// A token that uses the reserved marker name as an extra.
pub(crate) fn reserved_extra(key: &TokenKey, name: &str) -> Error {
    Error::invalid_input(format!(
        "the token of {key} has an extra named {name:?}, which the encrypting store reserves \
         for its marker; rename the extra"
    ))
}
