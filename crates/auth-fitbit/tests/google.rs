//! The Google Health provider and the migration, against the emulator.

mod support;

use auth_core::secrecy::ExposeSecret;
use auth_core::{AuthorizeRequest, TokenProvider, TokenStore};
use auth_emulator::{Endpoint, demo};
use auth_fitbit::migration::{self, Access, Bridge};
use auth_fitbit::{AppType, scopes};
use support::*;

#[tokio::test]
async fn google_login_refresh_keeps_refresh_token_tokeninfo_and_revoke() {
    let w = world(AppType::Server).await;
    let key = login(
        &w,
        &google_id(),
        AuthorizeRequest::new()
            .account("alice".parse().unwrap())
            .prompt("consent"),
    )
    .await;
    let authorize = w.emulator.last_request(Endpoint::GoogleAuthorize).unwrap();
    assert_eq!(
        authorize.query_param("access_type").as_deref(),
        Some("offline")
    );
    let exchange = w.emulator.last_request(Endpoint::GoogleToken).unwrap();
    assert_eq!(
        exchange.form_param("client_id").as_deref(),
        Some(demo::GOOGLE_CLIENT_ID)
    );

    let refresh_before = w
        .store
        .load(&key)
        .await
        .unwrap()
        .unwrap()
        .token
        .unwrap()
        .refresh_token()
        .unwrap()
        .expose_secret()
        .to_owned();
    let first = w.manager.access_token(&key).await.unwrap();
    let second = w.manager.refresh(&key).await.unwrap();
    assert_ne!(first.secret(), second.secret());
    let stored = w.store.load(&key).await.unwrap().unwrap().token.unwrap();
    assert_eq!(
        stored.refresh_token().unwrap().expose_secret(),
        refresh_before,
        "Google sent none; ours is kept"
    );
    // And it still works.
    w.manager.refresh(&key).await.unwrap();

    let info = w.manager.introspect(&key).await.unwrap();
    assert!(info.active);
    assert!(info.scopes.iter().any(|s| s.name == scopes::SLEEP_READONLY));
    assert_eq!(info.client_id.as_deref(), Some(demo::GOOGLE_CLIENT_ID));
    let tokeninfo = w.emulator.last_request(Endpoint::GoogleTokeninfo).unwrap();
    assert!(
        !tokeninfo.query.contains("access_token"),
        "the token stays out of the URL"
    );

    let token = w.store.load(&key).await.unwrap().unwrap().token.unwrap();
    w.manager.revoke(&key).await.unwrap();
    // A tombstone is left: it refuses logins begun before the revoke.
    let stone = w.store.load(&key).await.unwrap().expect("a tombstone");
    assert!(stone.token.is_none(), "the token is gone");
    let after = w.google.introspect(&token).await.unwrap();
    assert!(!after.active, "tokeninfo of a revoked token is inactive");
    assert!(
        w.google
            .refresh(&token)
            .await
            .unwrap_err()
            .is_reauthorization_required()
    );
}

#[tokio::test]
async fn migration_moves_users_one_at_a_time_through_the_bridge() {
    let w = world(AppType::Server).await;
    for user in ["USERA1", "USERB2"] {
        w.emulator.set_next_user(user);
        login(&w, &fitbit_id(), AuthorizeRequest::new()).await;
    }
    let bridge = Bridge::new(w.manager.clone(), fitbit_id(), google_id());
    for user in ["USERA1", "USERB2"] {
        assert_eq!(
            bridge.access_token(&user.parse().unwrap()).await.unwrap().0,
            fitbit_id()
        );
    }
    let plan = migration::plan(&w.manager, &fitbit_id(), &google_id(), Access::ReadOnly)
        .await
        .unwrap();
    assert_eq!(plan.len(), 2);
    let first = &plan[0];
    assert_eq!(first.account.as_str(), "USERA1");
    assert!(
        first
            .google_scopes
            .contains(&scopes::SLEEP_READONLY.to_owned())
    );
    assert!(
        first
            .google_scopes
            .contains(&scopes::ACTIVITY_AND_FITNESS_READONLY.to_owned())
    );
    assert!(
        first
            .google_scopes
            .contains(&scopes::HEALTH_METRICS_AND_MEASUREMENTS_READONLY.to_owned())
    );
    assert_eq!(first.request.prompt.as_deref(), Some("consent"));

    // Move the first user only.
    login(&w, &google_id(), first.request.clone()).await;
    assert_eq!(
        bridge
            .access_token(&"USERA1".parse().unwrap())
            .await
            .unwrap()
            .0,
        google_id()
    );
    assert_eq!(
        bridge
            .access_token(&"USERB2".parse().unwrap())
            .await
            .unwrap()
            .0,
        fitbit_id()
    );
    let rest = migration::plan(&w.manager, &fitbit_id(), &google_id(), Access::ReadOnly)
        .await
        .unwrap();
    assert_eq!(
        rest.iter().map(|m| m.account.as_str()).collect::<Vec<_>>(),
        vec!["USERB2"]
    );
    assert!(
        bridge
            .access_token(&"nobody".parse().unwrap())
            .await
            .unwrap_err()
            .is_reauthorization_required()
    );
}

/// Fitbit rotates refresh tokens with a two-minute replay window that the
/// new access token's first use ends, so an unsaved Fitbit pair is never
/// handed out; Google's refresh tokens do not rotate (no record is
/// written before a Google refresh).
#[tokio::test]
async fn only_the_fitbit_provider_guards_its_replay_window() {
    use auth_core::TokenProvider as _;
    let w = world(auth_fitbit::AppType::Server).await;
    let fitbit = w.fitbit.refresh_rules();
    assert!(fitbit.rotates());
    assert_eq!(
        fitbit.replay_window(),
        Some(std::time::Duration::from_secs(120))
    );
    assert!(fitbit.first_use_ends_window());
    assert_eq!(
        w.google.refresh_rules(),
        auth_core::RefreshRules::NOT_ROTATING
    );
    assert!(!w.fitbit.can_mint());
    assert!(!w.google.can_mint());
}
