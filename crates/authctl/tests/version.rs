//! `authctl --version` names the version of the package it was built from,
//! so a bug report's version line can be trusted.

use std::process::Command;

#[test]
fn version_matches_the_package_version() {
    let output = Command::new(env!("CARGO_BIN_EXE_authctl"))
        .arg("--version")
        .output()
        .expect("authctl runs");
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("authctl {}\n", env!("CARGO_PKG_VERSION"))
    );
    assert!(output.stderr.is_empty(), "{output:?}");
}
