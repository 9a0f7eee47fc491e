//! Messages about one `[providers.NAME]` section: each names the file, the
//! section and the field, and never holds a client secret.

use std::fmt;

use auth_oauth2::is_loopback;
use url::Url;

use crate::exit::{CliResult, Failure};

/// Names the file and provider in every message about a section.
pub(super) struct Section<'a> {
    /// The config file, as shown.
    pub(super) file: &'a str,
    /// The section's provider name.
    pub(super) name: &'a str,
}

impl Section<'_> {
    /// `FILE: [providers.NAME] FIELD: problem`, with a next step that points
    /// at the field.
    pub(super) fn error(&self, field: &str, problem: impl fmt::Display) -> Failure {
        self.error_then(
            field,
            problem,
            format!(
                "fix `{field}` in the [providers.{}] section of {}",
                self.name, self.file
            ),
        )
    }

    /// `FILE: [providers.NAME] FIELD: problem`, with its own next step.
    pub(super) fn error_then(
        &self,
        field: &str,
        problem: impl fmt::Display,
        next: impl Into<String>,
    ) -> Failure {
        Failure::usage(
            format!(
                "{}: [providers.{}] {field}: {problem}",
                self.file, self.name
            ),
            next,
        )
    }

    /// Parses a URL without a fragment.
    pub(super) fn parse_url(&self, field: &str, value: &str) -> CliResult<Url> {
        let url = Url::parse(value)
            .map_err(|e| self.error(field, format!("{value:?} is not a valid URL ({e})")))?;
        if url.fragment().is_some() {
            return Err(self.error(field, format!("{value:?} must not have a #fragment")));
        }
        Ok(url)
    }

    /// An endpoint URL: https, or http to a loopback host.
    pub(super) fn endpoint(&self, field: &str, value: Option<&str>) -> CliResult<Option<Url>> {
        let url = value.map(|v| self.parse_url(field, v)).transpose()?;
        if let Some(url) = &url {
            let secure = url.scheme() == "https" || (url.scheme() == "http" && is_loopback(url));
            if !secure {
                return Err(self.error(
                    field,
                    format!(
                        "{url} uses {}://; only https:// is allowed, or http:// to a loopback \
                         host (127.0.0.1, [::1], localhost)",
                        url.scheme()
                    ),
                ));
            }
        }
        Ok(url)
    }

    /// Turns serde's error about this section (a missing field, a value of
    /// the wrong type or a bad value) into a message naming the field.
    pub(super) fn serde_error(&self, err: &toml::de::Error) -> Failure {
        let text = err.to_string();
        let mut problem = Vec::new();
        let mut field = None;
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if let Some(name) = line.strip_prefix("in `").and_then(|l| l.strip_suffix('`')) {
                field = Some(name.to_owned());
            } else if let Some(name) = line
                .strip_prefix("missing field `")
                .and_then(|l| l.strip_suffix('`'))
            {
                return self.error(name, "missing; this field is required");
            } else {
                problem.push(line);
            }
        }
        let problem = problem.join(" ");
        match field {
            Some(field) => self.error(&field, problem),
            None => Failure::usage(
                format!("{}: [providers.{}]: {problem}", self.file, self.name),
                format!("fix the [providers.{}] section of {}", self.name, self.file),
            ),
        }
    }
}
