//! The catalogue as a Markdown table, for `docs/providers.md`.

use std::fmt::Write as _;

use crate::catalogue::Catalogue;
use crate::fact::{Fact, format_duration};
use crate::spec::{ProviderSpec, Status};

/// One row per entry: provider, rotation, replay window, refresh token
/// lifetime, client authentication, PKCE and the sources.
pub fn markdown_table(catalogue: &Catalogue) -> String {
    let mut out = String::from(
        "| provider | rotates | replay window | refresh token lifetime | idle limit | client auth | PKCE | sources |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for (name, spec) in catalogue.iter() {
        let _ = writeln!(
            out,
            "| `{name}`: {title}{retired} | {rotates} | {window} | {lifetime} | {idle} | {auth} | {pkce} | {sources} |",
            title = spec.title,
            retired = match spec.status {
                Status::Retired => format!(
                    " (retired; successor `{}`)",
                    spec.successor.as_deref().unwrap_or("none")
                ),
                Status::Active => String::new(),
            },
            rotates = rotation(spec),
            window = spec.refresh.replay_window,
            lifetime = lifetime(spec),
            idle = spec.refresh.idle_limit,
            auth = spec.client.auth.as_str(),
            pkce = spec.client.pkce.as_str(),
            sources = sources(spec),
        );
    }
    out
}

fn rotation(spec: &ProviderSpec) -> String {
    let r = &spec.refresh;
    match (r.rotates, r.old_token_dies_at_once) {
        (Fact::Known(true), Fact::Known(true)) => "yes; the old token dies at once".to_owned(),
        (Fact::Known(true), Fact::Known(false)) => "yes; the old token lives on a while".to_owned(),
        (Fact::Known(true), Fact::Unknown) => "yes".to_owned(),
        (Fact::Known(false), _) => "no".to_owned(),
        (Fact::Unknown, _) => "unknown".to_owned(),
    }
}

fn lifetime(spec: &ProviderSpec) -> String {
    let mut text = spec.refresh.lifetime.to_string();
    for (status, span) in &spec.refresh.lifetime_by_app_status {
        let _ = write!(text, "; {} for {status}", format_duration(span.0));
    }
    text
}

fn sources(spec: &ProviderSpec) -> String {
    let mut links: Vec<String> = Vec::new();
    let mut all: Vec<&str> = vec![spec.refresh.source.as_str()];
    all.extend(spec.sources.iter().map(String::as_str));
    for url in all {
        if !links.iter().any(|l| l.contains(&format!("({url})"))) {
            links.push(format!("[{}]({url})", links.len() + 1));
        }
    }
    links.join(" ")
}
