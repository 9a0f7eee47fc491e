//! The `TokenProvider` impl shared by this crate's providers: each wraps an
//! [`OAuth2Provider`](auth_oauth2::OAuth2Provider) in a field `inner` and
//! forwards to it, optionally checking authorize requests first.

/// Implements `TokenProvider` for `$ty` by forwarding to `self.inner`. With
/// `check_authorize = method`, `authorize` first calls `self.method(&request)`.
macro_rules! forward_token_provider {
    ($ty:ty) => {
        $crate::delegate::forward_token_provider!($ty, check_authorize = accept_any_request);
        impl $ty {
            fn accept_any_request(
                &self,
                _request: &auth_core::AuthorizeRequest,
            ) -> auth_core::Result<()> {
                Ok(())
            }
        }
    };
    ($ty:ty, check_authorize = $check:ident) => {
        #[async_trait::async_trait]
        impl auth_core::TokenProvider for $ty {
            fn id(&self) -> &auth_core::ProviderId {
                auth_core::TokenProvider::id(&self.inner)
            }

            fn authorize(
                &self,
                request: auth_core::AuthorizeRequest,
            ) -> auth_core::Result<auth_core::PendingAuthorization> {
                self.$check(&request)?;
                auth_core::TokenProvider::authorize(&self.inner, request)
            }

            async fn exchange_code(
                &self,
                pending: &auth_core::PendingAuthorization,
                callback: &auth_core::Callback,
            ) -> auth_core::Result<auth_core::TokenSet> {
                auth_core::TokenProvider::exchange_code(&self.inner, pending, callback).await
            }

            async fn refresh(
                &self,
                current: &auth_core::TokenSet,
            ) -> auth_core::Result<auth_core::TokenSet> {
                auth_core::TokenProvider::refresh(&self.inner, current).await
            }

            async fn revoke(&self, token: &auth_core::TokenSet) -> auth_core::Result<()> {
                auth_core::TokenProvider::revoke(&self.inner, token).await
            }

            async fn introspect(
                &self,
                token: &auth_core::TokenSet,
            ) -> auth_core::Result<auth_core::Introspection> {
                auth_core::TokenProvider::introspect(&self.inner, token).await
            }

            fn account_for(&self, token: &auth_core::TokenSet) -> Option<auth_core::AccountId> {
                auth_core::TokenProvider::account_for(&self.inner, token)
            }

            fn rejects_token(&self, response: &auth_core::ResourceResponse<'_>) -> bool {
                self.token_rejected(response)
            }

            fn refresh_rules(&self) -> auth_core::RefreshRules {
                auth_core::TokenProvider::refresh_rules(&self.inner)
            }

            fn can_mint(&self) -> bool {
                auth_core::TokenProvider::can_mint(&self.inner)
            }

            async fn mint(
                &self,
                key: &auth_core::TokenKey,
            ) -> auth_core::Result<auth_core::TokenSet> {
                auth_core::TokenProvider::mint(&self.inner, key).await
            }
        }
    };
}

pub(crate) use forward_token_provider;
