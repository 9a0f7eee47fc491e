//! Everything the tool writes to stdout and stderr, and its log setup.
//!
//! This is the only module that prints. It never receives a refresh token,
//! an authorization code or a client secret; the one function that prints
//! an access token is [`token`], used by `authctl token` alone, and the one
//! that prints a key is [`key_entry`], used by `authctl keygen` alone.
//!
//! stdout carries results (summaries, tables, JSON, the token); stderr
//! carries everything for the person watching: the authorize URL, notes,
//! warnings, errors and logs.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the output module is where the command-line tool talks to its user"
)]

use std::io::IsTerminal as _;
use std::time::{Duration, SystemTime};

use auth_core::{Introspection, TokenKey, TokenSet};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use url::Url;

use crate::exit::Failure;

/// Sends logs to stderr: `RUST_LOG` when set; else, without `-v`, only
/// errors (a command's own failure is reported once, by [`failure`], not
/// again by the warnings the libraries log on the way); with `-v`,
/// warnings and more with each `v` (for this workspace's crates only, so no
/// dependency logs raw HTTP traffic).
pub(crate) fn init_tracing(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let ours = [
        "authctl",
        "auth_core",
        "auth_oauth2",
        "auth_fitbit",
        "store_file",
        "store_postgres",
    ];
    let level = match verbose {
        0 => None,
        1 => Some("info"),
        2 => Some("debug"),
        _ => Some("trace"),
    };
    let default = match level {
        None => "error".to_owned(),
        Some(level) => std::iter::once("warn".to_owned())
            .chain(ours.iter().map(|c| format!("{c}={level}")))
            .collect::<Vec<_>>()
            .join(","),
    };
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.is_empty() => EnvFilter::new(spec),
        _ => EnvFilter::new(default),
    };
    // A second initialization (never in practice) is harmless.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}

/// A line of results on stdout.
pub(crate) fn line(text: &str) {
    println!("{text}");
}

/// The access token and a newline on stdout, and nothing else: the whole
/// output of `authctl token`.
pub(crate) fn token(secret: &str) {
    println!("{secret}");
}

/// A new encryption key entry and a newline on stdout, and nothing else:
/// the whole output of `authctl keygen`.
pub(crate) fn key_entry(entry: &str) {
    println!("{entry}");
}

/// A note for the person watching, on stderr.
pub(crate) fn note(text: &str) {
    eprintln!("{text}");
}

/// A warning on stderr.
pub(crate) fn warn(text: &str) {
    eprintln!("warning: {text}");
}

/// The authorize URL, alone on its own line on stderr, so that scripts and
/// tests can pick it out and people can copy it.
pub(crate) fn authorize_url(url: &Url) {
    eprintln!("{url}");
}

/// A device login's verification URI, alone on its own line on stderr, like
/// the authorize URL of the browser flow.
pub(crate) fn verification_uri(uri: &str) {
    eprintln!("{uri}");
}

/// A failed command: the error and the next step, on stderr.
pub(crate) fn failure(failure: &Failure) {
    eprintln!("error: {}", failure.message());
    eprintln!("  {}", failure.next());
}

/// A response body on stdout as it came, with a newline after it when it
/// has none (the whole output of `authctl get`).
pub(crate) fn body(bytes: &[u8]) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    // A closed pipe (`| head`) is not an error worth reporting.
    let _ = out.write_all(bytes);
    if !bytes.ends_with(b"\n") {
        let _ = out.write_all(b"\n");
    }
    let _ = out.flush();
}

/// JSON on stdout, pretty-printed.
pub(crate) fn json(value: &Value) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        // A `Value` always serializes; keep the output valid JSON anyway.
        Err(_) => println!("null"),
    }
}

/// A spinner on stderr while waiting, on a terminal only.
pub(crate) struct Spinner(Option<ProgressBar>);

impl Spinner {
    /// Starts spinning with `message` if stderr is a terminal.
    pub(crate) fn start(message: &str) -> Self {
        if !std::io::stderr().is_terminal() {
            return Self(None);
        }
        let bar = ProgressBar::new_spinner();
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
            bar.set_style(style);
        }
        bar.set_message(message.to_owned());
        bar.enable_steady_tick(Duration::from_millis(120));
        Self(Some(bar))
    }

    /// Stops and erases the spinner.
    pub(crate) fn stop(self) {
        if let Some(bar) = self.0 {
            bar.finish_and_clear();
        }
    }
}

/// What may be shown of a stored token: everything but its secrets.
#[derive(Debug, Clone)]
pub(crate) struct TokenView {
    provider: String,
    account: String,
    user_id: Option<String>,
    scopes: Vec<String>,
    expires_at: Option<SystemTime>,
    expired: bool,
    refreshable: bool,
    reauthorization: Option<String>,
}

impl TokenView {
    /// The view of `token`, stored under `key`, at `now`.
    pub(crate) fn new(key: &TokenKey, token: &TokenSet, now: SystemTime) -> Self {
        Self {
            provider: key.provider.to_string(),
            account: key.account.to_string(),
            user_id: auth_fitbit::user_id(token).map(str::to_owned),
            scopes: token.scopes().iter().cloned().collect(),
            expires_at: token.expires_at(),
            expired: !token.is_fresh(now, Duration::ZERO),
            refreshable: token.refresh_token().is_some(),
            reauthorization: token.reauthorization_required().map(str::to_owned),
        }
    }

    /// Whether a new login is needed: the grant was refused, or the token
    /// expired with no refresh token to renew it.
    pub(crate) fn needs_reauthorization(&self) -> bool {
        self.reauthorization.is_some() || (self.expired && !self.refreshable)
    }

    /// The granted scopes.
    pub(crate) fn scopes(&self) -> &[String] {
        &self.scopes
    }

    fn state(&self) -> String {
        match (&self.reauthorization, self.expired, self.refreshable) {
            (Some(reason), _, _) => format!("needs login ({reason})"),
            (None, true, true) => "expired, refreshable".to_owned(),
            (None, true, false) => "expired, needs login".to_owned(),
            (None, false, _) => "valid".to_owned(),
        }
    }

    /// The JSON form: no secrets, times in RFC 3339.
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "provider": self.provider,
            "account": self.account,
            "user_id": self.user_id,
            "scopes": self.scopes,
            "expires_at": self.expires_at.map(rfc3339),
            "expired": self.expired,
            "refreshable": self.refreshable,
            "needs_reauthorization": self.needs_reauthorization(),
            "reauthorization_reason": self.reauthorization,
        })
    }

    /// A few lines under a heading, for login and refresh.
    pub(crate) fn print_summary(&self, heading: &str, now: SystemTime) {
        line(&format!("{heading}: {}/{}", self.provider, self.account));
        line(&format!("  provider  {}", self.provider));
        line(&format!("  account   {}", self.account));
        if let Some(user_id) = &self.user_id {
            line(&format!("  user_id   {user_id}"));
        }
        line(&format!("  scopes    {}", scope_list(&self.scopes)));
        line(&format!("  expires   {}", expiry(self.expires_at, now)));
        line(&format!("  state     {}", self.state()));
    }
}

fn scope_list(scopes: &[String]) -> String {
    if scopes.is_empty() {
        "(none reported)".to_owned()
    } else {
        scopes.join(" ")
    }
}

/// A time in RFC 3339, to the second.
pub(crate) fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

/// A duration as people read it, to two units at most and rounded to the
/// nearest of the smaller one: `250ms`, `15s`, `4m 10s`, `7h 59m`,
/// `2d 3h`. The one place authctl turns a duration into words.
pub(crate) fn human_duration(d: Duration) -> String {
    const MINUTE: u128 = 60_000;
    const HOUR: u128 = 60 * MINUTE;
    const DAY: u128 = 24 * HOUR;
    let millis = d.as_millis();
    if millis < 1000 {
        return format!("{millis}ms");
    }
    // The smallest unit shown, given the largest.
    let step = match millis {
        m if m < HOUR => 1000,
        m if m < DAY => MINUTE,
        _ => HOUR,
    };
    let mut left = (millis + step / 2) / step * step;
    // Rounding up may reach the next unit (59m 59.6s is 1h), which then
    // shows no smaller one.
    let mut parts = Vec::with_capacity(2);
    for (unit, name) in [(DAY, "d"), (HOUR, "h"), (MINUTE, "m"), (1000, "s")] {
        if left >= unit {
            parts.push(format!("{}{name}", left / unit));
            left %= unit;
        }
    }
    parts.join(" ")
}

/// `2026-05-01T10:00:00Z (in 7h 59m)`.
pub(crate) fn expiry(expires_at: Option<SystemTime>, now: SystemTime) -> String {
    let Some(at) = expires_at else {
        return "unknown (the server did not say)".to_owned();
    };
    match at.duration_since(now) {
        Ok(left) => format!("{} (in {})", rfc3339(at), human_duration(left)),
        Err(past) => format!(
            "{} (expired {} ago)",
            rfc3339(at),
            human_duration(past.duration())
        ),
    }
}

/// A row of `authctl status`.
#[derive(Debug)]
pub(crate) enum StatusRow {
    /// A stored token.
    Token(TokenView),
    /// A key whose token could not be read.
    Broken {
        /// The key.
        key: TokenKey,
        /// Why, without secrets.
        error: String,
    },
}

/// `authctl status`: a table, or JSON.
pub(crate) fn status(place: &str, rows: &[StatusRow], as_json: bool, now: SystemTime) {
    if as_json {
        let items: Vec<Value> = rows
            .iter()
            .map(|row| match row {
                StatusRow::Token(view) => view.to_json(),
                StatusRow::Broken { key, error } => json!({
                    "provider": key.provider.as_str(),
                    "account": key.account.as_str(),
                    "error": error,
                }),
            })
            .collect();
        json(&Value::Array(items));
        return;
    }
    if rows.is_empty() {
        line(&format!("no tokens stored in {place}"));
        return;
    }
    let mut table = vec![[
        "PROVIDER".to_owned(),
        "ACCOUNT".to_owned(),
        "USER_ID".to_owned(),
        "EXPIRES".to_owned(),
        "STATE".to_owned(),
        "SCOPES".to_owned(),
    ]];
    for row in rows {
        table.push(match row {
            StatusRow::Token(v) => [
                v.provider.clone(),
                v.account.clone(),
                v.user_id.clone().unwrap_or_else(|| "-".to_owned()),
                expiry(v.expires_at, now),
                v.state(),
                scope_list(&v.scopes),
            ],
            StatusRow::Broken { key, error } => [
                key.provider.to_string(),
                key.account.to_string(),
                "-".to_owned(),
                "-".to_owned(),
                format!("unreadable: {error}"),
                "-".to_owned(),
            ],
        });
    }
    let widths: Vec<usize> = (0..5)
        .map(|i| {
            table
                .iter()
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in &table {
        let mut text = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i < 5 {
                text.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            } else {
                text.push_str(cell);
            }
        }
        line(text.trim_end());
    }
}

/// `authctl introspect`: the server's view of the token.
pub(crate) fn introspection(key: &TokenKey, info: &Introspection, as_json: bool) {
    let scopes = granted_scopes(info);
    if as_json {
        json(&json!({
            "provider": key.provider.as_str(),
            "account": key.account.as_str(),
            "active": info.active,
            "scopes": info.scopes.iter().map(|s| json!({"name": s.name, "access": s.access})).collect::<Vec<_>>(),
            "client_id": info.client_id,
            "subject": info.subject,
            "token_type": info.token_type,
            "expires_at": info.expires_at.map(rfc3339),
            "issued_at": info.issued_at.map(rfc3339),
            "extras": info.extras,
        }));
        return;
    }
    line(&format!("{key} at the server:"));
    for row in introspection_rows(info, &scopes, SystemTime::now()) {
        line(&row);
    }
}

/// The scopes the server says the token grants, as `authctl introspect`
/// and the demo show them: each name, with `=access` where the server names
/// the access it grants.
pub(crate) fn granted_scopes(info: &Introspection) -> Vec<String> {
    info.scopes
        .iter()
        .map(|s| match &s.access {
            Some(access) => format!("{}={access}", s.name),
            None => s.name.clone(),
        })
        .collect()
}

/// The lines under `authctl introspect`'s heading: one label and value per
/// line, the values in one column, strings as they are (not as JSON).
fn introspection_rows(info: &Introspection, scopes: &[String], now: SystemTime) -> Vec<String> {
    let mut rows = vec![(
        "active".to_owned(),
        if info.active { "yes" } else { "no" }.to_owned(),
    )];
    if info.active {
        rows.push(("scopes".to_owned(), scope_list(scopes)));
        let optional = [
            ("client_id", info.client_id.clone()),
            ("subject", info.subject.clone()),
            ("token_type", info.token_type.clone()),
            ("expires", info.expires_at.map(|t| expiry(Some(t), now))),
            ("issued", info.issued_at.map(rfc3339)),
        ];
        rows.extend(
            optional
                .into_iter()
                .filter_map(|(label, value)| Some((label.to_owned(), value?))),
        );
        rows.extend(info.extras.iter().map(|(name, value)| {
            let shown = match value {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            (name.clone(), shown)
        }));
    }
    let width = rows
        .iter()
        .map(|(label, _)| label.chars().count())
        .max()
        .unwrap_or(0);
    rows.into_iter()
        .map(|(label, value)| format!("  {label:<width$}  {value}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn human(secs: f64) -> String {
        human_duration(Duration::from_secs_f64(secs))
    }

    #[test]
    fn introspection_values_line_up_and_strings_are_not_quoted() {
        let mut info = Introspection::active(Vec::new());
        info.client_id = Some("test-google.apps.googleusercontent.com".to_owned());
        info.extras.insert(
            "access_type".to_owned(),
            Value::String("offline".to_owned()),
        );
        info.extras
            .insert("email_verified".to_owned(), Value::Bool(true));
        let rows = introspection_rows(&info, &["openid".to_owned()], SystemTime::now());
        assert_eq!(
            rows,
            [
                "  active          yes",
                "  scopes          openid",
                "  client_id       test-google.apps.googleusercontent.com",
                "  access_type     offline",
                "  email_verified  true",
            ]
        );
    }

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(human(0.25), "250ms");
        assert_eq!(human(14.942_842_587), "15s");
        assert_eq!(human(15.0), "15s");
        assert_eq!(human(250.0), "4m 10s");
        assert_eq!(human(3599.6), "1h");
        assert_eq!(human(3660.0), "1h 1m");
        assert_eq!(human(28_770.0), "8h");
        assert_eq!(human(28_740.0), "7h 59m");
        assert_eq!(human(2.0 * 86_400.0 + 3.0 * 3600.0 + 20.0 * 60.0), "2d 3h");
        // No sub-second noise once a duration is a second or more.
        assert!(!human(14.942_842_587).contains("ms"));
    }
}
