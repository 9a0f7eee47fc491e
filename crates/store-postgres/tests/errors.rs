//! Connecting and failing: an unreachable database is a transient
//! `Unavailable` error that says why ("connection refused", not only that
//! the pool timed out), a failed login a `Configuration` error; both name
//! `host:port/db` and neither shows the password, nor does any `Debug`.

mod support;

use std::net::TcpListener;
use std::time::Duration;

use auth_core::{Error, Expect, Record, StoreErrorKind, TokenStore};
use store_postgres::{PgConnectOptions, PostgresTokenStore};
use test_support::postgres::{self, PASSWORD};
use test_support::tokens;

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
    // The root cause, in words (issue #24: it said only "pool timed out").
    assert!(text.contains("connection refused"), "{text}");
    assert!(!text.contains("pool timed out"), "{text}");
    assert_no_password(&text);
    assert_no_password(&format!("{err:?}"));
}

#[tokio::test]
async fn a_failed_login_is_a_configuration_error_without_the_password() {
    let options: PgConnectOptions = postgres::shared().url().parse().expect("url");
    let wrong = "not-the-password-7e2a";
    let err = PostgresTokenStore::builder()
        .connect_with(options.password(wrong))
        .await
        .expect_err("logged in with a wrong password");
    assert!(matches!(err, Error::Configuration { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&format!("127.0.0.1:{}/postgres", postgres::shared().port())),
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
            .connect(postgres::shared().url())
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
        text.contains(&format!("127.0.0.1:{}", postgres::shared().port())),
        "{text}"
    );
    assert_no_password(&text);
    let key = tokens::key("debug", "Alice");
    let lease = store
        .lock(&key, Duration::from_secs(5))
        .await
        .expect("lock");
    assert_no_password(&format!("{lease:?}"));
    assert_eq!(lease.key(), &key);
    let v = lease
        .save(&tokens::token(1), Expect::Absent, Record::Clear)
        .await
        .expect("save");
    let err = lease
        .save(&tokens::token(2), Expect::Absent, Record::Clear)
        .await
        .expect_err("conflict");
    drop(lease);
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
    let own = postgres::Cluster::start();
    let store = PostgresTokenStore::builder()
        .acquire_timeout(Duration::from_millis(500))
        .connect(own.url())
        .await
        .expect("connect");
    let key = tokens::key("gone", "Alice");
    support::put(&store, &key, &tokens::token(1)).await;
    let lease = store
        .lock(&key, Duration::from_secs(5))
        .await
        .expect("lock");
    own.stop();
    for (i, result) in [
        store.load(&key).await.map(|_| ()),
        store.load(&key).await.map(|_| ()),
        store.list(None).await.map(|_| ()),
        store
            .lock(&key, Duration::from_millis(100))
            .await
            .map(|_| ()),
        store.orphaned(10).await.map(|_| ()),
        lease
            .mark_in_flight(auth_core::Version(1))
            .await
            .map(|_| ()),
    ]
    .into_iter()
    .enumerate()
    {
        let err = result.expect_err("worked with the database stopped");
        assert_eq!(err.store_kind(), Some(StoreErrorKind::Unavailable), "{err}");
        // The first statements fail on the connections the pool kept (cut
        // by the shutdown, which the server says); once they are gone, a
        // statement needs a new connection, and says why it could not
        // have one. None says only that the pool timed out.
        let text = err.to_string();
        assert!(!text.contains("pool timed out"), "{text}");
        if i >= 4 {
            assert!(text.contains("connection refused"), "{text}");
        }
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
    let url = postgres::shared().url().to_owned();
    let (_guard, logs) = test_support::logs::capture(tracing::Level::TRACE);
    let options: PgConnectOptions = url.parse().expect("url");
    let _ = PostgresTokenStore::builder()
        .connect_with(options.password("wrong-pw-1d9c"))
        .await
        .expect_err("wrong password");
    let store = support::builder(&support::unique_schema("logs"))
        .connect(&url)
        .await
        .expect("connect");
    let key = tokens::key("logs", "Alice");
    let v = support::put(&store, &key, &tokens::token(1)).await;
    store.load(&key).await.expect("load");
    let lease = store
        .lock(&key, Duration::from_secs(5))
        .await
        .expect("lock");
    let _ = lease
        .save(&tokens::token(2), Expect::Absent, Record::Clear)
        .await
        .expect_err("conflict");
    let v = lease.mark_in_flight(v).await.expect("mark");
    lease
        .save_and_release(&tokens::token(3), Expect::Version(v), Record::Clear)
        .await
        .expect("fenced save");
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
