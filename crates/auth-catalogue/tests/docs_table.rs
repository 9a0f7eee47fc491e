//! `docs/providers.md` holds a table generated from the catalogue; this test
//! fails when the two disagree. To regenerate the table after changing the
//! catalogue, run it with `UPDATE_PROVIDERS_DOC=1`.

use std::path::PathBuf;

use auth_catalogue::{Catalogue, markdown_table};

const BEGIN: &str =
    "<!-- BEGIN GENERATED TABLE: do not edit; see crates/auth-catalogue/tests/docs_table.rs -->\n";
const END: &str = "<!-- END GENERATED TABLE -->";

#[test]
fn the_providers_doc_matches_the_catalogue() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/providers.md");
    let doc = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let start = doc
        .find(BEGIN)
        .expect("docs/providers.md has the BEGIN marker")
        + BEGIN.len();
    let end = doc.find(END).expect("docs/providers.md has the END marker");
    let table = markdown_table(Catalogue::builtin());
    if doc[start..end] == table {
        return;
    }
    if std::env::var_os("UPDATE_PROVIDERS_DOC").is_some() {
        let updated = format!("{}{table}{}", &doc[..start], &doc[end..]);
        std::fs::write(&path, updated).expect("write docs/providers.md");
        return;
    }
    panic!(
        "docs/providers.md does not match the catalogue; regenerate it with \
         `UPDATE_PROVIDERS_DOC=1 cargo test -p token-keeper-auth-catalogue --test docs_table`"
    );
}
