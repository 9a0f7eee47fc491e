//! The README's authctl reference is complete: every command and option
//! clap knows, and every config key the config's parser accepts, appears
//! in it. The lists come from the code (clap's command tree, and the field
//! lists serde reports for an unknown key), so a new command, option or
//! key fails this test until the README names it.

use std::collections::BTreeSet;
use std::path::Path;

use clap::CommandFactory as _;

use crate::cli::Cli;
use crate::config::{Config, ProviderKind};

/// The repository's README, read at compile time.
const README: &str = include_str!("../../../README.md");

/// Every subcommand path (`login`, `clear-flag`, ...) with each of its
/// long options, from clap's command tree, leaving out clap's own
/// `--help` and `--version`.
fn commands() -> Vec<(String, Vec<String>)> {
    fn walk(prefix: &str, command: &clap::Command, out: &mut Vec<(String, Vec<String>)>) {
        for sub in command.get_subcommands() {
            let path = format!("{prefix}{}", sub.get_name()).trim().to_owned();
            let options = sub
                .get_arguments()
                .filter(|arg| !arg.is_global_set())
                .filter_map(|arg| arg.get_long())
                .filter(|long| !matches!(*long, "help" | "version"))
                .map(|long| format!("--{long}"))
                .collect();
            out.push((path.clone(), options));
            walk(&format!("{path} "), sub, out);
        }
    }
    let mut out = Vec::new();
    walk("", &Cli::command(), &mut out);
    out
}

/// The global options, from clap's command tree.
fn global_options() -> Vec<String> {
    Cli::command()
        .get_arguments()
        .filter_map(|arg| arg.get_long())
        .filter(|long| !matches!(*long, "help" | "version"))
        .map(|long| format!("--{long}"))
        .collect()
}

/// The keys the parser accepts at the place of `zz_unknown` in `file`,
/// read from the error that unknown key gets: a provider section lists the
/// keys its kind accepts, and serde lists the fields it expected elsewhere.
fn accepted_keys(file: &str) -> BTreeSet<String> {
    let failure = Config::parse(file, Path::new("config.toml"))
        .expect_err("a config with an unknown key must be refused");
    let message = failure.message();
    let (_, list) = message
        .split_once(" accepts ")
        .or_else(|| message.split_once("expected one of "))
        .or_else(|| message.split_once("expected "))
        .unwrap_or_else(|| panic!("no list of expected keys in: {message}"));
    let keys: BTreeSet<String> = list
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    assert!(!keys.is_empty(), "no keys parsed from: {message}");
    keys
}

/// The keys a `[providers.NAME]` section of kind `name` accepts.
fn provider_keys(name: &str) -> BTreeSet<String> {
    accepted_keys(&format!(
        "[providers.p]\nkind = \"{name}\"\nclient_id = \"x\"\nzz_unknown = 1\n"
    ))
}

/// The "kinds" cell of `key`'s row in `readme`'s `[providers.NAME]` table.
fn kinds_cell<'a>(readme: &'a str, key: &str) -> Option<&'a str> {
    let row = format!("| `{key}` | ");
    readme
        .lines()
        .skip_while(|line| !line.starts_with("`[providers.NAME]`"))
        .find(|line| line.starts_with(&row))
        .and_then(|line| line.split(" | ").nth(1))
}

/// Where `readme`'s `[providers.NAME]` table says a key applies to other
/// kinds than the code accepts it for: each kind that takes a key is named
/// in its kinds cell (or the cell says `all`), and no kind that does not
/// take it is. A catalogue entry is named by the word "catalogue".
fn wrong_kinds(readme: &str) -> Vec<String> {
    let mut wrong = Vec::new();
    let kinds = kinds().map(|(kind, name)| (kind, name, provider_keys(name)));
    let every: BTreeSet<&String> = kinds.iter().flat_map(|(_, _, keys)| keys).collect();
    for key in every.into_iter().filter(|key| *key != "kind") {
        let Some(cell) = kinds_cell(readme, key) else {
            continue;
        };
        for (kind, name, keys) in &kinds {
            let named = match kind {
                ProviderKind::Catalogue => cell.contains("catalogue"),
                _ => cell.contains(&format!("`{name}`")),
            };
            let takes = keys.contains(key);
            if takes && !named && cell != "all" {
                wrong.push(format!("`{key}`: its kinds ({cell}) leave out `{name}`"));
            }
            if !takes && (named || cell == "all") {
                wrong.push(format!(
                    "`{key}`: its kinds ({cell}) name `{name}`, which refuses it"
                ));
            }
        }
    }
    wrong
}

/// Every provider kind, by an exhaustive match (a new kind fails to
/// compile here until it is listed), with the `kind = ...` value that
/// selects it: a catalogue entry is named by its own name.
fn kinds() -> [(ProviderKind, &'static str); 4] {
    let all = [
        (ProviderKind::Fitbit, "fitbit"),
        (ProviderKind::GoogleHealth, "google-health"),
        (ProviderKind::OAuth2, "oauth2"),
        (ProviderKind::Catalogue, "strava"),
    ];
    for (kind, _) in all {
        match kind {
            ProviderKind::Fitbit
            | ProviderKind::GoogleHealth
            | ProviderKind::OAuth2
            | ProviderKind::Catalogue => {}
        }
    }
    all
}

/// The lines of `readme`'s command table that start with `authctl NAME`.
fn command_rows<'a>(readme: &'a str, name: &str) -> Vec<&'a str> {
    let start = format!("| `authctl {name} ");
    let alone = format!("| `authctl {name}` ");
    readme
        .lines()
        .filter(|line| line.starts_with(&start) || line.starts_with(&alone))
        .collect()
}

/// What `readme` lacks of the commands and options clap knows.
fn missing_commands(readme: &str) -> Vec<String> {
    let commands = commands();
    assert!(commands.len() >= 10, "too few commands found: {commands:?}");
    let mut missing = Vec::new();
    for (command, options) in &commands {
        let rows = command_rows(readme, command);
        if rows.is_empty() {
            missing.push(format!(
                "a row for `authctl {command}` in the command table"
            ));
            continue;
        }
        for option in options {
            if !rows.iter().any(|row| row.contains(option.as_str())) {
                missing.push(format!("`{option}` in a row of `authctl {command}`"));
            }
        }
    }
    for option in global_options() {
        if !readme.contains(&format!("`{option}")) {
            missing.push(format!("the global option `{option}`"));
        }
    }
    missing
}

/// What `readme` lacks of the config keys the parser accepts.
fn missing_config_keys(readme: &str) -> Vec<String> {
    let mut sections = vec![
        (
            "the top level".to_owned(),
            accepted_keys("zz_unknown = 1\n"),
        ),
        (
            "[store]".to_owned(),
            accepted_keys("[store]\nzz_unknown = 1\n"),
        ),
    ];
    for (_, name) in kinds() {
        sections.push((
            format!("[providers.NAME] kind = \"{name}\""),
            provider_keys(name),
        ));
    }
    assert!(
        sections[0].1.contains("store") && sections[0].1.contains("providers"),
        "the top level's keys were not read: {:?}",
        sections[0].1
    );
    assert!(
        sections.iter().any(|(_, keys)| keys.contains("grant")),
        "the providers' keys were not read: {sections:?}"
    );
    let mut missing = Vec::new();
    for (section, keys) in &sections {
        for key in keys {
            // A key is documented as a row of a reference table, or (for
            // the top-level tables) by its `[name]` heading.
            let row = format!("| `{key}` |");
            let table = format!("[{key}");
            if !readme.contains(&row) && !readme.contains(&table) {
                missing.push(format!("`{key}` of {section}"));
            }
        }
    }
    for (kind, name) in kinds() {
        if kind != ProviderKind::Catalogue && !readme.contains(&format!("`{name}`")) {
            missing.push(format!("the kind `{name}`"));
        }
    }
    missing
}

/// `README` without the lines that contain `needle`.
fn readme_without(needle: &str) -> String {
    README
        .lines()
        .filter(|line| !line.contains(needle))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn every_command_and_option_is_in_the_readme() {
    let missing = missing_commands(README);
    assert!(
        missing.is_empty(),
        "the README lacks:\n  {}",
        missing.join("\n  ")
    );
}

#[test]
fn every_config_key_is_in_the_readme() {
    let missing = missing_config_keys(README);
    assert!(
        missing.is_empty(),
        "the README lacks:\n  {}",
        missing.join("\n  ")
    );
}

#[test]
fn the_readme_names_the_kinds_that_take_each_key() {
    let wrong = wrong_kinds(README);
    assert!(
        wrong.is_empty(),
        "the README's [providers.NAME] table is wrong:\n  {}",
        wrong.join("\n  ")
    );
    let row = "| `issuer` | `google-health`, `oauth2`, catalogue entries |";
    assert!(README.contains(row));
    let changed = README.replace(row, "| `issuer` | `fitbit`, `oauth2` |");
    assert_eq!(
        wrong_kinds(&changed),
        [
            "`issuer`: its kinds (`fitbit`, `oauth2`) name `fitbit`, which refuses it",
            "`issuer`: its kinds (`fitbit`, `oauth2`) leave out `google-health`",
            "`issuer`: its kinds (`fitbit`, `oauth2`) leave out `strava`",
        ]
    );
}

#[test]
fn a_command_an_option_or_a_key_the_readme_lacks_is_named() {
    let missing = missing_commands(&readme_without("| `authctl clear-flag"));
    assert!(
        missing.iter().any(|m| m.contains("authctl clear-flag")),
        "{missing:?}"
    );
    let missing = missing_commands(&readme_without("--device"));
    assert!(
        missing.iter().any(|m| m.contains("`--device`")),
        "{missing:?}"
    );
    let missing = missing_config_keys(&readme_without("| `audience` |"));
    assert!(
        missing.iter().any(|m| m.contains("`audience`")),
        "{missing:?}"
    );
}
