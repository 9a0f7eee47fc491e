//! Ids that look like paths, differ only in case, are as long as allowed or
//! use any characters: no file leaves the root, no two keys share a file,
//! and `list` returns every id exactly.

mod support;

use std::collections::BTreeSet;

use auth_core::{MAX_ID_LEN, TokenKey, TokenStore};
use test_support::tokens;

fn hostile_ids() -> Vec<String> {
    let mut ids: Vec<String> = [
        "..",
        ".",
        "...",
        ".hidden",
        "%2E%2E",
        "..%2F..%2Fetc",
        "~",
        "~root",
        "%",
        "%%",
        "%41",
        "A",
        "a",
        "Alice",
        "alice",
        "ALICE",
        "a b",
        " ",
        "  lead and trail  ",
        "a.json",
        "a.lock",
        "a.wlock",
        ".tmp-abc",
        "con",
        "CON",
        "nul.txt",
        "Ünïcode",
        "unicode",
        "日本語",
        "crab 🦀",
        "tab-less\u{200b}zero-width",
        "semi;colon:quote\"star*",
        "26FWFL",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    // As long as allowed, hashed names: ASCII, two-byte and three-byte
    // characters, and two that differ only in the case of their last letter.
    ids.push("x".repeat(MAX_ID_LEN));
    ids.push("é".repeat(MAX_ID_LEN / 2));
    ids.push(format!("{}x", "日".repeat(85)));
    ids.push(format!("{}a", "a".repeat(MAX_ID_LEN - 1)));
    ids.push(format!("{}A", "a".repeat(MAX_ID_LEN - 1)));
    // Just under and just over the length where names switch to hashes.
    ids.push("Q".repeat(66));
    ids.push("Q".repeat(67));
    ids
}

fn providers() -> Vec<String> {
    vec![
        "p".into(),
        "P".into(),
        "..".into(),
        "x".repeat(MAX_ID_LEN),
        "é".repeat(MAX_ID_LEN / 2),
    ]
}

#[test]
fn ids_with_separators_never_reach_the_store() {
    for bad in ["../x", "a/b", "..\\x", "/", "nul\0"] {
        assert!(
            TokenKey::parse("p", bad).is_err(),
            "{bad:?} was accepted as an account id"
        );
        assert!(
            TokenKey::parse(bad, "a").is_err(),
            "{bad:?} was accepted as a provider id"
        );
    }
}

#[tokio::test]
async fn hostile_ids_stay_inside_the_root_apart_and_listable() {
    let (_dir, store) = support::temp_store();
    let mut keys = Vec::new();
    for provider in providers() {
        for account in hostile_ids() {
            keys.push(tokens::key(&provider, &account));
        }
    }
    assert_eq!(
        keys.iter().collect::<BTreeSet<_>>().len(),
        keys.len(),
        "the test has duplicate keys"
    );

    for (generation, key) in (0u64..).zip(&keys) {
        support::create(&store, key, &tokens::token(generation)).await;
    }
    // Each key reads back its own token: no two share a file.
    for (generation, key) in (0u64..).zip(&keys) {
        let loaded = store
            .load(key)
            .await
            .expect("load")
            .unwrap_or_else(|| panic!("{key} is missing"));
        assert_eq!(
            tokens::generation_of(support::token_of(&loaded)),
            generation,
            "{key} holds another key's token"
        );
    }

    // Every file is a plain file or directory inside the root, at the
    // expected depth, with a name the filesystem accepts everywhere.
    let root = store.root().canonicalize().expect("canonical root");
    let mut token_files = 0;
    for path in support::walk(store.root()) {
        let canonical = path.canonicalize().expect("canonical path");
        assert!(
            canonical.starts_with(&root),
            "{} escapes the root",
            path.display()
        );
        let relative = path.strip_prefix(store.root()).expect("inside the root");
        let metadata = std::fs::symlink_metadata(&path).expect("lstat");
        assert!(
            !metadata.file_type().is_symlink(),
            "{} is a symlink",
            path.display()
        );
        assert_eq!(
            relative.components().count(),
            if metadata.is_dir() { 1 } else { 2 },
            "{}",
            path.display()
        );
        let name = path
            .file_name()
            .expect("a name")
            .to_str()
            .expect("an ASCII name");
        assert!(name.is_ascii() && name.len() <= 255, "bad name {name:?}");
        if name.ends_with(".json") {
            token_files += 1;
        }
    }
    assert_eq!(
        token_files,
        keys.len(),
        "keys and token files do not match one to one"
    );

    // `list` recovers every id exactly, in full and per provider.
    let want: BTreeSet<TokenKey> = keys.iter().cloned().collect();
    let listed = store.list(None).await.expect("list");
    assert_eq!(
        listed.len(),
        want.len(),
        "list returned duplicates or missed keys"
    );
    assert_eq!(listed.into_iter().collect::<BTreeSet<_>>(), want);
    for provider in providers() {
        let provider = auth_core::ProviderId::new(&provider).expect("valid");
        let listed: BTreeSet<TokenKey> = store
            .list(Some(&provider))
            .await
            .expect("list one")
            .into_iter()
            .collect();
        let want_one: BTreeSet<TokenKey> = want
            .iter()
            .filter(|k| k.provider == provider)
            .cloned()
            .collect();
        assert_eq!(listed, want_one, "list({provider})");
    }

    for key in &keys {
        assert!(
            support::delete(&store, key).await.expect("delete"),
            "{key} was not there to delete"
        );
    }
    assert!(store.list(None).await.expect("list").is_empty());
}

#[tokio::test]
async fn names_of_plain_ids_stay_readable() {
    let (_dir, store) = support::temp_store();
    let key = tokens::key("fitbit", "26FWFL");
    let path = store.token_path(&key);
    let relative = path.strip_prefix(store.root()).expect("inside the root");
    assert_eq!(relative, std::path::Path::new("fitbit/26%46%57%46%4C.json"));
    let dots = store.token_path(&tokens::key("google-health", ".."));
    assert_eq!(
        dots.strip_prefix(store.root()).expect("inside"),
        std::path::Path::new("google-health/%2E%2E.json")
    );
}
