//! Connecting and failing: an unreachable database is a transient
//! `Unavailable` error, a failed login a `Configuration` error; both name
//! `host:port/db` and neither shows the password, nor does any `Debug`.

mod support;

use std::net::TcpListener;
use std::time::Duration;

use auth_core::{Error, StoreErrorKind, TokenStore};
use store_postgres::{PgConnectOptions, PostgresTokenStore};
use support::cluster::{self, PASSWORD};

fn assert_no_password(text: &str) {
    assert!(!text.contains(PASSWORD), "the password leaked: {text}");
}

#[tokio::test]
async fn an_unreachable_database_is_unavailable_and_named() {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let url = format!("postgres://postgres:{PASSWORD}@127.0.0.1:{port}/tokens");
    let err = PostgresTokenStore::builder()
        .acquire_timeout(Duration::from_millis(500))
        .connect(&url)
        .await
        .expect_err("connected to nothing");
    assert_eq!(err.store_kind(), Some(StoreErrorKind::Unavailable), "{err}");
    assert!(err.is_transient());
    let text = err.to_string();
    assert!(text.contains(&format!("127.0.0.1:{port}/tokens")), "{text}");
    assert_no_password(&text);
    assert_no_password(&format!("{err:?}"));
}

#[tokio::test]
async fn a_failed_login_is_a_configuration_error_without_the_password() {
    let options: PgConnectOptions = cluster::shared().url().parse().expect("url");
    let wrong = "not-the-password-7e2a";
    let err = PostgresTokenStore::builder()
        .connect_with(options.password(wrong))
        .await
        .expect_err("logged in with a wrong password");
    assert!(matches!(err, Error::Configuration { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&format!("127.0.0.1:{}/postgres", cluster::shared().port())),
        "{text}"
    );
    assert!(
        !text.contains(wrong) && !format!("{err:?}").contains(wrong),
        "{text}"
    );
    assert_no_password(&text);
}

#[tokio::test]
async fn a_malformed_url_is_a_configuration_error() {
    for url in [
        "postgres://postgres:pw@127.0.0.1:99999999/db",
        "http://127.0.0.1/db",
        "postgres://u:p@h/db?sslmode=bogus",
    ] {
        let err = PostgresTokenStore::connect(url).await.expect_err(url);
        assert!(matches!(err, Error::Configuration { .. }), "{url}: {err}");
    }
}

#[tokio::test]
async fn names_that_are_not_plain_identifiers_are_refused() {
    for (schema, table) in [
        ("a\"b", "t"),
        ("s", "x; DROP TABLE y"),
        ("s", ""),
        ("1s", "t"),
    ] {
        let err = PostgresTokenStore::builder()
            .schema(schema)
            .table(table)
            .connect(cluster::shared().url())
            .await
            .expect_err("a bad name was used");
        assert!(matches!(err, Error::Configuration { .. }), "{err}");
        assert!(err.to_string().contains("name"), "{err}");
    }
}

#[tokio::test]
async fn debug_of_the_store_its_leases_and_its_errors_shows_no_password() {
    let store = support::store("debug").await;
    let text = format!("{store:?}");
    assert!(text.contains("PostgresTokenStore"), "{text}");
    assert!(
        text.contains(&format!("127.0.0.1:{}", cluster::shared().port())),
        "{text}"
    );
    assert_no_password(&text);
    let key = support::key("debug", "Alice");
    let lease = store
        .lock(&key, Duration::from_secs(5))
        .await
        .expect("lock");
    assert_no_password(&format!("{lease:?}"));
    assert_eq!(lease.key(), &key);
    drop(lease);
    let v = store
        .save(&key, &support::token(1), None)
        .await
        .expect("save");
    let err = store
        .save(&key, &support::token(2), None)
        .await
        .expect_err("conflict");
    for text in [format!("{err}"), format!("{err:?}"), format!("{store:?}")] {
        assert_no_password(&text);
        assert!(
            !text.contains("access-1") && !text.contains("refresh-1"),
            "{text}"
        );
    }
    assert!(v.0 > 0);
}

#[tokio::test]
async fn a_database_that_goes_away_gives_unavailable_errors() {
    let own = cluster::Cluster::start();
    let store = PostgresTokenStore::builder()
        .acquire_timeout(Duration::from_millis(500))
        .connect(own.url())
        .await
        .expect("connect");
    let key = support::key("gone", "Alice");
    store
        .save(&key, &support::token(1), None)
        .await
        .expect("save");
    own.stop();
    for result in [
        store.load(&key).await.map(|_| ()),
        store.load(&key).await.map(|_| ()),
        store.list(None).await.map(|_| ()),
        store
            .lock(&key, Duration::from_millis(100))
            .await
            .map(|_| ()),
    ] {
        let err = result.expect_err("worked with the database stopped");
        assert_eq!(err.store_kind(), Some(StoreErrorKind::Unavailable), "{err}");
        assert!(
            err.to_string()
                .contains(&format!("127.0.0.1:{}", own.port())),
            "{err}"
        );
        assert_no_password(&format!("{err} {err:?}"));
    }
}

#[tokio::test(flavor = "current_thread")]
async fn no_log_line_shows_the_password_or_a_token() {
    let url = cluster::shared().url().to_owned();
    let (_guard, logs) = support::logs::capture();
    let options: PgConnectOptions = url.parse().expect("url");
    let _ = PostgresTokenStore::builder()
        .connect_with(options.password("wrong-pw-1d9c"))
        .await
        .expect_err("wrong password");
    let store = support::builder(&support::unique_schema("logs"))
        .connect(&url)
        .await
        .expect("connect");
    let key = support::key("logs", "Alice");
    let v = store
        .save(&key, &support::token(1), None)
        .await
        .expect("save");
    store.load(&key).await.expect("load");
    let _ = store
        .save(&key, &support::token(2), None)
        .await
        .expect_err("conflict");
    let lease = store
        .lock(&key, Duration::from_secs(5))
        .await
        .expect("lock");
    store
        .save_leased(lease.as_ref(), &support::token(3), Some(v))
        .await
        .expect("fenced save");
    drop(lease);
    store.close().await;
    let text = logs.text();
    assert!(text.contains("sqlx"), "nothing was captured: {text}");
    for secret in [
        PASSWORD,
        "wrong-pw-1d9c",
        "access-1",
        "refresh-1",
        "access-3",
        "refresh-3",
    ] {
        assert!(!text.contains(secret), "{secret} was logged:\n{text}");
    }
}
