//! proptest: any token, of any account, round trips through the wrapper,
//! and its secrets never appear in the inner store.

mod support;

use support::SaveExt as _;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use auth_core::secrecy::ExposeSecret as _;
use auth_core::{TokenKey, TokenSet, TokenStore};
use proptest::prelude::*;
use store_encrypted::EncryptedStore;
use store_memory::MemoryTokenStore;

fn id() -> impl Strategy<Value = String> {
    "[^/\\\\\\p{Cc}]{1,64}"
}

fn token() -> impl Strategy<Value = TokenSet> {
    (
        any::<String>(),
        proptest::option::of(any::<String>()),
        0u64..4_000_000_000,
        proptest::option::of(0u64..100_000_000),
        proptest::collection::btree_set("[a-z.:/]{1,20}", 0..4),
        proptest::collection::btree_map("[a-z_]{1,10}", any::<i64>(), 0..3),
        proptest::option::of(any::<String>()),
        any::<String>(),
    )
        .prop_map(
            |(access, refresh, issued, expires, scopes, extras, flag, secret)| {
                let issued = SystemTime::UNIX_EPOCH + Duration::from_millis(issued * 1000);
                let mut t = TokenSet::new(access, "Bearer", issued)
                    .with_refresh_secret(refresh.map(Into::into))
                    .with_expires_at(expires.map(|e| issued + Duration::from_secs(e)))
                    .with_scopes(scopes)
                    .with_extra("secret", serde_json::json!(secret));
                for (name, value) in extras {
                    t = t.with_extra(name, serde_json::json!(value));
                }
                if let Some(reason) = flag {
                    t = t.flagged_for_reauthorization(reason);
                }
                t
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn any_token_round_trips(provider in id(), account in id(), t in token()) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        runtime.block_on(async {
            let k = TokenKey::parse(&provider, &account).expect("a valid key");
            let inner = Arc::new(MemoryTokenStore::new());
            let store = EncryptedStore::new(Arc::clone(&inner), support::ring(&[("k1", 1)]))
                .secret_extras(["secret"]);
            let v = store.save(&k, &t, None).await.expect("save");
            let back = store.load(&k).await.expect("load").expect("token");
            assert_eq!(back.version, v);
            let back = back.token.expect("a token");
            assert_eq!(back.access_token().expose_secret(), t.access_token().expose_secret());
            assert_eq!(
                back.refresh_token().map(|r| r.expose_secret().to_owned()),
                t.refresh_token().map(|r| r.expose_secret().to_owned())
            );
            assert_eq!(back.expires_at(), t.expires_at());
            assert_eq!(back.issued_at(), t.issued_at());
            assert_eq!(back.scopes(), t.scopes());
            assert_eq!(back.extras(), t.extras());
            assert_eq!(back.reauthorization_required(), t.reauthorization_required());
            let raw = inner.load(&k).await.expect("raw").expect("raw token").token.expect("a token");
            let at_rest = serde_json::to_string(&raw).expect("json");
            for secret in [t.access_token().expose_secret(), t.extra_str("secret").unwrap_or("")] {
                if secret.len() >= 8 {
                    assert!(!at_rest.contains(&serde_json::to_string(secret).unwrap()));
                }
            }
        });
    }
}
