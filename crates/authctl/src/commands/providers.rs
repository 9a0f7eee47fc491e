//! `authctl providers`: the provider catalogue, and one entry's facts with
//! their sources. Reads the config only for a user's own catalogue file.

use std::fmt::Write as _;
use std::path::Path;

use auth_catalogue::{Catalogue, Fact, ProviderSpec, format_duration};

use crate::cli::{ProvidersAction, ProvidersArgs};
use crate::config::Config;
use crate::exit::{CliResult, Failure};
use crate::output;

/// Runs `authctl providers [show NAME]`.
pub(crate) fn run(config: Option<&Path>, args: ProvidersArgs) -> CliResult {
    let config = Config::load(config)?;
    let catalogue = config.catalogue();
    match args.action {
        None => {
            output::line(&list(catalogue));
            Ok(())
        }
        Some(ProvidersAction::Show { name }) => {
            let spec = catalogue.get(&name).ok_or_else(|| {
                Failure::usage(
                    format!("the provider catalogue has no entry {name:?}"),
                    "run: authctl providers (to list the entries)",
                )
            })?;
            output::line(&show(&name, spec));
            Ok(())
        }
    }
}

fn rotation(spec: &ProviderSpec) -> String {
    match spec.refresh.rotates {
        Fact::Known(true) => "rotates".to_owned(),
        Fact::Known(false) => "does not rotate".to_owned(),
        Fact::Unknown => "rotation unknown (treated as rotating)".to_owned(),
    }
}

/// One line per entry: name, title, rotation.
pub(crate) fn list(catalogue: &Catalogue) -> String {
    let width = catalogue.names().map(str::len).max().unwrap_or(0);
    let mut out = String::new();
    for (name, spec) in catalogue.iter() {
        let _ = writeln!(out, "{name:width$}  {}; {}", spec.title, rotation(spec));
    }
    let _ = write!(
        out,
        "{} providers; `authctl providers show NAME` prints one with its sources",
        catalogue.len()
    );
    out
}

/// One entry, with its facts and sources.
pub(crate) fn show(name: &str, spec: &ProviderSpec) -> String {
    let mut out = String::new();
    let mut row = |label: &str, value: &str| {
        let _ = writeln!(out, "{label:<24}{value}");
    };
    row("name", name);
    row("title", &spec.title);
    if let Some(successor) = &spec.successor {
        row("status", &format!("retired; successor {successor}"));
    }
    for (what, url) in spec.urls() {
        row(what, url);
    }
    if !spec.endpoints.placeholders.is_empty() {
        row("placeholders", &spec.endpoints.placeholders.join(", "));
    }
    row("client auth", spec.client.auth.as_str());
    row("PKCE", spec.client.pkce.as_str());
    row("scope separator", &format!("{:?}", spec.scopes.separator));
    if !spec.scopes.default.is_empty() {
        row("default scopes", &spec.scopes.default.join(" "));
    }
    if !spec.scopes.offline.is_empty() {
        row("offline scopes", &spec.scopes.offline.join(" "));
    }
    for (k, v) in &spec.scopes.authorize_params {
        row("authorize parameter", &format!("{k}={v}"));
    }
    let r = &spec.refresh;
    row("rotates", &r.rotates.to_string());
    row(
        "old token dies at once",
        &r.old_token_dies_at_once.to_string(),
    );
    row("replay window", &r.replay_window.to_string());
    row(
        "first use ends window",
        &r.first_use_ends_window.to_string(),
    );
    row("refresh token lifetime", &r.lifetime.to_string());
    for (status, span) in &r.lifetime_by_app_status {
        row(&format!("  when {status}"), &format_duration(span.0));
    }
    row("idle limit", &r.idle_limit.to_string());
    row(
        "may omit refresh token",
        &r.may_omit_refresh_token.to_string(),
    );
    let rules = spec.refresh_rules();
    row(
        "acted on as",
        &format!(
            "{}, replay window {}",
            if rules.rotating {
                "rotating"
            } else {
                "not rotating"
            },
            rules
                .replay_window
                .map_or_else(|| "none".to_owned(), format_duration)
        ),
    );
    row("refresh facts from", &r.source);
    if let Some(field) = &spec.account.field {
        row("account id", field);
    }
    row("checked", &spec.checked);
    for source in &spec.sources {
        row("source", source);
    }
    out.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_names_every_entry_and_the_count() {
        let catalogue = Catalogue::builtin();
        let text = list(catalogue);
        for name in catalogue.names() {
            assert!(text.lines().any(|l| l.starts_with(name)), "{name}: {text}");
        }
        assert!(
            text.contains(&format!("{} providers", catalogue.len())),
            "{text}"
        );
    }

    #[test]
    fn show_prints_the_facts_and_their_sources() {
        let spec = Catalogue::builtin().get("google").unwrap();
        let text = show("google", spec);
        assert!(text.contains("rotates                 false"), "{text}");
        assert!(
            text.contains("when testing             7d") || text.contains("  when testing"),
            "{text}"
        );
        assert!(text.contains("idle limit              180d"), "{text}");
        assert!(
            text.contains("https://developers.google.com/identity/protocols/oauth2#expiration"),
            "{text}"
        );
        let unknown = show("okta", Catalogue::builtin().get("okta").unwrap());
        assert!(
            unknown.contains("rotates                 unknown"),
            "{unknown}"
        );
        assert!(
            unknown.contains("acted on as             rotating, replay window none"),
            "{unknown}"
        );
    }
}
