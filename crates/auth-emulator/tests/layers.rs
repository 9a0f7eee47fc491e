//! The crate's modules form a stack: OAuth primitives at the bottom, the
//! providers (each owning its state) above them, the server on top, and the
//! public facade above all. This test reads the sources and fails when a
//! module imports one of a higher layer, or when the imports form a cycle,
//! so the stack stays a stack.
//!
//! It reads `crate::…` and `super::…` paths in code (comments, and the unit
//! tests at the end of a file after `#[cfg(test)]`, are not read), with
//! `use` groups such as `crate::oauth::{pkce, reply::Reply}` expanded.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The layers, bottom to top.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Layer {
    /// OAuth primitives and the crate's leaf modules.
    Primitives,
    /// Each provider's behaviour and its own state.
    Providers,
    /// The servers: state holding the parts, router, faults, counters, the
    /// accept loop, the builder and the `Emulator` handle.
    Server,
    /// The public face: the crate root and the `profile` module.
    Facade,
}

use Layer::{Facade, Primitives, Providers, Server};

/// Every module of the library and its layer. A new module must be added
/// here (the test fails otherwise).
const LAYERS: &[(&str, Layer)] = &[
    ("demo", Primitives),
    ("error", Primitives),
    ("oauth", Primitives),
    ("oauth::client_auth", Primitives),
    ("oauth::clock", Primitives),
    ("oauth::consent", Primitives),
    ("oauth::context", Primitives),
    ("oauth::endpoint", Primitives),
    ("oauth::error_body", Primitives),
    ("oauth::grants", Primitives),
    ("oauth::params", Primitives),
    ("oauth::pkce", Primitives),
    ("oauth::reply", Primitives),
    ("oauth::request", Primitives),
    ("oauth::scopes", Primitives),
    ("oauth::token", Primitives),
    ("providers", Providers),
    ("providers::catalogue", Providers),
    ("providers::catalogue::grants", Providers),
    ("providers::catalogue::shape", Providers),
    ("providers::device", Providers),
    ("providers::fitbit", Providers),
    ("providers::google", Providers),
    ("providers::rate_limit", Providers),
    ("providers::resource", Providers),
    ("server", Server),
    ("server::builder", Server),
    ("server::counters", Server),
    ("server::emulator", Server),
    ("server::fault", Server),
    ("server::profiles", Server),
    ("server::router", Server),
    ("server::serve", Server),
    ("server::standalone", Server),
    ("server::state", Server),
    ("crate", Facade),
    ("profile", Facade),
];

fn layer_of(module: &str) -> Option<Layer> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

/// The library's source files (the binary under `src/bin/` is a client of
/// the public API, not part of the stack), by module path.
fn library_modules() -> BTreeMap<String, PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    collect(&src, &mut files);
    files
        .into_iter()
        .filter(|f| !f.starts_with(src.join("bin")))
        .map(|f| (module_path(&src, &f), f))
        .collect()
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("src is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `lib.rs` is `crate`, `a/mod.rs` is `a`, `a/b.rs` is `a::b`.
fn module_path(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).expect("under src");
    let mut parts: Vec<String> = relative
        .with_extension("")
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    if parts == ["lib"] {
        return "crate".to_owned();
    }
    parts.join("::")
}

/// The code of a file: comments and the trailing unit tests removed.
fn code_of(source: &str) -> String {
    let mut code = String::new();
    for line in source.lines() {
        if line.trim_start().starts_with("#[cfg(test)]") {
            break;
        }
        let line = line.find("//").map_or(line, |at| &line[..at]);
        code.push_str(line);
        code.push('\n');
    }
    code
}

/// The paths named after each `crate::` or `super::` in `code`, with `use`
/// groups expanded, as absolute segment lists.
fn named_paths(module: &str, code: &str) -> Vec<Vec<String>> {
    let chars: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let preceded_by_ident = i > 0 && is_ident(chars[i - 1]);
        let rest: String = chars[i..chars.len().min(i + 7)].iter().collect();
        let base = if preceded_by_ident {
            None
        } else if rest.starts_with("crate::") {
            i += "crate::".len();
            Some(Vec::new())
        } else if rest.starts_with("super::") {
            i += "super::".len();
            let mut parent: Vec<String> = if module == "crate" {
                Vec::new()
            } else {
                module.split("::").map(str::to_owned).collect()
            };
            parent.pop();
            Some(parent)
        } else {
            None
        };
        match base {
            Some(prefix) => parse_tree(&chars, &mut i, prefix, &mut out),
            None => i += 1,
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Parses `a::b::{c, d::e}` from `chars[*i..]` into full paths.
fn parse_tree(chars: &[char], i: &mut usize, mut prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    loop {
        skip_space(chars, i);
        if chars.get(*i) == Some(&'{') {
            *i += 1;
            loop {
                skip_space(chars, i);
                match chars.get(*i) {
                    None => return,
                    Some('}') => {
                        *i += 1;
                        return;
                    }
                    Some(',') => *i += 1,
                    Some(_) => {
                        let before = *i;
                        parse_tree(chars, i, prefix.clone(), out);
                        if *i == before {
                            *i += 1;
                        }
                    }
                }
            }
        }
        let start = *i;
        while chars.get(*i).is_some_and(|c| is_ident(*c) || *c == '*') {
            *i += 1;
        }
        let ident: String = chars[start..*i].iter().collect();
        if ident.is_empty() {
            out.push(prefix);
            return;
        }
        prefix.push(ident);
        if chars.get(*i) == Some(&':') && chars.get(*i + 1) == Some(&':') {
            *i += 2;
        } else {
            out.push(prefix);
            return;
        }
    }
}

fn skip_space(chars: &[char], i: &mut usize) {
    while chars.get(*i).is_some_and(|c| c.is_whitespace()) {
        *i += 1;
    }
}

/// The longest listed module a path starts with (`crate` for an item of
/// the root).
fn resolve(path: &[String]) -> String {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].join("::"))
        .find(|m| layer_of(m).is_some())
        .unwrap_or_else(|| "crate".to_owned())
}

/// Every module's imports of other modules.
fn imports(modules: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    modules
        .iter()
        .map(|(module, source)| {
            let targets = named_paths(module, &code_of(source))
                .iter()
                .map(|p| resolve(p))
                .filter(|t| t != module)
                .collect();
            (module.clone(), targets)
        })
        .collect()
}

/// The imports that go up the stack, as `from -> to` lines.
fn upward(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let mut found = Vec::new();
    for (from, targets) in graph {
        for to in targets {
            let (Some(low), Some(high)) = (layer_of(from), layer_of(to)) else {
                continue;
            };
            if high > low {
                found.push(format!("{from} ({low:?}) imports {to} ({high:?})"));
            }
        }
    }
    found
}

/// One cycle of the graph, if there is any.
fn a_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        done: &mut BTreeSet<String>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, done, path) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut done, &mut Vec::new()))
}

fn sources() -> BTreeMap<String, String> {
    library_modules()
        .into_iter()
        .map(|(m, f)| (m, fs::read_to_string(f).expect("a readable source file")))
        .collect()
}

#[test]
fn every_module_has_a_layer_and_every_listed_module_exists() {
    let modules = library_modules();
    let unlisted: Vec<&String> = modules.keys().filter(|m| layer_of(m).is_none()).collect();
    assert!(
        unlisted.is_empty(),
        "give these modules a layer in LAYERS: {unlisted:?}"
    );
    let stale: Vec<&str> = LAYERS
        .iter()
        .map(|(m, _)| *m)
        .filter(|m| !modules.contains_key(*m))
        .collect();
    assert!(stale.is_empty(), "LAYERS lists missing modules: {stale:?}");
}

#[test]
fn no_module_imports_a_higher_layer() {
    let graph = imports(&sources());
    let found = upward(&graph);
    assert!(
        found.is_empty(),
        "imports up the stack:\n{}",
        found.join("\n")
    );
}

#[test]
fn imports_form_no_cycle() {
    let graph = imports(&sources());
    assert_eq!(
        a_cycle(&graph),
        None,
        "the modules import each other in a cycle"
    );
}

#[test]
fn the_scan_sees_the_real_imports() {
    // Guards the two checks above against passing because nothing was read.
    let graph = imports(&sources());
    for (from, to) in [
        ("server::state", "providers::fitbit"),
        ("providers::google", "providers::device"),
        ("providers::fitbit", "oauth::grants"),
        ("providers::catalogue::grants", "oauth::pkce"),
        ("oauth::request", "oauth::params"),
    ] {
        assert!(
            graph.get(from).is_some_and(|t| t.contains(to)),
            "{from} should import {to}; the scan found {:?}",
            graph.get(from)
        );
    }
}

#[test]
fn upward_imports_and_cycles_are_caught() {
    let mut modules = BTreeMap::new();
    modules.insert(
        "oauth::pkce".to_owned(),
        "use crate::{oauth::reply::Reply, providers::fitbit::{self, Fitbit}};\n\
         // use crate::server::state; (a comment, not an import)\n\
         fn f() { crate::server::state::State::new(); }\n\
         #[cfg(test)]\nmod tests { use crate::server::router; }\n"
            .to_owned(),
    );
    modules.insert(
        "providers::fitbit".to_owned(),
        "use super::google::Google;".to_owned(),
    );
    modules.insert(
        "providers::google".to_owned(),
        "use crate::providers::fitbit;".to_owned(),
    );
    let graph = imports(&modules);
    assert_eq!(
        graph["oauth::pkce"],
        BTreeSet::from([
            "oauth::reply".to_owned(),
            "providers::fitbit".to_owned(),
            "server::state".to_owned(),
        ])
    );
    assert_eq!(upward(&graph).len(), 2, "{:?}", upward(&graph));
    let cycle = a_cycle(&graph).expect("fitbit and google import each other");
    assert!(cycle.contains(&"providers::google".to_owned()), "{cycle:?}");
}
