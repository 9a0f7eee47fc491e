//! Schema and table names: checked once, then quoted wherever they go into
//! SQL.
//!
//! Names are the only text this crate puts into SQL other than its own
//! constants; every value (ids, tokens, versions) is a bound parameter. A
//! name must therefore be checked here, never merely escaped.

use auth_core::{Error, Result};

/// The longest table name accepted: PostgreSQL's 63-byte limit, less the
/// longest suffix this crate adds (`_leases_pkey`).
pub(crate) const MAX_TABLE_LEN: usize = 48;
/// The longest schema name accepted (PostgreSQL's own limit).
pub(crate) const MAX_SCHEMA_LEN: usize = 63;

/// A checked SQL identifier: an ASCII letter or `_`, then letters, digits
/// and `_`, within a length limit. Case is kept (it is always quoted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ident(String);

impl Ident {
    /// Checks `name` as the `what` (`schema` or `table`) name.
    pub(crate) fn new(what: &str, name: &str, max: usize) -> Result<Self> {
        let mut chars = name.chars();
        let first_ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !first_ok || !rest_ok || name.len() > max {
            return Err(Error::configuration(format!(
                "{what} name {name:?} is not allowed: use 1 to {max} ASCII letters, digits and \
                 underscores, starting with a letter or an underscore"
            )));
        }
        Ok(Self(name.to_owned()))
    }

    /// The name as given.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// The name with `suffix` appended (the suffix must keep it valid).
    pub(crate) fn with_suffix(&self, suffix: &str) -> Self {
        Self(format!("{}{suffix}", self.0))
    }

    /// The name quoted for SQL. The checks above leave nothing to escape.
    pub(crate) fn quoted(&self) -> String {
        format!("\"{}\"", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_pass_and_are_quoted() {
        let t = Ident::new("table", "Tokens_2", MAX_TABLE_LEN).unwrap();
        assert_eq!(t.quoted(), "\"Tokens_2\"");
        assert_eq!(t.with_suffix("_leases").as_str(), "Tokens_2_leases");
        Ident::new("schema", "_x", MAX_SCHEMA_LEN).unwrap();
    }

    #[test]
    fn anything_that_could_break_out_of_quotes_is_refused() {
        for bad in [
            "",
            "1abc",
            "a\"b",
            "a;drop table x",
            "a b",
            "a.b",
            "a-b",
            "é",
            "a\0",
            &"x".repeat(MAX_TABLE_LEN + 1),
        ] {
            let err = Ident::new("table", bad, MAX_TABLE_LEN).expect_err(bad);
            assert!(err.to_string().contains("table name"), "{err}");
        }
    }
}
