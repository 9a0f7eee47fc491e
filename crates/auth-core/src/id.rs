//! Validated identifiers: which provider, which account, and the key that
//! joins them.
//!
//! Ids end up in file names, URLs, logs and database keys, so they are checked
//! once, at construction: non-empty, at most [`MAX_ID_LEN`] bytes, no control
//! characters and no path separators. Cloning an id clones an `Arc`, which
//! keeps the token manager's hot path free of allocation.

use std::borrow::Borrow;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;

/// The longest id accepted, in bytes.
pub const MAX_ID_LEN: usize = 256;

fn validate(kind: &str, value: &str) -> Result<(), Error> {
    if value.is_empty() {
        return Err(Error::invalid_input(format!("{kind} must not be empty")));
    }
    if value.len() > MAX_ID_LEN {
        return Err(Error::invalid_input(format!(
            "{kind} is {} bytes long; the limit is {MAX_ID_LEN}",
            value.len()
        )));
    }
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Err(Error::invalid_input(format!(
            "{kind} {value:?} contains the control character {c:?}"
        )));
    }
    if value.contains(['/', '\\']) {
        return Err(Error::invalid_input(format!(
            "{kind} {value:?} contains a path separator ('/' or '\\')"
        )));
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident, $kind:literal) => {
        $(#[$meta])*
        #[derive(Clone, Eq, PartialOrd, Ord)]
        pub struct $name(Arc<str>);

        /// Hashes the text, as equality compares it.
        impl std::hash::Hash for $name {
            fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
                self.0.hash(state);
            }
        }

        /// Equal when the text is. Ids are cloned, not re-parsed, as they
        /// move through the manager and its maps, so two equal ids usually
        /// share one allocation: that is checked first, without comparing
        /// the bytes (a key lookup compares two ids; a refresh does about
        /// ten lookups).
        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                Arc::ptr_eq(&self.0, &other.0) || *self.0 == *other.0
            }
        }

        impl $name {
            /// Validates and wraps an id.
            ///
            /// # Errors
            ///
            /// [`Error::InvalidInput`] when the id is empty, longer than
            /// [`MAX_ID_LEN`] bytes, or contains a control character or a
            /// path separator.
            pub fn new(value: impl AsRef<str>) -> Result<Self, Error> {
                let value = value.as_ref();
                validate($kind, value)?;
                Ok(Self(Arc::from(value)))
            }

            /// The id as a string.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self, Error> {
                Self::new(s)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = Error;
            fn try_from(s: &str) -> Result<Self, Error> {
                Self::new(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = Error;
            fn try_from(s: String) -> Result<Self, Error> {
                Self::new(s)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::new(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

id_type!(
    /// Names a provider registered with a [`TokenManager`](crate::TokenManager),
    /// for example `fitbit` or `google-health`.
    ProviderId,
    "provider id"
);

id_type!(
    /// Names one account (one user's grant) within a provider, for example
    /// Fitbit's `user_id` or an app's own user id.
    AccountId,
    "account id"
);

/// Everything a store needs to find one token: the provider and the account.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TokenKey {
    /// The provider.
    pub provider: ProviderId,
    /// The account within the provider.
    pub account: AccountId,
}

impl TokenKey {
    /// Joins a provider and an account.
    pub fn new(provider: ProviderId, account: AccountId) -> Self {
        Self { provider, account }
    }

    /// Validates both parts and joins them.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] when either id is invalid.
    pub fn parse(provider: &str, account: &str) -> Result<Self, Error> {
        Ok(Self::new(
            ProviderId::new(provider)?,
            AccountId::new(account)?,
        ))
    }
}

impl fmt::Display for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.provider, self.account)
    }
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenKey({}/{})", self.provider, self.account)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_ids_with_an_error() {
        for bad in [
            "",
            "a/b",
            "..\\x",
            "tab\there",
            "nul\0",
            &"x".repeat(MAX_ID_LEN + 1),
        ] {
            let err = AccountId::new(bad).expect_err(bad);
            assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
        }
    }

    #[test]
    fn accepts_ordinary_ids() {
        for good in [
            "26FWFL",
            "alice@example.com",
            "..",
            "Ünïcode",
            &"x".repeat(MAX_ID_LEN),
        ] {
            assert_eq!(AccountId::new(good).unwrap().as_str(), good);
        }
    }

    #[test]
    fn deserialization_validates() {
        assert!(serde_json::from_str::<ProviderId>("\"ok\"").is_ok());
        assert!(serde_json::from_str::<ProviderId>("\"a/b\"").is_err());
    }

    #[test]
    fn key_displays_as_provider_slash_account() {
        let key = TokenKey::parse("fitbit", "26FWFL").unwrap();
        assert_eq!(key.to_string(), "fitbit/26FWFL");
    }
}
