//! [`Catalogue`]: the entries, the built-in TOML, and users' own files.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

use serde::Deserialize;

use crate::spec::ProviderSpec;

/// The built-in catalogue, as shipped.
pub const BUILTIN_TOML: &str = include_str!("../providers.toml");

/// The name the built-in catalogue's errors give as its file.
pub const BUILTIN_SOURCE: &str = "the built-in catalogue (providers.toml)";

/// A set of named provider entries.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Catalogue {
    entries: BTreeMap<String, ProviderSpec>,
}

/// A catalogue file that cannot be used: the error names the file, the entry
/// and the field.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogueError {
    /// The file could not be read.
    #[error("cannot read the provider catalogue {file}: {cause}")]
    Read {
        /// The file.
        file: String,
        /// What went wrong.
        cause: String,
    },
    /// The file is not TOML.
    #[error("{file} is not valid TOML: {cause}")]
    Syntax {
        /// The file.
        file: String,
        /// The parser's message, with the line.
        cause: String,
    },
    /// An entry does not fit the schema.
    #[error("{file}: provider entry [{entry}]: {cause}")]
    Entry {
        /// The file.
        file: String,
        /// The entry's name.
        entry: String,
        /// The field at fault and why (for example "unknown field `rotate`,
        /// expected one of …").
        cause: String,
    },
}

impl Catalogue {
    /// The built-in catalogue, parsed once.
    pub fn builtin() -> &'static Catalogue {
        static BUILTIN: OnceLock<Catalogue> = OnceLock::new();
        BUILTIN.get_or_init(|| {
            let mut catalogue = Catalogue::default();
            // The schema test parses the same text and fails on any error.
            catalogue
                .merge_toml(BUILTIN_SOURCE, BUILTIN_TOML)
                .unwrap_or_else(|e| panic!("the built-in catalogue does not parse: {e}"));
            catalogue
        })
    }

    /// The built-in catalogue with a user's file merged in: its entries add
    /// to the built-in ones, and an entry of the same name replaces the
    /// built-in one whole.
    ///
    /// # Errors
    ///
    /// [`CatalogueError`] naming the file, and the entry and field at fault.
    pub fn with_user_file(path: &Path) -> Result<Catalogue, CatalogueError> {
        let mut catalogue = Self::builtin().clone();
        catalogue.merge_file(path)?;
        Ok(catalogue)
    }

    /// Merges a TOML file into this catalogue (see
    /// [`with_user_file`](Self::with_user_file)).
    ///
    /// # Errors
    ///
    /// [`CatalogueError`] naming the file, the entry and the field.
    pub fn merge_file(&mut self, path: &Path) -> Result<(), CatalogueError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| CatalogueError::Read {
            file: file.clone(),
            cause: e.to_string(),
        })?;
        self.merge_toml(&file, &text)
    }

    /// Merges TOML text; `source` names it in errors. Nothing is merged
    /// unless every entry is valid.
    ///
    /// # Errors
    ///
    /// [`CatalogueError`] naming `source`, the entry and the field.
    pub fn merge_toml(&mut self, source: &str, text: &str) -> Result<(), CatalogueError> {
        let tables: BTreeMap<String, toml::Value> =
            toml::from_str(text).map_err(|e| CatalogueError::Syntax {
                file: source.to_owned(),
                cause: e.message().to_owned() + &line_of(text, e.span()),
            })?;
        let mut parsed = Vec::with_capacity(tables.len());
        for (name, value) in tables {
            let entry_error = |cause: String| CatalogueError::Entry {
                file: source.to_owned(),
                entry: name.clone(),
                cause,
            };
            if !valid_name(&name) {
                return Err(entry_error(
                    "an entry's name is its provider's plain lowercase name: letters, digits \
                     and '-' only"
                        .to_owned(),
                ));
            }
            let spec = ProviderSpec::deserialize(value)
                .map_err(|e| entry_error(one_line(&e.to_string())))?;
            if spec.sources.is_empty() {
                return Err(entry_error(
                    "field `sources` is empty; name the documentation the facts came from"
                        .to_owned(),
                ));
            }
            if let Some(seconds) = spec.response.requested_expires_in
                && !spec.response.expires_in_choices.contains(&seconds)
            {
                return Err(entry_error(format!(
                    "field `response.requested_expires_in` = {seconds} is not one of \
                     `response.expires_in_choices` ({})",
                    choices_text(&spec.response.expires_in_choices)
                )));
            }
            parsed.push((name, spec));
        }
        self.entries.extend(parsed);
        Ok(())
    }

    /// The entry named `name`.
    pub fn get(&self, name: &str) -> Option<&ProviderSpec> {
        self.entries.get(name)
    }

    /// The entries' names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// The entries, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ProviderSpec)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The built-in entry named `name`.
pub fn lookup(name: &str) -> Option<&'static ProviderSpec> {
    Catalogue::builtin().get(name)
}

/// `3600 or 28800`, or `none` for an entry that takes no `expires_in`.
fn choices_text(choices: &[u64]) -> String {
    if choices.is_empty() {
        return "none".to_owned();
    }
    choices
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(" or ")
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The deserializer's message on one line ("… in `refresh`").
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn line_of(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    match span {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!(" (line {line})")
        }
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[acme]
title = "Acme"
category = "general"
checked = "2026-12-07"
sources = ["https://acme.example/docs/oauth"]
[acme.endpoints]
authorize = "https://acme.example/authorize"
token = "https://acme.example/token"
[acme.client]
auth = "client_secret_basic"
pkce = "supported"
[acme.refresh]
rotates = "unknown"
source = "https://acme.example/docs/oauth"
"#;

    #[test]
    fn a_user_entry_adds_and_unknown_facts_read_safe() {
        let mut c = Catalogue::builtin().clone();
        let before = c.len();
        c.merge_toml("mine.toml", MINIMAL).unwrap();
        assert_eq!(c.len(), before + 1);
        let rules = c.get("acme").unwrap().refresh_rules();
        assert!(rules.rotating);
        assert_eq!(rules.replay_window, None);
        assert!(rules.use_ends_replay_window());
    }

    #[test]
    fn a_user_entry_replaces_a_builtin_one() {
        let mut c = Catalogue::builtin().clone();
        let text = MINIMAL.replace("[acme", "[strava");
        c.merge_toml("mine.toml", &text).unwrap();
        assert_eq!(c.get("strava").unwrap().title, "Acme");
    }

    #[test]
    fn a_bad_field_names_the_file_the_entry_and_the_field() {
        let mut c = Catalogue::default();
        let text = MINIMAL.replace("rotates = \"unknown\"", "rotate = true");
        let err = c.merge_toml("mine.toml", &text).unwrap_err().to_string();
        assert!(err.contains("mine.toml"), "{err}");
        assert!(err.contains("[acme]"), "{err}");
        assert!(err.contains("`rotate`"), "{err}");
        assert!(err.contains("in `refresh`"), "{err}");
        assert!(c.is_empty(), "nothing merged from a bad file");

        let text = MINIMAL.replace("rotates = \"unknown\"", "rotates = \"sometimes\"");
        let err = c.merge_toml("mine.toml", &text).unwrap_err().to_string();
        assert!(
            err.contains("sometimes") && err.contains("unknown"),
            "{err}"
        );

        let err = c
            .merge_toml("mine.toml", "[acme\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("mine.toml") && err.contains("line 1"), "{err}");
    }

    #[test]
    fn an_entry_asks_only_for_an_expires_in_it_lists() {
        let with = |requested: u64| {
            format!(
                "{MINIMAL}[acme.response]\nexpires_in_choices = [3600, 28800]\n\
                 requested_expires_in = {requested}\n"
            )
        };
        let mut c = Catalogue::default();
        c.merge_toml("mine.toml", &with(3600)).unwrap();
        let response = &c.get("acme").unwrap().response;
        assert_eq!(response.requested_expires_in, Some(3600));
        let mut c = Catalogue::default();
        let err = c
            .merge_toml("mine.toml", &with(7200))
            .unwrap_err()
            .to_string();
        assert!(err.contains("requested_expires_in"), "{err}");
        assert!(err.contains("3600 or 28800"), "{err}");
        assert!(c.is_empty(), "nothing merged from a bad file");
    }

    #[test]
    fn templates_need_their_placeholders() {
        let okta = lookup("okta").unwrap();
        assert!(okta.is_template());
        let err = okta.instantiate(&BTreeMap::new()).unwrap_err();
        assert_eq!(err.placeholder, "domain");
        let filled = okta
            .instantiate(&BTreeMap::from([(
                "domain".to_owned(),
                "dev-1.okta.com".to_owned(),
            )]))
            .unwrap();
        assert!(
            filled
                .endpoints
                .token
                .starts_with("https://dev-1.okta.com/")
        );
        assert!(!filled.is_template());
    }
}
