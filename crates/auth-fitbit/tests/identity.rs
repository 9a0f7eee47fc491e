//! The identity check of a move to Google Health: a Google account whose
//! `legacyUserId` is the stored Fitbit user is linked; any other is refused,
//! with nothing stored under the account and every token kept.

mod support;

use auth_core::secrecy::ExposeSecret;
use auth_core::{AuthorizeRequest, Error};
use auth_fitbit::AppType;
use auth_fitbit::migration::{self, Access, Bridge};
use support::{browse, fitbit_id, fitbit_key, google_id, google_key, login, world};

fn secret(token: &auth_core::TokenSet) -> String {
    token.access_token().expose_secret().to_owned()
}

fn bridge(w: &support::World) -> Bridge {
    Bridge::new(w.manager.clone(), fitbit_id(), google_id())
        .with_identity_check((*w.google).clone())
}

/// Starts the planned move of `account` and consents at Google as
/// `google_user`; returns what `Bridge::link` answered.
async fn move_as(
    w: &support::World,
    account: &str,
    google_user: &str,
) -> auth_core::Result<migration::Linked> {
    let plan = migration::plan(&w.manager, &fitbit_id(), &google_id(), Access::ReadOnly)
        .await
        .unwrap();
    let step = plan
        .into_iter()
        .find(|m| m.account.as_str() == account)
        .expect("the account is planned");
    assert_eq!(step.expected_legacy_user_id, account);
    let pending = w
        .manager
        .begin_authorization(&google_id(), step.request)
        .unwrap();
    w.emulator.set_next_user(google_user);
    let callback = browse(&pending.authorize_url).await;
    bridge(w).link(&pending, &callback).await
}

async fn login_fitbit(w: &support::World, user: &str) {
    w.emulator.set_next_user(user);
    let key = login(w, &fitbit_id(), AuthorizeRequest::new()).await;
    assert_eq!(key, fitbit_key(user));
}

#[tokio::test]
async fn the_same_person_is_linked() {
    let w = world(AppType::Server).await;
    login_fitbit(&w, "ALICE1").await;
    let linked = move_as(&w, "ALICE1", "ALICE1").await.unwrap();
    assert_eq!(linked.key, google_key("ALICE1"));
    assert_eq!(linked.identity.legacy_user_id.as_deref(), Some("ALICE1"));
    assert!(
        w.manager
            .stored(&google_key("ALICE1"))
            .await
            .unwrap()
            .is_some()
    );
    let bridge = bridge(&w);
    let account = "ALICE1".parse().unwrap();
    assert_eq!(bridge.access_token(&account).await.unwrap().0, google_id());
    assert_eq!(w.emulator.counters().google_health_identity, 1);
    // Nothing left to move.
    let plan = migration::plan(&w.manager, &fitbit_id(), &google_id(), Access::ReadOnly)
        .await
        .unwrap();
    assert!(plan.is_empty());
}

#[tokio::test]
async fn another_persons_google_account_is_refused_and_every_token_kept() {
    let w = world(AppType::Server).await;
    // Bob moved already, with his own Google account.
    login_fitbit(&w, "BOB222").await;
    move_as(&w, "BOB222", "BOB222").await.unwrap();
    let bob_google = w
        .manager
        .stored(&google_key("BOB222"))
        .await
        .unwrap()
        .unwrap();

    // Alice consents while signed in to Bob's Google account.
    login_fitbit(&w, "ALICE1").await;
    let alice_fitbit = w
        .manager
        .stored(&fitbit_key("ALICE1"))
        .await
        .unwrap()
        .unwrap();
    let err = move_as(&w, "ALICE1", "BOB222").await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("different Google account"), "{message}");
    assert!(message.contains("ALICE1"), "{message}");
    assert!(
        !message.contains("BOB222"),
        "the other person's id stays private: {message}"
    );

    // Nothing stored for Alice under Google; her Fitbit token is kept as it
    // was and still works.
    assert!(
        w.manager
            .stored(&google_key("ALICE1"))
            .await
            .unwrap()
            .is_none()
    );
    let kept = w
        .manager
        .stored(&fitbit_key("ALICE1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(secret(&kept), secret(&alice_fitbit));
    assert_eq!(
        kept.refresh_token().map(ExposeSecret::expose_secret),
        alice_fitbit
            .refresh_token()
            .map(ExposeSecret::expose_secret)
    );
    w.manager.access_token(&fitbit_key("ALICE1")).await.unwrap();
    let account = "ALICE1".parse().unwrap();
    assert_eq!(
        bridge(&w).access_token(&account).await.unwrap().0,
        fitbit_id()
    );

    // Bob's Google grant was not revoked: it is stored as before and still
    // refreshes.
    assert_eq!(w.emulator.counters().google_revoke, 0);
    let bob_now = w
        .manager
        .stored(&google_key("BOB222"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(secret(&bob_now), secret(&bob_google));
    w.manager.refresh(&google_key("BOB222")).await.unwrap();
}

#[tokio::test]
async fn a_google_account_without_fitbit_history_is_not_a_migration() {
    let w = world(AppType::Server).await;
    login_fitbit(&w, "ALICE1").await;
    w.emulator.set_legacy_user_id("NEWBIE", None);
    let err = move_as(&w, "ALICE1", "NEWBIE").await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    assert!(err.to_string().contains("not a migration"), "{err}");
    assert!(
        w.manager
            .stored(&google_key("ALICE1"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        w.manager
            .stored(&fitbit_key("ALICE1"))
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn link_needs_the_identity_check_and_a_legacy_token() {
    let w = world(AppType::Server).await;
    let pending = w
        .manager
        .begin_authorization(
            &google_id(),
            AuthorizeRequest::new().account("NOBODY".parse().unwrap()),
        )
        .unwrap();
    let callback = browse(&pending.authorize_url).await;
    let unchecked = Bridge::new(w.manager.clone(), fitbit_id(), google_id());
    let err = unchecked.link(&pending, &callback).await.unwrap_err();
    assert!(matches!(err, Error::Configuration { .. }), "{err}");
    let err = bridge(&w).link(&pending, &callback).await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    assert_eq!(w.emulator.counters().google_token_authorization_code, 0);
    assert_eq!(w.emulator.counters().google_health_identity, 0);
}
