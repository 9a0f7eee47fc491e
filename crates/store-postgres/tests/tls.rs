//! TLS with `sslmode=verify-full` and a private root CA: the store connects
//! over TLS when the server's certificate chains to the given CA and names
//! the host, and refuses a server whose certificate does not, as a
//! configuration error. This binary has its own cluster, with TLS on.

#![cfg(unix)]

mod support;

use std::path::Path;
use std::process::Command;

use auth_core::Error;
use store_postgres::PostgresTokenStore;
use test_support::postgres::{Cluster, PASSWORD};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs (install it to run the TLS test)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA named `name` in `dir`: `name.key`, `name.pem`.
fn ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
}

#[tokio::test]
async fn verify_full_with_a_private_ca_connects_and_refuses_other_servers() {
    let dir = tempfile::Builder::new()
        .prefix("token-keeper-tls-")
        .tempdir()
        .expect("tempdir");
    let d = dir.path();
    ca(d, "ca");
    ca(d, "other-ca");
    openssl(
        d,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(
        d.join("san.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "server.pem",
        ],
    );
    // The server (perhaps running as the postgres user) must read them,
    // and wants its key private.
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(d.join("server.pem"), std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(d.join("server.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if is_root {
        let status = Command::new("chown")
            .arg("postgres")
            .arg(d.join("server.key"))
            .status()
            .expect("chown");
        assert!(status.success());
    }
    let cert = format!("ssl_cert_file={}", d.join("server.pem").display());
    let key = format!("ssl_key_file={}", d.join("server.key").display());
    let cluster = Cluster::start_with(&["-c", "ssl=on", "-c", &cert, "-c", &key]);

    let url = |ca: &str| {
        format!(
            "postgres://postgres:{PASSWORD}@localhost:{}/postgres?sslmode=verify-full&sslrootcert={}",
            cluster.port(),
            d.join(ca).display()
        )
    };
    let store = PostgresTokenStore::connect(&url("ca.pem"))
        .await
        .expect("verify-full against the private CA");
    let ssl: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(store.pool())
        .await
        .expect("pg_stat_ssl");
    assert!(ssl, "the connection is not encrypted");

    let err = PostgresTokenStore::connect(&url("other-ca.pem"))
        .await
        .expect_err("trusted a server signed by another CA");
    assert!(matches!(err, Error::Configuration { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&format!("localhost:{}/postgres", cluster.port())),
        "{text}"
    );
    assert!(
        text.contains("TLS") || text.contains("sslrootcert"),
        "{text}"
    );
    assert!(!text.contains(PASSWORD), "{text}");
}
